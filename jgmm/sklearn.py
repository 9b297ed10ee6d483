"""``GaussianMixture`` and ``BayesianGaussianMixture``: scikit-learn estimators on jgmm's compiled core.

A drop-in for ``sklearn.mixture.GaussianMixture``: the same constructor
parameters, fitted attributes and methods, plus ``sample_weight`` in ``fit``.
Restarts run batched in one compiled program (``jgmm.fit``), with no Python
loop over iterations. Float64 input is fitted and scored in float64 inside a
scoped ``jax.enable_x64`` (the global JAX setting is left alone); float32
input in float32. Requires scikit-learn (``pip install 'jgmm[sklearn]'``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture as _SklearnBayesianGaussianMixture
from sklearn.mixture import GaussianMixture as _SklearnGaussianMixture
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import InvalidParameterError, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from jgmm._compile import jit
from jgmm._drivers.fit import fit
from jgmm._drivers.online import online_init, online_step
from jgmm._drivers.variational import fit_variational
from jgmm._engine.init import INIT_METHODS, OLD_NAMES, check_init, initial_params
from jgmm._engine.planning import default_chunk_size
from jgmm._engine.shard import data_mesh
from jgmm._engine.step import ON_COLLAPSE
from jgmm._maths.criteria import aic, bic
from jgmm._maths.families import family
from jgmm._maths.params import GMMParams, Status
from jgmm._maths.predict import log_prob, predict, predict_proba, sample
from jgmm._maths.validation import MISSING, check_covariance_type, check_observed, check_sample_weight
from jgmm._maths.variational import VariationalParams, expected_weights, variational_log_prob

# scikit-learn's 'kmeans' runs k-means to convergence; jgmm's "kmeans"
# (k-means++ seeding and a few Lloyd steps) is the batched, compiled counterpart.
# scikit-learn's wording for a covariance estimate that breaks down.
_ILL_DEFINED = (
    "some components have ill-defined empirical covariance (for instance caused by singleton or collapsed samples). "
    "Try to decrease the number of components, increase reg_covar, or scale the input data."
)


def _warn_not_converged():
    warnings.warn(
        "Best performing initialization did not converge. Try different init parameters, or increase "
        "max_iter, tol, or check for degenerate data.",
        ConvergenceWarning,
        stacklevel=4,
    )


def _continued(result, run, previous_bound, tol):
    """A warm start's result as scikit-learn's: it compares the first
    iteration's bound with the previous fit's, and within ``tol`` stops
    after that iteration, converged (``run(max_iter)`` fits again)."""
    if int(result.n_iter) == 0 or abs(float(result.history[0]) - previous_bound) >= tol:
        return result
    return (run(1) if int(result.n_iter) > 1 else result)._replace(converged=True, status=Status.CONVERGED)


def _check_warm_start(params, K: int, covariance_type, D: int):
    """A warm start continues the previous fit (``params``): it needs the same K, family and D."""
    previous = (params.means.shape[0], params.covariance_type, params.means.shape[1])
    now = (K, family(covariance_type).name, D)
    if previous != now:
        raise ValueError(
            f"warm_start=True continues the previous fit, which has n_components={previous[0]}, "
            f"covariance_type={previous[1]!r} and {previous[2]} features; this fit asks for "
            f"n_components={now[0]}, covariance_type={now[1]!r} on {now[2]} features. "
            "Set warm_start=False to start anew."
        )


def _precision_scope(dtype):
    """64-bit JAX inside the block for float64 data, nothing otherwise."""
    return jax.enable_x64(True) if dtype == np.float64 else contextlib.nullcontext()


class GaussianMixture(DensityMixin, BaseEstimator):
    """Gaussian mixture fitted by EM, with scikit-learn's interface.

    Parameters are those of ``sklearn.mixture.GaussianMixture`` (see there);
    ``init_params='kmeans'`` uses jgmm's k-means++ seeding with Lloyd steps;
    ``init_params='hc'`` mclust's start (model-based hierarchical
    agglomeration, deterministic).
    Two more: ``prior`` (None, "default" or a ``jgmm.Prior``) fits the
    posterior mode under a conjugate prior, as ``jgmm.fit(prior=...)``; and
    ``missing`` ("error" or "marginalize"): with "marginalize", NaN entries
    are missing values, in ``fit`` (exact EM, as ``jgmm.fit(missing=...)``),
    ``partial_fit`` (stepwise EM on the observed data) and every method that
    scores or labels samples (their observed features only). And
    ``on_collapse`` ("keep", as scikit-learn; "freeze" or "reseed", see
    ``jgmm.fit``): what ``fit`` does with a component that collapses onto
    a few samples (a spurious maximum); with "freeze" it is given weight 0,
    with a ConvergenceWarning.

    Attributes (after ``fit``), as scikit-learn's: weights_ (K,), means_
    (K, D), covariances_, precisions_, precisions_cholesky_ (family shapes),
    converged_, n_iter_, lower_bound_ (mean log-likelihood at the last
    iteration), lower_bounds_ (one per iteration), n_features_in_,
    feature_names_in_ (when X has string column names); plus params_ (the
    jgmm.GMMParams) and status_ (a jgmm.Status).
    """

    _parameter_constraints = {
        **_SklearnGaussianMixture._parameter_constraints,
        "covariance_type": "no_validation",  # any registered family (jgmm.Family), checked in fit
        "prior": "no_validation",
        "missing": [StrOptions(set(MISSING))],
        "on_collapse": [StrOptions(set(ON_COLLAPSE))],
        "init_params": [StrOptions(set(INIT_METHODS) | set(OLD_NAMES))],  # scikit-learn's and jgmm's "hc"
    }

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        prior=None,
        missing="error",
        on_collapse="keep",
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.prior = prior
        self.missing = missing
        self.on_collapse = on_collapse

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.missing == "marginalize"
        return tags

    def _check_parameters(self):
        """scikit-learn's parameter validation, and ``covariance_type`` among
        the registered families (``jgmm.Family``)."""
        self._validate_params()
        try:
            check_covariance_type(self.covariance_type)
        except ValueError as error:  # scikit-learn's error type, and its words naming the estimator
            message = str(error).replace("parameter must", f"parameter of {type(self).__name__} must")
            raise InvalidParameterError(message) from None

    def _validated(self, X, **kwargs):
        """``validate_data`` for float data; NaN passes when ``missing`` is "marginalize"."""
        finite = "allow-nan" if self.missing == "marginalize" else True
        return validate_data(self, X, dtype=[np.float64, np.float32], ensure_all_finite=finite, **kwargs)

    # ------------------------------------------------------------------ fit

    def fit(self, X, y=None, sample_weight=None):
        """Fit the mixture by EM, ``n_init`` restarts batched; returns self.

        Args:
          X: (N, D) samples.
          y: ignored.
          sample_weight: optional (N,) non-negative weights.
        """
        self._check_parameters()
        given = X
        X = self._validated(X, ensure_min_samples=2)
        if X.shape[0] < self.n_components:
            raise ValueError(
                "Expected n_samples >= n_components but got "
                f"n_components = {self.n_components}, n_samples = {X.shape[0]}"
            )
        with _precision_scope(X.dtype):
            w = None if sample_weight is None else check_sample_weight(sample_weight, X.shape[0], X.dtype)
            warm = self.warm_start and hasattr(self, "converged_")
            if warm:
                _check_warm_start(self.params_, self.n_components, self.covariance_type, X.shape[1])
            n_init = 1 if warm else self.n_init
            key = jax.random.key(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
            init = self._starting_params(X, w, key, n_init) if not warm else self._cast(self.params_, X.dtype)
            if self.max_iter == 0:  # scikit-learn: the fit is the (last restart's) start, no EM
                self._set_start(X, w, key, n_init, init)
                return self
            # Data split over devices (jgmm.shard) are fitted where they lie.
            data = given if data_mesh(given) is not None else X
            run = lambda max_iter: jax.device_get(fit(
                key, data, self.n_components, self.covariance_type, n_init=n_init, init=init,
                max_iter=max_iter, tol=self.tol, reg_covar=self.reg_covar, sample_weight=w,
                progress=self.verbose_interval if self.verbose else 0, prior=self.prior, missing=self.missing,
                on_collapse=self.on_collapse,
            ))
            result = run(self.max_iter)
            if warm:
                result = _continued(result, run, self.lower_bound_, self.tol)
            self._set_fitted(result)
        return self

    def _set_start(self, X, w, key, n_init, init):
        """Fitted attributes for ``max_iter=0``, as scikit-learn sets them:
        the parameters where the last restart starts, ``n_iter_`` 0,
        ``lower_bound_`` -inf, not converged, and no warning."""
        if isinstance(init, str):
            init = self._method_params(X, w, key, n_init, init)
        if init.weights.ndim == 2:
            init = jax.tree.map(lambda a: a[-1], init)
        vars(self).pop("_online", None)
        self._set_params(jax.device_get(init))
        self.status_, self.converged_, self.n_iter_ = Status.MAX_ITER, False, 0
        self.lower_bound_, self.lower_bounds_ = -np.inf, []

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then return (N,) component labels of X."""
        return self.fit(X, sample_weight=sample_weight).predict(X)

    def _starting_params(self, X, w, key, n_init):
        """What ``fit`` starts from: a method name, or (n_init,)-batched
        GMMParams when some of weights_init, means_init, precisions_init are
        given (the rest initialised by ``init_params``)."""
        method = check_init(self.init_params)
        self._check_given_shapes(X)
        given = {
            "weights": self.weights_init,
            "means": self.means_init,
            "prec_chol": None if self.precisions_init is None else self._prec_chol_init(X),
        }
        given = {name: value for name, value in given.items() if value is not None}
        if not given:
            return method
        stacked = {name: np.broadcast_to(np.asarray(v, X.dtype), (n_init,) + np.shape(v)) for name, v in given.items()}
        if len(given) == 3:
            return GMMParams(**stacked, covariance_type=self.covariance_type)
        return dataclasses.replace(self._method_params(X, w, key, n_init, method), **stacked)

    def _method_params(self, X, w, key, n_init, method):
        """(n_init,)-batched GMMParams where ``fit``'s restarts by ``method``
        start (missing entries filled as ``fit`` fills them)."""
        K, ct = self.n_components, self.covariance_type
        marginalize = self.missing == "marginalize"
        if marginalize:
            check_observed(np.all(np.isnan(X), axis=0), remedy="Initialise from data that observe every feature.")
        return initial_params(
            key, X, np.ones(X.shape[0], X.dtype) if w is None else w, self.reg_covar, n_components=K,
            covariance_type=ct, init=method, n_init=n_init, missing=marginalize,
            chunk_size=default_chunk_size(X.shape[0], K, X.shape[1], n_init, X.dtype.itemsize, None, ct, marginalize),
        )

    def _prec_chol_init(self, X):
        """Precision factors from ``precisions_init`` (family shape), in
        float64; refused (in scikit-learn's words) unless they are a valid
        precision: positive definite, and symmetric where they are matrices."""
        f = family(self.covariance_type)
        precisions = np.asarray(self.precisions_init, np.float64)
        with jax.enable_x64(True), jax.default_matmul_precision("highest"):
            P = np.asarray(f.prec_chol_from_precisions(jnp.asarray(precisions)))
            valid = np.all(np.isfinite(P)) and np.allclose(np.asarray(f.precisions(jnp.asarray(P))), precisions)
        try:
            f.check_values(P)
        except ValueError:
            valid = False
        if not valid:
            requirement = "positive" if f.diagonal else "symmetric, positive-definite"
            raise ValueError(f"'{self.covariance_type} precision' should be {requirement}")
        return P.astype(X.dtype)

    def _check_given_shapes(self, X):
        """weights_init, means_init and the shape of precisions_init, in
        scikit-learn's order and words (``_check_weights``, ``_check_means``,
        ``_check_precisions`` of sklearn.mixture)."""
        K, D, ct = self.n_components, X.shape[1], self.covariance_type
        shapes = {"weights": (K,), "means": (K, D), f"{ct} precision": family(ct).prec_chol_shape(K, D)}
        given = {"weights": self.weights_init, "means": self.means_init, f"{ct} precision": self.precisions_init}
        for name, value in given.items():
            if value is not None and np.shape(value) != shapes[name]:
                raise ValueError(f"The parameter '{name}' should have the shape of {shapes[name]}, but got {np.shape(value)}")
            if name == "weights" and value is not None:
                weights = np.asarray(value)
                weights = weights if weights.dtype == np.float32 else weights.astype(np.float64)
                if np.any(weights < 0) or np.any(weights > 1):
                    # scikit-learn's message names the minimum "max value" and the maximum "min value"
                    raise ValueError(
                        "The parameter 'weights' should be in the range [0, 1], but got max value "
                        f"{np.min(weights):.5f}, min value {np.max(weights):.5f}"
                    )
                if not np.isclose(abs(1.0 - float(np.sum(weights))), 0.0, atol=1e-6 if weights.dtype == np.float32 else 1e-8):
                    raise ValueError(f"The parameter 'weights' should be normalized, but got sum(weights) = {np.sum(weights):.5f}")

    def _set_params(self, params):
        self.params_ = params
        self.weights_ = np.asarray(params.weights)
        self.means_ = np.asarray(params.means)
        self.precisions_cholesky_ = np.asarray(params.prec_chol)
        self.covariances_, self.precisions_ = (np.asarray(a) for a in jax.device_get((params.covariances, params.precisions)))

    def _set_fitted(self, result):
        vars(self).pop("_online", None)  # a later partial_fit starts from this fit
        self._set_params(result.params)
        self.status_ = Status(int(result.status))
        self.converged_ = bool(result.converged)
        self.n_iter_ = int(result.n_iter)
        history = np.asarray(result.history)[: self.n_iter_]
        self.lower_bounds_ = [float(v) for v in history]
        self.lower_bound_ = float(history[-1]) if history.size else float(result.log_likelihood)
        # every restart failed; or a covariance is singular (with "keep", or
        # with no regularisation): scikit-learn's Cholesky fails there
        singular = self.status_ == Status.DEGENERATE and (self.on_collapse == "keep" or self.reg_covar == 0)
        if self.status_ == Status.NONFINITE or singular:
            raise ValueError(f"Fitting the mixture model failed because {_ILL_DEFINED}")
        if self.status_ == Status.DEGENERATE:
            warnings.warn(
                f"Best performing initialization is degenerate: {_ILL_DEFINED} Such components were given weight 0.",
                ConvergenceWarning,
                stacklevel=3,
            )
        elif not self.converged_:
            _warn_not_converged()

    def partial_fit(self, X, y=None, sample_weight=None):
        """One step of online (stepwise) EM on a mini-batch; returns self.

        The running sufficient statistics move toward this batch's by
        η_t = (t + 2)^(-0.6) (``jgmm.online_step``). The first call starts
        from the parameters of an earlier ``fit``, or else initialises them
        by ``init_params`` (and the ``*_init`` parameters) on this batch.
        ``n_iter_`` counts the batches, ``lower_bound_`` is the last batch's
        mean log-likelihood before its step.

        Args:
          X: (B, D) mini-batch; the first, if it initialises, needs
            B >= n_components.
          y: ignored.
          sample_weight: optional (B,) non-negative weights.
        """
        starting = not hasattr(self, "_online")
        if starting:
            self._check_parameters()
        fitted = hasattr(self, "params_")
        X = self._validated(X, reset=not fitted)
        with _precision_scope(X.dtype):
            w = None if sample_weight is None else check_sample_weight(sample_weight, X.shape[0], X.dtype)
            if not starting:
                state = self._cast(self._online, X.dtype)
            elif fitted:
                state = online_init(self._cast(self.params_, X.dtype))
            else:
                if X.shape[0] < self.n_components:
                    raise ValueError(
                        f"The first batch initialises the mixture, so it needs n_samples >= n_components, but got "
                        f"n_components = {self.n_components}, n_samples = {X.shape[0]}"
                    )
                key = jax.random.key(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
                init = self._starting_params(X, w, key, 1)
                if isinstance(init, str):
                    init = self._method_params(X, w, key, 1, init)
                state = online_init(jax.tree.map(lambda a: a[0], init))
            state = jax.device_get(
                online_step(state, X, sample_weight=w, reg_covar=self.reg_covar, missing=self.missing)
            )
            self._set_params(state.params)
        self._online = state
        self.status_ = Status.MAX_ITER
        self.converged_ = False
        self.n_iter_ = int(state.n_steps)
        self.lower_bound_ = float(state.log_likelihood)
        self.lower_bounds_ = ([] if starting else self.lower_bounds_) + [self.lower_bound_]
        return self

    @staticmethod
    def _cast(tree, dtype):
        """The floating arrays of ``tree`` in ``dtype``, on the host."""
        return jax.tree.map(lambda a: np.asarray(a, dtype if np.issubdtype(np.asarray(a).dtype, np.floating) else None), tree)

    # -------------------------------------------------------------- predict

    def _checked(self, X):
        """X validated against the fit, and the parameters in X's dtype."""
        check_is_fitted(self)
        X = self._validated(X, reset=False)
        return X, self._cast(self.params_, X.dtype)

    def score_samples(self, X):
        """(N,) log p(x_n) under the fitted mixture."""
        X, params = self._checked(X)
        with _precision_scope(X.dtype):
            return np.asarray(log_prob(params, X, self.missing))

    def score(self, X, y=None):
        """Mean per-sample log-likelihood of X."""
        return float(np.mean(self.score_samples(X)))

    def predict(self, X):
        """(N,) index of the most probable component of each sample."""
        X, params = self._checked(X)
        with _precision_scope(X.dtype):
            return np.asarray(predict(params, X, self.missing))

    def predict_proba(self, X):
        """(N, K) responsibilities γ(z_nk)."""
        X, params = self._checked(X)
        with _precision_scope(X.dtype):
            return np.asarray(predict_proba(params, X, self.missing))

    def sample(self, n_samples=1):
        """Draw (n_samples, D) samples and their (n_samples,) component labels."""
        check_is_fitted(self)
        if n_samples < 1:
            raise ValueError(
                f"Invalid value for 'n_samples': {n_samples} . The sampling requires at least one sample."
            )
        key = jax.random.key(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        with _precision_scope(self.means_.dtype):
            X, labels = sample(key, self._mixture(), n_samples)
            return np.asarray(X), np.asarray(labels)

    def _mixture(self) -> GMMParams:
        """The mixture ``sample`` draws from."""
        return self.params_

    def bic(self, X):
        """Bayesian information criterion on X (lower is better)."""
        X, params = self._checked(X)
        with _precision_scope(X.dtype):
            return float(bic(params, X, self.missing))

    def aic(self, X):
        """Akaike information criterion on X (lower is better)."""
        X, params = self._checked(X)
        with _precision_scope(X.dtype):
            return float(aic(params, X, self.missing))


@jit
def _variational_scores(params: VariationalParams, X):
    """(N, K) log responsibilities and (N,) log-sum-exp of the variational
    log probabilities: what scikit-learn predicts and scores with."""
    weighted = variational_log_prob(params, X)
    log_norm = jax.scipy.special.logsumexp(weighted, axis=1)
    return weighted - log_norm[:, None], log_norm


class BayesianGaussianMixture(DensityMixin, BaseEstimator):
    """Variational Bayesian Gaussian mixture, with scikit-learn's interface.

    Parameters are those of ``sklearn.mixture.BayesianGaussianMixture`` (see
    there); ``init_params`` also takes jgmm's start methods ("hc", ...), and
    ``fit`` takes ``sample_weight`` (weight 2 = the row twice). The fit is
    ``jgmm.fit_variational``: restarts batched in one compiled program.
    Prediction and scoring use the variational expectations, as
    scikit-learn's. Float64 input is fitted in float64, float32 in float32.

    Attributes (after ``fit``), as scikit-learn's: weights_, means_,
    covariances_, precisions_, precisions_cholesky_, weight_concentration_
    (a pair of (K,) arrays for the Dirichlet process), mean_precision_,
    degrees_of_freedom_, the ``*_prior_`` values used, converged_, n_iter_,
    lower_bound_, lower_bounds_, n_features_in_, feature_names_in_; plus
    params_ (the jgmm.VariationalParams) and status_ (a jgmm.Status).
    """

    _parameter_constraints = {
        **_SklearnBayesianGaussianMixture._parameter_constraints,
        "init_params": [StrOptions(set(INIT_METHODS) | set(OLD_NAMES))],
    }

    def __init__(
        self,
        *,
        n_components=1,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weight_concentration_prior_type="dirichlet_process",
        weight_concentration_prior=None,
        mean_precision_prior=None,
        mean_prior=None,
        degrees_of_freedom_prior=None,
        covariance_prior=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weight_concentration_prior_type = weight_concentration_prior_type
        self.weight_concentration_prior = weight_concentration_prior
        self.mean_precision_prior = mean_precision_prior
        self.mean_prior = mean_prior
        self.degrees_of_freedom_prior = degrees_of_freedom_prior
        self.covariance_prior = covariance_prior
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval

    def fit(self, X, y=None, sample_weight=None):
        """Fit the variational posterior, ``n_init`` restarts batched; returns self.

        Args:
          X: (N, D) samples.
          y: ignored.
          sample_weight: optional (N,) non-negative weights.
        """
        self._validate_params()
        X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2)
        if X.shape[0] < self.n_components:
            raise ValueError(
                "Expected n_samples >= n_components but got "
                f"n_components = {self.n_components}, n_samples = {X.shape[0]}"
            )
        with _precision_scope(X.dtype):
            w = None if sample_weight is None else check_sample_weight(sample_weight, X.shape[0], X.dtype)
            warm = self.warm_start and hasattr(self, "converged_")
            if warm:
                _check_warm_start(self.params_, self.n_components, self.covariance_type, X.shape[1])
                previous = "dirichlet_process" if np.ndim(self.params_.weight_concentration) == 2 else "dirichlet_distribution"
                if previous != self.weight_concentration_prior_type:
                    raise ValueError(
                        f"warm_start=True continues the previous fit, whose weight_concentration_prior_type is "
                        f"{previous!r}; this fit asks for {self.weight_concentration_prior_type!r}. "
                        "Set warm_start=False to start anew."
                    )
            key = jax.random.key(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
            run = lambda max_iter: jax.device_get(fit_variational(
                key, X, self.n_components, self.covariance_type,
                weight_concentration_prior_type=self.weight_concentration_prior_type,
                weight_concentration_prior=self.weight_concentration_prior,
                mean_precision_prior=self.mean_precision_prior, mean_prior=self.mean_prior,
                degrees_of_freedom_prior=self.degrees_of_freedom_prior, covariance_prior=self.covariance_prior,
                n_init=1 if warm else self.n_init, init=self._cast(self.params_, X.dtype) if warm else self.init_params,
                max_iter=max_iter, tol=self.tol, reg_covar=self.reg_covar, sample_weight=w,
                progress=self.verbose_interval if self.verbose else 0,
            ))
            result = run(self.max_iter)
            if warm:
                result = _continued(result, run, self.lower_bound_, self.tol)
            self._set_fitted(result)
        return self

    def _set_fitted(self, result):
        params, prior = result.params, result.prior
        self.params_ = params
        self.status_ = Status(int(result.status))
        self.converged_ = bool(result.converged)
        self.n_iter_ = int(result.n_iter)
        self.lower_bounds_ = [float(v) for v in np.asarray(result.history)[: self.n_iter_]]
        self.lower_bound_ = float(result.lower_bound)
        self.weight_concentration_prior_ = float(prior.weight_concentration)
        self.mean_precision_prior_ = float(prior.mean_precision)
        self.mean_prior_ = np.asarray(prior.mean)
        self.degrees_of_freedom_prior_ = float(prior.degrees_of_freedom)
        self.covariance_prior_ = np.asarray(prior.covariance) if np.ndim(prior.covariance) else float(prior.covariance)
        concentration = np.asarray(params.weight_concentration)
        self.weight_concentration_ = tuple(concentration) if concentration.ndim == 2 else concentration
        self.mean_precision_ = np.asarray(params.mean_precision)
        self.means_ = np.asarray(params.means)
        nu = np.asarray(params.degrees_of_freedom)
        self.degrees_of_freedom_ = nu if nu.ndim else float(nu)
        self.precisions_cholesky_ = np.asarray(params.prec_chol)
        mixture = self._mixture()
        self.weights_ = np.asarray(mixture.weights)
        self.covariances_, self.precisions_ = (np.asarray(a) for a in jax.device_get((mixture.covariances, mixture.precisions)))
        if self.max_iter > 0 and not self.converged_:
            _warn_not_converged()

    def _mixture(self) -> GMMParams:
        """The mixture of the expected weights, means m_k and normalised
        scales: what ``sample`` draws from (scikit-learn's ``weights_``,
        ``means_``, ``covariances_``)."""
        params = self.params_
        with _precision_scope(params.means.dtype):
            return GMMParams(expected_weights(params), params.means, params.prec_chol, params.covariance_type)

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then return (N,) component labels of X."""
        return self.fit(X, sample_weight=sample_weight).predict(X)

    _cast = staticmethod(GaussianMixture._cast)

    def _scores(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        with _precision_scope(X.dtype):
            return tuple(np.asarray(a) for a in _variational_scores(self._cast(self.params_, X.dtype), X))

    def score_samples(self, X):
        """(N,) log Σ_k exp(E[log π_k] + E[log N(x_n | μ_k, Λ_k⁻¹)]), scikit-learn's score."""
        return self._scores(X)[1]

    def score(self, X, y=None):
        """Mean of ``score_samples``."""
        return float(np.mean(self.score_samples(X)))

    def predict(self, X):
        """(N,) the component of the largest variational responsibility."""
        return np.argmax(self._scores(X)[0], axis=1)

    def predict_proba(self, X):
        """(N, K) the variational responsibilities."""
        return np.exp(self._scores(X)[0])

    sample = GaussianMixture.sample
