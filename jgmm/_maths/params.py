"""Parameter, status and result containers: plain, immutable pytrees."""

from __future__ import annotations

import dataclasses
import enum
from typing import NamedTuple

import jax

from jgmm._compile import full_precision
from jgmm._maths.families import family

@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class GMMParams:
    """Parameters of a Gaussian mixture, in the precision-Cholesky form.

    Attributes:
      weights: (K,) mixing proportions π_k, summing to 1.
      means: (K, D) component means μ_k.
      prec_chol: Cholesky factor P of each precision Σ⁻¹ = P Pᵀ, with
        scikit-learn's ``precisions_cholesky_`` shapes: full (K, D, D) upper
        triangular, tied (D, D), diag (K, D), spherical (K,).
      covariance_type: the canonical name of a registered family
        (``jgmm.Family``); static metadata, not a traced leaf.

    No validation happens here (it would run on tracers under jit/vmap); it
    happens at the Python boundary of the functions that take parameters.
    """

    weights: jax.Array
    means: jax.Array
    prec_chol: jax.Array
    covariance_type: str = dataclasses.field(default="full", metadata=dict(static=True))

    @property
    def n_components(self) -> int:
        """K, the number of components."""
        return self.means.shape[-2]

    @property
    def n_features(self) -> int:
        """D, the dimension of the data."""
        return self.means.shape[-1]

    @property
    @full_precision
    def covariances(self) -> jax.Array:
        """Σ in scikit-learn's ``covariances_`` shape for this family."""
        return family(self.covariance_type).covariances(self.prec_chol)

    @property
    @full_precision
    def dense_covariances(self) -> jax.Array:
        """(K, D, D) covariance matrices, whatever the family."""
        return family(self.covariance_type).dense_covariances(self.prec_chol, self.n_components, self.n_features)

    @property
    @full_precision
    def precisions(self) -> jax.Array:
        """Σ⁻¹ in scikit-learn's ``precisions_`` shape for this family."""
        return family(self.covariance_type).precisions(self.prec_chol)


class Status(enum.IntEnum):
    """How a fit ended. Stored as an int32 array inside compiled code.

    CONVERGED: the mean log-likelihood changed by less than ``tol``.
    MAX_ITER: ``max_iter`` iterations ran without converging (also the value
      while a fit is still running).
    NONFINITE: an iteration produced NaN or inf; the last finite parameters
      are kept.
    DEGENERATE: a component collapsed (see ``jgmm._engine.step`` for the rule); the fit
      stopped there.
    """

    CONVERGED = 0
    MAX_ITER = 1
    NONFINITE = 2
    DEGENERATE = 3


HEALTHY = (Status.CONVERGED, Status.MAX_ITER)  # the statuses of usable fits


def shift_means(params: GMMParams, offset) -> GMMParams:
    """``params`` with every mean moved by ``offset`` (D,): the same mixture in
    coordinates shifted by it (the likelihood is translation invariant)."""
    return dataclasses.replace(params, means=params.means + offset)


class FitResult(NamedTuple):
    """Outcome of ``jgmm.fit``.

    Attributes:
      params: the fitted GMMParams.
      log_likelihood: () mean per-sample log-likelihood of ``params``.
      n_iter: () number of EM iterations run.
      converged: () bool, ``status == Status.CONVERGED``.
      status: () int32, a ``jgmm.Status`` value.
      history: (max_iter,) mean log-likelihood entering each iteration, NaN
        after ``n_iter``.
    """

    params: GMMParams
    log_likelihood: jax.Array
    n_iter: jax.Array
    converged: jax.Array
    status: jax.Array
    history: jax.Array
