"""Calls every public numeric entry point once, with JAX writing each program
it lowers to OUT_DIR (jax_dump_ir_to); run by tests/test_precision.py in a
fresh process, so that every program is lowered anew. Usage:
precision_programs.py OUT_DIR. Ends with one bare ``jax.jit`` product,
``unguarded_control``, which the test must find at default precision."""

import sys

import jax

jax.config.update("jax_dump_ir_to", sys.argv[1])
jax.config.update("jax_enable_compilation_cache", False)

import jax.numpy as jnp  # noqa: E402
import matplotlib  # noqa: E402
import numpy as np  # noqa: E402

import jgmm  # noqa: E402
from jgmm.sklearn import GaussianMixture  # noqa: E402


def main():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (20, 3)), rng.normal(4, 1, (17, 3))]).astype(np.float32)
    key = jax.random.key(0)
    result = jgmm.fit(key, X, 2, n_init=2, max_iter=5)
    params = result.params
    resp = jnp.exp(jgmm.e_step(params, X)[0])
    stats = jgmm.suff_stats(resp, X, covariance_type="full")
    jgmm.params_from_stats(stats, "full")
    jgmm.m_step(resp, X, "diag")
    jgmm.m_step(resp, X, "EVE")  # an M-step with inner iterations
    for score in (jgmm.log_prob, jgmm.predict, jgmm.predict_proba, jgmm.bic, jgmm.aic, jgmm.icl):
        score(params, X)
    jgmm.sample(key, params, 5)
    jgmm.online_step(jgmm.online_init(params), X)
    jgmm.fit(key, X, 2, max_iter=3, prior="default")
    missing = X.copy()
    missing[0, 1] = np.nan
    jgmm.fit(key, missing, 2, max_iter=3, missing="marginalize")
    jgmm.select(key, X, (1, 2), ("full", "diag"), n_init=1, max_iter=3)
    jgmm.fit_gradient(key, X, 2, max_iter=3)
    jgmm.bootstrap(key, X, params, n_boot=2, max_iter=3)
    jgmm.fit_stream(key, X, 2, max_iter=3)
    jgmm.fit_variational(key, X, 2, max_iter=3)
    jax.grad(lambda X: jgmm.fit(key, X, 2, init=params, max_iter=3).log_likelihood)(jnp.asarray(X))
    estimator = GaussianMixture(2, max_iter=3, random_state=0).fit(X)
    for method in (estimator.score_samples, estimator.predict, estimator.predict_proba, estimator.bic, estimator.aic):
        method(X)
    estimator.sample(3)
    estimator.partial_fit(X)
    GaussianMixture(2, max_iter=3, precisions_init=np.stack([np.eye(3)] * 2), random_state=0).fit(X.astype(np.float64))
    matplotlib.use("Agg")
    line = X[:, :1]
    jgmm.plot_mixture(jgmm.fit(key, line, 2, max_iter=3).params, line)

    def unguarded_control(a, b):
        return a @ b

    jax.jit(unguarded_control)(X, X.T)


if __name__ == "__main__":
    main()
