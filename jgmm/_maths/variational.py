"""Variational Bayesian mixtures, scikit-learn's BayesianGaussianMixture: the maths.

Bishop (2006) §10.2: a Gaussian–Wishart prior on each component's mean and
precision, q(μ_k, Λ_k) = N(μ_k | m_k, (β_k Λ_k)⁻¹) W(Λ_k | W_k, ν_k), and on
the weights either a Dirichlet distribution (α_k) or the truncated
stick-breaking Dirichlet process of Blei & Jordan (2006), one Beta(a_k, b_k)
per stick. The updates are sums over samples (``SuffStats``), so they run
in chunks and across devices as EM's do.

As scikit-learn, the Wishart scale is kept normalised (``covariances`` =
W_k⁻¹ / ν_k, whose precision Cholesky factor is the family's P) and the
lower bound leaves out its constant terms, so both equal scikit-learn's.
docs/derivation.md §19 derives each function.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import betaln, digamma, gammaln

from jgmm._compile import full_precision
from jgmm._maths.em import SuffStats
from jgmm._maths.families import family, log_gaussian
from jgmm._maths.params import GMMParams

PRIOR_TYPES = ("dirichlet_process", "dirichlet_distribution")


class VariationalPrior(NamedTuple):
    """The prior (scikit-learn's ``*_prior_`` attributes).

    Attributes:
      weight_concentration: () α₀ (the Dirichlet's, or each stick's b).
      mean_precision: () β₀.
      mean: (D,) m₀.
      degrees_of_freedom: () ν₀ > D - 1.
      covariance: Ψ₀ = W₀⁻¹ in scikit-learn's ``covariances_`` form of one
        component: full and tied (D, D), diag (D,), spherical ().
    """

    weight_concentration: jax.Array
    mean_precision: jax.Array
    mean: jax.Array
    degrees_of_freedom: jax.Array
    covariance: jax.Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class VariationalParams:
    """The variational posterior (scikit-learn's fitted attributes).

    Attributes:
      weight_concentration: (2, K) the sticks' Beta (a_k, b_k)
        ("dirichlet_process"), or (K,) the Dirichlet's α_k.
      mean_precision: (K,) β_k.
      means: (K, D) m_k.
      degrees_of_freedom: (K,) ν_k; () for tied.
      prec_chol: the family's P of the normalised scale W_k⁻¹ / ν_k
        (scikit-learn's ``precisions_cholesky_``).
      covariance_type: one of scikit-learn's four families.
    """

    weight_concentration: jax.Array
    mean_precision: jax.Array
    means: jax.Array
    degrees_of_freedom: jax.Array
    prec_chol: jax.Array
    covariance_type: str = dataclasses.field(default="full", metadata=dict(static=True))

    @property
    @full_precision
    def covariances(self) -> jax.Array:
        """The normalised scale W_k⁻¹ / ν_k in scikit-learn's ``covariances_`` shape."""
        return family(self.covariance_type).covariances(self.prec_chol)


def default_prior(X, w, n_components: int, covariance_type: str) -> VariationalPrior:
    """scikit-learn's default prior for X (N, D) with sample weights w (N,)
    (weight 2 = a row twice): α₀ = 1/K, β₀ = 1, m₀ the mean, ν₀ = D, and Ψ₀
    the unbiased covariance of X in the family's form (full, tied: the
    matrix; diag: its diagonal; spherical: the diagonal's mean)."""
    f = family(covariance_type)
    n = jnp.sum(w)
    mean = w @ X / n
    sxx = f.second_moment(w[:, None], X - mean)  # one component's, in the statistics' form
    S = f.covariance_estimate(sxx, (n - 1)[None], jnp.zeros((1, X.shape[1]), X.dtype))
    covariance = f.covariances(f.from_estimate(S, n[None], jnp.zeros((), X.dtype))[0])
    one = jnp.ones((), X.dtype)
    return VariationalPrior(one / n_components, one, mean, one * X.shape[1], covariance if f.shared else covariance[0])


def variational_m_step(stats: SuffStats, prior: VariationalPrior, covariance_type: str, reg_covar, prior_type: str):
    """The variational M-step (Bishop 10.58–10.63; Blei & Jordan's sticks)
    from the statistics of the responsibilities (``suff_stats``): scikit-
    learn's ``_m_step``, N_k + 10 eps and S_k + reg_covar as there.

    The normalised scale (Ψ₀ + N_k S_k + N_k (β₀/β_k) e_k e_kᵀ) / ν_k,
    e_k = x̄_k - m₀, is the family's covariance estimate from those
    moments with ν_k in place of N_k (tied: pooled over k, so ν = ν₀ +
    Σ_k N_k / K), which keeps each family's form.

    Returns:
      VariationalParams.
    """
    f = family(covariance_type)
    K = stats.sx.shape[0]
    nk = stats.nk + 10 * jnp.finfo(stats.nk.dtype).eps
    d = stats.sx / nk[:, None]
    zero = jnp.zeros((), nk.dtype)
    S = f.covariances(f.from_estimate(f.covariance_estimate(stats.sxx, nk, d), nk, zero + reg_covar)[0])
    if prior_type == "dirichlet_process":
        after = jnp.concatenate([jnp.cumsum(nk[::-1])[-2::-1], jnp.zeros((1,), nk.dtype)])  # Σ_{j>k} N_j
        concentration = jnp.stack([1 + nk, prior.weight_concentration + after])
    else:
        concentration = prior.weight_concentration + nk
    beta = prior.mean_precision + nk
    xk = stats.shift + d
    means = (prior.mean_precision * prior.mean + nk[:, None] * xk) / beta[:, None]
    e = jnp.sqrt(prior.mean_precision / beta)[:, None] * (xk - prior.mean)
    psi = prior.covariance if f.shared else jnp.broadcast_to(prior.covariance, (K,) + jnp.shape(prior.covariance))
    moments = f.moments_from_covariance(S, nk, e) + f.moments_from_covariance(psi, jnp.ones_like(nk), jnp.zeros_like(e))
    counts = prior.degrees_of_freedom + nk
    scale = f.covariance_estimate(moments, counts, jnp.zeros_like(e))
    nu = jnp.mean(counts) if f.shared else counts
    return VariationalParams(concentration, beta, means, nu, f.from_estimate(scale, counts, zero)[0], f.name)


def expected_log_weights(params: VariationalParams) -> jax.Array:
    """(K,) E[log π_k] under q (Bishop 10.66; the sticks' for the process)."""
    c = params.weight_concentration
    if c.ndim == 1:
        return digamma(c) - digamma(jnp.sum(c))
    a, b = c
    total = digamma(a + b)
    return digamma(a) - total + jnp.concatenate([jnp.zeros((1,), c.dtype), jnp.cumsum(digamma(b) - total)[:-1]])


def _log_lambda(nu, D: int):
    """E[log |Λ_k|] less log |ν_k W_k| (the scale is normalised): D log 2 +
    Σ_i ψ((ν_k - i) / 2) (Bishop 10.65 without the normalised scale)."""
    return D * math.log(2.0) + jnp.sum(digamma(0.5 * (nu[..., None] - jnp.arange(D, dtype=nu.dtype))), axis=-1)


def _component_terms(params: VariationalParams) -> jax.Array:
    """(K,) what the variational E-step adds to log N(x | m_k, scale_k):
    E[log π_k] - ½ D log ν_k + ½ (E[log |Λ_k|]' - D / β_k) (Bishop
    10.64–10.66, the scale normalised)."""
    D = params.means.shape[-1]
    nu = jnp.broadcast_to(params.degrees_of_freedom, params.mean_precision.shape)
    return (expected_log_weights(params) - 0.5 * D * jnp.log(nu)
            + 0.5 * (_log_lambda(nu, D) - D / params.mean_precision))


def variational_log_prob(params: VariationalParams, X) -> jax.Array:
    """(N, K) E[log π_k] + E[log N(x_n | μ_k, Λ_k⁻¹)] up to a constant
    (Bishop 10.46): the log of the unnormalised responsibilities, what
    scikit-learn predicts and scores with."""
    return log_gaussian(X, params.means, params.prec_chol, params.covariance_type) + _component_terms(params)


def e_step_mixture(params: VariationalParams) -> GMMParams:
    """The mixture whose EM E-step is the variational E-step: the same
    Gaussians with weights ∝ exp of ``_component_terms`` (the largest 1),
    so EM's pass (``jgmm._engine.passes.pass_sums``) serves both."""
    c = _component_terms(params)
    return GMMParams(jnp.exp(c - jnp.max(c)), params.means, params.prec_chol, params.covariance_type)


def _log_wishart_norm(nu, log_det_chol, D: int):
    """log B(W, ν) of Bishop B.79, without its π term (scikit-learn's)."""
    return -(nu * log_det_chol + nu * D * 0.5 * math.log(2.0)
             + jnp.sum(gammaln(0.5 * (nu[..., None] - jnp.arange(D, dtype=nu.dtype))), axis=-1))


def lower_bound(params: VariationalParams, entropy) -> jax.Array:
    """() the evidence lower bound without its constant terms (scikit-learn's
    ``_compute_lower_bound``), given the responsibilities' entropy
    -Σ_n w_n Σ_k r_nk log r_nk."""
    f = family(params.covariance_type)
    K, D = params.means.shape
    nu = params.degrees_of_freedom
    log_det = f.log_det(params.prec_chol, D) - 0.5 * D * jnp.log(nu)
    log_wishart = _log_wishart_norm(nu, log_det, D)
    log_wishart = K * log_wishart if f.shared else jnp.sum(log_wishart)
    c = params.weight_concentration
    if c.ndim == 1:
        log_norm_weight = gammaln(jnp.sum(c)) - jnp.sum(gammaln(c))
    else:
        log_norm_weight = -jnp.sum(betaln(c[0], c[1]))
    return entropy - log_wishart - log_norm_weight - 0.5 * D * jnp.sum(jnp.log(params.mean_precision))


def expected_weights(params: VariationalParams) -> jax.Array:
    """(K,) E[π_k] under q, normalised (scikit-learn's ``weights_``)."""
    c = params.weight_concentration
    if c.ndim == 1:
        return c / jnp.sum(c)
    a, b = c
    weights = a / (a + b) * jnp.concatenate([jnp.ones((1,), c.dtype), jnp.cumprod(b / (a + b))[:-1]])
    return weights / jnp.sum(weights)


class VariationalResult(NamedTuple):
    """Outcome of ``jgmm.fit_variational``.

    Attributes:
      params: the VariationalParams of the best restart (highest bound).
      prior: the VariationalPrior fitted with (defaults filled in).
      lower_bound: () its evidence lower bound (scikit-learn's
        ``lower_bound_``: a total over the samples, constants left out).
      n_iter: () iterations run.
      converged: () bool, ``status == Status.CONVERGED``.
      status: () int32, a ``jgmm.Status`` value.
      history: (max_iter,) the bound after each iteration, NaN after
        ``n_iter`` (scikit-learn's ``lower_bounds_``).
      restart_lower_bounds: (n_init,) every restart's final bound.
    """

    params: VariationalParams
    prior: VariationalPrior
    lower_bound: jax.Array
    n_iter: jax.Array
    converged: jax.Array
    status: jax.Array
    history: jax.Array
    restart_lower_bounds: jax.Array
