"""``fit_gradient``: the log-likelihood maximised directly by an optax optimizer.

The parameters are mapped to an unconstrained space: weights by their logits
(π = softmax), means as they are, and precision factors by the family's own
map (``Family.to_unconstrained``: for upper-triangular P its strict upper
triangle and the log of its diagonal, log P for diag and spherical). Any point of that space is a
valid mixture, so any optax optimizer (Adam by default, L-BFGS too) can step
freely; the steps run in one compiled ``lax.while_loop``, vmapped over
restarts. An alternative to EM for research (``experiments/em_vs_gradient.py``
compares them); EM needs no step size and is usually faster.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike

from jgmm._compile import full_precision, jit
from jgmm._drivers.fit import batched_starts
from jgmm._engine.implicit import fixed_point
from jgmm._engine.loop import em_map_for
from jgmm._engine.planning import default_chunk_size
from jgmm._engine.step import best_of
from jgmm._maths.em import weighted_log_prob
from jgmm._maths.families import family, family_names
from jgmm._maths.params import FitResult, GMMParams, Status, shift_means
from jgmm._maths.validation import check_covariance_type, check_em_arguments, check_n_components

DEFAULT_OPTIMIZER = optax.adam(1e-2)  # one object, so the default compiles once


def to_unconstrained(params: GMMParams) -> dict:
    """The free parameters of ``params`` (inverse of ``from_unconstrained``)."""
    free = family(params.covariance_type).to_unconstrained(params.prec_chol)
    return {"logits": jnp.log(params.weights), "means": params.means, "prec_chol": free}


def from_unconstrained(free: dict, covariance_type: str) -> GMMParams:
    """GMMParams from free parameters: softmax weights, the family's factor."""
    K, D = free["means"].shape
    P = family(covariance_type).from_unconstrained(free["prec_chol"], K, D)
    return GMMParams(jax.nn.softmax(free["logits"]), free["means"], P, family(covariance_type).name)


def _mean_log_likelihood(free, X, w, covariance_type):
    log_p = jax.nn.logsumexp(weighted_log_prob(from_unconstrained(free, covariance_type), X), axis=1)
    return (w @ log_p) / jnp.sum(w)


def _run(free, X, w, tol, optimizer, steps: int, covariance_type: str) -> FitResult:
    """Maximise the mean log-likelihood from ``free`` for at most ``steps`` steps."""
    loss = lambda f: -_mean_log_likelihood(f, X, w, covariance_type)

    def step(carry):
        t, free, state, previous, history, _ = carry
        value, grad = jax.value_and_grad(loss)(free)
        updates, state = optimizer.update(grad, state, free, value=value, grad=grad, value_fn=loss)
        return t + 1, optax.apply_updates(free, updates), state, -value, history.at[t].set(-value), previous

    def going(carry):
        t, _, _, ll, _, previous = carry
        return (t < steps) & ((t == 0) | ((jnp.abs(ll - previous) >= tol) & jnp.isfinite(ll)))

    dtype = X.dtype
    start = (jnp.asarray(0), free, optimizer.init(free), jnp.asarray(-jnp.inf, dtype), jnp.full((steps,), jnp.nan, dtype),
             jnp.asarray(jnp.inf, dtype))
    t, free, _, _, history, _ = jax.lax.while_loop(going, step, start)
    params = from_unconstrained(free, covariance_type)
    ll = -loss(free)
    status = jnp.select(
        [~jnp.isfinite(ll), jnp.abs(ll - history[jnp.maximum(t - 1, 0)]) < tol],
        [Status.NONFINITE, Status.CONVERGED],
        Status.MAX_ITER,
    ).astype(jnp.int32)
    return FitResult(params, ll, t, status == Status.CONVERGED, status, history)


@jit(static_argnames=("optimizer", "steps", "covariance_type"))
def _program(starts: GMMParams, X, w, tol, *, optimizer, steps, covariance_type):
    centre = (w @ X) / jnp.sum(w)
    run = lambda p: _run(to_unconstrained(shift_means(p, -centre)), X - centre, w, tol, optimizer, steps, covariance_type)
    best = best_of(jax.vmap(run)(starts))
    return best._replace(params=shift_means(best.params, centre))


@full_precision
def fit_gradient(
    key: jax.Array,
    X: ArrayLike,
    n_components: int,
    covariance_type: str = "full",
    *,
    optimizer: optax.GradientTransformation | None = None,
    max_iter: int = 1000,
    tol: float = 0.0,
    n_init: int = 1,
    init: str | GMMParams = "kmeans",
    reg_covar: float = 1e-6,
    sample_weight: ArrayLike | None = None,
    steps: int | None = None,
) -> FitResult:
    """Fit a Gaussian mixture by maximising the log-likelihood with optax.

    Args:
      key: a ``jax.random`` key for the starts (as in ``fit``).
      X: (N, D) samples.
      n_components: K.
      covariance_type: a registered family (``jgmm.family_names()``): "full",
        "tied", "diag", "spherical", or an alias such as mclust's "VVV".
      optimizer: an optax optimizer, minimising the negative mean
        log-likelihood over the unconstrained parameters (module doc).
        Default Adam with step size 1e-2; ``optax.lbfgs()`` works too (it gets
        the value and the loss function it needs for its line search).
        Static: a new optimizer compiles anew.
      max_iter: at most this many optimizer steps (static).
      tol: stop when a step changes the mean log-likelihood by less than
        this (0, the default: run all ``max_iter`` steps).
      n_init, init: the starts, as in ``fit`` (``init`` may be GMMParams).
      reg_covar: only for the k-means/random starts' M-step; the gradient
        fit itself is not regularised.
      sample_weight: optional (N,) non-negative weights.
      steps: the old name of ``max_iter`` (deprecated).

    Returns:
      FitResult of the best start: ``n_iter`` counts optimizer steps,
      ``history`` the mean log-likelihood before each step. Its ``params``
      and ``log_likelihood`` are differentiable with respect to X and
      ``sample_weight`` as ``fit``'s are (a maximum is a fixed point of
      unregularised EM).
    """
    if steps is not None:
        warnings.warn("fit_gradient's 'steps' is now 'max_iter', as in jgmm.fit.", DeprecationWarning, stacklevel=3)
        max_iter = steps
    key, X, w, n_init, max_iter, tol, reg_covar = check_em_arguments(
        key, X, sample_weight, n_init, max_iter, tol, reg_covar
    )
    K = check_n_components(n_components, X.shape[0])
    covariance_type = check_covariance_type(covariance_type)
    if family(covariance_type).to_unconstrained is None:
        fitted = ", ".join(repr(name) for name in family_names() if family(name).to_unconstrained is not None)
        raise ValueError(
            f"fit_gradient cannot fit covariance_type={covariance_type!r}: the family has no unconstrained "
            f"parametrisation. Fit it by EM (jgmm.fit), or choose one of {fitted}."
        )
    starts = batched_starts(key, X, w, init, n_init, K, covariance_type, reg_covar)
    optimizer = DEFAULT_OPTIMIZER if optimizer is None else optimizer

    def solve(key, X, w, tol, reg_covar, starts, prior):
        return _program(starts, X, w, tol, optimizer=optimizer, steps=max_iter, covariance_type=covariance_type)

    # The maximum is a fixed point of unregularised EM: derivatives as fit's,
    # with fit's arguments (the starts in place of init_params).
    N, D = X.shape
    update = em_map_for(default_chunk_size(N, K, D, 1, X.dtype.itemsize, None, covariance_type), None, False, False)
    return fixed_point(solve, update, (None, X, w, tol, jnp.zeros((), X.dtype), starts, None))
