"""The variational updates and lower bound (jgmm._maths.variational) against
scikit-learn's BayesianGaussianMixture, run side by side in float64."""

import functools
import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import logsumexp
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture

import jgmm
from jgmm._maths.em import stats_about
from jgmm._maths.variational import (
    PRIOR_TYPES,
    default_prior,
    lower_bound,
    variational_log_prob,
    variational_m_step,
)

K, REG = 4, 1e-6


@functools.partial(jax.jit, static_argnames=("covariance_type", "prior_type"))
def _iteration(resp, X, w, prior, *, covariance_type, prior_type):
    """The M-step from resp (samples weighted by w), then the E-step: the new
    params, their log responsibilities and lower bound."""
    stats = stats_about(resp * w[:, None], X, jnp.mean(X, 0), covariance_type)
    params = variational_m_step(stats, prior, covariance_type, REG, prior_type)
    weighted = variational_log_prob(params, X)
    log_resp = weighted - logsumexp(weighted, axis=1, keepdims=True)
    return params, log_resp, lower_bound(params, -w @ jnp.sum(jnp.exp(log_resp) * log_resp, axis=1))


def _data():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(c, s, (70, 3)) for c, s in ((0, 1.0), (5, 0.5), (-4, 2.0))])
    X[:, 1] *= 10  # features of different scales
    return X, rng.dirichlet(np.ones(K), X.shape[0])


@pytest.mark.parametrize("prior_type", PRIOR_TYPES)
@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_updates_and_lower_bound_equal_scikit_learns(covariance_type, prior_type):
    X, resp = _data()
    theirs = BayesianGaussianMixture(
        n_components=K, covariance_type=covariance_type, weight_concentration_prior_type=prior_type, reg_covar=REG
    )
    theirs._check_parameters(X)
    theirs._initialize(X, resp)
    with jax.enable_x64(True):
        prior = default_prior(jnp.asarray(X), jnp.ones(X.shape[0]), K, covariance_type)
        for name, value in zip(prior._fields, prior):
            np.testing.assert_allclose(value, getattr(theirs, f"{name}_prior_"), rtol=1e-12, err_msg=name)
        for _ in range(4):
            params, log_resp, bound = _iteration(
                jnp.asarray(resp), jnp.asarray(X), jnp.ones(X.shape[0]), prior,
                covariance_type=covariance_type, prior_type=prior_type,
            )
            for name in ("weight_concentration", "mean_precision", "means", "degrees_of_freedom", "covariances"):
                np.testing.assert_allclose(getattr(params, name), getattr(theirs, f"{name}_"), rtol=1e-8, err_msg=name)
            np.testing.assert_allclose(params.prec_chol, theirs.precisions_cholesky_, rtol=1e-8)
            log_prob_norm, their_log_resp = theirs._e_step(X)
            np.testing.assert_allclose(log_resp, their_log_resp, rtol=1e-8, atol=1e-8)
            np.testing.assert_allclose(bound, theirs._compute_lower_bound(their_log_resp, log_prob_norm), rtol=1e-10)
            theirs._m_step(X, their_log_resp)
            resp = np.exp(np.asarray(log_resp))


@pytest.mark.parametrize("covariance_type", ["full", "spherical"])
def test_a_sample_of_weight_two_is_that_sample_twice(covariance_type):
    X, resp = _data()
    w = np.ones(X.shape[0])
    w[:20] = 2
    twice = np.concatenate([X[:20], X]), np.concatenate([resp[:20], resp])
    with jax.enable_x64(True):
        fits = []
        for X_, resp_, w_ in ((X, resp, w), (*twice, np.ones(twice[0].shape[0]))):
            prior = default_prior(jnp.asarray(X_), jnp.asarray(w_), K, covariance_type)
            fits.append((prior, *_iteration(jnp.asarray(resp_), jnp.asarray(X_), jnp.asarray(w_), prior,
                                            covariance_type=covariance_type, prior_type="dirichlet_process")))
        (prior, params, _, bound), (prior_twice, params_twice, _, bound_twice) = fits
        for a, b in zip(jax.tree.leaves((prior, params, bound)), jax.tree.leaves((prior_twice, params_twice, bound_twice))):
            np.testing.assert_allclose(a, b, rtol=1e-10)


def test_float32_follows_float64():
    X, resp = _data()
    bounds = []
    for x64 in (False, True):
        with jax.enable_x64(x64):
            dtype = jnp.float64 if x64 else jnp.float32
            Xj, rj, w = jnp.asarray(X, dtype), jnp.asarray(resp, dtype), jnp.ones(X.shape[0], dtype)
            prior = default_prior(Xj, w, K, "full")
            params, log_resp, bound = _iteration(rj, Xj, w, prior, covariance_type="full", prior_type="dirichlet_process")
            assert bound.dtype == dtype and params.means.dtype == dtype
            bounds.append(float(bound))
    np.testing.assert_allclose(bounds[0], bounds[1], rtol=1e-5)


