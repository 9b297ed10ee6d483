"""One of two processes under jax.distributed, each holding half of the data;
run by tests/test_multiprocess.py. Usage: multiprocess_fit.py PROCESS_ID PORT
START.npz OUT_DIR. Fits from the parameters in START.npz and saves the
result as OUT_DIR/fit_<process>.npz."""

import sys
from pathlib import Path

import jax
import numpy as np

import jgmm


def data():
    rng = np.random.default_rng(0)
    return np.concatenate([rng.normal(0, 1, (151, 3)), rng.normal(5, 1, (150, 3))])


def main():
    process, port, start, out = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.config.update("jax_enable_x64", True)
    jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=process)
    half = np.array_split(data(), 2)[process]  # 151 and 150 rows
    X, w = jgmm.shard(half)
    assert X.shape == (302, 3) and not X.is_fully_addressable
    result = jgmm.fit(jax.random.key(0), X, 3, init=jgmm.load(start), sample_weight=w, tol=0.0, max_iter=20)
    jgmm.save(out / f"fit_{process}.npz", jax.device_get(result.params))
    jax.distributed.shutdown()


if __name__ == "__main__":
    main()
