"""``fit``: EM as one compiled ``lax.while_loop``, restarts batched by ``vmap``.

``fit`` and ``jgmm.select`` share one program, ``_grid_program``: cells
(values of K, padded to the largest) × restarts (see docs/design.md).

Each iteration is scikit-learn's: an E-step on the current parameters gives
the mean log-likelihood L_t and the responsibilities, an M-step gives the next
parameters, and the fit has converged when |L_t - L_{t-1}| < tol. One more
pass of the same loop then gives the log-likelihood of the parameters
returned. Each iteration is one fused pass over chunks of the data
(``jgmm._em.pass_sums``), and the iteration itself is ``em_step``, the step
every driver runs (``fit_stream`` too).

Failures are status codes, not exceptions, so one bad restart never spoils a
batch:

* NONFINITE: L_t or the new parameters are not finite, or a precision factor
  is singular; the last usable parameters are kept.
* DEGENERATE: a component collapsed. Along some principal axis of Σ_k the
  variance is at most ``COLLAPSE_FACTOR · (reg_covar + ε·‖μ_k - c‖²)`` (the
  second term is the rounding of a zero variance in X's dtype, c the data's
  centre; ``collapsed_components``) while the data's own
  variance along that axis is at least ``DATA_SCALE_FACTOR`` times that floor
  — the component sits on (near-)duplicate points or on a lower-dimensional
  subset, a spurious maximum of the unbounded likelihood. An empty component
  (no responsibility) collapses to the floor too. So does a component whose
  covariance estimate is not positive definite even after ``reg_covar`` (too
  few points for the dimension, or rounding); its clipped diagonal stands in
  (``jgmm._em.params_and_singular``). What happens next is the
  ``on_collapse`` policy: "freeze" (default) gives the collapsed components
  weight 0 (switched off, as padding is; never when no component would be
  left) and stops the fit there, its parameters finite; "reseed" restarts a
  collapsed component at the sample the mixture explains worst, with the
  data's covariance, and goes on, DEGENERATE only once ``MAX_RESEEDS``
  re-seeds are spent.

The data are centred (at their weighted mean) inside the program and the
means shifted back at the end: the likelihood is translation invariant, and
float32 statistics stay accurate on data far from the origin.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.typing import ArrayLike

from jgmm._bucket import bucketed
from jgmm._compile import full_precision, jit
from jgmm._covariance import family
from jgmm._em import Chunks, PassSums, params_and_singular, pass_sums, stats_about
from jgmm._implicit import fixed_point
from jgmm._init import Seeding, check_init, initial_params, initialize, member_keys, seed_program, subsample
from jgmm._missing import observed_mean
from jgmm._params import HEALTHY, FitResult, GMMParams, Status, shift_means
from jgmm._prior import Prior, default_prior, map_params_and_singular, prior_for_k
from jgmm._shard import data_mesh
from jgmm._validation import (
    check_choice,
    check_covariance_type,
    check_em_arguments,
    check_int,
    check_n_components,
    check_param_values,
    check_params,
    is_tracer,
)

WORK_BYTES = 4 << 20  # CPU: a chunk's work stays in cache (docs/design.md)
ACCELERATOR_WORK_BYTES = 32 << 20  # GPU/TPU: fewer, wider steps of the scan
CELLS_PER_BATCH_CPU = 2
MIN_CHUNK = 1024
COLLAPSE_FACTOR = 10.0
DATA_SCALE_FACTOR = 1e3
MAX_RESEEDS = 10
ON_COLLAPSE = ("freeze", "reseed")


class EMState(NamedTuple):
    """The state carried by the EM loop.

    Attributes:
      params: current GMMParams.
      n_iter: () iterations run.
      log_likelihood: () mean log-likelihood L_t computed by the last E-step.
      previous: () L_{t-1}.
      status: () int32 ``Status``; MAX_ITER while running.
      history: (max_iter,) L_t per iteration, NaN beyond n_iter.
      stopped: () bool, EM has stopped: the next pass only evaluates the
        log-likelihood of the final parameters.
      done: () bool, that final pass has run; ``log_likelihood`` is its value.
      reseeds: () components re-seeded so far (``on_collapse="reseed"``).
    """

    params: GMMParams
    n_iter: jax.Array
    log_likelihood: jax.Array
    previous: jax.Array
    status: jax.Array
    history: jax.Array
    stopped: jax.Array
    done: jax.Array
    reseeds: jax.Array


def mask_components(params: GMMParams, mask: jax.Array) -> GMMParams:
    """Switch off padded components: weight exactly 0 (weights renormalised
    over the active ones), mean 0, unit precision factor.

    With weight 0 a component drops out of the E-step's log-sum-exp, gets no
    responsibility, hence no statistics: it is never revived.
    """
    weights = jnp.where(mask, params.weights, 0)
    means = jnp.where(mask[:, None], params.means, 0)
    P = family(params.covariance_type).switch_off(params.prec_chol, mask)
    return GMMParams(weights / jnp.sum(weights), means, P, params.covariance_type)


def collapsed_components(params: GMMParams, reg_covar, data_cov: jax.Array) -> jax.Array:
    """(K,) bool: components collapsed to the variance floor (module doc).

    The floor is ``COLLAPSE_FACTOR`` times reg_covar plus what rounding
    leaves of a zero variance: the estimate sxx/N_k - d dᵀ is taken about the
    data's centre, so it carries an error of a few ε·‖d_k‖² (ε the dtype's
    epsilon, d_k the mean about the centre). In float32 that exceeds
    reg_covar for a component on duplicated points a few units from the
    centre; in float64 it is negligible.

    Args:
      params: GMMParams, means about the data's centre.
      reg_covar: the regularisation the parameters were fitted with.
      data_cov: (D, D) covariance of the data.
    """
    variances, data_var = family(params.covariance_type).variances(params.prec_chol, data_cov)
    rounding = jnp.finfo(params.means.dtype).eps * jnp.sum(params.means**2, axis=-1)
    if variances.shape[0] != rounding.shape[0]:  # one covariance, pooled over the components
        rounding = jnp.max(rounding, keepdims=True)
    floor = COLLAPSE_FACTOR * (reg_covar + rounding)[:, None]
    return jnp.any((variances <= floor) & (data_var >= DATA_SCALE_FACTOR * floor), axis=-1)


def freeze_components(params: GMMParams, collapsed, mask) -> GMMParams:
    """Collapsed components get weight 0 (the others renormalised), which
    switches them off as padding is; unless no active component would be left.

    Args:
      params: GMMParams.
      collapsed: (K,) bool.
      mask: (K,) bool, the active components.
    """
    keep = mask & ~collapsed
    weights = jnp.where(jnp.any(keep), jnp.where(keep, params.weights, 0), params.weights)
    return dataclasses.replace(params, weights=weights / jnp.sum(weights))


def reseed_component(params: GMMParams, k, point, data: GMMParams, mask) -> GMMParams:
    """Component k restarted at ``point`` (the worst-explained sample) with
    the data's covariance (``data``, a one-component GMMParams; a tied
    covariance stays shared) and weight 1/K_active before renormalising."""
    one = jnp.arange(params.n_components) == k
    weights = jnp.where(one, 1 / jnp.sum(mask), params.weights)
    means = jnp.where(one[:, None], point, params.means)
    P = family(params.covariance_type).restart(params.prec_chol, one, data.prec_chol)
    return GMMParams(weights / jnp.sum(weights), means, P, params.covariance_type)


def _usable(params: GMMParams) -> jax.Array:
    """() bool: all parameters finite and every precision factor invertible
    (a finite log-determinant; an overflowed covariance gives P = 0)."""
    leaves = jax.tree.leaves(params) + [family(params.covariance_type).log_det(params.prec_chol, params.n_features)]
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in leaves]))


def _m_step(stats, covariance_type: str, reg_covar, prior=None, previous=None):
    """The M-step from statistics: the maximum likelihood, or the posterior
    mode under ``prior``; with which covariance estimates were singular.
    ``previous``: the parameters the statistics were computed with."""
    if prior is None:
        return params_and_singular(stats, covariance_type, reg_covar, previous)
    return map_params_and_singular(stats, covariance_type, reg_covar, prior, previous)


class Settings(NamedTuple):
    """The traced values an EM iteration needs besides its state and data.

    Attributes:
      tol: () convergence threshold on the change of mean log-likelihood.
      reg_covar: () covariance regularisation.
      data_cov: (D, D) data covariance, the scale for the collapse rule.
      reseed_with: None to freeze collapsed components; or a one-component
        GMMParams of the data, to re-seed them (``reseed_component``).
      prior: None for maximum likelihood, or a ``jgmm.Prior`` in the data's
        centred coordinates for the posterior mode (MAP M-step).
    """

    tol: jax.Array
    reg_covar: jax.Array
    data_cov: jax.Array
    reseed_with: GMMParams | None = None
    prior: Prior | None = None


def em_step(s: EMState, sums: PassSums, weight, mask, settings: Settings, max_iter: int) -> EMState:
    """One member's EM iteration, the step every driver runs: from the sums
    of a pass over the data made with ``s.params`` (in memory, over devices,
    or chunk by chunk from disk), the M-step, the collapse policy, the status.

    Args:
      s: the member's EMState.
      sums: PassSums of the data under ``s.params`` (centred), with a
        ``Worst`` if ``settings.reseed_with`` is given.
      weight: () Σ_n w_n, so that ``sums.total / weight`` is the mean
        log-likelihood.
      mask: (K,) bool, its active components.
      settings: Settings.
      max_iter: static maximum number of iterations.
    """
    ll = sums.total / weight
    tol, reg_covar, data_cov, reseed_with, prior = settings
    new, singular = _m_step(sums.stats, s.params.covariance_type, reg_covar, prior, s.params)
    new = mask_components(new, mask)
    bad = ~jnp.isfinite(ll) | ~_usable(new)
    collapsed = (collapsed_components(new, reg_covar, data_cov) | singular) & mask
    reseeded = jnp.asarray(False)
    if reseed_with is not None:
        reseeded = jnp.any(collapsed) & (s.reseeds < MAX_RESEEDS)
        again = reseed_component(new, jnp.argmax(collapsed), sums.worst.x, reseed_with, mask)
        new = jax.tree.map(lambda a, b: jnp.where(reseeded, a, b), again, new)
        collapsed = collapsed & ~reseeded
    new = freeze_components(new, collapsed, mask)
    status = jnp.select(
        [bad, jnp.any(collapsed), ~reseeded & (jnp.abs(ll - s.log_likelihood) < tol)],
        [Status.NONFINITE, Status.DEGENERATE, Status.CONVERGED],
        Status.MAX_ITER,
    ).astype(jnp.int32)
    n_iter = s.n_iter + 1
    em = EMState(
        params=jax.tree.map(lambda old, upd: jnp.where(bad, old, upd), s.params, new),
        n_iter=n_iter,
        log_likelihood=ll,
        previous=s.log_likelihood,
        status=status,
        history=s.history.at[s.n_iter].set(ll),
        stopped=(status != Status.MAX_ITER) | (n_iter >= max_iter),
        done=jnp.asarray(False),
        reseeds=s.reseeds + reseeded,
    )
    # After EM stopped, this pass was only for the final log-likelihood
    # (and once done, it recomputes that same value).
    final = s._replace(
        log_likelihood=ll,
        status=jnp.where(jnp.isfinite(ll), s.status, Status.NONFINITE).astype(jnp.int32),
        done=jnp.asarray(True),
    )
    return jax.tree.map(lambda f, e: jnp.where(s.stopped, f, e), final, em)


def initial_state(params: GMMParams, max_iter: int) -> EMState:
    """The EMState of (M,)-batched members before their first iteration."""
    M, dtype = params.weights.shape[0], params.means.dtype
    return EMState(
        params=params,
        n_iter=jnp.zeros((M,), jnp.int32),
        log_likelihood=jnp.full((M,), -jnp.inf, dtype),
        previous=jnp.full((M,), -jnp.inf, dtype),
        status=jnp.full((M,), Status.MAX_ITER, jnp.int32),
        history=jnp.full((M, max_iter), jnp.nan, dtype),
        stopped=jnp.zeros((M,), bool),
        done=jnp.zeros((M,), bool),
        reseeds=jnp.zeros((M,), jnp.int32),
    )


def fit_result(s: EMState) -> FitResult:
    """The FitResult of (M,)-batched members."""
    return FitResult(s.params, s.log_likelihood, s.n_iter, s.status == Status.CONVERGED, s.status, s.history)


def em_loop(
    params: GMMParams,
    chunks: Chunks,
    settings: Settings,
    max_iter: int,
    mask,
    progress=None,
    prior_per_k: bool = False,
) -> FitResult:
    """Run EM for a batch of members until each converges, fails or reaches ``max_iter``.

    The loop runs while any member is still going; a member that has stopped
    keeps its state (its passes change nothing).

    Args:
      params: (M,)-batched initial GMMParams (inactive components masked).
      chunks: the data, read in centred chunks (``jgmm._em.Chunks``).
      settings: Settings (its prior in the chunks' centred coordinates).
      max_iter: static maximum number of iterations.
      mask: (M, K) bool, each member's active components.
      progress: static ``(label, every)`` to report every ``every``
        iterations on stderr (``report_progress``), or None: nothing is
        compiled for it.
      prior_per_k: static; divide the prior's scale by K^(2/D), K each
        member's active components (mclust's default prior for K).

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

    init = (jnp.zeros((), jnp.int32), initial_state(params, max_iter))
    _, s = jax.lax.while_loop(lambda c: jnp.any(~c[1].done), body, init)
    return fit_result(s)


