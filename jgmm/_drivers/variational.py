"""fit_variational: a variational Bayesian mixture (scikit-learn's BayesianGaussianMixture), functional."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jgmm._drivers.fit import prepare
from jgmm._engine.init import Seeding, check_init
from jgmm._engine.variational import VariationalConfig, fit_variational_program
from jgmm._maths.families import SCIKIT_LEARN, family
from jgmm._maths.params import Status
from jgmm._maths.validation import check_choice, check_int
from jgmm._maths.variational import PRIOR_TYPES, VariationalParams, VariationalResult


def _check_positive(value, name: str):
    """A real number > 0, scikit-learn's message otherwise."""
    message = f"The '{name}' parameter must be a float in the range (0.0, inf) or None. Got {value!r} instead."
    if isinstance(value, bool):
        raise ValueError(message)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(message) from None
    if not (np.isfinite(number) and number > 0):
        raise ValueError(message)
    return number


def _check_covariance_prior(value, covariance_type: str, D: int) -> np.ndarray:
    """Ψ₀ in the family's form, checked as scikit-learn checks it (in its
    words, which call it a precision)."""
    value = np.asarray(value, float)
    f = family(covariance_type)
    shape = f.prec_chol_shape(1, D)[0 if f.shared else 1:]  # one component's
    if value.shape != shape:
        raise ValueError(
            f"The parameter '{covariance_type} covariance_prior' should have the shape of {shape}, but got {value.shape}"
        )
    if value.ndim == 2:
        if not np.allclose(value, value.T) or np.any(np.linalg.eigvalsh(value) <= 0.0):
            raise ValueError(f"'{covariance_type} precision' should be symmetric, positive-definite")
    elif np.any(value <= 0.0):
        raise ValueError(f"'{covariance_type} precision' should be positive")
    return value


def given_prior(X, covariance_type: str, *, weight_concentration_prior=None, mean_precision_prior=None,
                mean_prior=None, degrees_of_freedom_prior=None, covariance_prior=None) -> dict:
    """The prior's fields given to ``fit_variational``, checked, by their
    ``VariationalPrior`` names, in X's dtype (the others take
    scikit-learn's defaults, ``jgmm._maths.variational.default_prior``)."""
    D, dtype = X.shape[1], X.dtype
    given = {}
    if weight_concentration_prior is not None:
        given["weight_concentration"] = _check_positive(weight_concentration_prior, "weight_concentration_prior")
    if mean_precision_prior is not None:
        given["mean_precision"] = _check_positive(mean_precision_prior, "mean_precision_prior")
    if mean_prior is not None:
        mean = np.asarray(mean_prior, float)
        if mean.shape != (D,):
            raise ValueError(f"The parameter 'means' should have the shape of ({D},), but got {mean.shape}")
        given["mean"] = mean
    if degrees_of_freedom_prior is not None:
        nu = _check_positive(degrees_of_freedom_prior, "degrees_of_freedom_prior")
        if nu <= D - 1.0:
            raise ValueError(
                f"The parameter 'degrees_of_freedom_prior' should be greater than {D - 1}, but got {nu:.3f}."
            )
        given["degrees_of_freedom"] = nu
    if covariance_prior is not None:
        given["covariance"] = _check_covariance_prior(covariance_prior, covariance_type, D)
    return {name: jnp.asarray(value, dtype) for name, value in given.items()}


def _check_start(params: VariationalParams, K: int, X, covariance_type: str, prior_type: str) -> VariationalParams:
    """A given start, checked against the fit's K, D, family and weight prior, in X's dtype."""
    D = X.shape[1]
    concentration = (2, K) if prior_type == "dirichlet_process" else (K,)
    shapes = dict(weight_concentration=concentration, mean_precision=(K,), means=(K, D),
                  degrees_of_freedom=() if family(covariance_type).shared else (K,),
                  prec_chol=family(covariance_type).prec_chol_shape(K, D))
    if params.covariance_type != covariance_type:
        raise ValueError(f"init has covariance_type={params.covariance_type!r}, but the fit is {covariance_type!r}.")
    for name, shape in shapes.items():
        if np.shape(getattr(params, name)) != shape:
            raise ValueError(
                f"init.{name} has shape {np.shape(getattr(params, name))}; a {covariance_type} fit of "
                f"{K} components in {D} features with weight_concentration_prior_type={prior_type!r} needs {shape}."
            )
    return jax.tree.map(lambda a: jnp.asarray(a, X.dtype), params)


