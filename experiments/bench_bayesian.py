"""Per-iteration variational fit time: jgmm's BayesianGaussianMixture vs scikit-learn's, side by side in one run.

Both estimators start from "random_from_data" and run a fixed number of
iterations (tol disabled); the time per iteration is the difference between
a long and a short run divided by their difference in iterations
(``bench_em.per_iteration``), so set-up, the start and jgmm's compilation
(reported separately) are excluded. Both run in float32 on the same data.

Prints a table (ms/iter, GFLOP/s of the matrix products, % of the float32
matmul peak measured here, speedup) and writes experiments/results/bench_bayesian.txt.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python experiments/bench_bayesian.py
"""

from __future__ import annotations

import os
import platform
import sys
import warnings
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).parent))
import bench_em  # noqa: E402

from jgmm.sklearn import BayesianGaussianMixture  # noqa: E402

CASES = [  # covariance_type, N, D, K, (short, long) iteration counts, scikit-learn's repeats
    ("full", 200_000, 32, 32, (2, 6), 1),
    ("full", 10_000, 2, 3, (5, 25), 3),
    ("diag", 200_000, 32, 32, (2, 12), 3),
]


def per_iteration(Estimator, X, covariance_type, K, counts, repeats):
    from sklearn.exceptions import ConvergenceWarning

    def run(n):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            Estimator(n_components=K, covariance_type=covariance_type, max_iter=n, tol=0.0,
                      init_params="random_from_data", random_state=0).fit(X)

    return bench_em.per_iteration(run, counts, repeats)


def main():
    from sklearn.mixture import BayesianGaussianMixture as Theirs

    peak = bench_em.matmul_peak()
    device = jax.devices()[0]
    lines = [
        "Variational (BayesianGaussianMixture) time per iteration (float32, difference of two fixed iteration "
        "counts, start and compile excluded)",
        f"machine: {platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} on {device.platform} "
        f"({device.device_kind}); float32 matmul peak measured here: {peak:.0f} GFLOP/s",
        "",
        f"{'family':>9} {'N':>9} {'D':>3} {'K':>3} | {'jgmm ms':>9} {'sklearn ms':>10} | "
        f"{'GFLOP/s':>7} {'% peak':>6} {'vs sklearn':>10} | {'compile s':>9}",
    ]
    print("\n".join(lines), flush=True)
    for covariance_type, N, D, K, counts, repeats in CASES:
        X = bench_em.make_data(N, D, K)
        ours, compile_s = per_iteration(BayesianGaussianMixture, X, covariance_type, K, counts, 5)
        theirs, _ = per_iteration(Theirs, X, covariance_type, K, counts, repeats)
        gflops = bench_em.flops_per_iteration(covariance_type, N, D, K) / ours / 1e9
        lines.append(f"{covariance_type:>9} {N:>9,} {D:>3} {K:>3} | {ours * 1e3:9.2f} {theirs * 1e3:10.2f} | "
                     f"{gflops:7.1f} {100 * gflops / peak:5.0f}% {theirs / ours:9.1f}x | {compile_s:9.2f}")
        print(lines[-1], flush=True)
    bench_em.RESULTS.mkdir(exist_ok=True)
    (bench_em.RESULTS / "bench_bayesian.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
