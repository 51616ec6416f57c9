"""Conjugate gradient for symmetric positive definite operators, under any gradient mode.

``cg`` solves A(x, args) = b where ``A`` is a linear operator given as a function of
explicit arguments, so gradients reach ``b`` and ``args`` (and, in the unrolled modes,
``x0`` and the learned step-size schedules ``alpha``/``beta``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from glrjax import _krylov
from glrjax._validate import check_float_array, check_maxiter, check_tol
from glrjax.gradients import GradientMode, Implicit, check_gradient
from glrjax.iterate import Info, Iteration, iterate

__all__ = ["cg", "jacobi", "Info"]


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


def cg(
    A,
    b,
    args=None,
    *,
    x0=None,
    tol=1e-6,
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
        tol: stop when ‖b - Ax‖ <= tol·‖b‖. Traced: changing it does not recompile.
        maxiter: maximum number of CG steps (static).
        precond: optional ``precond(r, args) -> M⁻¹r`` (see :func:`jacobi`), SPD.
        alpha, beta: optional step-size schedules of shape ``(maxiter,)`` replacing CG's
            computed α_k, β_k (the learnable CG of unrolled networks). They get
            gradients under the unrolled modes and zero gradient under ``Implicit``.
        gradient: how to differentiate: ``Unrolled()``, ``Checkpointed(every)``,
            ``Truncated(last)`` or ``Implicit(...)`` (default; backward solve by CG).

    Returns:
        ``(x, info)`` with ``info.residual = ‖r‖/‖b‖`` (the recursive residual).

    A (and ``precond``) must be symmetric positive definite. On an indefinite or
    non-symmetric operator CG has no convergence guarantee: it may run to ``maxiter``
    (``converged=False``), break down into NaN, or stop on a small recursively updated
    residual while the true residual ‖b − Ax‖ is large, so check ``info`` (and, where it
    matters, ‖b − Ax‖ itself). Under ``Unrolled``/``Checkpointed`` the derivative w.r.t. a
    matrix parameter M is that of the CG recurrence, which is right only in its symmetric
    part (M + Mᵀ)/2; ``Implicit`` gives the full ∂/∂M (see the gradient-modes guide).

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
    check_tol(tol)
    if not callable(A):
        raise TypeError(f"A must be a function A(x, args) -> Ax, got {type(A).__name__}.")
    if precond is not None and not callable(precond):
        raise TypeError("precond must be a function precond(r, args) -> M⁻¹r, e.g. jacobi(d).")
    b = check_float_array(b, "b")
    if x0 is not None:
        x0 = check_float_array(x0, "x0")
        if x0.shape != b.shape:
            raise ValueError(f"x0 has shape {x0.shape} but b has shape {b.shape}; make them equal.")
        x0 = x0.astype(b.dtype)
    try:
        out = jax.eval_shape(A, b, args)
    except Exception as err:
        raise ValueError(
            f"A(x, args) failed for x shaped like b {b.shape}: {err}. The operator must be "
            "square: map an array shaped like b to one shaped like b."
        ) from err
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

    has_x0 = x0 is not None
    x0 = jnp.zeros_like(b) if x0 is None else x0
    params = (b, args, alpha, beta)

    def parts(p):
        b, args, alpha, beta = p
        mv = lambda v: A(v, args)  # noqa: E731
        pc = None if precond is None else (lambda r: precond(r, args))
        return b, args, alpha, beta, mv, pc

    def init(p, x0):
        b, _, _, _, mv, pc = parts(p)
        return _krylov.cg_init(mv, b, x0 if has_x0 else None, pc)

    def step(state, p, k):
        _, _, alpha, beta, mv, pc = parts(p)
        a = None if alpha is None else alpha[k]
        bb = None if beta is None else beta[k]
        return _krylov.cg_step(mv, state, pc, a, bb)

    def optimality(x, p):  # Richardson form T(x) - x with T(x) = x + b - Ax
        b, args, *_ = p
        return b - A(x, args)

    def adjoint_precond(v, p):  # ∂F/∂x = -A, so -M⁻¹ preconditions the adjoint solve
        return -precond(v, p[1])

    it = Iteration(
        init=init,
        step=step,
        residual=lambda s: s.rnorm / s.bnorm,
        solution=lambda s: s.x,
        optimality=optimality,
        symmetric=True,
        adjoint_precond=None if precond is None else adjoint_precond,
    )
    return iterate(it, params, x0, tol=tol, maxiter=maxiter, gradient=gradient)
