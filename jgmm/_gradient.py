"""``fit_gradient``: the log-likelihood maximised directly by an optax optimizer.

The parameters are mapped to an unconstrained space: weights by their logits
(π = softmax), means as they are, and precision Cholesky factors P (upper
triangular, positive diagonal) by their strict upper triangle and the log of
their diagonal (log P for diag and spherical). Any point of that space is a
valid mixture, so any optax optimizer (Adam by default, L-BFGS too) can step
freely; the steps run in one compiled ``lax.while_loop``, vmapped over
restarts. An alternative to EM for research (``experiments/em_vs_gradient.py``
compares them); EM needs no step size and is usually faster.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jgmm._compile import jit
from jgmm._em import weighted_log_prob
from jgmm._fit import batched_starts, best_of, default_chunk_size, em_map_for
from jgmm._implicit import fixed_point
from jgmm._params import FitResult, GMMParams, Status, shift_means
from jgmm._precision import full_precision
from jgmm._validation import check_covariance_type, check_em_arguments, check_n_components

DEFAULT_OPTIMIZER = optax.adam(1e-2)  # one object, so the default compiles once


def to_unconstrained(params: GMMParams) -> dict:
    """The free parameters of ``params`` (inverse of ``from_unconstrained``)."""
    P = params.prec_chol
    if params.covariance_type in ("full", "tied"):  # strict upper triangle and log diagonal
        free = jnp.triu(P, 1) + jnp.vectorize(jnp.diag, signature="(d)->(d,d)")(jnp.log(jnp.diagonal(P, axis1=-2, axis2=-1)))
    else:
        free = jnp.log(P)
    return {"logits": jnp.log(params.weights), "means": params.means, "prec_chol": free}


def from_unconstrained(free: dict, covariance_type: str) -> GMMParams:
    """GMMParams from free parameters: softmax weights, exp of the log diagonal."""
    A = free["prec_chol"]
    if covariance_type in ("full", "tied"):
        diagonal = jnp.exp(jnp.diagonal(A, axis1=-2, axis2=-1))
        P = jnp.triu(A, 1) + jnp.vectorize(jnp.diag, signature="(d)->(d,d)")(diagonal)
    else:
        P = jnp.exp(A)
    return GMMParams(jax.nn.softmax(free["logits"]), free["means"], P, covariance_type)


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
    X,
    n_components: int,
    covariance_type: str = "full",
    *,
    optimizer: optax.GradientTransformation | None = None,
    steps: int = 1000,
    tol: float = 0.0,
    n_init: int = 1,
    init: str | GMMParams = "kmeans++",
    reg_covar: float = 1e-6,
    sample_weight=None,
) -> FitResult:
    """Fit a Gaussian mixture by maximising the log-likelihood with optax.

    Args:
      key: a ``jax.random`` key for the starts (as in ``fit``).
      X: (N, D) samples.
      n_components: K.
      covariance_type: "full", "tied", "diag" or "spherical".
      optimizer: an optax optimizer, minimising the negative mean
        log-likelihood over the unconstrained parameters (module doc).
        Default Adam with step size 1e-2; ``optax.lbfgs()`` works too (it gets
        the value and the loss function it needs for its line search).
        Static: a new optimizer compiles anew.
      steps: at most this many optimizer steps (static).
      tol: stop when a step changes the mean log-likelihood by less than
        this (0, the default: run all ``steps``).
      n_init, init: the starts, as in ``fit`` (``init`` may be GMMParams).
      reg_covar: only for the k-means/random starts' M-step; the gradient
        fit itself is not regularised.
      sample_weight: optional (N,) non-negative weights.

    Returns:
      FitResult of the best start: ``n_iter`` counts optimizer steps,
      ``history`` the mean log-likelihood before each step. Its ``params``
      and ``log_likelihood`` are differentiable with respect to X and
      ``sample_weight`` as ``fit``'s are (a maximum is a fixed point of
      unregularised EM).
    """
    key, X, w, n_init, steps, tol, reg_covar = check_em_arguments(
        key, X, sample_weight, n_init, steps, tol, reg_covar
    )
    K = check_n_components(n_components, X.shape[0])
    covariance_type = check_covariance_type(covariance_type)
    starts = batched_starts(key, X, w, init, n_init, K, covariance_type, reg_covar)
    optimizer = DEFAULT_OPTIMIZER if optimizer is None else optimizer

    def solve(key, X, w, tol, reg_covar, starts, prior):
        return _program(starts, X, w, tol, optimizer=optimizer, steps=steps, covariance_type=covariance_type)

    # The maximum is a fixed point of unregularised EM: derivatives as fit's,
    # with fit's arguments (the starts in place of init_params).
    N, D = X.shape
    update = em_map_for(default_chunk_size(N, K, D, 1, X.dtype.itemsize, None, covariance_type), None, False, False)
    return fixed_point(solve, update, (None, X, w, tol, jnp.zeros((), X.dtype), starts, None))
