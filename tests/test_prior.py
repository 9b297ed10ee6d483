"""MAP estimation with conjugate priors: the M-step is the mode of Q + log prior."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import FAMILIES, blobs, clump_start, full_covariances
from sklearn.exceptions import ConvergenceWarning
from test_em import expected_complete_log_likelihood, log_normal

import jgmm
from jgmm._maths.prior import Prior, default_prior, map_params_and_singular


def log_prior(weights, means, cov, covariance_type, prior):
    """log p(θ) up to a constant, written from the densities (independent of jgmm's M-step)."""
    alpha, mu_p, kappa, nu, scale = prior
    K, D = means.shape
    covs = full_covariances(cov, covariance_type, K, D)
    value = (alpha - 1) * jnp.sum(jnp.log(weights))
    value += sum(log_normal(mu_p[None], means[k], covs[k] / kappa)[0] for k in range(K))
    if covariance_type in ("full", "tied"):
        wishart = lambda S: -(nu + D + 1) / 2 * jnp.linalg.slogdet(S)[1] - 0.5 * jnp.trace(jnp.linalg.solve(S, scale))
        value += wishart(cov) if covariance_type == "tied" else sum(wishart(cov[k]) for k in range(K))
    else:  # inverse-gamma IG(ν/2, Λ/2) on every variance
        value += jnp.sum(-(nu / 2 + 1) * jnp.log(cov) - scale / (2 * cov))
    return value


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_map_m_step_is_a_stationary_point_of_q_plus_log_prior(x64, covariance_type):
    rng = np.random.default_rng(3)
    X, _, _ = blobs(3, N=60, D=3, K=3)
    resp = jnp.asarray(rng.dirichlet(np.ones(3), size=60))
    X = jnp.asarray(X)
    scale = {"full": np.eye(3) * 2.0, "tied": np.eye(3) * 2.0, "diag": np.full(3, 2.0), "spherical": 2.0}
    prior = Prior(*(jnp.asarray(v, jnp.float64) for v in (3.0, [1.0, -1.0, 0.5], 0.7, 5.0, scale[covariance_type])))
    stats = jgmm.suff_stats(resp, X, covariance_type=covariance_type)
    params, singular = map_params_and_singular(stats, covariance_type, 0.0, prior)
    assert not np.any(singular)
    objective = lambda pi, mu, cov: expected_complete_log_likelihood(
        pi, mu, cov, covariance_type, X, resp, jnp.ones(60)
    ) + log_prior(pi, mu, cov, covariance_type, prior)
    g_pi, g_mu, g_cov = jax.grad(objective, argnums=(0, 1, 2))(params.weights, params.means, params.covariances)
    np.testing.assert_allclose(g_mu, 0.0, atol=1e-9)
    np.testing.assert_allclose(g_cov, 0.0, atol=1e-9)
    # With the constraint Σπ = 1: ∂/∂π_k = (N_k + α - 1) / π_k = λ = N + K(α - 1).
    np.testing.assert_allclose(g_pi, 60 + 3 * (3.0 - 1), rtol=1e-10)


@pytest.mark.parametrize("covariance_type", ["full", "spherical"])
def test_a_prior_keeps_a_collapsing_component_finite(x64, covariance_type):
    X, start = clump_start(covariance_type)  # without a prior, the third component collapses
    plain = jgmm.fit(jax.random.key(0), X, 3, covariance_type, init=start)
    assert plain.status == jgmm.Status.DEGENERATE
    prior = default_prior(X, 3, covariance_type)
    result = jgmm.fit(jax.random.key(0), X, 3, covariance_type, init=start, prior=prior)
    assert result.status in (jgmm.Status.CONVERGED, jgmm.Status.MAX_ITER)
    variances = np.asarray(result.params.covariances).reshape(3, -1)
    assert np.all(np.isfinite(variances)) and float(result.params.weights[2]) > 0.04
    # No variance can fall below the prior scale over (ν + D·N + D + 2) (D = 2).
    floor = np.min(np.diag(np.atleast_2d(prior.scale))) / (float(prior.dof) + 2 * len(X) + 4)
    assert np.min(variances[:, :: 3 if covariance_type == "full" else 1]) > floor


def test_default_prior_is_mclusts(x64):
    X = jgmm.load_faithful()
    prior = default_prior(X, 3, "full")
    np.testing.assert_allclose(prior.mean, X.mean(axis=0))
    np.testing.assert_allclose(prior.scale, np.cov(X, rowvar=False) / 3 ** (2 / 2))
    assert float(prior.shrinkage) == 0.01 and float(prior.dof) == 4 and float(prior.weight_concentration) == 1
    assert float(default_prior(X, 3, "spherical").scale) == pytest.approx(np.trace(np.cov(X, rowvar=False)) / 2 / 3)


def test_default_prior_counts_weights_and_leaves_out_missing_entries(x64):
    X = jgmm.load_faithful()
    counts = np.arange(len(X)) % 3  # weights 0, 1, 2
    weighted = default_prior(jnp.asarray(X), 2, "full", sample_weight=counts)  # reduced on the device
    for a, b in zip(weighted, default_prior(np.repeat(X, counts, axis=0), 2, "full")):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    X_missing = X.copy()
    X_missing[::7, 0], X_missing[3::11, 1] = np.nan, np.nan
    observed = np.ma.masked_invalid(X_missing)
    prior = default_prior(X_missing, 1, "full")
    np.testing.assert_allclose(prior.mean, observed.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(prior.scale, np.ma.cov(observed, rowvar=False), rtol=1e-12)  # pairwise


def test_prior_by_name_and_bad_priors():
    X, _, _ = blobs(4, N=200, D=2, K=2)
    by_name = jgmm.fit(jax.random.key(0), X, 2, "diag", prior="default")
    given = jgmm.fit(jax.random.key(0), X, 2, "diag", prior=default_prior(X, 2, "diag"))
    np.testing.assert_allclose(by_name.params.means, given.params.means, rtol=1e-6)
    with pytest.raises(ValueError, match=r"prior.scale \(2,\) for covariance_type='diag'"):
        jgmm.fit(jax.random.key(0), X, 2, "diag", prior=default_prior(X, 2, "full"))
    with pytest.raises(ValueError, match="'prior' parameter must be a str among"):
        jgmm.fit(jax.random.key(0), X, 2, prior="flat")
    full = default_prior(X, 2, "full")
    for bad, message in [
        (full._replace(mean=np.array([np.nan, 0.0])), "prior contains NaN or infinity"),
        (full._replace(shrinkage=-0.01), "prior needs shrinkage > 0"),
        (full._replace(scale=-np.eye(2)), "prior.scale must be non-negative"),
        (full._replace(scale=np.array([[1.0, 0.5], [0.0, 1.0]])), "symmetric positive semi-definite"),
    ]:
        with pytest.raises(ValueError, match=message):
            jgmm.fit(jax.random.key(0), X, 2, prior=bad)


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_the_default_prior_of_data_with_a_constant_feature_fits(covariance_type):
    """A constant feature gives the default prior a zero scale along it: no
    information there, not an invalid prior."""
    X, _, _ = blobs(5, N=200, D=2, K=2)
    X = np.c_[X, np.full(200, 3.0)]
    result = jgmm.fit(jax.random.key(0), X, 2, covariance_type, prior="default")
    assert jgmm.Status(int(result.status)) in (jgmm.Status.CONVERGED, jgmm.Status.MAX_ITER)
    assert np.all(np.isfinite(np.asarray(result.params.means)))


def test_select_with_the_default_prior_equals_fit_for_each_cell(x64):
    X, _ = clump_start("full")  # a clump of duplicates: maximum likelihood collapses onto it
    key = jax.random.key(2)
    selection = jgmm.select(key, X, [1, 3], ("full",), n_init=2, prior="default")
    rows = selection.to_dict()
    assert "DEGENERATE" not in list(rows["status"])
    for i, K in enumerate(rows["n_components"]):
        single = jgmm.fit(jax.random.fold_in(key, int(K)), X, int(K), n_init=2, prior="default")
        np.testing.assert_allclose(rows["total_log_likelihood"][i], float(single.log_likelihood) * len(X), rtol=1e-9)
        for a, b in zip(jax.tree.leaves(selection.params("full", int(K))), jax.tree.leaves(single.params)):
            np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)
    with pytest.raises(ValueError, match="one covariance family's shape"):
        jgmm.select(key, X, [1, 2], ("full", "diag"), prior=default_prior(X, 2, "full"))


def test_the_estimator_takes_a_prior():
    X, start = clump_start("full")  # from this start, maximum likelihood collapses a component
    given = {f"{name}_init": np.asarray(getattr(start, name)) for name in ("weights", "means", "precisions")}
    with pytest.warns(ConvergenceWarning, match="ill-defined empirical covariance"):
        jgmm.GaussianMixture(3, on_collapse="freeze", **given).fit(X)
    model = jgmm.GaussianMixture(3, prior="default", **given)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(X)
    assert model.get_params()["prior"] == "default" and model.status_ == jgmm.Status.CONVERGED
    with jax.enable_x64(True):  # the estimator fits float64 data in float64
        expected = jgmm.fit(jax.random.key(0), X, 3, init=model._cast(start, np.float64), prior="default")
    np.testing.assert_allclose(model.means_, expected.params.means, rtol=1e-6)
