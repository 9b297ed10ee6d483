"""Using a fitted mixture: densities, labels, responsibilities, samples."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp
from jax.typing import ArrayLike

from jgmm._compile import jit
from jgmm._maths.em import weighted_log_prob
from jgmm._maths.families import family
from jgmm._maths.missing import observed_log_prob
from jgmm._maths.params import GMMParams
from jgmm._maths.validation import check_array, check_int, check_key, check_param_values, check_params


def _weighted_log_prob(params: GMMParams, X, missing: bool):
    """(N, K) log π_k + log N(x_n | k), of the observed features if ``missing``."""
    return observed_log_prob(params, X) if missing else weighted_log_prob(params, X)


@jit(static_argnames="missing")
def _log_prob(params: GMMParams, X, missing: bool = False):
    return logsumexp(_weighted_log_prob(params, X, missing), axis=1)


@jit(static_argnames="missing")
def _predict(params: GMMParams, X, missing: bool):
    return jnp.argmax(_weighted_log_prob(params, X, missing), axis=1)


@jit(static_argnames="missing")
def _predict_proba(params: GMMParams, X, missing: bool):
    return jax.nn.softmax(_weighted_log_prob(params, X, missing), axis=1)


def checked_data(params: GMMParams, X, missing: str = "error") -> jax.Array:
    """X validated against the parameters' number of features; NaN allowed
    when ``missing`` is "marginalize"."""
    check_param_values(check_params(params))
    return check_array(X, n_features=params.n_features, expected_by="the mixture", missing=missing)


def log_prob(params: GMMParams, X: ArrayLike, missing: str = "error") -> jax.Array:
    """(N,) log p(x_n) = log Σ_k π_k N(x_n | μ_k, Σ_k) for X (N, D).

    ``missing="marginalize"``: NaN entries are missing; p is then the
    density of each sample's observed features."""
    return _log_prob(params, checked_data(params, X, missing), missing == "marginalize")


def predict_proba(params: GMMParams, X: ArrayLike, missing: str = "error") -> jax.Array:
    """(N, K) responsibilities γ(z_nk) for X (N, D); rows sum to 1.

    ``missing="marginalize"``: NaN entries are missing (``log_prob``)."""
    return _predict_proba(params, checked_data(params, X, missing), missing == "marginalize")


def predict(params: GMMParams, X: ArrayLike, missing: str = "error") -> jax.Array:
    """(N,) int labels argmax_k γ(z_nk) for X (N, D).

    ``missing="marginalize"``: NaN entries are missing (``log_prob``)."""
    return _predict(params, checked_data(params, X, missing), missing == "marginalize")


def sample(key: jax.Array, params: GMMParams, n: int) -> tuple[jax.Array, jax.Array]:
    """Draw n samples from the mixture.

    Args:
      key: a ``jax.random`` key.
      params: GMMParams with K components in D dimensions.
      n: number of samples (static).

    Returns:
      X: (n, D) samples, x = μ_z + L_z ε with Σ_z = L_z L_zᵀ, ε ~ N(0, I).
      labels: (n,) int component z of each sample, z ~ Categorical(π).
    """
    return _sample(check_key(key), check_param_values(check_params(params)), check_int(n, "n", 0))


@jit(static_argnames="n")
def _sample(key, params, n):
    key_z, key_eps = jax.random.split(key)
    labels = jax.random.categorical(key_z, jnp.log(params.weights), shape=(n,))
    eps = jax.random.normal(key_eps, (n, params.n_features), params.means.dtype)
    offsets = family(params.covariance_type).colour(eps, labels, params.prec_chol)
    return params.means[labels] + offsets, labels
