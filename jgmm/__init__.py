"""jgmm: Gaussian mixture models fitted by expectation–maximization in JAX."""

from jgmm._adapters.data import load_faithful
from jgmm._adapters.model_files import load, save
from jgmm._adapters.plot import plot_mixture
from jgmm._drivers.bootstrap import Bootstrap, bootstrap
from jgmm._drivers.fit import fit
from jgmm._drivers.gradient import fit_gradient
from jgmm._drivers.online import OnlineState, online_init, online_step
from jgmm._drivers.select import Selection, Table, select
from jgmm._drivers.stream import fit_stream
from jgmm._drivers.variational import fit_variational
from jgmm._engine.shard import shard
from jgmm._maths.criteria import aic, bic, icl, n_parameters
from jgmm._maths.em import SuffStats, e_step, m_step, params_from_stats, suff_stats
from jgmm._maths.families import Family, family, family_names, register_family
from jgmm._maths.params import FitResult, GMMParams, Status
from jgmm._maths.predict import log_prob, predict, predict_proba, sample
from jgmm._maths.prior import Prior, default_prior
from jgmm._maths.variational import VariationalParams, VariationalPrior, VariationalResult

__version__ = "0.1.0"

__all__ = [
    "BayesianGaussianMixture",
    "Bootstrap",
    "Family",
    "FitResult",
    "GMMParams",
    "GaussianMixture",
    "OnlineState",
    "Prior",
    "Selection",
    "Status",
    "SuffStats",
    "Table",
    "VariationalParams",
    "VariationalPrior",
    "VariationalResult",
    "aic",
    "bic",
    "bootstrap",
    "default_prior",
    "e_step",
    "family",
    "family_names",
    "fit",
    "fit_gradient",
    "fit_stream",
    "fit_variational",
    "icl",
    "load",
    "load_faithful",
    "log_prob",
    "m_step",
    "n_parameters",
    "online_init",
    "online_step",
    "params_from_stats",
    "plot_mixture",
    "predict",
    "predict_proba",
    "register_family",
    "sample",
    "save",
    "select",
    "shard",
    "suff_stats",
]


def __getattr__(name):
    # The estimators need scikit-learn, an optional extra: imported on first use.
    if name in ("GaussianMixture", "BayesianGaussianMixture"):
        import jgmm.sklearn

        return getattr(jgmm.sklearn, name)
    raise AttributeError(f"module 'jgmm' has no attribute {name!r}")