def _their_start(theirs, X, resp):
    """Make scikit-learn's estimator start from these responsibilities (its
    own ``_initialize``), and return that start as VariationalParams."""
    theirs._initialize_parameters = lambda X_, random_state, xp=None: theirs._initialize(X_, resp)
    theirs._check_parameters(X)
    theirs._initialize(X, resp)
    concentration = np.asarray(theirs.weight_concentration_)
    return jgmm.VariationalParams(concentration, theirs.mean_precision_, theirs.means_, theirs.degrees_of_freedom_,
                                  theirs.precisions_cholesky_, theirs.covariance_type)


@pytest.mark.parametrize("covariance_type, prior_type", [
    ("full", "dirichlet_process"), ("tied", "dirichlet_distribution"),
    ("diag", "dirichlet_process"), ("spherical", "dirichlet_distribution"),
])
def test_fit_variational_follows_scikit_learn_from_the_same_start(covariance_type, prior_type):
    X, resp = _data()
    settings = dict(covariance_type=covariance_type, weight_concentration_prior_type=prior_type, reg_covar=REG,
                    max_iter=30, tol=1e-6)
    theirs = BayesianGaussianMixture(n_components=K, **settings)
    start = _their_start(theirs, X, resp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs.fit(X)
    with jax.enable_x64(True):
        ours = jgmm.fit_variational(jax.random.key(0), X, K, init=start, **settings)
        covariances = np.asarray(ours.params.covariances)
    assert ours.params.means.dtype == np.float64
    assert int(ours.n_iter) == theirs.n_iter_ and bool(ours.converged) == theirs.converged_
    np.testing.assert_allclose(ours.lower_bound, theirs.lower_bound_, rtol=1e-9)
    np.testing.assert_allclose(ours.history[: theirs.n_iter_], np.ravel(theirs.lower_bounds_), rtol=1e-9)  # tied: (n, 1)
    for name in ("weight_concentration", "mean_precision", "means", "degrees_of_freedom"):
        np.testing.assert_allclose(getattr(ours.params, name), getattr(theirs, f"{name}_"), rtol=1e-7, err_msg=name)
    np.testing.assert_allclose(covariances, theirs.covariances_, rtol=1e-7)


def test_fit_variational_restarts_and_statuses():
    X, _ = _data()
    one = jgmm.fit_variational(jax.random.key(1), X, K, n_init=1, max_iter=200)
    three = jgmm.fit_variational(jax.random.key(1), X, K, n_init=3, max_iter=200)
    assert one.params.means.dtype == np.float32 and three.restart_lower_bounds.shape == (3,)
    # Restart 0 is the n_init=1 fit (to rounding: a batch of three sums in another order).
    np.testing.assert_allclose(three.restart_lower_bounds[0], one.lower_bound, rtol=1e-6)
    assert float(three.lower_bound) == float(np.max(three.restart_lower_bounds))
    assert int(one.status) == jgmm.Status.CONVERGED and bool(one.converged)
    n = int(one.n_iter)
    assert np.all(np.isfinite(one.history[:n])) and np.all(np.isnan(one.history[n:]))
    assert np.all(np.diff(one.history[:n]) > -1e-2 * np.abs(one.history[1:n]))  # the bound does not fall (float32)
    short = jgmm.fit_variational(jax.random.key(1), X, K, max_iter=1)
    assert int(short.status) == jgmm.Status.MAX_ITER and int(short.n_iter) == 1


@pytest.mark.parametrize("kwargs, message", [
    (dict(weight_concentration_prior=0.0), "'weight_concentration_prior' parameter must be a float in the range (0.0, inf)"),
    (dict(degrees_of_freedom_prior=1.5), "The parameter 'degrees_of_freedom_prior' should be greater than 2, but got 1.500."),
    (dict(mean_prior=[0.0, 1.0]), "The parameter 'means' should have the shape of (3,), but got (2,)"),
    (dict(covariance_prior=-np.eye(3)), "'full precision' should be symmetric, positive-definite"),
    (dict(weight_concentration_prior_type="dirichlet"), "'weight_concentration_prior_type' parameter must be a str"),
    (dict(covariance_type="VEV"), "'covariance_type' parameter must be a str among"),
])
def test_fit_variational_rejects_bad_priors(kwargs, message):
    X, _ = _data()
    with pytest.raises(ValueError, match=re.escape(message)):
        jgmm.fit_variational(jax.random.key(0), X, K, **kwargs)
