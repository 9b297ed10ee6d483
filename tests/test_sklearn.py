"""GaussianMixture: the scikit-learn estimator on jgmm's core."""

import pickle
import subprocess
import sys
import warnings

import jax
import numpy as np
import pytest
import sklearn.mixture
from conftest import COLLAPSING, FAMILIES, blobs, clump_start
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.utils.estimator_checks import check_estimator

import jgmm
from jgmm.sklearn import GaussianMixture


def test_passes_scikit_learn_estimator_checks():
    check_estimator(GaussianMixture())


def starting_point(covariance_type, X, K=3):
    """sklearn-style *_init arrays from a rough (one-iteration) fit."""
    with jax.enable_x64(True):
        start = jgmm.fit(jax.random.key(0), X, K, covariance_type, init="random", max_iter=1).params
        return dict(
            weights_init=np.asarray(start.weights),
            means_init=np.asarray(start.means),
            precisions_init=np.asarray(start.precisions),
        )


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_matches_scikit_learn_from_the_same_start(covariance_type):
    X, _, _ = blobs(31, N=300, D=3, K=3, spread=3.0)
    kwargs = dict(covariance_type=covariance_type, max_iter=10, tol=1e-6, **starting_point(covariance_type, X))
    ours = GaussianMixture(3, **kwargs)
    theirs = sklearn.mixture.GaussianMixture(3, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X)
        theirs.fit(X)
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.converged_ == theirs.converged_
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-8, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(ours.lower_bound_, theirs.lower_bound_, rtol=1e-10)
    np.testing.assert_allclose(ours.lower_bounds_, theirs.lower_bounds_, rtol=1e-10)
    np.testing.assert_allclose(ours.score_samples(X), theirs.score_samples(X), rtol=1e-10)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-10)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    np.testing.assert_allclose(ours.bic(X), theirs.bic(X), rtol=1e-10)
    np.testing.assert_allclose(ours.aic(X), theirs.aic(X), rtol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_keeps_the_input_dtype_without_touching_jax_config(dtype):
    X, _, _ = blobs(32, N=200)
    model = GaussianMixture(3, random_state=0).fit(X.astype(dtype))
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        assert getattr(model, name).dtype == dtype, name
    assert model.score_samples(X.astype(dtype)).dtype == dtype
    assert model.predict_proba(X.astype(dtype)).dtype == dtype
    assert not jax.config.jax_enable_x64


def test_float64_fit_is_more_precise_than_float32():
    X, _, _ = blobs(33, N=300, D=3, spread=3.0)
    kwargs = dict(max_iter=10, tol=0.0, **starting_point("full", X))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reference = sklearn.mixture.GaussianMixture(3, **kwargs).fit(X)
        error = {
            dtype: np.max(np.abs(GaussianMixture(3, **kwargs).fit(X.astype(dtype)).means_ - reference.means_))
            for dtype in (np.float32, np.float64)
        }
    assert error[np.float64] < 1e-10 < error[np.float32] < 1e-3


def test_restarts_pick_the_best_and_are_reproducible():
    X, _, _ = blobs(34, N=400, K=4, spread=3.0)
    one = [GaussianMixture(4, init_params="random", random_state=s).fit(X).lower_bound_ for s in range(3)]
    best = GaussianMixture(4, init_params="random", n_init=5, random_state=0).fit(X)
    again = GaussianMixture(4, init_params="random", n_init=5, random_state=0).fit(X)
    assert best.lower_bound_ >= min(one) - 1e-6
    np.testing.assert_array_equal(best.means_, again.means_)


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
def test_every_init_method(init_params):
    X, labels, centers = blobs(35, N=300, spread=10.0)
    model = GaussianMixture(3, init_params=init_params, n_init=5, random_state=0).fit(X)
    assert model.converged_
    if init_params == "random":  # every start near the global mean: no recovery promised
        return
    found = np.sort(np.round(model.means_[:, 0]))
    np.testing.assert_allclose(found, np.sort(np.round(centers[:, 0])), atol=1.0)


def test_means_init_alone_fixes_the_component_order():
    X, _, centers = blobs(36, N=600, spread=10.0)
    order = [2, 0, 1]
    model = GaussianMixture(3, means_init=centers[order] + 0.3, n_init=2, random_state=0).fit(X)
    np.testing.assert_allclose(model.means_, centers[order], atol=0.5)


def test_sample_weight_equals_repeated_rows():
    X, _, _ = blobs(37, N=120)
    counts = np.random.default_rng(0).integers(0, 4, size=len(X))
    kwargs = dict(tol=0.0, max_iter=20, **starting_point("full", X))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        weighted = GaussianMixture(3, **kwargs).fit(X, sample_weight=counts)
        repeated = GaussianMixture(3, **kwargs).fit(np.repeat(X, counts, axis=0))
    np.testing.assert_allclose(weighted.means_, repeated.means_, rtol=1e-8)
    np.testing.assert_allclose(weighted.lower_bound_, repeated.lower_bound_, rtol=1e-8)


def test_warm_start_continues_from_the_last_fit():
    X, _, _ = blobs(38, N=300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = GaussianMixture(3, warm_start=True, max_iter=2, tol=0.0, init_params="random", random_state=0)
        first = model.fit(X).lower_bound_
        second = model.fit(X).lower_bound_
    cold = GaussianMixture(3, max_iter=2, tol=0.0, init_params="random", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        assert cold.fit(X).lower_bound_ == pytest.approx(first)
    assert second > first


@pytest.mark.parametrize(
    "change, message",
    [(dict(n_components=2), "n_components=2, covariance_type='full' on 2 features"),
     (dict(covariance_type="diag"), "n_components=3, covariance_type='diag' on 2 features")],
)
def test_warm_start_refuses_another_model(change, message):
    """scikit-learn silently keeps the previous model's K; jgmm says what differs."""
    X, _, _ = blobs(40, N=200)
    model = GaussianMixture(3, warm_start=True, random_state=0).fit(X)
    with pytest.raises(ValueError, match=f"previous fit, which has n_components=3.*{message}.*warm_start=False"):
        model.set_params(**change).fit(X)


def test_convergence_warning_when_max_iter_is_reached():
    X, _, _ = blobs(39, N=300, spread=2.0)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        model = GaussianMixture(3, max_iter=1, tol=0.0, random_state=0).fit(X)
    assert not model.converged_ and model.status_ == jgmm.Status.MAX_ITER


def test_pickle_round_trip_predicts_identically():
    X, _, _ = blobs(40, N=200)
    model = GaussianMixture(3, covariance_type="diag", random_state=0).fit(X)
    clone = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(clone.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(clone.score_samples(X), model.score_samples(X))


def test_sample_and_feature_names():
    pandas = pytest.importorskip("pandas")
    X, _, _ = blobs(41, N=200)
    frame = pandas.DataFrame(X, columns=["height", "width"])
    model = GaussianMixture(3, random_state=0).fit(frame)
    np.testing.assert_array_equal(model.feature_names_in_, ["height", "width"])
    samples, labels = model.sample(50)
    assert samples.shape == (50, 2) and labels.shape == (50,)
    assert set(np.unique(labels)) <= {0, 1, 2}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n_components=0), "'n_components' parameter .* must be an int in the range \\[1, inf\\)"),
        (dict(covariance_type="banana"), "'covariance_type' parameter of GaussianMixture must be a str among .*'full'"),
        (dict(n_components=500), "Expected n_samples >= n_components"),
        (dict(precisions_init=-np.ones((3, 2, 2))), "'full precision' should be symmetric, positive-definite"),
        (dict(covariance_type="diag", precisions_init=np.zeros((3, 2))), "'diag precision' should be positive"),
        (dict(max_iter=-1), "'max_iter' parameter.* must be an int in the range \\[0, inf\\)"),
        (dict(reg_covar=-1.0), "'reg_covar' parameter.* must be a float in the range \\[0.0, inf\\)"),
    ],
)
def test_invalid_parameters_are_reported(kwargs, message):
    X, _, _ = blobs(42, N=200)
    with pytest.raises(ValueError, match=message) as error:
        GaussianMixture(**{"n_components": 3, **kwargs}).fit(X)
    with pytest.raises(ValueError) as theirs:
        sklearn.mixture.GaussianMixture(**{"n_components": 3, **kwargs}).fit(X)
    assert type(error.value) is type(theirs.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(weights_init=np.full((3, 1), 1 / 3)),
        dict(weights_init=[0.5, 0.5, 0.5]),
        dict(weights_init=[1.5, -0.25, -0.25]),
        dict(weights_init=np.array([0.5, 0.25, 0.2], np.float32)),
        dict(means_init=np.zeros((2, 2))),
        dict(precisions_init=np.ones((3, 2))),
        dict(precisions_init=-np.ones((3, 2, 2))),
        dict(covariance_type="tied", precisions_init=-np.eye(2)),
        dict(covariance_type="diag", precisions_init=np.zeros((3, 2))),
        dict(covariance_type="spherical", precisions_init=np.ones(2)),
    ],
)
def test_invalid_starts_get_scikit_learns_messages(kwargs):
    X, _, _ = blobs(42, N=200)
    messages = []
    for Estimator in (sklearn.mixture.GaussianMixture, GaussianMixture):
        with pytest.raises(ValueError) as error:
            Estimator(3, **kwargs).fit(X)
        messages.append(str(error.value))
    assert messages[1] == messages[0]


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data", "hc"])
def test_lower_bound_never_drops_as_n_init_grows(init_params):
    X, _, _ = blobs(28, N=300, K=5, spread=1.5)
    bounds = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for n_init in (1, 2, 3, 4, 6):
            bounds.append(GaussianMixture(5, init_params=init_params, n_init=n_init, max_iter=20, random_state=0).fit(X).lower_bound_)
    bounds = np.array(bounds)  # to rounding: a batch of other width may round differently
    assert np.all(np.diff(bounds) >= -4 * np.finfo(np.float32).eps * np.abs(bounds[1:])), bounds


