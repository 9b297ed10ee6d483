"""Degenerate data: finite parameters or a clear error, never NaN."""

import jax
import numpy as np
import pytest
from conftest import COLLAPSING, FAMILIES, clump_start

import jgmm

RNG = np.random.default_rng(0)
CASES = {
    "all points identical": (np.ones((50, 3)), 3),
    "a constant feature": (np.c_[RNG.normal(size=(100, 2)), np.full(100, 5.0)], 3),
    "20 points each 10 times, K=15": (np.repeat(RNG.normal(size=(20, 2)), 10, axis=0), 15),
    "more features than samples": (RNG.normal(size=(10, 20)), 3),
    "float32 at 1e6 with scale 1e-3": ((1e6 + 1e-3 * RNG.normal(size=(200, 2))).astype(np.float32), 3),
    "as many components as samples": (RNG.normal(size=(6, 2)), 6),
}


@pytest.mark.parametrize("covariance_type", FAMILIES)
@pytest.mark.parametrize("case", list(CASES))
def test_degenerate_data_gives_finite_parameters(case, covariance_type):
    X, K = CASES[case]
    result = jgmm.fit(jax.random.key(0), X, K, covariance_type)
    for leaf in jax.tree.leaves(result.params):
        assert np.all(np.isfinite(np.asarray(leaf))), case
    assert np.isfinite(float(result.log_likelihood))
    assert np.all(np.isfinite(np.asarray(jgmm.predict_proba(result.params, X))))


def test_float32_tiny_scale_far_from_origin_is_still_fitted_accurately():
    # float32 spacing at 1e6 is 0.06, so 1e-3 noise leaves a few distinct values.
    X, _ = CASES["float32 at 1e6 with scale 1e-3"]
    result = jgmm.fit(jax.random.key(0), X, 1, "diag")
    expected = X.astype(np.float64).var(axis=0) + 1e-6
    np.testing.assert_allclose(np.asarray(result.params.covariances)[0], expected, rtol=1e-3)
    np.testing.assert_allclose(np.asarray(result.params.means)[0], X.astype(np.float64).mean(axis=0), rtol=1e-7)


def test_outlier_too_far_for_float32_is_a_clear_error():
    X = np.r_[RNG.normal(size=(99, 2)), [[1e30, 1e30]]]
    with pytest.raises(ValueError, match="X spans 1e\\+30 along a feature, too wide for float32"):
        jgmm.fit(jax.random.key(0), X, 3)


def test_same_key_gives_bit_identical_results():
    X = RNG.normal(size=(300, 3))
    first = jgmm.fit(jax.random.key(7), X, 4, n_init=3)
    second = jgmm.fit(jax.random.key(7), X, 4, n_init=3)
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(second)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    selection = [jgmm.select(jax.random.key(7), X, range(1, 4), ("diag",)) for _ in range(2)]
    np.testing.assert_array_equal(selection[0].to_dict()["bic"], selection[1].to_dict()["bic"])


def test_invalid_starting_values_are_refused():
    X = RNG.normal(size=(40, 2))
    good = jgmm.fit(jax.random.key(0), X, 2, "full", max_iter=1).params
    not_pd = jgmm.GMMParams(good.weights, good.means, good.prec_chol.at[0, 0, 0].set(-1.0), "full")
    with pytest.raises(ValueError, match="not triangular with a positive diagonal"):
        jgmm.fit(jax.random.key(0), X, 2, "full", init=not_pd)
    off_simplex = jgmm.GMMParams(good.weights * 3, good.means, good.prec_chol, "full")
    with pytest.raises(ValueError, match="params.weights must be non-negative and sum to 1"):
        jgmm.fit(jax.random.key(0), X, 2, "full", init=off_simplex)
    nan_means = jgmm.GMMParams(good.weights, good.means.at[0, 0].set(np.nan), good.prec_chol, "full")
    with pytest.raises(ValueError, match="params.means contains NaN"):
        jgmm.fit(jax.random.key(0), X, 2, "full", init=nan_means)


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_outlier_1e30_away_in_float64_gives_finite_parameters(covariance_type):
    X = np.r_[RNG.normal(size=(99, 2)), [[1e30, 1e30]]]
    with jax.enable_x64(True):
        result = jgmm.fit(jax.random.key(0), X, 3, covariance_type, n_init=2)
        for leaf in jax.tree.leaves(result.params):
            assert np.all(np.isfinite(np.asarray(leaf)))


