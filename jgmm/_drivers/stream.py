"""``fit_stream``: exact EM on data read from disk, one pass per iteration.

EM's statistics are sums over samples (``jgmm._maths.em.SuffStats``), so an
iteration can read the data a chunk at a time and add up each chunk's
statistics: the result is the in-memory fit's, with memory bounded by a few
chunks. The loop waits only for the chunk before the one just dispatched, so
the next chunk is read and sent to the device while this one is computed.

A first pass counts and checks the samples, takes their mean (the centre
the statistics are taken about) and a uniform reservoir sample (Vitter's
algorithm R) of ``INIT_SAMPLE`` rows, on which the restarts start as
``fit``'s would. With ``missing="marginalize"`` the mean is each feature's
mean over its observed entries, and the starts see the sample's missing
entries filled with it (as ``fit``'s do).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jgmm._compile import full_precision, jit
from jgmm._drivers.fit import batched_starts
from jgmm._engine.init import INIT_SAMPLE, check_init
from jgmm._engine.loop import report_progress
from jgmm._engine.passes import Chunks, add_sums, pass_sums
from jgmm._engine.planning import default_chunk_size, rows_within
from jgmm._engine.step import ON_COLLAPSE, Settings, best_of, collapse_references, em_step, fit_result, initial_state
from jgmm._maths.params import FitResult, GMMParams, shift_means
from jgmm._maths.validation import (
    MISSING,
    check_choice,
    check_covariance_type,
    check_int,
    check_key,
    check_n_components,
    check_not_traced,
    check_nonnegative,
    check_observed,
    float_dtype,
)

READ_BYTES = 16 << 20  # data read per chunk, by default


def _npy_chunks(path: Path, rows: int):
    """Chunks of a .npy file by plain reads into one buffer: the pages read
    are not mapped into the process, so memory stays at one chunk."""
    with open(path, "rb") as f:
        fmt = np.lib.format
        try:
            version = fmt.read_magic(f)
        except ValueError:
            raise ValueError(
                f"{path}: not a .npy file. fit_stream reads files written by np.save; an .npz archive's "
                "array can be written to one with np.save, or passed in memory."
            ) from None
        shape, fortran, dtype = (fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0)(f)
        if len(shape) != 2 or fortran or dtype.hasobject:
            raise ValueError(
                f"{path}: expected a 2-D C-ordered numeric array, got shape {shape}, dtype {dtype}"
                f"{', Fortran-ordered' if fortran else ''}. Write it with "
                "np.save(path, np.ascontiguousarray(X.reshape(len(X), -1), dtype=float))."
            )
        buffer = np.empty((rows, shape[1]), dtype)
        for start in range(0, shape[0], rows):
            n = min(rows, shape[0] - start)
            view = buffer[:n]
            if f.readinto(memoryview(view).cast("B")) != view.nbytes:
                raise ValueError(f"{path}: the file ends before its {shape[0]} rows.")
            yield view


def _reblocked(arrays, rows: int):
    """Arrays of any number of rows, cut and joined into chunks of ``rows``."""
    pending, count, D = [], 0, None
    for i, a in enumerate(arrays):
        a = np.asarray(a)
        if a.ndim != 2 or a.shape[1] != (D or a.shape[1]):
            raise ValueError(f"source array {i} has shape {a.shape}: expected (n, D) arrays with D = {D} as before.")
        D = a.shape[1]
        while a.shape[0]:
            take = a[: rows - count]
            pending.append(take)
            count += take.shape[0]
            a = a[take.shape[0] :]
            if count == rows:
                yield np.concatenate(pending) if len(pending) > 1 else pending[0]
                pending, count = [], 0
    if count:
        yield np.concatenate(pending)


class _Source:
    """A .npy path, an (N, D) array (a numpy memmap reads lazily) or a
    re-iterable of (n, D) arrays, read ``rows`` at a time."""

    def __init__(self, source):
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no such file.")
            self.chunks = functools.partial(_npy_chunks, path)
        elif isinstance(source, (np.ndarray, jax.Array)):
            source = np.asarray(source) if isinstance(source, jax.Array) else source
            if source.ndim != 2:
                raise ValueError(f"Expected a 2-D array of samples, got shape {source.shape}.")
            self.chunks = lambda rows: (source[i : i + rows] for i in range(0, source.shape[0], rows))
        elif hasattr(source, "__iter__"):
            if iter(source) is source:
                raise TypeError(
                    "source is an iterator, which can be read only once; EM reads the data once per iteration. "
                    "Pass a re-iterable (a list, or an object whose __iter__ starts over) or a .npy path."
                )
            self.chunks = lambda rows: _reblocked(source, rows)
        else:
            raise TypeError(f"source must be a .npy path, an array or a re-iterable of arrays, got {type(source)}.")


def _checked(chunk, start: int, missing: bool):
    """A chunk as read, checked: 2-D, numeric, at least one feature, finite
    (or NaN, a missing entry, when ``missing``)."""
    rows = f"rows {start}..{start + chunk.shape[0] - 1}"
    if chunk.ndim != 2 or chunk.shape[1] == 0 or not (np.issubdtype(chunk.dtype, np.number) or chunk.dtype == bool):
        raise ValueError(f"source {rows}: expected (n, D) numbers, D >= 1, got shape {chunk.shape}, dtype {chunk.dtype}.")
    if not np.all(np.isfinite(chunk)):
        if np.any(np.isinf(chunk)):
            raise ValueError(f"source {rows}: contains infinity.")
        if not missing:
            raise ValueError(
                f"source {rows}: contains NaN. Pass missing='marginalize' to treat NaN entries as missing values."
            )
    return chunk


class _FirstPass:
    """Count, column sums (of the observed entries) and a reservoir sample of
    the data, chunk by chunk."""

    def __init__(self, seed, missing: bool = False):
        self.rng = np.random.default_rng(seed)
        self.missing = missing
        self.N, self.total, self.observed, self.sample = 0, 0.0, 0, None

    def add(self, chunk):
        chunk = _checked(chunk, self.N, self.missing)
        n = chunk.shape[0]
        if self.sample is None:
            self.dtype = chunk.dtype
            self.sample = np.empty((INIT_SAMPLE, chunk.shape[1]), np.float64)
        if self.missing:
            self.total = self.total + np.nansum(chunk, axis=0, dtype=np.float64)
            self.observed = self.observed + np.sum(~np.isnan(chunk), axis=0)
        else:
            self.total = self.total + chunk.sum(axis=0, dtype=np.float64)
            self.observed = self.observed + n
        fill = max(0, min(INIT_SAMPLE - self.N, n))
        self.sample[self.N : self.N + fill] = chunk[:fill]
        # Algorithm R: row i (0-based) replaces a uniform slot j <= i if j < INIT_SAMPLE;
        # numpy's assignment keeps the last of repeated slots, as the sequential algorithm does.
        slots = self.rng.integers(0, self.N + np.arange(fill, n) + 1)
        keep = slots < INIT_SAMPLE
        self.sample[slots[keep]] = chunk[fill:][keep]
        self.N += n

    def result(self):
        """N, the float dtype to compute in, the (D,) mean (of each feature's
        observed entries) and the sample, in that dtype."""
        if not self.N:
            raise ValueError("source holds no samples.")
        check_observed(self.observed == 0, "the source")
        dtype = float_dtype(self.dtype)
        mean = (self.total / self.observed).astype(dtype)
        return self.N, dtype, mean, self.sample[: min(self.N, INIT_SAMPLE)].astype(dtype)


@jit(static_argnames=("chunk_size", "worst", "missing"))
def _chunk_sums(params, X, w, centre, *, chunk_size, worst, missing):
    """``pass_sums`` of every member (leading axis of params) on one chunk."""
    chunks = Chunks(X, w, centre, chunk_size, missing=missing)
    return jax.vmap(lambda p: pass_sums(p, chunks, worst))(params)


@jit
def _add(a, b):
    """Every member's ``add_sums``."""
    return jax.vmap(add_sums)(a, b)


