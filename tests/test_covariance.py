"""The four families: densities against scipy, parameter counts, conversions."""

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import FAMILIES, full_covariances
from scipy.stats import multivariate_normal
from sklearn.mixture import GaussianMixture

import jgmm
from jgmm._maths.families import log_gaussian


def random_covariances(rng, covariance_type, K, D):
    if covariance_type in ("full", "tied"):
        A = rng.normal(size=(K, D, D))
        cov = A @ np.swapaxes(A, 1, 2) + 0.5 * np.eye(D)
        return cov if covariance_type == "full" else cov[0]
    if covariance_type == "diag":
        return rng.uniform(0.3, 3.0, size=(K, D))
    return rng.uniform(0.3, 3.0, size=K)


@pytest.mark.parametrize("centred", [False, True])
@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_log_gaussian_matches_scipy(x64, covariance_type, centred):
    # centred=True is the fit's path: data and means are used as given.
    rng = np.random.default_rng(0)
    K, D = 3, 4
    X, means = rng.normal(size=(50, D)), rng.normal(size=(K, D))
    cov = random_covariances(rng, covariance_type, K, D)
    prec_chol = jgmm.family(covariance_type).prec_chol_from_covariances(jnp.asarray(cov))
    ours = log_gaussian(jnp.asarray(X), jnp.asarray(means), prec_chol, covariance_type, centred)
    covs = np.asarray(full_covariances(jnp.asarray(cov), covariance_type, K, D))
    reference = np.stack([multivariate_normal(means[k], covs[k]).logpdf(X) for k in range(K)], axis=1)
    np.testing.assert_allclose(ours, reference, rtol=1e-10)


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_covariances_round_trip_through_prec_chol(x64, covariance_type):
    rng = np.random.default_rng(1)
    cov = jnp.asarray(random_covariances(rng, covariance_type, 3, 4))
    family = jgmm.family(covariance_type)
    np.testing.assert_allclose(family.covariances(family.prec_chol_from_covariances(cov)), cov, rtol=1e-10)


@pytest.mark.parametrize("covariance_type", FAMILIES)
@pytest.mark.parametrize("K,D", [(1, 1), (3, 2), (5, 7)])
def test_n_parameters_are_the_standard_counts(covariance_type, K, D):
    expected = {
        "full": K - 1 + K * D + K * D * (D + 1) // 2,
        "tied": K - 1 + K * D + D * (D + 1) // 2,
        "diag": K - 1 + 2 * K * D,
        "spherical": K - 1 + K * D + K,
    }[covariance_type]
    prec_chol = {"full": jnp.ones((K, D, D)), "tied": jnp.ones((D, D)), "diag": jnp.ones((K, D)), "spherical": jnp.ones(K)}
    params = jgmm.GMMParams(jnp.ones(K) / K, jnp.zeros((K, D)), prec_chol[covariance_type], covariance_type)
    assert jgmm.n_parameters(params) == expected


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_n_parameters_bic_and_aic_agree_with_scikit_learn(x64, covariance_type):
    rng = np.random.default_rng(2)
    X = np.concatenate([rng.normal(size=(100, 3)), rng.normal(size=(100, 3)) + 5])
    reference = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)
    params = jgmm.GMMParams(
        jnp.asarray(reference.weights_),
        jnp.asarray(reference.means_),
        jnp.asarray(reference.precisions_cholesky_),
        covariance_type,
    )
    assert jgmm.n_parameters(params) == reference._n_parameters()
    np.testing.assert_allclose(jgmm.bic(params, X), reference.bic(X), rtol=1e-10)
    np.testing.assert_allclose(jgmm.aic(params, X), reference.aic(X), rtol=1e-10)
