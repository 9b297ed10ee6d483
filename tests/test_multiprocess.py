"""Two processes under jax.distributed (CPU collectives over gloo on
127.0.0.1), each holding half of the data, fit what one process fits on all
of it: the functional API (tests/multiprocess_fit.py) and ``jgmm fit
--distributed``."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np

import jgmm

sys.path.insert(0, str(Path(__file__).parent))
from multiprocess_fit import data  # noqa: E402


def run_two(make_command, cwd):
    """Run process 0 and 1 (``make_command(i, port)``) to the end; their outputs."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    runs = [
        subprocess.Popen(make_command(i, port), env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
        for i in range(2)
    ]
    outputs = [run.communicate(timeout=600) for run in runs]
    for run, (_, stderr) in zip(runs, outputs):
        assert run.returncode == 0, stderr
    return [stdout for stdout, _ in outputs]


def test_two_processes_fit_what_one_fits_on_all_data(tmp_path):
    with jax.enable_x64(True):
        start = jgmm.fit(jax.random.key(1), data(), 3, init="random", max_iter=1).params
        jgmm.save(tmp_path / "start.npz", start)
        script = Path(__file__).with_name("multiprocess_fit.py")
        run_two(lambda i, port: [sys.executable, str(script), str(i), port, "start.npz", str(tmp_path)], tmp_path)
        one = jgmm.fit(jax.random.key(0), data(), 3, init=start, tol=0.0, max_iter=20).params
        for process in range(2):
            two = jgmm.load(tmp_path / f"fit_{process}.npz")
            for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(two)):
                np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-10, atol=1e-12)


def test_the_command_line_selects_across_processes(tmp_path):
    np.save(tmp_path / "X.npy", data())
    options = ["--k", "1:2", "--covariance-type", "tied", "--n-init", "2", "--x64", "--progress", "0"]
    stdout = run_two(
        lambda i, port: [sys.executable, "-m", "jgmm", "fit", "X.npy", *options, "--distributed",
                         "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(i)],
        tmp_path,
    )
    assert "chosen by BIC: covariance_type='tied'" in stdout[0]
    assert "chosen by BIC" not in stdout[1]  # process 0 reports and saves
    with jax.enable_x64(True):
        one = jgmm.select(jax.random.key(0), data(), range(1, 3), ("tied",), n_init=2).best_params
        two = jgmm.load(tmp_path / "model.npz")
        for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(two)):
            np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-10, atol=1e-12)