def report_progress(label: str, iteration, log_likelihood, running, n_components) -> None:
    """Print one progress line on stderr: the iteration, the best mean
    log-likelihood among the members still running, how many run."""
    running = np.asarray(running)
    if not running.any():
        return
    K = np.asarray(n_components)[running]
    cells = f"K={K.min()}" if K.min() == K.max() else f"K={K.min()}..{K.max()}"
    best = np.max(np.asarray(log_likelihood)[running])
    print(
        f"jgmm {label} {cells}: iteration {int(iteration)}, log-likelihood {best:.6f}, "
        f"{int(running.sum())}/{running.size} fits running",
        file=sys.stderr,
        flush=True,
    )


def collapse_references(X_sample, w_sample, covariance_type: str, reg_covar, on_collapse: str):
    """From a (centred) sample of the data: their (D, D) covariance, the scale
    of the collapse rule; and for ``on_collapse="reseed"`` the one-component
    GMMParams re-seeded components start from (else None)."""
    data_cov = (X_sample * w_sample[:, None]).T @ X_sample / jnp.sum(w_sample)
    if on_collapse != "reseed":
        return data_cov, None
    shift = (w_sample @ X_sample) / jnp.sum(w_sample)
    stats = stats_about(w_sample[:, None], X_sample, shift, covariance_type)
    return data_cov, params_and_singular(stats, covariance_type, reg_covar)[0]


