"""Planning a program: rows per chunk from a work budget, cells side by side."""

from __future__ import annotations

import jax

from jgmm._maths.families import family
from jgmm._maths.validation import check_int


WORK_BYTES = 4 << 20  # CPU: a chunk's work stays in cache (docs/design.md)
ACCELERATOR_WORK_BYTES = 32 << 20  # GPU/TPU: fewer, wider steps of the scan
CELLS_PER_BATCH_CPU = 2
MIN_CHUNK = 1024


def default_cells_per_batch(n_cells: int) -> int:
    """Cells (K values) fitted side by side: all on an accelerator; a few on
    CPU, where running cells one after another lets each stop as soon as its
    own restarts have converged."""
    return n_cells if jax.default_backend() != "cpu" else min(n_cells, CELLS_PER_BATCH_CPU)


def _rows_per_device(N: int, mesh) -> int:
    return N if mesh is None else N // mesh.size


def check_chunk_size(chunk_size, N: int, mesh=None) -> int | None:
    """``chunk_size`` as given (None, or an int >= 1), capped at the rows
    per device."""
    return None if chunk_size is None else min(check_int(chunk_size, "chunk_size", 1), _rows_per_device(N, mesh))


def default_chunk_size(
    N: int, K: int, D: int, n_members: int, itemsize: int, mesh=None, covariance_type="full", missing=False
) -> int:
    """Rows per chunk so that one chunk's work arrays fit in ``WORK_BYTES``
    (``ACCELERATOR_WORK_BYTES`` off CPU); at least ``MIN_CHUNK`` rows, at
    most the rows per device.

    Per member and row the E-step holds what the family says
    (``Family.row_work``): K·D numbers for full covariances (the distances
    before their sum over D), K + D for tied, diag and spherical; with
    missing values K·D for diagonal covariances and K·D² for the others
    (``jgmm._maths.missing``). Sized to the work (not K·D for every family), diag
    and spherical read 4-16x longer chunks, 15-30% faster on CPU at
    N = 200,000, D = K = 32.
    """
    per_row = family(covariance_type).row_work(K, D, missing)
    budget = WORK_BYTES if jax.default_backend() == "cpu" else ACCELERATOR_WORK_BYTES
    return rows_within(budget, n_members * per_row * itemsize, _rows_per_device(N, mesh))


def rows_within(budget: int, row_bytes: int, N: int) -> int:
    """The largest power of two of rows of ``row_bytes`` within ``budget``
    bytes, at least ``MIN_CHUNK`` and at most N."""
    rows = budget // max(1, row_bytes)
    return int(min(N, max(MIN_CHUNK, 1 << max(int(rows).bit_length() - 1, 0))))
