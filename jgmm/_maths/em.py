"""The E-step and the M-step, the latter as statistics → parameters.

``m_step(resp, X) = params_from_stats(suff_stats(resp, X))``. The statistics
are sums over samples, so they can be summed over chunks, devices or batches
read from disk before ``params_from_stats`` turns them into parameters.
See docs/derivation.md for the maths each function implements.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp
from jax.typing import ArrayLike

from jgmm._compile import jit
from jgmm._maths.families import family, log_gaussian
from jgmm._maths.params import GMMParams
from jgmm._maths.validation import check_covariance_type, check_params, check_shape, check_weight_shape


class SuffStats(NamedTuple):
    """Weighted sufficient statistics of a mixture, centred at ``shift``.

    Attributes:
      nk: (K,) Σ_n w_n r_nk.
      sx: (K, D) Σ_n w_n r_nk (x_n - c).
      sxx: Σ_n w_n r_nk (x_n - c)(x_n - c)ᵀ in the family's form:
        full (K, D, D); tied (D, D), summed over k; diag and spherical (K, D),
        the diagonal only.
      shift: (D,) the centre c. Statistics computed with the same shift add
        up across chunks of data.
    """

    nk: jax.Array
    sx: jax.Array
    sxx: jax.Array
    shift: jax.Array


def _weights_or_ones(sample_weight, X):
    if sample_weight is None:
        return jnp.ones(X.shape[:1], X.dtype)
    return jnp.asarray(sample_weight, X.dtype)


def weighted_log_prob(params: GMMParams, X: jax.Array, centred=False) -> jax.Array:
    """(N, K) log π_k + log N(x_n | μ_k, Σ_k); ``centred`` as in ``log_gaussian``."""
    log_gauss = log_gaussian(X, params.means, params.prec_chol, params.covariance_type, centred)
    return log_gauss + jnp.log(params.weights)


def _log_resp(params: GMMParams, X: jax.Array):
    """(N, K) log γ(z_nk) and (N,) log p(x_n), by log-sum-exp."""
    weighted = weighted_log_prob(params, X)
    log_norm = logsumexp(weighted, axis=1)
    return weighted - log_norm[:, None], log_norm


def normalised(weighted: jax.Array):
    """(N, K) γ(z_nk) and (N,) log p(x_n) from the (N, K) log π_k p(x_n | k):
    one exponential per (n, k)."""
    top = jnp.max(weighted, axis=1, keepdims=True)
    top = jax.lax.stop_gradient(jnp.where(jnp.isfinite(top), top, 0))
    e = jnp.exp(weighted - top)
    total = jnp.sum(e, axis=1, keepdims=True)
    return e / total, (top + jnp.log(total))[:, 0]


@jit
def e_step(
    params: GMMParams, X: ArrayLike, sample_weight: ArrayLike | None = None
) -> tuple[jax.Array, jax.Array]:
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
    check_params(params)
    X = check_shape(jnp.asarray(X), n_features=params.n_features, expected_by="the mixture")
    log_resp, log_norm = _log_resp(params, X)
    w = _weights_or_ones(check_weight_shape(sample_weight, X.shape[0]), X)
    return log_resp, (w @ log_norm) / jnp.sum(w)


@jit(static_argnames="covariance_type")
def suff_stats(
    resp: ArrayLike,
    X: ArrayLike,
    sample_weight: ArrayLike | None = None,
    *,
    covariance_type: str = "full",
    shift: ArrayLike | None = None,
) -> SuffStats:
    """Sufficient statistics of data weighted by responsibilities.

    Args:
      resp: (N, K) responsibilities (rows need not sum to 1).
      X: (N, D) samples.
      sample_weight: optional (N,) non-negative weights; weight 2 counts a row
        twice.
      covariance_type: which second moment to accumulate.
      shift: optional (D,) centre c. Default: the weighted mean of X. Pass a
        fixed centre (e.g. the mean of all the data) to make statistics of
        chunks add up. Second moments about a centre near the data keep
        float32 accurate on data far from the origin.

    Returns:
      SuffStats.
    """
    return _checked_stats(resp, X, sample_weight, covariance_type, shift)


def _checked_stats(resp, X, sample_weight, covariance_type: str, shift=None) -> SuffStats:
    """``suff_stats``' checks and statistics, for it and ``m_step``."""
    N, D = check_shape(X).shape
    check_shape(resp, "resp", n_samples=(N, "X"))
    w = _weights_or_ones(check_weight_shape(sample_weight, N), X)
    if shift is None:
        shift = (w @ X) / jnp.sum(w)
    elif jnp.shape(shift) != (D,):
        raise ValueError(f"shift must have shape ({D},), one centre per feature of X; got {jnp.shape(shift)}.")
    return stats_about(resp * w[:, None], X, shift, check_covariance_type(covariance_type))