def best_member(results: FitResult) -> jax.Array:
    """Index of the best of a batch of fits (leading axis).

    Prefers CONVERGED or MAX_ITER members, then any with a finite
    log-likelihood; among those, the highest log-likelihood.
    """
    ok = jnp.isin(results.status, jnp.array(HEALTHY))
    finite = jnp.isfinite(results.log_likelihood)
    rank = 2 * ok.astype(jnp.int32) + finite.astype(jnp.int32)
    score = jnp.where((rank == jnp.max(rank)) & finite, results.log_likelihood, -jnp.inf)
    return jnp.argmax(score)


def best_of(results: FitResult) -> FitResult:
    """The FitResult of the ``best_member`` of a batch."""
    return jax.tree.map(lambda a: a[best_member(results)], results)


def default_cells_per_batch(n_cells: int) -> int:
    """Cells (K values) fitted side by side: all on an accelerator; a few on
    CPU, where running cells one after another lets each stop as soon as its
    own restarts have converged."""
    return n_cells if jax.default_backend() != "cpu" else min(n_cells, CELLS_PER_BATCH_CPU)


def _rows_per_device(N: int, mesh) -> int:
    return N if mesh is None else N // mesh.size


def check_chunk_size(chunk_size, N: int, mesh=None) -> int | None:
    """``chunk_size`` as given (None, or an int >= 1), capped at the rows
    per device."""
    return None if chunk_size is None else min(check_int(chunk_size, "chunk_size", 1), _rows_per_device(N, mesh))


