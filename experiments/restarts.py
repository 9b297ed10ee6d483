"""How often do restarts matter? The spread of EM's log-likelihood over starts.

For each data set, 200 single-start fits (``jax.vmap`` of ``jgmm.fit`` over
200 keys: one compiled program) with k-means starts (distances on
standardised features) and with random starts, and the one deterministic hc
start (mclust's), full covariances, float64, run to convergence (tol 1e-9).
Reported: the best mean log-likelihood any start reached, the fraction p of
starts within 1e-5 (relative) of it (for hc: 1 if it reached it, else 0),
the worst, and the chance that the best of n_init = 5 restarts reaches it,
1 - (1 - p)^5.

    python experiments/restarts.py

Writes results/restarts.txt and results/restarts.png.
"""

from pathlib import Path

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_iris, load_wine  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import jgmm  # noqa: E402

RESULTS = Path(__file__).with_name("results")
STARTS = 200


def synthetic():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 2.5, (6, 3))
    labels = rng.integers(6, size=3000)
    return centres[labels] + rng.normal(size=(3000, 3))


DATASETS = {
    "Old Faithful (272×2), K=3": (jgmm.load_faithful(), 3),
    "iris (150×4), K=3": (load_iris().data, 3),
    "wine, standardised (178×13), K=3": (StandardScaler().fit_transform(load_wine().data), 3),
    "wine, raw units (178×13), K=3": (load_wine().data, 3),
    "breast cancer, raw units (569×30), K=2": (load_breast_cancer().data, 2),
    "6 overlapping blobs (3000×3), K=6": (synthetic(), 6),
}


def main():
    keys = jax.random.split(jax.random.key(0), STARTS)
    lines = [f"{'data set':38} {'init':9} {'best logL':>10} {'p(best)':>8} {'worst logL':>11} {'P(best of 5)':>12}"]
    fig, axes = plt.subplots(1, len(DATASETS), figsize=(4.2 * len(DATASETS), 3.4))
    with jax.enable_x64(True):
        for ax, (name, (X, K)) in zip(axes, DATASETS.items()):
            finals = {
                init: np.asarray(jax.vmap(lambda k: jgmm.fit(k, X, K, init=init, tol=1e-9, max_iter=2000).log_likelihood)(keys))
                for init in ("kmeans++", "random")
            }
            finals["hc"] = np.asarray([jgmm.fit(keys[0], X, K, init="hc", tol=1e-9, max_iter=2000).log_likelihood])
            best = max(np.nanmax(v) for v in finals.values())
            for init, values in finals.items():
                p = float(np.mean(values >= best - 1e-5 * abs(best)))
                lines.append(
                    f"{name:38} {init:9} {best:10.5f} {p:8.2f} {np.nanmin(values):11.5f} {1 - (1 - p) ** 5:12.3f}"
                )
                ax.hist(np.maximum(best - values, 1e-8), bins=np.logspace(-8.25, 0.25, 35), alpha=0.6, label=init)
            ax.set_xscale("log")
            ax.set_title(name, fontsize=9)
            ax.set_xlabel("best - mean log-likelihood (the bar at 1e-8: reached the best)", fontsize=8)
            ax.legend()
        axes[0].set_ylabel(f"starts (of {STARTS})")
    fig.tight_layout()
    RESULTS.mkdir(exist_ok=True)
    fig.savefig(RESULTS / "restarts.png", dpi=110)
    text = "\n".join(lines)
    print(text)
    (RESULTS / "restarts.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
