"""Covariance families: the only code that knows a family.

A family is a ``Family``: the shapes of its parameters and statistics, its
density, its M-step, its conversions, its parameter count, its priors and its
collapse measure, as pure functions on arrays. Everything else in jgmm asks
the family (``family(name)``) and never switches on a name. The registry
(``register_family``) is the one list of names; a family defined outside the
package is registered the same way and then works everywhere.

The four built-in families use scikit-learn's precision-Cholesky shapes (P
with Σ⁻¹ = P Pᵀ, upper triangular where it is a matrix):

  full (K, D, D)   tied (D, D)   diag (K, D)   spherical (K,)

mclust's names for them (VVV, EEE, VVI, VII) are aliases. mclust's other ten
eigen-decomposition families (EII, EEI, VEI, EVI, VEE, EVE, VVE, EEV, VEV,
EVV; ``jgmm._maths.eigen``) are named by their three letters and keep full's
shapes. Each family has one canonical name, the one tables, saved models and
estimators report: scikit-learn's where it has one, else mclust's.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular

from jgmm._maths import eigen

Array = jax.Array


@dataclasses.dataclass(frozen=True, eq=False)
class Family:
    """One covariance family: everything jgmm needs to know about it.

    P is the family's precision-Cholesky parameter (``GMMParams.prec_chol``);
    "stats form" is the shape of the second-moment statistic
    ``SuffStats.sxx`` and of covariance estimates S. K components, D features.

    Attributes:
      name: the canonical name, reported in tables, files and estimators.
      aliases: other accepted names (e.g. mclust's three letters).
      shared: one covariance for all components (P has no component axis).
      diagonal: every covariance is diagonal (missing values cost O(K·D)).
      prec_chol_shape: (K, D) -> shape of P.
      stats_shape: (K, D) -> shape of sxx and of S.
      prior_scale_shape: D -> shape of the conjugate prior's scale Λ.
      n_parameters: (K, D) -> free covariance parameters.
      log_det: (P, D) -> (K,) log |P| = -½ log |Σ_k| (shape (1,) or () if shared).
      squared_mahalanobis: (X (N, D), means (K, D), P) -> (N, K) ‖(x_n - μ_k) P_k‖²,
        on centred data (no Σ or inverse formed).
      second_moment: (resp_w (N, K), Xc (N, D)) -> sxx, Σ_n r_nk x_n x_nᵀ in stats form.
      pool_second_moments: per-component moments, (K, D) diagonals if
        ``diagonal`` else (K, D, D) -> stats form.
      outer: (c (K,), d (K, D)) -> Σ_k c_k d_k d_kᵀ in stats form.
      covariance_estimate: (sxx, nk (K,), d (K, D)) -> S, the maximum-likelihood
        covariance before regularisation (d: means about the statistics' centre).
      moments_from_covariance: (Σ in ``covariances``' shape, nk, d) -> sxx whose
        ``covariance_estimate`` is Σ.
      map_covariance_estimate: (scatter in stats form, nk, scale Λ, dof ν) ->
        (S, counts): ``from_estimate`` of S with these counts (K,) in place
        of nk is the posterior mode's covariance under the conjugate prior,
        from the scatter Σ_n r (x - x̄)(x - x̄)ᵀ + Σ_k t_k e_k e_kᵀ
        (``jgmm._maths.prior``); None for a family that takes no prior.
      from_estimate: (S, nk, reg_covar, previous P) -> (P, singular): P for
        S + reg_covar·I, and which covariances (K,) (or (1,)/() if shared) were
        not positive definite, a finite stand-in used there. ``previous``
        warm-starts families whose M-step is iterative (which keep it where
        it is better: ``keeps_previous``).
      covariances: P -> Σ in scikit-learn's ``covariances_`` shape.
      precisions: P -> Σ⁻¹ in scikit-learn's ``precisions_`` shape.
      dense_covariances: (P, K, D) -> (K, D, D) covariance matrices.
      prec_chol_from_covariances: Σ (``covariances``' shape) -> P.
      prec_chol_from_precisions: Σ⁻¹ (``precisions``' shape) -> P, without
        an explicit inverse (NaN where Σ⁻¹ is not positive definite).
      to_unconstrained: P -> (n_parameters,) free parameters, any point of
        which is a valid P (``fit_gradient``); None where ``fit_gradient``
        does not fit the family.
      from_unconstrained: (free, K, D) -> P (None with to_unconstrained).
      variances: (P, data_cov (D, D)) -> ((K', M) variances along M principal
        axes of each Σ_k, (K', M) the data's variance along them), K' = K, or
        1 if shared: the collapse measure (``jgmm._engine.step``).
      colour: (z (n, D) ~ N(0, I), labels (n,), P) -> (n, D) ~ N(0, Σ_label).
      row_work: (K, D, missing) -> numbers the E-step holds per sample and
        member (the chunk budget).
      check_values: numpy P -> None; raises ValueError when P is not a valid
        factor (scoring, ``load``).
      default_prior_scale: (D, D) data covariance -> mclust's prior scale Λ
        for K = 1 (numpy or jax).
      one_feature: the canonical name of the family this one equals when
        D = 1 (``select`` fits each such model once); None: no other.
    """

    name: str
    aliases: tuple[str, ...]
    shared: bool
    diagonal: bool
    prec_chol_shape: Callable[[int, int], tuple]
    stats_shape: Callable[[int, int], tuple]
    prior_scale_shape: Callable[[int], tuple]
    n_parameters: Callable[[int, int], int]
    log_det: Callable
    squared_mahalanobis: Callable
    second_moment: Callable
    pool_second_moments: Callable
    outer: Callable
    covariance_estimate: Callable
    moments_from_covariance: Callable
    map_covariance_estimate: Callable | None
    from_estimate: Callable
    covariances: Callable
    precisions: Callable
    dense_covariances: Callable
    prec_chol_from_covariances: Callable
    prec_chol_from_precisions: Callable
    to_unconstrained: Callable | None
    from_unconstrained: Callable | None
    variances: Callable
    colour: Callable
    row_work: Callable[[int, int, bool], int]
    check_values: Callable
    default_prior_scale: Callable
    one_feature: str | None = None

    keeps_previous = False  # from_estimate may return ``previous`` (see _EigenFamily)

    def per_component(self, a, K: int):
        """``a`` (a per-component array of the family, leading axis K unless
        shared) with a leading K axis."""
        return jnp.broadcast_to(a, (K,) + jnp.shape(a)) if self.shared else a

    def take(self, P, K: int):
        """P of the first K components."""
        return P if self.shared else P[:K]

    def switch_off(self, P, mask):
        """P with the components where ``mask`` (K,) is False at unit
        precision (padding, ``jgmm._engine.step.mask_components``); a shared P stays."""
        if self.shared:
            return P
        unit = jnp.broadcast_to(jnp.eye(P.shape[-1], dtype=P.dtype), P.shape) if P.ndim == 3 else jnp.ones_like(P)
        return _where_components(mask, P, unit)

    def projected(self, P, K: int, D: int, nk=None):
        """(K, D, D) the covariances of P moved into the family by its
        M-step (one unit of weight per component, or ``nk`` (K,); a
        component of weight 0 does not shape the shared parameters),
        warm-started at P: P's own covariances when they are of the family's form."""
        nk = jnp.ones((K,), P.dtype) if nk is None else nk
        d = jnp.zeros((K, D), P.dtype)
        S = self.covariance_estimate(self.moments_from_covariance(self.covariances(P), nk, d), nk, d)
        return self.dense_covariances(self._warm_estimate(S, nk, P)[0], K, D)

    def _warm_estimate(self, S, nk, P):
        """``from_estimate`` of S warm-started at P, unregularised."""
        return self.from_estimate(S, nk, jnp.zeros((), P.dtype), P)

    def restart(self, P, one, P_start):
        """P with the component where ``one`` (K,) is True replaced by
        ``P_start``'s (a one-component P); a shared P stays."""
        return P if self.shared else _where_components(one, P_start, P)


def _where_components(condition, a, b):
    """Per component (leading axis): a where ``condition`` (K,), else b."""
    return jnp.where(condition.reshape((-1,) + (1,) * (jnp.ndim(b) - 1)), a, b)


# --------------------------------------------------------------------- registry

_REGISTRY: dict[str, Family] = {}
_NAMES: dict[str, Family] = {}  # every accepted name, aliases included


def register_family(family: Family) -> Family:
    """Add ``family`` to the registry under its name and aliases, so that
    every function taking ``covariance_type`` accepts them. Returns it.

    Raises:
      TypeError: not a Family.
      ValueError: a name already taken by another family.
    """
    if not isinstance(family, Family):
        raise TypeError(f"Expected a jgmm.Family, got {type(family).__name__}.")
    for name in (family.name, *family.aliases):
        if name in _NAMES and _NAMES[name] is not family:
            raise ValueError(f"covariance_type {name!r} is already registered for family {_NAMES[name].name!r}.")
    _REGISTRY[family.name] = family
    for name in (family.name, *family.aliases):
        _NAMES[name] = family
    return family


def family_names() -> tuple[str, ...]:
    """The canonical names of the registered families, in registration order."""
    return tuple(_REGISTRY)


def accepted_names() -> tuple[str, ...]:
    """Every accepted ``covariance_type``: canonical names and aliases."""
    return tuple(_NAMES)


def canonical_name(covariance_type) -> str:
    """The canonical name of a registered name or alias.

    Raises:
      ValueError: not a registered name; the message lists them all.
    """
    if not isinstance(covariance_type, str) or covariance_type not in _NAMES:
        names = ", ".join(map(repr, sorted(_REGISTRY)))
        aliases = ", ".join(map(repr, sorted(set(_NAMES) - set(_REGISTRY))))
        raise ValueError(
            f"The 'covariance_type' parameter must be a str among {{{names}}} (or an alias: {aliases}). "
            f"Got {covariance_type!r} instead."
        )
    return _NAMES[covariance_type].name


def family(covariance_type: str) -> Family:
    """The registered Family of a name or alias (``canonical_name``'s errors)."""
    return _NAMES[canonical_name(covariance_type)]


# ------------------------------------------------------------ shared building blocks


def _eye_like(A):
    return jnp.eye(A.shape[-1], dtype=A.dtype)


def _chol_prec_from_cov(cov):
    """P = L⁻ᵀ for Σ = L Lᵀ, by a triangular solve (no explicit inverse)."""
    L = jnp.linalg.cholesky(cov)
    eye = jnp.broadcast_to(_eye_like(cov), cov.shape)
    return jnp.swapaxes(solve_triangular(L, eye, lower=True), -1, -2)


def _chol_prec_from_prec(precision):
    """Upper-triangular P with P Pᵀ = Λ: the Cholesky factor of Λ with its
    rows and columns reversed (J L J for J Λ J = L Lᵀ), no inverse."""
    flip = lambda A: A[..., ::-1, ::-1]
    return flip(jnp.linalg.cholesky(flip(precision)))


def _cov_chol(P):
    """Lower-triangular L = P⁻ᵀ with Σ = L Lᵀ."""
    eye = jnp.broadcast_to(_eye_like(P), P.shape)
    return jnp.swapaxes(solve_triangular(P, eye, lower=False), -1, -2)


def _cov_from_chol_prec(P):
    """Σ = P⁻ᵀ P⁻¹ from the upper-triangular P."""
    L = _cov_chol(P)
    return L @ jnp.swapaxes(L, -1, -2)


def _gram(P):
    return P @ jnp.swapaxes(P, -1, -2)


def _regularised_prec_chol(S, nk, reg, previous=None):
    """P for Σ = S + reg·I, and whether S + reg·I was not positive definite.

    There (too few points for the dimension, or rounding: S = sxx/N_k - d dᵀ
    cancels on duplicated points far from the centre) the diagonal of S,
    clipped at 0, stands in, so P stays finite; the flag lets the fit mark
    the member DEGENERATE."""
    del nk, previous
    P = _chol_prec_from_cov(_add_to_diagonal(S, reg))
    diagonal = jnp.maximum(jnp.diagonal(S, axis1=-2, axis2=-1), 0) + reg
    fallback = _diag_matrices(jax.lax.rsqrt(diagonal))
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


def _outer(a):
    return a[:, :, None] * a[:, None, :]


def _precision_eig_variances(P, data_cov):
    """Variances 1/μ along the eigenvectors v of Λ = P Pᵀ, and vᵀ C v of the data.

    The eigenvalues are taken of the precision, whose largest (the direction
    of smallest variance) eigen-solvers get right to relative precision.
    """
    mu, V = jnp.linalg.eigh(_gram(P))
    data_var = jnp.einsum("...dm,de,...em->...m", V, data_cov, V)
    return 1.0 / mu, data_var


def _triangular_to_free(P):
    """(..., D(D+1)/2): P's upper triangle (np.triu_indices order), log of its diagonal."""
    i, j = np.triu_indices(P.shape[-1])
    upper, diagonal = P[..., i, j], i == j
    return upper.at[..., diagonal].set(jnp.log(upper[..., diagonal]))


def _free_to_triangular(free, D):
    """``_triangular_to_free``'s inverse: upper-triangular P with a positive diagonal."""
    i, j = np.triu_indices(D)
    diagonal = i == j
    upper = free.at[..., diagonal].set(jnp.exp(free[..., diagonal]))
    return jnp.zeros(free.shape[:-1] + (D, D), free.dtype).at[..., i, j].set(upper)


def _check_triangular(P: np.ndarray) -> None:
    triangular = np.all(np.tril(P, -1) == 0) or np.all(np.triu(P, 1) == 0)
    if not triangular or np.any(np.diagonal(P, axis1=-2, axis2=-1) <= 0):
        raise ValueError(
            "params.prec_chol is not triangular with a positive diagonal, so it is not the Cholesky "
            "factor of a positive-definite precision matrix."
        )


def _check_positive(P: np.ndarray) -> None:
    if np.any(P <= 0):
        raise ValueError("params.prec_chol has entries <= 0; the precisions must be positive.")


def _symmetric_index(D):
    """(D, D) position of entry (min(i, j), max(i, j)) in np.triu_indices(D) order."""
    i, j = np.triu_indices(D)
    index = np.empty((D, D), np.int32)
    index[i, j] = index[j, i] = np.arange(i.size)
    return index


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


def _diag_matrices(v):
    return jnp.vectorize(jnp.diag, signature="(d)->(d,d)")(v)


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


def _full_missing_work(K, D, missing):
    return K * D * D if missing else K * D


FULL = Family(
    name="full",
    aliases=("VVV",),
    shared=False,
    diagonal=False,
    prec_chol_shape=lambda K, D: (K, D, D),
    stats_shape=lambda K, D: (K, D, D),
    prior_scale_shape=lambda D: (D, D),
    n_parameters=lambda K, D: K * D * (D + 1) // 2,
    log_det=_log_diag,
    squared_mahalanobis=_full_sq_mahalanobis,
    second_moment=_full_second_moment,
    pool_second_moments=lambda m: m,
    outer=lambda c, d: c[:, None, None] * _outer(d),
    covariance_estimate=lambda sxx, nk, d: sxx / nk[:, None, None] - _outer(d),
    moments_from_covariance=lambda cov, nk, d: nk[:, None, None] * (cov + _outer(d)),
    map_covariance_estimate=lambda W, nk, scale, nu: ((scale + W) / (nu + nk + W.shape[-1] + 2)[:, None, None], nk),
    from_estimate=_regularised_prec_chol,
    covariances=_cov_from_chol_prec,
    precisions=_gram,
    dense_covariances=lambda P, K, D: _cov_from_chol_prec(P),
    prec_chol_from_covariances=_chol_prec_from_cov,
    prec_chol_from_precisions=_chol_prec_from_prec,
    to_unconstrained=lambda P: _triangular_to_free(P).reshape(-1),
    from_unconstrained=lambda free, K, D: _free_to_triangular(free.reshape(K, -1), D),
    variances=_precision_eig_variances,
    colour=lambda z, labels, P: jnp.take_along_axis(
        jnp.einsum("nd,ked->nke", z, _cov_chol(P)), labels[:, None, None], axis=1
    )[:, 0],
    row_work=_full_missing_work,
    check_values=_check_triangular,
    default_prior_scale=lambda cov: cov,
    one_feature="spherical",
)

# ----------------------------------------------------------------------------- tied


def _tied_sq_mahalanobis(X, means, P):
    # As _expanded_sq_distances of (X P, μ P), computed as (K, N) with the
    # samples along the fast axis: for a batch of fits the whitened data
    # (members, N, D) are then never transposed (2x faster on CPU).
    Y, M = P.T @ X.T, means @ P  # (D, N), (K, D)
    return jnp.maximum(jnp.sum(Y * Y, 0)[None, :] - 2 * M @ Y + jnp.sum(M * M, 1)[:, None], 0).T


def _tied_outer(c, d):
    return jnp.einsum("k,kd,ke->de", c, d, d)


def _tied_map_estimate(W, nk, scale, nu):
    K, D = nk.shape[0], W.shape[-1]
    return (scale + W) / (nu + jnp.sum(nk) + K + D + 1), nk


TIED = Family(
    name="tied",
    aliases=("EEE",),
    shared=True,
    diagonal=False,
    prec_chol_shape=lambda K, D: (D, D),
    stats_shape=lambda K, D: (D, D),
    prior_scale_shape=lambda D: (D, D),
    n_parameters=lambda K, D: D * (D + 1) // 2,
    log_det=_log_diag,
    squared_mahalanobis=_tied_sq_mahalanobis,
    second_moment=lambda r, Xc: (Xc * jnp.sum(r, axis=1)[:, None]).T @ Xc,
    pool_second_moments=lambda m: jnp.sum(m, axis=0),
    outer=_tied_outer,
    covariance_estimate=lambda sxx, nk, d: (sxx - _tied_outer(nk, d)) / jnp.sum(nk),
    moments_from_covariance=lambda cov, nk, d: cov * jnp.sum(nk) + _tied_outer(nk, d),
    map_covariance_estimate=_tied_map_estimate,
    from_estimate=_regularised_prec_chol,
    covariances=_cov_from_chol_prec,
    precisions=_gram,
    dense_covariances=lambda P, K, D: jnp.broadcast_to(_cov_from_chol_prec(P), (K, D, D)),
    prec_chol_from_covariances=_chol_prec_from_cov,
    prec_chol_from_precisions=_chol_prec_from_prec,
    to_unconstrained=_triangular_to_free,
    from_unconstrained=lambda free, K, D: _free_to_triangular(free, D),
    variances=lambda P, C: jax.tree.map(lambda a: a[None], _precision_eig_variances(P, C)),
    colour=lambda z, labels, P: z @ _cov_chol(P).T,
    row_work=lambda K, D, missing: K * D * D if missing else K + D,
    check_values=_check_triangular,
    default_prior_scale=lambda cov: cov,
    one_feature="EII",
)

# ----------------------------------------------------------------------------- diag


def _diag_sq_mahalanobis(X, means, P):
    return _expanded_sq_distances(X, means, P * P)


def _diagonal_work(K, D, missing):
    return K * D if missing else K + D


def _diagonal_prior_scale(cov):
    xp = jnp if isinstance(cov, jax.Array) else np
    return xp.diagonal(cov)


DIAG = Family(
    name="diag",
    aliases=("VVI",),
    shared=False,
    diagonal=True,
    prec_chol_shape=lambda K, D: (K, D),
    stats_shape=lambda K, D: (K, D),
    prior_scale_shape=lambda D: (D,),
    n_parameters=lambda K, D: K * D,
    log_det=lambda P, D: jnp.sum(jnp.log(P), axis=-1),
    squared_mahalanobis=_diag_sq_mahalanobis,
    second_moment=lambda r, Xc: r.T @ (Xc * Xc),
    pool_second_moments=lambda m: m,
    outer=lambda c, d: c[:, None] * d * d,
    covariance_estimate=lambda sxx, nk, d: sxx / nk[:, None] - d * d,
    moments_from_covariance=lambda cov, nk, d: nk[:, None] * (cov + d * d),
    map_covariance_estimate=lambda W, nk, scale, nu: ((scale + W) / (nu + nk + 3)[:, None], nk),
    from_estimate=lambda S, nk, reg, previous=None: _clipped_rsqrt(S, reg),
    covariances=lambda P: 1.0 / (P * P),
    precisions=lambda P: P * P,
    dense_covariances=lambda P, K, D: _diag_matrices(1.0 / (P * P)),
    prec_chol_from_covariances=jax.lax.rsqrt,
    prec_chol_from_precisions=jnp.sqrt,
    to_unconstrained=lambda P: jnp.log(P).reshape(-1),
    from_unconstrained=lambda free, K, D: jnp.exp(free).reshape(K, D),
    variances=lambda P, C: (1.0 / (P * P), jnp.broadcast_to(jnp.diagonal(C), P.shape)),
    colour=lambda z, labels, P: z / P[labels],
    row_work=_diagonal_work,
    check_values=_check_positive,
    default_prior_scale=_diagonal_prior_scale,
    one_feature="spherical",
)

# ------------------------------------------------------------------------ spherical


def _spherical_sq_mahalanobis(X, means, P):
    return _expanded_sq_distances(X, means, None) * (P * P)[None, :]


def _spherical_map_estimate(W, nk, scale, nu):
    D = W.shape[-1]
    cov = (scale + jnp.sum(W, axis=1)) / (nu + D * nk + D + 2)
    return jnp.broadcast_to(cov[:, None], W.shape), nk  # from_estimate averages over D


def _mean_variance_prior_scale(cov):
    xp = jnp if isinstance(cov, jax.Array) else np
    return xp.trace(cov) / cov.shape[-1]


SPHERICAL = Family(
    name="spherical",
    aliases=("VII",),
    shared=False,
    diagonal=True,
    prec_chol_shape=lambda K, D: (K,),
    stats_shape=DIAG.stats_shape,
    prior_scale_shape=lambda D: (),
    n_parameters=lambda K, D: K,
    log_det=lambda P, D: D * jnp.log(P),
    squared_mahalanobis=_spherical_sq_mahalanobis,
    second_moment=DIAG.second_moment,
    pool_second_moments=DIAG.pool_second_moments,
    outer=DIAG.outer,
    covariance_estimate=DIAG.covariance_estimate,
    moments_from_covariance=lambda cov, nk, d: nk[:, None] * (cov[:, None] + d * d),
    map_covariance_estimate=_spherical_map_estimate,
    from_estimate=lambda S, nk, reg, previous=None: _clipped_rsqrt(jnp.mean(S, axis=-1), reg),
    covariances=DIAG.covariances,
    precisions=DIAG.precisions,
    dense_covariances=lambda P, K, D: (1.0 / (P * P))[:, None, None] * jnp.eye(D, dtype=P.dtype),
    prec_chol_from_covariances=jax.lax.rsqrt,
    prec_chol_from_precisions=jnp.sqrt,
    to_unconstrained=jnp.log,
    from_unconstrained=lambda free, K, D: jnp.exp(free),
    variances=lambda P, C: (
        1.0 / (P * P)[:, None],
        jnp.broadcast_to(jnp.trace(C) / C.shape[-1], P.shape)[:, None],
    ),
    colour=lambda z, labels, P: z / P[labels][:, None],
    row_work=_diagonal_work,
    check_values=_check_positive,
    default_prior_scale=_mean_variance_prior_scale,
)

# ------------------------------------------------------- mclust's eigen families
#
# Σ_k = λ_k D_k A_k D_kᵀ (jgmm._maths.eigen). They keep full's parameters,
# statistics and E-step; only the M-step and the parameter count differ.


def _eigen_from_estimate(solver):
    """from_estimate for a solver (W (K, D, D), N_k, previous Σ or None) -> Σ."""

    def from_estimate(S, nk, reg, previous=None, keep_previous=True):
        start = None if previous is None else _cov_from_chol_prec(previous)
        solve = lambda S: _chol_prec_from_cov(solver(nk[:, None, None] * _add_to_diagonal(S, reg), nk, start))
        finite = lambda P: jnp.all(jnp.isfinite(P), axis=(-2, -1))
        W = nk[:, None, None] * _add_to_diagonal(S, reg)
        P = solve(S)
        # A component on one repeated point has W_k ≈ 0 (rounding may leave it
        # indefinite): its covariance need not be positive definite, and
        # where the family shares a parameter every component's is lost.
        # The components are flagged; solved again with full's stand-in
        # (the clipped diagonal) for the indefinite ones, so each keeps the
        # family's form; full's regularised estimate where even that fails.
        usable = finite(P)
        fallback, indefinite = _regularised_prec_chol(S, nk, reg)
        clipped = _diag_matrices(jnp.maximum(jnp.diagonal(S, axis1=-2, axis2=-1), 0))
        retry = solve(jnp.where(indefinite[:, None, None], clipped, S))
        retry = jnp.where(finite(retry)[:, None, None], retry, fallback)
        P = jnp.where(usable[:, None, None], P, retry)
        if previous is not None and keep_previous:
            # EM's monotonicity needs F(new) <= F(previous). The inner steps
            # lower F from a start rebuilt from ``previous``, which rounding
            # moves where a covariance is nearly singular: keep ``previous``
            # where it is lower by more than F's rounding, √ε of its terms (at
            # EM's fixed point the two agree, and the new one, which has a
            # derivative, is kept).
            parts = lambda P: (jnp.sum(W * _gram(P)), -2 * jnp.sum(nk * _log_diag(P, None)))
            (trace, log_det), (trace_previous, log_det_previous) = parts(P), parts(previous)
            margin = jnp.sqrt(jnp.finfo(S.dtype).eps) * (jnp.abs(trace) + jnp.abs(log_det))
            P = jnp.where(trace_previous + log_det_previous < trace + log_det - margin, previous, P)
        return P, ~usable

    return from_estimate


def _on_diagonals(solver):
    """A dense solver from one on the diagonals (K, D) of W and Σ."""
    diagonal = lambda A: jnp.diagonal(A, axis1=-2, axis2=-1)
    return lambda W, nk, start: _diag_matrices(solver(diagonal(W), nk, None if start is None else diagonal(start)))


def _eigen_map_estimate(extra_count, scale_share=lambda K, D: 1.0):
    """mclust's prior for an eigen family (docs/derivation.md §16): its M-step
    on the posterior scatter plus scale_share(K, D)·Λ per component (Λ a
    scalar stands for Λ·I), with counts N_k + extra_count(K, D, ν)."""

    def estimate(W, nk, scale, nu):
        K, D = W.shape[0], W.shape[-1]
        counts = nk + extra_count(K, D, nu)
        prior_scatter = scale_share(K, D) * (_add_to_diagonal(jnp.zeros_like(W[0]), scale) if jnp.ndim(scale) == 0 else scale)
        return (prior_scatter + W) / counts[:, None, None], counts

    return estimate


@dataclasses.dataclass(frozen=True, eq=False)
class _EigenFamily(Family):
    """A family whose ``from_estimate`` keeps ``previous`` where it is better
    (``_eigen_from_estimate``); a projection (``projected``) must not, and a
    start must be of the family's form (``jgmm.fit`` checks)."""

    keeps_previous = True

    def _warm_estimate(self, S, nk, P):
        return self.from_estimate(S, nk, jnp.zeros((), P.dtype), P, keep_previous=False)


def _eigen_family(name, solver, n_parameters, one_feature, map_covariance_estimate=None, scalar_prior=False):
    """A family on full's parameters with its own M-step; ``scalar_prior``: the
    prior's scale is one variance, as mclust's for the diagonal models."""
    fields = {field.name: getattr(FULL, field.name) for field in dataclasses.fields(FULL)}
    fields.update(
        name=name,
        one_feature=one_feature,
        aliases=(),
        n_parameters=n_parameters,
        map_covariance_estimate=map_covariance_estimate,
        from_estimate=_eigen_from_estimate(solver),
        to_unconstrained=None,
        from_unconstrained=None,
    )
    if scalar_prior:
        fields.update(prior_scale_shape=lambda D: (), default_prior_scale=_mean_variance_prior_scale)
    return _EigenFamily(**fields)


# With one feature only the volume is left: equal (EII) or variable (spherical).
_triangle = lambda D: D * (D - 1) // 2  # free parameters of an orientation
# Priors: mclust's (msxxxp), the mean prior's determinant counted as for the
# four (mclust's VEI counts 1 for it, not D; its EII drops Λ; its EEV zeroes κ).
EII = _eigen_family("EII", _on_diagonals(eigen.eii), lambda K, D: 1, None,
                    _eigen_map_estimate(lambda K, D, nu: 1 + (nu + 2) / (K * D), lambda K, D: 1 / (K * D)), True)
EEI = _eigen_family("EEI", _on_diagonals(eigen.eei), lambda K, D: D, "EII",
                    _eigen_map_estimate(lambda K, D, nu: 1 + (nu + 2) / K, lambda K, D: 1 / K), True)
VEI = _eigen_family("VEI", _on_diagonals(eigen.vei), lambda K, D: K + D - 1, "spherical",
                    _eigen_map_estimate(lambda K, D, nu: 1 + (nu + 2) / D), True)
EVI = _eigen_family("EVI", _on_diagonals(eigen.evi), lambda K, D: 1 + K * (D - 1), "EII",
                    _eigen_map_estimate(lambda K, D, nu: 1 + (nu + 2) / K), True)
VEE = _eigen_family("VEE", eigen.vee, lambda K, D: K + D * (D + 1) // 2 - 1, "spherical")
EVE = _eigen_family("EVE", eigen.eve, lambda K, D: 1 + K * (D - 1) + _triangle(D), "EII")
VVE = _eigen_family("VVE", eigen.vve, lambda K, D: K * D + _triangle(D), "spherical")
EEV = _eigen_family("EEV", eigen.eev, lambda K, D: D + K * _triangle(D), "EII",
                    _eigen_map_estimate(lambda K, D, nu: (nu + D + 2) / K))
VEV = _eigen_family("VEV", eigen.vev, lambda K, D: K + D - 1 + K * _triangle(D), "spherical",
                    _eigen_map_estimate(lambda K, D, nu: 0.0))
EVV = _eigen_family("EVV", eigen.evv, lambda K, D: 1 + K * (D * (D + 1) // 2 - 1), "EII")

BUILT_IN = tuple(
    register_family(f) for f in (FULL, TIED, DIAG, SPHERICAL, EII, EEI, VEI, EVI, VEE, EVE, VVE, EEV, VEV, EVV)
)
SCIKIT_LEARN = BUILT_IN[:4]  # scikit-learn's four, the default of select and the command line


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
    f = family(covariance_type)
    if not centred:
        # Translation invariance: measure from the centre of the means, which
        # keeps float32 products accurate on data far from the origin.
        centre = jnp.mean(means, axis=0)
        X, means = X - centre, means - centre
    # Centred data are shared by a batch of members (one wide matrix product
    # instead of one per member: the E-step of diag and spherical 2x faster).
    sq = f.squared_mahalanobis(X, means, prec_chol)
    return -0.5 * (D * math.log(2 * math.pi) + sq) + f.log_det(prec_chol, D)
