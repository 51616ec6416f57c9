"""Proximal gradient descent and FISTA, under any gradient mode.

Both minimise f(x, args) + g(x) given ``grad_f(x, args)`` and the proximal operator
``prox(x, prox_args, t)`` = prox_{t·g}(x) of the nonsmooth part (see :mod:`glrjax.prox`),
with step t:

- :func:`pgd`: x_{k+1} = prox(x_k − t∇f(x_k), λ, t) (forward–backward).
- :func:`fista`: y_k = x_k + j/(j+q+1)·(x_k − x_{k−1}), x_{k+1} = prox(y_k − t∇f(y_k), λ, t)
  (Beck & Teboulle 2009, with the look-ahead of seed 003), j the number of steps since the
  last restart; optional adaptive gradient restart (O'Donoghue & Candès 2015): j ← 0 when
  ⟨y_k − x_{k+1}, x_{k+1} − x_k⟩ > 0, i.e. when the momentum points uphill.

**Step.** ``step=None`` uses t = 1/L with L estimated by power iteration on the Hessian-vector
product of f at ``x0`` (the VJP of ``grad_f``; exact for quadratic f, a local estimate
otherwise — pass ``step`` for non-quadratic f), under ``stop_gradient``. ``step`` may also be
a traced scalar or a per-iteration schedule of shape ``(maxiter,)``; both get gradients under
the unrolled modes.

**Stopping rule.** The state carries the relative fixed-point residual of the last step,

    ‖x_{k+1} − y_k‖ / max(‖x_{k+1}‖, ‖y_k‖) = t‖G_t(y_k)‖ / max(‖x_{k+1}‖, ‖y_k‖),

with G_t(y) = (y − prox(y − t∇f(y), λ, t))/t the gradient mapping (y_k = x_k for PGD). It is
unitless (invariant to rescaling f and g together) and certifies the new iterate:
dist(0, ∂(f + g)(x_{k+1})) ≤ (1 + tL)‖G_t(y_k)‖, with no extra gradient evaluation. It is
zero exactly at a fixed point. The solver stops when it is ≤ ``tol``.

**Implicit gradients** differentiate the fixed point F(x) = prox(x − t∇f(x, args), λ, t) − x
(zero at every minimiser, for every t > 0; t is held constant, so step sizes get zero
gradient in this mode). ∂F/∂x is not symmetric: ``Implicit(solver="auto")`` uses GMRES.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.flatten_util import ravel_pytree

from glrjax import _krylov
from glrjax._eager import cached, validated
from glrjax._validate import (
    check_float_array,
    check_maxiter,
    check_positive,
    check_solver_array,
    check_tol,
    is_pytree_of_arrays,
)
from glrjax.gradients import GradientMode, Unrolled, check_gradient
from glrjax.iterate import Info, Iteration, iterate

__all__ = ["fista", "lipschitz", "pgd"]

POWER_ITERATIONS = 40  # power-iteration steps of the Lipschitz estimate
LIPSCHITZ_SAFETY = 1.01  # the Rayleigh estimate approaches L from below; step = 1/(1.01 L)


class PGDState(NamedTuple):
    """State of proximal gradient descent."""

    x: jax.Array  # current iterate x_k
    residual: jax.Array  # relative fixed-point residual of the last step (max float at start)
    size: jax.Array  # max(‖x_k‖, ‖x_{k−1}‖)/t: ‖G_t‖ = residual · size (the scale of atol)


class FISTAState(NamedTuple):
    """State of FISTA. The solution is ``x``; the optimality condition uses ``x`` only."""

    x: jax.Array  # current iterate x_k (the last prox output)
    y: jax.Array  # look-ahead point y_k = x_k + j/(j+q+1)(x_k − x_{k−1}), where ∇f is taken
    j: jax.Array  # steps since the last restart (momentum j/(j+q+1)), in x's dtype
    residual: jax.Array  # relative fixed-point residual of the last step (max float at start)
    size: jax.Array  # max(‖x_k‖, ‖y_{k−1}‖)/t: ‖G_t‖ = residual · size (the scale of atol)


def lipschitz(grad_f, x, args, *, iterations: int = POWER_ITERATIONS):
    """Largest eigenvalue of the Hessian of f at ``x``, by power iteration on Hessian-vector
    products (the VJP of ``grad_f``).

    Deterministic (a fixed random start) and under ``stop_gradient``. Returns ‖Hv‖ for the
    last unit iterate v, which approaches λ_max from below for a PSD Hessian.

    >>> import jax.numpy as jnp
    >>> grad_f = lambda x, d: d * x  # f = ½ Σ dᵢxᵢ², Hessian diag(d)
    >>> round(float(lipschitz(grad_f, jnp.zeros(3), jnp.array([1.0, 4.0, 2.0]))), 4)
    4.0
    """
    x, args = lax.stop_gradient((x, args))
    return _krylov.power_iteration(_krylov.hessian_vector_product(grad_f, x, args), x, iterations)


def _common_scale(*arrays):
    """max |a| over the arrays (1 when all zero or non-finite): a shared unit for norms."""
    m = functools.reduce(jnp.maximum, [jnp.max(jnp.abs(a)) for a in arrays])
    m = lax.stop_gradient(m)
    return jnp.where((m > 0) & jnp.isfinite(m), m, jnp.ones_like(m))


def _relative_change(new, old, unit=None):
    """(‖new − old‖/max(‖new‖, ‖old‖), max(‖new‖, ‖old‖)), free of under/overflow."""
    unit = _common_scale(new, old) if unit is None else unit
    num = _krylov.plain_norm((new - old) / unit)
    den = jnp.maximum(_krylov.plain_norm(new / unit), _krylov.plain_norm(old / unit))
    return _krylov.safe_div(num, den), den * unit


def _on_pytrees(solver):
    """Let ``solver`` take a pytree ``x0``: solve on the flat vector, return the same tree.

    ``grad_f`` and ``prox`` then receive and return trees shaped like ``x0`` (the proxes of
    :mod:`glrjax.prox` apply leaf-wise).
    """

    @functools.wraps(solver)
    def wrapper(grad_f, prox, x0, *args, **kwargs):
        if not is_pytree_of_arrays(x0):
            return solver(grad_f, prox, x0, *args, **kwargs)
        flat, unravel = ravel_pytree(x0)

        def grad_flat(v, a):
            return ravel_pytree(grad_f(unravel(v), a))[0].astype(v.dtype)

        def prox_flat(v, p, t):
            return ravel_pytree(prox(unravel(v), p, t))[0].astype(v.dtype)

        x, info = solver(grad_flat, prox_flat, flat, *args, **kwargs)
        return unravel(x), info

    return wrapper


def _check_problem(grad_f, prox, x0, args, prox_args):
    if not callable(grad_f):
        raise TypeError(f"grad_f must be a function grad_f(x, args), got {type(grad_f).__name__}.")
    if not callable(prox):
        raise TypeError(
            f"prox must be a function prox(x, prox_args, t), e.g. glrjax.prox.l1; got "
            f"{type(prox).__name__}."
        )
    x0 = check_solver_array(x0, "x0")
    for name, fn in [
        ("grad_f(x0, args)", lambda: jax.eval_shape(grad_f, x0, args)),
        ("prox(x0, prox_args, t)", lambda: jax.eval_shape(prox, x0, prox_args, 1.0)),
    ]:
        try:
            out = fn()
        except Exception as err:
            raise ValueError(f"{name} failed for x0 of shape {x0.shape}: {err}") from err
        if not hasattr(out, "shape") or out.shape != x0.shape:
            shape = getattr(out, "shape", type(out).__name__)
            raise ValueError(
                f"{name} returned shape {shape}; it must return an array shaped like x0 {x0.shape}."
            )
        if out.dtype != x0.dtype:
            raise TypeError(
                f"{name} returned dtype {out.dtype} for x0 of dtype {x0.dtype}; keep it in "
                "x0's dtype (cast args and prox_args to x0.dtype)."
            )
    return x0


def _check_step(step, maxiter: int, dtype):
    """The step as (array, is_schedule), or (None, False) to estimate 1/L."""
    if step is None:
        return None, False
    step = check_float_array(step, "step").astype(dtype)
    check_positive(step, "step", "0.1")
    if step.ndim == 0:
        return step, False
    if step.shape != (maxiter,):
        raise ValueError(
            f"step has shape {step.shape}; pass a scalar or a per-iteration schedule of shape "
            f"(maxiter,) = ({maxiter},)."
        )
    return step, True


def _setup(grad_f, prox, x0, args, prox_args, step, maxiter, tol, gradient, rtol, atol):
    gradient = check_gradient(gradient)
    maxiter = check_maxiter(maxiter)
    check_tol(tol)
    check_tol(rtol, "rtol")
    check_tol(atol, "atol")
    x0 = _check_problem(grad_f, prox, x0, args, prox_args)
    step, schedule = _check_step(step, maxiter, x0.dtype)
    return gradient, maxiter, x0, step, schedule


def _default_step(grad_f, x0, args, step):
    if step is None:
        step = (1.0 / (LIPSCHITZ_SAFETY * lipschitz(grad_f, x0, args))).astype(x0.dtype)
    return step


def _step_at(step, schedule: bool, k):
    return step[k] if schedule else step


def _optimality(grad_f, prox, schedule: bool):
    def optimality(x, params):
        args, prox_args, step = params[:3]
        # Any t > 0 has the same fixed points; hold it constant (zero gradient to steps).
        t = lax.stop_gradient(step[-1] if schedule else step)
        return prox(x - t * grad_f(x, args), prox_args, t) - x

    return optimality


def _proximal_iteration(init, step, grad_f, prox, schedule: bool) -> Iteration:
    """PGD's and FISTA's :class:`Iteration`: states with ``x`` and ``residual``, one fixed point."""
    optimality = _optimality(grad_f, prox, schedule)

    def certify(state, params):  # the fixed-point residual at the returned x itself
        x = state.x
        new = optimality(x, params) + x
        return _relative_change(new, x)[0]

    return Iteration(
        init=init,
        step=step,
        residual=lambda s: s.residual,
        solution=lambda s: s.x,
        optimality=optimality,
        symmetric=False,
        certify=certify,
        scale=lambda s: s.size,
    )


def _pgd_iteration(grad_f, prox, schedule: bool) -> Iteration:
    def init(params, x0):
        big = jnp.asarray(jnp.finfo(x0.dtype).max, x0.dtype)
        return PGDState(x=x0, residual=big, size=jnp.ones((), x0.dtype))

    def step(state, params, k):
        args, prox_args, steps = params
        t = _step_at(steps, schedule, k)
        x = prox(state.x - t * grad_f(state.x, args), prox_args, t)
        change, size = _relative_change(x, state.x)
        return PGDState(x=x, residual=change, size=size / t)

    return _proximal_iteration(init, step, grad_f, prox, schedule)


def _fista_iteration(grad_f, prox, schedule: bool, restart: bool) -> Iteration:
    def init(params, x0):
        if len(params) == 5:  # a known residual of x0 (the step that produced it)
            residual = lax.stop_gradient(params[4]).astype(x0.dtype)
        else:
            residual = jnp.asarray(jnp.finfo(x0.dtype).max, x0.dtype)
        one = jnp.ones((), x0.dtype)
        return FISTAState(x=x0, y=x0, j=jnp.zeros((), x0.dtype), residual=residual, size=one)

    def step(state, params, k):
        args, prox_args, steps, q = params[:4]
        t = _step_at(steps, schedule, k)
        y = state.y
        x = prox(y - t * grad_f(y, args), prox_args, t)
        j = state.j + 1.0
        unit = _common_scale(x, y, state.x)
        if restart:  # gradient scheme: restart when the momentum step points uphill
            uphill = _krylov.vdot((y - x) / unit, (x - state.x) / unit) > 0
            j = jnp.where(uphill, jnp.zeros_like(j), j)
        # The next look-ahead is formed here, where it fuses with the prox's output.
        y_next = x + j / (j + q + 1.0) * (x - state.x)
        change, size = _relative_change(x, y, unit)
        return FISTAState(x=x, y=y_next, j=j, residual=change, size=size / t)

    return _proximal_iteration(init, step, grad_f, prox, schedule)


@_on_pytrees
@cached
def pgd(
    grad_f,
    prox,
    x0,
    args=None,
    prox_args=None,
    *,
    step=None,
    tol=1e-6,
    rtol=None,
    atol=0.0,
    maxiter: int = 1000,
    gradient: GradientMode = Unrolled(),
) -> tuple[jax.Array, Info]:
    """Proximal gradient descent: minimise f(x, args) + g(x) from ``x0``.

    Args:
        grad_f: ``grad_f(x, args) -> ∇f(x)``, shaped like ``x``.
        prox: ``prox(x, prox_args, t) -> prox_{t·g}(x)`` (see :mod:`glrjax.prox`).
        x0: starting point, a floating array; fixes the shape and dtype.
        args: pytree of arrays f depends on; gradients flow to it.
        prox_args: the regularization hyperparameters (λ, bounds, ...), traced; gradients
            flow to them.
        step: ``None`` (1/L from a power-iteration estimate of L), a scalar, or a schedule
            of shape ``(maxiter,)``.
        tol: stop when the relative fixed-point residual (module docstring) is ≤ ``tol``.
        rtol, atol: the general rule ‖x_{k+1} − y_k‖/t ≤ atol + rtol·max(‖x_{k+1}‖, ‖y_k‖)/t:
            ``atol`` bounds the gradient-mapping norm ‖G_t‖ (jaxopt's ``tol``), ``rtol``
            (default ``tol``) the relative change. Traced.
        maxiter: maximum number of steps (static).
        gradient: ``Unrolled()`` (default), ``Checkpointed(every)``, ``Truncated(last)`` or
            ``Implicit(...)``.

    Returns:
        ``(x, info)``; ``info.residual`` is the relative fixed-point residual.

    >>> import jax, jax.numpy as jnp, glrjax
    >>> grad_f = lambda x, b: x - b  # f = ½‖x − b‖²: the solution is prox(b)
    >>> b = jnp.array([3.0, -0.5, 1.5])
    >>> x, info = glrjax.pgd(grad_f, glrjax.prox.l1, jnp.zeros(3), b, 1.0, tol=1e-8)
    >>> x.round(6).tolist(), bool(info.converged)
    ([2.0, -0.0, 0.5], True)
    >>> jax.grad(lambda lam: glrjax.pgd(grad_f, glrjax.prox.l1, jnp.zeros(3), b, lam)[0].sum())(
    ...     1.0).round(6).tolist()  # d/dλ Σ soft(b, λ) = -(number of active entries)
    -2.0
    """
    rtol = tol if rtol is None else rtol
    gradient, maxiter, x0, step, schedule = _setup(
        grad_f, prox, x0, args, prox_args, step, maxiter, tol, gradient, rtol, atol
    )
    validated()
    step = _default_step(grad_f, x0, args, step)
    it = _pgd_iteration(grad_f, prox, schedule)
    params = (args, prox_args, step)
    return iterate(it, params, x0, tol=rtol, atol=atol, maxiter=maxiter, gradient=gradient)


@_on_pytrees
@cached
def fista(
    grad_f,
    prox,
    x0,
    args=None,
    prox_args=None,
    *,
    step=None,
    q=2.0,
    restart: bool = False,
    tol=1e-6,
    rtol=None,
    atol=0.0,
    maxiter: int = 1000,
    gradient: GradientMode = Unrolled(),
) -> tuple[jax.Array, Info]:
    """FISTA with look-ahead j/(j+q+1) and optional adaptive restart; see :func:`pgd`.

    Args:
        grad_f, prox, x0, args, prox_args, step, tol, rtol, atol, maxiter, gradient: as in
            :func:`pgd`.
        q: look-ahead parameter q > 0 (traced). The momentum of step k is k/(k+q+1); q = 2
            is Nesterov's k/(k+3). Larger q damps the objective's bounce but slows the
            first iterations (seed 003, whose code's ``(k−1)/(k+q+2)`` with k from 1 is
            this formula with q + 2).
        restart: adaptive gradient restart (O'Donoghue & Candès 2015): the momentum
            resets when ⟨y_k − x_{k+1}, x_{k+1} − x_k⟩ > 0. Recovers linear convergence on
            locally strongly convex problems.

    Returns:
        ``(x, info)``; ``info.residual`` is the relative fixed-point residual at the
        look-ahead point, which bounds x's distance to stationarity (module docstring).

    >>> import jax.numpy as jnp, glrjax
    >>> a, b = jnp.diag(jnp.array([1.0, 2.0, 4.0])), jnp.array([1.0, -1.0, 2.0])
    >>> grad_f = lambda x, ab: ab[0] @ x - ab[1]  # f = ½xᵀAx − bᵀx, subject to x ≥ 0
    >>> x, info = glrjax.fista(grad_f, glrjax.prox.nonneg, jnp.zeros(3), (a, b), None,
    ...                        restart=True, tol=1e-10, maxiter=2000)
    >>> x.round(6).tolist(), bool(info.converged)
    ([1.0, 0.0, 0.5], True)
    """
    rtol = tol if rtol is None else rtol
    gradient, maxiter, x0, step, schedule = _setup(
        grad_f, prox, x0, args, prox_args, step, maxiter, tol, gradient, rtol, atol
    )
    q = _check_q(q, x0.dtype)
    validated()
    step = _default_step(grad_f, x0, args, step)
    return _run_fista(
        grad_f,
        prox,
        x0,
        args,
        prox_args,
        step,
        schedule,
        q,
        bool(restart),
        rtol,
        maxiter,
        gradient,
        atol=atol,
    )


def _check_q(q, dtype):
    q = check_float_array(q, "q").astype(dtype)
    if q.ndim:
        raise ValueError(f"q has shape {q.shape}; it must be a scalar, e.g. q=2.0.")
    check_positive(q, "q", "2.0")
    return q


def _run_fista(
    grad_f,
    prox,
    x0,
    args,
    prox_args,
    step,
    schedule,
    q,
    restart,
    tol,
    maxiter,
    gradient,
    residual0=None,
    atol=0.0,
):
    """FISTA on validated inputs; ``residual0`` is x0's known residual (stop at once if ≤ tol)."""
    it = _fista_iteration(grad_f, prox, schedule, restart)
    params = (args, prox_args, step, q)
    if residual0 is not None:
        params = params + (residual0,)
    return iterate(it, params, x0, tol=tol, atol=atol, maxiter=maxiter, gradient=gradient)
