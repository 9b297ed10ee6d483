"""How much does each sample move the fit? Implicit derivatives vs refits.

Leaving sample i out of a fit is setting its weight w_i from 1 to 0, so to
first order it moves the fitted parameters by -∂θ*/∂w_i (the infinitesimal
jackknife). ``jax.jacrev`` of ``jgmm.fit`` with respect to ``sample_weight``
gives ∂θ*/∂w for every sample at once, by implicit differentiation at EM's
fixed point (docs/derivation.md §14): one reverse pass per fitted mean
coordinate. The exact answer is N refits with one sample left out each,
here as one vmapped program over N weight vectors, each refit started at
the full fit.

Old Faithful (272 × 2), K = 2, full covariances, float64, tol 1e-12.
Reported: how close the first-order change of the means is to the refits'
(correlation, largest error relative to the largest change), and the time
of each way, compilation included (first call) and excluded (second call).

    python experiments/influence.py

Writes results/influence.txt and results/influence.png.
"""

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import jgmm  # noqa: E402

RESULTS = Path(__file__).with_name("results")
K, TOL, MAX_ITER = 2, 1e-12, 2000


def timed(function, *args):
    """Result and seconds of a first (compiling) and a second call."""
    times = []
    for _ in range(2):
        start = time.perf_counter()
        result = jax.block_until_ready(function(*args))
        times.append(time.perf_counter() - start)
    return result, times


def main():
    with jax.enable_x64(True):
        X = jnp.asarray(jgmm.load_faithful())
        N = X.shape[0]
        key = jax.random.key(0)
        full = jgmm.fit(key, X, K, tol=TOL, max_iter=MAX_ITER, n_init=5)
        start = full.params

        def means(w):
            return jgmm.fit(key, X, K, init=start, sample_weight=w, tol=TOL, max_iter=MAX_ITER).params.means

        jacobian, jacobian_times = timed(jax.jit(jax.jacrev(means)), jnp.ones(N))  # (K, D, N)
        predicted = -np.moveaxis(np.asarray(jacobian), -1, 0)  # (N, K, D): leaving i out
        leave_one_out = jax.jit(jax.vmap(means))
        refits, refit_times = timed(leave_one_out, 1.0 - jnp.eye(N))
        actual = np.asarray(refits) - np.asarray(start.means)
    p, a = predicted.reshape(N, -1), actual.reshape(N, -1)
    correlation = float(np.corrcoef(p.ravel(), a.ravel())[0, 1])
    error = float(np.max(np.abs(p - a)) / np.max(np.abs(a)))
    largest = int(np.argmax(np.linalg.norm(a, axis=1)))
    lines = [
        f"Old Faithful ({N} x 2), K = {K}, full, float64, tol {TOL:g}; leaving one sample out",
        f"  change of the means: implicit derivative vs refit, correlation {correlation:.6f}, "
        f"largest error {error:.2%} of the largest change",
        f"  most influential sample: row {largest}, moves a mean by {np.linalg.norm(a[largest]):.4f} "
        f"(first order: {np.linalg.norm(p[largest]):.4f})",
        f"  time, first call (compiling) / second call: jacobian {jacobian_times[0]:.2f} / {jacobian_times[1]:.3f} s, "
        f"{N} refits (one vmapped program) {refit_times[0]:.2f} / {refit_times[1]:.3f} s",
    ]
    print("\n".join(lines))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "influence.txt").write_text("\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(4.5, 4.2))
    ax.scatter(a.ravel(), p.ravel(), s=6)
    limit = np.max(np.abs(a))
    ax.plot([-limit, limit], [-limit, limit], color="black", lw=0.8)
    ax.set_xlabel("change of a mean coordinate, refit without the sample")
    ax.set_ylabel("first order, -∂μ/∂w_i (implicit)")
    ax.set_title("Old Faithful, K = 2: leave-one-out influence")
    fig.tight_layout()
    fig.savefig(RESULTS / "influence.png", dpi=120)


if __name__ == "__main__":
    main()
