"""Data padded to a few row counts, so that data of many sizes share programs.

A program is compiled for each shape of X: about a second or two for a fit
on CPU, several on a GPU, against milliseconds for fitting a few thousand
rows. Data sets of many sizes (the groups of a data set, cross-validation
folds, the estimator in a pipeline) would each compile anew. ``fit`` and
``select`` pad N up to the next of four sizes per octave (5, 6, 7 or 8
times a power of two) with copies of the last row at weight 0, which change
no statistic, start or log-likelihood (``jgmm.shard`` pads the same way for
devices): every N between two such sizes runs the same program, on at most
25% more rows. Only data of at most ``MAX_BUCKETED_ROWS`` rows are padded,
where compilation outweighs the fit and the copy is small, and only data
whose values are known (inside a caller's jit, vmap or grad the caller's
shapes stand).
"""

from __future__ import annotations

import jax
import numpy as np

from jgmm._maths.validation import is_tracer

MAX_BUCKETED_ROWS = 1 << 16


def bucket_rows(N: int) -> int:
    """The smallest m·2^e >= N with m in 5..8 (N itself for N <= 4)."""
    if N <= 4:
        return N
    step = 1 << ((N - 1).bit_length() - 3)
    return -(-N // step) * step


def pad_rows(X: np.ndarray, w: np.ndarray, rows: int):
    """X (N, D) and w (N,) padded to ``rows`` rows with copies of the last
    row at weight 0."""
    pad = rows - X.shape[0]
    return np.concatenate([X, np.repeat(X[-1:], pad, axis=0)]), np.concatenate([w, np.zeros(pad, w.dtype)])


def bucketed(X: jax.Array, w: jax.Array):
    """(X, w) padded to ``bucket_rows(N)`` rows (module doc), on the host
    (no program compiled for it) and put back where they were; or as given:
    more than ``MAX_BUCKETED_ROWS`` rows, traced, split over devices
    (``jgmm.shard`` chose their rows), or already of that size."""
    N = X.shape[0]
    if N > MAX_BUCKETED_ROWS or is_tracer(X) or is_tracer(w) or len(X.sharding.device_set) > 1:
        return X, w
    rows = bucket_rows(N)
    if rows == N:
        return X, w
    padded = pad_rows(np.asarray(X), np.asarray(w), rows)
    return tuple(jax.device_put(a, b.sharding if b.committed else None) for a, b in zip(padded, (X, w)))
