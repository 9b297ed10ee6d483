"""Gradient fitting with optax (jgmm.fit_gradient) against EM."""

import jax
import numpy as np
import optax
import pytest
from conftest import FAMILIES, blobs

import jgmm
from jgmm._drivers.gradient import from_unconstrained, to_unconstrained


def overlapping():
    X, _, _ = blobs(seed=8, N=1500, D=2, K=3, spread=3.0)
    return X


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_unconstrained_parameters_map_back(x64, covariance_type):
    params = jgmm.fit(jax.random.key(0), overlapping(), 3, covariance_type, max_iter=2).params
    back = from_unconstrained(to_unconstrained(params), covariance_type)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(params)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_adam_reaches_the_em_optimum_from_ems_start(x64, covariance_type):
    X = overlapping()
    start = jgmm.fit(jax.random.key(0), X, 3, covariance_type, max_iter=1).params
    em = jgmm.fit(jax.random.key(0), X, 3, covariance_type, init=start, tol=1e-10, max_iter=1000)
    adam = jgmm.fit_gradient(jax.random.key(0), X, 3, covariance_type, init=start, max_iter=3000)
    assert isinstance(adam, jgmm.FitResult) and isinstance(adam.params, jgmm.GMMParams)
    assert int(adam.n_iter) == 3000 and adam.status == jgmm.Status.MAX_ITER
    assert float(adam.log_likelihood) == pytest.approx(float(em.log_likelihood), rel=1e-4)
    assert float(adam.log_likelihood) == pytest.approx(float(np.mean(jgmm.log_prob(adam.params, X))), rel=1e-12)


def test_lbfgs_reaches_the_em_optimum_and_stops_at_tol(x64):
    X = overlapping()
    start = jgmm.fit(jax.random.key(0), X, 3, init="kmeans", max_iter=1).params
    em = jgmm.fit(jax.random.key(0), X, 3, init=start, tol=1e-10, max_iter=1000)
    lbfgs = jgmm.fit_gradient(jax.random.key(0), X, 3, init=start, optimizer=optax.lbfgs(), max_iter=500, tol=1e-10)
    assert lbfgs.status == jgmm.Status.CONVERGED and int(lbfgs.n_iter) < 500
    assert float(lbfgs.log_likelihood) == pytest.approx(float(em.log_likelihood), rel=1e-6)
    history = np.asarray(lbfgs.history)[: int(lbfgs.n_iter)]
    assert np.all(np.isfinite(history)) and np.all(np.isnan(np.asarray(lbfgs.history)[int(lbfgs.n_iter) :]))


def test_restarts_are_vmapped_and_the_best_is_returned():
    X = overlapping().astype(np.float32)
    best = jgmm.fit_gradient(jax.random.key(0), X, 3, init="random", n_init=3, max_iter=300)
    key = jax.random.key(0)  # restart i > 0 uses fold_in(key, i)
    keys = [key] + [jax.random.fold_in(key, i) for i in (1, 2)]
    singles = [jgmm.fit_gradient(k, X, 3, init="random", max_iter=300) for k in keys]
    assert float(best.log_likelihood) == pytest.approx(max(float(s.log_likelihood) for s in singles), rel=1e-5)


def test_the_old_name_steps_still_works_with_a_warning():
    X = overlapping().astype(np.float32)
    with pytest.warns(DeprecationWarning, match="max_iter"):
        old = jgmm.fit_gradient(jax.random.key(0), X, 3, steps=20)
    new = jgmm.fit_gradient(jax.random.key(0), X, 3, max_iter=20)
    assert int(old.n_iter) == 20
    np.testing.assert_array_equal(old.history, new.history)