@pytest.mark.parametrize("covariance_type", COLLAPSING)
def test_a_collapsed_component_is_frozen_with_weight_zero(x64, covariance_type):
    X, start = clump_start(covariance_type)
    result = jgmm.fit(jax.random.key(0), X, 3, covariance_type, init=start)
    assert result.status == jgmm.Status.DEGENERATE and int(result.n_iter) == 1
    weights = np.asarray(result.params.weights)
    assert weights[2] == 0.0 and weights[:2].sum() == pytest.approx(1.0, rel=1e-12)
    for leaf in jax.tree.leaves(result.params):
        assert np.all(np.isfinite(np.asarray(leaf)))
    # The log-likelihood reported is that of the frozen mixture returned.
    assert float(result.log_likelihood) == pytest.approx(float(np.mean(jgmm.log_prob(result.params, X))), rel=1e-12)


@pytest.mark.parametrize("covariance_type", COLLAPSING)
def test_float32_collapse_far_from_the_centre_is_found_through_rounding(covariance_type):
    # 12 copies of one point about 30 units from the data's centre along both
    # axes: float32 leaves their variance at 6e-5 to 2e-4 (rounding of
    # sxx/N_k - d dᵀ), above 10·reg_covar, so only a floor that allows for
    # rounding sees the collapse.
    rng = np.random.default_rng(5)
    X = np.concatenate([rng.normal(0, 1, (100, 2)), rng.normal(8, 1, (100, 2)), np.tile([[30.0, -30.0]], (12, 1))])
    X = X.astype(np.float32)
    start = jgmm.m_step(np.eye(3, dtype=np.float32)[np.repeat([0, 1, 2], [100, 100, 12])], X, covariance_type)
    result = jgmm.fit(jax.random.key(0), X, 3, covariance_type, init=start)
    assert result.status == jgmm.Status.DEGENERATE and int(result.n_iter) == 1
    np.testing.assert_array_equal(np.asarray(result.params.weights)[2], 0.0)


@pytest.mark.parametrize("covariance_type", COLLAPSING)
def test_reseed_restarts_a_collapsed_component_at_the_worst_explained_sample(x64, covariance_type):
    X, start = clump_start(covariance_type)
    result = jgmm.fit(jax.random.key(0), X, 3, covariance_type, init=start, max_iter=1, on_collapse="reseed")
    assert result.status == jgmm.Status.MAX_ITER
    log_resp, _ = jgmm.e_step(start, X)
    stepped = jgmm.m_step(np.exp(log_resp), X, covariance_type)
    whole = jgmm.m_step(np.ones((len(X), 1)), X, covariance_type)  # one component: the data's covariance
    params = result.params
    np.testing.assert_allclose(params.means[:2], stepped.means[:2], rtol=1e-10)
    np.testing.assert_allclose(params.means[2], X[np.argmin(jgmm.log_prob(start, X))], rtol=1e-10)
    np.testing.assert_allclose(params.prec_chol[2], whole.prec_chol[0], rtol=1e-10)
    weights = np.r_[np.asarray(stepped.weights[:2]), 1 / 3]
    np.testing.assert_allclose(params.weights, weights / weights.sum(), rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COLLAPSING)
def test_reseeded_fits_go_on_and_stay_finite(covariance_type):
    X, start = clump_start(covariance_type)
    frozen = jgmm.fit(jax.random.key(0), X, 3, covariance_type, init=start)
    reseeded = jgmm.fit(jax.random.key(0), X, 3, covariance_type, init=start, on_collapse="reseed")
    assert int(reseeded.n_iter) > int(frozen.n_iter) == 1
    for leaf in jax.tree.leaves(reseeded.params):
        assert np.all(np.isfinite(np.asarray(leaf)))
    selection = jgmm.select(jax.random.key(0), X, range(1, 4), (covariance_type,), n_init=2, on_collapse="reseed")
    assert np.all(np.isfinite(selection.to_dict()["total_log_likelihood"]))


@pytest.mark.parametrize("covariance_type", COLLAPSING)
def test_keep_lets_a_collapsed_component_go_on_unless_it_is_singular(x64, covariance_type):
    """on_collapse="keep" (scikit-learn's rule): the component on the copies
    stays at the reg_covar floor and EM goes on; with reg_covar = 0 its
    covariance is zero to rounding: the fit fails (DEGENERATE, or NONFINITE
    where its precision overflows first), as scikit-learn's Cholesky does."""
    X, start = clump_start(covariance_type)
    kept = jgmm.fit(jax.random.key(0), X, 3, covariance_type, init=start, on_collapse="keep")
    assert kept.status == jgmm.Status.CONVERGED
    assert float(kept.params.weights[2]) == pytest.approx(12 / len(X), rel=1e-6)
    variances = np.ravel(np.asarray(kept.params.covariances)[2])
    np.testing.assert_allclose(variances[variances > 1e-9], 1e-6, rtol=1e-6)  # the reg_covar floor
    singular = jgmm.fit(jax.random.key(0), X, 3, covariance_type, init=start, on_collapse="keep", reg_covar=0.0)
    assert int(singular.status) in (jgmm.Status.DEGENERATE, jgmm.Status.NONFINITE)
