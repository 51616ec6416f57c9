"""Implicit differentiation of a root F(x*, θ) = 0, in forward and reverse mode.

By the implicit function theorem ẋ = −(∂F/∂x)⁻¹ (∂F/∂θ)·θ̇. :func:`implicit_solve`
attaches that rule to a forward solve as a ``custom_jvp`` whose linear solve is
``lax.custom_linear_solve``: JAX can *transpose* it, so reverse mode (``grad``, ``vjp``)
is the transposed rule — one adjoint solve (∂F/∂x)ᵀu = x̄ and one VJP of F, as in
jaxopt's ``root_vjp`` — and forward mode (``jvp``, ``jacfwd``), grad-of-grad and
``jax.hessian`` all work (the idea of optimistix's ``implicit_jvp`` and of lineax's
``linear_solve`` rules). Nothing of the forward iteration is stored.

Every tangent or adjoint solve is accepted on its *true* residual only; a solve that
fails makes the derivative NaN under ``on_failure="nan"`` — every entry of it, including
parameters whose cotangent would otherwise pass through a select and look like a finite
0 — and ``Implicit(report=fn)`` calls ``fn(BackwardInfo)`` (through
``jax.debug.callback``) after each solve, so a user can see what it did:

>>> import jax, jax.numpy as jnp, glrjax
>>> seen = []
>>> mode = glrjax.Implicit(report=seen.append)
>>> A = lambda x, a: a * x
>>> g = jax.grad(lambda a: glrjax.cg(A, jnp.ones(3), a, gradient=mode)[0].sum())(2.0)
>>> float(g), seen[0].kind, bool(seen[0].converged)
(-0.75, 'adjoint', True)
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.flatten_util import ravel_pytree

from glrjax import _krylov
from glrjax.gradients import Implicit

__all__ = ["BackwardInfo", "implicit_solve", "linear_solve"]


class BackwardInfo(NamedTuple):
    """What one implicit tangent/adjoint solve did (passed to ``Implicit(report=...)``)."""

    kind: str  # "tangent" (forward mode, ∂F/∂x ẋ = r) or "adjoint" (reverse, (∂F/∂x)ᵀu = x̄)
    solver: str  # "cg" | "gmres" | "neumann"
    iterations: jax.Array  # int32: operator products taken
    residual: jax.Array  # true relative residual at exit (Neumann: last term / sum)
    result: jax.Array  # int32 code of glrjax.RESULTS
    converged: jax.Array  # bool: result == RESULTS.successful


def _backward_solver(gradient: Implicit, symmetric: bool) -> str:
    if gradient.solver == "auto":
        return "cg" if symmetric else "gmres"
    return gradient.solver


def _krylov_solve(solver: str, gradient: Implicit, matvec, b, precond):
    """Solve matvec(u) = b on a flat vector with the chosen method; (u, SolveInfo)."""
    tol = gradient.backward_tol(b.dtype)
    if solver == "neumann":
        # -J u = b with -J = I - M, M = I + J (= ∂T/∂x for F = T(x) - x): u = -Σ Mⁱ b.
        u, info = _krylov.solve_neumann(
            lambda v: v + matvec(v), -b, tol=tol, maxiter=gradient.maxiter
        )
        return u, info
    if solver == "cg":
        return _krylov.solve_cg(matvec, b, tol=tol, maxiter=gradient.maxiter, precond=precond)
    restart = 30 if gradient.restart is None else gradient.restart
    return _krylov.solve_gmres(matvec, b, tol=tol, maxiter=gradient.maxiter, restart=restart)


def _solver_fn(kind: str, gradient: Implicit, symmetric: bool, precond):
    """A ``solve(matvec, b)`` for ``lax.custom_linear_solve`` (b may be a pytree)."""
    solver = _backward_solver(gradient, symmetric)

    def solve(matvec, b):
        flat_b, unravel = ravel_pytree(b)
        if isinstance(b, jax.Array) and b.ndim:  # one array: keep its shape (XLA's fusions)
            vec, pc, rhs, back = matvec, precond, b, lambda u: u
        else:
            vec = lambda v: ravel_pytree(matvec(unravel(v)))[0]  # noqa: E731
            pc = None if precond is None else (lambda v: ravel_pytree(precond(unravel(v)))[0])
            rhs, back = flat_b, unravel
        u, _ = backward_solve(kind, solver, gradient, vec, rhs, pc)
        return back(u)

    return solve


def backward_solve(kind: str, solver: str, gradient: Implicit, matvec, b, precond=None):
    """Solve ``matvec(u) = b`` by ``solver`` for ``gradient``: ``(u, ok)``.

    ``u`` is NaN when the solve failed and ``gradient.on_failure == "nan"``; the solve is
    passed to ``gradient.report`` as a :class:`BackwardInfo` of this ``kind``.
    """
    u, info = _krylov_solve(solver, gradient, matvec, b, precond)
    ok = info.result == 0
    if gradient.on_failure == "nan":
        u = jnp.where(ok, u, jnp.nan)
    if gradient.report is not None:
        report = BackwardInfo(kind, solver, info.iterations, info.residual, info.result, ok)
        jax.debug.callback(_call_report, gradient.report, report)
    return u, ok


def _call_report(fn, info):
    fn(jax.tree_util.tree_map(lambda a: a if isinstance(a, str) else jnp.asarray(a), info))


def linear_solve(matvec, b, gradient: Implicit, *, symmetric: bool, precond=None):
    """u with matvec(u) = b, transposable by JAX (``lax.custom_linear_solve``).

    The forward (tangent) solve and the transposed (adjoint) solve both use
    ``gradient``'s method, tolerance and failure policy; ``precond`` (v ↦ P v, P ≈ the
    inverse, same definiteness) preconditions CG; for a symmetric operator it serves both.
    """
    transpose_pc = precond if symmetric else None
    return lax.custom_linear_solve(
        matvec,
        b,
        solve=_solver_fn("tangent", gradient, symmetric, precond),
        transpose_solve=_solver_fn("adjoint", gradient, symmetric, transpose_pc),
        symmetric=symmetric,
    )


def _is_float(t) -> bool:
    return (
        hasattr(t, "dtype")
        and t.dtype != jax.dtypes.float0
        and jnp.issubdtype(t.dtype, jnp.inexact)
    )


def _poison_term(tangents, like):
    """Zero in value; its transpose is 0·Σū on every parameter — NaN iff ū holds a NaN.

    Added to the tangent system's right-hand side: a failed adjoint solve (ū NaN) then
    poisons the cotangent of every floating parameter, even those the VJP of F reaches
    only through selects (a projection's inactive entries), which would drop the NaN.
    """
    total = jnp.zeros((), like.dtype)
    for t in jax.tree_util.tree_leaves(tangents):
        if _is_float(t):
            total = total + jnp.sum(t * 0.0).astype(like.dtype)
    return total * 0.0


def implicit_solve(
    forward, optimality, params, x0, gradient: Implicit, symmetric: bool, precond=None
):
    """Run ``forward(params, x0) -> (x, aux)`` with implicit-function derivatives for ``x``.

    ``aux`` (e.g. an ``Info``) gets zero derivative; so does ``x0`` (the solution does not
    depend on the starting point). Values that ``forward``, ``optimality`` or ``precond``
    close over and that are being differentiated are hoisted into explicit arguments with
    ``jax.closure_convert``, so a closure such as ``A = lambda x, args: M @ x`` still gets
    the right derivative for ``M``. ``precond(v, params)`` approximates (∂F/∂x)⁻¹ v for
    CG (the operator is symmetric when CG is used); it gets no derivative.
    """
    x_shape = jax.eval_shape(lambda p, z: forward(p, z)[0], params, x0)
    x_like = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), x_shape)
    fwd_conv, fwd_consts = jax.closure_convert(forward, params, x0)
    opt_conv, opt_consts = jax.closure_convert(optimality, x_like, params)
    if precond is None:
        pc_conv, pc_consts = None, ()
    else:
        pc_conv, pc_consts = jax.closure_convert(precond, x_like, params)

    @jax.custom_jvp
    def solve(params, fwd_consts, opt_consts, pc_consts, x0):
        return fwd_conv(params, x0, *fwd_consts)

    @solve.defjvp
    def solve_jvp(primals, tangents):
        params, fwd_consts, opt_consts, pc_consts, x0 = primals
        d_params, _, d_consts, _, _ = tangents
        x, aux = solve(*primals)  # through the rule again at higher order

        # Tangents of F as transposed VJPs: F may hold custom-VJP kernels (the graph
        # Laplacians) that have no forward rule, and reverse mode then transposes back to
        # exactly those fast VJPs.
        rhs = _jvp_by_transpose(
            lambda p, c: opt_conv(x, p, *c), (params, opt_consts), (d_params, d_consts)
        )
        if gradient.on_failure == "nan":
            leaf = jax.tree_util.tree_leaves(x)[0]
            poison = _poison_term((d_params, d_consts), leaf)
            rhs = jax.tree_util.tree_map(lambda r: r + poison.astype(r.dtype), rhs)
        rhs = jax.tree_util.tree_map(jnp.negative, rhs)
        matvec = _linear_map(lambda z: opt_conv(z, params, *opt_consts), x)  # ∂F/∂x

        pc = None if pc_conv is None else functools.partial(_apply_pc, pc_conv, params, pc_consts)
        if isinstance(x, jax.Array):
            x_dot = linear_solve(matvec, rhs, gradient, symmetric=symmetric, precond=pc)
        else:  # a pytree (a primal-dual pair): one flat system, so that a part of the
            # solution the loss does not use (a symbolic-zero cotangent) never reaches
            # custom_linear_solve as an operand of its own (JAX cannot take it there).
            flat_rhs, unravel = ravel_pytree(rhs)

            def flat(fn):
                return lambda v: ravel_pytree(fn(unravel(v)))[0]

            flat_pc = None if pc is None else flat(pc)
            x_dot = unravel(
                linear_solve(flat(matvec), flat_rhs, gradient, symmetric=symmetric, precond=flat_pc)
            )
        aux_dot = jax.tree_util.tree_map(_zero_tangent, aux)
        return (x, aux), (x_dot, aux_dot)

    return solve(params, fwd_consts, opt_consts, pc_consts, x0)


def _split_float(tree):
    """(float leaves, rebuild(float leaves)) of a pytree; other leaves stay constant."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    mask = [_is_float(leaf) for leaf in leaves]

    def rebuild(floats):
        it = iter(floats)
        return treedef.unflatten(
            [next(it) if m else leaf for leaf, m in zip(leaves, mask, strict=False)]
        )

    return [leaf for leaf, m in zip(leaves, mask, strict=False) if m], mask, rebuild


def _linear_map(fn, primal):
    """v ↦ (∂fn/∂primal)·v, as the transpose of fn's VJP (works through custom VJPs)."""
    out, vjp = jax.vjp(fn, primal)
    transposed = jax.linear_transpose(lambda ct: vjp(ct)[0], out)
    return lambda v: transposed(v)[0]


def _jvp_by_transpose(fn, primals, tangents):
    """(∂fn/∂primals)·tangents over the floating leaves (others held constant)."""
    floats, mask, rebuild = _split_float(primals)
    if not floats:
        out = jax.eval_shape(fn, *primals)
        return jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), out)
    t_leaves = jax.tree_util.tree_leaves(tangents)
    t_floats = [t for t, m in zip(t_leaves, mask, strict=False) if m]
    out, vjp = jax.vjp(lambda fl: fn(*rebuild(fl)), floats)
    transposed = jax.linear_transpose(lambda ct: vjp(ct)[0], out)
    return transposed(t_floats)[0]


