"""Per-iteration EM time: jgmm vs scikit-learn vs gmmx, side by side in one run.

Every library starts from the same initial parameters and runs a fixed number
of iterations (tol disabled); the time per iteration is the difference
between a long and a short run divided by their difference in iterations,
so set-up, the final log-likelihood pass and (for the JAX libraries, whose
programs are compiled by a first call) compilation are excluded. Compilation
is reported separately. gmmx (full and diag only) is measured when installed.

Prints a table (ms/iter, GFLOP/s, % of the float32 matmul peak measured here,
speedup vs scikit-learn), the device memory of jgmm's compiled program, and a
scaling study (time per iteration against N). Writes
experiments/results/bench_em.csv, bench_em_scaling.csv and bench_em.png.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python experiments/bench_em.py [--quick]

With --eigen it times mclust's ten other families instead (no other Python
library fits them), each against full measured right after it on the same
data and start, and writes experiments/results/bench_em_eigen.txt.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import jgmm

RESULTS = Path(__file__).parent / "results"
CASES = [  # covariance_type, N, D, K
    ("full", 10_000, 2, 3),
    ("full", 100_000, 16, 16),
    ("full", 200_000, 32, 32),
    ("full", 1_000_000, 8, 8),
    ("diag", 200_000, 32, 32),
    ("spherical", 200_000, 32, 32),
]
EIGEN_SIZES = [(200_000, 32, 32), (10_000, 2, 3)]  # N, D, K
SCALING = dict(covariance_type="full", D=8, K=8, Ns=[10**3, 10**4, 10**5, 10**6, 10**7])
SMALL = 10**8  # N·K·D² below which a case runs more iterations and repeats


def iterations(N, D, K):
    """(short, long) iteration counts: more for small problems, whose
    iterations take well under a millisecond; fewer for the largest."""
    size = N * K * D * D
    return (5, 25) if size < SMALL else (2, 6) if size < 50 * SMALL else (1, 3)


def flops_per_iteration(covariance_type, N, D, K):
    """Matrix-product flops of one EM iteration (E-step and M-step)."""
    if covariance_type == "full":
        return 4 * N * K * D * D  # (N,D)x(D,K·D) and K Gram matrices (D,N)x(N,D)
    return 8 * N * K * D  # distances and moments as (N,D)x(D,K) products


def matmul_peak():
    """float32 GFLOP/s of a large jitted matrix product on this device, at
    the full float32 precision jgmm's fits use (no TF32 on GPUs)."""
    n = 4096 if jax.default_backend() == "cpu" else 16384
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    f = jax.jit(lambda a: jnp.matmul(a, a, precision="highest"))
    f(a).block_until_ready()
    best = min(_timed(lambda: f(a).block_until_ready()) for _ in range(5))
    return 2 * n**3 / best / 1e9


def _timed(run):
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def make_data(N, D, K, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(K, D))
    labels = rng.integers(K, size=N)
    return (centers[labels] + rng.normal(size=(N, D))).astype(np.float32)


def start_params(X, K, covariance_type):
    """Shared initial parameters: one EM step from k-means++ on a subsample."""
    return jgmm.fit(jax.random.key(0), X[:20_000], K, covariance_type, max_iter=1).params


def per_iteration(run, counts, repeats):
    """(seconds per iteration, first-call seconds) from run(n_iter): the
    median over ``repeats`` of (long run - short run) / their iteration gap."""
    n_short, n_long = counts
    first = _timed(lambda: run(n_short))
    run(n_long)
    pairs = [(_timed(lambda: run(n_short)), _timed(lambda: run(n_long))) for _ in range(repeats)]
    gap = np.median([long - short for short, long in pairs]) / (n_long - n_short)
    return max(gap, 1e-9), first - min(short for short, _ in pairs)


def _counts(X, start):
    return iterations(X.shape[0], X.shape[1], start.n_components)


def time_jgmm(X, start, repeats=5):
    K, ct = start.n_components, start.covariance_type

    def run(n):
        jax.block_until_ready(jgmm.fit(jax.random.key(0), X, K, ct, init=start, max_iter=n, tol=0.0))

    return per_iteration(run, _counts(X, start), repeats)