def default_chunk_size(
    N: int, K: int, D: int, n_members: int, itemsize: int, mesh=None, covariance_type="full", missing=False
) -> int:
    """Rows per chunk so that one chunk's work arrays fit in ``WORK_BYTES``
    (``ACCELERATOR_WORK_BYTES`` off CPU); at least ``MIN_CHUNK`` rows, at
    most the rows per device.

    Per member and row the E-step holds what the family says
    (``Family.row_work``): K·D numbers for full covariances (the distances
    before their sum over D), K + D for tied, diag and spherical; with
    missing values K·D for diagonal covariances and K·D² for the others
    (``jgmm._missing``). Sized to the work (not K·D for every family), diag
    and spherical read 4-16x longer chunks, 15-30% faster on CPU at
    N = 200,000, D = K = 32.
    """
    per_row = family(covariance_type).row_work(K, D, missing)
    budget = WORK_BYTES if jax.default_backend() == "cpu" else ACCELERATOR_WORK_BYTES
    return rows_within(budget, n_members * per_row * itemsize, _rows_per_device(N, mesh))


def rows_within(budget: int, row_bytes: int, N: int) -> int:
    """The largest power of two of rows of ``row_bytes`` within ``budget``
    bytes, at least ``MIN_CHUNK`` and at most N."""
    rows = budget // max(1, row_bytes)
    return int(min(N, max(MIN_CHUNK, 1 << max(int(rows).bit_length() - 1, 0))))