def _apply_pc(pc_conv, params, pc_consts, v):
    return pc_conv(v, params, *pc_consts)


def _zero_tangent(a):
    a = jnp.asarray(a)
    if jnp.issubdtype(a.dtype, jnp.inexact):
        return jnp.zeros_like(a)
    return jnp.zeros(a.shape, jax.dtypes.float0)


def root_vjp(optimality, x, params, cotangent, gradient: Implicit, symmetric: bool, precond=None):
    """Cotangent of ``params`` for the solution ``x`` of ``optimality(x, params) = 0``.

    The reverse-mode rule on its own (jaxopt's ``root_vjp``): solve (∂F/∂x)ᵀu = −x̄, return
    (∂F/∂θ)ᵀu; NaN everywhere when the solve fails and ``on_failure == "nan"``.

    >>> import jax.numpy as jnp
    >>> F = lambda x, a: a - x * x  # x* = √a
    >>> float(root_vjp(F, jnp.asarray(2.0), jnp.asarray(4.0), 1.0, Implicit(), False))
    0.25
    """
    x = jax.tree_util.tree_map(jnp.asarray, x)
    cotangent = jax.tree_util.tree_map(lambda c, z: jnp.asarray(c, z.dtype), cotangent, x)
    _, vjp_x = jax.vjp(lambda z: optimality(z, params), x)
    solve = _solver_fn("adjoint", gradient, symmetric, precond)
    u = solve(lambda v: vjp_x(v)[0], jax.tree_util.tree_map(jnp.negative, cotangent))
    _, vjp_params = jax.vjp(lambda p: optimality(x, p), params)
    p_bar = vjp_params(u)[0]
    if gradient.on_failure == "nan":
        bad = ~jnp.all(jnp.isfinite(ravel_pytree(u)[0]))
        p_bar = jax.tree_util.tree_map(
            lambda g: g if g.dtype == jax.dtypes.float0 else jnp.where(bad, jnp.nan, g), p_bar
        )
    return p_bar
