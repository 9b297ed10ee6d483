"""One mixture per group: data sets of many sizes, jgmm vs scikit-learn in one run.

A common workflow fits one mixture per group of a data set (per subject,
per image, per cell type), each group of another size. jgmm compiles a
program per shape of X; padding N to one of four sizes per octave with rows
of weight 0 (``jgmm._engine.bucket``) lets nearby sizes share one. Measured: 30
groups of 200 to 6,000 rows (log-uniform), D = 4, K = 3, full covariances,
3 restarts, each variant in a fresh process (no persistent compilation
cache): jgmm with the padding, jgmm without it (every size compiles), jgmm
with every group padded to the largest and all fitted by one vmapped
``jgmm.fit`` (one program), and scikit-learn's GaussianMixture. Also the
largest differences of mean log-likelihood between the jgmm variants (same
keys, so the same fits).
Writes experiments/results/bench_sizes.txt.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python experiments/bench_sizes.py
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np

GROUPS, D, K, N_INIT = 30, 4, 3, 3
RESULTS = Path(__file__).parent / "results"


def groups(seed=0):
    """GROUPS data sets of log-uniform sizes in [200, 6000], three clusters each."""
    rng = np.random.default_rng(seed)
    sizes = np.exp(rng.uniform(np.log(200), np.log(6000), GROUPS)).astype(int)
    centers = rng.normal(scale=5.0, size=(K, D))
    return [(centers[rng.integers(K, size=n)] + rng.normal(size=(n, D))).astype(np.float32) for n in sizes]


def run(variant: str) -> dict:
    """Fit every group with one variant; in the calling process."""
    data = groups()
    if variant == "sklearn":
        import warnings

        from sklearn.mixture import GaussianMixture

        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores = [GaussianMixture(K, n_init=N_INIT, random_state=i).fit(X).score(X) for i, X in enumerate(data)]
        return {"seconds": time.perf_counter() - start, "log_likelihood": scores}
    import jgmm
    from jgmm._engine import bucket as _bucket

    if variant == "jgmm, every size compiled":
        _bucket.MAX_BUCKETED_ROWS = 0
    programs = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, duration, **kw: programs.append(duration) if event.endswith("backend_compile_duration") else None
    )
    start = time.perf_counter()
    if variant == "jgmm, all groups in one vmapped fit":
        # Every group padded to the largest with rows of weight 0, then one fit per group under vmap.
        rows = max(len(X) for X in data)
        padded = [_bucket.pad_rows(X, np.ones(len(X), X.dtype), rows) for X in data]
        Xs, ws = (np.stack(a) for a in zip(*padded))
        keys = jax.vmap(jax.random.key)(np.arange(len(data)))
        fits = jax.vmap(lambda key, X, w: jgmm.fit(key, X, K, n_init=N_INIT, sample_weight=w))(keys, Xs, ws)
        scores = [float(v) for v in fits.log_likelihood]
    else:
        scores = [float(jgmm.fit(jax.random.key(i), X, K, n_init=N_INIT).log_likelihood) for i, X in enumerate(data)]
    return {"seconds": time.perf_counter() - start, "log_likelihood": scores,
            "programs": sum(d > 0.1 for d in programs), "compile_seconds": sum(programs)}


def main():
    if len(sys.argv) > 1:
        json.dump(run(sys.argv[1]), sys.stdout)
        return
    variants = [
        "jgmm, nearby sizes share programs", "jgmm, every size compiled", "jgmm, all groups in one vmapped fit", "sklearn"
    ]
    out = {}
    for variant in variants:
        child = subprocess.run([sys.executable, __file__, variant], capture_output=True, text=True, check=True)
        out[variant] = json.loads(child.stdout)
    sizes = [len(X) for X in groups()]
    lines = [
        f"One mixture per group: {GROUPS} groups of {min(sizes)} to {max(sizes)} rows "
        f"({len(set(sizes))} sizes), D={D}, K={K}, full, n_init={N_INIT}, float32",
        f"machine: {platform.machine()}, jax {jax.__version__} on {jax.default_backend()}; each row a fresh process",
        "",
        f"{'':36s}{'seconds':>9s}{'programs compiled':>19s}{'XLA compile s':>15s}{'vs sklearn':>12s}",
    ]
    base = out["sklearn"]["seconds"]
    for variant in variants:
        r = out[variant]
        compile_s = f"{r['compile_seconds']:.1f}" if "compile_seconds" in r else "-"
        programs = str(r["programs"]) if "programs" in r else "-"
        lines.append(f"{variant:36s}{r['seconds']:9.2f}{programs:>19s}{compile_s:>15s}{base / r['seconds']:11.2f}x")
    a, b, v = (np.array(out[v]["log_likelihood"]) for v in variants[:3])
    c = np.array(out["sklearn"]["log_likelihood"])
    lines += [
        "",
        f"largest |difference| of mean log-likelihood, padded vs unpadded jgmm: {np.max(np.abs(a - b)):.2e}",
        f"largest |difference| of mean log-likelihood, vmapped vs one by one: {np.max(np.abs(v - a)):.2e}",
        f"mean log-likelihood, jgmm minus scikit-learn: median {np.median(a - c):+.2e}, min {np.min(a - c):+.2e}",
    ]
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_sizes.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
