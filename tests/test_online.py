"""Online (stepwise) EM: jgmm.online_init / online_step and GaussianMixture.partial_fit."""

import jax
import numpy as np
import pytest
from conftest import FAMILIES, blobs

import jgmm


def stream(seed=0, N=40_000):
    X, _, _ = blobs(seed=seed, N=N, D=4, K=4, spread=5.0)
    return X.astype(np.float32)


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_online_init_is_the_inverse_of_the_m_step(x64, covariance_type):
    X, _, _ = blobs(seed=1, N=200, D=3, K=3)
    params = jgmm.fit(jax.random.key(0), X, 3, covariance_type, max_iter=3).params
    state = jgmm.online_init(params)
    assert float(np.sum(state.stats.nk)) == pytest.approx(1.0, rel=1e-12)
    back = jgmm.params_from_stats(state.stats, covariance_type, reg_covar=0.0)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(params)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_a_step_moves_the_statistics_toward_the_batch(x64):
    X, _, _ = blobs(seed=2, N=300, D=2, K=2)
    params = jgmm.fit(jax.random.key(0), X, 2, max_iter=2).params
    state = jgmm.online_init(params)
    eta = 0.3
    after = jgmm.online_step(state, X, eta, reg_covar=0.0)
    log_resp, ll = jgmm.e_step(params, X)
    batch = jgmm.suff_stats(np.exp(log_resp), X, shift=state.stats.shift)
    for name in ("nk", "sx", "sxx"):
        expected = (1 - eta) * getattr(state.stats, name) + eta * getattr(batch, name) / len(X)
        np.testing.assert_allclose(getattr(after.stats, name), expected, rtol=1e-10, atol=1e-14)
    assert float(after.log_likelihood) == pytest.approx(float(ll), rel=1e-12)
    assert int(after.n_steps) == 1
    # With step size 1 the step is batch EM's M-step.
    full_step = jgmm.online_step(state, X, 1.0, reg_covar=1e-6).params
    for a, b in zip(jax.tree.leaves(full_step), jax.tree.leaves(jgmm.m_step(np.exp(log_resp), X))):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_one_pass_of_online_em_is_within_one_percent_of_batch_em(covariance_type):
    X = stream()
    batch = jgmm.fit(jax.random.key(0), X, 4, covariance_type, n_init=3)
    online = jgmm.GaussianMixture(4, covariance_type=covariance_type, random_state=0)
    for start in range(0, len(X), 1000):  # one pass, 40 mini-batches
        online.partial_fit(X[start : start + 1000])
    assert online.n_iter_ == 40 and len(online.lower_bounds_) == 40
    average = online.score(X)
    assert abs(average - float(batch.log_likelihood)) < 0.01 * abs(float(batch.log_likelihood))


def test_partial_fit_continues_a_fit_and_keeps_the_dtype():
    X = stream(seed=1, N=4000).astype(np.float64)
    model = jgmm.GaussianMixture(4, random_state=0).fit(X)
    means = model.means_.copy()
    model.partial_fit(X[:500])
    assert model.n_iter_ == 1 and model.means_.dtype == np.float64
    assert np.max(np.abs(model.means_ - means)) < 0.5  # a small step from the fitted model
    with pytest.raises(ValueError, match="X has 3 features, but GaussianMixture is expecting 4 features"):
        model.partial_fit(X[:10, :3])
    fresh = jgmm.GaussianMixture(5)
    with pytest.raises(ValueError, match="needs n_samples >= n_components"):
        fresh.partial_fit(X[:3])


def test_online_step_checks_its_input():
    X, _, _ = blobs(seed=3, N=100, D=2, K=2)
    state = jgmm.online_init(jgmm.fit(jax.random.key(0), X, 2, max_iter=2).params)
    with pytest.raises(ValueError, match="X has 3 features, but the online state is expecting 2"):
        jgmm.online_step(state, np.ones((5, 3)))
    with pytest.raises(ValueError, match=r"step_size must be in \(0, 1\]"):
        jgmm.online_step(state, X, 1.5)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        jgmm.online_step(state, np.full((5, 2), np.nan))
