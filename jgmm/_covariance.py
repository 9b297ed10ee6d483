"""The four covariance families behind one interface.

Each family is a ``Family`` of pure functions on arrays, with scikit-learn's
precision-Cholesky shapes (P with Σ⁻¹ = P Pᵀ):

  full (K, D, D)   tied (D, D)   diag (K, D)   spherical (K,)

``second_moment(resp_w, Xc)`` accumulates the family's second-moment
statistic from weighted responsibilities (N, K) and shifted data (N, D) as
matrix products; ``from_moments(S, reg_covar)`` turns the (unregularised) covariance
estimate S into P; ``log_det(P, D)`` gives log |P| = -½ log |Σ| per component;
``log_gaussian`` gives log N(x_n | μ_k, Σ_k) as an (N, K) array without ever
forming Σ or its inverse. Adding a family touches this module only.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular


class Family(NamedTuple):
    """The functions that define one covariance family."""

    log_det: Callable  # prec_chol, D -> (K,) or () log |P|
    squared_mahalanobis: Callable  # X (N,D), means (K,D), prec_chol -> (N, K)
    second_moment: Callable  # resp_w (N,K), Xc (N,D) -> sxx in stats shape
    covariance_estimate: Callable  # sxx, nk (K,), d (K,D) -> S (unregularised)
    moments_from_covariance: Callable  # Σ (covariances' shape), nk, d -> sxx: covariance_estimate's inverse
    from_moments: Callable  # covariance estimate, reg_covar -> (prec_chol, singular bool per component)
    covariances: Callable  # prec_chol -> Σ (sklearn covariances_ shape)
    precisions: Callable  # prec_chol -> Σ⁻¹ (sklearn precisions_ shape)
    prec_chol_from_covariances: Callable  # Σ -> prec_chol
    variances: Callable  # prec_chol, data_cov (D,D) -> ((K, M) variances along M
    #                      principal axes of each Σ_k, (K, M) the data's variance there)
    colour: Callable  # z (n, D) ~ N(0, I), labels (n,), prec_chol -> (n, D) ~ N(0, Σ_label)
    n_parameters: Callable  # K, D -> number of free covariance parameters


def _eye_like(A):
    return jnp.eye(A.shape[-1], dtype=A.dtype)


def _chol_prec_from_cov(cov):
    """P = L⁻ᵀ for Σ = L Lᵀ, by a triangular solve (no explicit inverse)."""
    L = jnp.linalg.cholesky(cov)
    eye = jnp.broadcast_to(_eye_like(cov), cov.shape)
    return jnp.swapaxes(solve_triangular(L, eye, lower=True), -1, -2)


def _cov_chol(P):
    """Lower-triangular L = P⁻ᵀ with Σ = L Lᵀ."""
    eye = jnp.broadcast_to(_eye_like(P), P.shape)
    return jnp.swapaxes(solve_triangular(P, eye, lower=False), -1, -2)


def _cov_from_chol_prec(P):
    """Σ = P⁻ᵀ P⁻¹ from the upper-triangular P."""
    L = _cov_chol(P)
    return L @ jnp.swapaxes(L, -1, -2)


def _regularised_prec_chol(S, reg):
    """P for Σ = S + reg·I, and whether S + reg·I was not positive definite.

    There (too few points for the dimension, or rounding: S = sxx/N_k - d dᵀ
    cancels on duplicated points far from the centre) the diagonal of S,
    clipped at 0, stands in, so P stays finite; the flag lets the fit mark
    the member DEGENERATE."""
    P = _chol_prec_from_cov(_add_to_diagonal(S, reg))
    diagonal = jnp.maximum(jnp.diagonal(S, axis1=-2, axis2=-1), 0) + reg
    fallback = jnp.vectorize(jnp.diag, signature="(d)->(d,d)")(jax.lax.rsqrt(diagonal))
    ok = jnp.all(jnp.isfinite(P), axis=(-2, -1))
    return jnp.where(ok[..., None, None], P, fallback), ~ok


def _clipped_rsqrt(S, reg):
    """P = (max(S, 0) + reg)^(-1/2) per variance, and whether any variance of a
    component (last axis, if any) was not positive."""
    variance = jnp.maximum(S, 0) + reg
    singular = variance <= 0
    return jax.lax.rsqrt(variance), jnp.any(singular, axis=-1) if singular.ndim > 1 else singular


def _add_to_diagonal(cov, value):
    D = cov.shape[-1]
    return cov + value * jnp.eye(D, dtype=cov.dtype)


def _log_diag(P, D):
    return jnp.sum(jnp.log(jnp.diagonal(P, axis1=-2, axis2=-1)), axis=-1)


def _precision_eig_variances(P, data_cov):
    """Variances 1/μ along the eigenvectors v of Λ = P Pᵀ, and vᵀ C v of the data.

    The eigenvalues are taken of the precision, whose largest (the direction
    of smallest variance) eigen-solvers get right to relative precision.
    """
    mu, V = jnp.linalg.eigh(P @ jnp.swapaxes(P, -1, -2))
    data_var = jnp.einsum("...dm,de,...em->...m", V, data_cov, V)
    return 1.0 / mu, data_var


# ----------------------------------------------------------------------------- full


def _full_sq_mahalanobis(X, means, P):
    # One (K·D, D) x (D, N) product: y_kn = P_kᵀ x_n - P_kᵀ μ_k; never (N, K, D, D).
    N, D = X.shape
    K = means.shape[0]
    P_all = jnp.swapaxes(P, 1, 2).reshape(K * D, D)
    y = (P_all @ X.T).reshape(K, D, N) - jnp.einsum("kd,kde->ke", means, P)[:, :, None]
    return jnp.sum(y * y, axis=1).T


def _full_second_moment(r, Xc):
    # Σ_n r_nk x_n x_nᵀ for all k as one (K, N) x (N, D(D+1)/2) product of the
    # responsibilities with the products x_i x_j, i <= j (built from static
    # slices, in np.triu_indices order), then mirrored: half the flops of K
    # Gram matrices and no (N, K·D) temporary; 5x faster than that form at
    # N=4096, K=D=32 on CPU.
    D = Xc.shape[1]
    products = jnp.concatenate([Xc[:, i : i + 1] * Xc[:, i:] for i in range(D)], axis=1)
    upper = r.T @ products
    return upper[:, _symmetric_index(D)]


def _symmetric_index(D):
    """(D, D) position of entry (min(i, j), max(i, j)) in np.triu_indices(D) order."""
    i, j = np.triu_indices(D)
    index = np.empty((D, D), np.int32)
    index[i, j] = index[j, i] = np.arange(i.size)
    return index


FULL = Family(
    log_det=_log_diag,
    squared_mahalanobis=_full_sq_mahalanobis,
    second_moment=_full_second_moment,
    covariance_estimate=lambda sxx, nk, d: sxx / nk[:, None, None] - d[:, :, None] * d[:, None, :],
    moments_from_covariance=lambda cov, nk, d: nk[:, None, None] * (cov + d[:, :, None] * d[:, None, :]),
    from_moments=_regularised_prec_chol,
    covariances=_cov_from_chol_prec,
    precisions=lambda P: P @ jnp.swapaxes(P, -1, -2),
    prec_chol_from_covariances=_chol_prec_from_cov,
    variances=_precision_eig_variances,
    colour=lambda z, labels, P: jnp.take_along_axis(
        jnp.einsum("nd,ked->nke", z, _cov_chol(P)), labels[:, None, None], axis=1
    )[:, 0],
    n_parameters=lambda K, D: K * D * (D + 1) // 2,
)

# ----------------------------------------------------------------------------- tied


def _expanded_sq_distances(Y, M, scale):
    """(N, K) Σ_d (y_nd - m_kd)² s_kd as matrix products (s = 1 when None).

    ‖y - m‖² = ‖y‖² - 2 y·m + ‖m‖²: no (N, K, D) array. The inputs are
    centred (by ``log_gaussian``, or the fit's chunks) so the expansion does
    not cancel badly.
    """
    if scale is None:
        sq = jnp.sum(Y * Y, 1)[:, None] - 2 * Y @ M.T + jnp.sum(M * M, 1)[None, :]
    else:
        sq = (Y * Y) @ scale.T - 2 * Y @ (M * scale).T + jnp.sum(M * M * scale, 1)[None, :]
    return jnp.maximum(sq, 0)


def _tied_sq_mahalanobis(X, means, P):
    # As _expanded_sq_distances of (X P, μ P), computed as (K, N) with the
    # samples along the fast axis: for a batch of fits the whitened data
    # (members, N, D) are then never transposed (2x faster on CPU).
    Y, M = P.T @ X.T, means @ P  # (D, N), (K, D)
    return jnp.maximum(jnp.sum(Y * Y, 0)[None, :] - 2 * M @ Y + jnp.sum(M * M, 1)[:, None], 0).T


TIED = Family(
    log_det=_log_diag,
    squared_mahalanobis=_tied_sq_mahalanobis,
    second_moment=lambda r, Xc: (Xc * jnp.sum(r, axis=1)[:, None]).T @ Xc,
    covariance_estimate=lambda sxx, nk, d: (sxx - jnp.einsum("k,kd,ke->de", nk, d, d)) / jnp.sum(nk),
    moments_from_covariance=lambda cov, nk, d: cov * jnp.sum(nk) + jnp.einsum("k,kd,ke->de", nk, d, d),
    from_moments=FULL.from_moments,
    covariances=_cov_from_chol_prec,
    precisions=FULL.precisions,
    prec_chol_from_covariances=_chol_prec_from_cov,
    variances=lambda P, C: jax.tree.map(lambda a: a[None], _precision_eig_variances(P, C)),
    colour=lambda z, labels, P: z @ _cov_chol(P).T,
    n_parameters=lambda K, D: D * (D + 1) // 2,
)

# ----------------------------------------------------------------------------- diag


def _diag_sq_mahalanobis(X, means, P):
    return _expanded_sq_distances(X, means, P * P)


DIAG = Family(
    log_det=lambda P, D: jnp.sum(jnp.log(P), axis=-1),
    squared_mahalanobis=_diag_sq_mahalanobis,
    second_moment=lambda r, Xc: r.T @ (Xc * Xc),
    covariance_estimate=lambda sxx, nk, d: sxx / nk[:, None] - d * d,
    moments_from_covariance=lambda cov, nk, d: nk[:, None] * (cov + d * d),
    from_moments=_clipped_rsqrt,
    covariances=lambda P: 1.0 / (P * P),
    precisions=lambda P: P * P,
    prec_chol_from_covariances=jax.lax.rsqrt,
    variances=lambda P, C: (1.0 / (P * P), jnp.broadcast_to(jnp.diagonal(C), P.shape)),
    colour=lambda z, labels, P: z / P[labels],
    n_parameters=lambda K, D: K * D,
)

# ------------------------------------------------------------------------ spherical


def _spherical_sq_mahalanobis(X, means, P):
    return _expanded_sq_distances(X, means, None) * (P * P)[None, :]


SPHERICAL = Family(
    log_det=lambda P, D: D * jnp.log(P),
    squared_mahalanobis=_spherical_sq_mahalanobis,
    second_moment=DIAG.second_moment,
    covariance_estimate=DIAG.covariance_estimate,
    moments_from_covariance=lambda cov, nk, d: nk[:, None] * (cov[:, None] + d * d),
    from_moments=lambda S, reg: _clipped_rsqrt(jnp.mean(S, axis=-1), reg),
    covariances=DIAG.covariances,
    precisions=DIAG.precisions,
    prec_chol_from_covariances=jax.lax.rsqrt,
    variances=lambda P, C: (
        1.0 / (P * P)[:, None],
        jnp.broadcast_to(jnp.trace(C) / C.shape[-1], P.shape)[:, None],
    ),
    colour=lambda z, labels, P: z / P[labels][:, None],
    n_parameters=lambda K, D: K,
)

FAMILIES = {"full": FULL, "tied": TIED, "diag": DIAG, "spherical": SPHERICAL}


def log_gaussian(X: jax.Array, means: jax.Array, prec_chol: jax.Array, covariance_type: str, centred=False):
    """log N(x_n | μ_k, Σ_k) for all n, k.

    Args:
      X: (N, D) samples.
      means: (K, D).
      prec_chol: precision Cholesky factors in the family's shape.
      covariance_type: the family.
      centred: static; X and the means are already measured from a point
        near the data (the fit's chunks are), so they are not moved again.

    Returns:
      (N, K) log densities: -½ (D log 2π + ‖(x_n - μ_k) P_k‖²) + log |P_k|.
    """
    D = X.shape[-1]
    family = FAMILIES[covariance_type]
    if not centred:
        # Translation invariance: measure from the centre of the means, which
        # keeps float32 products accurate on data far from the origin.
        centre = jnp.mean(means, axis=0)
        X, means = X - centre, means - centre
    # Centred data are shared by a batch of members (one wide matrix product
    # instead of one per member: the E-step of diag and spherical 2x faster).
    sq = family.squared_mahalanobis(X, means, prec_chol)
    return -0.5 * (D * math.log(2 * math.pi) + sq) + family.log_det(prec_chol, D)
