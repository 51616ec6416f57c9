"""Implicit differentiation of a root F(x*, θ) = 0 by a custom VJP.

By the implicit function theorem, ∂x*/∂θ = -(∂F/∂x)⁻¹ ∂F/∂θ, so the vector-Jacobian
product of a cotangent x̄ is (∂F/∂θ)ᵀ u with (∂F/∂x)ᵀ u = -x̄ — one adjoint linear solve
and two VJPs of F (Blondel et al. 2022, the idea of jaxopt's ``root_vjp``). Nothing
of the forward iteration is stored.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from glrjax import _krylov
from glrjax.gradients import Implicit

__all__ = ["root_vjp", "implicit_solve"]


def _backward_solver(gradient: Implicit, symmetric: bool) -> str:
    if gradient.solver == "auto":
        return "cg" if symmetric else "gmres"
    return gradient.solver


def root_vjp(optimality, x, params, cotangent, gradient: Implicit, symmetric: bool, precond=None):
    """Cotangent of ``params`` for the solution ``x`` of ``optimality(x, params) = 0``.

    Args:
        optimality: F(x, params), same structure as ``x``; zero at the solution.
        x: the solution (an array or a pytree of arrays, e.g. a primal-dual pair).
        params: pytree of differentiable inputs of F.
        cotangent: x̄, the cotangent of ``x``.
        gradient: the :class:`~glrjax.Implicit` mode (backward solver and tolerances).
        symmetric: whether ∂F/∂x is symmetric (lets ``"auto"`` choose CG).
        precond: optional ``v -> P v`` with P ≈ ((∂F/∂x)ᵀ)⁻¹ (same shape as ``x``), used
            by the backward CG; e.g. -M⁻¹ for F = b - Ax with a forward preconditioner M⁻¹.

    Returns:
        The cotangent of ``params``; NaN everywhere when the backward solve failed and
        ``gradient.on_failure == "nan"``.
    """
    if isinstance(x, jax.Array):  # one array: solve in its own shape (keeps XLA's fusions)
        flat_x, unravel = x, lambda z: z
        cotangent = jnp.asarray(cotangent, x.dtype)
        _, vjp_x = jax.vjp(lambda z: optimality(z, params), x)
    else:  # a pytree (e.g. a primal-dual pair): solve on the flattened vector
        flat_x, unravel = ravel_pytree(x)
        cotangent = ravel_pytree(cotangent)[0].astype(flat_x.dtype)
        _, vjp_x = jax.vjp(lambda z: ravel_pytree(optimality(unravel(z), params))[0], flat_x)

    def jt(u):  # (∂F/∂x)ᵀ u
        return vjp_x(u)[0]

    solver = _backward_solver(gradient, symmetric)
    if solver == "neumann":
        # -(∂F/∂x)ᵀ u = x̄ with -(∂F/∂x)ᵀ = I - M, M = I + (∂F/∂x)ᵀ = (∂T/∂x)ᵀ for F = T(x) - x.
        u, ok, _ = _krylov.solve_neumann(lambda v: v + jt(v), cotangent, maxiter=gradient.maxiter)
    elif solver == "cg":
        u, ok, _ = _krylov.solve_cg(
            jt, -cotangent, tol=gradient.tol, maxiter=gradient.maxiter, precond=precond
        )
    else:
        u, ok, _ = _krylov.solve_gmres(jt, -cotangent, tol=gradient.tol, maxiter=gradient.maxiter)
    if gradient.on_failure == "nan":
        u = jnp.where(ok, u, jnp.nan)
    _, vjp_params = jax.vjp(lambda p: optimality(x, p), params)
    p_bar = vjp_params(unravel(u))[0]
    if gradient.on_failure == "nan":
        # A NaN u need not reach every parameter: selects (a projection's inactive
        # entries) drop it, leaving a finite-looking 0. Poison them all.
        p_bar = jax.tree_util.tree_map(_poison(ok), p_bar)
    return p_bar


def _poison(ok):
    """NaN out a floating cotangent when ``ok`` is False (integer inputs have float0 ones)."""

    def fn(g):
        if g.dtype == jax.dtypes.float0:
            return g
        return jnp.where(ok, g, jnp.nan)

    return fn


def implicit_solve(
    forward, optimality, params, x0, gradient: Implicit, symmetric: bool, precond=None
):
    """Run ``forward(params, x0) -> (x, aux)`` with an implicit-function VJP for ``x``.

    ``aux`` (e.g. an ``Info``) is returned unchanged and gets no gradient; ``x0`` gets a
    zero cotangent (the solution does not depend on the starting point). Values that
    ``forward`` or ``optimality`` close over and that are being differentiated are
    hoisted into explicit arguments with ``jax.closure_convert``, so a closure such as
    ``A = lambda x, args: M @ x`` still gets the right gradient for ``M``. ``precond(v,
    params)`` (optional) approximates ((∂F/∂x)ᵀ)⁻¹ v for the backward CG; it gets no
    gradient.
    """
    x_shape = jax.eval_shape(lambda p, z: forward(p, z)[0], params, x0)
    x_like = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), x_shape)
    fwd_conv, fwd_consts = jax.closure_convert(forward, params, x0)
    opt_conv, opt_consts = jax.closure_convert(optimality, x_like, params)
    if precond is None:
        pc_conv, pc_consts = None, ()
    else:
        pc_conv, pc_consts = jax.closure_convert(precond, x_like, params)

    @jax.custom_vjp
    def solve(params, fwd_consts, opt_consts, pc_consts, x0):
        return fwd_conv(params, x0, *fwd_consts)

    def solve_fwd(params, fwd_consts, opt_consts, pc_consts, x0):
        x, aux = fwd_conv(params, x0, *fwd_consts)
        return (x, aux), (x, params, fwd_consts, opt_consts, pc_consts, x0)

    def solve_bwd(res, cts):
        x, params, fwd_consts, opt_consts, pc_consts, x0 = res
        x_bar = cts[0]

        def opt(z, p_and_c):
            p, c = p_and_c
            return opt_conv(z, p, *c)

        pc = None if pc_conv is None else (lambda v: pc_conv(v, params, *pc_consts))
        p_bar, c_bar = root_vjp(opt, x, (params, opt_consts), x_bar, gradient, symmetric, pc)
        zeros = jax.tree_util.tree_map(jnp.zeros_like, (fwd_consts, pc_consts, x0))
        return p_bar, zeros[0], c_bar, zeros[1], zeros[2]

    solve.defvjp(solve_fwd, solve_bwd)
    return solve(params, fwd_consts, opt_consts, pc_consts, x0)
