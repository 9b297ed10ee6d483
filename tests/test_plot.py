"""plot_mixture and Selection.plot draw what they claim."""

import jax
import matplotlib
import numpy as np
import pytest
from conftest import FAMILIES, blobs
from matplotlib.patches import Ellipse

import jgmm

matplotlib.use("Agg")


@pytest.mark.parametrize("covariance_type", FAMILIES + ("VVE",))
def test_two_ellipses_per_component_at_the_means(covariance_type):
    X, _, _ = blobs(50, N=300, D=2, K=3)
    params = jgmm.fit(jax.random.key(0), X, 3, covariance_type).params
    ax = jgmm.plot_mixture(params, X)
    ellipses = [p for p in ax.patches if isinstance(p, Ellipse)]
    assert len(ellipses) == 6
    centres = np.array([e.center for e in ellipses[::2]])
    np.testing.assert_allclose(centres, np.asarray(params.means), rtol=1e-6)
    # The 1σ ellipse's axes are twice the square roots of the covariance eigenvalues.
    for k, e in enumerate(ellipses[::2]):
        expected = 2 * np.sqrt(np.linalg.eigvalsh(np.asarray(params.dense_covariances)[k]))
        np.testing.assert_allclose(sorted([e.width, e.height]), expected, rtol=1e-5)


def test_more_than_two_features_use_principal_axes(tmp_path):
    X, _, _ = blobs(51, N=300, D=4, K=2)
    params = jgmm.fit(jax.random.key(0), X, 2).params
    ax = jgmm.plot_mixture(params, X)
    assert ax.get_xlabel() == "first principal axis"
    path = tmp_path / "mixture.png"
    ax.figure.savefig(path)
    assert path.read_bytes().startswith(b"\x89PNG")


def test_one_feature_is_a_histogram_under_the_mixture_density():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(-3, 1, 200), rng.normal(3, 0.5, 100)])[:, None]
    params = jgmm.fit(jax.random.key(0), X, 2).params
    ax = jgmm.plot_mixture(params, X)
    *components, mixture = ax.lines
    assert len(components) == 2 and mixture.get_label() == "mixture density"
    # The drawn density is p(x), and it is the sum of the dashed weighted components.
    x, y = mixture.get_data()
    np.testing.assert_allclose(y, np.exp(jgmm.log_prob(params, x[:, None])), rtol=1e-5)
    np.testing.assert_allclose(sum(line.get_ydata() for line in components), y, rtol=1e-4)
    assert x.min() < X.min() and x.max() > X.max()
    heights = [patch.get_height() for patch in ax.patches]  # the histogram, normalised
    widths = [patch.get_width() for patch in ax.patches]
    assert np.dot(heights, widths) == pytest.approx(1.0)


def test_data_of_another_dimension_are_refused():
    X, _, _ = blobs(52, N=100, D=2, K=2)
    params = jgmm.fit(jax.random.key(0), X, 2).params
    with pytest.raises(ValueError, match="X has 1 features, but the mixture is expecting 2"):
        jgmm.plot_mixture(params, X[:, :1])
