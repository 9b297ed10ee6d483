"""GaussianMixture's documented behaviour, item by item: scikit-learn's and jgmm's side by side.

Goes through scikit-learn's docstring, user guide and source (constructor,
validation, fitted attributes, every method, warm starts, restarts,
verbose output) and runs both estimators on the same inputs. Each item
prints "same" or "differs" with what was compared; the list is written to
experiments/results/sklearn_behaviour.txt.

    python experiments/sklearn_behaviour.py
"""

from __future__ import annotations

import contextlib
import inspect
import io
import pickle
import warnings
from pathlib import Path

import numpy as np
import sklearn
import sklearn.mixture
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

import jgmm.sklearn

RESULTS = Path(__file__).parent / "results"
FAMILIES = ("full", "tied", "diag", "spherical")
ATTRIBUTES = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_")
lines: list[str] = []


def report(item: str, same: bool, detail: str) -> None:
    lines.append(f"{'same   ' if same else 'DIFFERS'} {item}: {detail}")
    print(lines[-1], flush=True)


def data(seed=0, N=300, dtype=np.float64):
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 0.0], [4.0, 1.0], [1.0, 5.0]])
    X = centers[rng.integers(3, size=N)] + rng.normal(size=(N, 2)) * [1.0, 0.6]
    return X.astype(dtype)


def both(**kwargs):
    return sklearn.mixture.GaussianMixture(**kwargs), jgmm.sklearn.GaussianMixture(**kwargs)