def test_warm_start_one_iteration_at_a_time_is_scikit_learns():
    X, _, _ = blobs(28, N=300, K=5, spread=1.5)
    X = X.astype(np.float64)
    start = GaussianMixture(5, max_iter=2, random_state=0).fit(X)
    given = dict(weights_init=start.weights_, means_init=start.means_, precisions_init=start.precisions_)
    runs = []
    for Estimator in (sklearn.mixture.GaussianMixture, GaussianMixture):
        model, steps = Estimator(5, warm_start=True, max_iter=1, tol=1e-3, **given), []
        for _ in range(25):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                model.fit(X)
            warned = any(issubclass(c.category, ConvergenceWarning) for c in caught)
            steps.append((model.lower_bound_, model.converged_, warned, model.n_iter_))
        runs.append(steps)
    theirs, ours = (np.array(r, dtype=float) for r in runs)
    np.testing.assert_allclose(ours[:, 0], theirs[:, 0], rtol=1e-8)
    np.testing.assert_array_equal(ours[:, 1:], theirs[:, 1:])  # converged, warned, n_iter
    assert ours[:, 1].any() and not ours[0, 1]  # it does converge, later
    assert np.all(np.diff(ours[:, 0]) >= 0)


def test_max_iter_0_fits_the_start_as_scikit_learn_does():
    X, _, _ = blobs(43, N=200)
    # (scikit-learn 1.9 fails on max_iter=0 with precisions_init given: no covariances_)
    start = dict(weights_init=[0.2, 0.3, 0.5], means_init=X[:3])
    fitted = []
    for Estimator in (sklearn.mixture.GaussianMixture, GaussianMixture):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # neither warns: the user asked for the start
            fitted.append(Estimator(3, max_iter=0, n_init=2, random_state=0, **start).fit(X))
    theirs, ours = fitted
    for name in ("n_iter_", "converged_", "lower_bound_", "lower_bounds_"):
        assert getattr(ours, name) == getattr(theirs, name), name
    for name in ("weights_", "means_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-6)
    assert ours.predict(X).shape == (200,)
    # without a given start, the fit is where EM starts: one EM step from it is the max_iter=1 fit
    zero = GaussianMixture(3, max_iter=0, random_state=0).fit(X)
    with pytest.warns(ConvergenceWarning):
        one = GaussianMixture(3, max_iter=1, random_state=0).fit(X)
        again = GaussianMixture(3, max_iter=1, weights_init=zero.weights_, means_init=zero.means_,
                                precisions_init=zero.precisions_).fit(X)
    assert zero.n_iter_ == 0 and one.n_iter_ == 1
    np.testing.assert_allclose(again.means_, one.means_, rtol=1e-4, atol=1e-5)


def test_jgmm_imports_without_scikit_learn():
    code = (
        "import sys; sys.modules['sklearn'] = None\n"
        "import numpy as np, jax, jgmm\n"
        "r = jgmm.fit(jax.random.key(0), np.random.default_rng(0).normal(size=(50, 2)), 2)\n"
        "assert r.params.means.shape == (2, 2)\n"
        "try:\n    jgmm.GaussianMixture\nexcept ImportError:\n    print('estimator needs sklearn')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "estimator needs sklearn" in out


def test_verbose_reports_progress_on_stderr(capfd):
    X, _, _ = blobs(43, N=200, spread=2.0)
    GaussianMixture(3, max_iter=6, tol=0.0, verbose=1, verbose_interval=3, random_state=0).fit(X)
    lines = capfd.readouterr().err.splitlines()
    assert [line.split(": iteration ")[1].split(",")[0] for line in lines] == ["3", "6"]


@pytest.mark.parametrize("covariance_type", COLLAPSING)
def test_a_collapsing_component_is_kept_as_scikit_learn_keeps_it(covariance_type):
    """By default (on_collapse="keep") a component on duplicated points goes
    on at the reg_covar floor, as scikit-learn's: the same fit, no warning."""
    X, start = clump_start(covariance_type)
    given = dict(weights_init=np.asarray(start.weights), means_init=np.asarray(start.means),
                 precisions_init=np.asarray(start.precisions), covariance_type=covariance_type)
    theirs = sklearn.mixture.GaussianMixture(3, **given).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours = GaussianMixture(3, **given).fit(X)
    assert (ours.n_iter_, ours.converged_) == (theirs.n_iter_, theirs.converged_)
    assert ours.lower_bound_ == pytest.approx(theirs.lower_bound_, rel=1e-8)  # a 1e-6 variance amplifies rounding
    np.testing.assert_allclose(ours.weights_, theirs.weights_, atol=1e-12)
    np.testing.assert_allclose(ours.covariances_, theirs.covariances_, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("covariance_type", COLLAPSING)
def test_on_collapse_freeze_drops_the_component_with_scikit_learns_words(covariance_type):
    X, start = clump_start(covariance_type)
    model = GaussianMixture(
        3, covariance_type=covariance_type, weights_init=np.asarray(start.weights), means_init=np.asarray(start.means),
        precisions_init=np.asarray(start.precisions), on_collapse="freeze",
    )
    with pytest.warns(ConvergenceWarning, match="ill-defined empirical covariance .* Try to decrease the number of components"):
        model.fit(X)
    assert model.status_ == jgmm.Status.DEGENERATE and model.weights_[2] == 0.0
    assert np.all(np.isfinite(model.score_samples(X)))


def test_a_singular_covariance_without_regularisation_is_scikit_learns_error():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (100, 2)), rng.normal(8, 1, (100, 2)), np.tile([[30.0, 30.0]], (5, 1))])
    messages = []
    for Estimator in (sklearn.mixture.GaussianMixture, GaussianMixture):
        with pytest.raises(ValueError) as error:
            Estimator(3, reg_covar=0.0, random_state=0).fit(X)
        messages.append(str(error.value))
    assert messages[1] == messages[0]
    with pytest.warns(ConvergenceWarning, match="degenerate"):  # regularised, "freeze" drops the component
        GaussianMixture(3, random_state=0, on_collapse="freeze").fit(X)


def test_every_restart_failing_is_scikit_learns_error():
    X = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    far = np.full((2, 2), 1e20, np.float32)  # every squared distance overflows float32
    with pytest.raises(ValueError, match="Fitting the mixture model failed because some components have ill-defined"):
        GaussianMixture(2, means_init=far).fit(X)


def test_bad_data_and_use_before_fit_in_scikit_learns_words():
    X, _, _ = blobs(43, N=100)
    with pytest.raises(NotFittedError):
        GaussianMixture(2).predict(X)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        GaussianMixture(2).fit(np.where(np.arange(200).reshape(100, 2) == 5, np.nan, X))
    model = GaussianMixture(2, random_state=0).fit(X)
    wider = np.c_[X, X[:, :1]]
    for method in (model.predict, model.predict_proba, model.score, model.score_samples):
        with pytest.raises(ValueError, match="X has 3 features, but GaussianMixture is expecting 2 features as input."):
            method(wider)
