"""Missing values: EM on the observed entries (Ghahramani & Jordan 1994).

NaN entries are missing at random. Sample n's observed features o enter the
E-step through their marginal, N(x_o | μ_k,o, Σ_k,oo). The M-step takes, per
sample and component, the conditional mean of the sample,
x̂_nk = μ_k + Σ_k,·o Σ_k,oo⁻¹ (x_o - μ_k,o) (its observed entries unchanged),
and the conditional covariance C_nk of its missing entries,
Σ_k,mm - Σ_k,mo Σ_k,oo⁻¹ Σ_k,om (zero elsewhere). The statistics are then

  N_k = Σ_n γ_nk,  sx_k = Σ_n γ_nk x̂_nk,  sxx_k = Σ_n γ_nk (x̂_nk x̂_nkᵀ + C_nk),

and ``params_from_stats`` turns them into parameters as before
(docs/derivation.md §13).

One program serves every pattern of missing entries: with O = diag(o), the
matrix S̃ = O Σ O + (I - O) is Σ_oo on the observed block and the identity
elsewhere, so its Cholesky factor L gives log |Σ_oo| = log |S̃| and, with
z = L⁻¹ O (x - μ) and G = L⁻¹ O Σ, the Mahalanobis distance ‖z‖², x̂ = μ + Gᵀ z
and C = Σ - Gᵀ G. That costs O(K·D³) per sample for the full and tied
families; for diag and spherical, whose Σ is diagonal, x̂ = μ and C = Σ on
the missing entries, O(K·D).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular

from jgmm._maths.families import family
from jgmm._maths.params import GMMParams


def fill(X: jax.Array) -> jax.Array:
    """X with its missing (NaN) entries set to 0: in data centred at the mean
    of the observed values, mean imputation."""
    return jnp.where(jnp.isnan(X), 0, X)


def observed_mean(X, w):
    """(D,) weighted mean of each feature over the samples observing it; in
    numpy for numpy arrays (host data stay on the host)."""
    xp = np if isinstance(X, np.ndarray) else jnp
    observed = ~xp.isnan(X)
    return (w @ xp.where(observed, X, 0)) / (w @ observed.astype(X.dtype))


def conditionals(params: GMMParams, X):
    """(B, K) log N(x_o | μ_k,o, Σ_k,oo) and the conditional moments, for
    samples X (B, D) with NaN where missing.

    Returns the log densities, x̂ (B, K, D) and C: (B, K, D, D), or
    (B, K, D) (its diagonal) for a family of diagonal covariances.
    """
    K, D = params.means.shape
    O, X0 = (~jnp.isnan(X)).astype(X.dtype), fill(X)
    f = family(params.covariance_type)
    cov = f.dense_covariances(params.prec_chol, K, D)
    if f.diagonal:
        cov = jnp.diagonal(cov, axis1=-2, axis2=-1)
        delta = X0[:, None, :] - params.means
        sq = jnp.sum(O[:, None, :] * delta * delta / cov, axis=-1)
        log_det = O @ jnp.log(cov).T
        xhat = O[:, None, :] * X0[:, None, :] + (1 - O)[:, None, :] * params.means
        C = (1 - O)[:, None, :] * cov
    else:
        O_cov = O[:, None, :, None] * cov  # O Σ: rows of missing features zeroed
        S = O_cov * O[:, None, None, :] + (1 - O)[:, None, :, None] * jnp.eye(D, dtype=X0.dtype)
        L = jnp.linalg.cholesky(S)
        z = solve_triangular(L, (O[:, None, :] * (X0[:, None, :] - params.means))[..., None], lower=True)[..., 0]
        G = solve_triangular(L, O_cov, lower=True)
        sq = jnp.sum(z * z, axis=-1)
        log_det = 2 * jnp.sum(jnp.log(jnp.diagonal(L, axis1=-2, axis2=-1)), axis=-1)
        xhat = params.means + jnp.einsum("bkde,bkd->bke", G, z)
        C = cov - jnp.einsum("bkde,bkdf->bkef", G, G)
    n_observed = jnp.sum(O, axis=1)[:, None]
    return -0.5 * (n_observed * math.log(2 * math.pi) + sq + log_det), xhat, C


def observed_log_prob(params: GMMParams, X: jax.Array) -> jax.Array:
    """(N, K) log π_k + log N(x_o | μ_k,o, Σ_k,oo), each sample's observed
    (non-NaN) features only; a sample with none gets log π_k."""
    return conditionals(params, X)[0] + jnp.log(params.weights)


def missing_stats(r, xhat, C, covariance_type: str):
    """The statistics of a chunk with missing entries, about 0.

    Args:
      r: (B, K) responsibilities times the sample weights.
      xhat, C: the conditional moments from ``conditionals``.
      covariance_type: the family (sxx's form).

    Returns:
      (nk (K,), sx (K, D), sxx): sxx in the family's form
      (``jgmm._maths.em.SuffStats``).
    """
    nk = jnp.sum(r, axis=0)
    sx = jnp.einsum("bk,bkd->kd", r, xhat)
    if family(covariance_type).diagonal:
        moments = jnp.einsum("bk,bkd->kd", r, xhat * xhat + C)
    else:
        moments = jnp.einsum("bk,bkd,bke->kde", r, xhat, xhat) + jnp.einsum("bk,bkde->kde", r, C)
    return nk, sx, family(covariance_type).pool_second_moments(moments)