@jit(static_argnames="max_iter")
def _step(s, sums, N, mask, settings, *, max_iter):
    """Every member's ``em_step`` from its sums over the N samples."""
    return jax.vmap(lambda s, sums, mask: em_step(s, sums, N, mask, settings, max_iter))(s, sums, mask)


def _padded(chunk, rows: int, centre, dtype):
    """(rows, D) data and (rows,) weights: the chunk, then weight-0 rows at
    the centre, so every chunk has the one shape the program is compiled for."""
    n = chunk.shape[0]
    X = np.empty((rows, chunk.shape[1]), dtype)
    X[:n] = chunk
    X[n:] = centre
    w = np.zeros(rows, dtype)
    w[:n] = 1
    return X, w


def _pass(source: _Source, rows: int, centre, params, *, chunk_size: int, worst: bool, missing: bool):
    """Every member's ``pass_sums`` over the whole source, and the rows read."""
    sums, previous, N = None, None, 0
    for chunk in source.chunks(rows):
        X, w = (jax.device_put(a) for a in _padded(chunk, rows, centre, centre.dtype))
        N += chunk.shape[0]
        new = _chunk_sums(params, X, w, centre, chunk_size=chunk_size, worst=worst, missing=missing)
        sums = new if sums is None else _add(sums, new)
        # Wait for the chunk before this one: at most two are in flight, and
        # the next is read while this one is computed.
        if previous is not None:
            jax.block_until_ready(previous)
        previous = sums
    return sums, N


