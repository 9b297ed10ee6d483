"""E- and M-step maths, checked numerically with autodiff and closed forms."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import FAMILIES, blobs, full_covariances
from scipy.stats import multivariate_normal

import jgmm


def log_normal(X, mean, cov):
    """log N(x | mean, cov) by slogdet and solve: independent of jgmm's form."""
    diff = X - mean
    maha = jnp.sum(diff * jnp.linalg.solve(cov, diff.T).T, axis=1)
    return -0.5 * (X.shape[1] * math.log(2 * math.pi) + jnp.linalg.slogdet(cov)[1] + maha)


def expected_complete_log_likelihood(weights, means, cov, covariance_type, X, resp, w):
    """Q(θ; γ) = Σ_n w_n Σ_k γ_nk [log π_k + log N(x_n | μ_k, Σ_k)]."""
    K, D = means.shape
    covs = full_covariances(cov, covariance_type, K, D)
    log_n = jax.vmap(lambda m, c: log_normal(X, m, c), out_axes=1)(means, covs)
    return jnp.sum(w[:, None] * resp * (jnp.log(weights) + log_n))


def random_problem(seed, N=120, D=3, K=3):
    rng = np.random.default_rng(seed)
    X, _, _ = blobs(seed, N=N, D=D, K=K)
    resp = rng.dirichlet(np.ones(K), size=N)
    w = rng.uniform(0.2, 2.0, size=N)
    return jnp.asarray(X), jnp.asarray(resp), jnp.asarray(w)


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_m_step_is_stationary_point_of_q(x64, covariance_type):
    X, resp, w = random_problem(1)
    params = jgmm.m_step(resp, X, covariance_type, reg_covar=0.0, sample_weight=w)
    q = lambda pi, mu, cov: expected_complete_log_likelihood(pi, mu, cov, covariance_type, X, resp, w)
    g_pi, g_mu, g_cov = jax.grad(q, argnums=(0, 1, 2))(params.weights, params.means, params.covariances)
    scale = float(jnp.sum(w))
    np.testing.assert_allclose(g_mu, 0.0, atol=1e-9 * scale)
    np.testing.assert_allclose(g_cov, 0.0, atol=1e-9 * scale)
    # ∂Q/∂π_k = N_k / π_k = λ, the Lagrange multiplier, equal to Σ_n w_n.
    np.testing.assert_allclose(g_pi, scale, rtol=1e-10)


def test_lagrange_multiplier_is_n_without_weights(x64):
    X, resp, _ = random_problem(2)
    params = jgmm.m_step(resp, X, "full", reg_covar=0.0)
    g_pi = jax.grad(
        lambda pi: expected_complete_log_likelihood(pi, params.means, params.covariances, "full", X, resp, jnp.ones(len(X)))
    )(params.weights)
    np.testing.assert_allclose(g_pi, X.shape[0], rtol=1e-10)


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_em_fixed_point_is_stationary_point_of_log_likelihood(x64, covariance_type):
    X, _, _ = blobs(3, N=200, D=2, K=2, spread=8.0)
    result = jgmm.fit(jax.random.key(0), X, 2, covariance_type, max_iter=300, tol=1e-15, reg_covar=0.0)
    assert int(result.status) in (jgmm.Status.CONVERGED, jgmm.Status.MAX_ITER)
    p = result.params
    X = jnp.asarray(X)

    def mean_log_likelihood(logits, means, cov):
        K, D = means.shape
        covs = full_covariances(cov, covariance_type, K, D)
        log_n = jax.vmap(lambda m, c: log_normal(X, m, c), out_axes=1)(means, covs)
        return jnp.mean(jax.scipy.special.logsumexp(jax.nn.log_softmax(logits) + log_n, axis=1))

    grads = jax.grad(mean_log_likelihood, argnums=(0, 1, 2))(jnp.log(p.weights), p.means, p.covariances)
    for g in grads:
        np.testing.assert_allclose(g, 0.0, atol=1e-7)


