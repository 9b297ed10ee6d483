"""Nested K: each cell of a selection also starts from the previous cell's fit.

Every mixture of K components is one of K + 1 (add a component of weight
0), so the best log-likelihood cannot fall as K grows; a local maximum found
from independent starts can. ``nested_rounds`` starts each cell (K_m) from
the best fit of the cell before it (K_{m-1}) with components split
(``split_components``), runs EM on all such cells at once and keeps the
better fit. A cell whose parent improved is started again from it in the
next round, while it is still below its parent (by more than ``tol``): at
most M - 1 rounds, usually one. All inside the compiled grid program.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jgmm._engine.step import best_member
from jgmm._maths.families import family
from jgmm._maths.params import FitResult, GMMParams

SPLIT = -1  # the ``won`` value of a cell whose best fit came from a split


def split_components(params: GMMParams, K_from, K_to) -> GMMParams:
    """``params`` (K_max components, the first ``K_from`` active) with
    components split until ``K_to`` are active.

    Each split takes the active component of largest π_k·λ_k (λ_k the
    largest eigenvalue of Σ_k, v_k its axis) and puts two halves of its
    weight at μ_k ± ½√λ_k v_k, each with Σ_k: the first in its place, the
    second in slot ``K_from + j``. A copy of Σ_k keeps every family's form.
    """
    f = family(params.covariance_type)
    K_max, D = params.means.shape
    eigenvalues, axes = jnp.linalg.eigh(f.dense_covariances(params.prec_chol, K_max, D))
    step = 0.5 * jnp.sqrt(jnp.maximum(eigenvalues[:, -1], 0))[:, None] * axes[:, :, -1]  # (K, D)

    def split(j, p):
        weights, means, P, lam, step = p
        slot = K_from + j
        active = jnp.arange(K_max) < slot
        k = jnp.argmax(jnp.where(active, weights * lam, -jnp.inf))
        go = slot < K_to
        one = (jnp.arange(K_max) == slot) & go
        half = jnp.where(go, weights[k] / 2, weights[k])
        weights = jnp.where(one, half, weights).at[k].set(half)
        means = jnp.where(one[:, None], means[k] - step[k], means).at[k].set(jnp.where(go, means[k] + step[k], means[k]))
        # The copy in ``slot`` carries Σ_k's axis, for a later split of it.
        lam, step = jnp.where(one, lam[k], lam), jnp.where(one[:, None], step[k], step)
        return weights, means, f.restart(P, one, P if f.shared else P[k][None]), lam, step

    weights, means, P, _, _ = jax.lax.fori_loop(
        0, K_max - 1, split, (params.weights, params.means, params.prec_chol, eigenvalues[:, -1], step)
    )
    return GMMParams(weights, means, P, params.covariance_type)


def _better(best: FitResult, new: FitResult, take):
    """Per cell, ``new`` where ``take`` and it is the better fit
    (``best_member`` of the two), and whether it was taken."""
    pair = jax.tree.map(lambda a, b: jnp.stack([a, b], 1), best, new)
    taken = take & (jax.vmap(best_member)(pair) == 1)
    return jax.tree.map(lambda a, b: jnp.where(taken.reshape((-1,) + (1,) * (a.ndim - 1)), b, a), best, new), taken


def nested_rounds(best: FitResult, won, n_active, run, tol):
    """Start each cell from its predecessor's best fit, split (module doc).

    Args:
      best: FitResult with a leading (M,) axis, cells in increasing K.
      won: (M,) int32, the restart each best fit came from.
      n_active: (M,) int32, each cell's K.
      run: (starts (M,)-batched GMMParams, skip (M,) bool) -> FitResult,
        EM from the starts (members where ``skip`` do not run).
      tol: the fit tolerance on the mean log-likelihood.

    Returns:
      (best, won), ``won`` = ``SPLIT`` where a split start won.
    """
    M = n_active.shape[0]
    parent_K = jnp.concatenate([n_active[:1], n_active[:-1]])
    first = jnp.arange(M) > 0

    def round_(carry):
        best, won, todo, r = carry
        parents = jax.tree.map(lambda a: jnp.concatenate([a[:1], a[:-1]]), best.params)
        starts = jax.vmap(split_components)(parents, parent_K, n_active)
        best, taken = _better(best, run(starts, ~todo), todo)
        ll = best.log_likelihood
        below = ll < jnp.concatenate([ll[:1], ll[:-1]]) - tol
        todo = first & jnp.concatenate([jnp.zeros((1,), bool), taken[:-1]]) & below
        return best, jnp.where(taken, SPLIT, won), todo, r + 1

    carry = (best, won, first, jnp.zeros((), jnp.int32))
    best, won, _, _ = jax.lax.while_loop(lambda c: jnp.any(c[2]) & (c[3] < M - 1), round_, carry)
    return best, won
