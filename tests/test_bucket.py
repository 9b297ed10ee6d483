"""Data of nearby sizes share compiled programs (jgmm._engine.bucket)."""

import jax
import numpy as np
import pytest
from conftest import Compilations, blobs

import jgmm
from jgmm._engine import bucket as _bucket
from jgmm.sklearn import GaussianMixture


def test_bucket_sizes_are_four_per_octave_and_at_most_25_percent_larger():
    sizes = np.array([_bucket.bucket_rows(N) for N in range(1, 5000)])
    N = np.arange(1, 5000)
    assert np.all(sizes >= N) and np.all(sizes[4:] < 1.25 * N[4:]) and np.all(sizes[:4] == N[:4])
    assert np.all(np.diff(sizes) >= 0)
    for size in map(int, np.unique(sizes[4:])):
        step = 1 << ((size - 1).bit_length() - 3)  # size in (4·step, 8·step]
        assert size % step == 0 and size // step in (5, 6, 7, 8), size
        assert _bucket.bucket_rows(size) == size
    assert len(np.unique(sizes[sizes > 1024])) == 4 * 2 + 1  # (1024, 4999]: two octaves and a bit


def test_fits_of_nearby_sizes_run_one_compiled_program():
    X, _, _ = blobs(11, N=1300, D=4, K=2)  # sizes no other test compiles for
    jgmm.fit(jax.random.key(0), X[:1170], 2, "diag")  # 1170 rows padded to 1280
    gm = GaussianMixture(2, covariance_type="diag", random_state=0).fit(X[:1200])
    with Compilations() as compiled:
        for N in (1201, 1250, 1280):
            jgmm.fit(jax.random.key(N), X[:N], 2, "diag")
            GaussianMixture(2, covariance_type="diag", random_state=N).fit(X[:N])
    assert compiled.count["_grid_program"] == 0
    with Compilations() as compiled:
        jgmm.fit(jax.random.key(0), X, 2, "diag")  # 1300 rows: the next size, 1408
    assert compiled.count["_grid_program"] == 1
    assert gm.converged_ and gm.means_.shape == (2, 4)


def test_selections_of_nearby_sizes_run_the_same_programs():
    X, _, _ = blobs(12, N=1250, D=3, K=2)
    jgmm.select(jax.random.key(0), X[:1170], range(1, 3), ("tied",), n_init=2)
    with Compilations() as compiled:
        selection = jgmm.select(jax.random.key(0), X, range(1, 3), ("tied",), n_init=2)
    assert compiled.count["_grid_program"] == compiled.count["seed_program"] == 0
    assert selection.best == ("tied", 2)


def unpadded(monkeypatch, call):
    """What ``call()`` returns with bucketing switched off."""
    with monkeypatch.context() as patch:
        patch.setattr(_bucket, "MAX_BUCKETED_ROWS", 0)
        return call()


def assert_same(a, b, rtol):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        x, y = np.asarray(x), np.asarray(y)
        if x.dtype.kind == "f":
            np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * np.nanmax(np.abs(y)))
        else:
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize(
    "covariance_type, init",
    [("full", "kmeans++"), ("tied", "k-means++"), ("diag", "random"), ("spherical", "random_from_data")],
)
def test_padded_fit_equals_the_unpadded_fit(x64, monkeypatch, covariance_type, init):
    X, _, _ = blobs(13, N=203, D=2, K=3)
    assert _bucket.bucket_rows(203) == 224
    fit = lambda: jgmm.fit(jax.random.key(0), X, 3, covariance_type, init=init, n_init=2, tol=1e-8)
    assert_same(fit(), unpadded(monkeypatch, fit), rtol=1e-10)


def test_padding_keeps_weights_missing_values_and_the_selection_table(x64, monkeypatch):
    X, _, _ = blobs(14, N=203, D=3, K=3)
    w = np.random.default_rng(0).integers(1, 4, 203).astype(float)
    X[np.random.default_rng(1).random(X.shape) < 0.1] = np.nan
    fit = lambda: jgmm.fit(jax.random.key(0), X, 3, sample_weight=w, missing="marginalize", tol=1e-8)
    assert_same(fit(), unpadded(monkeypatch, fit), rtol=1e-10)
    select = lambda: jgmm.select(jax.random.key(0), X[:200], range(1, 4), ("full", "diag"), missing="marginalize")
    padded, plain = select().to_dict(), unpadded(monkeypatch, select).to_dict()
    for column in ("total_log_likelihood", "bic", "n_iter", "status"):
        assert_same(padded[column], plain[column], rtol=1e-10)
