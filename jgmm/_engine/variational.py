"""The variational fit's program: coordinate ascent on the lower bound, restarts side by side.

A restart starts from the variational M-step of a start method's
responsibilities (scikit-learn's ``_initialize``). An iteration is one pass
over the data — the variational E-step is EM's pass (``pass_sums``) on the
mixture ``e_step_mixture`` gives, with the responsibilities' entropy
summed too — and the variational M-step (``jgmm._maths.variational``).
As scikit-learn, a restart stops when its bound changes by less than
``tol``, and the restart of the highest bound wins.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from jgmm._compile import jit
from jgmm._engine.init import Seeding, initial_stats, restart_keys, seed_program
from jgmm._engine.loop import report_progress
from jgmm._engine.passes import Chunks, pass_sums
from jgmm._maths.params import Status
from jgmm._maths.variational import VariationalParams, default_prior, e_step_mixture, lower_bound, variational_m_step


class VariationalConfig(NamedTuple):
    """The static settings of a variational program, hashable.

    Attributes:
      seeding: the starts (``jgmm._engine.init.Seeding``; one cell of K).
      covariance_type: one of scikit-learn's four families.
      prior_type: "dirichlet_process" or "dirichlet_distribution".
      max_iter: maximum iterations; 0: the fit is the start.
      chunk_size: rows per chunk of the pass.
      mesh: the one-axis mesh X and w are split along, or None.
      progress: report on stderr every ``progress`` iterations; 0: nothing
        is compiled for it.
    """

    seeding: Seeding
    covariance_type: str
    prior_type: str
    max_iter: int
    chunk_size: int
    mesh: Mesh | None = None
    progress: int = 0


class _State(NamedTuple):
    params: VariationalParams
    bound: jax.Array
    n_iter: jax.Array
    status: jax.Array
    history: jax.Array
    done: jax.Array


def _ascend(starts: VariationalParams, chunks: Chunks, prior, tol, reg_covar, config: VariationalConfig) -> _State:
    """Iterate (M,)-batched restarts from ``starts`` until each bound
    changes by less than ``tol`` (CONVERGED), is not finite (NONFINITE: the
    last finite parameters are kept) or ``max_iter`` iterations ran
    (MAX_ITER); a restart that has stopped keeps its state."""

    def step(s: _State) -> _State:
        sums = pass_sums(e_step_mixture(s.params), chunks, entropy=True)
        new = variational_m_step(sums.stats, prior, config.covariance_type, reg_covar, config.prior_type)
        bound = lower_bound(new, sums.entropy)
        finite = jnp.isfinite(bound)
        converged = finite & (jnp.abs(bound - s.bound) < tol)
        n_iter = s.n_iter + 1
        status = jnp.where(finite, jnp.where(converged, Status.CONVERGED, Status.MAX_ITER), Status.NONFINITE)
        params = jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, s.params)
        moved = _State(params, jnp.where(finite, bound, s.bound), n_iter, status.astype(jnp.int32),
                       s.history.at[s.n_iter].set(bound), ~finite | converged | (n_iter >= config.max_iter))
        return jax.tree.map(lambda old, now: jnp.where(s.done, old, now), s, moved)

    def body(carry):
        t, s = carry
        s = jax.vmap(step)(s)
        if config.progress:
            K = jnp.full(s.done.shape, config.seeding.n_components)
            report = functools.partial(report_progress, "fit_variational", quantity="lower bound")
            jax.lax.cond((t + 1) % config.progress == 0,
                         lambda: jax.debug.callback(report, t + 1, s.bound, ~s.done, K), lambda: None)
        return t + 1, s

    M, dtype = starts.means.shape[0], starts.means.dtype
    s = _State(starts, jnp.full((M,), -jnp.inf, dtype), jnp.zeros((M,), jnp.int32),
               jnp.full((M,), Status.MAX_ITER, jnp.int32), jnp.full((M, config.max_iter), jnp.nan, dtype),
               jnp.zeros((M,), bool))
    if config.max_iter == 0:
        return s
    return jax.lax.while_loop(lambda c: jnp.any(~c[1].done), body, (jnp.int32(0), s))[1]


@jit(static_argnames="config")
def fit_variational_program(key, X, w, given: dict, tol, reg_covar, init_params=None, *, config: VariationalConfig):
    """Every restart of a variational fit, batched (``vmap``) in one loop.

    The prior is scikit-learn's default (``default_prior``) with the
    fields in ``given`` (data coordinates) in its place; ``init_params``: the VariationalParams
    every restart starts from when the method is "params" (else None).
    Returns the final ``_State`` of the
    restart of the highest finite bound (the first of equals), its means in
    data coordinates, (n_init,) every restart's bound, and the prior.
    """
    K, init, n_init, _, missing = config.seeding
    offset, centers = seed_program(key, jnp.array([K]), X, w, seeding=config.seeding)
    chunks = Chunks(X, w, offset, config.chunk_size, config.mesh, missing=missing)
    prior = default_prior(X, w, K, config.covariance_type)._replace(**given)
    centred = prior._replace(mean=prior.mean - offset)
    mask = jnp.ones((K,), bool)
    shift = lambda params, by: dataclasses.replace(params, means=params.means + by)

    def start(key, centers):
        if init_params is not None:
            return shift(init_params, -offset)
        stats = initial_stats(key, chunks, mask, init, config.covariance_type, centers)
        return variational_m_step(stats, centred, config.covariance_type, reg_covar, config.prior_type)

    starts = jax.vmap(start)(restart_keys(key, n_init), jax.tree.map(lambda a: a[0], centers))
    states = _ascend(starts, chunks, centred, tol, reg_covar, config)
    won = jnp.argmax(jnp.where(states.status == Status.NONFINITE, -jnp.inf, states.bound))
    best = jax.tree.map(lambda a: a[won], states)
    return best._replace(params=shift(best.params, offset)), states.bound, prior
