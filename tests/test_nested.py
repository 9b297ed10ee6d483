"""Nested K in select: each K also starts from the previous K's fit, split."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import blobs

import jgmm
from jgmm._engine.nested import split_components
from jgmm._engine.step import mask_components
from jgmm._maths.validation import in_family


@pytest.mark.parametrize("covariance_type", jgmm.family_names())
def test_a_split_keeps_the_weights_the_mixture_mean_and_the_familys_form(x64, covariance_type):
    X, _, _ = blobs(seed=1, N=200, D=3, K=2)
    resp = np.random.default_rng(0).dirichlet(np.ones(2), size=X.shape[0])
    resp = np.concatenate([resp, np.full((X.shape[0], 3), 1e-3)], axis=1)  # K_max = 5, two active
    params = mask_components(jgmm.m_step(resp, X, covariance_type), jnp.arange(5) < 2)
    split = split_components(params, 2, 4)
    weights = np.asarray(split.weights)
    assert np.count_nonzero(weights) == 4 and weights.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(weights @ np.asarray(split.means), np.asarray(params.weights @ params.means), atol=1e-12)
    dense = lambda p: np.asarray(jgmm.family(covariance_type).dense_covariances(p.prec_chol, 5, 3))
    # Each new component is a copy of the one it split from, so the form is kept.
    for new in (2, 3):
        assert any(np.allclose(dense(split)[new], dense(params)[k]) for k in (0, 1))
    assert in_family(split)


def test_the_log_likelihood_never_falls_as_k_grows_on_data_where_independent_starts_fail():
    """Old Faithful, tied covariances: the best of five k-means starts at
    K = 5 is below K = 4's fit; the nested start lifts it."""
    X = jgmm.load_faithful()
    tol = 1e-3
    rows = {}
    for nested in (False, True):
        table = jgmm.select(jax.random.key(0), X, range(1, 8), "tied", init="kmeans", nested=nested, tol=tol).to_dict()
        rows[nested] = table
    falls = lambda ll: np.diff(ll) < -tol * X.shape[0]
    assert falls(rows[False]["total_log_likelihood"]).any()  # the data show the failure
    assert not falls(rows[True]["total_log_likelihood"]).any()
    assert np.all(rows[True]["total_log_likelihood"] >= rows[False]["total_log_likelihood"] - 1e-6)
    split = rows[True]["start"] == "split"
    assert split.any() and set(rows[True]["start"][~split]) == {"kmeans"}


def test_a_k_whose_every_fit_collapses_keeps_the_smaller_ks_fit():
    """Two clusters of four points in 2-D: every fit of K = 3 or 4 full
    components collapses a component onto too few points; the nested
    selection keeps K = 2's fit there, with components of weight 0."""
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(4, 2)), rng.normal(size=(4, 2)) + 10])
    rows = {n: jgmm.select(jax.random.key(0), X, range(1, 5), "full", nested=n).to_dict() for n in (False, True)}
    assert list(rows[False]["status"][2:]) == ["DEGENERATE"] * 2  # the data show the failure
    assert list(rows[True]["start"][2:]) == ["parent"] * 2
    assert list(rows[True]["status"]) == ["CONVERGED"] * 4
    ll = rows[True]["total_log_likelihood"]
    np.testing.assert_array_equal(ll[2:], ll[1])
    assert np.all(np.diff(rows[True]["bic"][1:]) > 0)  # more parameters, the same likelihood
