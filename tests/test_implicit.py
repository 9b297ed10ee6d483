"""Derivatives of fit by implicit differentiation at EM's fixed point
(jgmm._engine.implicit), checked against finite differences of whole refits."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import FAMILIES, blobs

import jgmm

EPS = 1e-5  # central differences in float64: error ~ EPS² and 1e-13 / EPS


def data(N=150, seed=3):
    X, _, _ = blobs(seed=seed, N=N, D=2, K=2)
    return jnp.asarray(X)


def fitted(X, covariance_type="full", **kwargs):
    return jgmm.fit(jax.random.key(0), X, 2, covariance_type, tol=1e-13, max_iter=3000, **kwargs)


def summary(params):
    """A scalar touching every parameter."""
    return jnp.sum(params.means**2) + jnp.sum(params.covariances) + params.weights[0]


def central_difference(f, x, index):
    step = jnp.zeros_like(x).at[index].set(EPS)
    return (f(x + step) - f(x - step)) / (2 * EPS)


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_gradient_with_respect_to_the_data_matches_refits(x64, covariance_type):
    X = data()
    loss = lambda X: summary(fitted(X, covariance_type).params)
    grad = jax.grad(loss)(X)
    for index in [(0, 0), (17, 1), (101, 0)]:
        assert float(grad[index]) == pytest.approx(float(central_difference(loss, X, index)), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize(
    "kwargs",
    [dict(missing="marginalize"), dict(prior="default"), dict(sample_weight=np.linspace(0.5, 2.0, 150))],
    ids=["missing", "prior", "weights"],
)
def test_gradient_with_missing_values_a_prior_or_weights_matches_refits(x64, kwargs):
    X = data()
    if "missing" in kwargs:
        X = X.at[::7, 0].set(jnp.nan)
    loss = lambda X: summary(fitted(X, **kwargs).params)
    grad = jax.grad(loss)(X)
    for index in [(1, 0), (18, 1)]:
        assert float(grad[index]) == pytest.approx(float(central_difference(loss, X, index)), rel=1e-6, abs=1e-9)


def test_gradient_with_respect_to_weights_and_reg_covar(x64):
    X = data()
    w = jnp.ones(150)
    loss = lambda w, reg: summary(fitted(X, sample_weight=w, reg_covar=reg).params)
    d_w, d_reg = jax.grad(loss, argnums=(0, 1))(w, 1e-3)
    assert float(d_w[5]) == pytest.approx(float(central_difference(lambda w: loss(w, 1e-3), w, 5)), rel=1e-6)
    numeric = (loss(w, 1e-3 + EPS) - loss(w, 1e-3 - EPS)) / (2 * EPS)
    assert float(d_reg) == pytest.approx(float(numeric), rel=1e-6)


def test_gradient_of_the_log_likelihood_matches_refits_and_the_envelope_theorem(x64):
    """At a maximum the likelihood is stationary in θ (on the simplex for the
    weights), so dL*/dX is ∂L/∂X with θ* held fixed, up to how far from the
    maximum EM stopped."""
    X = data()
    log_likelihood = lambda X: fitted(X).log_likelihood
    total = jax.grad(log_likelihood)(X)
    assert float(total[9, 1]) == pytest.approx(float(central_difference(log_likelihood, X, (9, 1))), rel=1e-6)
    params = fitted(X).params
    partial = jax.grad(lambda X: jgmm.e_step(params, X)[1])(X)
    np.testing.assert_allclose(total, partial, rtol=1e-4, atol=1e-9)


def test_forward_and_reverse_mode_agree_and_run_under_jit(x64):
    X = data()
    means = lambda X: fitted(X).params.means
    direction = jax.random.normal(jax.random.key(1), X.shape, X.dtype)
    forward = jax.jvp(means, (X,), (direction,))[1]
    cotangent = jnp.arange(4.0).reshape(2, 2)
    reverse = jax.vjp(means, X)[1](cotangent)[0]
    assert float(jnp.vdot(forward, cotangent)) == pytest.approx(float(jnp.vdot(direction, reverse)), rel=1e-9)
    jitted = jax.jit(jax.grad(lambda X: jnp.vdot(means(X), cotangent)))(X)
    np.testing.assert_allclose(jitted, reverse, rtol=1e-9, atol=1e-12)


def test_gradient_through_fit_gradient_matches_refits(x64):
    """fit_gradient's maximum is a fixed point of unregularised EM, so it
    takes the same implicit derivative."""
    X = data()
    lbfgs = optax.lbfgs()
    fit = lambda X: jgmm.fit_gradient(jax.random.key(0), X, 2, optimizer=lbfgs, max_iter=500, tol=1e-15)
    loss = lambda X: summary(fit(X).params)
    grad = jax.grad(loss)(X)
    for index in [(0, 0), (17, 1)]:
        assert float(grad[index]) == pytest.approx(float(central_difference(loss, X, index)), rel=1e-5, abs=1e-9)


def test_float32_gradient_is_close_to_float64():
    X = np.asarray(data(), np.float32)
    loss = lambda X: summary(jgmm.fit(jax.random.key(0), X, 2, tol=1e-7, max_iter=1000).params)
    grad32 = jax.grad(loss)(jnp.asarray(X))
    with jax.enable_x64(True):
        grad64 = jax.grad(loss)(jnp.asarray(X, jnp.float64))
    assert grad32.dtype == jnp.float32
    np.testing.assert_allclose(grad32, grad64, rtol=1e-3, atol=1e-4 * float(np.max(np.abs(grad64))))
