"""Out-of-core EM (jgmm.fit_stream): the in-memory fit, read from files a chunk at a time."""

import jax
import numpy as np
import pytest
from conftest import FAMILIES, blobs, clump_start

import jgmm
from jgmm._drivers.stream import _FirstPass
from jgmm._engine.init import INIT_SAMPLE


def data(dtype=np.float64):
    X, _, _ = blobs(seed=3, N=3000, D=3, K=3)
    return X.astype(dtype)


def assert_same_fit(streamed, in_memory, rtol):
    assert int(streamed.n_iter) == int(in_memory.n_iter)
    assert int(streamed.status) == int(in_memory.status)
    np.testing.assert_allclose(streamed.history, in_memory.history, rtol=rtol)
    np.testing.assert_allclose(streamed.log_likelihood, in_memory.log_likelihood, rtol=rtol)
    for a, b in zip(jax.tree.leaves(streamed.params), jax.tree.leaves(in_memory.params)):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.max(np.abs(b)))


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_stream_equals_the_in_memory_fit_from_the_same_start(x64, tmp_path, covariance_type):
    X = data()
    start = jgmm.fit(jax.random.key(1), X, 3, covariance_type, init="random", max_iter=1).params
    in_memory = jgmm.fit(jax.random.key(0), X, 3, covariance_type, init=start, tol=1e-8)
    np.save(tmp_path / "X.npy", X)
    sources = {"path": tmp_path / "X.npy"}  # 3000 rows read 700 at a time
    if covariance_type == "full":
        sources["memmap"] = np.load(tmp_path / "X.npy", mmap_mode="r")
        sources["uneven list"] = [X[:1], X[1:1234], X[1234:2999], X[2999:]]
    for source in sources.values():
        streamed = jgmm.fit_stream(jax.random.key(0), source, 3, covariance_type, init=start, tol=1e-8, chunk_size=700)
        assert_same_fit(streamed, in_memory, rtol=1e-10)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_stream_with_missing_values_equals_the_in_memory_fit(x64, covariance_type):
    X = data()
    X[np.random.default_rng(0).random(X.shape) < 0.2] = np.nan
    X[7] = np.nan  # a row with nothing observed
    start = jgmm.fit(jax.random.key(1), X, 3, covariance_type, init="random", max_iter=1, missing="marginalize").params
    kwargs = dict(init=start, tol=1e-8, missing="marginalize")
    in_memory = jgmm.fit(jax.random.key(0), X, 3, covariance_type, **kwargs)
    streamed = jgmm.fit_stream(jax.random.key(0), X, 3, covariance_type, chunk_size=700, **kwargs)
    assert_same_fit(streamed, in_memory, rtol=1e-10)
    # Its own starts see the sample's missing entries filled: finite, and the
    # fit's likelihood is the observed data's.
    own = jgmm.fit_stream(jax.random.key(0), X, 3, covariance_type, chunk_size=700, missing="marginalize")
    assert np.all(np.isfinite(np.asarray(own.params.means)))
    np.testing.assert_allclose(
        own.log_likelihood, np.mean(np.asarray(jgmm.log_prob(own.params, X, "marginalize"))), rtol=1e-10
    )


def test_float32_stream_equals_the_in_memory_fit(tmp_path):
    X = data(np.float32)
    start = jgmm.fit(jax.random.key(1), X, 3, init="random", max_iter=1).params
    # The in-memory fit reads the same 700-row chunks: over five iterations EM
    # amplifies float32 rounding, and summing in other chunks moves the means
    # by 2e-5 relative, the stream from the same chunks by 1e-6.
    in_memory = jgmm.fit(jax.random.key(0), X, 3, init=start, tol=0.0, max_iter=5, chunk_size=700)
    np.save(tmp_path / "X.npy", X)
    streamed = jgmm.fit_stream(jax.random.key(0), tmp_path / "X.npy", 3, init=start, tol=0.0, max_iter=5, chunk_size=700)
    assert streamed.params.means.dtype == np.float32
    assert_same_fit(streamed, in_memory, rtol=1e-5)


