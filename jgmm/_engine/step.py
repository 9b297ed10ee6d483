"""The EM step: one member's iteration from the sums of a pass over the data.

``em_step`` is the kernel every driver runs (blackjax's pattern: a step from
state to state, the loop outside it): ``jgmm._engine.loop``'s compiled loop
for ``fit`` and ``select``, and ``fit_stream``'s loop on the host. It takes
the ``PassSums`` of a pass made with the member's parameters (in memory,
over devices, or chunk by chunk from disk), runs the M-step (maximum
likelihood or posterior mode), the collapse policy and the status. The
convergence rule is scikit-learn's: |L_t - L_{t-1}| < tol on the mean
log-likelihood; after EM stops, one more pass gives the log-likelihood of
the parameters returned.

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
  (``jgmm._maths.em.params_and_singular``). What happens next is the
  ``on_collapse`` policy: "freeze" (default) gives the collapsed components
  weight 0 (switched off, as padding is; never when no component would be
  left) and stops the fit there, its parameters finite; "reseed" restarts a
  collapsed component at the sample the mixture explains worst, with the
  data's covariance, and goes on, DEGENERATE only once ``MAX_RESEEDS``
  re-seeds are spent; "keep" (scikit-learn's behaviour) lets a component
  go on at its ``reg_covar``-floored covariance: only one whose covariance
  is zero to rounding along some axis (the floor without ``reg_covar``), or
  not positive definite, is frozen (DEGENERATE; scikit-learn's Cholesky
  fails there).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jgmm._engine.passes import PassSums
from jgmm._maths.em import params_and_singular, stats_about
from jgmm._maths.families import family
from jgmm._maths.params import HEALTHY, FitResult, GMMParams, Status
from jgmm._maths.prior import Prior, map_params_and_singular


COLLAPSE_FACTOR = 10.0
DATA_SCALE_FACTOR = 1e3
MAX_RESEEDS = 10
ON_COLLAPSE = ("freeze", "reseed", "keep")


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
    f = family(params.covariance_type)
    variances, data_var = f.variances(params.prec_chol, data_cov)
    rounding = jnp.finfo(params.means.dtype).eps * jnp.sum(params.means**2, axis=-1)
    if f.shared:  # one covariance, pooled over the components
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


def m_step_from_stats(stats, covariance_type: str, reg_covar, prior=None, previous=None):
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
      collapse_reg: () the regularisation the rule's floor counts:
        reg_covar; 0 for ``on_collapse="keep"``, whose rule finds only
        covariances that are zero to rounding along some axis.
      reseed_with: None to freeze collapsed components; or a one-component
        GMMParams of the data, to re-seed them (``reseed_component``).
      prior: None for maximum likelihood, or a ``jgmm.Prior`` in the data's
        centred coordinates for the posterior mode (MAP M-step).
    """

    tol: jax.Array
    reg_covar: jax.Array
    data_cov: jax.Array
    collapse_reg: jax.Array
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
    tol, reg_covar, data_cov, collapse_reg, reseed_with, prior = settings
    new, singular = m_step_from_stats(sums.stats, s.params.covariance_type, reg_covar, prior, s.params)
    new = mask_components(new, mask)
    bad = ~jnp.isfinite(ll) | ~_usable(new)
    collapsed = (collapsed_components(new, collapse_reg, data_cov) | singular) & mask
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


def collapse_references(X_sample, w_sample, covariance_type: str, reg_covar, on_collapse: str):
    """From a (centred) sample of the data: their (D, D) covariance, the scale
    of the collapse rule; the regularisation its floor counts (``Settings``);
    and for ``on_collapse="reseed"`` the one-component GMMParams re-seeded
    components start from (else None)."""
    data_cov = (X_sample * w_sample[:, None]).T @ X_sample / jnp.sum(w_sample)
    collapse_reg = jnp.zeros_like(reg_covar) if on_collapse == "keep" else reg_covar
    if on_collapse != "reseed":
        return data_cov, collapse_reg, None
    shift = (w_sample @ X_sample) / jnp.sum(w_sample)
    stats = stats_about(w_sample[:, None], X_sample, shift, covariance_type)
    return data_cov, collapse_reg, params_and_singular(stats, covariance_type, reg_covar)[0]


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
