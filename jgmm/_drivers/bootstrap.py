"""``bootstrap``: the sampling variability of a fit, every resample in one program.

Each bootstrap replicate refits the mixture by EM to the data reweighted:
"nonparametric" draws N rows with replacement (multinomial counts as sample
weights, exactly the same as duplicated rows), "weighted" draws Dirichlet(1,
..., 1) weights times N (the Bayesian bootstrap; mclust's "wlbs"). ``fit``
runs under ``jax.vmap`` over the replicates' weights, so all of them are one
compiled program. Every replicate starts from the reference fit's
parameters, which keeps component k of a replicate the reference's
component k (as mclust's ``MclustBootstrap`` does).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jgmm._compile import full_precision
from jgmm._drivers.fit import check_prior, check_starts, prepare
from jgmm._engine.loop import fit_grid
from jgmm._maths.families import family
from jgmm._maths.params import HEALTHY, GMMParams
from jgmm._maths.prior import Prior, default_prior
from jgmm._maths.validation import check_choice, check_int, check_not_traced, check_params

METHODS = ("nonparametric", "weighted")


class Bootstrap(NamedTuple):
    """Bootstrap replicates of a fit and their summaries.

    Attributes:
      replicates: GMMParams with a leading (n_boot,) axis.
      status: (n_boot,) int32 ``Status`` of each replicate's fit; the
        summaries use the healthy ones (CONVERGED or MAX_ITER).
      se: standard errors, a dict with "weights" (K,), "means" (K, D) and
        "covariances" (the family's shape).
      lower, upper: the same dicts, percentile interval bounds at ``level``.
    """

    replicates: GMMParams
    status: jax.Array
    se: dict
    lower: dict
    upper: dict


def _resample_weights(key, w, n_boot: int, method: str):
    """(n_boot, N) weights of the resampled data."""
    N = w.shape[0]
    if method == "nonparametric":
        rows = jax.random.choice(key, N, (n_boot, N), p=w / jnp.sum(w))
        return jax.vmap(lambda r: jnp.zeros(N, w.dtype).at[r].add(1))(rows)
    return N * w * jax.random.dirichlet(key, jnp.ones(N, w.dtype), (n_boot,))


@full_precision
def bootstrap(
    key: jax.Array,
    X: ArrayLike,
    params: GMMParams,
    n_boot: int = 100,
    method: str = "nonparametric",
    *,
    level: float = 0.95,
    max_iter: int = 100,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    sample_weight: ArrayLike | None = None,
    prior: Prior | str | None = None,
    missing: str = "error",
    on_collapse: str = "freeze",
) -> Bootstrap:
    """Standard errors and percentile intervals of weights, means and covariances.

    Args:
      key: a ``jax.random`` key for the resampling.
      X: (N, D) the data ``params`` were fitted to.
      params: the reference fit (e.g. ``jgmm.fit(...).params``); every
        replicate starts there, so components stay aligned with it.
      n_boot: number of replicates.
      method: "nonparametric" (rows drawn with replacement) or "weighted"
        (Dirichlet weights, the Bayesian bootstrap).
      level: coverage of the percentile intervals.
      max_iter, tol, reg_covar, prior, missing, on_collapse: of each
        replicate's fit, as in ``fit``: pass those the reference fit was
        made with (a MAP fit is bootstrapped by MAP refits; "default" is the
        default prior of each replicate's data).
      sample_weight: optional (N,) weights of the data; resampling draws
        rows in proportion to them ("nonparametric") or multiplies them.

    Returns:
      Bootstrap.
    """
    check_not_traced("bootstrap", key, X, params, tol, reg_covar, sample_weight, prior)
    n_boot = check_int(n_boot, "n_boot", 2)
    method = check_choice(method, "method", METHODS)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}.")
    p = prepare(key, X, sample_weight, 1, max_iter, tol, reg_covar, 0, None, on_collapse, missing)
    D = p.X.shape[1]
    K, ct = check_params(params, n_features=D).n_components, family(params.covariance_type).name
    start = check_starts(params, 1, K, D, ct, p.X.dtype)  # its values checked there
    prior, per_k = check_prior(prior, p.X, ct, p.w)
    config = p.grid_config(K, ct, "params", fold_in_k=False, cells_per_batch=1, prior_per_k=per_k)
    # Resampled weights of the N rows given; the rows padding them to a bucket keep weight 0.
    weights = _resample_weights(p.key, p.w[: p.N], n_boot, method)
    weights = jnp.pad(weights, ((0, 0), (0, p.X.shape[0] - p.N)))

    def refit(wb):
        # "default" is the default prior of each replicate's data, as a refit with it would take.
        replicate_prior = default_prior(p.X, 1, ct, sample_weight=wb) if per_k else prior
        best = fit_grid(p.key, np.array([K], np.int32), p.X, wb, p.tol, p.reg_covar, start, None, replicate_prior,
                           config=config).best
        return jax.tree.map(lambda a: a[0], best)

    results = jax.vmap(refit)(weights)
    healthy = np.isin(np.asarray(results.status), HEALTHY)
    values = {name: np.asarray(getattr(results.params, name))[healthy] for name in ("weights", "means", "covariances")}
    tail = (1 - level) / 2
    return Bootstrap(
        replicates=results.params,
        status=results.status,
        se={name: v.std(axis=0, ddof=1) for name, v in values.items()},
        lower={name: np.quantile(v, tail, axis=0) for name, v in values.items()},
        upper={name: np.quantile(v, 1 - tail, axis=0) for name, v in values.items()},
    )