def time_sklearn(X, start):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    kwargs = dict(
        covariance_type=start.covariance_type, tol=0.0, weights_init=np.asarray(start.weights),
        means_init=np.asarray(start.means), precisions_init=np.asarray(start.precisions),
    )

    def run(n):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            GaussianMixture(start.n_components, max_iter=n, **kwargs).fit(X)

    N, D = X.shape
    repeats = 3 if N * start.n_components * D * D < 10 * SMALL else 1
    return per_iteration(run, _counts(X, start), repeats)[0]


def time_gmmx(X, start):
    if start.covariance_type not in ("full", "diag"):
        return None
    try:
        from gmmx import EMFitter, GaussianMixtureModelJax
    except ImportError:
        return None
    covariances = np.asarray(start.covariances)  # diag: (K, D) variances, as gmmx takes them
    gmm = GaussianMixtureModelJax.from_squeezed(
        means=np.asarray(start.means), covariances=covariances, weights=np.asarray(start.weights),
        covariance_type=start.covariance_type,
    )
    Xj = jnp.asarray(X)

    def run(n):
        jax.block_until_ready(EMFitter(max_iter=n, tol=-1.0).fit(Xj, gmm).gmm.means)

    N, D = X.shape
    repeats = 3 if N * start.n_components * D * D < 10 * SMALL else 1
    return per_iteration(run, _counts(X, start), repeats)[0]


def jgmm_memory(X, start):
    """Bytes of the compiled fit's temporaries and of X."""
    from jgmm._engine.init import Seeding
    from jgmm._engine.loop import GridConfig, fit_grid
    from jgmm._engine.planning import default_chunk_size

    N, D = X.shape
    K = start.n_components
    Xj = jnp.asarray(X)
    config = GridConfig(
        Seeding(K, "params", 1), start.covariance_type, max_iter=10,
        chunk_size=default_chunk_size(N, K, D, 1, X.dtype.itemsize),
    )
    compiled = fit_grid.lower(
        jax.random.key(0), np.array([K], np.int32), Xj, jnp.ones(N, X.dtype), 0.0, 1e-6, start, config=config
    ).compile()
    return compiled.memory_analysis().temp_size_in_bytes, X.nbytes


def eigen_families(header):
    """Each of the ten families against full, interleaved: their E-step is
    full's, their M-step adds O(K·D³) per iteration (iterative ones: per
    inner step), independent of N."""
    names = [name for name in jgmm.family_names() if name.isupper()]
    lines = [header.replace("EM time per iteration", "EM time per iteration of mclust's families"), "",
             f"{'family':>6} {'N':>9} {'D':>3} {'K':>3} | {'ms':>8} {'full ms':>8} {'ratio':>6} | {'compile s':>9}"]
    print("\n".join(lines), flush=True)
    for N, D, K in EIGEN_SIZES:
        X = make_data(N, D, K)
        full = start_params(X, K, "full")
        for name in names:
            relabelled = dataclasses.replace(full, covariance_type=name)  # full's shapes: one EM step moves it in
            start = jgmm.fit(jax.random.key(0), X[:20_000], K, name, init=relabelled, max_iter=1).params
            ours, compile_s = time_jgmm(X, start, repeats=2)
            reference, _ = time_jgmm(X, full, repeats=2)
            lines.append(f"{name:>6} {N:>9,} {D:>3} {K:>3} | {ours * 1e3:8.2f} {reference * 1e3:8.2f} "
                         f"{ours / reference:5.2f}x | {compile_s:9.2f}")
            print(lines[-1], flush=True)
    (RESULTS / "bench_em_eigen.txt").write_text("\n".join(lines) + "\n")