class GridConfig(NamedTuple):
    """The static configuration of a grid program (``fit_grid``): one
    hashable value, one compiled program per value.

    Attributes:
      seeding: the starts (``jgmm._init.Seeding``: K_max, method, restarts,
        key folding, missing entries).
      covariance_type: the family's canonical name.
      max_iter: maximum EM iterations.
      chunk_size: rows per chunk of the EM pass.
      cells_per_batch: cells (values of K) fitted side by side.
      progress: ``(label, every)`` to report on stderr, or None (``em_loop``).
      on_collapse: "freeze" or "reseed" (``fit``).
      mesh: the one-axis mesh X and w are split along (``jgmm._shard``), or None.
      prior_per_k: divide the prior's scale by each cell's K^(2/D) (``em_loop``).
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
      best: FitResult with a leading (M,) axis, the best restart of each cell.
      restart_status: (M, n_init) int32 status of every restart.
    """
    n_components, init, n_init, fold_in_k, missing = config.seeding
    covariance_type, cells_per_batch = config.covariance_type, config.cells_per_batch
    if seeds is None:
        seeds = seed_program(key, n_active, X, w, seeding=config.seeding)
    offset, centers = seeds
    chunks = Chunks(X, w, offset, config.chunk_size, config.mesh, missing=missing)
    if prior is not None:
        prior = prior._replace(mean=prior.mean - offset)
    data_cov, reseed_with = collapse_references(*subsample(chunks), covariance_type, reg_covar, config.on_collapse)
    settings = Settings(tol, reg_covar, data_cov, reseed_with, prior)

    def start(key, mask, restart, centers):
        if init_params is None:
            return mask_components(initialize(key, chunks, mask, init, covariance_type, reg_covar, centers), mask)
        params = shift_means(init_params, -offset)
        if params.weights.ndim == 2:  # one start per restart
            params = jax.tree.map(lambda a: a[restart], params)
        return params

    def batch(keys, masks, restarts, centers):
        params = jax.vmap(start)(keys, masks, restarts, centers)
        return em_loop(params, chunks, settings, config.max_iter, masks, config.progress, config.prior_per_k)

    M = n_active.shape[0]
    steps = -(-M // cells_per_batch)
    # Cells padded to whole batches by repeating the last one (dropped below).
    pad = lambda a: jnp.concatenate([a, jnp.repeat(a[-1:], steps * cells_per_batch - M, axis=0)])
    K_cells = pad(n_active)
    keys = member_keys(key, K_cells, n_init, fold_in_k)  # (cells, n_init)
    masks = jnp.broadcast_to((jnp.arange(n_components) < K_cells[:, None])[:, None], (K_cells.shape[0], n_init, n_components))
    restarts = jnp.broadcast_to(jnp.arange(n_init), K_cells.shape + (n_init,))
    # Batches of members (cells × restarts, flattened) in sequence.
    batched = lambda a: a.reshape((steps, cells_per_batch * n_init) + a.shape[2:])
    members = (batched(keys), batched(masks), batched(restarts), None if centers is None else batched(pad(centers)))
    results = jax.lax.map(lambda xs: batch(*xs), members)
    results = jax.tree.map(lambda a: a.reshape((-1, n_init) + a.shape[2:])[:M], results)
    best = jax.vmap(best_of)(results)
    return best._replace(params=shift_means(best.params, offset)), results.status


# The programs compiled (``jgmm._compile.jit``): ``seed`` runs
# ``seed_program``, the family-independent start of ``fit_grid``, which
# ``jgmm.select`` shares between families; ``fit_grid`` runs ``_grid_program``.
seed = jit(seed_program, static_argnames="seeding")
fit_grid = jit(_grid_program, static_argnames="config")


def em_map(params, key, X, w, tol, reg_covar, init_params, prior, *, chunk_size, mesh, prior_per_k, missing):
    """One EM iteration from ``params`` (data coordinates) on ``fit``'s
    arguments, and the mean log-likelihood of ``params``: the map whose fixed
    point a fit is (``jgmm._implicit``). ``key``, ``tol`` and ``init_params``
    only set where EM starts and stops, so they are not used."""
    del key, tol, init_params
    centre = jax.lax.stop_gradient(observed_mean(X, w))  # T does not depend on it
    sums = pass_sums(shift_means(params, -centre), Chunks(X, w, centre, chunk_size, mesh, missing=missing))
    if prior is not None:
        prior = prior_for_k(prior, params.n_components) if prior_per_k else prior
        prior = prior._replace(mean=prior.mean - centre)
    new, _ = _m_step(sums.stats, params.covariance_type, reg_covar, prior, params)
    return shift_means(new, centre), sums.total / jnp.sum(w)


@functools.cache
def em_map_for(chunk_size: int, mesh, prior_per_k: bool, missing: bool):
    """``em_map`` for these static settings, at full precision: one object
    per setting, so its compiled derivatives are reused (``jgmm._implicit``)."""
    return full_precision(functools.partial(
        em_map, chunk_size=chunk_size, mesh=mesh, prior_per_k=prior_per_k, missing=missing
    ))


def check_prior(prior, X, covariance_type: str, w=None):
    """``prior`` as ``fit`` and ``select`` take it: None, "default" or a
    ``Prior`` whose arrays fit the data and family; in X's dtype. Returns
    (prior, prior_per_k): "default" is mclust's prior for K = 1 of X with
    sample weights w, whose scale the program divides by each fit's K^(2/D)."""
    if prior is None:
        return None, False
    if family(covariance_type).map_covariance_estimate is None:
        raise ValueError(f"covariance_type={covariance_type!r} takes no prior; pass prior=None.")
    per_k = isinstance(prior, str)
    if per_k:
        check_choice(prior, "prior", ("default",))
        prior = default_prior(X, 1, covariance_type, sample_weight=w)
    if not isinstance(prior, Prior):
        raise TypeError(f"prior must be None, 'default' or a jgmm.Prior, got {type(prior).__name__}.")
    D = X.shape[1]
    scale = family(covariance_type).prior_scale_shape(D)
    if np.shape(prior.mean) != (D,) or np.shape(prior.scale) != scale:
        raise ValueError(
            f"prior.mean must have shape {(D,)} and prior.scale {scale} for covariance_type={covariance_type!r}; "
            f"got {np.shape(prior.mean)} and {np.shape(prior.scale)}."
        )
    if not any(map(is_tracer, prior)):
        _check_prior_values(*(np.asarray(a, np.float64) for a in prior))
    return jax.tree.map(lambda a: jnp.asarray(a, X.dtype), prior), per_k


def _check_prior_values(weight_concentration, mean, shrinkage, dof, scale) -> None:
    """Refuse a concrete prior that is not a proper conjugate prior."""
    if not all(np.all(np.isfinite(a)) for a in (weight_concentration, mean, shrinkage, dof, scale)):
        raise ValueError("prior contains NaN or infinity.")
    if not (shrinkage > 0 and dof > 0 and weight_concentration >= 1):
        raise ValueError("prior needs shrinkage > 0, dof > 0 and weight_concentration >= 1.")
    if scale.ndim < 2:
        nonnegative = np.all(scale >= 0)
    else:  # a zero direction (a constant feature in the data) is no information, not an error
        eigenvalues = np.linalg.eigvalsh(scale)
        nonnegative = np.allclose(scale, scale.T) and eigenvalues[0] >= -1e-8 * max(np.abs(eigenvalues).max(), 1e-300)
    if not nonnegative:
        raise ValueError(
            "prior.scale must be non-negative (a symmetric positive semi-definite matrix for full and tied)."
        )


def batched_starts(key, X, w, init, n_init: int, K: int, covariance_type: str, reg_covar) -> GMMParams:
    """(n_init,)-batched starting GMMParams in data coordinates: ``init``
    checked (and repeated for every restart) if it is GMMParams, else the
    starts of method ``init`` on X, weights w (``initial_params``)."""
    if isinstance(init, GMMParams):
        starts = check_starts(init, n_init, K, X.shape[1], covariance_type, X.dtype)
        if starts.weights.ndim == 1:
            starts = jax.tree.map(lambda a: jnp.broadcast_to(a, (n_init,) + a.shape), starts)
        return starts
    init = check_init(init)
    return initial_params(
        key, X, w, reg_covar, n_components=K, covariance_type=covariance_type, init=init, n_init=n_init,
        chunk_size=X.shape[0],
    )


def check_starts(init: GMMParams, n_init: int, K: int, D: int, covariance_type: str, dtype) -> GMMParams:
    """``init`` as given to ``fit``: one GMMParams, or n_init of them stacked."""
    weights = np.shape(init.weights)
    if len(weights) == 2:
        if weights[0] != n_init or any(np.shape(a)[:1] != (n_init,) for a in jax.tree.leaves(init)):
            raise ValueError(
                f"init holds a batch of starting parameters; its leading axis must be n_init = {n_init} "
                f"for every array, got shapes {[np.shape(a) for a in jax.tree.leaves(init)]}."
            )
        for i in range(n_init):
            check_param_values(check_params(jax.tree.map(lambda a: a[i], init), n_features=D, n_components=K))
    else:
        check_param_values(check_params(init, n_features=D, n_components=K))
    if family(init.covariance_type).name != covariance_type:
        raise ValueError(f"init has covariance_type={init.covariance_type!r} but covariance_type={covariance_type!r}.")
    return jax.tree.map(lambda a: jnp.asarray(a, dtype), init)


@full_precision
def fit(
    key: jax.Array,
    X: ArrayLike,
    n_components: int,
    covariance_type: str = "full",
    *,
    n_init: int = 1,
    init: str | GMMParams = "kmeans",
    max_iter: int = 100,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    sample_weight: ArrayLike | None = None,
    progress: int = 0,
    chunk_size: int | None = None,
    on_collapse: str = "freeze",
    prior: Prior | str | None = None,
    missing: str = "error",
) -> FitResult:
    """Fit a Gaussian mixture by EM, all restarts in one compiled program.

    Args:
      key: a ``jax.random.key`` (a raw ``jax.random.PRNGKey`` is wrapped as
        the same key). Restart i uses ``jax.random.split(key, n_init)[i]``;
        a single fit uses ``key`` itself.
      X: (N, D) samples. float32 by default; float64 data stay float64 when
        ``jax_enable_x64`` is on. Up to 65,536 rows, N is padded with rows
        of weight 0 to one of four sizes per octave, so that data of nearby
        sizes reuse one compiled program (``jgmm._bucket``).
      n_components: K >= 1, at most N.
      covariance_type: a registered family (``jgmm.family_names()``): "full",
        "tied", "diag", "spherical", or an alias such as mclust's "VVV".
      n_init: number of restarts, run batched; the best is returned.
      init: "kmeans" (k-means++ seeding and Lloyd steps; the old name
        "kmeans++" is accepted), "k-means++", "random", "random_from_data"
        (see ``jgmm._init``), a GMMParams to start every restart from, or
        GMMParams with a leading (n_init,) axis on every array: restart i
        starts from the i-th.
      max_iter: maximum EM iterations (static: a new value compiles anew).
      tol: convergence threshold on the change of the mean per-sample
        log-likelihood.
      reg_covar: non-negative value added to the covariance diagonals.
      sample_weight: optional (N,) non-negative weights; an integer weight m
        is the same as repeating the row m times.
      progress: if > 0, print the iteration and log-likelihood on stderr
        every ``progress`` iterations, from inside the compiled loop (a new
        value compiles anew). 0, the default: silent, and nothing of it is
        compiled.
      chunk_size: rows per chunk of the fused E-step/statistics pass (static).
        Default: from a 4 MiB budget for the (rows, K, D) work array, at
        least 1024 rows
        (``default_chunk_size``). Results do not depend on it beyond rounding.
      on_collapse: what happens to a component that collapses (module doc):
        "freeze" (default) gives it weight 0 and stops the fit with status
        DEGENERATE; "reseed" restarts it at the worst-explained sample with
        the data's covariance and goes on (at most ``MAX_RESEEDS`` times per
        fit, then "freeze"). Re-seeding lowers the log-likelihood for an
        iteration, so the history is not monotone across a re-seed.
      prior: None (maximum likelihood), "default" (``jgmm.default_prior``
        of X for this K and family, mclust's defaults) or a ``jgmm.Prior``:
        fit the posterior mode (MAP) under the conjugate prior instead, with
        which no component collapses (docs/derivation.md §12). The reported
        log-likelihood is still the data's, at the fitted parameters.
      missing: "error" (default): NaN in X is refused. "marginalize": NaN
        entries are missing values (missing at random) and EM is exact for
        the observed data: each sample's E-step uses its observed features,
        the M-step the conditional expectations of the missing ones
        (``jgmm._missing``, docs/derivation.md §13); the log-likelihood is
        the observed data's. Costs O(K·D³) per sample and iteration for full
        and tied, O(K·D) for diag and spherical. Starts are found on the data
        with missing entries filled by the feature means.

    Returns:
      FitResult of the best restart (highest log-likelihood among the
      restarts that did not fail). Its ``params`` and ``log_likelihood``
      are differentiable (``jax.grad``, ``jax.jvp``) with respect to X,
      ``sample_weight``, ``reg_covar`` and ``prior``, by implicit
      differentiation at EM's fixed point (``jgmm._implicit``).

    Raises:
      ValueError: on invalid input, before anything is traced.
    """
    p = prepare(key, X, sample_weight, n_init, max_iter, tol, reg_covar, progress, chunk_size, on_collapse, missing)
    K = check_n_components(n_components, p.N)
    covariance_type = check_covariance_type(covariance_type)
    init_params = None
    if isinstance(init, GMMParams):
        init_params = check_starts(init, p.n_init, K, p.X.shape[1], covariance_type, p.X.dtype)
        init = "params"
    else:
        init = check_init(init)
    prior, prior_per_k = check_prior(prior, p.X, covariance_type, p.w)
    config = p.grid_config(K, covariance_type, init, fold_in_k=False, cells_per_batch=1, prior_per_k=prior_per_k)

    def solve(key, X, w, tol, reg_covar, init_params, prior):
        best, _ = fit_grid(key, np.array([K], np.int32), X, w, tol, reg_covar, init_params, prior=prior, config=config)
        return jax.tree.map(lambda a: a[0], best)

    update = em_map_for(config.chunk_size, p.mesh, prior_per_k, p.missing)
    return fixed_point(solve, update, (p.key, p.X, p.w, p.tol, p.reg_covar, init_params, prior))


class Prepared(NamedTuple):
    """What ``fit`` and ``select`` share, checked on the host (``prepare``).

    Attributes:
      key, n_init, max_iter, tol, reg_covar, progress, on_collapse: checked.
      X: (N', D) the data in the dtype fitted in, padded to a bucket of rows
        (``jgmm._bucket``); w: (N',) their weights, 0 on the padding.
      N: the number of samples given.
      mesh: the mesh X is split along, or None (``jgmm._shard``).
      missing: NaN entries are missing values.
      chunk_size: rows per chunk as given (checked), or None for the default.
    """

    key: jax.Array
    X: jax.Array
    w: jax.Array
    N: int
    n_init: int
    max_iter: int
    tol: jax.Array
    reg_covar: jax.Array
    progress: int
    on_collapse: str
    mesh: Mesh | None
    missing: bool
    chunk_size: int | None

    def chunk_rows(self, K: int, covariance_type: str) -> int:
        """Rows per chunk of the EM pass for one cell of K_max = K, n_init restarts."""
        N, D = self.X.shape
        return self.chunk_size or default_chunk_size(
            N, K, D, self.n_init, self.X.dtype.itemsize, self.mesh, covariance_type, self.missing
        )

    def grid_config(self, K: int, covariance_type: str, init: str, *, fold_in_k, cells_per_batch, prior_per_k):
        """The GridConfig of a grid program of models padded to K components."""
        return GridConfig(
            Seeding(K, init, self.n_init, fold_in_k, self.missing),
            covariance_type,
            self.max_iter,
            self.chunk_rows(K, covariance_type),
            cells_per_batch,
            (covariance_type, self.progress) if self.progress else None,
            self.on_collapse,
            self.mesh,
            prior_per_k,
        )


def prepare(key, X, sample_weight, n_init, max_iter, tol, reg_covar, progress, chunk_size, on_collapse, missing):
    """Check what ``fit`` and ``select`` share and pad the data to a bucket
    of rows, so that data of nearby sizes share programs. Returns Prepared."""
    key, X, w, n_init, max_iter, tol, reg_covar = check_em_arguments(
        key, X, sample_weight, n_init, max_iter, tol, reg_covar, missing
    )
    progress = check_int(progress, "progress", 0)
    on_collapse = check_choice(on_collapse, "on_collapse", ON_COLLAPSE)
    mesh = data_mesh(X)
    N = X.shape[0]
    X, w = bucketed(X, w)
    chunk_size = check_chunk_size(chunk_size, X.shape[0], mesh)
    return Prepared(
        key, X, w, N, n_init, max_iter, tol, reg_covar, progress, on_collapse, mesh, missing == "marginalize", chunk_size
    )
