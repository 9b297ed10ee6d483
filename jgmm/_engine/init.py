"""Initialisation: pure JAX and key-driven, so it vmaps over restarts.

Every method produces responsibilities (N, K), and the M-step of those
(``params_from_stats`` of their statistics) gives the parameters, as
scikit-learn does. The k-means methods (``KMEANS_INITS``) first find centres
(``kmeans_centers``); those do not depend on the covariance family, so
``jgmm.select`` computes them once for all families (``jgmm._engine.loop.seed``).

  "kmeans"            greedy k-means++ seeding (D² sampling, best of
                      ``N_TRIALS`` candidates per centre) then ``N_LLOYD`` Lloyd
                      steps; one-hot responsibilities of the nearest centre.
                      Seeding and Lloyd steps use an evenly strided subsample
                      of at most ``INIT_SAMPLE`` rows, so their cost does not
                      grow with N. Distances are measured on standardised
                      features (each divided by its weighted standard
                      deviation, ``feature_scale``), so the feature of the
                      largest spread does not decide the start alone. Its old
                      name "kmeans++" is accepted (``check_init``).
  "k-means++"         the greedy k-means++ seeding only (scikit-learn's
                      'k-means++', on standardised features).
  "random"            uniform random responsibilities, normalised per row.
  "random_from_data"  K distinct samples, each the sole member of one
                      component (scikit-learn's 'random_from_data').
  "hc"                mclust's start: the partition into K clusters of a
                      model-based hierarchical agglomeration
                      (``jgmm._engine.hc``) of an evenly strided subsample
                      of at most ``HC_SAMPLE`` rows; the other rows start
                      with no responsibility (the first E-step assigns
                      them). Deterministic: the key is not used, and one
                      merge tree gives every K (``seed_program``).
  "hc+kmeans"         the first restart "hc", the others "kmeans": the best
                      of n_init is never below the hc start's. The default
                      of ``fit`` and ``select``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jgmm._compile import jit
from jgmm._engine.hc import HC_SAMPLE, agglomerate, partition_labels, svd_transform
from jgmm._engine.passes import Chunks, PassSums, accumulate
from jgmm._maths.em import chunk_stats, params_and_singular
from jgmm._maths.missing import observed_mean
from jgmm._maths.params import GMMParams, shift_means
from jgmm._maths.validation import check_choice

INIT_METHODS = ("kmeans", "k-means++", "random", "random_from_data", "hc", "hc+kmeans")
KMEANS_INITS = ("kmeans", "k-means++", "hc+kmeans")
OLD_NAMES = {"kmeans++": "kmeans"}  # accepted, and read as the new name
N_LLOYD = 10
N_TRIALS = 4
INIT_SAMPLE = 8192


def check_init(init: str) -> str:
    """A method of ``INIT_METHODS`` (or an old name of one, ``OLD_NAMES``), as
    its current name; the message lists the methods."""
    init = OLD_NAMES.get(init, init) if isinstance(init, str) else init
    return check_choice(init, "init", INIT_METHODS)


def _sq_distances(X, centers):
    """(N, K) squared Euclidean distances, clipped at 0."""
    d2 = jnp.sum(X * X, 1)[:, None] - 2 * X @ centers.T + jnp.sum(centers * centers, 1)[None, :]
    return jnp.maximum(d2, 0)


def _draw(u, mass):
    """The index whose cumulative mass first exceeds u·Σ mass, u in [0, 1)."""
    cdf = jnp.cumsum(mass)
    return jnp.minimum(jnp.sum(cdf <= u * cdf[-1]), mass.shape[0] - 1)


def _kmeans_plusplus(key, X, w, K):
    """(K, D) centres by greedy D² sampling, each draw weighted by w_n·d²(x_n).

    As scikit-learn's greedy k-means++: each step draws ``N_TRIALS``
    candidates and keeps the one that lowers the potential Σ w·d² most. Step
    i uses uniforms from ``fold_in(key, i)``, so the first k centres do not
    depend on K.
    """
    u = jax.vmap(lambda i: jax.random.uniform(jax.random.fold_in(key, i), (N_TRIALS,), X.dtype))(jnp.arange(K))
    c0 = X[_draw(u[0, 0], w)]
    centers = jnp.zeros((K, X.shape[1]), X.dtype).at[0].set(c0)
    d2 = jnp.sum((X - c0) ** 2, axis=1)

    def body(i, carry):
        centers, d2 = carry
        mass = w * d2
        # All remaining mass at distance 0 (duplicates): fall back to weights.
        mass = jnp.where(jnp.sum(mass) > 0, mass, w)
        candidates = X[jax.vmap(_draw, in_axes=(0, None))(u[i], mass)]  # (T, D)
        d2_new = jnp.minimum(d2[None, :], _sq_distances(X, candidates).T)  # (T, N)
        best = jnp.argmin(d2_new @ w)
        return centers.at[i].set(candidates[best]), d2_new[best]

    centers, _ = jax.lax.fori_loop(1, K, body, (centers, d2))
    return centers


def _nearest(X, centers, mask):
    """(N, K) one-hot of the nearest active centre."""
    d2 = jnp.where(mask[None, :], _sq_distances(X, centers), jnp.inf)
    return jax.nn.one_hot(jnp.argmin(d2, axis=1), centers.shape[0], dtype=X.dtype)


def _lloyd(X, w, centers, mask, n_steps):
    """``n_steps`` weighted Lloyd updates; an empty cluster keeps its centre."""

    def body(_, centers):
        onehot = _nearest(X, centers, mask)
        counts = w @ onehot
        sums = (onehot * w[:, None]).T @ X
        return jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1e-30)[:, None], centers)

    return jax.lax.fori_loop(0, n_steps, body, centers)


def _stride(chunks: Chunks, size: int) -> int:
    return -(-chunks.X.shape[0] // size)


def subsample(chunks: Chunks, size: int = INIT_SAMPLE):
    """Every s-th row of the data, at most ``size`` of them, centred
    (missing entries filled with the mean), and their weights: what the
    k-means seeding and Lloyd steps see (and the hc start, ``HC_SAMPLE``)."""
    stride = _stride(chunks, size)
    return chunks.filled(chunks.X[::stride] - chunks.centre), chunks.w[::stride]


def feature_scale(X_sample, w_sample):
    """(D,) the weighted standard deviation of each feature of the (centred)
    subsample, 1 where it is 0: the k-means methods work on X / scale."""
    sd = jnp.sqrt(w_sample @ (X_sample * X_sample) / jnp.sum(w_sample))
    return jnp.where(sd > 0, sd, 1)


def kmeans_centers(key: jax.Array, X_sample, w_sample, mask: jax.Array, init: str) -> jax.Array:
    """(K, D) centres of a k-means method (module doc) on the (centred)
    subsample ``X_sample`` with weights ``w_sample``, in standardised
    coordinates (X / ``feature_scale``); ``mask``: (K,) active components."""
    Z = X_sample / feature_scale(X_sample, w_sample)
    centers = _kmeans_plusplus(key, Z, w_sample, mask.shape[0])
    return _lloyd(Z, w_sample, centers, mask, N_LLOYD) if init == "kmeans" else centers


def initial_resp(key: jax.Array, chunks: Chunks, mask: jax.Array, init: str, centers=None):
    """The initial responsibilities of method ``init`` (module doc), as a
    function of one chunk: ``resp(X, rows) -> (B, K)`` for centred rows X
    with indices ``rows`` (see ``Chunks.read``). No (N, K) array is formed.
    The k-means methods take their (K, D) ``centers`` (``kmeans_centers``).

    Every method is prefix-consistent: the responsibilities of the first k
    components are the same whatever K is (draws for component k use
    ``fold_in(key, k)``), so a model padded to more components starts exactly
    where the unpadded one does. Inactive components (``mask`` False) get 0.
    The "hc" method takes the (n_sub,) labels of its subsample's rows as
    ``centers``, "hc+kmeans" (centres, labels), labels all -1 where the
    restart is a k-means one.
    """
    K, dtype = mask.shape[0], chunks.X.dtype
    if init == "hc+kmeans":
        centers, labels = centers
        hc, kmeans = (initial_resp(key, chunks, mask, method, c) for method, c in (("hc", labels), ("kmeans", centers)))
        use_hc = jnp.any(labels >= 0)
        return lambda X, rows: jnp.where(use_hc, hc(X, rows), kmeans(X, rows))
    if init == "hc":
        stride = _stride(chunks, HC_SAMPLE)

        def hc(X, rows):
            label = jnp.where(rows % stride == 0, centers[jnp.minimum(rows // stride, centers.shape[0] - 1)], -1)
            return jax.nn.one_hot(label, K, dtype=dtype) * mask[None, :]  # label -1: a row of zeros

        return hc
    if init == "random":
        keys = jax.vmap(lambda k: jax.random.fold_in(key, k))(jnp.arange(K))

        def random(X, rows):
            draw = lambda row: jax.vmap(lambda k: jax.random.uniform(jax.random.fold_in(k, row), (), dtype))(keys)
            resp = jnp.where(mask[None, :], jax.vmap(draw)(rows), 0)
            return resp / jnp.sum(resp, axis=1, keepdims=True)

        return random
    if init == "random_from_data":
        # K distinct samples by the Gumbel top-k trick, drawn ∝ w, in a fixed order.
        scores = jnp.log(chunks.w) + jax.random.gumbel(key, chunks.w.shape, dtype)
        idx = jnp.argsort(-scores)[:K]
        return lambda X, rows: ((rows[:, None] == idx[None, :]) & mask[None, :]).astype(dtype)
    scale = feature_scale(*subsample(chunks))
    return lambda X, rows: _nearest(X / scale, centers, mask)


def initial_stats(key, chunks: Chunks, mask, init, covariance_type, centers=None):
    """The SuffStats (about the chunks' centre) of the initial
    responsibilities of method ``init``, summed over the chunks (missing
    entries filled with the mean)."""
    resp = initial_resp(key, chunks, mask, init, centers)

    def chunk(X, w, rows):
        X = chunks.filled(X)
        return PassSums(jnp.zeros((), X.dtype), chunk_stats(resp(X, rows), X, w, covariance_type))

    return accumulate(chunk, covariance_type, mask.shape[0], chunks).stats


def initialize(key, chunks: Chunks, mask, init, covariance_type, reg_covar, centers=None) -> GMMParams:
    """GMMParams (in the chunks' centred coordinates): the M-step of the
    ``initial_stats``."""
    stats = initial_stats(key, chunks, mask, init, covariance_type, centers)
    return params_and_singular(stats, covariance_type, reg_covar)[0]


def restart_keys(key, n_init: int):
    """The key of each restart: ``key`` itself for the first, ``fold_in(key,
    i)`` for restart i > 0, so the first m restarts of any ``n_init >= m``
    are the same (more restarts are never worse)."""
    return jnp.concatenate([key[None], jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(1, n_init))])


def member_keys(key, n_active, n_init: int, fold_in_k: bool):
    """(M, n_init) keys: the restarts (``restart_keys``) of cell m from
    ``fold_in(key, n_active[m])`` if ``fold_in_k``, else from ``key``."""
    cell_keys = jax.vmap(lambda K: jax.random.fold_in(key, K))(n_active) if fold_in_k else jnp.broadcast_to(key, n_active.shape)
    return jax.vmap(lambda k: restart_keys(k, n_init))(cell_keys)


class Seeding(NamedTuple):
    """The static settings of the starts (``seed_program``), hashable.

    Attributes:
      n_components: K_max, the components of every (padded) model.
      init: the method (``INIT_METHODS``), or "params" for given starts.
      n_init: restarts per cell.
      fold_in_k: cell m's keys come from ``fold_in(key, n_active[m])``
        (``member_keys``).
      missing: X has missing entries (NaN).
    """

    n_components: int
    init: str
    n_init: int
    fold_in_k: bool = False
    missing: bool = False


def seed_program(key, n_active, X, w, *, seeding: Seeding):
    """What every family's grid program for these data and members starts
    from; compiled on its own (``jgmm._engine.loop.seed``), ``jgmm.select`` runs it once
    for all families.

    Returns ``seeds``:
      offset: (D,) the data's weighted mean (of the observed entries); the
        grid program works in data centred there.
      centers: (M, n_init, K, D) the k-means centres (``kmeans_centers``,
        centred, standardised coordinates) of each cell's restarts, keys from
        ``member_keys``; for "hc", (M, n_init, n_sub) the labels of the
        subsample's rows, from one merge tree; None for the other methods.
    """
    n_components, init, n_init, fold_in_k, missing = seeding
    offset = observed_mean(X, w) if missing else (w @ X) / jnp.sum(w)
    if init in ("hc", "hc+kmeans"):
        X_sample, w_sample = subsample(Chunks(X, w, offset, X.shape[0], missing=missing), HC_SAMPLE)
        partitions = agglomerate(svd_transform(X_sample, w_sample), w_sample, n_components)[0]
        labels = jax.vmap(lambda K: partition_labels(partitions[K - 1], n_components))(n_active)
        labels = jnp.broadcast_to(labels[:, None], (labels.shape[0], n_init, labels.shape[1]))
        if init == "hc":
            return offset, labels
        labels = jnp.where((jnp.arange(n_init) == 0)[None, :, None], labels, -1)
    if init not in KMEANS_INITS:
        return offset, None
    X_sample, w_sample = subsample(Chunks(X, w, offset, X.shape[0], missing=missing))
    M = n_active.shape[0]
    keys = member_keys(key, n_active, n_init, fold_in_k).reshape(-1)
    masks = jnp.repeat(jnp.arange(n_components) < n_active[:, None], n_init, axis=0)
    method = "kmeans" if init == "hc+kmeans" else init
    centers = jax.vmap(lambda k, mask: kmeans_centers(k, X_sample, w_sample, mask, method))(keys, masks)
    centers = centers.reshape((M, n_init) + centers.shape[1:])
    return offset, (centers, labels) if init == "hc+kmeans" else centers


@jit(static_argnames=("n_components", "covariance_type", "init", "n_init", "chunk_size", "missing"))
def initial_params(key, X, w, reg_covar, *, n_components, covariance_type, init, n_init, chunk_size, missing=False):
    """(n_init,)-batched GMMParams where ``fit``'s restarts would start.

    Restart i uses the i-th of ``restart_keys(key, n_init)``, as ``fit``
    does; the data are centred at their weighted mean first, as
    there. For starting points that fix some parameters and initialise the
    rest by a method (scikit-learn's ``means_init`` and friends).
    ``missing``: X has missing entries (NaN), filled as ``fit``'s starts
    fill them.
    """
    seeding = Seeding(n_components, init, n_init, missing=missing)
    offset, centers = seed_program(key, jnp.array([n_components]), X, w, seeding=seeding)
    chunks = Chunks(X, w, offset, chunk_size, missing=missing)
    mask = jnp.ones((n_components,), bool)
    start = lambda key, centers: initialize(key, chunks, mask, init, covariance_type, reg_covar, centers)
    params = jax.vmap(start)(restart_keys(key, n_init), jax.tree.map(lambda a: a[0], centers))
    return shift_means(params, chunks.centre)