def test_e_step_matches_bayes_rule_with_scipy_densities(x64):
    X, _, _ = blobs(4, N=50, D=3, K=2)
    params = jgmm.m_step(random_problem(4, N=50, K=2)[1], jnp.asarray(X), "full")
    log_resp, ll = jgmm.e_step(params, jnp.asarray(X))
    joint = np.stack(
        [
            params.weights[k] * multivariate_normal(params.means[k], params.covariances[k]).pdf(X)
            for k in range(2)
        ],
        axis=1,
    )
    np.testing.assert_allclose(np.exp(log_resp), joint / joint.sum(1, keepdims=True), rtol=1e-9)
    np.testing.assert_allclose(ll, np.mean(np.log(joint.sum(1))), rtol=1e-12)


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_integer_sample_weight_equals_duplicated_rows(x64, covariance_type):
    X, resp, _ = random_problem(5, N=40)
    counts = np.random.default_rng(5).integers(0, 4, size=40)
    counts[0] = 1
    weighted = jgmm.m_step(resp, X, covariance_type, sample_weight=jnp.asarray(counts, float))
    rows = np.repeat(np.arange(40), counts)
    duplicated = jgmm.m_step(resp[rows], X[rows], covariance_type)
    for a, b in zip(jax.tree.leaves(weighted), jax.tree.leaves(duplicated)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    ll_w = jgmm.e_step(weighted, X, jnp.asarray(counts, float))[1]
    ll_d = jgmm.e_step(duplicated, X[rows])[1]
    np.testing.assert_allclose(ll_w, ll_d, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_suff_stats_add_up_over_chunks(x64, covariance_type):
    X, resp, w = random_problem(6, N=90)
    shift = jnp.asarray(np.random.default_rng(6).normal(size=3))
    chunks = [
        jgmm.suff_stats(resp[i : i + 30], X[i : i + 30], w[i : i + 30], covariance_type=covariance_type, shift=shift)
        for i in range(0, 90, 30)
    ]
    summed = jgmm.SuffStats(*(sum(c[i] for c in chunks) for i in range(3)), shift)
    whole = jgmm.m_step(resp, X, covariance_type, sample_weight=w)
    from_chunks = jgmm.params_from_stats(summed, covariance_type)
    for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(from_chunks)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_diag_equals_full_restricted_to_diagonal(x64):
    X, resp, w = random_problem(7)
    full = jgmm.m_step(resp, X, "full", sample_weight=w)
    diag = jgmm.m_step(resp, X, "diag", sample_weight=w)
    np.testing.assert_allclose(diag.means, full.means, rtol=1e-12)
    np.testing.assert_allclose(diag.covariances, jnp.diagonal(full.covariances, axis1=1, axis2=2), rtol=1e-10)
    # The full density with the diagonal covariance is the diag density.
    restricted = jgmm.GMMParams(full.weights, full.means, jnp.sqrt(jax.vmap(jnp.diag)(diag.precisions)))
    np.testing.assert_allclose(jgmm.e_step(restricted, X)[0], jgmm.e_step(diag, X)[0], rtol=1e-10)


def test_diag_em_equals_full_em_projected_onto_diagonal(x64):
    X, _, _ = blobs(8, N=200, D=3, K=2)
    X = jnp.asarray(X)
    start = jgmm.fit(jax.random.key(1), X, 2, "diag", max_iter=1).params
    diag = jgmm.fit(jax.random.key(0), X, 2, "diag", init=start, max_iter=6, tol=0.0).params
    params = start
    for _ in range(6):
        as_full = jgmm.GMMParams(params.weights, params.means, jax.vmap(jnp.diag)(params.prec_chol), "full")
        full = jgmm.m_step(jnp.exp(jgmm.e_step(as_full, X)[0]), X, "full")
        variances = jnp.diagonal(full.covariances, axis1=1, axis2=2)
        params = jgmm.GMMParams(full.weights, full.means, 1 / jnp.sqrt(variances), "diag")
    for a, b in zip(jax.tree.leaves(diag), jax.tree.leaves(params)):
        np.testing.assert_allclose(a, b, rtol=1e-8)


def test_spherical_equals_diag_with_equal_variances(x64):
    X, resp, w = random_problem(9)
    diag = jgmm.m_step(resp, X, "diag", sample_weight=w)
    spherical = jgmm.m_step(resp, X, "spherical", sample_weight=w)
    np.testing.assert_allclose(spherical.covariances, jnp.mean(diag.covariances, axis=1), rtol=1e-10)
    equal = jgmm.GMMParams(spherical.weights, spherical.means, jnp.repeat(spherical.prec_chol[:, None], 3, 1), "diag")
    np.testing.assert_allclose(jgmm.e_step(equal, X)[0], jgmm.e_step(spherical, X)[0], rtol=1e-10)


def test_tied_equals_full_with_one_component(x64):
    X, _, _ = blobs(10, N=100, D=3, K=1)
    tied = jgmm.fit(jax.random.key(0), X, 1, "tied").params
    full = jgmm.fit(jax.random.key(0), X, 1, "full").params
    np.testing.assert_allclose(tied.covariances, full.covariances[0], rtol=1e-10)
    np.testing.assert_allclose(tied.means, full.means, rtol=1e-10)
    np.testing.assert_allclose(tied.covariances, np.cov(X.T, bias=True) + 1e-6 * np.eye(3), rtol=1e-10)


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_jit_equals_no_jit(x64, covariance_type):
    X, resp, w = random_problem(11, N=60)
    with jax.disable_jit():
        params_eager = jgmm.m_step(resp, X, covariance_type, sample_weight=w)
        log_resp_eager, ll_eager = jgmm.e_step(params_eager, X)
    params = jgmm.m_step(resp, X, covariance_type, sample_weight=w)
    log_resp, ll = jgmm.e_step(params, X)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(params_eager)):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    np.testing.assert_allclose(log_resp, log_resp_eager, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ll, ll_eager, rtol=1e-12)


def test_steps_vmap_over_batches(x64):
    X, resp, _ = random_problem(12, N=60)
    batch = jnp.stack([resp, resp[::-1]])
    params = jax.vmap(lambda r: jgmm.m_step(r, X, "full"))(batch)
    assert params.means.shape == (2, 3, 3)
    second = jgmm.m_step(resp[::-1], X, "full")
    np.testing.assert_allclose(params.means[1], second.means, rtol=1e-12)
    lls = jax.vmap(lambda p: jgmm.e_step(p, X)[1])(params)
    np.testing.assert_allclose(lls[1], jgmm.e_step(second, X)[1], rtol=1e-12)


def test_default_dtype_is_float32_and_x64_gives_float64():
    X, _, _ = blobs(13, N=30, D=2, K=2)
    resp = np.random.default_rng(13).dirichlet(np.ones(2), size=30)
    assert jgmm.m_step(jnp.asarray(resp), jnp.asarray(X)).means.dtype == jnp.float32
    with jax.enable_x64(True):
        assert jgmm.m_step(jnp.asarray(resp), jnp.asarray(X)).means.dtype == jnp.float64