def main():
    quick = "--quick" in sys.argv
    RESULTS.mkdir(exist_ok=True)
    peak = matmul_peak()
    device = jax.devices()[0]
    header = (
        "EM time per iteration (float32, from the same start, difference of two fixed iteration counts, "
        "compile excluded)\n"
        f"machine: {platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} on {device.platform} "
        f"({device.device_kind}); float32 matmul peak measured here: {peak:.0f} GFLOP/s"
    )
    if "--eigen" in sys.argv:
        return eigen_families(header)
    print(header, flush=True)
    rows = []
    for ct, N, D, K in CASES[:2] if quick else CASES:
        X = make_data(N, D, K)
        start = start_params(X, K, ct)
        ours, compile_s = time_jgmm(X, start)
        theirs = time_sklearn(X, start)
        gmmx = time_gmmx(X, start)
        flops = flops_per_iteration(ct, N, D, K)
        temp, x_bytes = jgmm_memory(X, start)
        rows.append(dict(
            covariance_type=ct, N=N, D=D, K=K, jgmm_ms=ours * 1e3, sklearn_ms=theirs * 1e3,
            gmmx_ms=None if gmmx is None else gmmx * 1e3, jgmm_gflops=flops / ours / 1e9,
            jgmm_peak_pct=100 * flops / ours / 1e9 / peak, speedup_vs_sklearn=theirs / ours,
            jgmm_compile_s=compile_s, jgmm_temp_mb=temp / 2**20, x_mb=x_bytes / 2**20,
        ))
        print(_format_row(rows[-1]), flush=True)
    table = "\n".join([header, "", _format_header()] + [_format_row(r) for r in rows])
    _write_csv(RESULTS / "bench_em.csv", rows)

    scaling = []
    Ns = SCALING["Ns"][:3] if quick else SCALING["Ns"]
    for N in Ns:
        X = make_data(N, SCALING["D"], SCALING["K"])
        start = start_params(X, SCALING["K"], SCALING["covariance_type"])
        ours, _ = time_jgmm(X, start)
        theirs = time_sklearn(X, start) if N <= 10**7 else None
        scaling.append(dict(N=N, jgmm_ms=ours * 1e3, sklearn_ms=None if theirs is None else theirs * 1e3))
        print(f"scaling N={N:>9,}: jgmm {ours * 1e3:9.2f} ms/iter, scikit-learn "
              f"{'-' if theirs is None else f'{theirs * 1e3:9.2f}'} ms/iter", flush=True)
    _write_csv(RESULTS / "bench_em_scaling.csv", scaling)
    lines = [table, "", f"scaling (full, D={SCALING['D']}, K={SCALING['K']}): ms per iteration"]
    lines += [f"  N={r['N']:>10,}  jgmm {r['jgmm_ms']:10.2f}  scikit-learn {r['sklearn_ms']:10.2f}" for r in scaling]
    (RESULTS / "bench_em.txt").write_text("\n".join(lines) + "\n")
    _plot(rows, scaling)
    print("\n" + "\n".join(lines))


def _format_header():
    return (f"{'family':>9} {'N':>9} {'D':>3} {'K':>3} | {'jgmm ms':>9} {'sklearn ms':>10} {'gmmx ms':>9} | "
            f"{'GFLOP/s':>7} {'% peak':>6} {'vs sklearn':>10} | {'compile s':>9} {'temp MB':>8} {'X MB':>6}")


def _format_row(r):
    gmmx = "-" if r["gmmx_ms"] is None else f"{r['gmmx_ms']:9.2f}"
    return (f"{r['covariance_type']:>9} {r['N']:>9,} {r['D']:>3} {r['K']:>3} | {r['jgmm_ms']:9.2f} "
            f"{r['sklearn_ms']:10.2f} {gmmx:>9} | {r['jgmm_gflops']:7.1f} {r['jgmm_peak_pct']:5.0f}% "
            f"{r['speedup_vs_sklearn']:9.1f}x | {r['jgmm_compile_s']:9.2f} {r['jgmm_temp_mb']:8.1f} {r['x_mb']:6.1f}")


def _write_csv(path, rows):
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _plot(rows, scaling):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    labels = [f"{r['covariance_type']}\nN={r['N']:,}\nD={r['D']} K={r['K']}" for r in rows]
    x = np.arange(len(rows))
    for offset, key, name in ((-0.27, "jgmm_ms", "jgmm"), (0.0, "sklearn_ms", "scikit-learn"), (0.27, "gmmx_ms", "gmmx")):
        values = [np.nan if r[key] is None else r[key] for r in rows]
        left.bar(x + offset, values, width=0.27, label=name)
    left.set_xticks(x, labels, fontsize=7)
    left.set_yscale("log")
    left.set_ylabel("ms per EM iteration")
    left.legend()
    left.set_title("time per iteration, same start")
    Ns = [r["N"] for r in scaling]
    right.loglog(Ns, [r["jgmm_ms"] for r in scaling], marker="o", label="jgmm")
    right.loglog(Ns, [np.nan if r["sklearn_ms"] is None else r["sklearn_ms"] for r in scaling], marker="s",
                 label="scikit-learn")
    right.set_xlabel("N")
    right.set_ylabel("ms per EM iteration")
    right.set_title(f"scaling: full, D={SCALING['D']}, K={SCALING['K']}")
    right.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "bench_em.png", dpi=120)


if __name__ == "__main__":
    main()
