"""Missing values (missing="marginalize"): exact EM on the observed entries."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import FAMILIES, blobs, full_covariances
from jax.scipy.special import logsumexp
from sklearn.metrics import adjusted_rand_score
from test_em import log_normal

import jgmm
from jgmm.sklearn import GaussianMixture


def with_missing(X, fraction, seed=0):
    """X with a ``fraction`` of its entries set to NaN, completely at random."""
    X = np.array(X, dtype=np.float64)
    X[np.random.default_rng(seed).random(X.shape) < fraction] = np.nan
    return X


def observed_log_prob(weights, means, covs, X):
    """(N,) log Σ_k π_k N(x_n,o | μ_k,o, Σ_k,oo), the observed block of each
    pattern of missing entries picked out by indexing (independent of jgmm's
    masked form); 0 for a sample with nothing observed."""
    X = np.asarray(X)
    observed = ~np.isnan(X)
    log_p = jnp.zeros(len(X), means.dtype)
    for pattern in np.unique(observed, axis=0):
        o, rows = np.flatnonzero(pattern), np.flatnonzero(np.all(observed == pattern, axis=1))
        if o.size:
            x = jnp.asarray(X[np.ix_(rows, o)])
            per_k = [jnp.log(weights[k]) + log_normal(x, means[k, o], covs[k][np.ix_(o, o)]) for k in range(len(means))]
            log_p = log_p.at[rows].set(logsumexp(jnp.stack(per_k, axis=1), axis=1))
    return log_p


def test_nan_is_refused_unless_marginalized():
    X = with_missing(blobs(0, N=50)[0], 0.1)
    with pytest.raises(ValueError, match="missing='marginalize'"):
        jgmm.fit(jax.random.key(0), X, 2)
    with pytest.raises(ValueError, match="missing='marginalize'"):
        jgmm.log_prob(jgmm.fit(jax.random.key(0), np.nan_to_num(X), 2).params, X)
    X_inf = X.copy()
    X_inf[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        jgmm.fit(jax.random.key(0), X_inf, 2, missing="marginalize")
    X[:, 1] = np.nan
    with pytest.raises(ValueError, match=r"Feature\(s\) \[1\] of X have no observed value"):
        jgmm.fit(jax.random.key(0), X, 2, missing="marginalize")
    with pytest.raises(ValueError, match="'missing' parameter"):
        jgmm.fit(jax.random.key(0), X, 2, missing="impute")


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_no_missing_entries_equal_the_plain_fit(x64, covariance_type):
    X = jnp.asarray(blobs(1, N=200, D=3, K=3)[0])
    plain = jgmm.fit(jax.random.key(0), X, 3, covariance_type, n_init=2)
    marginal = jgmm.fit(jax.random.key(0), X, 3, covariance_type, n_init=2, missing="marginalize")
    assert int(marginal.n_iter) == int(plain.n_iter)
    for a, b in zip(jax.tree.leaves(marginal), jax.tree.leaves(plain)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_observed_log_likelihood_matches_the_marginal_densities(x64, covariance_type):
    X, _, _ = blobs(2, N=40, D=3, K=2)
    params = jgmm.fit(jax.random.key(0), X, 2, covariance_type).params
    X = with_missing(X, 0.3, seed=2)
    X[0] = np.nan  # a sample with nothing observed has density 1
    log_p = jgmm.log_prob(params, X, missing="marginalize")
    covs = full_covariances(params.covariances, covariance_type, 2, 3)
    expected = jax.jit(lambda *p: observed_log_prob(*p, X))(params.weights, params.means, covs)
    np.testing.assert_allclose(log_p, expected, rtol=1e-10, atol=1e-10)
    proba = jgmm.predict_proba(params, X, missing="marginalize")
    np.testing.assert_allclose(proba[0], params.weights, rtol=1e-12)
    np.testing.assert_allclose(jnp.sum(proba, axis=1), 1.0, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_missing_fit_is_a_stationary_point_of_the_observed_likelihood(x64, covariance_type):
    """EM's fixed point zeroes the gradient (autodiff) of the observed-data
    log-likelihood, written by indexing in ``observed_log_prob``; and
    the log-likelihood never decreased on the way there."""
    X = with_missing(blobs(3, N=150, D=3, K=2)[0], 0.2, seed=3)
    result = jgmm.fit(
        jax.random.key(1), X, 2, covariance_type, tol=1e-14, max_iter=3000, reg_covar=0.0, missing="marginalize"
    )
    assert result.status == jgmm.Status.CONVERGED
    history = np.asarray(result.history)[: int(result.n_iter)]
    assert np.all(np.diff(history) >= -1e-12)
    params = result.params

    def mean_log_likelihood(logits, means, cov):
        covs = full_covariances(cov, covariance_type, 2, 3)
        return jnp.mean(observed_log_prob(jax.nn.softmax(logits), means, covs, X))

    at_fit = (jnp.log(params.weights), params.means, params.covariances)
    value, grads = jax.jit(jax.value_and_grad(mean_log_likelihood, argnums=(0, 1, 2)))(*at_fit)
    np.testing.assert_allclose(value, result.log_likelihood, rtol=1e-10)
    for g in grads:
        np.testing.assert_allclose(g, 0.0, atol=1e-6)


def test_marginalizing_beats_complete_cases_and_mean_imputation(x64):
    """20% of the entries missing at random from two correlated Gaussian
    clusters: the marginal fit is closer to the truth than complete-case
    deletion (here: weight 0 for incomplete rows) and mean imputation."""
    D, N = 4, 600
    cov = 0.8 * np.ones((D, D)) + 0.2 * np.eye(D)  # strongly correlated features
    means = np.array([np.zeros(D), np.array([3.0, -3.0, 3.0, -3.0])])
    errors = {"marginalize": 0.0, "complete cases": 0.0, "mean imputation": 0.0}
    for seed in range(3):
        rng = np.random.default_rng(seed)
        labels = rng.integers(2, size=N)
        X_full = means[labels] + rng.multivariate_normal(np.zeros(D), cov, size=N)
        X = with_missing(X_full, 0.2, seed=seed)
        complete = ~np.isnan(X).any(axis=1)
        filled = np.where(np.isnan(X), np.nanmean(X, axis=0), X)
        fits = {
            "marginalize": jgmm.fit(jax.random.key(0), X, 2, missing="marginalize"),
            "complete cases": jgmm.fit(jax.random.key(0), np.nan_to_num(X), 2, sample_weight=complete.astype(float)),
            "mean imputation": jgmm.fit(jax.random.key(0), filled, 2),
        }
        for name, result in fits.items():
            order = np.argsort(np.asarray(result.params.means[:, 0]))
            fitted_means = np.asarray(result.params.means)[order]
            fitted_covs = np.asarray(result.params.covariances)[order]
            errors[name] += np.abs(fitted_means - means).sum() + np.abs(fitted_covs - cov).sum()
    assert errors["marginalize"] < errors["complete cases"]
    assert errors["marginalize"] < errors["mean imputation"]


def test_select_and_the_estimator_take_missing_values():
    X, labels, _ = blobs(4, N=300, D=3, K=3, spread=8.0)
    X = with_missing(X, 0.15, seed=4).astype(np.float32)
    selection = jgmm.select(jax.random.key(0), X, range(2, 5), "full", n_init=2, missing="marginalize")
    assert selection.best == ("full", 3)
    row = selection.to_dict()["n_components"] == 3
    direct = jgmm.fit(jax.random.fold_in(jax.random.key(0), 3), X, 3, n_init=2, missing="marginalize")
    np.testing.assert_allclose(selection.to_dict()["total_log_likelihood"][row] / len(X), direct.log_likelihood, rtol=1e-5)

    model = GaussianMixture(3, missing="marginalize", random_state=0)
    assert adjusted_rand_score(labels, model.fit_predict(X)) > 0.9
    assert np.isfinite(model.score(X)) and np.isfinite(model.bic(X))
    assert model.__sklearn_tags__().input_tags.allow_nan
    with pytest.raises(ValueError, match="NaN"):
        GaussianMixture(3).fit(X)
    online = GaussianMixture(3, missing="marginalize", random_state=0)
    for batch in np.array_split(X, 3):
        online.partial_fit(batch)
    assert online.n_iter_ == 3 and np.isfinite(online.lower_bound_)
    assert adjusted_rand_score(labels, online.predict(X)) > 0.9
    unobserved = X[:50].copy()
    unobserved[:, 1] = np.nan
    with pytest.raises(ValueError, match=r"Feature\(s\) \[1\] of X have no observed value"):
        GaussianMixture(3, missing="marginalize").partial_fit(unobserved)


@pytest.mark.parametrize("covariance_type", ["full", "spherical"])
def test_an_online_step_of_size_one_is_an_em_iteration_on_the_observed_data(x64, covariance_type):
    X, _, _ = blobs(5, N=400, D=3, K=2, spread=6.0)
    X = with_missing(X, 0.2, seed=5)
    start = jgmm.fit(jax.random.key(0), X, 2, covariance_type, max_iter=2, missing="marginalize").params
    one_iteration = jgmm.fit(jax.random.key(0), X, 2, covariance_type, init=start, max_iter=1, missing="marginalize")
    step = jgmm.online_step(jgmm.online_init(start), X, 1.0, missing="marginalize")
    for a, b in zip(jax.tree.leaves(step.params), jax.tree.leaves(one_iteration.params)):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)
    assert float(step.log_likelihood) == pytest.approx(float(one_iteration.history[0]), rel=1e-10)
