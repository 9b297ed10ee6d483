"""Parity with R's mclust: the M-step from given responsibilities (mstep) and
EM from them (me), against values mclust 6.0.0 computed
(tests/fixtures/mclust_reference.R wrote tests/fixtures/mclust_reference.json;
the suite does not need R). Every registered family that has one of
mclust's three-letter names is compared."""

import json
from pathlib import Path

import jax
import numpy as np
import pytest

import jgmm

REFERENCE = json.loads((Path(__file__).parent / "fixtures" / "mclust_reference.json").read_text())
MODELS = [name for name in REFERENCE if name in jgmm._maths.families.accepted_names()]


def array(entry):
    """An array the R script wrote (column-major, with its dim)."""
    return np.asarray(entry["values"], np.float64).reshape(entry["dim"], order="F")


def mclust_parameters(entry):
    """(weights (K,), means (K, D), covariances (K, D, D)) from mclust's pro, mean, sigma."""
    return array(entry["pro"]), array(entry["mean"]).T, np.moveaxis(array(entry["sigma"]), -1, 0)


def ours(params):
    return tuple(np.asarray(a) for a in (params.weights, params.means, params.dense_covariances))


def test_the_fixture_covers_mclusts_models_and_the_registered_ones():
    assert REFERENCE["mclust"] == "6.0.0"
    assert len([name for name in REFERENCE if len(name) == 3 and name.isupper()]) == 14
    assert {"VVV", "EEE", "VVI", "VII"} <= set(MODELS)


@pytest.mark.parametrize("model", MODELS)
def test_m_step_from_given_responsibilities_equals_mclusts(x64, model):
    X, z = array(REFERENCE["X"]), array(REFERENCE["z"])
    params = jgmm.m_step(z, X, model, reg_covar=0.0)
    for a, b in zip(ours(params), mclust_parameters(REFERENCE[model]["mstep"])):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("model", MODELS)
def test_em_from_given_responsibilities_reaches_mclusts_fit(x64, model):
    X, z = array(REFERENCE["X"]), array(REFERENCE["z"])
    start = jgmm.m_step(z, X, model, reg_covar=0.0)
    result = jgmm.fit(jax.random.key(0), X, start.n_components, model, init=start, tol=1e-14, max_iter=5000,
                      reg_covar=0.0)
    expected = REFERENCE[model]["me"]
    assert jgmm.Status(int(result.status)) == jgmm.Status.CONVERGED
    N = X.shape[0]
    np.testing.assert_allclose(float(result.log_likelihood) * N, expected["loglik"], rtol=1e-12)
    assert jgmm.n_parameters(result.params) == expected["n_parameters"]
    np.testing.assert_allclose(-float(jgmm.bic(result.params, X)), expected["bic"], rtol=1e-12)
    # Both stopped at |ΔL| ~ 1e-15 relative; parameters move ~sqrt of that per iteration there.
    for a, b in zip(ours(result.params), mclust_parameters(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
