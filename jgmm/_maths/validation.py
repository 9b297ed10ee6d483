"""Input checks at the Python boundary, before anything is traced.

Messages follow scikit-learn's wording for the same cases. Inside jit/vmap
(tracer inputs) only the static checks (shapes, dtypes) run.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np

from jgmm._compile import jit
from jgmm._maths.families import canonical_name, family
from jgmm._maths.params import GMMParams

MISSING = ("error", "marginalize")


def float_dtype(dtype) -> np.dtype:
    """The floating dtype jgmm computes in for data of ``dtype``.

    Floating inputs keep their precision (float64 only when ``jax_enable_x64``
    is on); integer or boolean inputs become the default float.
    """
    if jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.promote_types(dtype, jnp.float32)
    else:
        dtype = np.float64
    return jax.dtypes.canonicalize_dtype(dtype)


def is_tracer(x) -> bool:
    """Whether x is traced (under jit, vmap, grad, ...): its value is unknown."""
    return isinstance(x, jax.core.Tracer)


def check_not_traced(function: str, *values) -> None:
    """Refuse traced inputs to a function that works on the host (it returns
    tables or summaries, or reads files), with a message saying so."""
    leaves = jax.tree.leaves(values, is_leaf=lambda x: isinstance(x, Iterator))  # a data source may be an iterator
    if any(map(is_tracer, leaves)):
        raise TypeError(
            f"jgmm.{function} works on the host and cannot run under jax.jit, vmap or grad; "
            "call it outside the transformation (jgmm.fit runs under jit and vmap)."
        )


def check_array(
    X,
    *,
    name: str = "X",
    n_features: int | None = None,
    expected_by: str = "the model",
    missing: str = "error",
    check_range: bool = False,
):
    """Validate a 2-D data array and return it as a floating JAX array.

    Args:
      X: (N, D) array-like of numbers.
      name: the argument's name, for messages.
      n_features: if given, the D that X must have.
      expected_by: who expects ``n_features``, for messages.
      missing: "error" (NaN refused) or "marginalize" (NaN marks a missing
        entry; infinity is still refused).
      check_range: also refuse data too widely spread for the dtype fitted
        in, or with a feature never observed (``_check_range``); host data
        are checked on the host, before they are copied to the device.

    Raises:
      ValueError: non-numeric, not 2-D, empty, NaN (unless allowed) or
        infinite values, or the wrong number of features.
    """
    missing = check_choice(missing, "missing", MISSING)
    if not isinstance(X, jax.Array):
        try:
            X = np.asarray(X)
            if not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
                X = X.astype(np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"Input {name} must contain only numbers: {err}.") from None
        if np.iscomplexobj(X):
            raise ValueError(f"Complex data not supported in input {name}.")
    check_shape(X, name, n_features=n_features, expected_by=expected_by)
    if not is_tracer(X):
        has_nan, has_inf = _non_finite(X)
        if has_nan and missing == "error":
            raise ValueError(
                f"Input {name} contains NaN. Pass missing='marginalize' to treat NaN entries as missing "
                "values, or remove or impute them first."
            )
        if has_inf:
            raise ValueError(f"Input {name} contains infinity or a value too large for dtype('{X.dtype}').")
    dtype = float_dtype(X.dtype)
    if check_range:
        _check_range(X if jnp.issubdtype(X.dtype, jnp.floating) else X.astype(dtype), dtype)
    return _as_dtype(X, dtype)


def check_shape(X, name: str = "X", *, n_features: int | None = None, expected_by: str = "the model", n_samples=None):
    """Static checks of a 2-D array, which hold under jit and vmap too: 2-D,
    not empty, D = ``n_features`` and N = ``n_samples`` (an (N, name) pair)
    when given. Returns X."""
    if X.ndim != 2:
        raise ValueError(
            f"Expected 2D array for {name}, got {X.ndim}D array instead of shape {X.shape}. "
            "Reshape your data either using array.reshape(-1, 1) if your data has a single "
            "feature or array.reshape(1, -1) if it contains a single sample."
        )
    N, D = X.shape
    if N == 0 or D == 0:
        raise ValueError(
            f"Found array with {N} sample(s) and {D} feature(s) (shape={X.shape}) while a "
            "minimum of 1 of each is required."
        )
    if n_features is not None and D != n_features:
        raise ValueError(
            f"{name} has {D} features, but {expected_by} is expecting {n_features} features as input."
        )
    if n_samples is not None and N != n_samples[0]:
        raise ValueError(f"{name} has {N} samples, but {n_samples[1]} has {n_samples[0]}.")
    return X


def check_weight_shape(sample_weight, N: int):
    """Refuse sample weights that are not (N,); returns them."""
    if sample_weight is not None and np.shape(sample_weight) != (N,):
        raise ValueError(
            f"sample_weight.shape == {tuple(np.shape(sample_weight))}, expected ({N},) to match the "
            f"number of samples in X."
        )
    return sample_weight


def _as_dtype(x, dtype):
    """A JAX array of ``dtype``; host data are converted on the host (no compile)."""
    if not isinstance(x, jax.Array):
        x = np.asarray(x, dtype)
    return jnp.asarray(x, dtype)


@jit
def _jax_non_finite(x):
    return jnp.any(jnp.isnan(x)), jnp.any(jnp.isinf(x))


def _non_finite(x) -> tuple[bool, bool]:
    """(some value NaN, some value infinite), in numpy for host data."""
    if isinstance(x, jax.Array):
        with jax.ensure_compile_time_eval():  # concrete data inside a caller's jit
            return tuple(bool(v) for v in _jax_non_finite(x))
    x = np.asarray(x)
    if np.issubdtype(x.dtype, np.integer) or x.dtype == bool:
        return False, False
    return bool(np.any(np.isnan(x))), bool(np.any(np.isinf(x)))


def check_key(key) -> jax.Array:
    """A typed ``jax.random`` key; a raw uint32 key (``jax.random.PRNGKey``)
    is wrapped as the default implementation's key.

    Raises:
      TypeError: anything else, e.g. an int seed.
    """
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key):
        if key.ndim != 0:
            raise TypeError(f"key must be a single random key, got an array of keys of shape {key.shape}.")
        return key
    if dtype == np.uint32 and np.ndim(key) == 1:
        return jax.random.wrap_key_data(key)  # checks the length for the implementation
    raise TypeError(
        f"key must be a JAX random key such as jax.random.key(0), got {type(key).__name__}"
        f"{'' if dtype is None else f' of dtype {dtype} and shape {np.shape(key)}'}."
    )


def check_int(value, name: str, minimum: int) -> int:
    """An integer >= minimum (numpy integers accepted, bools not)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(
            f"The '{name}' parameter must be an int in the range [{minimum}, inf). Got {value!r} instead."
        )
    return int(value)


