"""``select``: model choice over K × covariance family × restarts, batched.

For each family, every K and every restart run in ONE compiled program
(``jgmm._engine.loop.fit_grid``): models with K < K_max are padded to K_max with
switched-off components (weight 0, no responsibility, never revived), and the
best restart of each K is chosen inside the program. The k-means starting
centres do not depend on the family: one more program (``jgmm._engine.loop.seed``)
finds them once for all families. Cell (family, K) uses the
key ``jax.random.fold_in(key, K)`` for every family, so its row equals
``jgmm.fit(jax.random.fold_in(key, K), X, K, family, n_init=n_init, ...)``
with ``nested=False``. With ``nested=True`` (default) each cell also starts
from the previous K's best fit with a component split, in the same program
(``jgmm._engine.nested``), and keeps the better fit: within a family the
log-likelihood does not fall as K grows.

``covariance_types="all"`` fits every registered family (mclust's 14). With
one feature they reduce to two models, equal or variable variance
(``Family.one_feature``): each is fitted once, under the name it reduces to if
that was asked for (EII, spherical), else the first asked for, and a warning
says which names it stands for.

Degenerate fits (a component collapsed onto duplicated points, see
``jgmm._engine.step``) are spurious maxima of the unbounded likelihood: a cell prefers
its best non-degenerate restart, and ``best`` is never a degenerate cell when
a non-degenerate one exists.
"""

from __future__ import annotations

import dataclasses
import itertools
import warnings
from collections.abc import Iterable

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jgmm._compile import full_precision
from jgmm._drivers.fit import check_prior, prepare
from jgmm._engine.init import check_init
from jgmm._engine.loop import fit_grid, seed
from jgmm._engine.nested import PARENT, SPLIT
from jgmm._engine.planning import default_cells_per_batch
from jgmm._maths.criteria import count_parameters, icl_from_bic, information_criteria
from jgmm._maths.families import SCIKIT_LEARN, family, family_names
from jgmm._maths.params import HEALTHY, GMMParams, Status
from jgmm._maths.prior import Prior
from jgmm._maths.validation import check_choice, check_covariance_type, check_n_components, check_not_traced

CRITERIA = ("bic", "aic", "icl")


