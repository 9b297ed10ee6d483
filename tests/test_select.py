"""select: all K × restarts in one program per family, tables, choice, plots."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import FAMILIES, Compilations, blobs

import jgmm
from jgmm._engine.init import Seeding
from jgmm._engine.loop import GridConfig, fit_grid


def family_data(covariance_type, seed=0, N=1500, K=3, D=2):
    """Well-separated clusters whose shapes belong to exactly one family."""
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 0.0], [12.0, 0.0], [0.0, 12.0]])[:K]
    labels = rng.integers(K, size=N)
    Z = rng.normal(size=(N, D))
    if covariance_type == "full":
        angles = np.array([0.3, 1.2, 2.2])
        scales = np.array([[2.0, 0.4], [1.5, 0.5], [2.5, 0.6]])
        rot = np.stack([[[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]] for a in angles])
        A = rot * scales[:, None, :]
    elif covariance_type == "tied":
        a = 0.7
        A = np.broadcast_to(np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) * [2.0, 0.5], (K, D, D))
    elif covariance_type == "diag":
        A = np.stack([np.diag(s) for s in [[2.0, 0.5], [0.4, 1.8], [1.2, 0.3]]])
    else:
        A = np.array([0.5, 1.0, 2.0])[:, None, None] * np.eye(D)
    return centers[labels] + np.einsum("nde,ne->nd", A[labels], Z)


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_select_recovers_true_k_and_family(covariance_type):
    X = family_data(covariance_type)
    selection = jgmm.select(jax.random.key(0), X, range(1, 6), n_init=3)
    assert selection.best == (covariance_type, 3)
    assert selection.best_params.n_components == 3


def test_each_row_equals_fit_for_that_cell(x64):
    X, _, _ = blobs(40, N=300, D=2, K=3, spread=5.0)
    key = jax.random.key(11)
    selection = jgmm.select(key, X, [1, 3], ("tied", "diag"), n_init=2, nested=False)
    rows = selection.to_dict()
    for i, (family, K) in enumerate(zip(rows["covariance_type"], rows["n_components"])):
        K = int(K)
        single = jgmm.fit(jax.random.fold_in(key, K), X, K, str(family), n_init=2)
        np.testing.assert_allclose(rows["total_log_likelihood"][i], float(single.log_likelihood) * 300, rtol=1e-9)
        assert rows["n_iter"][i] == int(single.n_iter)
        assert rows["status"][i] == jgmm.Status(int(single.status)).name
        cell = selection.params(str(family), K)
        for a, b in zip(jax.tree.leaves(cell), jax.tree.leaves(single.params)):
            np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_padded_fit_equals_unpadded_fit_from_the_same_start(x64, covariance_type):
    X, _, _ = blobs(41, N=250, D=3, K=3, spread=3.0)
    X = jnp.asarray(X)
    start = jgmm.fit(jax.random.key(0), X, 3, covariance_type, init="random", max_iter=1).params
    K_max = 6
    P = start.prec_chol
    if covariance_type != "tied":
        unit = jnp.broadcast_to(jnp.eye(3), (K_max - 3, 3, 3)) if P.ndim == 3 else jnp.ones((K_max - 3,) + P.shape[1:])
        P = jnp.concatenate([P, unit])
    padded = jgmm.GMMParams(
        jnp.concatenate([start.weights, jnp.zeros(K_max - 3)]),
        jnp.concatenate([start.means, jnp.zeros((K_max - 3, 3))]),
        P,
        covariance_type,
    )
    unpadded = jgmm.fit(jax.random.key(0), X, 3, covariance_type, init=start, max_iter=25, tol=0.0)
    config = GridConfig(Seeding(K_max, "params", 1), covariance_type, max_iter=25, chunk_size=64)
    best = fit_grid(
        jax.random.key(0), np.array([3]), X, jnp.ones(250), jnp.asarray(0.0), jnp.asarray(1e-6), padded, config=config
    ).best
    np.testing.assert_allclose(best.params.weights[0, 3:], 0.0, atol=0)  # never revived
    np.testing.assert_allclose(best.params.weights[0, :3], unpadded.params.weights, rtol=1e-10)
    np.testing.assert_allclose(best.params.means[0, :3], unpadded.params.means, rtol=1e-10)
    P_best = best.params.prec_chol[0] if covariance_type == "tied" else best.params.prec_chol[0, :3]
    np.testing.assert_allclose(P_best, unpadded.params.prec_chol, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(best.history[0], unpadded.history, rtol=1e-10)


def test_exactly_one_compilation_per_family_and_one_shared_seeding():
    X, _, _ = blobs(42, N=1100, D=2, K=3)  # a size no other test compiles for (bucket 1152)
    with Compilations() as compiled:
        jgmm.select(jax.random.key(0), X, range(1, 5), n_init=2)
    assert compiled.count["_grid_program"] == 4
    assert compiled.count["seed_program"] == 1
    with Compilations() as compiled:
        jgmm.select(jax.random.key(1), X * 2.0, range(1, 5), n_init=2, tol=1e-4, reg_covar=1e-5)
    assert compiled.count["_grid_program"] == compiled.count["seed_program"] == 0


def duplicated_data():
    """Two clusters plus three values recorded 15 times each (e.g. placeholder codes)."""
    rng = np.random.default_rng(3)
    return np.concatenate([
        rng.normal([0, 0], [1.0, 3.0], (200, 2)),
        rng.normal([6, 10], [1.0, 2.0], (200, 2)),
        np.repeat([[3.0, 5.0], [0.0, 0.0], [6.0, 12.0]], 15, axis=0),
    ])


def test_degenerate_cells_are_flagged_and_never_chosen():
    from sklearn.mixture import GaussianMixture

    X = duplicated_data()
    # Plain maximum likelihood falls for it: scikit-learn's diag K=3 fit puts a
    # component on duplicated values, with a variance of exactly reg_covar.
    trapped = GaussianMixture(3, covariance_type="diag", n_init=5, random_state=0).fit(X)
    assert trapped.covariances_.min() < 1.1e-6
    selection = jgmm.select(jax.random.key(0), X, range(1, 7), n_init=5)
    rows = selection.to_dict()
    assert np.sum(rows["degenerate_restarts"]) > 0
    best = (rows["covariance_type"] == selection.best[0]) & (rows["n_components"] == selection.best[1])
    assert rows["status"][best][0] in ("CONVERGED", "MAX_ITER")
    assert np.asarray(selection.best_params.covariances).min() > 0.1


def test_collapse_on_duplicates_is_detected_where_plain_maximum_likelihood_falls_for_it():
    # One component sitting on 40 copies of a point has variance reg_covar and
    # an enormous likelihood; the fit reports it instead of returning it as healthy.
    rng = np.random.default_rng(5)
    X = np.concatenate([rng.normal(size=(200, 2)) * 2, np.tile([[3.0, 3.0]], (40, 1))])
    start = jgmm.GMMParams(
        jnp.array([0.8, 0.2]), jnp.array([[0.0, 0.0], [3.0, 3.0]]), jnp.array([0.5, 50.0]), "spherical"
    )
    result = jgmm.fit(jax.random.key(0), X, 2, "spherical", init=start)
    assert int(result.status) == jgmm.Status.DEGENERATE
    assert float(result.params.covariances.min()) < 1e-5


def test_table_columns_and_criteria():
    X = family_data("diag", seed=1, N=600)
    selection = jgmm.select(jax.random.key(0), X, [2, 3], ("diag", "full"), n_init=2, criterion="aic")
    rows = selection.to_dict()
    assert set(rows) >= {
        "covariance_type", "n_components", "total_log_likelihood", "bic", "aic", "mclust_bic",
        "n_parameters", "n_iter", "converged", "status", "degenerate_restarts",
    }
    assert len(rows["bic"]) == 4 and all(isinstance(v, np.ndarray) for v in rows.values())
    np.testing.assert_allclose(rows["mclust_bic"], -rows["bic"])
    np.testing.assert_allclose(rows["aic"], -2 * rows["total_log_likelihood"] + 2 * rows["n_parameters"])
    np.testing.assert_allclose(rows["bic"], -2 * rows["total_log_likelihood"] + rows["n_parameters"] * np.log(600))
    i = int(np.argmin(rows["aic"]))
    assert selection.best == (rows["covariance_type"][i], rows["n_components"][i])
    text = str(selection)
    lines = text.splitlines()
    assert len({len(line) for line in lines[:6]}) == 1  # aligned: header, rule and rows equally wide
    assert "best by aic" in text
    params = selection.params("full", 2)
    assert params.means.shape == (2, 2) and params.prec_chol.shape == (2, 2, 2)
    np.testing.assert_allclose(jgmm.bic(params, X), rows["bic"][2], rtol=1e-4)
    with pytest.raises(KeyError, match="No fit for covariance_type='tied'"):
        selection.params("tied", 2)


def test_to_pandas():
    import pandas as pd

    X = family_data("spherical", N=300)
    frame = jgmm.select(jax.random.key(0), X, [1, 2], ("spherical",), n_init=1).to_pandas()
    assert isinstance(frame, pd.DataFrame) and len(frame) == 2


def test_plot_draws_one_line_per_family_and_marks_the_best():
    import matplotlib

    matplotlib.use("Agg")
    X = family_data("tied", N=400)
    selection = jgmm.select(jax.random.key(0), X, [1, 2, 3], ("tied", "spherical"), n_init=1)
    ax = selection.plot()
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels[:2] == ["tied", "spherical"]
    assert labels[2].startswith("best: tied, K=3")
    assert list(ax.get_lines()[2].get_xdata()) == [3]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(criterion="hqc"), "'criterion' parameter must be a str among \\{'aic', 'bic', 'icl'\\}"),
        (dict(covariance_types=("full", "banana")), "'covariance_type' parameter must be a str among"),
        (dict(n_components=[1, 50]), "Expected n_samples >= n_components but got n_components = 50, n_samples = 20"),
        (dict(n_components=[]), "n_components must name at least one"),
        (dict(n_components=[0, 1]), "'n_components' parameter must be an int in the range \\[1, inf\\)"),
        (dict(sample_weight=-np.ones(20)), "Negative values in sample_weight"),
        (dict(n_init=0), "'n_init' parameter must be an int in the range \\[1, inf\\)"),
        (dict(on_collapse="drop"), "'on_collapse' parameter must be a str among"),
    ],
)
def test_select_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        jgmm.select(jax.random.key(0), np.random.default_rng(0).normal(size=(20, 2)), **kwargs)


def test_select_rejects_nan_data():
    X = np.random.default_rng(0).normal(size=(20, 2))
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN."):
        jgmm.select(jax.random.key(0), X)
