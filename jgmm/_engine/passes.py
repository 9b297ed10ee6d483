"""The EM pass: one fused scan over chunks of rows, E-step and statistics together.

``Chunks`` reads the data in place (centred, never copied), ``accumulate``
adds up what each chunk gives (``PassSums``; an all-reduce when the data are
split over devices), ``pass_sums`` is the E-step pass every driver runs.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import xlogy
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jgmm._maths.em import SuffStats, add_stats, chunk_stats, normalised, weighted_log_prob
from jgmm._maths.missing import conditionals, fill, missing_stats
from jgmm._maths.params import GMMParams


class Chunks(NamedTuple):
    """(N, D) data read ``size`` rows at a time, centred at ``centre``, without a copy.

    Chunk c covers rows [c·size, (c+1)·size). The last chunk is read from
    rows [N - size, N) and its rows that belong to the previous chunk get
    weight 0, so every row counts once and X is never padded or copied.

    Data sharded along the samples over the devices of ``mesh`` are read
    shard by shard: every device scans its own rows and the statistics are
    summed across devices, one all-reduce per pass (``accumulate``).

    Attributes:
      X: (N, D) samples, as given.
      w: (N,) sample weights.
      centre: (D,) subtracted from every chunk (``fit`` uses the weighted mean).
      size: static rows per chunk, at most N (at most N per device when sharded).
      mesh: static ``jax.sharding.Mesh`` whose first axis X and w are split
        along, or None: one device.
      first_row: index of X's first row in all the data (a device's shard).
      missing: static; X has missing entries (NaN, ``jgmm._maths.missing``).
    """

    X: jax.Array
    w: jax.Array
    centre: jax.Array
    size: int
    mesh: Mesh | None = None
    first_row: jax.Array | int = 0
    missing: bool = False

    @property
    def count(self) -> int:
        return -(-self.X.shape[0] // self.size)

    def read(self, c):
        """Chunk c: centred rows (size, D), weights (size,) and row indices (size,)."""
        N, B = self.X.shape[0], self.size
        start = jnp.minimum(c * B, N - B)
        rows = start + jnp.arange(B)
        X = jax.lax.dynamic_slice_in_dim(self.X, start, B) - self.centre
        w = jnp.where(rows >= c * B, jax.lax.dynamic_slice_in_dim(self.w, start, B), 0)
        return X, w, self.first_row + rows

    def filled(self, X):
        """Centred rows X with their missing entries (if any) at the centre:
        what the starts see (``jgmm._maths.missing.fill``)."""
        return fill(X) if self.missing else X


class Worst(NamedTuple):
    """The worst-explained sample of (part of) the data.

    Attributes:
      log_p: () its log p(x_n), the lowest among samples of positive weight.
      x: (D,) the sample, centred (missing entries filled).
    """

    log_p: jax.Array
    x: jax.Array


class PassSums(NamedTuple):
    """What one pass over (part of) the data sums (``pass_sums``).

    Attributes:
      total: () Σ_n w_n log p(x_n).
      stats: SuffStats about the chunks' centre.
      worst: a ``Worst``, if the pass looked for it (re-seeding), else None.
      assigned: () Σ_n w_n log max_k γ(z_nk), ICL's classification term, if
        the pass summed it, else None.
      entropy: () -Σ_n w_n Σ_k γ(z_nk) log γ(z_nk), the responsibilities'
        entropy (the variational lower bound's), if the pass summed it, else None.
      The sums of disjoint parts of the data add up by ``add_sums``.
    """

    total: jax.Array
    stats: SuffStats
    worst: Worst | None = None
    assigned: jax.Array | None = None
    entropy: jax.Array | None = None


def _lower_first(a: Worst, b: Worst) -> Worst:
    """Of two worst samples, the one with the lower log p."""
    return jax.tree.map(lambda u, v: jnp.where(b.log_p < a.log_p, v, u), a, b)


def add_sums(a: PassSums, b: PassSums) -> PassSums:
    """The PassSums of the union of two disjoint parts of the data."""
    worst = None if a.worst is None else _lower_first(a.worst, b.worst)
    plus = lambda u, v: None if u is None else u + v
    return PassSums(a.total + b.total, add_stats(a.stats, b.stats), worst, plus(a.assigned, b.assigned),
                    plus(a.entropy, b.entropy))


def accumulate(
    chunk_fn, covariance_type: str, K: int, chunks: Chunks, worst: bool = False, assigned: bool = False,
    entropy: bool = False,
) -> PassSums:
    """Scan the chunks, adding up their PassSums.

    ``chunk_fn(X, w, rows) -> PassSums`` of one centred chunk (see
    ``Chunks.read``), its statistics about 0 (``chunk_stats``), with a
    ``Worst`` if ``worst``, ``assigned`` and ``entropy`` if asked. The statistics
    are taken about the chunks' centre, i.e. with ``shift`` 0 in centred
    coordinates.
    """
    if chunks.mesh is not None:
        return _accumulate_shards(chunk_fn, covariance_type, K, chunks, worst, assigned, entropy)
    D, dtype = chunks.X.shape[-1], chunks.X.dtype

    def step(sums, c):
        return add_sums(sums, chunk_fn(*chunks.read(c))), None

    zeros = chunk_stats(jnp.zeros((1, K), dtype), jnp.zeros((1, D), dtype), jnp.zeros((1,), dtype), covariance_type)
    none_yet = Worst(jnp.asarray(jnp.inf, dtype), jnp.zeros((D,), dtype)) if worst else None
    zero = jnp.zeros((), dtype)
    empty = PassSums(zero, zeros, none_yet, zero if assigned else None, zero if entropy else None)
    sums, _ = jax.lax.scan(step, empty, jnp.arange(chunks.count))
    return sums


def _accumulate_shards(chunk_fn, covariance_type, K, chunks: Chunks, worst: bool, assigned: bool, entropy: bool) -> PassSums:
    """``accumulate`` on data split over the devices of ``chunks.mesh``.

    The samples are viewed as (devices, rows per device) and the scan is
    vmapped over the first axis, which stays split over the devices: each
    device scans its own rows, and summing over that axis is an all-reduce.
    """
    mesh = chunks.mesh
    n, (N, _) = mesh.size, chunks.X.shape
    along_devices = NamedSharding(mesh, P(mesh.axis_names[0]))
    split = lambda a: jax.lax.with_sharding_constraint(a.reshape((n, N // n) + a.shape[1:]), along_devices)

    def local(X, w, first_row):
        shard = chunks._replace(X=X, w=w, mesh=None, first_row=first_row)
        return accumulate(chunk_fn, covariance_type, K, shard, worst, assigned, entropy)

    sums = jax.vmap(local)(split(chunks.X), split(chunks.w), jnp.arange(n) * (N // n))
    stats = sums.stats
    stats = SuffStats(jnp.sum(stats.nk, 0), jnp.sum(stats.sx, 0), jnp.sum(stats.sxx, 0), stats.shift[0])
    found = None
    if worst:
        found = functools.reduce(_lower_first, [jax.tree.map(lambda a: a[i], sums.worst) for i in range(n)])
    summed = lambda a: None if a is None else jnp.sum(a, 0)
    return PassSums(summed(sums.total), stats, found, summed(sums.assigned), summed(sums.entropy))


def pass_sums(
    params: GMMParams, chunks: Chunks, worst: bool = False, assigned: bool = False, entropy: bool = False
) -> PassSums:
    """One fused pass over chunks: E-step and sufficient statistics together.

    Memory stays O(chunk·K·D) instead of O(N·K·D), X is never copied, and
    each chunk's responsibilities are used while they are still in cache.
    Data with missing entries (``chunks.missing``) take the E-step on each
    sample's observed features and the conditional statistics
    (``jgmm._maths.missing``); a re-seeding sample has its missing entries filled.

    Args:
      params: current GMMParams, in the chunks' centred coordinates.
      chunks: the data (``Chunks``).
      worst: static; also find the worst-explained sample (``Worst``).
      assigned: static; also sum ICL's classification term.
      entropy: static; also sum the responsibilities' entropy. ``params``'
        weights need not sum to 1 (the variational E-step's do not).

    Returns:
      PassSums of the whole data under ``params``, statistics about the centre.
    """
    D = chunks.X.shape[-1]

    def chunk(X, w, rows):
        if chunks.missing:
            log_gauss, xhat, C = conditionals(params, X)
            resp, log_norm = normalised(log_gauss + jnp.log(params.weights))
            sums = missing_stats(resp * w[:, None], xhat, C, params.covariance_type)
            stats, X = SuffStats(*sums, jnp.zeros((D,), X.dtype)), fill(X)
        else:
            resp, log_norm = normalised(weighted_log_prob(params, X, centred=True))
            stats = chunk_stats(resp, X, w, params.covariance_type)
        found = None
        if worst:
            log_p = jnp.where(w > 0, log_norm, jnp.inf)
            n = jnp.argmin(log_p)
            found = Worst(log_p[n], X[n])
        # Sums over rows as reductions, not (w @): a matrix-vector product's
        # rounding depends on how many fits are batched beside this one.
        log_max = jnp.sum(w * jnp.log(jnp.max(resp, axis=1))) if assigned else None
        spread = -jnp.sum(w * jnp.sum(xlogy(resp, resp), axis=1)) if entropy else None
        return PassSums(jnp.sum(w * log_norm), stats, found, log_max, spread)

    return accumulate(chunk, params.covariance_type, params.n_components, chunks, worst, assigned, entropy)