def check_nonnegative(value, name: str):
    """A real number >= 0 (a traced scalar passes unchecked)."""
    if is_tracer(value):
        return value
    message = f"The '{name}' parameter must be a float in the range [0.0, inf). Got {value!r} instead."
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(message) from None
    if isinstance(value, bool) or not (np.isfinite(number) and number >= 0.0):
        raise ValueError(message)
    return value


def check_choice(value, name: str, choices) -> str:
    """One of ``choices``; the message lists them."""
    if not isinstance(value, str) or value not in choices:
        listed = ", ".join(repr(c) for c in sorted(choices))
        raise ValueError(f"The '{name}' parameter must be a str among {{{listed}}}. Got {value!r} instead.")
    return value


def check_covariance_type(covariance_type) -> str:
    """The canonical name of a registered family or alias (``jgmm.Family``);
    an unknown name is refused with the list of valid ones."""
    return canonical_name(covariance_type)


def check_n_components(n_components, n_samples: int) -> int:
    K = check_int(n_components, "n_components", 1)
    if n_samples < K:
        raise ValueError(
            f"Expected n_samples >= n_components but got n_components = {K}, n_samples = {n_samples}"
        )
    return K


def check_sample_weight(sample_weight, N: int, dtype):
    """(N,) non-negative finite weights, not all zero; ``None`` gives ones."""
    if sample_weight is None:
        return jnp.ones((N,), dtype)
    if not isinstance(sample_weight, jax.Array):
        sample_weight = np.asarray(sample_weight, dtype=np.float64)
    check_weight_shape(sample_weight, N)
    if not is_tracer(sample_weight):
        finite, negative, positive = _weight_summary(sample_weight)
        if not finite:
            raise ValueError("sample_weight contains NaN or infinity.")
        if negative:
            raise ValueError("Negative values in sample_weight are not allowed.")
        if not positive:
            raise ValueError("sample_weight must not be all zero: at least one sample needs a positive weight.")
    return _as_dtype(sample_weight, dtype)


def _weight_summary(w) -> tuple[bool, bool, bool]:
    """(all finite, some negative, some positive), reduced where w lies."""
    xp = jnp if isinstance(w, jax.Array) else np
    with jax.ensure_compile_time_eval():  # concrete weights inside a caller's jit
        summary = (xp.all(xp.isfinite(w)), xp.any(w < 0), xp.any(w > 0))
        return tuple(bool(v) for v in summary)


def check_params(params, n_features: int | None = None, n_components: int | None = None) -> GMMParams:
    """Static checks of a GMMParams: family, and shapes consistent with K and D."""
    if not isinstance(params, GMMParams):
        raise TypeError(f"Expected a jgmm.GMMParams, got {type(params).__name__}.")
    f = family(params.covariance_type)
    weights, means, prec_chol = (jnp.asarray(a) for a in (params.weights, params.means, params.prec_chol))
    if means.ndim != 2:
        raise ValueError(f"params.means must have shape (n_components, n_features); got shape {means.shape}.")
    K, D = means.shape
    expected = f.prec_chol_shape(K, D)
    if weights.shape != (K,):
        raise ValueError(f"params.weights must have shape ({K},) to match params.means; got {weights.shape}.")
    if prec_chol.shape != expected:
        raise ValueError(
            f"params.prec_chol for covariance_type={f.name!r} must have shape {expected}; "
            f"got {prec_chol.shape}."
        )
    if n_components is not None and K != n_components:
        raise ValueError(f"The parameters have {K} components, but n_components = {n_components}.")
    if n_features is not None and D != n_features:
        raise ValueError(f"X has {n_features} features, but the parameters are expecting {D} features as input.")
    return params


