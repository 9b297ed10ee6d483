"""plot_mixture and Selection.plot draw what they claim."""

import jax
import matplotlib
import numpy as np
import pytest
from conftest import FAMILIES, blobs
from matplotlib.patches import Ellipse

import jgmm
from jgmm._plot import full_covariances

matplotlib.use("Agg")


@pytest.mark.parametrize("covariance_type", FAMILIES)
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
        expected = 2 * np.sqrt(np.linalg.eigvalsh(full_covariances(params)[k]))
        np.testing.assert_allclose(sorted([e.width, e.height]), expected, rtol=1e-5)


def test_more_than_two_features_use_principal_axes(tmp_path):
    X, _, _ = blobs(51, N=300, D=4, K=2)
    params = jgmm.fit(jax.random.key(0), X, 2).params
    ax = jgmm.plot_mixture(params, X)
    assert ax.get_xlabel() == "first principal axis"
    path = tmp_path / "mixture.png"
    ax.figure.savefig(path)
    assert path.read_bytes().startswith(b"\x89PNG")


def test_one_feature_is_refused():
    X = np.random.default_rng(0).normal(size=(50, 1))
    params = jgmm.fit(jax.random.key(0), X, 2).params
    with pytest.raises(ValueError, match="D >= 2"):
        jgmm.plot_mixture(params, X)
