"""Nested K: each cell of a selection also starts from the previous cell's fit.

Every mixture of K components is one of K + 1 (add a component of weight
0), so the best log-likelihood cannot fall as K grows; a local maximum found
from independent starts can. In rounds, the grid
program (``jgmm._engine.loop``) starts each cell (K_m) from the best fit of
the cell before it (K_{m-1}) with components split (``split_starts``), runs
EM on the cells (in its one EM loop, as its restarts) and keeps the better
fit (``merge``). A cell whose parent improved is started again from it in
the next round, while it is still below its parent by more than ``tol``
(``next_todo``): at most M - 1 rounds, usually one. A cell still below
a cell before it after the rounds (every fit of it collapsed, say) takes
that cell's fit, padded with components of weight 0 (``keep_parents``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jgmm._engine.step import best_member
from jgmm._maths.families import family
from jgmm._maths.params import HEALTHY, FitResult, GMMParams

SPLIT = -1  # the ``won`` value of a cell whose best fit came from a split
PARENT = -2  # ... that is the fit of a cell before it (``keep_parents``)


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
        at_k = jnp.arange(K_max) == k  # not ``.at[k]``: a scatter under vmap (``put``)
        half = jnp.where(go, weights[k] / 2, weights[k])
        weights = jnp.where(one | at_k, half, weights)
        means = jnp.where(one[:, None], means[k] - step[k], means)
        means = jnp.where(at_k[:, None], jnp.where(go, means[k] + step[k], means[k]), means)
        # The copy in ``slot`` carries Σ_k's axis, for a later split of it.
        lam, step = jnp.where(one, lam[k], lam), jnp.where(one[:, None], step[k], step)
        return weights, means, f.restart(P, one, P if f.shared else P[k][None]), lam, step

    weights, means, P, _, _ = jax.lax.fori_loop(
        0, K_max - 1, split, (params.weights, params.means, params.prec_chol, eigenvalues[:, -1], step)
    )
    return GMMParams(weights, means, P, params.covariance_type)


def split_starts(parents: GMMParams, n_active, cells) -> GMMParams:
    """The split starts of ``cells`` ((B,) int32): each from the fit of the
    cell before it in ``parents`` ((M,)-batched, cells in increasing K)."""
    before = jnp.maximum(cells - 1, 0)
    parents = jax.tree.map(lambda a: a[before], parents)
    return jax.vmap(split_components)(parents, n_active[before], n_active[cells])


def put(target, cells, values, where):
    """``target`` ((M, ...)) with ``target[cells[q]] = values[q]`` where
    ``where[q]`` (cells outside [0, M) dropped; cells distinct). A select,
    not ``.at[cells].set``: XLA's CPU backend compiles each scatter into a
    loop of its own, and a grid program would hold one per leaf."""
    hit = (cells[None, :] == jnp.arange(target.shape[0])[:, None]) & where[None, :]  # (M, B)
    q = jnp.argmax(hit, axis=1)
    return jnp.where(jnp.any(hit, axis=1).reshape((-1,) + (1,) * (target.ndim - 1)), values[q], target)


def merge(best: FitResult, won, cells, new: FitResult, take):
    """``best`` and ``won`` ((M,) cells) with ``new`` ((B,) fits of
    ``cells``, out-of-range cells dropped) taken where ``take`` and it is
    the better fit (``best_member`` of the two); and whether it was taken."""
    old = jax.tree.map(lambda a: a[jnp.minimum(cells, won.shape[0] - 1)], best)
    pair = jax.tree.map(lambda a, b: jnp.stack([a, b], 1), old, new)
    taken = take & (jax.vmap(best_member)(pair) == 1)
    best = jax.tree.map(lambda a, b: put(a, cells, b, taken), best, new)
    return best, put(won, cells, jnp.full(cells.shape, SPLIT, won.dtype), taken), taken


def next_todo(best: FitResult, taken, tol):
    """The cells to start again after a round: those whose predecessor's fit
    was taken in it and that are still below it by more than ``tol``."""
    ll = best.log_likelihood
    shift = lambda a, fill: jnp.concatenate([jnp.full((1,), fill, a.dtype), a[:-1]])
    return shift(taken, False) & (ll < shift(ll, jnp.inf) - tol)


def keep_parents(best: FitResult, won, tol):
    """``best`` and ``won`` ((M,) cells in increasing K) with each cell that
    is still below the best fit of the cells before it (a worse status, or
    a log-likelihood lower by more than ``tol``) replaced by that fit: its
    extra components have weight 0, so it is a mixture of the cell's K with
    the same likelihood. ``won`` = ``PARENT`` there."""

    def rank(r):
        return 2 * jnp.isin(r.status, jnp.array(HEALTHY)).astype(jnp.int32) + jnp.isfinite(r.log_likelihood)

    def step(parent, cell):
        fit, w = cell
        below = (rank(parent) > rank(fit)) | ((rank(parent) == rank(fit)) & (fit.log_likelihood < parent.log_likelihood - tol))
        fit = jax.tree.map(lambda a, b: jnp.where(below, a, b), parent, fit)
        return fit, (fit, jnp.where(below, PARENT, w))

    first = jax.tree.map(lambda a: a[0], best)
    rest = jax.tree.map(lambda a: a[1:], best)
    _, (fits, won_rest) = jax.lax.scan(step, first, (rest, won[1:]))
    fits = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), first, fits)
    return fits, jnp.concatenate([won[:1], won_rest])
