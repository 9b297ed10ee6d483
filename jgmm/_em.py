"""The E-step and the M-step, the latter as statistics → parameters.

``m_step(resp, X) = params_from_stats(suff_stats(resp, X))``. The statistics
are sums over samples, so they can be summed over chunks, devices or batches
read from disk before ``params_from_stats`` turns them into parameters.
See docs/derivation.md for the maths each function implements.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

from jgmm._covariance import FAMILIES, log_gaussian
from jgmm._params import GMMParams


class SuffStats(NamedTuple):
    """Weighted sufficient statistics of a mixture, centred at ``shift``.

    Attributes:
      nk: (K,) Σ_n w_n r_nk.
      sx: (K, D) Σ_n w_n r_nk (x_n - c_k).
      sxx: Σ_n w_n r_nk (x_n - c_k)(x_n - c_k)ᵀ in the family's form:
        full (K, D, D); tied (D, D), summed over k; diag and spherical (K, D),
        the diagonal only.
      shift: (K, D) the centres c_k. Statistics computed with the same shift
        add up across chunks of data.
    """

    nk: jax.Array
    sx: jax.Array
    sxx: jax.Array
    shift: jax.Array


def _weights_or_ones(sample_weight, X):
    if sample_weight is None:
        return jnp.ones(X.shape[:1], X.dtype)
    return jnp.asarray(sample_weight, X.dtype)


def weighted_log_prob(params: GMMParams, X: jax.Array) -> jax.Array:
    """(N, K) log π_k + log N(x_n | μ_k, Σ_k)."""
    log_gauss = log_gaussian(X, params.means, params.prec_chol, params.covariance_type)
    return log_gauss + jnp.log(params.weights)


@jax.jit
def e_step(params: GMMParams, X: jax.Array, sample_weight: jax.Array | None = None):
    """E-step: responsibilities γ(z_nk) by Bayes' rule, in log space.

    Args:
      params: GMMParams with K components in D dimensions.
      X: (N, D) samples.
      sample_weight: optional (N,) non-negative weights for the average.

    Returns:
      log_resp: (N, K) log γ(z_nk) = log π_k N(x_n|k) - log Σ_j π_j N(x_n|j).
      log_likelihood: () mean per-sample log-likelihood (1/N) Σ_n log p(x_n),
        weighted by ``sample_weight`` when given.
    """
    weighted = weighted_log_prob(params, X)
    log_norm = logsumexp(weighted, axis=1)
    w = _weights_or_ones(sample_weight, X)
    log_likelihood = jnp.sum(w * log_norm) / jnp.sum(w)
    return weighted - log_norm[:, None], log_likelihood


@functools.partial(jax.jit, static_argnames="covariance_type")
def suff_stats(
    resp: jax.Array,
    X: jax.Array,
    sample_weight: jax.Array | None = None,
    *,
    covariance_type: str = "full",
    shift: jax.Array | None = None,
) -> SuffStats:
    """Sufficient statistics of data weighted by responsibilities.

    Args:
      resp: (N, K) responsibilities (rows need not sum to 1).
      X: (N, D) samples.
      sample_weight: optional (N,) non-negative weights; weight 2 counts a row
        twice.
      covariance_type: which second moment to accumulate.
      shift: optional (K, D) centres c_k. Default: the weighted means of this
        data (two passes, the most accurate). Pass fixed centres (e.g. the
        previous means) to make statistics of chunks add up.

    Returns:
      SuffStats.
    """
    w = _weights_or_ones(sample_weight, X)
    resp_w = resp * w[:, None]
    nk = jnp.sum(resp_w, axis=0)
    if shift is None:
        tiny = 10 * jnp.finfo(X.dtype).eps
        shift = (resp_w.T @ X) / (nk + tiny)[:, None]
    Xc = X[:, None, :] - shift[None, :, :]
    sx = jnp.einsum("nk,nkd->kd", resp_w, Xc)
    sxx = FAMILIES[covariance_type].second_moment(resp_w, Xc)
    return SuffStats(nk, sx, sxx, shift)


@functools.partial(jax.jit, static_argnames="covariance_type")
def params_from_stats(stats: SuffStats, covariance_type: str = "full", reg_covar=1e-6) -> GMMParams:
    """Closed-form maximiser of the expected complete-data log-likelihood.

    π_k = N_k / Σ_j N_j,  μ_k = c_k + d_k with d_k = sx_k / N_k, and
    Σ_k = sxx_k / N_k - d_k d_kᵀ + reg_covar·I (family-specific pooling), the
    precision Cholesky factor computed by a triangular solve.

    Args:
      stats: SuffStats from ``suff_stats`` (possibly summed over chunks).
      covariance_type: the family the statistics were accumulated for.
      reg_covar: non-negative value added to the covariance diagonals.

    Returns:
      GMMParams.
    """
    family = FAMILIES[covariance_type]
    nk = stats.nk + 10 * jnp.finfo(stats.nk.dtype).eps
    d = stats.sx / nk[:, None]
    cov = family.covariance_estimate(stats.sxx, nk, d)
    prec_chol = family.from_moments(cov, jnp.asarray(reg_covar, cov.dtype))
    return GMMParams(nk / jnp.sum(nk), stats.shift + d, prec_chol, covariance_type)


@functools.partial(jax.jit, static_argnames="covariance_type")
def m_step(
    resp: jax.Array,
    X: jax.Array,
    covariance_type: str = "full",
    reg_covar=1e-6,
    sample_weight: jax.Array | None = None,
) -> GMMParams:
    """M-step: the parameters that maximise Q(θ; γ) for fixed responsibilities.

    Args:
      resp: (N, K) responsibilities γ(z_nk).
      X: (N, D) samples.
      covariance_type: "full", "tied", "diag" or "spherical".
      reg_covar: non-negative value added to the covariance diagonals.
      sample_weight: optional (N,) non-negative weights.

    Returns:
      GMMParams, ``params_from_stats(suff_stats(resp, X, sample_weight))``.
    """
    stats = suff_stats(resp, X, sample_weight, covariance_type=covariance_type)
    return params_from_stats(stats, covariance_type, reg_covar)
