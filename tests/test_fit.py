"""fit: the compiled EM loop, restarts, statuses, recompilation, scikit-learn parity."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import FAMILIES, blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

import jgmm
from jgmm._engine.step import best_member


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_log_likelihood_never_decreases(x64, covariance_type):
    X, _, _ = blobs(20, N=400, D=3, K=4, spread=2.0)
    result = jgmm.fit(jax.random.key(2), X, 4, covariance_type, init="random", max_iter=60, tol=0.0, reg_covar=0.0)
    n = int(result.n_iter)
    history = np.asarray(result.history)
    assert n == 60 or int(result.status) != jgmm.Status.MAX_ITER
    steps = np.diff(history[:n])
    assert np.all(steps >= -1e-10 * np.abs(history[1:n])), steps.min()
    assert np.all(np.isnan(history[n:]))
    assert float(result.log_likelihood) >= history[n - 1] - 1e-10 * abs(history[n - 1])


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_matches_scikit_learn_from_the_same_start(x64, covariance_type):
    X, _, _ = blobs(21, N=300, D=3, K=3, spread=3.0)
    start = jgmm.fit(jax.random.key(0), X, 3, covariance_type, init="random", max_iter=1).params
    n_iter = 8
    ours = jgmm.fit(jax.random.key(0), X, 3, covariance_type, init=start, max_iter=n_iter, tol=0.0)
    theirs = GaussianMixture(
        3,
        covariance_type=covariance_type,
        max_iter=n_iter,
        tol=0.0,
        weights_init=np.asarray(start.weights),
        means_init=np.asarray(start.means),
        precisions_init=np.asarray(start.precisions),
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs.fit(X)
    assert int(ours.n_iter) == theirs.n_iter_ == n_iter
    np.testing.assert_allclose(ours.params.weights, theirs.weights_, rtol=1e-8)
    np.testing.assert_allclose(ours.params.means, theirs.means_, rtol=1e-8)
    np.testing.assert_allclose(ours.params.covariances, theirs.covariances_, rtol=1e-8)
    np.testing.assert_allclose(ours.params.prec_chol, theirs.precisions_cholesky_, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(ours.history[n_iter - 1], theirs.lower_bound_, rtol=1e-10)
    np.testing.assert_allclose(ours.log_likelihood, theirs.score(X), rtol=1e-10)


def test_recovers_well_separated_clusters():
    X, labels, centers = blobs(22, N=600, D=2, K=3, spread=10.0)
    result = jgmm.fit(jax.random.key(0), X, 3, n_init=3)
    assert result.converged
    order = np.argsort(np.asarray(result.params.means)[:, 0])
    np.testing.assert_allclose(np.asarray(result.params.means)[order], centers[np.argsort(centers[:, 0])], atol=0.3)
    # Same partition up to a relabelling: each true cluster maps to one label.
    predicted = np.asarray(jgmm.predict(result.params, X))
    mapping = {k: np.bincount(predicted[labels == k]).argmax() for k in range(3)}
    assert sorted(mapping.values()) == [0, 1, 2]
    assert np.mean(predicted == np.vectorize(mapping.get)(labels)) > 0.98


def test_restarts_are_the_best_of_single_fits():
    X, _, _ = blobs(23, N=300, D=2, K=5, spread=2.5)
    key = jax.random.key(7)
    best = jgmm.fit(key, X, 5, init="random", n_init=4, max_iter=30)
    keys = [key] + [jax.random.fold_in(key, i) for i in range(1, 4)]
    singles = [jgmm.fit(k, X, 5, init="random", max_iter=30) for k in keys]
    lls = np.array([float(s.log_likelihood) for s in singles])
    # float32, summed in chunks of different sizes: equal to rounding.
    np.testing.assert_allclose(best.log_likelihood, lls.max(), rtol=1e-5)
    np.testing.assert_allclose(best.params.means, singles[int(lls.argmax())].params.means, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("init", ["kmeans", "k-means++", "random", "random_from_data", "hc+kmeans"])
def test_more_restarts_are_never_worse(init):
    """The first restarts of n_init = m are those of any smaller n_init (the
    same key), so the best never falls as n_init grows (to rounding: XLA
    may round a batch of other width differently)."""
    X, _, _ = blobs(28, N=300, D=2, K=5, spread=1.5)
    key = jax.random.key(5)
    lls = np.array([float(jgmm.fit(key, X, 5, init=init, n_init=m, max_iter=20).log_likelihood) for m in (1, 2, 3, 4, 6)])
    assert np.all(np.diff(lls) >= -4 * np.finfo(np.float32).eps * np.abs(lls[1:])), lls


def test_vmap_over_keys_equals_a_loop_of_fits():
    X, _, _ = blobs(24, N=200, D=2, K=3)
    keys = jax.random.split(jax.random.key(3), 3)
    batched = jax.vmap(lambda k: jgmm.fit(k, X, 3, "diag", max_iter=20))(keys)
    for i, k in enumerate(keys):
        single = jgmm.fit(k, X, 3, "diag", max_iter=20)
        np.testing.assert_allclose(batched.log_likelihood[i], single.log_likelihood, rtol=1e-6)
        np.testing.assert_allclose(batched.params.means[i], single.params.means, rtol=1e-5, atol=1e-5)
        assert int(batched.n_iter[i]) == int(single.n_iter)


def test_jit_equals_no_jit_for_a_whole_fit(x64):
    X, _, _ = blobs(25, N=60, D=2, K=2)
    # "random" starts: k-means++'s loops would run op by op for most of the time.
    compiled = jgmm.fit(jax.random.key(0), X, 2, "tied", init="random", max_iter=3)
    with jax.disable_jit():
        eager = jgmm.fit(jax.random.key(0), X, 2, "tied", init="random", max_iter=3)
    for a, b in zip(jax.tree.leaves(compiled), jax.tree.leaves(eager)):
        np.testing.assert_allclose(a, b, rtol=1e-10)


class CompileCounter:
    """Counts XLA backend compilations while active."""

    EVENT = "/jax/core/compile/backend_compile_duration"

    def __init__(self):
        self.count = 0
        self.active = False
        jax.monitoring.register_event_duration_secs_listener(self._listen)

    def _listen(self, event, duration, **kwargs):
        if self.active and event == self.EVENT:
            self.count += 1

    def __enter__(self):
        self.count, self.active = 0, True
        return self

    def __exit__(self, *exc):
        self.active = False


def test_no_recompilation_for_new_tol_reg_covar_data_or_key():
    X, _, _ = blobs(26, N=150, D=2, K=3)
    X = jnp.asarray(X, jnp.float32)
    X_shifted, X_scaled = X + 1.0, X * 2.0
    counter = CompileCounter()
    with counter:
        jgmm.fit(jax.random.key(0), X, 3, n_init=2)
    assert counter.count >= 1  # the counter sees real compilations
    with counter:
        jgmm.fit(jax.random.key(1), X, 3, n_init=2, tol=1e-5)
        jgmm.fit(jax.random.key(2), X, 3, n_init=2, reg_covar=1e-3)
        jgmm.fit(jax.random.key(3), X_shifted, 3, n_init=2, tol=0.5, reg_covar=0.1)
        jgmm.fit(jax.random.key(4), X_scaled, 3, n_init=2, sample_weight=np.ones(150))
        jgmm.fit(jax.random.key(5), np.asarray(X_scaled), 3, n_init=2, sample_weight=np.full(150, 2.0))
    assert counter.count == 0


def test_result_fields_and_float_types(make_blobs):
    X, _, _ = make_blobs(27, N=100)
    result = jgmm.fit(jax.random.key(0), X, 2, max_iter=50)
    assert isinstance(result, jgmm.FitResult)
    assert result.params.means.dtype == jnp.float32
    assert result.history.shape == (50,)
    assert bool(result.converged) == (int(result.status) == jgmm.Status.CONVERGED)
    with jax.enable_x64(True):
        assert jgmm.fit(jax.random.key(0), X, 2).params.means.dtype == jnp.float64
        assert jgmm.fit(jax.random.key(0), X.astype(np.float32), 2).params.means.dtype == jnp.float32


def test_max_iter_status_when_not_converged():
    X, _, _ = blobs(28, N=200, D=2, K=4, spread=1.0)
    result = jgmm.fit(jax.random.key(0), X, 4, init="random", max_iter=2, tol=0.0)
    assert int(result.status) == jgmm.Status.MAX_ITER and int(result.n_iter) == 2
    assert not bool(result.converged)


def duplicated_data():
    rng = np.random.default_rng(29)
    return np.concatenate([rng.normal(size=(60, 2)) * 3.0, np.tile([[1.5, -2.0]], (25, 1))])


@pytest.mark.parametrize("covariance_type", FAMILIES[:1] + FAMILIES[2:])
def test_component_collapsing_onto_duplicates_is_degenerate(covariance_type):
    X = duplicated_data()
    healthy = jgmm.fit(jax.random.key(0), X, 1, covariance_type)
    start = jgmm.GMMParams(
        jnp.array([0.7, 0.3]),
        jnp.array([[0.0, 0.0], [1.5, -2.0]]),
        jgmm.fit(jax.random.key(0), X, 2, covariance_type, max_iter=1).params.prec_chol,
        covariance_type,
    )
    start = jgmm.GMMParams(start.weights, start.means, start.prec_chol.at[1].multiply(1000.0), covariance_type)
    result = jgmm.fit(jax.random.key(0), X, 2, covariance_type, init=start)
    assert int(result.status) == jgmm.Status.DEGENERATE
    assert int(healthy.status) == jgmm.Status.CONVERGED
    assert all(np.all(np.isfinite(a)) for a in jax.tree.leaves(result.params))


def test_nonfinite_step_keeps_last_finite_parameters():
    # float32 data of scale 1e17 (within the range float32 second moments
    # allow), and a start so narrow that squared distances (~1e40) overflow:
    # the first E-step's log-likelihood is -inf.
    X = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32) * 1e17
    start = jgmm.GMMParams(jnp.array([1.0]), jnp.zeros((1, 2)), 1e3 * jnp.eye(2)[None], "full")
    result = jgmm.fit(jax.random.key(0), X, 1, init=start)
    assert int(result.status) == jgmm.Status.NONFINITE
    assert int(result.n_iter) == 1
    np.testing.assert_allclose(result.params.weights, start.weights)
    np.testing.assert_allclose(result.params.prec_chol, start.prec_chol, rtol=1e-6)
    np.testing.assert_allclose(result.params.means, start.means, atol=1e-6 * 1e17)  # centring round trip


def test_best_member_prefers_healthy_fits_over_higher_degenerate_ones():
    status = jnp.array([jgmm.Status.DEGENERATE, jgmm.Status.CONVERGED, jgmm.Status.MAX_ITER, jgmm.Status.NONFINITE])
    ll = jnp.array([50.0, -3.0, -2.0, jnp.nan])
    batch = jgmm.FitResult(None, ll, jnp.zeros(4), status == 0, status, jnp.zeros((4, 1)))
    assert int(best_member(batch)) == 2
    only_bad = batch._replace(status=jnp.array([3, 3, 2, 2]))
    assert int(best_member(only_bad)) == 0


@pytest.mark.parametrize("init", ["kmeans++", "k-means++", "random", "random_from_data"])
def test_every_init_method_fits(init):
    X, _, _ = blobs(30, N=200, D=2, K=3, spread=8.0)
    result = jgmm.fit(jax.random.key(1), X, 3, init=init, n_init=2)
    assert int(result.status) == jgmm.Status.CONVERGED
    assert np.isfinite(float(result.log_likelihood))


def test_far_from_origin_float32_matches_float64():
    X, _, _ = blobs(31, N=400, D=2, K=2, spread=4.0)
    X = (X + 1e4).astype(np.float32).astype(np.float64)  # same data in both precisions
    with jax.enable_x64(True):
        start64 = jgmm.fit(jax.random.key(0), X, 2, max_iter=1).params
        f64 = jgmm.fit(jax.random.key(0), X, 2, init=start64, max_iter=10, tol=0.0)
        f64_means = np.asarray(f64.params.means)
        f64_covs = np.asarray(f64.params.covariances)
    start32 = jax.tree.map(lambda a: jnp.asarray(np.asarray(a), jnp.float32), start64)
    f32 = jgmm.fit(jax.random.key(0), X.astype(np.float32), 2, init=start32, max_iter=10, tol=0.0)
    np.testing.assert_allclose(f32.params.covariances, f64_covs, rtol=1e-3, atol=1e-3 * np.abs(f64_covs).max())
    np.testing.assert_allclose(f32.params.means, f64_means, rtol=1e-6)


def test_progress_reports_from_the_compiled_loop_without_changing_results(capfd):
    X, _, _ = blobs(23, N=300, D=2, K=3, spread=2.0)
    quiet = jgmm.fit(jax.random.key(0), X, 3, tol=0.0, max_iter=12)
    assert capfd.readouterr().err == ""
    loud = jgmm.fit(jax.random.key(0), X, 3, tol=0.0, max_iter=12, progress=5)
    lines = capfd.readouterr().err.splitlines()
    assert [line.split(": iteration ")[1].split(",")[0] for line in lines] == ["5", "10"]
    assert all(line.startswith("jgmm full K=3: iteration") and "1/1 fits running" in line for line in lines)
    reported = float(lines[-1].split("log-likelihood ")[1].split(",")[0])
    assert reported == pytest.approx(float(np.max(loud.history[9])), abs=1e-5)
    # Another compiled program (the callback), so equal up to float32 rounding.
    np.testing.assert_allclose(loud.params.means, quiet.params.means, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_chunked_pass_equals_unchunked(x64, covariance_type):
    X, _, _ = blobs(24, N=1000, D=3, K=3, spread=3.0)
    kwargs = dict(tol=0.0, max_iter=15)  # one restart: no near-tie between restarts to break
    whole = jgmm.fit(jax.random.key(0), X, 3, covariance_type, chunk_size=len(X), **kwargs)
    for chunk_size in (7,):  # 1000 = 142·7 + 6: the last chunk overlaps the one before it
        chunked = jgmm.fit(jax.random.key(0), X, 3, covariance_type, chunk_size=chunk_size, **kwargs)
        for a, b in zip(jax.tree.leaves(chunked), jax.tree.leaves(whole)):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
