"""EM against gradient ascent (Adam, L-BFGS) on the log-likelihood, from the same starts.

Question: is EM's closed-form step worth having when optax can maximise the
log-likelihood directly (``jgmm.fit_gradient``)? For four data sets (well
separated, overlapping, high-dimensional, many components) every method
starts from the same k-means++ parameters; the mean log-likelihood is
recorded at every iteration/step and plotted as the gap to the best value
any method reached, against steps and against time (the compiled run, warm;
time per step is the run's time over its steps).

    python experiments/em_vs_gradient.py

Writes results/em_vs_gradient.txt and results/em_vs_gradient.png.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import jgmm  # noqa: E402
from jgmm._engine.init import initial_params  # noqa: E402

RESULTS = Path(__file__).with_name("results")
ITERATIONS = {"EM": 300, "Adam": 3000, "L-BFGS": 300}


def mixture(seed, N, D, K, spread):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, spread, (K, D))
    labels = rng.integers(K, size=N)
    A = np.linalg.qr(rng.normal(size=(K, D, D)))[0] * rng.uniform(0.5, 1.5, (K, 1, D))
    return (centres[labels] + np.einsum("nde,ne->nd", A[labels], rng.normal(size=(N, D)))).astype(np.float32)


DATASETS = {
    "well separated (N=5000, D=2, K=3)": (mixture(0, 5000, 2, 3, 8.0), 3),
    "overlapping (N=5000, D=2, K=3)": (mixture(1, 5000, 2, 3, 1.5), 3),
    "high D (N=5000, D=32, K=4)": (mixture(2, 5000, 32, 4, 1.0), 4),
    "many K (N=20000, D=2, K=16)": (mixture(3, 20000, 2, 16, 6.0), 16),
}


def runs(X, K):
    """Each method's callable from the same start: () -> FitResult."""
    w = np.ones(len(X), X.dtype)
    start = jax.tree.map(
        lambda a: a[0],
        initial_params(jax.random.key(0), X, w, 1e-6, n_components=K, covariance_type="full", init="kmeans++",
                       n_init=1, chunk_size=len(X)),
    )
    key = jax.random.key(0)
    return {
        "EM": lambda: jgmm.fit(key, X, K, init=start, tol=0.0, max_iter=ITERATIONS["EM"]),
        "Adam": lambda: jgmm.fit_gradient(key, X, K, init=start, max_iter=ITERATIONS["Adam"]),
        "L-BFGS": lambda: jgmm.fit_gradient(key, X, K, init=start, max_iter=ITERATIONS["L-BFGS"], optimizer=LBFGS),
    }


LBFGS = optax.lbfgs()


def measure(fn):
    jax.block_until_ready(fn())  # compile
    begin = time.perf_counter()
    result = jax.block_until_ready(fn())
    return result, time.perf_counter() - begin


def first_within(history, target, gap=1e-4):
    """The first step whose log-likelihood is within ``gap`` (relative) of target, or None."""
    close = np.nonzero(history >= target - gap * abs(target))[0]
    return int(close[0]) + 1 if close.size else None


def main():
    fig, axes = plt.subplots(2, len(DATASETS), figsize=(4.2 * len(DATASETS), 7.5))
    lines = [f"{'data set':38} {'method':7} {'final logL':>11} {'steps to 1e-4':>13} {'s to 1e-4':>9} {'s/step':>8}"]
    for column, (name, (X, K)) in enumerate(DATASETS.items()):
        measured = {method: measure(fn) for method, fn in runs(X, K).items()}
        best = max(float(np.nanmax(np.asarray(r.history))) for r, _ in measured.values())
        for method, (result, seconds) in measured.items():
            history = np.asarray(result.history)[: int(result.n_iter)]
            per_step = seconds / max(1, int(result.n_iter))
            steps = np.arange(1, history.size + 1)
            gap = np.maximum(best - history, 1e-7)  # below float32's resolution of the log-likelihood
            axes[0, column].plot(steps, gap, label=method)
            axes[1, column].plot(steps * per_step, gap, label=method)
            reached = first_within(history, best)
            lines.append(
                f"{name:38} {method:7} {history[-1]:11.5f} {reached if reached else '-':>13} "
                f"{reached * per_step if reached else float('nan'):9.3f} {per_step * 1e3:7.3f}m"
            )
        for row, label in enumerate(("iteration / step", "seconds (compiled, warm)")):
            ax = axes[row, column]
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel(label)
            ax.set_ylabel("best - mean log-likelihood")
        axes[0, column].set_title(name, fontsize=9)
        axes[0, column].legend()
    fig.tight_layout()
    RESULTS.mkdir(exist_ok=True)
    fig.savefig(RESULTS / "em_vs_gradient.png", dpi=110)
    text = "\n".join(
        lines
        + [
            "",
            f"machine: {jax.devices()[0].device_kind}, JAX {jax.__version__}, float32, full covariances; "
            "'1e-4': the first step within 1e-4 (relative) of the best log-likelihood any method reached.",
        ]
    )
    print(text)
    (RESULTS / "em_vs_gradient.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