@pytest.mark.parametrize("covariance_type", ["full", "spherical"])
def test_reseeding_in_a_stream_equals_the_in_memory_fit(x64, covariance_type):
    X, start = clump_start(covariance_type)  # the third component collapses and is re-seeded
    in_memory = jgmm.fit(jax.random.key(0), X, 3, covariance_type, init=start, on_collapse="reseed")
    chunks = [X[i : i + 50] for i in range(0, len(X), 50)]
    streamed = jgmm.fit_stream(
        jax.random.key(0), chunks, 3, covariance_type, init=start, on_collapse="reseed", chunk_size=64
    )
    assert int(in_memory.n_iter) > 1
    # The clump's variance sits at reg_covar, a difference of second moments
    # that cancel: rounding (summation order) shows at ~1e-9 there.
    assert_same_fit(streamed, in_memory, rtol=1e-8)


def test_restarts_from_the_reservoir_sample_find_the_clusters():
    X, _, centers = blobs(seed=4, N=20_000, D=2, K=3)
    result = jgmm.fit_stream(jax.random.key(0), X.astype(np.float32), 3, n_init=3, chunk_size=4096)
    assert result.status == jgmm.Status.CONVERGED
    found = np.asarray(result.params.means)
    assert np.max(np.min(np.linalg.norm(found[:, None] - centers[None], axis=-1), axis=0)) < 0.2
    assert float(result.log_likelihood) == pytest.approx(float(np.mean(jgmm.log_prob(result.params, X))), rel=1e-5)


def test_the_reservoir_sample_is_uniform_and_distinct():
    N = 5 * INIT_SAMPLE
    first = _FirstPass(seed=0)
    index = np.arange(N, dtype=np.float64)[:, None]
    for start in range(0, N, 3000):
        first.add(index[start : start + 3000])
    count, _, mean, sample = first.result()
    assert count == N and mean[0] == pytest.approx((N - 1) / 2)
    drawn = sample[:, 0]
    assert len(np.unique(drawn)) == INIT_SAMPLE
    # Each fifth of the rows holds a fifth of the sample (binomial sd ~ 36 here).
    per_fifth = np.bincount((drawn // INIT_SAMPLE).astype(int), minlength=5)
    assert np.all(np.abs(per_fifth - INIT_SAMPLE / 5) < 200)


def test_bad_sources_are_refused_with_the_reason(tmp_path):
    X = data()
    with pytest.raises(TypeError, match="iterator, which can be read only once"):
        jgmm.fit_stream(jax.random.key(0), iter([X]), 2)
    with pytest.raises(FileNotFoundError, match="absent.npy: no such file"):
        jgmm.fit_stream(jax.random.key(0), tmp_path / "absent.npy", 2)
    bad = X.copy()
    bad[1500, 1] = np.nan
    with pytest.raises(ValueError, match=r"source rows 1400\.\.2099: contains NaN\. Pass missing='marginalize'"):
        jgmm.fit_stream(jax.random.key(0), bad, 2, chunk_size=700)
    bad[1500, 1] = np.inf
    with pytest.raises(ValueError, match=r"source rows 1400\.\.2099: contains infinity"):
        jgmm.fit_stream(jax.random.key(0), bad, 2, chunk_size=700, missing="marginalize")
    bad[:, 1] = np.nan
    with pytest.raises(ValueError, match=r"Feature\(s\) \[1\] of the source have no observed value"):
        jgmm.fit_stream(jax.random.key(0), bad, 2, chunk_size=700, missing="marginalize")
    with pytest.raises(ValueError, match=r"source array 1 has shape \(10, 2\): expected \(n, D\) arrays with D = 3"):
        jgmm.fit_stream(jax.random.key(0), [X[:10], X[10:20, :2]], 2)
    with pytest.raises(ValueError, match="n_components"):
        jgmm.fit_stream(jax.random.key(0), [X[:3]], 5)
    np.savez(tmp_path / "X.npz", X=X)
    with pytest.raises(ValueError, match="X.npz: not a .npy file. fit_stream reads files written by np.save"):
        jgmm.fit_stream(jax.random.key(0), tmp_path / "X.npz", 2)
    np.save(tmp_path / "F.npy", np.asfortranarray(X))
    with pytest.raises(ValueError, match="F.npy: expected a 2-D C-ordered .*Fortran-ordered. Write it with np.save"):
        jgmm.fit_stream(jax.random.key(0), tmp_path / "F.npy", 2)

    class Shrinking:
        """A source that gives fewer rows each time it is read."""

        def __init__(self):
            self.rows = len(X)

        def __iter__(self):
            self.rows -= 10
            return iter([X[: self.rows]])

    with pytest.raises(ValueError, match="must give the same data each pass"):
        jgmm.fit_stream(jax.random.key(0), Shrinking(), 2, max_iter=3)
