"""Differentiable and batched over data sets: gradients through log_prob and
e_step, fit under vmap, and jgmm.bootstrap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import blobs

import jgmm


def two_clusters(N=2000, seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(-4, 1, (N // 2, 2)), rng.normal(4, 1, (N // 2, 2))])


def test_gradient_of_log_prob_with_respect_to_the_data(x64):
    X, _, _ = blobs(seed=6, N=50, D=3, K=2)
    params = jgmm.fit(jax.random.key(0), X, 2, max_iter=5).params
    grad = jax.grad(lambda X: jnp.sum(jgmm.log_prob(params, X)))(jnp.asarray(X))
    # d/dx log p(x) = Σ_k γ_k(x) Λ_k (μ_k - x)
    resp = np.asarray(jgmm.predict_proba(params, X))
    Lam = np.asarray(params.precisions)
    expected = np.einsum("nk,kde,nke->nd", resp, Lam, np.asarray(params.means)[None] - X[:, None])
    np.testing.assert_allclose(grad, expected, rtol=1e-9, atol=1e-12)


def test_gradient_of_the_e_step_with_respect_to_parameters(x64):
    X, _, _ = blobs(seed=7, N=40, D=2, K=2)
    params = jgmm.fit(jax.random.key(0), X, 2, max_iter=5).params
    f = lambda means: jgmm.e_step(jgmm.GMMParams(params.weights, means, params.prec_chol, params.covariance_type), X)[1]
    grad = jax.grad(f)(params.means)
    eps = 1e-6
    for k in range(2):
        for d in range(2):
            step = np.zeros((2, 2))
            step[k, d] = eps
            numeric = (f(params.means + step) - f(params.means - step)) / (2 * eps)
            assert float(grad[k, d]) == pytest.approx(float(numeric), rel=1e-6, abs=1e-9)


def test_fit_runs_under_vmap_over_data_sets(x64):
    data = np.stack([blobs(seed=s, N=120, D=2, K=2)[0] for s in range(3)])
    batched = jax.vmap(lambda X: jgmm.fit(jax.random.key(0), X, 2, init="random"))(data)
    for i, X in enumerate(data):
        single = jgmm.fit(jax.random.key(0), X, 2, init="random")
        assert int(batched.n_iter[i]) == int(single.n_iter)
        for a, b in zip(jax.tree.leaves(batched.params), jax.tree.leaves(single.params)):
            np.testing.assert_allclose(a[i], b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("method", ["nonparametric", "weighted"])
def test_bootstrap_standard_errors_of_the_means_match_theory(method):
    X = two_clusters().astype(np.float32)
    params = jgmm.fit(jax.random.key(0), X, 2, "spherical").params
    boot = jgmm.bootstrap(jax.random.key(1), X, params, n_boot=100, method=method)
    assert boot.replicates.means.shape == (100, 2, 2)
    assert np.all(np.isin(np.asarray(boot.status), [jgmm.Status.CONVERGED, jgmm.Status.MAX_ITER]))
    # SE(μ_k) = σ / sqrt(N π_k) = 1 / sqrt(1000) per coordinate; components stay aligned.
    np.testing.assert_allclose(boot.se["means"], 1 / np.sqrt(1000), rtol=0.3)
    np.testing.assert_allclose(boot.se["weights"], np.sqrt(0.25 / 2000), rtol=0.3)
    means = np.asarray(params.means)
    assert np.all((boot.lower["means"] < means) & (means < boot.upper["means"]))
    assert boot.se["covariances"].shape == (2,)


def test_bootstrap_checks_its_arguments():
    X = two_clusters(200)
    params = jgmm.fit(jax.random.key(0), X, 2).params
    with pytest.raises(ValueError, match="'method' parameter must be a str among"):
        jgmm.bootstrap(jax.random.key(0), X, params, method="jackknife")
    with pytest.raises(ValueError, match="n_boot"):
        jgmm.bootstrap(jax.random.key(0), X, params, n_boot=1)
    with pytest.raises(ValueError, match="level must be in"):
        jgmm.bootstrap(jax.random.key(0), X, params, level=1.5)
