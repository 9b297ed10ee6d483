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
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from jgmm._compile import jit
from jgmm._engine.init import Seeding, initial_stats, restart_keys, seed_program
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
    """

    seeding: Seeding
    covariance_type: str
    prior_type: str
    max_iter: int
    chunk_size: int
    mesh: Mesh | None = None


class _State(NamedTuple):
    params: VariationalParams
    bound: jax.Array
    n_iter: jax.Array
    status: jax.Array
    history: jax.Array
    done: jax.Array


def _ascend(start: VariationalParams, chunks: Chunks, prior, tol, reg_covar, config: VariationalConfig) -> _State:
    """Iterate one restart from ``start`` until its bound changes by less
    than ``tol`` (CONVERGED), is not finite (NONFINITE: the last finite
    parameters are kept) or ``max_iter`` iterations ran (MAX_ITER)."""

    def body(s: _State) -> _State:
        sums = pass_sums(e_step_mixture(s.params), chunks, entropy=True)
        new = variational_m_step(sums.stats, prior, config.covariance_type, reg_covar, config.prior_type)
        bound = lower_bound(new, sums.entropy)
        finite = jnp.isfinite(bound)
        converged = finite & (jnp.abs(bound - s.bound) < tol)
        n_iter = s.n_iter + 1
        status = jnp.where(finite, jnp.where(converged, Status.CONVERGED, Status.MAX_ITER), Status.NONFINITE)
        params = jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, s.params)
        return _State(params, jnp.where(finite, bound, s.bound), n_iter, status.astype(jnp.int32),
                      s.history.at[s.n_iter].set(bound), ~finite | converged | (n_iter >= config.max_iter))

    dtype = start.means.dtype
    s = _State(start, jnp.asarray(-jnp.inf, dtype), jnp.int32(0), jnp.int32(Status.MAX_ITER),
               jnp.full((config.max_iter,), jnp.nan, dtype), jnp.bool_(False))
    return s if config.max_iter == 0 else jax.lax.while_loop(lambda s: ~s.done, body, s)


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

    def restart(key, centers):
        if init_params is not None:
            start = shift(init_params, -offset)
        else:
            stats = initial_stats(key, chunks, mask, init, config.covariance_type, centers)
            start = variational_m_step(stats, centred, config.covariance_type, reg_covar, config.prior_type)
        return _ascend(start, chunks, centred, tol, reg_covar, config)

    states = jax.vmap(restart)(restart_keys(key, n_init), jax.tree.map(lambda a: a[0], centers))
    won = jnp.argmax(jnp.where(states.status == Status.NONFINITE, -jnp.inf, states.bound))
    best = jax.tree.map(lambda a: a[won], states)
    return best._replace(params=shift(best.params, offset)), states.bound, prior