# Weights may miss 1 by rounding: float32 sums of K terms.
WEIGHT_SUM_TOLERANCE = 1e-4


# Covariances are of their family's form when they equal their projection
# on it (its M-step on them) to this relative tolerance, or to ε·cond(Σ_k)
# where that is larger (the round trip Σ -> P -> Σ loses that much): float32
# rounding passes, a model of another family does not.
IN_FAMILY_RTOL = 1e-4


def in_family(params: GMMParams) -> bool:
    """Whether concrete GMMParams' covariances are of their family's form;
    components of weight 0 (a collapsed one, frozen) are left out."""
    dense, projected = (np.asarray(a) for a in _dense_and_projected(params))
    used = np.asarray(params.weights) > 0
    dense, projected = dense[used], projected[used]
    rtol = max(IN_FAMILY_RTOL, np.finfo(dense.dtype).eps * np.linalg.cond(dense).max())
    return bool(np.allclose(projected, dense, rtol=rtol, atol=rtol * np.abs(dense).max()))


@jit
def _dense_and_projected(params: GMMParams):
    """(K, D, D) the covariances of ``params`` and their projection on the family."""
    f, K, D = family(params.covariance_type), params.n_components, params.n_features
    nk = (params.weights > 0).astype(params.prec_chol.dtype)
    return f.dense_covariances(params.prec_chol, K, D), f.projected(params.prec_chol, K, D, nk)


def check_param_values(params: GMMParams) -> GMMParams:
    """Value checks of concrete GMMParams (skipped for tracers): finite arrays,
    weights on the simplex, precision factors the family accepts
    (``Family.check_values``: Σ⁻¹ = P Pᵀ positive definite)."""
    leaves = (params.weights, params.means, params.prec_chol)
    if any(is_tracer(a) for a in leaves):
        return params
    weights, means, P = (np.asarray(a, np.float64) for a in leaves)
    for name, a in zip(("weights", "means", "prec_chol"), (weights, means, P)):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"params.{name} contains NaN or infinity.")
    if np.any(weights < 0) or abs(float(np.sum(weights)) - 1) > WEIGHT_SUM_TOLERANCE:
        raise ValueError(f"params.weights must be non-negative and sum to 1; got {np.array2string(weights, threshold=8)}.")
    family(params.covariance_type).check_values(P)
    return params


def check_observed(unobserved, name: str = "X", remedy: str = "Drop those columns.") -> None:
    """Refuse features with no observed value: ``unobserved`` is (D,) bool."""
    features = np.flatnonzero(unobserved)
    if features.size:
        raise ValueError(
            f"Feature(s) {features.tolist()} of {name} have no observed value (all NaN): nothing can be "
            f"estimated for them. {remedy}"
        )


def _check_range(X, dtype) -> None:
    """Refuse data so widely spread that second moments overflow ``dtype``
    (missing entries ignored), or with a feature never observed. Data on
    devices are reduced there (no copy to the host)."""
    if is_tracer(X):
        return
    xp = jnp if isinstance(X, jax.Array) else np
    # numpy warns of all-NaN columns, refused below; concrete data inside a caller's jit are reduced now
    with warnings.catch_warnings(), jax.ensure_compile_time_eval():
        warnings.simplefilter("ignore", RuntimeWarning)
        spread = xp.nanmax(X, axis=0) - xp.nanmin(X, axis=0)
        check_observed(np.isnan(np.asarray(spread)))
        spread = float(xp.max(spread))
    limit = float(np.sqrt(np.finfo(dtype).max / (4.0 * X.shape[0])))
    if spread > limit:
        raise ValueError(
            f"X spans {spread:.3g} along a feature, too wide for {np.dtype(dtype)}: its second moments would "
            f"overflow (the limit here is {limit:.3g}). Rescale the features or remove the outliers, "
            "or pass float64 data with jax_enable_x64 on."
        )


def check_em_arguments(key, X, sample_weight, n_init, max_iter, tol, reg_covar, missing="error"):
    """Validate what ``fit`` and ``select`` share; NaN entries of X are
    allowed when ``missing`` is "marginalize".

    Returns:
      (key (``check_key``), X as a floating JAX array, weights (N,),
      n_init, max_iter, tol and reg_covar as scalars of X's dtype).
    """
    X = check_array(X, missing=missing, check_range=True)
    n_init = check_int(n_init, "n_init", 1)
    max_iter = check_int(max_iter, "max_iter", 1)
    tol = _as_dtype(check_nonnegative(tol, "tol"), X.dtype)
    reg_covar = _as_dtype(check_nonnegative(reg_covar, "reg_covar"), X.dtype)
    w = check_sample_weight(sample_weight, X.shape[0], X.dtype)
    return check_key(key), X, w, n_init, max_iter, tol, reg_covar
