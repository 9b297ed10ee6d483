"""mclust's eigen-decomposition families Σ_k = λ_k D_k A_k D_kᵀ: the M-steps
are stationary on each family's own manifold, the counts are its dimension,
the families reduce to one another where they must, EM is monotone, and the
ten new families go everywhere the four went (tests/test_mclust.py has the
parity with R's mclust)."""

import dataclasses
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import blobs, clump_start
from jax.scipy.linalg import expm

import jgmm
from jgmm._maths.em import params_and_singular
from jgmm._maths.families import log_gaussian
from jgmm.sklearn import GaussianMixture

NAMES = jgmm.family_names()
NEW = [name for name in NAMES if name.isupper()]  # the ten named by mclust's letters only


def letters(name):
    """mclust's three letters of a family: volume, shape, orientation."""
    f = jgmm.family(name)
    return next(n for n in (f.name, *f.aliases) if len(n) == 3 and n.isupper())


def gdet(a):
    return np.exp(np.mean(np.log(a), axis=-1))


def chart(cov, code):
    """A chart of the family around ``cov`` (K, D, D): u -> Σ(u), Σ(0) = cov,
    perturbing log volumes, log shapes (|A| = 1 kept) and orientations
    (D_k expm(skew)), each shared (E), per component (V) or absent (I).
    Returns (Σ(u), the number of parameters, the family's dimension)."""
    volume, shape, orientation = code
    K, D = cov.shape[:2]
    if orientation == "I":
        V, a = np.broadcast_to(np.eye(D), cov.shape), np.diagonal(cov, axis1=1, axis2=2)
    elif orientation == "E":
        V0 = np.linalg.eigh(cov[0])[1]
        V, a = np.broadcast_to(V0, cov.shape), np.einsum("dk,jde,ek->jk", V0, cov, V0)
    else:
        w, V = np.linalg.eigh(cov)
        V, a = V[..., ::-1], w[..., ::-1]
    lam = gdet(a)
    A = a / lam[:, None]
    tri = D * (D - 1) // 2
    sizes = {"I": 0, "E": 1, "V": K}
    n_v, n_s, n_w = sizes[volume] or 1, sizes[shape] * D, sizes[orientation] * tri
    iu = np.triu_indices(D, 1)

    def build(u):
        v = jnp.broadcast_to(u[:n_v], (K,))
        s = jnp.broadcast_to(u[n_v : n_v + n_s].reshape(-1, D), (K, D)) if n_s else jnp.zeros((K, D))
        s = s - jnp.mean(s, axis=1, keepdims=True)
        w = u[n_v + n_s :].reshape(-1, tri) if n_w else jnp.zeros((1, tri))
        skew = jnp.zeros((w.shape[0], D, D)).at[:, iu[0], iu[1]].set(w)
        R = jnp.broadcast_to(jax.vmap(expm)(skew - jnp.swapaxes(skew, 1, 2)), (K, D, D))
        R = jnp.asarray(V) @ R
        variances = jnp.asarray(lam)[:, None] * jnp.exp(v)[:, None] * jnp.asarray(A) * jnp.exp(s)
        return jnp.einsum("kij,kj,klj->kil", R, variances, R)

    n = n_v + n_s + n_w
    return build, n, n - sizes[shape]  # each shape vector loses one to |A| = 1


def data_and_resp(K=3, D=3, seed=2):
    X, _, _ = blobs(seed=seed, N=200, D=D, K=K)
    resp = np.random.default_rng(seed).dirichlet(np.ones(K), size=X.shape[0])
    return jnp.asarray(X), jnp.asarray(resp)


_m_step_from = jax.jit(lambda stats, previous, name: params_and_singular(stats, name, 0.0, previous)[0],
                       static_argnames="name")


def converged_m_step(resp, X, name):
    """The M-step, warm-started from its own output until it stops moving
    (what EM's M-steps do; a cold one stops where mclust's does)."""
    params = jgmm.m_step(resp, X, name, reg_covar=0.0)
    stats = jgmm.suff_stats(resp, X, covariance_type=name)
    for _ in range(200):
        new = _m_step_from(stats, params, name)
        moved = float(jnp.max(jnp.abs(new.prec_chol - params.prec_chol)))
        params = new
        if moved < 1e-14:
            break
    return params


