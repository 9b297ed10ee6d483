"""How programs are compiled (jgmm._compile)."""

import jax
import jax.numpy as jnp
import numpy as np

from jgmm import _compile


def test_an_option_this_xla_refuses_is_left_out(monkeypatch):
    monkeypatch.setattr(_compile, "FUSION_EMITTERS_OFF", {"xla_cpu_no_such_option": False})
    assert _compile.cpu_compiler_options.__wrapped__() == _compile.CPU_COMPILER_OPTIONS


def test_jit_compiles_once_per_static_argument_and_lowers():
    calls = []

    @_compile.jit(static_argnames="power")
    def f(x, power):
        calls.append(power)  # runs while tracing only
        return x**power

    x = jnp.arange(3.0)
    np.testing.assert_allclose(f(x, power=2), [0, 1, 4])
    np.testing.assert_allclose(f(x + 1, power=2), [1, 4, 9])
    np.testing.assert_allclose(f(x, power=3), [0, 1, 8])
    assert calls == [2, 3]
    assert "stablehlo.multiply" in f.lower(x, power=2).as_text()


def test_a_program_inside_a_callers_jit_drops_the_options():
    """JAX takes compiler options only at the top level: nested in a caller's
    jit, the program is traced into the caller's, which compiles it."""
    square = _compile.jit(lambda x: x**2)
    x = jnp.arange(3.0)
    np.testing.assert_allclose(jax.jit(lambda x: square(x) + 1)(x), [1, 2, 5])
    np.testing.assert_allclose(jax.lax.scan(lambda c, x: (c + square(x), None), 0.0, x)[0], 5)
