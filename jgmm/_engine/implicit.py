"""Derivatives of a fit by implicit differentiation at its fixed point.

EM stops at parameters θ* with θ* = T(θ*, a), T one EM iteration (E-step
and M-step) and a the data, weights and hyper-parameters. Differentiating
that identity gives the implicit function theorem,

    dθ*/da = (I - ∂T/∂θ)⁻¹ ∂T/∂a,

so a derivative of the fit costs one linear solve with I - ∂T/∂θ, whose
products are derivatives of one EM iteration, instead of differentiating
every iteration EM took (reverse mode cannot differentiate the
``while_loop``, whose length depends on the data). The eigenvalues of ∂T/∂θ
at a maximum are EM's rates of convergence, in [0, 1), so the system is
well posed and GMRES solves it in few products unless EM itself was slow
(docs/derivation.md §14). The solve is a ``lax.custom_linear_solve``, so
forward and reverse mode both work, at any order of composition with
``jit`` and ``vmap``.

The result is the derivative of the exact fixed point: a fit stopped by
``tol`` is close to one, and its derivative is as close as the fit.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jgmm._compile import jit
from jgmm._maths.validation import is_tracer

GMRES_RESTART = 30
GMRES_MAXITER = 10  # restarts: up to 300 products with ∂T/∂θ


def _zero_tangent(x):
    """A zero tangent for an output: float0 for integers and booleans."""
    if jnp.issubdtype(x.dtype, jnp.inexact):
        return jnp.zeros_like(x)
    return np.zeros(x.shape, jax.dtypes.float0)


def _solve(matvec, b):
    """x with matvec(x) = b, by GMRES at a tolerance set by b's precision."""
    tol = 10 * jnp.finfo(jax.tree.leaves(b)[0].dtype).eps ** 0.75
    x, _ = jax.scipy.sparse.linalg.gmres(matvec, b, tol=tol, atol=0.0, restart=GMRES_RESTART, maxiter=GMRES_MAXITER)
    return x


def fixed_point(solve, update, args):
    """``solve(*args)``, a FitResult whose ``params`` are a fixed point of
    ``update``, differentiated implicitly with respect to ``args``.

    Args:
      solve: the fit, ``solve(*args) -> FitResult``.
      update: ``update(params, *args) -> (T(params), L(params))``, one EM
        iteration and the mean log-likelihood of ``params``.
      args: tuple of the fit's array arguments (any pytrees).

    Only ``params`` and ``log_likelihood`` carry derivatives; ``history``
    and the integer fields have zero tangents. Called on concrete arrays
    (nothing traced, so nothing to differentiate), it is ``solve(*args)``.
    """
    if not any(map(is_tracer, jax.tree.leaves(args))):
        return solve(*args)
    return _fixed_point(solve, update, args)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _fixed_point(solve, update, args):
    return solve(*args)


@_fixed_point.defjvp
def _fixed_point_jvp(solve, update, primals, tangents):
    (args,), (dargs,) = primals, tangents
    result = solve(*args)
    dtheta, dL = _tangents(update, result.params, args, dargs)
    tangent = jax.tree.map(_zero_tangent, result)._replace(params=dtheta, log_likelihood=dL)
    return result, tangent


@jit(static_argnames="update", options=False)
def _tangents(update, theta, args, dargs):
    """(dθ*, dL*) for tangents ``dargs`` of ``args``: (32) of derivation.md
    §14, compiled as one program (``update`` must be the same object for the
    same update to reuse it)."""
    _, (dT_a, dL_a) = jax.jvp(lambda *a: update(theta, *a), args, dargs)
    T_theta = lambda t: jax.jvp(lambda p: update(p, *args)[0], (theta,), (t,))[1]
    minus = lambda t: jax.tree.map(jnp.subtract, t, T_theta(t))  # (I - ∂T/∂θ) t
    dtheta = jax.lax.custom_linear_solve(minus, dT_a, _solve, _solve)
    return dtheta, dL_a + jax.jvp(lambda p: update(p, *args)[1], (theta,), (dtheta,))[1]
