"""Data parallelism: samples split across devices, statistics summed.

``shard`` places the data on devices along the sample axis; ``fit`` and
``select`` then read each device's rows on that device and sum the
sufficient statistics across devices, one all-reduce per EM iteration
(``jgmm._engine.passes.Chunks``). The parameters, small, are replicated.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from jax.typing import ArrayLike

from jgmm._engine.bucket import pad_rows
from jgmm._maths.validation import check_array, check_sample_weight

AXIS = "samples"


def shard(
    X: ArrayLike, sample_weight: ArrayLike | None = None, devices: Sequence[jax.Device] | None = None
) -> tuple[jax.Array, jax.Array]:
    """Split the samples of X (and their weights) across devices.

    N is padded to a multiple of the number of devices with copies of the
    last row at weight 0, which change no fit: pass both results to
    ``jgmm.fit`` or ``jgmm.select`` (``sample_weight=``).

    Under ``jax.distributed`` (several processes, e.g. one per host), each
    process passes the samples it holds and gets the global array of all
    processes' samples: every process's part is padded to the same length
    and lies on that process's devices.

    Args:
      X: (N, D) samples (this process's, when there are several).
      sample_weight: optional (N,) non-negative weights (default ones).
      devices: the devices to use (default: all of ``jax.devices()``, every
        process's).

    Returns:
      X: (N', D) jax.Array sharded along its first axis over a one-axis mesh
        named "samples"; N' = N rounded up to a multiple of the device count
        (with several processes: the padded parts of all processes).
      sample_weight: (N',) jax.Array sharded the same way.
    """
    devices = list(jax.devices() if devices is None else devices)
    X = np.asarray(check_array(X))
    N = X.shape[0]
    w = np.asarray(check_sample_weight(sample_weight, N, X.dtype))
    sharding = NamedSharding(Mesh(np.array(devices), (AXIS,)), P(AXIS))
    if jax.process_count() == 1:
        rows = N + -N % len(devices)
    else:
        local = sum(d.process_index == jax.process_index() for d in devices)
        rows = int(np.max(multihost_utils.process_allgather(np.array(N))))
        rows += -rows % local
    X, w = pad_rows(X, w, rows)
    return tuple(jax.make_array_from_process_local_data(sharding, a) for a in (X, w))


def data_mesh(X) -> Mesh | None:
    """The one-axis mesh X's samples are split along, or None when X is on
    one device (or not split along its samples).

    Raises:
      ValueError: a mesh of several axes, or N not a multiple of the number
        of devices.
    """
    sharding = getattr(X, "sharding", None)
    if not isinstance(sharding, NamedSharding) or not sharding.spec or sharding.spec[0] is None:
        return None
    mesh = sharding.mesh
    if mesh.size == 1:
        return None
    if len(mesh.axis_names) != 1:
        raise ValueError(
            f"X is split over a mesh with axes {mesh.axis_names}; jgmm reads data split along their samples "
            "over a one-axis mesh. Place the data with jgmm.shard."
        )
    if X.shape[0] % mesh.size:
        raise ValueError(
            f"X has {X.shape[0]} samples split over {mesh.size} devices; the number of samples must be a "
            "multiple of the number of devices. Place the data with jgmm.shard, which pads them."
        )
    return mesh