@pytest.mark.parametrize("name", NAMES)
def test_m_step_is_stationary_on_the_familys_manifold(x64, name):
    X, resp = data_and_resp()
    params = converged_m_step(resp, X, name)
    cov = np.asarray(params.dense_covariances)
    build, n, _ = chart(cov, letters(name))
    np.testing.assert_allclose(build(jnp.zeros(n)), cov, rtol=1e-10, atol=1e-12)
    full = jgmm.family("full")

    def q(u, means):
        P = full.prec_chol_from_covariances(build(u))
        return jnp.sum(resp * log_gaussian(X, means, P, "full")) / X.shape[0]

    for g in jax.grad(q, argnums=(0, 1))(jnp.zeros(n), params.means):
        np.testing.assert_allclose(g, 0.0, atol=1e-9)
    # 10% more volume is not stationary: the test sees a wrong M-step
    assert np.max(np.abs(jax.grad(q)(jnp.zeros(n).at[0].set(0.1), params.means))) > 1e-3


def test_a_cold_m_step_stops_near_the_warm_one(x64):
    # The cold M-step stops at mclust's tolerance; EM's warm ones go on.
    X, resp = data_and_resp()
    for name in ("VEV", "EVE", "VVE", "VEE", "VEI"):
        cold = np.asarray(jgmm.m_step(resp, X, name, reg_covar=0.0).dense_covariances)
        warm = np.asarray(converged_m_step(resp, X, name).dense_covariances)
        np.testing.assert_allclose(cold, warm, atol=1e-2 * np.abs(warm).max())


@pytest.mark.parametrize("K,D", [(1, 1), (2, 3), (4, 2), (3, 5)])
def test_parameter_counts_are_the_dimension_of_each_family(K, D):
    cov = np.broadcast_to(np.diag(np.arange(1.0, D + 1)), (K, D, D))
    for name in NAMES:
        _, _, dimension = chart(cov, letters(name))
        assert jgmm.family(name).n_parameters(K, D) == dimension, name


def test_with_one_component_the_families_reduce_to_three(x64):
    X, _ = data_and_resp(K=1)
    resp = jnp.ones((X.shape[0], 1))
    dense = {name: np.asarray(converged_m_step(resp, X, name).dense_covariances) for name in NAMES}
    for name in NAMES:
        _, shape, orientation = letters(name)
        same = "spherical" if shape == "I" else "diag" if orientation == "I" else "full"
        np.testing.assert_allclose(dense[name], dense[same], rtol=1e-10, err_msg=name)


def test_with_one_feature_only_the_volume_is_left(x64):
    X, resp = data_and_resp(D=1)
    for name in NAMES:
        same = "EII" if letters(name)[0] == "E" else "spherical"
        a = converged_m_step(resp, X, name).dense_covariances
        np.testing.assert_allclose(a, jgmm.m_step(resp, X, same, reg_covar=0.0).dense_covariances, rtol=1e-10)
        assert jgmm.family(name).one_feature in (same, None)


def test_equal_volume_is_the_weighted_mean_of_variable_volumes(x64):
    # tr W_k = N_k D λ_k (VII), so EII's λ = Σ_k N_k λ_k / N.
    X, resp = data_and_resp()
    nk = np.asarray(resp.sum(0))
    vii = np.asarray(jgmm.m_step(resp, X, "VII", reg_covar=0.0).covariances)
    eii = np.asarray(jgmm.m_step(resp, X, "EII", reg_covar=0.0).dense_covariances)
    np.testing.assert_allclose(eii, np.broadcast_to(nk @ vii / nk.sum() * np.eye(3), eii.shape), rtol=1e-12)


@pytest.fixture(scope="module")
def all_families():
    with jax.enable_x64(True):
        X, _, _ = blobs(seed=5, N=240, D=2, K=3)
        selection = jgmm.select(jax.random.key(0), X, (2, 3), "all", n_init=2, max_iter=300, tol=1e-10,
                                criterion="icl")
        cell = selection.params("VEV", 3)
        return X, selection, float(jgmm.icl(cell, X)), float(jgmm.bic(cell, X))


