"""Using a fitted mixture: densities, labels, responsibilities, samples."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

from jgmm._covariance import FAMILIES
from jgmm._em import e_step, weighted_log_prob
from jgmm._params import GMMParams
from jgmm._precision import full_precision
from jgmm._validation import check_array, check_params

_log_prob = jax.jit(lambda params, X: logsumexp(weighted_log_prob(params, X), axis=1))
_predict = jax.jit(lambda params, X: jnp.argmax(weighted_log_prob(params, X), axis=1))
_predict_proba = jax.jit(lambda params, X: jnp.exp(e_step(params, X)[0]))


def checked_data(params: GMMParams, X) -> jax.Array:
    """X validated against the parameters' number of features."""
    check_params(params)
    return check_array(X, n_features=params.n_features, expected_by="the mixture")


@full_precision
def log_prob(params: GMMParams, X) -> jax.Array:
    """(N,) log p(x_n) = log Σ_k π_k N(x_n | μ_k, Σ_k) for X (N, D)."""
    return _log_prob(params, checked_data(params, X))


@full_precision
def predict_proba(params: GMMParams, X) -> jax.Array:
    """(N, K) responsibilities γ(z_nk) for X (N, D); rows sum to 1."""
    return _predict_proba(params, checked_data(params, X))


@full_precision
def predict(params: GMMParams, X) -> jax.Array:
    """(N,) int labels argmax_k γ(z_nk) for X (N, D)."""
    return _predict(params, checked_data(params, X))


@functools.partial(jax.jit, static_argnames="n")
def sample(key: jax.Array, params: GMMParams, n: int):
    """Draw n samples from the mixture.

    Args:
      key: a ``jax.random`` key.
      params: GMMParams with K components in D dimensions.
      n: number of samples (static).

    Returns:
      X: (n, D) samples, x = μ_z + L_z ε with Σ_z = L_z L_zᵀ, ε ~ N(0, I).
      labels: (n,) int component z of each sample, z ~ Categorical(π).
    """
    key_z, key_eps = jax.random.split(key)
    labels = jax.random.categorical(key_z, jnp.log(params.weights), shape=(n,))
    eps = jax.random.normal(key_eps, (n, params.n_features), params.means.dtype)
    offsets = FAMILIES[params.covariance_type].colour(eps, labels, params.prec_chol)
    return params.means[labels] + offsets, labels
