"""``fit``: a mixture fitted by EM, all restarts in one compiled program.

``fit`` and ``jgmm.select`` share their host-side preparation (``prepare``:
checks, bucketed rows, chunk sizes, the grid program's configuration) and
one compiled program (``jgmm._engine.loop.fit_grid``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.typing import ArrayLike

from jgmm._compile import full_precision
from jgmm._engine.bucket import bucketed
from jgmm._engine.implicit import fixed_point
from jgmm._engine.init import Seeding, check_init, initial_params
from jgmm._engine.loop import GridConfig, em_map_for, fit_grid
from jgmm._engine.planning import check_chunk_size, default_chunk_size
from jgmm._engine.shard import data_mesh
from jgmm._engine.step import ON_COLLAPSE
from jgmm._maths.families import family
from jgmm._maths.params import FitResult, GMMParams
from jgmm._maths.prior import Prior, default_prior
from jgmm._maths.validation import (
    check_choice,
    check_covariance_type,
    check_em_arguments,
    check_int,
    check_n_components,
    check_param_values,
    check_params,
    in_family,
    is_tracer,
)


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
    """``init`` as given to ``fit``: one GMMParams, or n_init of them stacked;
    in ``dtype``, under the family's canonical name."""
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
    starts = GMMParams(*(jnp.asarray(a, dtype) for a in (init.weights, init.means, init.prec_chol)), covariance_type)
    # An M-step that keeps the previous covariances where they are better needs starts of its family's form.
    concrete = not any(map(is_tracer, jax.tree.leaves(starts)))
    if concrete and family(covariance_type).keeps_previous and not all(
        in_family(jax.tree.map(lambda a: a[i], starts) if len(weights) == 2 else starts) for i in range(n_init)
    ):
        raise ValueError(
            f"init's covariances are not of the {covariance_type!r} family's form; start from a fit of that "
            "family, or from a method such as init='kmeans'."
        )
    return starts


@full_precision
def fit(
    key: jax.Array,
    X: ArrayLike,
    n_components: int,
    covariance_type: str = "full",
    *,
    n_init: int = 1,
    init: str | GMMParams = "hc+kmeans",
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
        the same key). Restart 0 uses ``key`` itself, restart i > 0
        ``jax.random.fold_in(key, i)``: the first restarts of a larger
        ``n_init`` are those of a smaller one, so more are never worse.
      X: (N, D) samples. float32 by default; float64 data stay float64 when
        ``jax_enable_x64`` is on. Up to 65,536 rows, N is padded with rows
        of weight 0 to one of four sizes per octave, so that data of nearby
        sizes reuse one compiled program (``jgmm._engine.bucket``).
      n_components: K >= 1, at most N.
      covariance_type: a registered family (``jgmm.family_names()``): "full",
        "tied", "diag", "spherical", or an alias such as mclust's "VVV".
      n_init: number of restarts, run batched; the best is returned.
      init: "hc+kmeans" (default: the first restart from mclust's
        hierarchical start, deterministic, the others k-means, so the best
        is never below mclust's start; with ``n_init=1`` the fit does not
        depend on the key), "kmeans" (k-means++ seeding and Lloyd steps on
        standardised features; the old name "kmeans++" is accepted),
        "k-means++", "random", "random_from_data", "hc" (see
        ``jgmm._engine.init``), a GMMParams to start every restart from, or
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
        "keep": scikit-learn's behaviour; a component goes on at its
        ``reg_covar``-floored covariance (only one whose covariance is zero
        to rounding, or singular, is frozen).
      prior: None (maximum likelihood), "default" (``jgmm.default_prior``
        of X for this K and family, mclust's defaults) or a ``jgmm.Prior``:
        fit the posterior mode (MAP) under the conjugate prior instead, with
        which no component collapses (docs/derivation.md §12). The reported
        log-likelihood is still the data's, at the fitted parameters.
      missing: "error" (default): NaN in X is refused. "marginalize": NaN
        entries are missing values (missing at random) and EM is exact for
        the observed data: each sample's E-step uses its observed features,
        the M-step the conditional expectations of the missing ones
        (``jgmm._maths.missing``, docs/derivation.md §13); the log-likelihood is
        the observed data's. Costs O(K·D³) per sample and iteration for full
        and tied, O(K·D) for diag and spherical. Starts are found on the data
        with missing entries filled by the feature means.

    Returns:
      FitResult of the best restart (highest log-likelihood among the
      restarts that did not fail). Its ``params`` and ``log_likelihood``
      are differentiable (``jax.grad``, ``jax.jvp``) with respect to X,
      ``sample_weight``, ``reg_covar`` and ``prior``, by implicit
      differentiation at EM's fixed point (``jgmm._engine.implicit``).

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
        best = fit_grid(key, np.array([K], np.int32), X, w, tol, reg_covar, init_params, prior=prior, config=config).best
        return jax.tree.map(lambda a: a[0], best)

    update = em_map_for(config.chunk_size, p.mesh, prior_per_k, p.missing)
    return fixed_point(solve, update, (p.key, p.X, p.w, p.tol, p.reg_covar, init_params, prior))


class Prepared(NamedTuple):
    """What ``fit`` and ``select`` share, checked on the host (``prepare``).

    Attributes:
      key, n_init, max_iter, tol, reg_covar, progress, on_collapse: checked.
      X: (N', D) the data in the dtype fitted in, padded to a bucket of rows
        (``jgmm._engine.bucket``); w: (N',) their weights, 0 on the padding.
      N: the number of samples given.
      mesh: the mesh X is split along, or None (``jgmm._engine.shard``).
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
    marginalize = missing == "marginalize"
    return Prepared(key, X, w, N, n_init, max_iter, tol, reg_covar, progress, on_collapse, mesh, marginalize, chunk_size)