def test_select_all_fits_the_fourteen_with_icl(x64, all_families):
    X, selection, icl, bic = all_families
    table = selection.to_dict()
    assert set(table["covariance_type"]) == set(NAMES) and len(NAMES) == 14 and len(table["bic"]) == 28
    row = (table["covariance_type"] == "VEV") & (table["n_components"] == 3)
    np.testing.assert_allclose(table["icl"][row], icl, rtol=1e-10)
    np.testing.assert_allclose(table["bic"][row], bic, rtol=1e-10)
    assert np.all(table["icl"] >= table["bic"] - 1e-9)  # the entropy term is >= 0
    np.testing.assert_array_equal(table["mclust_icl"], -table["icl"])
    healthy = np.isin(table["status"], ["CONVERGED", "MAX_ITER"])
    best = np.argmin(np.where(healthy, table["icl"], np.inf))
    assert selection.best == (table["covariance_type"][best], table["n_components"][best])
    counts = [jgmm.family(c).n_parameters(k, 2) + 3 * k - 1 for c, k in zip(table["covariance_type"], table["n_components"])]
    np.testing.assert_array_equal(table["n_parameters"], counts)


def test_em_is_monotone_in_float64_for_every_family(x64, all_families):
    _, selection, _, _ = all_families
    for name, result in selection.results.items():
        for history in np.asarray(result.history):
            history = history[np.isfinite(history)]
            assert np.all(np.diff(history) >= -1e-12), name


def test_one_feature_fits_each_distinct_model_once_and_says_so():
    X = np.random.default_rng(0).normal(size=(60, 1)).astype(np.float32)
    with pytest.warns(UserWarning, match="same model"):
        selection = jgmm.select(jax.random.key(0), X, (1, 2), "all", n_init=1, max_iter=20)
    assert set(selection.to_dict()["covariance_type"]) == {"spherical", "EII"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jgmm.select(jax.random.key(0), X, (1,), ("VEV",), n_init=1, max_iter=5)


@pytest.mark.parametrize("name", ["VEV", "EVE"])
def test_an_iterative_family_everywhere(tmp_path, name):
    X, _, _ = blobs(seed=6, N=300, D=3, K=3)
    X = X.astype(np.float32)
    result = jgmm.fit(jax.random.key(0), X, 3, name, n_init=2)
    assert jgmm.Status(int(result.status)) == jgmm.Status.CONVERGED
    params = result.params
    # the estimator: dense covariances, precisions and their factors
    gm = GaussianMixture(3, covariance_type=name, random_state=0).fit(X)
    assert gm.covariances_.shape == gm.precisions_.shape == gm.precisions_cholesky_.shape == (3, 3, 3)
    np.testing.assert_allclose(np.einsum("kij,kjl->kil", gm.covariances_, gm.precisions_),
                               np.broadcast_to(np.eye(3), (3, 3, 3)), atol=1e-3)
    assert np.isfinite(gm.bic(X)) and gm.predict(X).shape == (300,)
    # save and load, validated
    jgmm.save(tmp_path / "m.npz", params)
    loaded = jgmm.load(tmp_path / "m.npz")
    assert loaded.covariance_type == name
    np.testing.assert_array_equal(loaded.prec_chol, params.prec_chol)
    # sampling, streaming, online EM, bootstrap, missing values
    sample, labels = jgmm.sample(jax.random.key(1), params, 50)
    assert sample.shape == (50, 3) and np.all(np.isfinite(sample))
    streamed = jgmm.fit_stream(jax.random.key(0), X, 3, name, init=params, chunk_size=64, max_iter=5)
    again = jgmm.fit(jax.random.key(0), X, 3, name, init=params, max_iter=5)
    np.testing.assert_allclose(streamed.params.dense_covariances, again.params.dense_covariances, rtol=1e-3, atol=1e-4)
    state = jgmm.online_step(jgmm.online_init(params), X[:100])
    assert np.all(np.isfinite(np.asarray(state.params.prec_chol)))
    boot = jgmm.bootstrap(jax.random.key(2), X, params, n_boot=3, max_iter=20)
    assert np.all(np.isfinite(np.asarray(boot.replicates.means))) and boot.replicates.covariance_type == name
    holes = X.copy()
    holes[::9, 1] = np.nan
    marginal = jgmm.fit(jax.random.key(0), holes, 3, name, missing="marginalize")
    assert np.isfinite(float(marginal.log_likelihood)) and marginal.params.covariance_type == name
    if jgmm.family(name).map_covariance_estimate is None:  # EVE: mclust has no prior for it either
        with pytest.raises(ValueError, match="takes no prior"):
            jgmm.fit(jax.random.key(0), X, 3, name, prior="default")
    else:  # VEV: mclust's prior (tests/test_mclust.py), in select too
        mode = jgmm.select(jax.random.key(0), X, (2, 3), name, n_init=1, prior="default")
        assert np.all(np.isfinite(mode.to_dict()["bic"])) and mode.best[0] == name


@pytest.mark.parametrize("name", ["EII", "EEI", "VEI", "EVI", "EEV"])
def test_the_prior_of_each_family_that_takes_one_keeps_a_clump_finite(x64, name):
    # mclust's priors (parity: tests/test_mclust.py); a variable volume
    # collapses onto the 12 copies without one.
    X, start = clump_start(name)
    if name == "VEI":
        assert jgmm.fit(jax.random.key(0), X, 3, name, init=start).status == jgmm.Status.DEGENERATE
    result = jgmm.fit(jax.random.key(0), X, 3, name, init=start, prior="default")
    assert result.status == jgmm.Status.CONVERGED and result.params.covariance_type == name
    assert np.linalg.eigvalsh(np.asarray(result.params.dense_covariances)).min() > 0.1
    assert float(result.params.weights[2]) == pytest.approx(12 / 212, rel=1e-3)


def test_em_stays_monotone_from_a_nearly_singular_start(x64):
    # Found by Hypothesis: k-means gives a component 3 points in 3-D, whose EVE
    # covariance has eigenvalues from 6e-12 to 1.7e4; the next M-step's warm
    # start, rebuilt from it, is off by about its smallest eigenvalue.
    X = np.random.default_rng(0).normal(size=(12, 3))
    result = jgmm.fit(jax.random.key(1), X, 3, "EVE", max_iter=30, tol=0.0, reg_covar=0.0)
    history = np.asarray(result.history)[: int(result.n_iter)]
    assert len(history) >= 2 and np.all(np.diff(history) >= -1e-12), np.diff(history).min()


def test_a_start_of_another_family_is_refused():
    # The iterative M-steps keep the previous covariances where they are
    # better, so a start must be of the family's form (as a loaded file).
    X = jgmm.load_faithful()
    full = jgmm.m_step(np.eye(2)[(X[:, 0] > 3).astype(int)], X, "full")
    with pytest.raises(ValueError, match="init's covariances are not of the 'VEV' family's form"):
        jgmm.fit(jax.random.key(0), X, 2, "VEV", init=dataclasses.replace(full, covariance_type="VEV"))


def test_collapse_on_duplicated_points_is_a_status_not_nan():
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(0, 1, (80, 2)), np.full((15, 2), 4.0)]).astype(np.float32)
    start = jgmm.GMMParams(jnp.asarray([0.5, 0.5]), jnp.asarray([[0.0, 0.0], [4.0, 4.0]]),
                           jnp.broadcast_to(jnp.eye(2), (2, 2, 2)), "VEV")
    result = jgmm.fit(jax.random.key(0), X, 2, "VEV", init=start, max_iter=50)
    assert jgmm.Status(int(result.status)) == jgmm.Status.DEGENERATE
    assert np.all(np.isfinite(np.asarray(result.params.prec_chol)))


