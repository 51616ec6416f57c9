"""Implicit differentiation of the M-step's PGD fixed point, solved on VJPs only.

The M-step's fixed-point map contains the Θ⁻¹ CG solves; under :class:`~glrjax.Implicit`
their own VJPs are custom rules holding ``while_loop`` s, which JAX cannot transpose, so
the backward system (∂F/∂x)ᵀu = −x̄ is solved here by glrjax's restarted GMRES (or the
Neumann series), which only applies the operator: VJPs of the fixed-point residual. The
solve is accepted on its true residual and reported to ``Implicit(report=...)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from glrjax.gradients import Implicit
from glrjax.implicit import backward_solve


def _poison(ok):
    def fn(g):
        if g.dtype == jax.dtypes.float0:
            return g
        return jnp.where(ok, g, jnp.nan)

    return fn


def fixed_point_solve(forward, optimality, params, x0, gradient: Implicit):
    """``forward(params, x0) -> (x, aux)`` with the implicit VJP of ``optimality(x, params) = 0``.

    Like :func:`glrjax.implicit.implicit_solve` (closure-converted, ``aux`` and ``x0`` get no
    gradient), with the backward system (∂F/∂x)ᵀu = −x̄ solved by glrjax's GMRES (solver
    ``"auto"``/``"gmres"``) or the Neumann series (``"neumann"``). The cotangent is
    normalised by the solver (tiny float32 cotangents would underflow). NaN cotangents
    when the solve fails and ``gradient.on_failure == "nan"``.
    """
    x_shape = jax.eval_shape(lambda p, z: forward(p, z)[0], params, x0)
    x_like = jnp.zeros(x_shape.shape, x_shape.dtype)
    fwd_conv, fwd_consts = jax.closure_convert(forward, params, x0)
    opt_conv, opt_consts = jax.closure_convert(optimality, x_like, params)

    @jax.custom_vjp
    def solve(params, fwd_consts, opt_consts, x0):
        return fwd_conv(params, x0, *fwd_consts)

    def solve_fwd(params, fwd_consts, opt_consts, x0):
        x, aux = fwd_conv(params, x0, *fwd_consts)
        return (x, aux), (x, params, fwd_consts, opt_consts, x0)

    def solve_bwd(res, cts):
        x, params, fwd_consts, opt_consts, x0 = res
        x_bar = jnp.asarray(cts[0], x.dtype)
        _, vjp_x = jax.vjp(lambda z: opt_conv(z, params, *opt_consts), x)

        def jt(u):  # (∂F/∂x)ᵀ u
            return vjp_x(u)[0]

        solver = "neumann" if gradient.solver == "neumann" else "gmres"
        u, ok = backward_solve("adjoint", solver, gradient, jt, -x_bar)
        _, vjp_p = jax.vjp(lambda p, c: opt_conv(x, p, *c), params, opt_consts)
        p_bar, c_bar = vjp_p(u)
        if gradient.on_failure == "nan":
            p_bar, c_bar = jax.tree_util.tree_map(_poison(ok), (p_bar, c_bar))
        zeros = jax.tree_util.tree_map(jnp.zeros_like, (fwd_consts, x0))
        return p_bar, zeros[0], c_bar, zeros[1]

    solve.defvjp(solve_fwd, solve_bwd)
    return solve(params, fwd_consts, opt_consts, x0)