def outcome(call):
    """("ok", value) or (exception type name, message), warnings caught."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = call()
        except Exception as error:  # noqa: BLE001 - the comparison is of any error
            return type(error).__name__, str(error).replace("sklearn.mixture", "jgmm"), []
    return "ok", value, [f"{w.category.__name__}: {w.message}" for w in caught]


def compare_errors(item, make, call=lambda m, X: m.fit(X), X=None):
    X = data() if X is None else X
    theirs = outcome(lambda: call(make(sklearn.mixture.GaussianMixture), X))
    ours = outcome(lambda: call(make(jgmm.sklearn.GaussianMixture), X))
    if theirs[0] == "ok" and ours[0] == "ok":
        report(item, True, "both accept")
    else:
        same = theirs[:2] == ours[:2]
        report(item, same, f"scikit-learn {theirs[0]}: {theirs[1]!r}" + ("" if same else f"; jgmm {ours[0]}: {ours[1]!r}"))


def constructor():
    ours, theirs = (inspect.signature(c.__init__).parameters for c in (jgmm.sklearn.GaussianMixture,
                                                                        sklearn.mixture.GaussianMixture))
    missing = [name for name in theirs if name not in ours]
    defaults = [name for name in theirs if name in ours and ours[name].default != theirs[name].default]
    extra = [name for name in ours if name not in theirs and name != "self"]
    report("constructor parameters and defaults", not missing and not defaults,
           f"missing {missing}, other defaults {defaults}; jgmm's extra parameters {extra}")


def validation():
    bad = dict(n_components=0, tol=-1.0, reg_covar=-1.0, max_iter=-1, n_init=0, init_params="bad",
               covariance_type="bad", warm_start="yes", verbose_interval=0, random_state="seed")
    for name, value in bad.items():
        compare_errors(f"invalid {name}={value!r}", lambda E, n=name, v=value: E(**{n: v}))
    X = data()
    cases = {
        "one sample": X[:1], "fewer samples than components": X[:2], "NaN in X": np.where(X > 3, np.nan, X),
        "infinity in X": np.where(X > 3, np.inf, X), "1-D X": X[:, 0], "complex X": X + 1j,
        "strings in X": np.array([["a", "b"]] * 10), "no features": X[:, :0],
    }
    for name, value in cases.items():
        compare_errors(f"fit on {name}", lambda E: E(n_components=3), X=value)
    start = sklearn.mixture.GaussianMixture(3, random_state=0).fit(X)
    given = dict(weights_init=start.weights_, means_init=start.means_, precisions_init=start.precisions_)
    bad_given = {
        "weights_init shape": dict(weights_init=start.weights_[:, None]),
        "weights_init sum": dict(weights_init=start.weights_ * 2),
        "weights_init range": dict(weights_init=np.array([1.5, -0.25, -0.25])),
        "means_init shape": dict(means_init=start.means_[:2]),
        "precisions_init shape": dict(precisions_init=start.precisions_[:2]),
        "precisions_init not positive definite": dict(precisions_init=-start.precisions_),
        "precisions_init not symmetric": dict(precisions_init=start.precisions_ + np.triu(np.ones((2, 2)), 1)),
    }
    for name, change in bad_given.items():
        compare_errors(f"invalid {name}", lambda E, c=change: E(n_components=3, **{**given, **c}))
    fitted = lambda E: E(n_components=3, random_state=0).fit(X)
    compare_errors("predict on another number of features", fitted, lambda m, X: m.predict(X[:, :1]))
    compare_errors("predict before fit", lambda E: E(n_components=3), lambda m, X: m.predict(X))
    compare_errors("sample(0)", fitted, lambda m, X: m.sample(0))
    compare_errors("reg_covar=0, a component that collapses onto one sample", lambda E: E(
        n_components=2, reg_covar=0.0, means_init=[[0.0, 0.0], [9.0, 9.0]], weights_init=[0.5, 0.5],
        precisions_init=[np.eye(2), 100 * np.eye(2)]), X=np.vstack([data(N=50), [[9.0, 9.0]]]))
    compare_errors("reg_covar=0 from the default start", lambda E: E(n_components=2, reg_covar=0.0,
                   means_init=[[0.0, 0.0], [9.0, 9.0]]), X=np.vstack([data(N=50), [[9.0, 9.0]]]))


def same_start():
    """EM from the same given start: every fitted value."""
    for dtype in (np.float64, np.float32):
        X = data(dtype=dtype)
        for covariance_type in FAMILIES:
            start = sklearn.mixture.GaussianMixture(3, covariance_type=covariance_type, max_iter=2,
                                                    random_state=0).fit(X)
            settings = dict(n_components=3, covariance_type=covariance_type, weights_init=start.weights_,
                            means_init=start.means_, precisions_init=start.precisions_, max_iter=200)
            theirs, ours = (m.fit(X) for m in both(**settings))
            gaps = {a: float(np.max(np.abs(np.asarray(getattr(theirs, a)) - getattr(ours, a)))) for a in ATTRIBUTES}
            bound_gap = abs(theirs.lower_bound_ - ours.lower_bound_)
            history_gap = (np.max(np.abs(np.subtract(theirs.lower_bounds_, ours.lower_bounds_)))
                           if len(theirs.lower_bounds_) == len(ours.lower_bounds_) else np.inf)
            dtypes = {a: (np.asarray(getattr(theirs, a)).dtype, np.asarray(getattr(ours, a)).dtype) for a in ATTRIBUTES}
            same_dtypes = all(a == b for a, b in dtypes.values())
            worst = max(gaps.values())
            tolerance = 1e-8 if dtype == np.float64 else 1e-3
            same = (theirs.n_iter_ == ours.n_iter_ and theirs.converged_ == ours.converged_ and worst < tolerance
                    and bound_gap < tolerance and same_dtypes)
            report(f"EM from the same start, {covariance_type}, {np.dtype(dtype).name}", same,
                   f"n_iter_ {theirs.n_iter_}/{ours.n_iter_}, converged_ {theirs.converged_}/{ours.converged_}, "
                   f"largest parameter gap {worst:.1e}, lower_bound_ gap {bound_gap:.1e}, lower_bounds_ gap "
                   f"{history_gap:.1e}, attribute dtypes {'equal' if same_dtypes else dtypes}")
            methods = {
                "score_samples": lambda m: m.score_samples(X), "score": lambda m: m.score(X),
                "predict_proba": lambda m: m.predict_proba(X), "predict": lambda m: m.predict(X),
                "aic": lambda m: m.aic(X), "bic": lambda m: m.bic(X), "fit_predict": lambda m: clone(m).fit_predict(X),
            }
            if dtype == np.float64:
                gaps = {name: float(np.max(np.abs(np.asarray(f(theirs), float) - np.asarray(f(ours), float))))
                        for name, f in methods.items()}
                report(f"methods after that fit, {covariance_type}", max(gaps.values()) < 1e-6,
                       ", ".join(f"{name} {gap:.1e}" for name, gap in gaps.items()))


def attributes():
    X = data()
    theirs, ours = (m.fit(X) for m in both(n_components=3, random_state=0))
    kinds = {}
    for name in ("converged_", "n_iter_", "lower_bound_", "lower_bounds_", "n_features_in_", *ATTRIBUTES):
        a, b = getattr(theirs, name), getattr(ours, name)
        kinds[name] = (type(a).__name__, np.shape(a), type(b).__name__, np.shape(b))
    differ = {n: k for n, k in kinds.items() if (k[0] in ("list", "ndarray")) != (k[2] in ("list", "ndarray"))
              or k[1] != k[3]}
    report("fitted attributes: names, kinds, shapes", not differ,
           "equal" if not differ else f"(scikit-learn type, shape, jgmm type, shape): {differ}")
    report("lower_bounds_ has n_iter_ entries", len(ours.lower_bounds_) == ours.n_iter_ and
           len(theirs.lower_bounds_) == theirs.n_iter_, f"{len(theirs.lower_bounds_)}, {len(ours.lower_bounds_)}")
    try:
        import pandas as pd
    except ImportError:
        return
    frame = pd.DataFrame(X, columns=["a", "b"])
    fitted = [m.fit(frame) for m in both(n_components=3, random_state=0)]
    names = [list(m.feature_names_in_) for m in fitted]
    messages = [outcome(lambda m=m: m.predict(X))[2] for m in fitted]
    report("feature_names_in_ from a DataFrame, and the warning for an array after it",
           names[0] == names[1] and messages[0] == messages[1], f"{names}, {messages}")


def runs():
    X = data()
    for init_params in ("kmeans", "k-means++", "random", "random_from_data"):
        bounds = [jgmm.sklearn.GaussianMixture(3, n_init=n, init_params=init_params, random_state=1).fit(X).lower_bound_
                  for n in (1, 2, 5)]
        report(f"more restarts never worse ({init_params})", bounds == sorted(bounds), f"lower_bound_ {bounds}")
    for E in (sklearn.mixture.GaussianMixture, jgmm.sklearn.GaussianMixture):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = E(3, max_iter=2, tol=0.0, random_state=0).fit(X)
        messages = [str(w.message) for w in caught if w.category is ConvergenceWarning]
        lines.append(f"        max_iter reached ({E.__module__}): converged_={model.converged_}, warnings {messages}")
    theirs, ours = (m.fit(X) for m in both(n_components=3, max_iter=0, random_state=0))
    report("max_iter=0", (theirs.n_iter_, theirs.converged_, theirs.lower_bound_, theirs.lower_bounds_)
           == (ours.n_iter_, ours.converged_, ours.lower_bound_, ours.lower_bounds_),
           f"n_iter_, converged_, lower_bound_, lower_bounds_: {theirs.n_iter_, theirs.converged_, theirs.lower_bound_}")
    for E in (sklearn.mixture.GaussianMixture, jgmm.sklearn.GaussianMixture):
        model = E(3, warm_start=True, n_init=4, max_iter=5, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            first = model.fit(X).lower_bound_
            second = model.fit(X).lower_bound_
        lines.append(f"        warm start ({E.__module__}): {first:.6f} then {second:.6f}")
    samples = [m.fit(X).sample(7) for m in both(n_components=3, random_state=0)]
    report("sample: shapes, dtypes, labels grouped by component",
           all(s[0].shape == (7, 2) and s[1].shape == (7,) and np.all(np.diff(s[1]) >= 0) for s in samples)
           and samples[0][0].dtype == samples[1][0].dtype,
           "the draws differ (another random generator), as expected")
    model = jgmm.sklearn.GaussianMixture(3, random_state=0).fit(X)
    report("pickle, clone, get_params/set_params", np.array_equal(pickle.loads(pickle.dumps(model)).predict(X),
                                                                   model.predict(X))
           and clone(model).get_params() == model.get_params(), "round trips")
    outputs = []
    for E in (sklearn.mixture.GaussianMixture, jgmm.sklearn.GaussianMixture):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            E(3, verbose=2, verbose_interval=2, max_iter=4, tol=0.0, random_state=0).fit(X)
        outputs.append((out.getvalue() + err.getvalue()).strip().splitlines())
    report("verbose output", outputs[0] == outputs[1], f"scikit-learn {outputs[0][:3]}...; jgmm {outputs[1][:3]}...")


def main():
    RESULTS.mkdir(exist_ok=True)
    lines.append(f"GaussianMixture: scikit-learn {sklearn.__version__} and jgmm side by side, item by item")
    for part in (constructor, validation, same_start, attributes, runs):
        part()
    (RESULTS / "sklearn_behaviour.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        main()
