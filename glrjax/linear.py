"""Conjugate gradient for symmetric positive definite operators, under any gradient mode.

``cg`` solves A(x, args) = b where ``A`` is a linear operator given as a function of
explicit arguments, so gradients reach ``b`` and ``args`` (and, in the unrolled modes,
``x0`` and the learned step-size schedules ``alpha``/``beta``).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.flatten_util import ravel_pytree

from glrjax import _krylov
from glrjax._eager import cached, validated
from glrjax._validate import (
    call_user,
    check_float_array,
    check_maxiter,
    check_solver_array,
    check_tol,
    is_pytree_of_arrays,
)
from glrjax.gradients import GradientMode, Implicit, check_gradient
from glrjax.iterate import Info, Iteration, iterate

__all__ = ["cg", "chebyshev_steps", "jacobi", "Info"]


def jacobi(diagonal):
    """Jacobi preconditioner r ↦ r / diag(A).

    Args:
        diagonal: the diagonal of A as an array shaped like ``b``, or a function
            ``diagonal(args)`` returning it (so it follows traced operator arguments).

    Returns:
        ``precond(r, args)`` for :func:`cg`.

    >>> import jax.numpy as jnp, glrjax
    >>> A = lambda x, d: d * x
    >>> d = jnp.array([1.0, 10.0, 100.0])
    >>> x, info = glrjax.cg(A, jnp.ones(3), d, precond=glrjax.jacobi(lambda d: d))
    >>> int(info.iterations)  # the preconditioned operator is the identity
    1
    """
    if callable(diagonal):
        return lambda r, args: r / diagonal(args)
    diagonal = jnp.asarray(diagonal)
    return lambda r, args: r / diagonal


def _check_schedule(s, name: str, maxiter: int, dtype) -> jax.Array | None:
    if s is None:
        return None
    s = check_float_array(s, name)
    if s.shape != (maxiter,):
        raise ValueError(
            f"{name} has shape {s.shape}; a step-size schedule needs one value per "
            f"iteration, shape (maxiter,) = ({maxiter},)."
        )
    return s.astype(dtype)


def _cg_on_pytrees(solver):
    """Let ``cg`` take a pytree ``b`` (and ``x0``): A maps trees shaped like b to such trees."""

    @functools.wraps(solver)
    def wrapper(A, b, args=None, **kwargs):
        if not is_pytree_of_arrays(b):
            return solver(A, b, args, **kwargs)
        flat, unravel = ravel_pytree(b)
        if kwargs.get("x0") is not None:
            kwargs["x0"] = ravel_pytree(kwargs["x0"])[0]
        precond = kwargs.get("precond")
        if callable(precond):
            kwargs["precond"] = lambda r, a: ravel_pytree(precond(unravel(r), a))[0].astype(r.dtype)

        def A_flat(v, a):
            return ravel_pytree(A(unravel(v), a))[0].astype(v.dtype)

        x, info = solver(A_flat, flat, args, **kwargs)
        return unravel(x), info

    return wrapper


@_cg_on_pytrees
@cached
def cg(
    A,
    b,
    args=None,
    *,
    x0=None,
    tol=1e-6,
    rtol=None,
    atol=0.0,
    maxiter: int = 100,
    precond=None,
    alpha=None,
    beta=None,
    gradient: GradientMode = Implicit(),
) -> tuple[jax.Array, Info]:
    """Solve A(x, args) = b for a symmetric positive definite linear operator A.

    Args:
        A: ``A(x, args) -> Ax``, linear in ``x``, same shape and dtype as ``b``.
        b: right-hand side, a floating array of any shape (treated as one flat vector;
            use ``jax.vmap`` for a batch of independent systems).
        args: pytree of arrays the operator depends on; gradients flow to it.
        x0: starting point (zeros by default).
        tol: relative tolerance: stop when ‖b − Ax‖ ≤ tol·‖b‖ (‖r‖ when b = 0). Traced.
        rtol, atol: the lineax/optimistix spelling: stop when ‖b − Ax‖ ≤ atol + rtol·‖b‖.
            ``rtol`` defaults to ``tol``, ``atol`` to 0. Traced.
        maxiter: maximum number of CG steps (static).
        precond: optional ``precond(r, args) -> M⁻¹r`` (see :func:`jacobi`), SPD.
        alpha, beta: optional step-size schedules of shape ``(maxiter,)`` replacing CG's
            computed α_k, β_k (the learnable CG of unrolled networks). They get
            gradients under the unrolled modes and zero gradient under ``Implicit``.
        gradient: how to differentiate: ``Unrolled()``, ``Checkpointed(every)``,
            ``Truncated(last)`` or ``Implicit(...)`` (default; tangent/adjoint solves by CG).

    Returns:
        ``(x, info)``. ``info.residual`` is the *true* relative residual ‖b − Ax‖/‖b‖ of
        the returned x (one extra matvec at exit): ``converged`` is decided on it, not on
        CG's recursively updated residual, which can drift from it (``info.result ==
        RESULTS.uncertified`` then says so).

    The problem is solved on b/s (s = max(‖b‖, ‖b − Ax₀‖)) and the answer rescaled — CG is
    homogeneous in (b, x₀) — so b of size 1e-30 or 1e+30 takes the same steps as b.

    A (and ``precond``) must be symmetric positive definite. On an indefinite or
    non-symmetric operator CG may stop on a small updated residual while the true one is
    large (``result == RESULTS.uncertified``), stall (``max_steps_reached``) or break down
    (``nonfinite``): ``converged`` is then False. Under Unrolled/Checkpointed the
    derivative w.r.t. a matrix parameter M is that of the CG recurrence, which is right
    only in its symmetric part (M + Mᵀ)/2; ``Implicit`` gives the full ∂/∂M (see the
    gradient-modes guide).

    >>> import jax, jax.numpy as jnp, glrjax
    >>> A = lambda x, a: a * x + jnp.roll(x, 1) + jnp.roll(x, -1)  # SPD for a > 2
    >>> b = jnp.arange(4.0)
    >>> x, info = glrjax.cg(A, b, 4.0)
    >>> bool(info.converged), bool(jnp.allclose(A(x, 4.0), b, atol=1e-5))
    (True, True)
    >>> g = jax.grad(lambda a: glrjax.cg(A, b, a)[0].sum())(4.0)  # implicit gradient
    >>> g.shape
    ()
    """
    gradient = check_gradient(gradient)
    maxiter = check_maxiter(maxiter)
    rtol = tol if rtol is None else rtol
    check_tol(tol)
    check_tol(rtol, "rtol")
    check_tol(atol, "atol")
    if not callable(A):
        raise TypeError(f"A must be a function A(x, args) -> Ax, got {type(A).__name__}.")
    if precond is not None and not callable(precond):
        raise TypeError("precond must be a function precond(r, args) -> M⁻¹r, e.g. jacobi(d).")
    b = check_solver_array(b, "b")
    if x0 is not None:
        x0 = check_float_array(x0, "x0")
        if x0.shape != b.shape:
            raise ValueError(f"x0 has shape {x0.shape} but b has shape {b.shape}; make them equal.")
        x0 = x0.astype(b.dtype)
    out = call_user(lambda b, a: jax.eval_shape(A, b, a), "A(x, args)", b, args)
    if not hasattr(out, "shape") or out.shape != b.shape:
        shape = getattr(out, "shape", type(out).__name__)
        raise ValueError(
            f"A(x, args) returned shape {shape} for x of shape {b.shape}; the operator must "
            "be square: map an array shaped like b to one shaped like b."
        )
    if out.dtype != b.dtype:
        raise TypeError(
            f"A(x, args) returned dtype {out.dtype} for x of dtype {b.dtype}; keep the operator "
            f"in b's dtype (cast args, e.g. args.astype(b.dtype))."
        )
    alpha = _check_schedule(alpha, "alpha", maxiter, b.dtype)
    beta = _check_schedule(beta, "beta", maxiter, b.dtype)
    validated()

    has_x0 = x0 is not None
    x0 = jnp.zeros_like(b) if x0 is None else x0
    params = (b, args, alpha, beta)

    def parts(p):
        b, args, alpha, beta = p
        mv = lambda v: A(v, args)  # noqa: E731
        pc = None if precond is None else (lambda r: precond(r, args))
        return b, args, alpha, beta, mv, pc

    def start(p, x, from_x: bool):
        b, _, _, _, mv, pc = parts(p)
        bnorm = _krylov.norm(b)
        if from_x:
            r = b - mv(x)
            unit = lax.stop_gradient(jnp.maximum(bnorm, _krylov.norm(r)))
        else:
            r = b
            unit = lax.stop_gradient(bnorm)
        unit = jnp.where((unit > 0) & jnp.isfinite(unit), unit, jnp.ones_like(unit))
        # ‖r‖/‖b‖ = ‖r/unit‖ · unit/‖b‖; when b = 0 the residual is absolute (as documented).
        size = lax.stop_gradient(jnp.where(bnorm > 0, bnorm, jnp.ones_like(bnorm)))
        rs = r / unit
        z = rs if pc is None else pc(rs)
        state = _krylov.CGState(
            x=(x / unit) if from_x else jnp.zeros_like(b),
            r=rs,
            p=z,
            rz=_krylov.vdot(rs, z),
            rnorm=_krylov.plain_norm(rs),
            bnorm=jnp.ones_like(unit),
            anorm=jnp.zeros_like(unit),
        )
        return _ScaledCG(state, unit, unit / size, size)

    def init(p, x0):
        return start(p, x0, has_x0)

    def restart(p, x):
        return start(p, x, True)

    def step(s, p, k):
        _, _, alpha, beta, mv, pc = parts(p)
        a = None if alpha is None else alpha[k]
        bb = None if beta is None else beta[k]
        return s._replace(cg=_krylov.cg_step(mv, s.cg, pc, a, bb))

    def certify(s, p):
        # The true residual of the returned x relative to ‖b‖, and the rounding it carries
        # itself: storing x in this dtype leaves ‖b − Ax‖ ≈ eps·‖A‖·‖x‖ at best (‖A‖ from
        # CG's Rayleigh quotients). The engine allows at most 10·tol of that slack.
        b, _, _, _, mv, _ = parts(p)
        true = _krylov.norm(b / s.unit - mv(s.cg.x)) * s.factor
        eps = jnp.finfo(s.unit.dtype).eps
        floor = 4 * eps * (1 + s.cg.anorm * _krylov.norm(s.cg.x) * s.factor)
        return true, floor

    def optimality(x, p):  # Richardson form T(x) - x with T(x) = x + b - Ax
        b, args, *_ = p
        return b - A(x, args)

    def adjoint_precond(v, p):  # ∂F/∂x = -A, so -M⁻¹ preconditions the implicit solves
        return -precond(v, p[1])

    it = Iteration(
        init=init,
        step=step,
        residual=lambda s: s.cg.rnorm * s.factor,
        solution=lambda s: s.cg.x * s.unit,
        optimality=optimality,
        symmetric=True,
        adjoint_precond=None if precond is None else adjoint_precond,
        restart=restart,
        certify=certify,
        scale=lambda s: s.size,
    )
    return iterate(it, params, x0, tol=rtol, atol=atol, maxiter=maxiter, gradient=gradient)


class _ScaledCG(NamedTuple):
    """CG on (b/unit, x/unit): sizes O(1) whatever the scale of b."""

    cg: _krylov.CGState  # the recurrence on the scaled system
    unit: jax.Array  # s = max(‖b‖, ‖b − Ax₀‖) (1 when zero); x = unit · cg.x
    factor: jax.Array  # unit/‖b‖: ‖r‖/‖b‖ = cg.rnorm · factor
    size: jax.Array  # ‖b‖ (1 when b = 0), the scale of atol


def chebyshev_steps(lo, hi, steps: int):
    """CG-form steps (α_k, β_k) of Chebyshev iteration for a spectrum inside [lo, hi].

    With these, :func:`glrjax.cg`'s update x += α_k p, r −= α_k Ap, p = M⁻¹r + β_k p is the
    Chebyshev semi-iterative method (Saad, *Iterative Methods*, Alg. 12.1, with
    d_k = α_k p_k): its residual polynomial is T_k((θ − λ)/c)/T_k(θ/c), θ = (hi + lo)/2,
    c = (hi − lo)/2, bounded by 1 on [0, hi] for every right-hand side — unlike a recorded CG
    schedule, whose polynomial can blow up on another graph's spectrum. ``lo`` may exceed the
    true smallest eigenvalue (those components then just converge more slowly); ``hi`` must
    bound the largest.

    >>> import glrjax
    >>> a, b = glrjax.chebyshev_steps(1.0, 3.0, 3)
    >>> [round(float(v), 4) for v in a], [round(float(v), 4) for v in b]
    ([0.5, 0.5714, 0.5385], [0.125, 0.0816, 0.0725])
    """
    steps = check_maxiter(steps, "steps")
    lo, hi = float(lo), float(hi)
    if not 0 < lo < hi < np.inf:
        raise ValueError(f"chebyshev_steps needs 0 < lo < hi < inf, got lo={lo}, hi={hi}.")
    theta, c = 0.5 * (hi + lo), 0.5 * (hi - lo)
    sigma = theta / c
    rho = 1.0 / sigma
    alphas, betas = [1.0 / theta], []
    for k in range(1, steps + 1):
        rho_next = 1.0 / (2.0 * sigma - rho)
        betas.append(rho * rho / 2.0 if k == 1 else rho * rho)
        alphas.append(2.0 * rho_next / c)
        rho = rho_next
    return jnp.asarray(alphas[:steps]), jnp.asarray(betas[:steps])