class Table:
    """Columns of equal length, printable as an aligned text table."""

    def __init__(self, columns: dict):
        self.columns = columns

    def __len__(self):
        return len(next(iter(self.columns.values())))

    def to_dict(self) -> dict:
        """The columns as a dict of numpy arrays."""
        return {name: np.asarray(values) for name, values in self.columns.items()}

    def to_pandas(self):
        """The table as a pandas DataFrame (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as err:
            raise ImportError("to_pandas() needs pandas: pip install pandas") from err
        return pd.DataFrame(self.to_dict())

    def __str__(self):
        def cell(v):
            if isinstance(v, (float, np.floating)):
                return f"{v:.4f}" if abs(v) < 1e6 else f"{v:.6g}"
            return str(v)

        cells = [[cell(v) for v in values] for values in self.columns.values()]
        widths = [max(len(name), *(len(c) for c in col)) for name, col in zip(self.columns, cells)]
        header = "  ".join(name.rjust(w) for name, w in zip(self.columns, widths))
        rows = ["  ".join(col[i].rjust(w) for col, w in zip(cells, widths)) for i in range(len(self))]
        return "\n".join([header, "-" * len(header), *rows])

    __repr__ = __str__


@dataclasses.dataclass(frozen=True)
class Selection:
    """Outcome of ``jgmm.select``.

    Attributes:
      table: one row per (covariance_type, K): total_log_likelihood, bic, aic,
        icl (``jgmm.icl``: bic - 2 Σ_n log max_k γ(z_nk)), mclust_bic and
        mclust_icl (the same with the opposite sign, larger is better, as
        R's mclust reports: 2·logL - p·log N and that + 2 Σ_n log max_k γ),
        n_parameters, n_iter, converged, status, start (where the best fit
        began: the method, "hc" or "kmeans" for "hc+kmeans", "split" for
        the previous K's fit split, "parent" for a smaller K's fit with
        components of weight 0, ``nested``) and degenerate_restarts
        (restarts of the cell that collapsed).
      best: (covariance_type, n_components) of the best healthy cell by
        ``criterion`` (lowest bic, aic or icl).
      best_params: its GMMParams, unpadded.
      criterion: "bic", "aic" or "icl".
      results: family -> FitResult of the best restart per K (leading axis
        over ``n_components``; parameters padded to K_max).
    """

    table: Table
    best: tuple
    criterion: str
    n_components: tuple
    results: dict

    @property
    def best_params(self) -> GMMParams:
        return self.params(*self.best)

    def params(self, covariance_type: str, n_components: int) -> GMMParams:
        """The fitted, unpadded GMMParams of one cell."""
        if covariance_type not in self.results or n_components not in self.n_components:
            raise KeyError(
                f"No fit for covariance_type={covariance_type!r}, n_components={n_components}; "
                f"fitted families {tuple(self.results)} and n_components {self.n_components}."
            )
        m, K = self.n_components.index(n_components), n_components
        p = self.results[covariance_type].params
        prec_chol = family(covariance_type).take(p.prec_chol[m], K)
        return GMMParams(*(jnp.asarray(a) for a in (p.weights[m, :K], p.means[m, :K], prec_chol)), covariance_type)

    def to_dict(self) -> dict:
        """The table as a dict of numpy arrays."""
        return self.table.to_dict()

    def to_pandas(self):
        """The table as a pandas DataFrame (needs pandas)."""
        return self.table.to_pandas()

    def plot(self, ax=None):
        """Criterion against K, one line per family, the best marked (needs matplotlib).

        Returns:
          The matplotlib Axes.
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        columns = self.to_dict()
        for covariance_type, marker in zip(self.results, itertools.cycle("osD^vP<>hX")):
            rows = columns["covariance_type"] == covariance_type
            ax.plot(
                columns["n_components"][rows],
                columns[self.criterion][rows],
                marker=marker,
                label=covariance_type,
            )
        best = (columns["covariance_type"] == self.best[0]) & (columns["n_components"] == self.best[1])
        ax.plot(
            columns["n_components"][best],
            columns[self.criterion][best],
            marker="*",
            markersize=18,
            color="gold",
            markeredgecolor="black",
            linestyle="none",
            label=f"best: {self.best[0]}, K={self.best[1]}",
        )
        ax.set_xlabel("number of components K")
        ax.set_ylabel(f"{self.criterion.upper()} (lower is better)")
        ax.set_xticks(list(self.n_components))
        ax.legend()
        return ax

    def __str__(self):
        return f"{self.table}\nbest by {self.criterion}: covariance_type={self.best[0]!r}, n_components={self.best[1]}"


def _check_components(n_components, N: int) -> tuple:
    Ks = [n_components] if isinstance(n_components, (int, np.integer)) else list(n_components)
    if not Ks:
        raise ValueError("n_components must name at least one number of components.")
    return tuple(sorted({check_n_components(K, N) for K in Ks}))


@full_precision
def select(
    key: jax.Array,
    X: ArrayLike,
    n_components: int | Iterable[int] = range(1, 10),
    covariance_types: str | Iterable[str] = tuple(f.name for f in SCIKIT_LEARN),
    *,
    n_init: int = 5,
    init: str = "hc+kmeans",
    nested: bool = True,
    criterion: str = "bic",
    max_iter: int = 100,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    sample_weight: ArrayLike | None = None,
    progress: int = 0,
    chunk_size: int | None = None,
    on_collapse: str = "freeze",
    prior: Prior | str | None = None,
    missing: str = "error",
) -> Selection:
    """Fit every (covariance family, K) and choose a model by BIC, AIC or ICL.

    One compiled program per family fits all K and all restarts at once.

    Args:
      key: a ``jax.random`` key; cell (family, K) uses ``fold_in(key, K)``.
      X: (N, D) samples.
      n_components: the K values to try (an int or an iterable of ints).
      covariance_types: the families to try (names or aliases), or "all":
        every registered family (mclust's 14). Default: scikit-learn's four.
      n_init: restarts per (family, K).
      init: how each restart starts, a method of ``jgmm.fit``'s ``init``
        (default "hc+kmeans": mclust's hc start and k-means restarts); its
        starts are computed once for all families ("hc": one merge tree for
        every K).
      nested: also start each K from the best fit of the K before it with
        components split (``jgmm._engine.nested``), so that within a family
        the log-likelihood does not fall as K grows; False: every cell
        equals its ``jgmm.fit``.
      criterion: "bic", "aic" or "icl"; lower is better.
      max_iter, tol, reg_covar, sample_weight, progress, chunk_size,
        on_collapse, missing: as in ``jgmm.fit``.
      prior: None, "default" (mclust's conjugate prior for each family and
        K) or a ``jgmm.Prior`` (one family only): MAP fits, as in
        ``jgmm.fit``. Their BIC is mclust's with a prior: from the
        log-likelihood at the posterior mode.

    Returns:
      Selection.
    """
    check_not_traced("select", key, X, tol, reg_covar, sample_weight, prior)
    p = prepare(key, X, sample_weight, n_init, max_iter, tol, reg_covar, progress, chunk_size, on_collapse, missing)
    Ks = _check_components(n_components, p.N)
    families = _check_families(covariance_types, p.X.shape[1])
    criterion = check_choice(criterion, "criterion", CRITERIA)
    init = check_init(init)
    total_weight = float(jnp.sum(p.w))  # summed where w lies (it may span processes)
    if prior is not None and not isinstance(prior, str) and len(families) > 1:
        raise ValueError(
            "A jgmm.Prior has one covariance family's shape; pass one family with it, or prior='default'."
        )
    # Each family's chunks as ``fit`` reads them for one cell (K_max, n_init
    # restarts): the budget is per cell, so a batch of cells reads longer
    # chunks than one budget for all its members would give, which on CPU
    # makes a warm selection 20% faster (experiments/bench_select.py: 2048
    # rows, not 1024).
    configs, priors = {}, {}
    for name in families:
        priors[name], per_k = check_prior(prior, p.X, name, p.w)
        configs[name] = p.grid_config(
            Ks[-1], name, init, fold_in_k=True, cells_per_batch=default_cells_per_batch(len(Ks)), prior_per_k=per_k
        )._replace(assigned=True, nested=bool(nested))
    n_active = np.asarray(Ks, np.int32)
    seeds = seed(p.key, n_active, p.X, p.w, seeding=configs[families[0]].seeding)
    grids = {}
    for name in families:
        grids[name] = fit_grid(
            p.key, n_active, p.X, p.w, p.tol, p.reg_covar, None, seeds, priors[name], config=configs[name]
        )
        # Not read back yet: the next family compiles while this one runs.
    grids = {family: jax.tree.map(np.asarray, grid) for family, grid in grids.items()}
    results = {family: grid.best for family, grid in grids.items()}
    table = _table(grids, Ks, p.X.shape[1], total_weight, init)
    return Selection(table, _best(table, criterion), criterion, Ks, results)


def _check_families(covariance_types, D: int) -> tuple:
    """Canonical names, each once; "all" for every registered family. With
    one feature (D = 1), one family per distinct model (module doc)."""
    if isinstance(covariance_types, str):
        covariance_types = family_names() if covariance_types == "all" else (covariance_types,)
    families = tuple(dict.fromkeys(check_covariance_type(c) for c in covariance_types))
    if not families:
        raise ValueError("covariance_types must name at least one covariance family.")
    if D > 1:
        return families
    models = {}
    for name in families:
        models.setdefault(family(name).one_feature or name, []).append(name)
    # Each model under the family it reduces to, if asked for, else the first asked for.
    kept = {model: model if model in names else names[0] for model, names in models.items()}
    same = {kept[model]: [n for n in names if n != kept[model]] for model, names in models.items() if len(names) > 1}
    if same:
        said = "; ".join(f"{name!r} for {', '.join(map(repr, others))}" for name, others in same.items())
        warnings.warn(
            f"With one feature these covariance families are the same model, each fitted once: {said}.",
            stacklevel=3,
        )
    return tuple(kept.values())


def _start(won: int, init: str) -> str:
    """The start a cell's best fit came from (``GridResult.won``)."""
    if won in (SPLIT, PARENT):
        return "split" if won == SPLIT else "parent"
    return ("hc" if won == 0 else "kmeans") if init == "hc+kmeans" else init


def _table(grids, Ks, D, total_weight, init) -> Table:
    """Rows per (family, K); N in log N is Σ w_n (= N without weights)."""
    rows = []
    for name, grid in grids.items():
        result = grid.best
        for m, K in enumerate(Ks):
            p = count_parameters(name, K, D)
            log_l = float(result.log_likelihood[m]) * total_weight
            bic, aic = information_criteria(log_l, p, total_weight)
            icl = icl_from_bic(bic, float(grid.assigned[m]))
            status = Status(int(result.status[m]))
            rows.append(
                dict(
                    covariance_type=name,
                    n_components=K,
                    total_log_likelihood=log_l,
                    bic=bic,
                    aic=aic,
                    icl=icl,
                    mclust_bic=-bic,
                    mclust_icl=-icl,
                    n_parameters=p,
                    n_iter=int(result.n_iter[m]),
                    converged=bool(result.converged[m]),
                    status=status.name,
                    start=_start(int(grid.won[m]), init),
                    degenerate_restarts=int(np.sum(grid.restart_status[m] == Status.DEGENERATE)),
                )
            )
    return Table({name: np.array([row[name] for row in rows]) for name in rows[0]})


def _best(table: Table, criterion: str) -> tuple:
    """The healthy cell with the lowest criterion; any finite one if none is."""
    columns = table.to_dict()
    value = np.where(np.isfinite(columns[criterion]), columns[criterion], np.inf)
    healthy = np.isin(columns["status"], [s.name for s in HEALTHY])
    if np.any(healthy & np.isfinite(value)):
        value = np.where(healthy, value, np.inf)
    i = int(np.argmin(value))
    return str(columns["covariance_type"][i]), int(columns["n_components"][i])
