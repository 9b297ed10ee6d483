"""Conjugate priors and the MAP M-step (Fraley & Raftery 2007, mclust's priorControl).

Weights: a symmetric Dirichlet(α). Means and covariances: normal-inverse-
Wishart, μ_k | Σ_k ~ N(μ_p, Σ_k / κ) and Σ_k ~ IW(ν, Λ) (full; one Σ for
tied); for the diag and spherical families each variance has the matching
inverse-gamma prior, IG(ν/2, Λ_d/2), with μ_kd | σ²_kd ~ N(μ_pd, σ²_kd / κ).
The posterior mode has a closed form (docs/derivation.md §12): the means
shrink toward μ_p, and every covariance is bounded below by Λ/(ν + …), so a
component cannot collapse onto a point.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jgmm._compile import full_precision
from jgmm._maths.em import SuffStats
from jgmm._maths.families import family
from jgmm._maths.missing import observed_mean
from jgmm._maths.params import GMMParams


class Prior(NamedTuple):
    """Hyper-parameters of the conjugate prior, in data coordinates.

    Attributes:
      weight_concentration: () Dirichlet α (1: no prior on the weights).
      mean: (D,) μ_p.
      shrinkage: () κ, the prior's weight in samples on the means.
      dof: () ν.
      scale: Λ: (D, D) for full and tied, (D,) for diag, () for spherical.
    """

    weight_concentration: jax.Array
    mean: jax.Array
    shrinkage: jax.Array
    dof: jax.Array
    scale: jax.Array


@full_precision
def default_prior(
    X: ArrayLike, n_components: int, covariance_type: str = "full", sample_weight: ArrayLike | None = None
) -> Prior:
    """mclust's default prior for these data (``defaultPrior``): μ_p the data's
    mean, κ = 0.01, ν = D + 2, and the scale the data's covariance (its
    diagonal for diag, the mean variance for spherical) divided by K^(2/D);
    no prior on the weights (α = 1).

    Args:
      X: (N, D) the data; NaN entries (missing values) are left out: the
        mean of each feature over its observed entries, the covariances over
        the pairs observed together. Data on devices are reduced there.
      n_components: K.
      covariance_type: the family, which sets the scale's shape.
      sample_weight: optional (N,) weights (an integer weight m counts a row
        m times; rows of weight 0, such as ``jgmm.shard``'s padding, not at all).
    """
    xp = jnp if isinstance(X, jax.Array) else np
    dtype = jax.dtypes.canonicalize_dtype(np.float64)
    X = xp.asarray(X, dtype)
    D = X.shape[1]
    w = xp.ones(X.shape[:1], dtype) if sample_weight is None else xp.asarray(sample_weight, dtype)
    observed = (~xp.isnan(X)).astype(dtype)
    mean = observed_mean(X, w)
    centred = xp.where(observed > 0, X - mean, 0)
    pairs = (observed * w[:, None]).T @ observed  # (D, D) weight observed in both features
    cov = (centred * w[:, None]).T @ centred / (pairs - 1)  # np.cov's N - 1 for unit weights
    scale = family(covariance_type).default_prior_scale(cov)
    prior = Prior(*(jnp.asarray(v, dtype) for v in (1.0, mean, 0.01, D + 2.0, scale)))
    return prior_for_k(prior, n_components)


def prior_for_k(prior: Prior, K) -> Prior:
    """``prior`` with its scale divided by K^(2/D), as mclust's default prior
    scales with the number of components (K may be traced)."""
    return prior._replace(scale=prior.scale * jnp.asarray(K, prior.scale.dtype) ** (-2.0 / prior.mean.shape[-1]))


def map_params_and_singular(stats: SuffStats, covariance_type: str, reg_covar, prior: Prior, previous=None):
    """``params_and_singular`` for the posterior mode: GMMParams and which
    covariance estimates were not positive definite. The weights and means
    have closed forms; the family turns the posterior scatter into its
    covariance estimate (``Family.map_covariance_estimate``)."""
    f = family(covariance_type)
    K = stats.sx.shape[0]
    nk = stats.nk + 10 * jnp.finfo(stats.nk.dtype).eps
    alpha, kappa = prior.weight_concentration, prior.shrinkage
    d = stats.sx / nk[:, None]  # x̄_k - c
    m = prior.mean - stats.shift  # μ_p - c
    means = stats.shift + (nk[:, None] * d + kappa * m) / (nk + kappa)[:, None]
    weights = (nk + alpha - 1) / (jnp.sum(nk) + K * (alpha - 1))
    scatter = stats.sxx - f.outer(nk, d) + f.outer(kappa * nk / (kappa + nk), d - m)
    cov, counts = f.map_covariance_estimate(scatter, nk, prior.scale, prior.dof)
    reg = jnp.asarray(reg_covar, cov.dtype)
    prec_chol, singular = f.from_estimate(cov, counts, reg, None if previous is None else previous.prec_chol)
    return GMMParams(weights, means, prec_chol, f.name), singular