def fit_variational(
    key: jax.Array,
    X: ArrayLike,
    n_components: int,
    covariance_type: str = "full",
    *,
    weight_concentration_prior_type: str = "dirichlet_process",
    weight_concentration_prior: float | None = None,
    mean_precision_prior: float | None = None,
    mean_prior: ArrayLike | None = None,
    degrees_of_freedom_prior: float | None = None,
    covariance_prior: ArrayLike | float | None = None,
    n_init: int = 1,
    init: str | VariationalParams = "kmeans",
    max_iter: int = 100,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    sample_weight: ArrayLike | None = None,
    progress: int = 0,
    chunk_size: int | None = None,
) -> VariationalResult:
    """Fit a variational Bayesian Gaussian mixture, all restarts in one compiled program.

    scikit-learn's BayesianGaussianMixture as a function (docs/derivation.md
    §19): a Gaussian–Wishart prior on each component, a Dirichlet process
    (stick-breaking, truncated at ``n_components``) or Dirichlet
    distribution prior on the weights; coordinate ascent on the evidence
    lower bound until it changes by less than ``tol``.

    Args:
      key: a ``jax.random.key``; restart i uses the same key as ``fit``'s.
      X: (N, D) samples (float32, or float64 under ``jax_enable_x64``).
      n_components: K, the truncation: components the data do not need
        end with weight near 0.
      covariance_type: "full", "tied", "diag" or "spherical".
      weight_concentration_prior_type: "dirichlet_process" (default) or
        "dirichlet_distribution".
      weight_concentration_prior: α₀ > 0 (default 1 / K).
      mean_precision_prior: β₀ > 0 (default 1).
      mean_prior: (D,) m₀ (default the weighted mean of X).
      degrees_of_freedom_prior: ν₀ > D - 1 (default D).
      covariance_prior: Ψ₀ in the family's ``covariances_`` form of one
        component (default: the unbiased covariance of X in that form).
      n_init: restarts, run batched; the one of the highest bound is returned.
      init: a start method of ``fit`` ("kmeans" by default, as scikit-learn):
        each restart starts from the variational M-step of its
        responsibilities; or VariationalParams (K components, X's family
        and weight prior) every restart starts from.
      max_iter: maximum iterations (static); 0: the fit is the start
        (``n_iter`` 0, bound -inf), as scikit-learn's ``max_iter=0``.
      tol: threshold on the change of the lower bound (a total over the
        samples, as scikit-learn's).
      reg_covar: added to the diagonal of each component's scatter.
      sample_weight: optional (N,) non-negative weights; weight m is the
        row m times.
      progress: if > 0, print the iteration and the best running bound on
        stderr every ``progress`` iterations, from inside the compiled loop.
      chunk_size: rows per chunk of the pass (static; default from a budget).

    Returns:
      VariationalResult.
    """
    covariance_type = family(covariance_type).name if isinstance(covariance_type, str) else covariance_type
    covariance_type = check_choice(covariance_type, "covariance_type", tuple(f.name for f in SCIKIT_LEARN))
    prior_type = check_choice(weight_concentration_prior_type, "weight_concentration_prior_type", PRIOR_TYPES)
    max_iter = check_int(max_iter, "max_iter", 0)
    p = prepare(key, X, sample_weight, n_init, max(max_iter, 1), tol, reg_covar, progress, chunk_size, "freeze", "error")
    K = check_int(n_components, "n_components", 1)
    if K > p.N:
        raise ValueError(f"n_components={K} must be at most the number of samples, {p.N}.")
    given = given_prior(
        p.X, covariance_type, weight_concentration_prior=weight_concentration_prior,
        mean_precision_prior=mean_precision_prior, mean_prior=mean_prior,
        degrees_of_freedom_prior=degrees_of_freedom_prior, covariance_prior=covariance_prior,
    )
    init_params = None
    if isinstance(init, VariationalParams):
        init_params, init = _check_start(init, K, p.X, covariance_type, prior_type), "params"
    config = VariationalConfig(
        Seeding(K, check_init(init) if init_params is None else init, p.n_init), covariance_type, prior_type,
        max_iter, p.chunk_rows(K, covariance_type), p.mesh, p.progress,
    )
    best, bounds, prior = fit_variational_program(p.key, p.X, p.w, given, p.tol, p.reg_covar, init_params, config=config)
    return VariationalResult(best.params, prior, best.bound, best.n_iter, best.status == Status.CONVERGED,
                             best.status, best.history, bounds)
