"""How jgmm's programs are compiled: one wrapper, ``jit``, for every program.

Every program runs its float32 matrix products at full precision
(``full_precision``): on NVIDIA GPUs the float32 default is TF32, whose
~1e-3 error in the log-likelihood made EM's |ΔL| < tol fire late, and made
``bic`` and ``score`` disagree with ``fit``. On CPU the programs are
compiled with options that make them compile faster and run as fast or
faster.

Measured with experiments/bench_select.py (2-core CPU): LLVM's lighter
optimisation level and XLA's older fusion code generator (instead of the
MLIR fusion emitters) take a cold model selection from 10.5 s to 7.7 s, the
warm one from 2.9 s to 2.7 s, and the test suite from 11 to 8 minutes. The
older code generator is being retired upstream; a jaxlib without it refuses
the option ("No such compile option"), so it is used only where accepted.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

CPU_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}
FUSION_EMITTERS_OFF = {"xla_cpu_use_fusion_emitters": False}
NESTED_JIT_ERROR = "`compiler_options` can only be passed to top-level `jax.jit`"


@functools.cache
def cpu_compiler_options() -> dict:
    """``CPU_COMPILER_OPTIONS``, with ``FUSION_EMITTERS_OFF`` if this XLA knows it."""
    try:
        jax.jit(lambda x: x + 1, compiler_options=FUSION_EMITTERS_OFF).lower(jnp.zeros(())).compile()
    except jax.errors.JaxRuntimeError:
        return CPU_COMPILER_OPTIONS
    return {**CPU_COMPILER_OPTIONS, **FUSION_EMITTERS_OFF}


def full_precision(function):
    """``function`` traced with matrix products at full float32/float64
    precision (``jax.default_matmul_precision("highest")``; the setting is
    part of JAX's compilation cache key, so it applies to what ``function``
    traces, compiled or eager)."""

    @functools.wraps(function)
    def wrapped(*args, **kwargs):
        with jax.default_matmul_precision("highest"):
            return function(*args, **kwargs)

    return wrapped


@functools.cache
def jitted(fun, static_argnames: tuple, backend: str | None):
    """``fun`` under ``jax.jit`` for ``backend``, with ``cpu_compiler_options()``
    on CPU; ``backend=None``: without options."""
    options = cpu_compiler_options() if backend == "cpu" else None
    return jax.jit(fun, static_argnames=static_argnames, compiler_options=options)


def jit(fun=None, *, static_argnames=(), options: bool = True):
    """``jax.jit`` (as a decorator too) at full precision (``full_precision``),
    compiling for the default backend with its options (``jitted``);
    ``.lower`` as jax.jit's. ``options=False``: never with compiler options,
    for a program that runs inside a transformation (a derivative rule)."""
    if fun is None:
        return functools.partial(jit, static_argnames=static_argnames, options=options)
    static_argnames = (static_argnames,) if isinstance(static_argnames, str) else tuple(static_argnames)
    program = lambda: jitted(fun, static_argnames, jax.default_backend() if options else None)

    @functools.wraps(fun)
    @full_precision
    def run(*args, **kwargs):
        try:
            return program()(*args, **kwargs)
        except ValueError as err:
            # Called inside a caller's jax.jit (or scan, cond, ...): JAX takes
            # compiler options only at the top level, and the caller's jit
            # compiles this program as part of its own.
            if NESTED_JIT_ERROR not in str(err):
                raise
        return jitted(fun, static_argnames, None)(*args, **kwargs)

    run.lower = full_precision(lambda *args, **kwargs: program().lower(*args, **kwargs))
    return run
