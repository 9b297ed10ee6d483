"""Model selection, jgmm.select vs scikit-learn's loop, measured in one run.

N = 20,000 samples, D = 8, six well-separated clusters; K = 1..10, the four
covariance families, n_init = 5 restarts per cell, BIC. scikit-learn fits the
40 cells one after another (the way its users do it); jgmm fits each family's
50 members in one compiled program.

Reported: scikit-learn's time; jgmm cold (first call in a fresh process,
compilation included, no persistent compilation cache), jgmm warm (a second
call with a new key: nothing recompiles), the compile time per program
(the shared k-means seeding, then one per family), the
ratios, and both chosen models. Writes experiments/results/bench_select.txt.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python experiments/bench_select.py
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

N, D, CLUSTERS, KS, N_INIT = 20_000, 8, 6, range(1, 11), 5
FAMILIES = ("full", "tied", "diag", "spherical")
RESULTS = Path(__file__).parent / "results"


def make_data(seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=8.0, size=(CLUSTERS, D))
    labels = rng.integers(CLUSTERS, size=N)
    rotations = np.linalg.qr(rng.normal(size=(CLUSTERS, D, D)))[0]
    A = rotations * rng.uniform(0.5, 1.5, size=(CLUSTERS, 1, D))
    return (centers[labels] + np.einsum("nde,ne->nd", A[labels], rng.normal(size=(N, D)))).astype(np.float32)


def run_sklearn(X):
    from sklearn.mixture import GaussianMixture

    best, iterations = None, []
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for family in FAMILIES:
            for K in KS:
                model = GaussianMixture(K, covariance_type=family, n_init=N_INIT, random_state=K).fit(X)
                iterations.append(model.n_iter_)
                bic = model.bic(X)
                if best is None or bic < best[0]:
                    best = (bic, family, K)
    return time.perf_counter() - start, best, iterations


class CompileLog(logging.Handler):
    """Collects JAX's per-program compile timings for the select program."""

    PATTERN = re.compile(
        r"Finished (tracing|jaxpr to MLIR module conversion|XLA compilation)\b.*?(_grid|seed)_program.*? in ([0-9.e-]+) sec"
    )

    def __init__(self):
        super().__init__()
        self.seconds = []

    def emit(self, record):
        match = self.PATTERN.search(record.getMessage())
        if match:
            if match.group(1) == "tracing":
                self.seconds.append(0.0)
            self.seconds[-1] += float(match.group(3))


def run_jgmm_cold(X):
    """First call in this (fresh) process, with per-program compile times."""
    import jax

    import jgmm

    log = CompileLog()
    logging.getLogger("jax").addHandler(log)
    with jax.log_compiles():
        start = time.perf_counter()
        selection = jgmm.select(jax.random.key(0), X, KS, FAMILIES, n_init=N_INIT)
        elapsed = time.perf_counter() - start
    logging.getLogger("jax").removeHandler(log)
    row = selection.to_dict()
    best = (row["covariance_type"] == selection.best[0]) & (row["n_components"] == selection.best[1])
    return dict(
        seconds=elapsed,
        compile_seconds=dict(zip(("k-means seeding",) + FAMILIES, log.seconds)),
        best=[selection.best[0], selection.best[1], float(row["bic"][best][0])],
        max_iter_run=int(row["n_iter"].max()),
    )


def run_jgmm_warm(X):
    import jax

    import jgmm

    jgmm.select(jax.random.key(0), X, KS, FAMILIES, n_init=N_INIT)  # compiles
    start = time.perf_counter()
    selection = jgmm.select(jax.random.key(1), X, KS, FAMILIES, n_init=N_INIT)
    return time.perf_counter() - start, selection


def main():
    if "--cold" in sys.argv:
        print(json.dumps(run_jgmm_cold(make_data())))
        return
    X = make_data()
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    cold = json.loads(
        subprocess.run(
            [sys.executable, __file__, "--cold"], capture_output=True, text=True, check=True, env=env
        ).stdout.splitlines()[-1]
    )
    warm_seconds, selection = run_jgmm_warm(X)
    sk_seconds, sk_best, sk_iterations = run_sklearn(X)

    import jax

    lines = [
        f"Model selection benchmark: N={N}, D={D}, {CLUSTERS} clusters, K={KS.start}..{KS.stop - 1}, "
        f"{len(FAMILIES)} families, n_init={N_INIT}, float32 data",
        f"machine: {platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} on "
        f"{jax.devices()[0].platform}",
        "",
        f"{'':32}{'seconds':>10}{'vs sklearn':>12}",
        f"{'scikit-learn loop (40 cells)':32}{sk_seconds:>10.2f}{1.0:>11.1f}x",
        f"{'jgmm cold (compile included)':32}{cold['seconds']:>10.2f}{sk_seconds / cold['seconds']:>11.1f}x",
        f"{'jgmm warm (new key)':32}{warm_seconds:>10.2f}{sk_seconds / warm_seconds:>11.1f}x",
        "",
        "jgmm compile time per program (trace + lower + XLA): "
        + ", ".join(f"{f} {s:.2f} s" for f, s in cold["compile_seconds"].items()),
        f"scikit-learn iterations per fit: max {max(sk_iterations)}, median {int(np.median(sk_iterations))}; "
        f"jgmm's longest member ran {int(selection.to_dict()['n_iter'].max())} iterations",
        f"chosen: scikit-learn {sk_best[1]} K={sk_best[2]} (BIC {sk_best[0]:.1f}); "
        f"jgmm {selection.best[0]} K={selection.best[1]} (BIC {cold['best'][2]:.1f})",
    ]
    text = "\n".join(lines)
    print(text)
    print()
    print(selection.table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_select.txt").write_text(text + "\n\n" + str(selection.table) + "\n")


if __name__ == "__main__":
    main()
