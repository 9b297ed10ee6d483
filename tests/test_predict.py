"""Scoring and sampling from a fitted mixture."""

import dataclasses

import jax
import numpy as np
import pytest
from conftest import FAMILIES, blobs, full_covariances
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

import jgmm


def fitted(covariance_type, seed=0):
    X, _, _ = blobs(seed, N=300, D=2, K=3, spread=5.0)
    return X, jgmm.fit(jax.random.key(seed), X, 3, covariance_type, n_init=2).params


def test_log_prob_is_the_mixture_density(x64):
    X, params = fitted("full")
    components = [
        np.log(params.weights[k]) + multivariate_normal(params.means[k], params.covariances[k]).logpdf(X)
        for k in range(3)
    ]
    np.testing.assert_allclose(jgmm.log_prob(params, X), logsumexp(np.stack(components, 1), axis=1), rtol=1e-10)


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_predict_proba_rows_sum_to_one_and_predict_is_argmax(covariance_type):
    X, params = fitted(covariance_type)
    proba = np.asarray(jgmm.predict_proba(params, X))
    assert proba.shape == (300, 3)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(jgmm.predict(params, X), proba.argmax(1))


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_sample_moments_match_the_parameters(covariance_type):
    _, params = fitted(covariance_type, seed=1)
    n = 200_000
    X, labels = jgmm.sample(jax.random.key(5), params, n)
    X, labels = np.asarray(X), np.asarray(labels)
    assert X.shape == (n, 2) and labels.shape == (n,)
    np.testing.assert_allclose(np.bincount(labels, minlength=3) / n, params.weights, atol=5e-3)
    covs = np.asarray(full_covariances(params.covariances, covariance_type, 3, 2))
    for k in range(3):
        Xk, cov_k = X[labels == k], covs[k]
        scale = np.sqrt(np.diag(cov_k))
        np.testing.assert_allclose(Xk.mean(0), params.means[k], atol=5 * scale.max() / np.sqrt(len(Xk)))
        np.testing.assert_allclose(np.cov(Xk.T), cov_k, atol=0.03 * np.abs(cov_k).max())


def test_scoring_checks_the_number_of_features():
    X, params = fitted("diag")
    with pytest.raises(ValueError, match="X has 3 features, but the mixture is expecting 2 features"):
        jgmm.predict(params, np.ones((4, 3)))
    with pytest.raises(ValueError, match="contains NaN"):
        jgmm.log_prob(params, np.full((4, 2), np.nan))


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(weights=np.full(3, 0.6, np.float32)), "params.weights must be non-negative and sum to 1"),
        (dict(prec_chol=-np.ones((3, 2), np.float32)), "params.prec_chol has entries <= 0"),
        (dict(means=np.full((3, 2), np.nan, np.float32)), "params.means contains NaN"),
    ],
)
def test_invalid_parameter_values_are_refused_not_scored(change, message):
    """Hand-made parameters off the simplex or with a negative precision
    factor would give a wrong density or NaN: refused instead."""
    X, params = fitted("diag")
    bad = dataclasses.replace(params, **change)
    for score in (jgmm.log_prob, jgmm.predict, jgmm.predict_proba, jgmm.bic):
        with pytest.raises(ValueError, match=message):
            score(bad, X)
    with pytest.raises(ValueError, match=message):
        jgmm.sample(jax.random.key(0), bad, 3)
