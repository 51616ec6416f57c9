"""Implicit differentiation of the M-step's PGD fixed point with a transpose-free GMRES.

The M-step's fixed-point map contains the Θ⁻¹ CG solves; under :class:`~glrjax.Implicit`
their own VJPs are custom rules holding ``while_loop`` s, which JAX cannot transpose. The
engine's backward GMRES (``jax.scipy.sparse.linalg.gmres`` through ``custom_linear_solve``)
transposes its operator at trace time and fails there. This module's GMRES only applies the
operator (VJPs of the fixed-point residual), so it works through any inner solver.

Kept private to :mod:`glrjax.gem`; when the engine's GMRES stops transposing its operator,
:func:`fixed_point_solve` reduces to ``glrjax.implicit.implicit_solve``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from glrjax import _krylov
from glrjax.gradients import Implicit

RESTART = 30  # Krylov vectors per GMRES cycle


def gmres(matvec, b, *, tol, maxiter: int, restart: int = RESTART):
    """Solve ``matvec(u) = b`` by restarted GMRES (classical Gram–Schmidt, twice).

    Only applies ``matvec``; convergence is certified on the true residual ‖b − A u‖ after
    every cycle. Returns ``(u, converged, matvecs)``.
    """
    shape, dtype = b.shape, b.dtype
    n = b.size
    m = int(max(1, min(restart, n, maxiter)))
    cycles = max(1, -(-int(maxiter) // m))
    flat_b = b.reshape(-1)
    bnorm = _krylov.norm(flat_b)
    eps = jnp.finfo(dtype).eps
    bound = jnp.maximum(jnp.asarray(tol, dtype), 100.0 * eps) * bnorm

    def mv(v):
        return matvec(v.reshape(shape)).reshape(-1).astype(dtype)

    def cycle(x):
        r = flat_b - mv(x)
        beta = _krylov.norm(r)
        basis = jnp.zeros((m + 1, n), dtype).at[0].set(_krylov.safe_div(r, beta))
        hess = jnp.zeros((m + 1, m), dtype)

        def step(k, carry):
            basis, hess = carry
            w = mv(basis[k])
            mask = (jnp.arange(m + 1) <= k).astype(dtype)
            h = _krylov.matmul(basis, w) * mask
            w = w - _krylov.matmul(h, basis)
            h2 = _krylov.matmul(basis, w) * mask
            w = w - _krylov.matmul(h2, basis)
            h = h + h2
            hn = _krylov.norm(w)
            hess = hess.at[:, k].set(h.at[k + 1].set(hn))
            basis = basis.at[k + 1].set(_krylov.safe_div(w, hn))
            return basis, hess

        basis, hess = lax.fori_loop(0, m, step, (basis, hess))
        rhs = jnp.zeros((m + 1,), dtype).at[0].set(beta)
        y = jnp.linalg.lstsq(hess, rhs)[0]
        return x + _krylov.matmul(y, basis[:m])

    def cond(carry):
        x, res, k = carry
        return (k < cycles) & (res > bound) & jnp.isfinite(res)

    def body(carry):
        x, _, k = carry
        x = cycle(x)
        return x, _krylov.norm(flat_b - mv(x)), k + 1

    x0 = jnp.zeros((n,), dtype)
    x, res, k = lax.while_loop(cond, body, (x0, bnorm, jnp.asarray(0, jnp.int32)))
    converged = (res <= bound) & jnp.all(jnp.isfinite(x))
    return x.reshape(shape), converged, k * m


def _poison(ok):
    def fn(g):
        if g.dtype == jax.dtypes.float0:
            return g
        return jnp.where(ok, g, jnp.nan)

    return fn


def fixed_point_solve(forward, optimality, params, x0, gradient: Implicit):
    """``forward(params, x0) -> (x, aux)`` with the implicit VJP of ``optimality(x, params) = 0``.

    Like :func:`glrjax.implicit.implicit_solve` (closure-converted, ``aux`` and ``x0`` get no
    gradient), with the backward system (∂F/∂x)ᵀu = −x̄ solved by :func:`gmres` (solver
    ``"auto"``/``"gmres"``) or the Neumann series (``"neumann"``). The cotangent is
    normalised before the solve (tiny float32 cotangents would underflow). NaN cotangents
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
        scale = _krylov.norm(x_bar)
        scale = jnp.where(scale > 0, scale, jnp.ones_like(scale))
        _, vjp_x = jax.vjp(lambda z: opt_conv(z, params, *opt_consts), x)

        def jt(u):  # (∂F/∂x)ᵀ u
            return vjp_x(u)[0]

        b = x_bar / scale
        if gradient.solver == "neumann":
            u, info = _krylov.solve_neumann(
                lambda v: v + jt(v), b, tol=gradient.tol, maxiter=gradient.maxiter
            )
            ok = info.result == 0
        else:
            u, ok, _ = gmres(jt, -b, tol=gradient.tol, maxiter=gradient.maxiter)
        u = u * scale
        if gradient.on_failure == "nan":
            u = jnp.where(ok, u, jnp.nan)
        _, vjp_p = jax.vjp(lambda p, c: opt_conv(x, p, *c), params, opt_consts)
        p_bar, c_bar = vjp_p(u)
        if gradient.on_failure == "nan":
            p_bar, c_bar = jax.tree_util.tree_map(_poison(ok), (p_bar, c_bar))
        zeros = jax.tree_util.tree_map(jnp.zeros_like, (fwd_consts, x0))
        return p_bar, zeros[0], c_bar, zeros[1]

    solve.defvjp(solve_fwd, solve_bwd)
    return solve(params, fwd_consts, opt_consts, x0)