def stats_about(resp_w, X, shift, covariance_type: str) -> SuffStats:
    """SuffStats of X (N, D) weighted by ``resp_w`` (N, K), the
    responsibilities times the sample weights, about the (D,) ``shift``."""
    Xc = X - shift
    sxx = family(covariance_type).second_moment(resp_w, Xc)
    return SuffStats(jnp.sum(resp_w, axis=0), resp_w.T @ Xc, sxx, shift)


@jit(static_argnames="covariance_type")
def params_from_stats(stats: SuffStats, covariance_type: str = "full", reg_covar: float = 1e-6) -> GMMParams:
    """Closed-form maximiser of the expected complete-data log-likelihood.

    π_k = N_k / Σ_j N_j,  μ_k = c + d_k with d_k = sx_k / N_k, and
    Σ_k = sxx_k / N_k - d_k d_kᵀ + reg_covar·I (family-specific pooling), the
    precision Cholesky factor computed by a triangular solve.

    Args:
      stats: SuffStats from ``suff_stats`` (possibly summed over chunks).
      covariance_type: the family the statistics were accumulated for.
      reg_covar: non-negative value added to the covariance diagonals.

    Returns:
      GMMParams. Where rounding or too few points make a covariance estimate
      singular or indefinite even after ``reg_covar``, its clipped diagonal
      stands in (see ``params_and_singular``).
    """
    covariance_type = check_covariance_type(covariance_type)
    K, D = stats.sx.shape
    expected = family(covariance_type).stats_shape(K, D)
    if stats.sxx.shape != expected:
        raise ValueError(
            f"stats.sxx has shape {stats.sxx.shape}, but covariance_type={covariance_type!r} needs {expected}: "
            f"accumulate the statistics with suff_stats(..., covariance_type={covariance_type!r})."
        )
    return params_and_singular(stats, covariance_type, reg_covar)[0]


def params_and_singular(stats: SuffStats, covariance_type: str, reg_covar, previous=None):
    """``params_from_stats``, and which covariance estimates were not positive
    definite after adding ``reg_covar``: (K,) bool, (1,) or () for a shared
    covariance. The fit loop marks such a fit DEGENERATE. ``previous``: the
    parameters before this M-step, which warm-start an iterative one."""
    f = family(covariance_type)
    nk = stats.nk + 10 * jnp.finfo(stats.nk.dtype).eps
    d = stats.sx / nk[:, None]
    cov = f.covariance_estimate(stats.sxx, nk, d)
    reg = jnp.asarray(reg_covar, cov.dtype)
    prec_chol, singular = f.from_estimate(cov, nk, reg, None if previous is None else previous.prec_chol)
    return GMMParams(nk / jnp.sum(nk), stats.shift + d, prec_chol, f.name), singular


@jit(static_argnames="covariance_type")
def m_step(
    resp: ArrayLike,
    X: ArrayLike,
    covariance_type: str = "full",
    reg_covar: float = 1e-6,
    sample_weight: ArrayLike | None = None,
) -> GMMParams:
    """M-step: the parameters that maximise Q(θ; γ) for fixed responsibilities.

    Args:
      resp: (N, K) responsibilities γ(z_nk).
      X: (N, D) samples.
      covariance_type: a registered family (``jgmm.family_names()``): "full",
        "tied", "diag", "spherical", or an alias such as mclust's "VVV".
      reg_covar: non-negative value added to the covariance diagonals.
      sample_weight: optional (N,) non-negative weights.

    Returns:
      GMMParams, ``params_from_stats(suff_stats(resp, X, sample_weight))``.
    """
    stats = _checked_stats(resp, X, sample_weight, covariance_type)
    return params_and_singular(stats, covariance_type, reg_covar)[0]


def chunk_stats(resp, X, w, covariance_type: str) -> SuffStats:
    """``suff_stats`` of a centred chunk, about 0."""
    return stats_about(resp * w[:, None], X, jnp.zeros(X.shape[-1:], X.dtype), covariance_type)


def add_stats(a: SuffStats, b: SuffStats) -> SuffStats:
    """The statistics of two disjoint sets of rows (same ``shift``)."""
    return SuffStats(a.nk + b.nk, a.sx + b.sx, a.sxx + b.sxx, a.shift)