@full_precision
def fit_stream(
    key: jax.Array,
    source: str | os.PathLike | ArrayLike | Iterable[ArrayLike],
    n_components: int,
    covariance_type: str = "full",
    *,
    n_init: int = 1,
    init: str | GMMParams = "kmeans",
    max_iter: int = 100,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    chunk_size: int | None = None,
    progress: int = 0,
    on_collapse: str = "freeze",
    missing: str = "error",
) -> FitResult:
    """Fit a Gaussian mixture by exact EM, reading the data once per iteration.

    Each iteration is one pass over the source summing the sufficient
    statistics chunk by chunk, so memory holds a few chunks, never the data.
    From the same starting parameters the result is ``jgmm.fit``'s on all
    the data in memory (up to rounding), with the same statuses and history.

    Args:
      key: a ``jax.random`` key (restarts as in ``fit``; the reservoir sample
        the restarts start from is drawn from it too).
      source: the (N, D) samples: a path to a .npy file (read with plain
        reads, never mapped), a numpy array or memmap, or a re-iterable of
        (n, D) arrays (e.g. a list, or an object whose ``__iter__`` reads the
        data from the start each time) of any sizes n.
      n_components: K >= 1, at most N.
      covariance_type: a registered family (``jgmm.family_names()``): "full",
        "tied", "diag", "spherical", or an alias such as mclust's "VVV".
      n_init, init, max_iter, tol, reg_covar, on_collapse: as in ``fit``.
        The k-means and random methods start from a uniform sample of
        ``INIT_SAMPLE`` rows drawn in the first pass.
      chunk_size: rows read and sent to the device at a time. Default: 16 MiB
        of data.
      progress: if > 0, print the iteration and log-likelihood on stderr
        every ``progress`` iterations.
      missing: "error" (NaN refused) or "marginalize" (NaN entries are
        missing values, marginalised as in ``fit``).

    Returns:
      FitResult of the best restart, as ``fit``.
    """
    check_not_traced("fit_stream", key, source, init, tol, reg_covar)
    key = check_key(key)
    source = _Source(source)
    covariance_type = check_covariance_type(covariance_type)
    n_init, max_iter = check_int(n_init, "n_init", 1), check_int(max_iter, "max_iter", 1)
    progress = check_int(progress, "progress", 0)
    on_collapse = check_choice(on_collapse, "on_collapse", ON_COLLAPSE)
    marginalize = check_choice(missing, "missing", MISSING) == "marginalize"
    tol, reg_covar = check_nonnegative(tol, "tol"), check_nonnegative(reg_covar, "reg_covar")
    if chunk_size is not None:
        chunk_size = check_int(chunk_size, "chunk_size", 1)
    if not isinstance(init, GMMParams):
        init = check_init(init)

    first = _FirstPass(np.asarray(jax.random.key_data(jax.random.fold_in(key, 1))), marginalize)
    for chunk in source.chunks(chunk_size or 1 << 16):
        first.add(chunk)
    N, dtype, centre, sample = first.result()
    D = sample.shape[1]
    K = check_n_components(n_components, N)
    rows = min(N, chunk_size) if chunk_size else rows_within(READ_BYTES, D * dtype.itemsize, N)
    tol, reg_covar = np.asarray(tol, dtype), np.asarray(reg_covar, dtype)

    ones = np.ones(sample.shape[0], dtype)
    if marginalize:
        sample = np.where(np.isnan(sample), centre, sample)
    params = batched_starts(key, sample, ones, init, n_init, K, covariance_type, reg_covar)
    centre = jnp.asarray(centre)
    params = shift_means(params, -centre)
    data_cov, collapse_reg, reseed_with = collapse_references(sample - centre, ones, covariance_type, reg_covar, on_collapse)
    settings = Settings(tol, reg_covar, data_cov, collapse_reg, reseed_with)
    worst = reseed_with is not None
    mask = jnp.ones((n_init, K), bool)
    state = initial_state(params, max_iter)
    # Rows of the fused pass within a chunk.
    scan_rows = default_chunk_size(rows, K, D, n_init, dtype.itemsize, None, covariance_type, marginalize)
    for t in range(1, max_iter + 2):
        sums, n = _pass(source, rows, centre, state.params, chunk_size=scan_rows, worst=worst, missing=marginalize)
        if n != N:
            raise ValueError(f"source held {N} samples in the first pass but {n} now; it must give the same data each pass.")
        state = _step(state, sums, np.asarray(N, dtype), mask, settings, max_iter=max_iter)
        if progress and t % progress == 0:
            report_progress("stream", t, state.log_likelihood, ~state.done, jnp.sum(mask, 1))
        if bool(jnp.all(state.done)):
            break
    best = best_of(fit_result(state))
    return best._replace(params=shift_means(best.params, centre))
