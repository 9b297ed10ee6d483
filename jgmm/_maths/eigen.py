"""M-steps of mclust's eigen-decomposition families (docs/derivation.md §15).

Each covariance is Σ_k = λ_k D_k A_k D_kᵀ: volume λ_k = |Σ_k|^(1/D), shape
A_k (diagonal, |A_k| = 1, decreasing), orientation D_k (orthogonal). Each of
the three is equal (E) across components, variable (V), or the identity (I)
(Celeux & Govaert 1995). Given the weighted scatter matrices
W_k = Σ_n r_nk (x_n - μ_k)(x_n - μ_k)ᵀ and N_k = Σ_n r_nk, the M-step
minimises

    Σ_k N_k log |Σ_k| + tr(W_k Σ_k⁻¹)

over the family. Each solver below takes W (K, D, D), or the diagonals
w (K, D) for the diagonal families, and N_k (K,), and returns the covariances
in the same form. Where no closed form exists the solver alternates exact
minimisations over one block of parameters (VEI, VEE, VEV) or majorises the
orientation's objective (EVE, VVE; Browne & McNicholas 2014); every inner
step lowers the objective, so EM stays monotone however few steps an M-step
takes. The iterations start from ``start`` (the previous EM iteration's
covariances; mclust's start when None), stop when the relative change is at
most √ε (mclust's tolerance) or after ``MAX_INNER`` steps, inside the
compiled program. Their derivative is implicit, at the inner fixed point
s* = step(s*, W): ds* = (I - ∂step/∂s)⁻¹ ∂step/∂W dW, with the (small)
state's Jacobian formed as a matrix, so ``jax.grad`` and ``jax.jvp`` go
through them, and through ``fit``, without differentiating the loop.

Components with N_k = 0 (padding) contribute nothing to the shared
parameters: divisions by their zero scale give 0, never NaN.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

MAX_INNER = 200  # inner steps per M-step; EM warm-starts the next M-step where this one stopped


def _tol(dtype):
    return jnp.sqrt(jnp.finfo(dtype).eps)


def _gdet(v):
    """Geometric mean over the last axis: |diag(v)|^(1/D); 0 if any v_d = 0."""
    return jnp.exp(jnp.mean(jnp.log(v), axis=-1))


def _div(a, b):
    """a / b, 0 where b is not positive (an empty component's scale)."""
    ok = b > 0
    return jnp.where(ok, a / jnp.where(ok, b, 1), 0)


def _unit(v):
    """v scaled to geometric mean 1 along its last axis (0 where that is 0)."""
    return _div(v, _gdet(v)[..., None])


def _eig_decreasing(W):
    """Eigenvalues (clipped at 0) in decreasing order and their eigenvectors (columns)."""
    omega, V = jnp.linalg.eigh(W)
    return jnp.maximum(omega[..., ::-1], 0), V[..., ::-1]


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _iterate(step, err, state, args):
    """Apply ``s -> step(s, args)`` from ``state`` until ``err(old, new)`` <= √ε
    or MAX_INNER steps; differentiated implicitly at the fixed point (the
    start has no derivative: the fixed point does not depend on it)."""
    dtype = jax.tree.leaves(state)[0].dtype

    def body(carry):
        i, _, s = carry
        new = step(s, args)
        return i + 1, err(s, new), new

    carry = (jnp.asarray(0), jnp.asarray(jnp.inf, dtype), state)
    return jax.lax.while_loop(lambda c: (c[0] < MAX_INNER) & (c[1] > _tol(dtype)), body, carry)[2]


@_iterate.defjvp
def _iterate_jvp(step, err, primals, tangents):
    state, args = primals
    s = _iterate(step, err, state, args)
    _, b = jax.jvp(lambda a: step(s, a), (args,), (tangents[1],))
    # (I - ∂step/∂s)⁺ formed as a matrix (the states are small; the
    # pseudo-inverse gives 0 along directions the step leaves free), so the
    # tangent is a matrix product, which reverse mode transposes.
    flat, unravel = ravel_pytree(s)
    J = jax.jacfwd(lambda x: ravel_pytree(step(unravel(x), args))[0])(flat)
    inverse = jnp.linalg.pinv(jnp.eye(flat.size, dtype=flat.dtype) - J)
    return s, unravel(inverse @ ravel_pytree(b)[0])


def _relative_change(old, new):
    """mclust's inner criterion: max |old - new| / (1 + |new|) over the leaves."""
    return jnp.max(jnp.stack([jnp.max(jnp.abs(o - n) / (1 + jnp.abs(n))) for o, n in zip(old, new)]))


def _objective_change(old, new):
    """The relative change of the objective, the last leaf of the state."""
    return jnp.abs(old[-1] - new[-1]) / (1 + jnp.abs(new[-1]))


# -------------------------------------------------------------- diagonal families


def eii(w, nk, start=None):
    """λI: λ = Σ_k tr W_k / (N D)."""
    return jnp.broadcast_to(jnp.sum(w) / (jnp.sum(nk) * w.shape[-1]), w.shape)


def eei(w, nk, start=None):
    """λA, one diagonal covariance: Σ_k diag W_k / N."""
    return jnp.broadcast_to(jnp.sum(w, axis=0) / jnp.sum(nk), w.shape)


def evi(w, nk, start=None):
    """λA_k: A_k = diag W_k / |diag W_k|^(1/D), λ = Σ_k |diag W_k|^(1/D) / N."""
    g = _gdet(w)
    return jnp.sum(g) / jnp.sum(nk) * _div(w, g[:, None])


def _volume_shape(omega, nk, scale, shape):
    """λ_k A with A shared: alternately λ_k = tr(Ω_k A⁻¹)/(D N_k) and
    A ∝ Σ_k Ω_k / λ_k, |A| = 1 (Ω_k (K, D) the eigenvalues of W_k, or its
    diagonal). Returns (λ (K,), A (D,))."""
    return _iterate(_volume_shape_step, _relative_change, (scale, shape), (omega, nk))


def _volume_shape_step(s, args):
    omega, nk = args
    scale = _div(jnp.sum(_div(omega, s[1]), axis=-1), omega.shape[-1] * nk)
    return scale, _unit(jnp.sum(_div(omega, scale[:, None]), axis=0))


def _start_volume_shape(variances, nk):
    """(λ_k, A) of previous variances (K, D) along the axes; A from the
    components with data (padding's unit covariance left out)."""
    scale = _gdet(variances)
    return scale, _unit(jnp.sum(nk[:, None] * _div(variances, scale[:, None]), axis=0))


def vei(w, nk, start=None):
    """λ_k A (Celeux & Govaert's alternating minimisation; mclust's start λ = A = 1)."""
    K, D = w.shape
    scale, shape = (jnp.ones((K,), w.dtype), jnp.ones((D,), w.dtype)) if start is None else _start_volume_shape(start, nk)
    scale, shape = _volume_shape(w, nk, scale, shape)
    return scale[:, None] * shape


# ----------------------------------------------------------------- dense families


def _compose(V, variances):
    """V diag(variances) Vᵀ per component."""
    return jnp.einsum("...ij,...j,...kj->...ik", V, variances, V)


def eev(W, nk, start=None):
    """λ D_k A D_kᵀ: D_k the eigenvectors of W_k, λA = Σ_k Ω_k / N."""
    omega, V = _eig_decreasing(W)
    return _compose(V, jnp.broadcast_to(jnp.sum(omega, axis=0) / jnp.sum(nk), omega.shape))


def vev(W, nk, start=None):
    """λ_k D_k A D_kᵀ: D_k the eigenvectors of W_k, (λ_k, A) alternately."""
    omega, V = _eig_decreasing(W)
    if start is None:
        scale, shape = jnp.ones(nk.shape, W.dtype), _unit(jnp.sum(omega, axis=0))
    else:
        scale, shape = _start_volume_shape(_eig_decreasing(start)[0], nk)
    scale, shape = _volume_shape(omega, nk, scale, shape)
    return _compose(V, scale[:, None] * shape)


def evv(W, nk, start=None):
    """λ C_k: C_k = W_k / |W_k|^(1/D), λ = Σ_k |W_k|^(1/D) / N."""
    sign, log_det = jnp.linalg.slogdet(W)
    g = jnp.where(sign > 0, jnp.exp(log_det / W.shape[-1]), 0)
    return jnp.sum(g) / jnp.sum(nk) * _div(W, g[:, None, None])


def vee(W, nk, start=None):
    """λ_k C, |C| = 1: alternately C ∝ Σ_k W_k / λ_k and λ_k = tr(W_k C⁻¹)/(D N_k)."""
    scale = jnp.ones(nk.shape, W.dtype) if start is None else _gdet(_eig_decreasing(start)[0])
    state = (scale, jnp.zeros_like(W[0]), jnp.asarray(jnp.inf, W.dtype))
    scale, C, _ = _iterate(_vee_step, _objective_change, state, (W, nk))
    return scale[:, None, None] * C


def _vee_step(s, args):
    W, nk = args
    D = W.shape[-1]
    C = jnp.sum(_div(W, s[0][:, None, None]), axis=0)
    L = jnp.linalg.cholesky(C)
    g = jnp.exp(2 * jnp.mean(jnp.log(jnp.diagonal(L))))  # |C|^(1/D)
    # tr(W_k C⁻¹) = ‖L⁻¹ W_k^(1/2)‖², as tr(L⁻¹ W_k L⁻ᵀ)
    inner = jax.scipy.linalg.solve_triangular(L, jax.scipy.linalg.solve_triangular(L, W, lower=True).mT, lower=True)
    scale = _div(g * jnp.trace(inner, axis1=-2, axis2=-1), D * nk)
    objective = D * jnp.sum(nk * jnp.log(jnp.where(scale > 0, scale, 1)))
    return scale, C / g, objective


def _common_orientation(W, nk, O, delta, update):
    """A common orientation: Σ_k = Oᵀ diag(δ_k) O, O orthogonal (rows the
    axes). Two majorisation steps for O given δ (Browne & McNicholas 2014,
    as mclust runs them), then ``update`` (O W_k Oᵀ's diagonal (K, D), N_k) ->
    (δ, objective), until the objective settles. Returns (O, δ, objective)."""
    omega = jax.lax.stop_gradient(jnp.linalg.eigvalsh(W)[:, -1])  # the largest eigenvalue of each W_k
    state = (O, delta, jnp.asarray(jnp.inf, W.dtype))
    return _iterate(functools.partial(_orientation_step, update), _objective_change, state, (W, nk, omega))


def _polar(F):
    """The orthogonal polar factor's transpose, (P Rᵀ)ᵀ for F = P Σ Rᵀ."""
    P, _, Rt = jnp.linalg.svd(F, full_matrices=False)
    return (P @ Rt).T


def _orientation_step(update, s, args):
    W, nk, omega = args
    O, delta, _ = s
    inv = _div(1.0, delta)  # (K, D) δ_k⁻¹
    # Σ_k δ_k⁻¹ O (W_k - ω_k I): the majoriser of tr(W_k Oᵀ δ_k⁻¹ O) by W_k <= ω_k I.
    WO = jnp.einsum("de,kef->kdf", O, W)  # O W_k
    O = _polar(jnp.einsum("kd,kdf->df", inv, WO - omega[:, None, None] * O))
    # O now has the axes as columns. Σ_k W_k O (δ_k⁻¹ - max δ_k⁻¹ I): the
    # majoriser by δ_k⁻¹ <= max(δ_k⁻¹) I; its polar factor has them as rows.
    WO = jnp.einsum("kde,ef->kdf", W, O)  # W_k O
    O = _polar(jnp.einsum("kdf,kf->df", WO, inv) - jnp.einsum("k,kdf->df", jnp.max(inv, axis=1), WO))
    diagonal = jnp.einsum("de,kef,df->kd", O, W, O)  # diag(O W_k Oᵀ)
    return (O, *update(diagonal, nk))


def _start_orientation(W, start):
    """(O, O Σ_k Oᵀ's diagonals) of previous covariances sharing their axes,
    found as the eigenvectors of a generic combination of them; mclust's
    start (I, 1) when None."""
    K, D = W.shape[0], W.shape[-1]
    if start is None:
        return jnp.eye(D, dtype=W.dtype), jnp.ones((K, D), W.dtype)
    weights = jnp.arange(1, K + 1, dtype=W.dtype) / jnp.trace(start, axis1=-2, axis2=-1)
    O = jnp.linalg.eigh(jnp.einsum("k,kij->ij", weights, start))[1].T
    return O, jnp.einsum("de,kef,df->kd", O, start, O)


def eve(W, nk, start=None):
    """λ D A_k Dᵀ: D by majorisation, A_k ∝ diag(Dᵀ W_k D), λ = Σ_k tr(Dᵀ W_k D A_k⁻¹)/(N D)."""
    O, delta = _start_orientation(W, start)
    O, shape, trace = _common_orientation(W, nk, O, _unit(delta), _eve_update)  # trace: Σ_k tr(Dᵀ W_k D A_k⁻¹)
    return _compose(O.T, trace / (jnp.sum(nk) * W.shape[-1]) * shape)


def _eve_update(diagonal, nk):
    shape = _unit(diagonal)
    return shape, jnp.sum(_div(diagonal, shape))


def vve(W, nk, start=None):
    """λ_k D A_k Dᵀ = D Δ_k Dᵀ: D by majorisation of Σ_k tr(Dᵀ W_k D Δ_k⁻¹),
    Δ_k = diag(Dᵀ W_k D) / N_k.

    mclust 6.0.0 weights the majoriser by A_k⁻¹ instead of (λ_k A_k)⁻¹, which
    minimises another function when the λ_k differ (docs/derivation.md §15)."""
    O, delta = _start_orientation(W, start)
    O, delta, _ = _common_orientation(W, nk, O, delta, _vve_update)
    return _compose(O.T, delta)


def _vve_update(diagonal, nk):
    delta = _div(diagonal, nk[:, None])
    return delta, jnp.sum(nk * jnp.sum(jnp.log(jnp.where(delta > 0, delta, 1)), axis=1))
