"""The compiled EM loop and the grid program that ``fit`` and ``select`` share.

``fit_grid`` runs ``_grid_program``: cells (values of K, padded to the
largest) × restarts, the members of a batch side by side in one
``lax.while_loop`` (``em_loop``) whose body is ``em_step`` under ``vmap``
(see docs/design.md). ``seed`` is its family-independent start, which
``select`` runs once for all families. Its configuration is one hashable
value, ``GridConfig``: one compiled program per value. ``em_map`` is one EM
iteration as a map of the parameters, whose fixed point a fit is
(``jgmm._engine.implicit``).

The data are centred (at their weighted mean) inside the program and the
means shifted back at the end: the likelihood is translation invariant, and
float32 statistics stay accurate on data far from the origin.
"""

from __future__ import annotations

import functools
import sys
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jgmm._compile import full_precision, jit
from jgmm._engine.init import Seeding, initialize, member_keys, seed_program, subsample
from jgmm._engine.nested import keep_parents, merge, next_todo, put, split_starts
from jgmm._engine.passes import Chunks, pass_sums
from jgmm._engine.step import (
    EMState,
    Settings,
    best_member,
    best_of,
    collapse_references,
    em_step,
    fit_result,
    initial_state,
    m_step_from_stats,
    mask_components,
)
from jgmm._maths.families import family
from jgmm._maths.missing import observed_mean
from jgmm._maths.params import FitResult, GMMParams, shift_means
from jgmm._maths.prior import prior_for_k


def em_loop(
    params: GMMParams,
    chunks: Chunks,
    settings: Settings,
    max_iter: int,
    mask,
    progress=None,
    prior_per_k: bool = False,
    skip=None,
) -> FitResult:
    """Run EM for a batch of members until each converges, fails or reaches ``max_iter``.

    The loop runs while any member is still going; a member that has stopped
    keeps its state (its passes change nothing).

    Args:
      params: (M,)-batched initial GMMParams (inactive components masked).
      chunks: the data, read in centred chunks (``jgmm._engine.passes.Chunks``).
      settings: Settings (its prior in the chunks' centred coordinates).
      max_iter: static maximum number of iterations.
      mask: (M, K) bool, each member's active components.
      progress: static ``(label, every)`` to report every ``every``
        iterations on stderr (``report_progress``), or None: nothing is
        compiled for it.
      prior_per_k: static; divide the prior's scale by K^(2/D), K each
        member's active components (mclust's default prior for K).
      skip: (M,) bool, members that do not run (their result is their
        start, log-likelihood -inf), or None.

    Returns:
      FitResult with a leading (M,) axis.
    """

    weight = jnp.sum(chunks.w)

    def step(s: EMState, mask) -> EMState:
        # One pass: the E-step on s.params, and the statistics for the M-step.
        sums = pass_sums(s.params, chunks, worst=settings.reseed_with is not None)
        member = settings._replace(prior=prior_for_k(settings.prior, jnp.sum(mask))) if prior_per_k else settings
        return em_step(s, sums, weight, mask, member, max_iter)

    def body(carry):
        t, s = carry
        s = jax.vmap(step)(s, mask)
        if progress is not None:
            label, every = progress
            jax.lax.cond(
                (t + 1) % every == 0,
                lambda: jax.debug.callback(
                    functools.partial(report_progress, label), t + 1, s.log_likelihood, ~s.done, jnp.sum(mask, 1)
                ),
                lambda: None,
            )
        return t + 1, s

    state = initial_state(params, max_iter)
    init = (jnp.zeros((), jnp.int32), state if skip is None else state._replace(done=skip))
    _, s = jax.lax.while_loop(lambda c: jnp.any(~c[1].done), body, init)
    return fit_result(s)


def report_progress(label: str, iteration, value, running, n_components, quantity: str = "log-likelihood") -> None:
    """Print one progress line on stderr: the iteration, the best
    ``quantity`` (``value``, one per member) among the members still
    running, how many run."""
    running = np.asarray(running)
    if not running.any():
        return
    K = np.asarray(n_components)[running]
    cells = f"K={K.min()}" if K.min() == K.max() else f"K={K.min()}..{K.max()}"
    best = np.max(np.asarray(value)[running])
    print(
        f"jgmm {label} {cells}: iteration {int(iteration)}, {quantity} {best:.6f}, "
        f"{int(running.sum())}/{running.size} fits running",
        file=sys.stderr,
        flush=True,
    )


class GridConfig(NamedTuple):
    """The static configuration of a grid program (``fit_grid``): one
    hashable value, one compiled program per value.

    Attributes:
      seeding: the starts (``jgmm._engine.init.Seeding``: K_max, method, restarts,
        key folding, missing entries).
      covariance_type: the family's canonical name.
      max_iter: maximum EM iterations.
      chunk_size: rows per chunk of the EM pass.
      cells_per_batch: cells (values of K) fitted side by side.
      progress: ``(label, every)`` to report on stderr, or None (``em_loop``).
      on_collapse: "freeze", "reseed" or "keep" (``fit``).
      mesh: the one-axis mesh X and w are split along (``jgmm._engine.shard``), or None.
      prior_per_k: divide the prior's scale by each cell's K^(2/D) (``em_loop``).
      assigned: also return ICL's classification term of each cell's best fit.
      nested: also start each cell from the previous cell's best fit, split
        (``jgmm._engine.nested``).
    """

    seeding: Seeding
    covariance_type: str
    max_iter: int
    chunk_size: int
    cells_per_batch: int = 1
    progress: tuple | None = None
    on_collapse: str = "freeze"
    mesh: Mesh | None = None
    prior_per_k: bool = False
    assigned: bool = False
    nested: bool = False


