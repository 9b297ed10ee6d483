"""Bad input is a ValueError with a clear message, raised before tracing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jgmm

KEY = jax.random.key(0)
X = np.random.default_rng(0).normal(size=(20, 2))


@pytest.mark.parametrize(
    "data, message",
    [
        (np.where(np.arange(40).reshape(20, 2) == 3, np.nan, X), "Input X contains NaN."),
        (np.where(np.arange(40).reshape(20, 2) == 3, np.inf, X), "Input X contains infinity"),
        (jnp.asarray(X).at[0, 0].set(jnp.nan), "Input X contains NaN."),
        ([["a", "b"], ["c", "d"]], "Input X must contain only numbers"),
        (X[:, 0], "Expected 2D array for X, got 1D array"),
        (X[None], "Expected 2D array for X, got 3D array"),
        (np.zeros((0, 2)), "Found array with 0 sample"),
        (X[:1], "Expected n_samples >= n_components but got n_components = 2, n_samples = 1"),
    ],
)
def test_bad_data(data, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        jgmm.fit(KEY, data, 2)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n_components=0), "'n_components' parameter must be an int in the range \\[1, inf\\). Got 0"),
        (dict(n_components=2.5), "'n_components' parameter must be an int"),
        (dict(covariance_type="banana"), "'covariance_type' parameter must be a str among \\{'EEI', .*'VVE', 'diag', 'full', 'spherical', 'tied'\\}"),
        (dict(init="magic"), "'init' parameter must be a str among"),
        (dict(reg_covar=-1e-3), "'reg_covar' parameter must be a float in the range \\[0.0, inf\\)"),
        (dict(tol=-1.0), "'tol' parameter must be a float"),
        (dict(tol="small"), "'tol' parameter must be a float"),
        (dict(max_iter=0), "'max_iter' parameter must be an int in the range \\[1, inf\\)"),
        (dict(n_init=0), "'n_init' parameter must be an int in the range \\[1, inf\\)"),
        (dict(sample_weight=np.ones(5)), "sample_weight.shape == \\(5,\\), expected \\(20,\\)"),
        (dict(sample_weight=-np.ones(20)), "Negative values in sample_weight"),
        (dict(sample_weight=np.zeros(20)), "sample_weight must not be all zero"),
        (dict(sample_weight=np.full(20, np.nan)), "sample_weight contains NaN"),
        (dict(on_collapse="ignore"), "'on_collapse' parameter must be a str among \\{'freeze', 'keep', 'reseed'\\}"),
    ],
)
def test_bad_parameters(kwargs, message):
    kwargs = {"n_components": 2, **kwargs}
    n_components = kwargs.pop("n_components")
    with pytest.raises(ValueError, match=message):
        jgmm.fit(KEY, X, n_components, **kwargs)


def test_bad_initial_parameters():
    good = jgmm.fit(KEY, X, 2, "diag", max_iter=1).params
    with pytest.raises(ValueError, match="The parameters have 2 components, but n_components = 3"):
        jgmm.fit(KEY, X, 3, "diag", init=good)
    with pytest.raises(ValueError, match="init has covariance_type='diag' but covariance_type='full'"):
        jgmm.fit(KEY, X, 2, "full", init=good)
    wrong = jgmm.GMMParams(good.weights, good.means, good.prec_chol[:, :1], "diag")
    with pytest.raises(ValueError, match="params.prec_chol for covariance_type='diag' must have shape \\(2, 2\\)"):
        jgmm.fit(KEY, X, 2, "diag", init=wrong)
    with pytest.raises(ValueError, match="X has 3 features, but the parameters are expecting 2"):
        jgmm.fit(KEY, np.ones((20, 3)), 2, "diag", init=good)


@pytest.mark.parametrize(
    "call",
    [
        lambda key: jgmm.fit(key, X, 2, n_init=3, max_iter=5).params,
        lambda key: jgmm.select(key, X, range(1, 3), ("diag",), n_init=2, max_iter=5).best_params,
        lambda key: jgmm.fit_stream(key, X, 2, n_init=2, max_iter=5).params,
        lambda key: jgmm.fit_gradient(key, X, 2, max_iter=5).params,
        lambda key: jgmm.bootstrap(key, X, jgmm.fit(KEY, X, 2, max_iter=5).params, 2, max_iter=5).replicates,
        lambda key: jgmm.sample(key, jgmm.fit(KEY, X, 2, max_iter=5).params, 4),
    ],
    ids=["fit", "select", "fit_stream", "fit_gradient", "bootstrap", "sample"],
)
def test_raw_uint32_key_is_the_typed_key(call):
    raw, typed = call(jax.random.PRNGKey(0)), call(jax.random.key(0))
    for a, b in zip(jax.tree.leaves(raw), jax.tree.leaves(typed), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "key, message",
    [
        (0, "key must be a JAX random key such as jax.random.key\\(0\\), got int"),
        (jax.random.split(KEY, 2), "key must be a single random key, got an array of keys of shape \\(2,\\)"),
    ],
)
def test_bad_key(key, message):
    with pytest.raises(TypeError, match=message):
        jgmm.fit(key, X, 2)


PARAMS = jgmm.fit(KEY, X, 2, max_iter=5).params
RESP = np.full((20, 2), 0.5)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: jgmm.e_step(PARAMS, X[:, :1]), "X has 1 features, but the mixture is expecting 2"),
        (lambda: jgmm.e_step(PARAMS, X[:, 0]), "Expected 2D array for X, got 1D array"),
        (lambda: jgmm.e_step(PARAMS, X, np.ones(3)), "sample_weight.shape == \\(3,\\), expected \\(20,\\)"),
        (lambda: jgmm.m_step(RESP[:3], X), "resp has 3 samples, but X has 20"),
        (lambda: jgmm.m_step(RESP, X, "ful"), "'covariance_type' parameter must be a str among"),
        (lambda: jgmm.suff_stats(RESP, X, shift=np.zeros(3)), "shift must have shape \\(2,\\)"),
        (
            lambda: jgmm.params_from_stats(jgmm.suff_stats(RESP, X), "diag"),
            "stats.sxx has shape \\(2, 2, 2\\), but covariance_type='diag' needs \\(2, 2\\)",
        ),
        (lambda: jgmm.sample(KEY, PARAMS, -1), "'n' parameter must be an int in the range \\[0, inf\\)"),
        (
            lambda: jgmm.online_init(jgmm.GMMParams(PARAMS.weights * 2, PARAMS.means, PARAMS.prec_chol, "full")),
            "params.weights must be non-negative and sum to 1",
        ),
    ],
    ids=["e_step-D", "e_step-1d", "e_step-weights", "m_step-N", "m_step-family", "shift", "stats-family", "sample-n",
         "online_init"],
)
def test_building_blocks_refuse_mismatched_shapes(call, message):
    """The pure pieces check their static shapes (under jit too) instead of
    broadcasting a mismatch into a wrong answer."""
    with pytest.raises(ValueError, match=message):
        call()


def test_building_block_checks_hold_under_jit():
    with pytest.raises(ValueError, match="X has 1 features, but the mixture is expecting 2"):
        jax.jit(jgmm.e_step)(PARAMS, X[:, :1])
