import collections
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import jgmm

FAMILIES = ("full", "tied", "diag", "spherical")  # scikit-learn's four; tests/test_family.py and tests/test_eigen.py cover the others
MAX_MAPPINGS = 25_000
_MAPS = Path("/proc/self/maps")


def pytest_configure(config):
    """One persistent compilation cache (JAX's own, in a fresh temporary
    folder) for the whole run: the parallel test processes and the
    subprocesses the tests start inherit it, so a program one of them compiled
    is loaded, not compiled again, by the others. Each program is still
    compiled by XLA once per run; nothing outlives the run."""
    if "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return
    if not hasattr(config, "workerinput"):  # the main process makes the folder
        cache = tempfile.mkdtemp(prefix="jgmm-test-cache-")
        config._jgmm_cache = cache
        os.environ["JAX_COMPILATION_CACHE_DIR"] = cache
        os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.3"
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.3)


def pytest_unconfigure(config):
    cache = getattr(config, "_jgmm_cache", None)
    if cache:
        shutil.rmtree(cache, ignore_errors=True)


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after a test module when the process
    holds many memory mappings.

    On CPU every compiled program keeps a few hundred mappings of machine
    code; the suite compiles hundreds of programs, and Linux allows 65,530
    mappings per process (vm.max_map_count) before LLVM fails with "Cannot
    allocate memory" and the process dies. Clearing after every module would
    cost recompilations, so it happens only above ``MAX_MAPPINGS``."""
    yield
    if _MAPS.exists() and _MAPS.read_text().count("\n") > MAX_MAPPINGS:
        jax.clear_caches()


# Property-based tests (tests/test_properties.py): a few derandomised examples
# by default, a large budget with --hypothesis-profile=fuzz (experiments/fuzz.py).
settings.register_profile(
    "default", max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile(
    "fuzz", max_examples=int(os.environ.get("JGMM_FUZZ_EXAMPLES", 1000)), deadline=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def x64():
    """Run the test with 64-bit floats (scoped; the global setting is untouched)."""
    with jax.enable_x64(True):
        yield


def blobs(seed=0, N=300, D=2, K=3, spread=6.0):
    """Well-separated Gaussian clusters with random anisotropic covariances."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=spread, size=(K, D))
    labels = rng.integers(K, size=N)
    rotations = np.linalg.qr(rng.normal(size=(K, D, D)))[0]
    A = rotations * rng.uniform(0.5, 1.5, size=(K, 1, D))  # scales bounded away from 0
    X = centers[labels] + np.einsum("nde,ne->nd", A[labels], rng.normal(size=(N, D)))
    return X, labels, centers


@pytest.fixture
def make_blobs():
    return blobs


def full_covariances(cov, covariance_type, K, D):
    """(K, D, D) covariance matrices from a family-shaped covariance parameter."""
    if covariance_type == "full":
        return cov
    if covariance_type == "tied":
        return jnp.broadcast_to(cov, (K, D, D))
    if covariance_type == "diag":
        return jax.vmap(jnp.diag)(cov)
    return cov[:, None, None] * jnp.eye(D, dtype=cov.dtype)


COLLAPSING = ("full", "diag", "spherical")  # a tied covariance is shared: one component cannot collapse alone


def clump_start(covariance_type):
    """Two clusters and 12 copies of one point, and a start whose third
    component sits on the copies, so the next M-step collapses it to the
    reg_covar floor. Returns (X, start)."""
    rng = np.random.default_rng(5)
    X = np.concatenate([rng.normal(0, 1, (100, 2)), rng.normal(8, 1, (100, 2)), np.tile([[4.0, -6.0]], (12, 1))])
    labels = np.repeat([0, 1, 2], [100, 100, 12])
    return X, jgmm.m_step(np.eye(3)[labels], X, covariance_type)


class Compilations(logging.Handler):
    """Counts XLA compilations per program, by JAX's compile log."""

    PATTERN = re.compile(r"Finished XLA compilation of jit\((\w+)\)")

    def __init__(self):
        super().__init__()
        self.count = collections.Counter()

    def emit(self, record):
        match = self.PATTERN.search(record.getMessage())
        if match:
            self.count[match.group(1)] += 1

    def __enter__(self):
        self._log = jax.log_compiles()
        self._log.__enter__()
        logging.getLogger("jax").addHandler(self)
        return self

    def __exit__(self, *exc):
        logging.getLogger("jax").removeHandler(self)
        self._log.__exit__(*exc)