class GridResult(NamedTuple):
    """What a grid program returns (``fit_grid``).

    Attributes:
      best: FitResult with a leading (M,) axis, the best fit of each cell.
      restart_status: (M, n_init) int32 status of every restart.
      assigned: (M,) Σ_n w_n log max_k γ(z_nk) of each best fit (ICL's
        term), if ``config.assigned``, else None.
      won: (M,) int32, the restart each best fit came from, or
        ``jgmm._engine.nested.SPLIT`` where it came from the previous
        cell's fit split, ``PARENT`` where it is a previous cell's fit
        (``config.nested``).
    """

    best: FitResult
    restart_status: jax.Array
    assigned: jax.Array | None
    won: jax.Array


def _grid_program(key, n_active, X, w, tol, reg_covar, init_params, seeds=None, prior=None, *, config: GridConfig):
    """Fits for several K at once, ``n_init`` restarts each: one program.

    Every model is padded to K_max components (``config.seeding``); model m
    has ``n_active[m]`` active ones. Cells run ``config.cells_per_batch`` at
    a time (``lax.map``); the members of a batch (its cells × restarts) run
    side by side in one EM loop (``em_loop``). Member keys come from
    ``member_keys``. ``init_params``: the starting GMMParams when the method
    is "params" (else None), one for all members or one per restart (leading
    (n_init,) axis). ``seeds``: what ``seed_program`` returns for the same
    key, data and members, or None to compute it here. ``prior``: None, or a
    ``jgmm.Prior`` (data coordinates) for MAP fits.

    Returns:
      GridResult.
    """
    n_components, init, n_init, fold_in_k, missing = config.seeding
    covariance_type, cells_per_batch = config.covariance_type, config.cells_per_batch
    if seeds is None:
        seeds = seed_program(key, n_active, X, w, seeding=config.seeding)
    offset, centers = seeds
    chunks = Chunks(X, w, offset, config.chunk_size, config.mesh, missing=missing)
    if prior is not None:
        prior = prior._replace(mean=prior.mean - offset)
    data_cov, collapse_reg, reseed_with = collapse_references(
        *subsample(chunks), covariance_type, reg_covar, config.on_collapse
    )
    settings = Settings(tol, reg_covar, data_cov, collapse_reg, reseed_with, prior)

    def start(key, mask, restart, centers):
        if init_params is None:
            return mask_components(initialize(key, chunks, mask, init, covariance_type, reg_covar, centers), mask)
        params = shift_means(init_params, -offset)
        if params.weights.ndim == 2:  # one start per restart
            params = jax.tree.map(lambda a: a[restart], params)
        return params

    M = n_active.shape[0]
    steps, B = -(-M // cells_per_batch), cells_per_batch * n_init
    # Cells padded to whole batches by repeating the last one (dropped below).
    pad = lambda a: jnp.concatenate([a, jnp.repeat(a[-1:], steps * cells_per_batch - M, axis=0)])
    K_cells = pad(n_active)
    keys = member_keys(key, K_cells, n_init, fold_in_k)  # (cells, n_init)
    masks = jnp.broadcast_to((jnp.arange(n_components) < K_cells[:, None])[:, None], (K_cells.shape[0], n_init, n_components))
    restarts = jnp.broadcast_to(jnp.arange(n_init), K_cells.shape + (n_init,))
    # Batches of members (cells × restarts, flattened) in sequence.
    batched = lambda a: a.reshape((steps, B) + a.shape[2:])
    members = (batched(keys), batched(masks), batched(restarts), jax.tree.map(lambda a: batched(pad(a)), centers))
    nested = config.nested and M > 1
    splits = -(-M // B)  # batches of split starts per nested round

    # One EM loop for all work: item t < steps is batch t of the restarts;
    # then (``nested``) round r's batch j of split starts is item
    # steps + r·splits + j, for as long as cells are left to do.
    def starts(t, c):
        if not nested:
            return restart_starts(t)
        return jax.lax.cond(t < steps, restart_starts, lambda t: split_batch(t, c), t)

    def restart_starts(t):
        keys, masks, restarts, centers = jax.tree.map(lambda a: a[jnp.minimum(t, steps - 1)], members)
        return jax.vmap(start)(keys, masks, restarts, centers), masks, jnp.zeros((B,), bool)

    def split_batch(t, c):
        cells = (t - steps) % splits * B + jnp.arange(B)
        inside = jnp.minimum(cells, M - 1)
        masks = jnp.arange(n_components) < n_active[inside, None]
        params = jax.vmap(mask_components)(split_starts(c["parents"], n_active, inside), masks)
        return params, masks, ~(c["todo"][inside] & (cells < M))

    def restart_done(t, c, fits):
        results = jax.tree.map(lambda r, f: r.at[t].set(f), c["results"], fits)
        return jax.lax.cond(t == steps - 1, restarts_over, lambda c: c, dict(c, results=results))

    def restarts_over(c):
        results = jax.tree.map(lambda a: a.reshape((-1, n_init) + a.shape[2:])[:M], c["results"])
        c = dict(c, best=jax.vmap(best_of)(results), won=jax.vmap(best_member)(results).astype(jnp.int32))
        return dict(c, todo=jnp.arange(M) > 0, parents=c["best"].params) if nested else c

    def split_done(t, c, fits, skip):
        j = (t - steps) % splits
        cells = j * B + jnp.arange(B)
        best, won, taken = merge(c["best"], c["won"], cells, fits, ~skip)
        taken = put(jnp.where(j == 0, False, c["taken"]), cells, taken, jnp.ones_like(taken))
        c = dict(c, best=best, won=won, taken=taken)
        last = j == splits - 1
        todo = jnp.where(last, next_todo(best, taken, tol), c["todo"])
        parents = jax.tree.map(lambda a, b: jnp.where(last, a, b), best.params, c["parents"])
        return dict(c, todo=todo, parents=parents)

    def body(c):
        t = c["t"]
        params, masks, skip = starts(t, c)
        fits = em_loop(params, chunks, settings, config.max_iter, masks, config.progress, config.prior_per_k, skip)
        if nested:
            c = jax.lax.cond(t < steps, lambda c: restart_done(t, c, fits), lambda c: split_done(t, c, fits, skip), c)
        else:
            c = restart_done(t, c, fits)
        return dict(c, t=t + 1)

    def going(c):
        if not nested:
            return c["t"] < steps
        return (c["t"] < steps) | (jnp.any(c["todo"]) & ((c["t"] - steps) // splits < M - 1))

    # The carry's fits, shaped as em_loop's (a blank start: tracing a real
    # one, and em_loop, once more would double the time to trace the program).
    K, D = n_components, X.shape[1]
    shapes = ((1, K), (1, K, D), (1,) + family(covariance_type).prec_chol_shape(K, D))
    blank = GMMParams(*(jnp.zeros(shape, X.dtype) for shape in shapes), covariance_type)
    fit = fit_result(initial_state(blank, config.max_iter))
    zeros = lambda lead: jax.tree.map(lambda a: jnp.zeros(lead + a.shape[1:], a.dtype), fit)
    c = dict(t=jnp.zeros((), jnp.int32), results=zeros((steps, B)), best=zeros((M,)), won=jnp.zeros((M,), jnp.int32))
    if nested:
        c.update(todo=jnp.zeros((M,), bool), taken=jnp.zeros((M,), bool), parents=c["best"].params)
    c = jax.lax.while_loop(going, body, c)
    best, won, results = c["best"], c["won"], c["results"]
    if nested:
        best, won = keep_parents(best, won, tol)
    assigned = None
    if config.assigned:  # one more pass per cell
        assigned = jax.lax.map(lambda p: pass_sums(p, chunks, assigned=True).assigned, best.params)
    status = results.status.reshape(-1, n_init)[:M]
    return GridResult(best._replace(params=shift_means(best.params, offset)), status, assigned, won)


# The programs compiled (``jgmm._compile.jit``): ``seed`` runs
# ``seed_program``, the family-independent start of ``fit_grid``, which
# ``jgmm.select`` shares between families; ``fit_grid`` runs ``_grid_program``.
seed = jit(seed_program, static_argnames="seeding")
fit_grid = jit(_grid_program, static_argnames="config")


def em_map(params, key, X, w, tol, reg_covar, init_params, prior, *, chunk_size, mesh, prior_per_k, missing):
    """One EM iteration from ``params`` (data coordinates) on ``fit``'s
    arguments, and the mean log-likelihood of ``params``: the map whose fixed
    point a fit is (``jgmm._engine.implicit``). ``key``, ``tol`` and ``init_params``
    only set where EM starts and stops, so they are not used."""
    del key, tol, init_params
    centre = jax.lax.stop_gradient(observed_mean(X, w))  # T does not depend on it
    sums = pass_sums(shift_means(params, -centre), Chunks(X, w, centre, chunk_size, mesh, missing=missing))
    if prior is not None:
        prior = prior_for_k(prior, params.n_components) if prior_per_k else prior
        prior = prior._replace(mean=prior.mean - centre)
    new, _ = m_step_from_stats(sums.stats, params.covariance_type, reg_covar, prior, params)
    return shift_means(new, centre), sums.total / jnp.sum(w)


@functools.cache
def em_map_for(chunk_size: int, mesh, prior_per_k: bool, missing: bool):
    """``em_map`` for these static settings, at full precision: one object
    per setting, so its compiled derivatives are reused (``jgmm._engine.implicit``)."""
    return full_precision(functools.partial(
        em_map, chunk_size=chunk_size, mesh=mesh, prior_per_k=prior_per_k, missing=missing
    ))
