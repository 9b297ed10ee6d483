"""Online (stepwise) EM: running averages of the sufficient statistics.

After mini-batch t the per-sample statistics move toward the batch's
(Cappé & Moulines 2009),

    s_t = (1 - η_t) s_{t-1} + η_t ŝ(B_t; θ_{t-1}),    θ_t = params_from_stats(s_t),

where ŝ(B; θ) is the E-step's statistics of batch B divided by its weight.
With step sizes η_t = (t + 2)^(-α), α in (0.5, 1] (Liang & Klein 2009),
Σ η_t = ∞ and Σ η_t² < ∞, and the parameters converge to a stationary point
of the expected log-likelihood. See docs/derivation.md. With missing values
the batch statistics are the conditional ones of ``jgmm._maths.missing``: stepwise
EM on the observed-data likelihood.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jgmm._compile import jit
from jgmm._engine.passes import Chunks, pass_sums
from jgmm._engine.planning import default_chunk_size
from jgmm._maths.em import SuffStats, params_and_singular
from jgmm._maths.families import family
from jgmm._maths.params import GMMParams, shift_means
from jgmm._maths.validation import check_array, check_param_values, check_params, check_sample_weight, is_tracer

STEP_DECAY = 0.6  # α of the default step sizes (t + 2)^(-α)


class OnlineState(NamedTuple):
    """What stepwise EM carries from one mini-batch to the next.

    Attributes:
      params: the current GMMParams, ``params_from_stats(stats)``.
      stats: SuffStats per unit weight (nk sums to 1), about a fixed centre.
      n_steps: () int32, mini-batches seen.
      log_likelihood: () mean log-likelihood of the last mini-batch under the
        parameters before its step (NaN before the first step).
    """

    params: GMMParams
    stats: SuffStats
    n_steps: jax.Array
    log_likelihood: jax.Array


def online_init(params: GMMParams) -> OnlineState:
    """The state whose statistics are those ``params`` imply per unit weight:
    N_k = π_k, sx_k = π_k d_k, sxx from Σ_k + d_k d_kᵀ (d_k = μ_k - c), about
    the mixture's mean c. ``params_from_stats`` maps them back to ``params``
    (plus ``reg_covar`` on the diagonals)."""
    return _online_init(check_param_values(check_params(params)))


@jit
def _online_init(params: GMMParams) -> OnlineState:
    f = family(params.covariance_type)
    shift = params.weights @ params.means
    d = params.means - shift
    sxx = f.moments_from_covariance(f.covariances(params.prec_chol), params.weights, d)
    stats = SuffStats(params.weights, params.weights[:, None] * d, sxx, shift)
    return OnlineState(params, stats, jnp.zeros((), jnp.int32), jnp.full((), jnp.nan, params.means.dtype))


def default_step_size(n_steps, decay: float = STEP_DECAY):
    """η_t = (t + 2)^(-decay) for step t = ``n_steps`` (0 for the first batch)."""
    return (n_steps + 2.0) ** -decay


@jit(static_argnames=("chunk_size", "missing"))
def _online_step(state, X, w, step_size, reg_covar, *, chunk_size, missing):
    shift = state.stats.shift
    params = state.params
    sums = pass_sums(shift_means(params, -shift), Chunks(X, w, shift, chunk_size, missing=missing))
    total, batch = sums.total, sums.stats
    weight = jnp.sum(w)
    eta = jnp.asarray(default_step_size(state.n_steps) if step_size is None else step_size, X.dtype)
    stats = jax.tree.map(lambda s, b: (1 - eta) * s + eta * b / weight, state.stats[:3], batch[:3])
    stats = SuffStats(*stats, shift)
    new = params_and_singular(stats, params.covariance_type, reg_covar, params)[0]
    return OnlineState(new, stats, state.n_steps + 1, total / weight)


def online_step(
    state: OnlineState,
    X: ArrayLike,
    step_size: float | None = None,
    *,
    sample_weight: ArrayLike | None = None,
    reg_covar: float = 1e-6,
    missing: str = "error",
) -> OnlineState:
    """One step of stepwise EM on a mini-batch.

    Args:
      state: OnlineState (``online_init`` of the starting parameters).
      X: (B, D) mini-batch.
      step_size: η in (0, 1], the weight of this batch's statistics; default
        ``default_step_size(state.n_steps)``, (t + 2)^(-0.6).
      sample_weight: optional (B,) non-negative weights.
      reg_covar: non-negative value added to the covariance diagonals.
      missing: "error" (NaN refused) or "marginalize" (NaN entries are
        missing values, as in ``jgmm.fit``).

    Returns:
      The next OnlineState; its ``log_likelihood`` is this batch's mean
      log-likelihood under ``state.params``.
    """
    dtype = state.params.means.dtype
    X = check_array(X, n_features=state.params.n_features, expected_by="the online state", missing=missing)
    X = X.astype(dtype)
    N, D = X.shape
    w = check_sample_weight(sample_weight, N, dtype)
    if step_size is not None and not (is_tracer(step_size) or 0 < float(step_size) <= 1):
        raise ValueError(f"step_size must be in (0, 1], got {step_size}.")
    marginalize = missing == "marginalize"
    size = default_chunk_size(
        N, state.params.n_components, D, 1, X.dtype.itemsize, None, state.params.covariance_type, marginalize
    )
    return _online_step(state, X, w, step_size, reg_covar, chunk_size=size, missing=marginalize)
