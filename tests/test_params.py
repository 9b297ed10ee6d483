"""GMMParams as an immutable pytree with static covariance_type."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import FAMILIES, blobs

import jgmm


def fitted(covariance_type, seed=0):
    X, _, _ = blobs(seed, N=120, D=3, K=2)
    return jgmm.fit(jax.random.key(seed), X, 2, covariance_type).params


def test_params_are_a_pytree_with_static_covariance_type():
    params = fitted("diag")
    leaves, treedef = jax.tree.flatten(params)
    assert len(leaves) == 3
    assert "diag" in str(treedef)
    rebuilt = jax.tree.unflatten(treedef, leaves)
    assert rebuilt.covariance_type == "diag"
    doubled = jax.tree.map(lambda a: 2 * a, params)
    assert doubled.covariance_type == "diag"
    np.testing.assert_allclose(doubled.means, 2 * params.means)


def test_params_are_frozen():
    params = fitted("full")
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.means = params.means + 1


def test_params_pass_through_jit_and_vmap():
    params = fitted("spherical")
    assert jax.jit(lambda p: p).__call__(params).covariance_type == "spherical"
    stacked = jax.tree.map(lambda a: jnp.stack([a, a + 1]), params)
    means = jax.vmap(lambda p: p.means)(stacked)
    assert means.shape == (2, 2, 3)


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_prec_chol_shapes_follow_scikit_learn(covariance_type):
    params = fitted(covariance_type)
    K, D = 2, 3
    expected = {"full": (K, D, D), "tied": (D, D), "diag": (K, D), "spherical": (K,)}
    assert params.prec_chol.shape == expected[covariance_type]
    assert params.n_components == K and params.n_features == D


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_covariances_and_precisions_are_inverse(x64, covariance_type):
    params = fitted(covariance_type)
    cov, prec = np.asarray(params.covariances), np.asarray(params.precisions)
    if covariance_type in ("full", "tied"):
        eye = np.broadcast_to(np.eye(3), cov.shape)
        np.testing.assert_allclose(cov @ prec, eye, atol=1e-10)
    else:
        np.testing.assert_allclose(cov * prec, 1.0, rtol=1e-12)
