"""One EM pass over the data for a batch of fits, per covariance family.

The selection benchmark's inner loop: M = 10 members (two cells of K = 10 ×
5 restarts) read N = 20,000 samples (D = 8) in chunks of 2048 rows, each
member computing its responsibilities and sufficient statistics
(``jgmm._engine.passes.pass_sums`` under ``vmap``, compiled as ``jgmm.select`` compiles
it). Prints the fastest of 30 calls per family, compile excluded, and writes
experiments/results/bench_pass.txt.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python experiments/bench_pass.py
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from bench_select import make_data

from jgmm._compile import jit
from jgmm._engine.passes import Chunks, pass_sums
from jgmm._maths.families import BUILT_IN, family
from jgmm._maths.params import GMMParams

M, K, CHUNK, CALLS = 10, 10, 2048, 30
RESULTS = Path(__file__).parent / "results"


def members(X, covariance_type, rng):
    """M starting points: means at random samples, unit covariances."""
    D = X.shape[1]
    means = X[rng.integers(X.shape[0], size=(M, K))]
    shape = {"full": (M, K, D, D), "tied": (M, D, D), "diag": (M, K, D), "spherical": (M, K)}[covariance_type]
    eye = jnp.eye(D, dtype=X.dtype)
    cov = jnp.broadcast_to(eye, shape) if covariance_type in ("full", "tied") else jnp.ones(shape, X.dtype)
    P = family(covariance_type).prec_chol_from_covariances(cov)
    return GMMParams(jnp.full((M, K), 1 / K, X.dtype), means, P, covariance_type)


def main():
    X = jnp.asarray(make_data())
    X = X - X.mean(0)
    w = jnp.ones(X.shape[0], X.dtype)
    rng = np.random.default_rng(0)
    run = jit(lambda p, X, w: jax.vmap(lambda q: pass_sums(q, Chunks(X, w, jnp.zeros(X.shape[1], X.dtype), CHUNK)))(p))
    lines = [
        f"One EM pass, {M} members, N={X.shape[0]}, D={X.shape[1]}, K={K}, {CHUNK}-row chunks, float32; "
        f"fastest of {CALLS} calls",
        f"machine: {platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} on {jax.devices()[0].platform}",
        "",
    ]
    for covariance_type in (f.name for f in BUILT_IN):
        params = members(X, covariance_type, rng)
        jax.block_until_ready(run(params, X, w))
        seconds = []
        for _ in range(CALLS):
            start = time.perf_counter()
            jax.block_until_ready(run(params, X, w))
            seconds.append(time.perf_counter() - start)
        lines.append(f"{covariance_type:>9}  {1e3 * min(seconds):6.2f} ms")
        print(lines[-1], flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_pass.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:2]))


if __name__ == "__main__":
    main()
