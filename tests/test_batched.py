"""Differentiable and batched over data sets: gradients through log_prob and
e_step, fit under vmap, and jgmm.bootstrap."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
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


@pytest.mark.parametrize(
    "kwargs", [dict(), dict(prior="default"), dict(missing="marginalize", n_init=2)], ids=["ml", "prior", "missing"]
)
def test_fit_runs_inside_a_callers_jit(x64, kwargs):
    """A fit traced into the caller's program (data, weights and tol traced)
    is the fit called on its own."""
    X, _, _ = blobs(seed=3, N=150, D=2, K=2)
    w = np.random.default_rng(0).uniform(0.5, 2.0, 150)
    run = lambda X, w, tol: jgmm.fit(jax.random.key(0), X, 2, "full", sample_weight=w, tol=tol, **kwargs)
    inside, alone = jax.jit(run)(X, w, 1e-3), run(X, w, 1e-3)
    assert int(inside.n_iter) == int(alone.n_iter)
    for a, b in zip(jax.tree.leaves(inside.params), jax.tree.leaves(alone.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_fit_inside_a_callers_jit_checks_data_it_closes_over():
    """Concrete data captured by the caller's jit are still checked (on their
    values, before tracing), and the fit is the one called on its own."""
    X, _, _ = blobs(seed=6, N=150, D=2, K=2)
    X = jnp.asarray(X, jnp.float32).at[::9, 0].set(jnp.nan)
    w = jnp.linspace(0.5, 2.0, 150)
    run = lambda tol: jgmm.fit(jax.random.key(0), X, 2, tol=tol, sample_weight=w, missing="marginalize", prior="default")
    inside, alone = jax.jit(run)(1e-3), run(1e-3)
    np.testing.assert_allclose(inside.params.means, alone.params.means, rtol=1e-5)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        jax.jit(lambda tol: jgmm.fit(jax.random.key(0), X, 2, tol=tol))(1e-3)
    negative = -w
    with pytest.raises(ValueError, match="Negative values in sample_weight"):
        jax.jit(lambda tol: jgmm.fit(jax.random.key(0), X, 2, tol=tol, sample_weight=negative, missing="marginalize"))(1e-3)


def test_fit_gradient_runs_inside_a_callers_jit(x64):
    X, _, _ = blobs(seed=4, N=100, D=2, K=2)
    # Plain gradient steps: Adam would turn rounding in a near-zero gradient
    # component into a full-size step, and the two compilations round apart.
    sgd = optax.sgd(1e-2)
    run = lambda X: jgmm.fit_gradient(jax.random.key(0), X, 2, optimizer=sgd, max_iter=20).log_likelihood
    np.testing.assert_allclose(jax.jit(run)(X), run(X), rtol=1e-9)


@pytest.mark.parametrize(
    "call",
    [
        lambda X: jgmm.select(jax.random.key(0), X, range(1, 3), ("diag",)),
        lambda X: jgmm.bootstrap(jax.random.key(0), X, jgmm.GMMParams(jnp.ones(1), jnp.zeros((1, 2)), jnp.ones(1), "spherical"), 2),
        lambda X: jgmm.fit_stream(jax.random.key(0), X, 2),
    ],
    ids=["select", "bootstrap", "fit_stream"],
)
def test_host_side_functions_refuse_to_be_traced(call):
    X, _, _ = blobs(seed=5, N=60, D=2, K=2)
    with pytest.raises(TypeError, match="works on the host and cannot run under jax.jit, vmap or grad"):
        jax.jit(call)(X)


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


def test_bootstrap_refits_as_the_reference_was_fitted(x64):
    # A MAP fit is bootstrapped by MAP refits: a prior that pins the means at
    # the origin keeps every replicate's means there, where maximum-likelihood
    # refits would follow the data.
    X = two_clusters(200)
    D = X.shape[1]
    pinned = jgmm.Prior(1.0, np.zeros(D), 1e6, D + 2.0, np.eye(D))
    params = jgmm.fit(jax.random.key(0), X, 2, prior=pinned).params
    boot = jgmm.bootstrap(jax.random.key(1), X, params, n_boot=4, prior=pinned)
    assert np.abs(np.asarray(boot.replicates.means)).max() < 0.05
    missing = X.copy()
    missing[::7, 0] = np.nan
    params = jgmm.fit(jax.random.key(0), missing, 2, missing="marginalize").params
    boot = jgmm.bootstrap(jax.random.key(1), missing, params, n_boot=4, missing="marginalize")
    assert np.all(np.isfinite(np.asarray(boot.replicates.means)))
    with pytest.raises(ValueError, match="on_collapse"):
        jgmm.bootstrap(jax.random.key(1), X, params, n_boot=2, on_collapse="explode")
