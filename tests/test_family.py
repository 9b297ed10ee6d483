"""The family seam: a contract every registered family keeps, and a family
defined here, outside the package, fitted end to end."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import blobs

import jgmm
from jgmm._maths import families as _covariance
from jgmm._maths.families import log_gaussian
from jgmm.sklearn import GaussianMixture


REGISTERED = jgmm.family_names()  # the contract holds for every one
FREE = [name for name in REGISTERED if jgmm.family(name).to_unconstrained is not None]


def fitted_params(covariance_type, K=3, D=3, seed=0):
    """Parameters of the family from random responsibilities (float64)."""
    X, _, _ = blobs(seed=seed, N=200, D=D, K=K)
    resp = np.random.default_rng(seed).dirichlet(np.ones(K), size=X.shape[0])
    return jgmm.m_step(resp, X, covariance_type, reg_covar=0.0), X, resp


@pytest.mark.parametrize("covariance_type", REGISTERED)
def test_parameters_round_trip_through_every_conversion(x64, covariance_type):
    params, _, _ = fitted_params(covariance_type)
    f, P = jgmm.family(covariance_type), params.prec_chol
    K, D = params.n_components, params.n_features
    assert P.shape == f.prec_chol_shape(K, D)
    np.testing.assert_allclose(f.prec_chol_from_covariances(f.covariances(P)), P, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(f.prec_chol_from_precisions(f.precisions(P)), P, rtol=1e-10, atol=1e-12)
    if f.to_unconstrained is not None:
        free = f.to_unconstrained(P)
        np.testing.assert_allclose(f.from_unconstrained(free, K, D), P, rtol=1e-12, atol=1e-14)
        assert free.shape == (f.n_parameters(K, D),)  # the count is the size of the free parametrisation
    dense = np.asarray(params.dense_covariances)
    assert dense.shape == (K, D, D)
    np.testing.assert_allclose(f.log_det(P, D), -0.5 * np.linalg.slogdet(dense)[1], rtol=1e-10)
    f.check_values(np.asarray(P))  # valid factors pass
    with pytest.raises(ValueError):
        f.check_values(-np.asarray(P))


@pytest.mark.parametrize("covariance_type", REGISTERED)
def test_moments_to_covariance_and_back(x64, covariance_type):
    params, _, _ = fitted_params(covariance_type)
    f = jgmm.family(covariance_type)
    nk = jnp.asarray([0.2, 0.3, 0.5])
    d = params.means - 1.0
    sxx = f.moments_from_covariance(params.covariances, nk, d)
    assert sxx.shape == f.stats_shape(3, 3)
    P, singular = f.from_estimate(f.covariance_estimate(sxx, nk, d), nk, 0.0, params.prec_chol)
    np.testing.assert_allclose(P, params.prec_chol, rtol=1e-10)
    assert not np.any(singular)


@pytest.mark.parametrize("covariance_type", REGISTERED)
def test_samples_have_the_family_covariances(covariance_type):
    params, _, _ = fitted_params(covariance_type, seed=1)
    X, labels = jgmm.sample(jax.random.key(0), params, 60_000)
    X, labels = np.asarray(X, np.float64), np.asarray(labels)
    dense = np.asarray(params.dense_covariances)
    for k in range(params.n_components):
        empirical = np.cov(X[labels == k].T)
        np.testing.assert_allclose(empirical, dense[k], atol=0.06 * np.abs(dense[k]).max())


@pytest.mark.parametrize("covariance_type", FREE)
def test_m_step_is_stationary_in_the_free_parameters(x64, covariance_type):
    # Q(θ) = Σ_nk r_nk log N(x_n | μ_k, Σ_k) over the family's own free
    # parametrisation: its gradient vanishes at the M-step's output.
    params, X, resp = fitted_params(covariance_type, seed=2)
    f, K, D = jgmm.family(covariance_type), params.n_components, params.n_features

    def q(free, means):
        P = f.from_unconstrained(free, K, D)
        return jnp.sum(resp * log_gaussian(X, means, P, covariance_type)) / X.shape[0]

    grads = jax.grad(q, argnums=(0, 1))(f.to_unconstrained(params.prec_chol), params.means)
    for g in grads:
        np.testing.assert_allclose(g, 0.0, atol=1e-9)


# ---------------------------------------------------------------- a family from outside


def _check_positive(P):
    if np.any(P <= 0):
        raise ValueError("params.prec_chol must be positive.")


def _outer(c, d):
    return jnp.sum(c * jnp.sum(d * d, axis=1))


def _estimate(sxx, nk, d):
    return (sxx - _outer(nk, d)) / (d.shape[1] * jnp.sum(nk))


def _sq_distances(X, means, P):
    sq = jnp.sum(X * X, 1)[:, None] - 2 * X @ means.T + jnp.sum(means * means, 1)[None, :]
    return jnp.maximum(sq, 0) * P**2


# One variance σ² for every component and feature (mclust's EII): P = 1/σ, shape ().
SHARED_SPHERE = jgmm.Family(
    name="shared-sphere",
    aliases=("test-EII",),
    shared=True,
    diagonal=True,
    prec_chol_shape=lambda K, D: (),
    stats_shape=lambda K, D: (),
    prior_scale_shape=lambda D: (),
    n_parameters=lambda K, D: 1,
    log_det=lambda P, D: D * jnp.log(P),
    squared_mahalanobis=_sq_distances,
    second_moment=lambda r, Xc: jnp.sum(jnp.sum(r, axis=1) * jnp.sum(Xc * Xc, axis=1)),
    pool_second_moments=jnp.sum,
    outer=_outer,
    covariance_estimate=_estimate,
    moments_from_covariance=lambda cov, nk, d: cov * d.shape[1] * jnp.sum(nk) + _outer(nk, d),
    map_covariance_estimate=None,
    from_estimate=lambda S, nk, reg, previous=None: (jax.lax.rsqrt(jnp.maximum(S, 0) + reg), S + reg <= 0),
    covariances=lambda P: 1 / P**2,
    precisions=lambda P: P**2,
    dense_covariances=lambda P, K, D: jnp.broadcast_to(jnp.eye(D, dtype=P.dtype) / P**2, (K, D, D)),
    prec_chol_from_covariances=jax.lax.rsqrt,
    prec_chol_from_precisions=jnp.sqrt,
    to_unconstrained=lambda P: jnp.log(P)[None],
    from_unconstrained=lambda free, K, D: jnp.exp(free[0]),
    variances=lambda P, C: (jnp.reshape(1 / P**2, (1, 1)), jnp.reshape(jnp.trace(C) / C.shape[0], (1, 1))),
    colour=lambda z, labels, P: z / P,
    row_work=lambda K, D, missing: K + D,
    check_values=_check_positive,
    default_prior_scale=lambda cov: np.trace(cov) / cov.shape[0],
)


@pytest.fixture
def shared_sphere():
    """SHARED_SPHERE registered for one test, then taken out of the registry
    again (other tests list the families)."""
    jgmm.register_family(SHARED_SPHERE)
    yield SHARED_SPHERE
    for names in (_covariance._REGISTRY, _covariance._NAMES):
        for name in [n for n, f in names.items() if f is SHARED_SPHERE]:
            del names[name]


def test_a_family_defined_outside_fits_end_to_end(x64, shared_sphere, tmp_path):
    X, _, _ = blobs(seed=3, N=300, D=2, K=3, spread=8.0)
    result = jgmm.fit(jax.random.key(0), X, 3, "test-EII", n_init=2, tol=1e-12, max_iter=500)
    params = result.params
    assert params.covariance_type == "shared-sphere" and params.prec_chol.shape == ()
    assert jgmm.Status(int(result.status)) == jgmm.Status.CONVERGED
    # The EM fixed point is this family's M-step: σ² is the pooled variance about the means.
    resp = np.asarray(jgmm.predict_proba(params, X))
    pooled = np.sum(resp * ((X[:, None, :] - np.asarray(params.means)) ** 2).sum(-1)) / (X.size)
    np.testing.assert_allclose(float(params.covariances), pooled + 1e-6, rtol=1e-3)
    assert jgmm.n_parameters(params) == 2 + 6 + 1

    selection = jgmm.select(jax.random.key(0), X, range(1, 4), ("shared-sphere", "spherical"), n_init=2)
    assert set(selection.to_dict()["covariance_type"]) == {"shared-sphere", "spherical"}
    cell = selection.params("shared-sphere", 3)
    assert cell.prec_chol.shape == () and cell.n_components == 3

    path = tmp_path / "model.npz"
    jgmm.save(path, params)
    loaded = jgmm.load(path)
    assert loaded.covariance_type == "shared-sphere"
    np.testing.assert_array_equal(jgmm.predict(loaded, X), jgmm.predict(params, X))

    samples, labels = jgmm.sample(jax.random.key(1), params, 20_000)
    within = np.asarray(samples) - np.asarray(params.means)[np.asarray(labels)]
    np.testing.assert_allclose(within.var(axis=0), float(params.covariances), rtol=0.05)

    boot = jgmm.bootstrap(jax.random.key(2), X, params, n_boot=8)
    assert boot.replicates.prec_chol.shape == (8,) and np.all(boot.se["covariances"] > 0)

    estimator = GaussianMixture(3, covariance_type="shared-sphere", random_state=0).fit(X)
    assert estimator.covariances_.shape == () and estimator.score(X) == pytest.approx(
        float(np.mean(jgmm.log_prob(estimator.params_, X))), rel=1e-12
    )
    with pytest.raises(ValueError, match="takes no prior"):
        jgmm.fit(jax.random.key(0), X, 3, "shared-sphere", prior="default")


def test_registering_a_taken_name_or_a_non_family_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        jgmm.register_family(jgmm.Family(**{**vars(jgmm.family("full")), "name": "another", "aliases": ("diag",)}))
    with pytest.raises(TypeError, match="jgmm.Family"):
        jgmm.register_family("full")


def test_an_unknown_family_lists_every_name_and_alias():
    with pytest.raises(ValueError, match=r"among \{'EEI', .*'tied'\} \(or an alias: 'EEE', .*'VVV'\)") as info:
        jgmm.fit(jax.random.key(0), np.zeros((5, 2)), 1, "EVV-not-a-family")
    for name in _covariance.accepted_names():  # all 14 of mclust's names, and scikit-learn's four
        assert repr(name) in str(info.value)
    assert len({jgmm.family(name) for name in _covariance.accepted_names()}) == 14


@pytest.mark.parametrize("alias,name", [("VVV", "full"), ("EEE", "tied"), ("VVI", "diag"), ("VII", "spherical")])
def test_mclust_names_are_aliases_of_the_four(alias, name):
    X, _, _ = blobs(seed=4, N=120, D=2, K=2)
    a = jgmm.fit(jax.random.key(0), X.astype(np.float32), 2, alias)
    b = jgmm.fit(jax.random.key(0), X.astype(np.float32), 2, name)
    assert a.params.covariance_type == name
    np.testing.assert_array_equal(a.params.prec_chol, b.params.prec_chol)
    start = dataclasses.replace(b.params, covariance_type=alias)  # parameters under the alias start a fit too
    again = jgmm.fit(jax.random.key(0), X.astype(np.float32), 2, alias, init=start, max_iter=2)
    assert again.params.covariance_type == name and np.isfinite(float(again.log_likelihood))


def test_no_module_outside_the_family_module_switches_on_a_family_name():
    # What the seam forbids: comparisons with a family's name and tables
    # keyed by it (defaults such as covariance_type="full" are fine).
    import ast
    from pathlib import Path

    names = set(jgmm._maths.families.accepted_names())
    package = Path(jgmm.__file__).parent
    switches = []
    for path in sorted(package.rglob("*.py")):
        if path.name == "families.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            operands = []
            if isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
                operands += [e for o in operands if isinstance(o, (ast.Tuple, ast.List, ast.Set)) for e in o.elts]
            elif isinstance(node, ast.Dict):
                operands = node.keys
            for o in operands:
                if isinstance(o, ast.Constant) and o.value in names:
                    switches.append(f"{path.relative_to(package)}:{node.lineno} {o.value!r}")
    assert not switches, switches
