"""Out-of-core EM (jgmm.fit_stream) on a file larger than a chunk by far.

Writes N x D float32 samples of a K-component mixture to a .npy file (plain
writes, a chunk at a time), fits it with ``jgmm.fit_stream`` reading it once
per EM iteration, and reports the time of the first pass (count, mean,
reservoir sample, initialisation), the time per EM pass and the process's peak
resident memory. For scale, the same per-sample cost is measured in memory on
the first 10⁶ rows for jgmm.fit and scikit-learn (one iteration each, from
the same start, compile excluded).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python experiments/bench_stream.py
    (default: N = 10⁸, D = 8, K = 8 -- a 3.2 GB file; --rows 1e6 for a quick run)
"""

from __future__ import annotations

import argparse
import platform
import resource
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

import jgmm

RESULTS = Path(__file__).with_name("results")


def write_mixture(path: Path, N: int, D: int, K: int, rows: int = 1 << 20) -> None:
    """N samples of a K-component mixture, written chunk by chunk."""
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 6, (K, D))
    scales = rng.uniform(0.5, 1.5, (K, D))
    with open(path, "wb") as f:
        np.lib.format.write_array_header_2_0(f, {"descr": "<f4", "fortran_order": False, "shape": (N, D)})
        for start in range(0, N, rows):
            n = min(rows, N - start)
            labels = rng.integers(K, size=n)
            X = centres[labels] + scales[labels] * rng.standard_normal((n, D))
            f.write(X.astype(np.float32).tobytes())


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn):
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    return out, time.perf_counter() - start


def in_memory_per_sample(path: Path, K: int, n: int = 1_000_000):
    """Seconds per sample of one EM iteration in memory, jgmm.fit and
    scikit-learn from the same start: (time of 4 iterations - time of 1) / 3."""
    from sklearn.mixture import GaussianMixture

    X = np.load(path, mmap_mode="r")[:n].astype(np.float32)
    start = jgmm.fit(jax.random.key(0), X, K, max_iter=1).params
    jgmm_fit = lambda m: timed(lambda: jgmm.fit(jax.random.key(0), X, K, init=start, tol=0.0, max_iter=m))[1]
    jgmm_fit(1), jgmm_fit(4)  # compile
    jgmm_per_sample = (jgmm_fit(4) - jgmm_fit(1)) / 3 / n
    X64 = X.astype(np.float64)
    given = dict(
        weights_init=np.asarray(start.weights), means_init=np.asarray(start.means),
        precisions_init=np.asarray(start.precisions),
    )
    sklearn_fit = lambda m: timed(lambda: GaussianMixture(K, max_iter=m, tol=0.0, **given).fit(X64))[1]
    sklearn_per_sample = (sklearn_fit(4) - sklearn_fit(1)) / 3 / n
    return jgmm_per_sample, sklearn_per_sample


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=float, default=1e8)
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--components", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where to write the data file (default: a temporary folder)")
    args = parser.parse_args()
    N, D, K = int(args.rows), args.features, args.components

    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        path = Path(folder) / "mixture.npy"
        _, t_write = timed(lambda: write_mixture(path, N, D, K))
        size_gb = path.stat().st_size / 1e9
        # Compile first, on a small file read in chunks of the same shape.
        small = Path(folder) / "small.npy"
        write_mixture(small, min(N, 1 << 20), D, K)
        fits = {m: (lambda source, m=m: jgmm.fit_stream(jax.random.key(0), source, K, tol=0.0, max_iter=m))
                for m in (1, 1 + args.iterations)}
        for fit in fits.values():
            fit(small)
        rss_before = peak_rss_mb()
        # Two fits, one EM iteration and `iterations` more: their difference is
        # the time of the extra passes.
        short, t_short = timed(lambda: fits[1](path))
        long, t_long = timed(lambda: fits[1 + args.iterations](path))
        per_pass = (t_long - t_short) / args.iterations
        first_pass = t_short - 2 * per_pass  # the short fit: the first pass, one EM pass, the final pass
        rss_after = peak_rss_mb()
        jgmm_per_sample, sklearn_per_sample = in_memory_per_sample(path, K)

    lines = [
        f"fit_stream: N={N:,} D={D} K={K} full covariances, float32, file {size_gb:.2f} GB "
        f"(written in {t_write:.1f} s)",
        f"machine: {platform.machine()}, {jax.devices()[0].device_kind}, JAX {jax.__version__}",
        "",
        f"{'':34} {'seconds':>10} {'ns/sample':>10}",
        f"{'first pass (count, mean, sample)':34} {first_pass:10.2f} {first_pass / N * 1e9:10.1f}",
        f"{'one EM pass (stream)':34} {per_pass:10.2f} {per_pass / N * 1e9:10.1f}",
        f"{'one EM iteration in memory, jgmm':34} {jgmm_per_sample * N:10.2f} {jgmm_per_sample * 1e9:10.1f}",
        f"{'one EM iteration, scikit-learn':34} {sklearn_per_sample * N:10.2f} {sklearn_per_sample * 1e9:10.1f}",
        "(in-memory rows: measured on the first 10^6 samples, scaled to N)",
        "",
        f"peak resident memory: {rss_before:.0f} MB before the timed fits, {rss_after:.0f} MB after "
        f"(the data: {size_gb * 1e3:.0f} MB)",
        f"log-likelihood after {int(long.n_iter)} iterations: {float(long.log_likelihood):.6f}, "
        f"status {jgmm.Status(int(long.status)).name}",
    ]
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_stream.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
