"""Initialisation: pure JAX and key-driven, so it vmaps over restarts.

Every method produces responsibilities (N, K) and turns them into parameters
with ``m_step``, as scikit-learn does:

  "kmeans++"          k-means++ seeding (D² sampling) then ``N_LLOYD`` Lloyd
                      steps; one-hot responsibilities of the nearest centre.
  "k-means++"         k-means++ seeding only (scikit-learn's 'k-means++').
  "random"            uniform random responsibilities, normalised per row.
  "random_from_data"  K distinct samples, each the sole member of one
                      component (scikit-learn's 'random_from_data').
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jgmm._em import m_step

INIT_METHODS = ("kmeans++", "k-means++", "random", "random_from_data")
N_LLOYD = 10


def _sq_distances(X, centers):
    """(N, K) squared Euclidean distances, clipped at 0."""
    d2 = jnp.sum(X * X, 1)[:, None] - 2 * X @ centers.T + jnp.sum(centers * centers, 1)[None, :]
    return jnp.maximum(d2, 0)


def _kmeans_plusplus(key, X, w, K):
    """(K, D) centres by D² sampling, each draw weighted by w_n·d²(x_n)."""
    key, first = jax.random.split(key)
    log_w = jnp.log(w)
    c0 = X[jax.random.categorical(first, log_w)]
    centers = jnp.zeros((K, X.shape[1]), X.dtype).at[0].set(c0)
    d2 = jnp.sum((X - c0) ** 2, axis=1)

    def body(i, carry):
        centers, d2, key = carry
        key, sub = jax.random.split(key)
        logits = log_w + jnp.log(d2)
        # All remaining mass at distance 0 (duplicates): fall back to weights.
        logits = jnp.where(jnp.any(jnp.isfinite(logits)), logits, log_w)
        c = X[jax.random.categorical(sub, logits)]
        return centers.at[i].set(c), jnp.minimum(d2, jnp.sum((X - c) ** 2, axis=1)), key

    centers, _, _ = jax.lax.fori_loop(1, K, body, (centers, d2, key))
    return centers


def _lloyd(X, w, centers, n_steps):
    """``n_steps`` weighted Lloyd updates; an empty cluster keeps its centre."""

    def body(_, centers):
        onehot = jax.nn.one_hot(jnp.argmin(_sq_distances(X, centers), axis=1), centers.shape[0], dtype=X.dtype)
        counts = w @ onehot
        sums = (onehot * w[:, None]).T @ X
        return jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1e-30)[:, None], centers)

    return jax.lax.fori_loop(0, n_steps, body, centers)


def initial_resp(key: jax.Array, X: jax.Array, w: jax.Array, n_components: int, init: str) -> jax.Array:
    """(N, K) initial responsibilities by method ``init`` (see module doc).

    X should be centred (the fit centres it) so that the squared distances
    used by the k-means methods do not cancel catastrophically in float32.
    """
    N, K = X.shape[0], n_components
    if init == "random":
        resp = jax.random.uniform(key, (N, K), X.dtype)
        return resp / jnp.sum(resp, axis=1, keepdims=True)
    if init == "random_from_data":
        idx = jax.random.choice(key, N, (K,), replace=False, p=w / jnp.sum(w))
        return jnp.zeros((N, K), X.dtype).at[idx, jnp.arange(K)].set(1)
    centers = _kmeans_plusplus(key, X, w, K)
    if init == "kmeans++":
        centers = _lloyd(X, w, centers, N_LLOYD)
    return jax.nn.one_hot(jnp.argmin(_sq_distances(X, centers), axis=1), K, dtype=X.dtype)


def initialize(key, X, w, n_components, init, covariance_type, reg_covar):
    """GMMParams from the initial responsibilities of method ``init``."""
    resp = initial_resp(key, X, w, n_components, init)
    return m_step(resp, X, covariance_type, reg_covar, w)
