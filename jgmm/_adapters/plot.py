"""``plot_mixture``: samples coloured by component, with covariance ellipses.

Needs matplotlib (``pip install 'jgmm[plot]'``). Data with more than two
features are shown on their first two principal axes, and each component's
mean and covariance are projected onto the same axes. One feature: a
histogram of the data under the mixture's density and its weighted
components.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from jax.typing import ArrayLike

from jgmm._compile import full_precision
from jgmm._maths.em import weighted_log_prob
from jgmm._maths.params import GMMParams
from jgmm._maths.predict import predict
from jgmm._maths.validation import check_param_values, check_shape

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def principal_axes(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The data's centre (D,) and its first two principal axes (D, 2)."""
    centre = X.mean(axis=0)
    _, _, Vt = np.linalg.svd(X - centre, full_matrices=False)
    return centre, Vt[:2].T


def _plot_density(params: GMMParams, x: np.ndarray, ax, colours):
    """Histogram of the (N,) samples x with the density p(x) and each π_k N(x | k)."""
    ax.hist(x, bins="auto", density=True, color="0.8", label="data")
    spread = x.max() - x.min() or 1.0
    grid = np.linspace(x.min() - 0.05 * spread, x.max() + 0.05 * spread, 400)
    check_param_values(params)
    log_components = weighted_log_prob(params, grid[:, None].astype(params.means.dtype))  # (400, K)
    components = np.exp(np.asarray(log_components, np.float64))
    for k in range(params.n_components):
        ax.plot(grid, components[:, k], color=colours(k % 10), lw=1.5, linestyle="--", zorder=3)  # over the density
    ax.plot(grid, components.sum(axis=1), color="black", lw=2, label="mixture density")
    ax.set_xlabel("feature 1")
    ax.set_ylabel("density")
    ax.legend(loc="upper right", frameon=False)
    ax.set_title(f"{params.n_components} components, covariance_type={params.covariance_type!r}")
    return ax


@full_precision
def plot_mixture(params: GMMParams, X: ArrayLike, ax: Axes | None = None, sigmas: Sequence[float] = (1, 2)) -> Axes:
    """Scatter X coloured by most probable component, with each component's
    ``sigmas``-σ ellipses and its mean marked; for one feature, a histogram
    of X with the mixture's density and its weighted components (dashed).

    Args:
      params: GMMParams in D dimensions.
      X: (N, D) samples (more than 2 features: first two principal axes).
      ax: a matplotlib Axes; a new figure if None.
      sigmas: ellipse radii in standard deviations.

    Returns:
      The matplotlib Axes.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Ellipse

    X = check_shape(np.asarray(X, np.float64), n_features=params.n_features, expected_by="the mixture")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 5))
    colours = plt.get_cmap("tab10")
    K, D = params.n_components, params.n_features
    if D == 1:
        return _plot_density(params, X[:, 0], ax, colours)
    labels = np.asarray(predict(params, X))
    covariances = np.asarray(params.dense_covariances, np.float64)
    if D == 2:
        centre, V = np.zeros(2), np.eye(2)
        ax.set_xlabel("feature 1")
        ax.set_ylabel("feature 2")
    else:
        centre, V = principal_axes(X)
        ax.set_xlabel("first principal axis")
        ax.set_ylabel("second principal axis")
    Y = (X - centre) @ V
    means = (np.asarray(params.means, np.float64) - centre) @ V
    ax.scatter(Y[:, 0], Y[:, 1], c=[colours(k % 10) for k in labels], s=8, alpha=0.6, linewidths=0)
    for k in range(K):
        eigenvalues, vectors = np.linalg.eigh(V.T @ covariances[k] @ V)
        angle = np.degrees(np.arctan2(vectors[1, 1], vectors[0, 1]))
        for s in sigmas:
            width, height = 2 * s * np.sqrt(np.maximum(eigenvalues[::-1], 0))
            ax.add_patch(
                Ellipse(means[k], width, height, angle=angle, fill=False, color=colours(k % 10), lw=1.5,
                        linestyle="-" if s == sigmas[0] else "--")
            )
        ax.plot(*means[k], marker="x", color="black", markersize=8)
    ax.set_title(f"{K} components, covariance_type={params.covariance_type!r}; ellipses at {', '.join(f'{s}σ' for s in sigmas)}")
    ax.autoscale_view()
    return ax
