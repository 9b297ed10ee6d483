"""The jgmm command line, run as a real process."""

import subprocess
import sys
from importlib.metadata import entry_points

import numpy as np

import jgmm


def run(*args):
    return subprocess.run([sys.executable, "-m", "jgmm", *args], capture_output=True, text=True, timeout=300)


def test_demo_prints_the_fitted_mixture():
    out = run("demo")
    assert out.returncode == 0, out.stderr
    assert "Old Faithful" in out.stdout
    assert "status: CONVERGED" in out.stdout
    for field in ("weight", "mean", "covariance", "mean log-likelihood", "BIC", "iterations"):
        assert field in out.stdout
    # Two well-known clusters: short eruptions after ~55 min, long after ~80 min.
    means = [
        [float(v) for v in line.split("[")[1].rstrip("]").split()]
        for line in out.stdout.splitlines()
        if line.startswith("  mean ")
    ]
    np.testing.assert_allclose(sorted(means), [[2.04, 54.5], [4.29, 80.0]], rtol=0.01)


def test_demo_rejects_bad_arguments_with_exit_code_2():
    out = run("demo", "--k", "0")
    assert out.returncode == 2
    assert "n_components" in out.stderr and "Traceback" not in out.stderr


def test_console_script_is_declared():
    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts.get("jgmm") == "jgmm.cli:main"


def test_bundled_data_is_old_faithful():
    X = jgmm.load_faithful()
    assert X.shape == (272, 2)
    np.testing.assert_allclose(X[0], [3.6, 79.0])
    assert 1.5 < X[:, 0].min() and X[:, 0].max() < 5.2
