"""BayesianGaussianMixture: scikit-learn's variational estimator on jgmm's core,
run side by side with scikit-learn's."""

import pickle
import warnings

import numpy as np
import pytest
import sklearn.mixture
from conftest import blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import check_estimator

from jgmm.sklearn import BayesianGaussianMixture

PARAMETERS = ("weight_concentration", "mean_precision", "means", "degrees_of_freedom", "precisions_cholesky")


def test_passes_scikit_learn_estimator_checks():
    check_estimator(BayesianGaussianMixture())


def _fitted(covariance_type="full", prior_type="dirichlet_process", dtype=np.float64, **kwargs):
    X = blobs(1, N=300)[0].astype(dtype)
    model = BayesianGaussianMixture(n_components=4, covariance_type=covariance_type, random_state=0,
                                    weight_concentration_prior_type=prior_type, max_iter=300, **kwargs)
    return X, model.fit(X)


@pytest.mark.parametrize("covariance_type, prior_type", [
    ("full", "dirichlet_process"), ("tied", "dirichlet_distribution"),
    ("diag", "dirichlet_distribution"), ("spherical", "dirichlet_process"),
])
def test_predicts_and_scores_as_scikit_learn_does_from_the_same_posterior(covariance_type, prior_type):
    X, ours = _fitted(covariance_type, prior_type)
    theirs = sklearn.mixture.BayesianGaussianMixture(
        n_components=4, covariance_type=covariance_type, weight_concentration_prior_type=prior_type, random_state=0,
        max_iter=300,
    ).fit(X)
    # The same attributes, of the same types and shapes.
    # (scikit-learn's tied lower bound is a (1,) array, jgmm's a float like the others'.)
    for name in [n for n in vars(theirs) if n.endswith("_") and not n.startswith("_")]:
        if name == "lower_bound_" and covariance_type == "tied":
            continue
        a, b = getattr(ours, name), getattr(theirs, name)
        assert type(a) is type(b) or (np.ndim(a) == np.ndim(b) == 0), name
        assert name == "lower_bounds_" or np.shape(a) == np.shape(b), name
    for name in ("weight_concentration_prior_", "mean_precision_prior_", "mean_prior_", "degrees_of_freedom_prior_",
                 "covariance_prior_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-12, err_msg=name)
    for name in PARAMETERS:  # scikit-learn scoring with jgmm's posterior
        setattr(theirs, f"{name}_", getattr(ours, f"{name}_"))
    theirs.covariances_ = ours.covariances_
    theirs._set_parameters(theirs._get_parameters())
    np.testing.assert_allclose(ours.weights_, theirs.weights_, rtol=1e-10)
    np.testing.assert_allclose(ours.precisions_, theirs.precisions_, rtol=1e-10)
    np.testing.assert_allclose(ours.score_samples(X), theirs.score_samples(X), rtol=1e-10)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-8, atol=1e-12)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    assert ours.score(X) == pytest.approx(theirs.score(X), rel=1e-10)


def test_fit_predict_pickle_dtype_and_sample():
    X, model = _fitted(dtype=np.float32)
    assert model.means_.dtype == np.float32 and model.score_samples(X).dtype == np.float32
    assert model.converged_ and model.n_iter_ == len(model.lower_bounds_)
    assert model.lower_bound_ == model.lower_bounds_[-1]
    labels = BayesianGaussianMixture(n_components=4, random_state=0, max_iter=300).fit_predict(X)
    np.testing.assert_array_equal(labels, model.predict(X))
    clone = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(clone.predict_proba(X), model.predict_proba(X))
    samples, components = model.sample(50)
    assert samples.shape == (50, X.shape[1]) and set(components) <= set(range(4))


def test_max_iter_0_is_the_start_and_a_short_fit_warns():
    X = blobs(1, N=300)[0]
    start = BayesianGaussianMixture(n_components=3, max_iter=0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        start.fit(X)
    assert start.n_iter_ == 0 and start.lower_bound_ == -np.inf and not start.converged_
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        BayesianGaussianMixture(n_components=3, max_iter=2, random_state=0).fit(X)


@pytest.mark.parametrize("kwargs", [
    dict(degrees_of_freedom_prior=0.5),
    dict(mean_prior=[0.0]),
    dict(covariance_prior=np.eye(3)),
    dict(covariance_prior=-np.eye(2)),
    dict(covariance_type="diag", covariance_prior=[1.0, -1.0]),
    dict(weight_concentration_prior=0.0),
    dict(weight_concentration_prior_type="dirichlet"),
])
def test_invalid_priors_get_scikit_learns_messages(kwargs):
    X = blobs(1, N=60)[0]
    with pytest.raises(ValueError) as theirs:
        sklearn.mixture.BayesianGaussianMixture(n_components=2, **kwargs).fit(X)
    with pytest.raises(ValueError) as ours:
        BayesianGaussianMixture(n_components=2, **kwargs).fit(X)
    assert str(ours.value) == str(theirs.value).replace("sklearn.mixture", "jgmm")


def test_warm_start_one_iteration_at_a_time_is_scikit_learns():
    X = blobs(1, N=300)[0]
    settings = dict(n_components=3, max_iter=1, warm_start=True, random_state=0, init_params="random_from_data")
    ours, theirs = BayesianGaussianMixture(**settings), sklearn.mixture.BayesianGaussianMixture(**settings)
    bounds, converged = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(200):
            ours.fit(X)
            bounds.append(ours.lower_bound_)
            converged.append(ours.converged_)
            if ours.converged_:
                break
        theirs.fit(X)
        while not theirs.converged_:
            theirs.fit(X)
    assert converged[-1] and not any(converged[:-1])
    assert np.all(np.diff(bounds) > -1e-6 * np.abs(bounds[1:]))  # the bound does not fall
    assert ours.n_iter_ == 1 and theirs.n_iter_ == 1


@pytest.mark.parametrize("change, message", [
    (dict(n_components=2), "n_components=3, covariance_type='full' and 2 features.*n_components=2"),
    (dict(covariance_type="diag"), "covariance_type='diag'"),
    (dict(weight_concentration_prior_type="dirichlet_distribution"), "'dirichlet_process'.*'dirichlet_distribution'"),
])
def test_warm_start_refuses_another_model(change, message):
    """As jgmm's GaussianMixture: a warm start that cannot continue says what differs."""
    X = blobs(1, N=200)[0]
    model = BayesianGaussianMixture(n_components=3, warm_start=True, random_state=0, max_iter=300).fit(X)
    with pytest.raises(ValueError, match=f"previous fit.*{message}.*warm_start=False"):
        model.set_params(**change).fit(X)


def test_verbose_reports_progress_on_stderr(capfd):
    X = blobs(1, N=200)[0]
    model = BayesianGaussianMixture(n_components=3, max_iter=7, tol=0.0, verbose=1, verbose_interval=3,
                                    n_init=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X)
    lines = capfd.readouterr().err.splitlines()
    assert [line.split(": iteration ")[1].split(",")[0] for line in lines] == ["3", "6"]
    assert all("2/2 fits running" in line for line in lines)
    best = float(lines[-1].split("lower bound ")[1].split(",")[0])  # the best running restart's bound
    assert best >= model.lower_bounds_[5] - 1e-6 * abs(best)
