"""Full-precision matrix products for the public entry points."""

import functools

import jax


def full_precision(function):
    """Run ``function`` with matrix products at full float32/float64 precision.

    TF32, the default for float32 products on recent NVIDIA GPUs, perturbs
    log-likelihoods by about 1e-3, which makes EM's |ΔL| < tol test fire late
    or at random. The setting is part of JAX's compilation cache key, so it
    applies to what ``function`` traces.
    """

    @functools.wraps(function)
    def wrapped(*args, **kwargs):
        with jax.default_matmul_precision("highest"):
            return function(*args, **kwargs)

    return wrapped