@pytest.mark.parametrize("name", ["EVV", "VEE", "VVE"])
def test_too_few_samples_for_a_covariance_is_a_status_not_nan(name):
    # Three samples per component in three dimensions: the scatter matrices are singular.
    X = np.random.default_rng(2).normal(size=(6, 3)).astype(np.float32)
    X[3:] += 10
    result = jgmm.fit(jax.random.key(0), X, 2, name, reg_covar=0.0, max_iter=20)
    status = jgmm.Status(int(result.status))
    # VEE pools one orientation and shape over all six samples, so it is estimable;
    # EVV and VVE need each component's own scatter, which is singular.
    assert status == (jgmm.Status.CONVERGED if name == "VEE" else jgmm.Status.DEGENERATE)
    assert all(np.all(np.isfinite(np.asarray(a))) for a in jax.tree.leaves(result.params))
    assert np.isfinite(float(result.log_likelihood))


@pytest.mark.parametrize("name", ["VEV", "EVE"])
def test_gradient_through_an_iterative_m_step_matches_refits(x64, name):
    X, _, _ = blobs(seed=3, N=150, D=2, K=2)
    X = jnp.asarray(X)
    loss = lambda X: jnp.sum(jgmm.fit(jax.random.key(0), X, 2, name, tol=1e-13, max_iter=3000).params.covariances)
    grad = jax.grad(loss)(X)
    eps = 1e-5
    for index in [(0, 0), (17, 1)]:
        step = jnp.zeros_like(X).at[index].set(eps)
        expected = (loss(X + step) - loss(X - step)) / (2 * eps)
        assert float(grad[index]) == pytest.approx(float(expected), rel=1e-6, abs=1e-9)
