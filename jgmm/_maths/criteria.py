"""Information criteria for choosing a model: BIC, AIC and ICL (lower is better)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp
from jax.typing import ArrayLike

from jgmm._maths.families import family
from jgmm._maths.params import GMMParams
from jgmm._compile import jit
from jgmm._maths.predict import _log_prob, _weighted_log_prob, checked_data
from jgmm._maths.validation import check_params


def count_parameters(covariance_type: str, K: int, D: int) -> int:
    """Free parameters: (K - 1) weights + K·D means + the family's covariances."""
    return K - 1 + K * D + family(covariance_type).n_parameters(K, D)


def n_parameters(params: GMMParams) -> int:
    """Free parameters of a mixture (see ``count_parameters``)."""
    check_params(params)
    return count_parameters(params.covariance_type, params.n_components, params.n_features)


def information_criteria(total_log_likelihood, p: int, N):
    """(BIC, AIC) = (-2 logL + p·log N, -2 logL + 2p) for a total log-likelihood."""
    return -2 * total_log_likelihood + p * math.log(N), -2 * total_log_likelihood + 2 * p


def _criteria(params: GMMParams, X, missing: str):
    X = checked_data(params, X, missing)
    log_l = jnp.sum(_log_prob(params, X, missing == "marginalize"))
    return information_criteria(log_l, n_parameters(params), X.shape[0])


def bic(params: GMMParams, X: ArrayLike, missing: str = "error") -> jax.Array:
    """() Bayesian information criterion, -2 Σ_n log p(x_n) + p·log N, X (N, D);
    ``missing="marginalize"``: of the observed entries (``jgmm.log_prob``)."""
    return _criteria(params, X, missing)[0]


def aic(params: GMMParams, X: ArrayLike, missing: str = "error") -> jax.Array:
    """() Akaike information criterion, -2 Σ_n log p(x_n) + 2p, X (N, D);
    ``missing="marginalize"``: of the observed entries (``jgmm.log_prob``)."""
    return _criteria(params, X, missing)[1]


def icl_from_bic(bic, assigned):
    """ICL = BIC - 2 Σ_n w_n log max_k γ(z_nk), ``assigned`` the sum."""
    return bic - 2 * assigned


@jit(static_argnames="missing")
def _log_likelihood_and_assigned(params: GMMParams, X, missing: bool):
    """(Σ_n log p(x_n), Σ_n log max_k γ(z_nk))."""
    weighted = _weighted_log_prob(params, X, missing)
    log_p = logsumexp(weighted, axis=1)
    return jnp.sum(log_p), jnp.sum(jnp.max(weighted, axis=1) - log_p)


def icl(params: GMMParams, X: ArrayLike, missing: str = "error") -> jax.Array:
    """() Integrated completed likelihood (Biernacki, Celeux & Govaert 2000)
    in BIC's sign, lower is better: BIC - 2 Σ_n log max_k γ(z_nk), X (N, D).

    The BIC of the classification likelihood: BIC plus twice the entropy of
    the hard assignments, which penalises overlapping components. R's
    mclust reports -ICL (larger is better). ``missing`` as in ``bic``."""
    X = checked_data(params, X, missing)
    log_l, assigned = _log_likelihood_and_assigned(params, X, missing == "marginalize")
    bic_value = information_criteria(log_l, n_parameters(params), X.shape[0])[0]
    return icl_from_bic(bic_value, assigned)
