"""The one engine that runs a solver's step function under a gradient mode.

A solver describes itself as an :class:`Iteration` — how to start, how to take one
step, where its stopping quantity and its solution live in the state, and which
optimality condition its solution satisfies — and calls :func:`iterate`. Only this
module knows what :class:`~glrjax.Unrolled`, :class:`~glrjax.Checkpointed`,
:class:`~glrjax.Truncated` and :class:`~glrjax.Implicit` mean.

Every mode obeys the same stopping rule: before each step, stop when
``residual(state) <= tol`` (converged) or when the residual is not finite (NaN/Inf
input or breakdown); otherwise step, up to ``maxiter`` steps. A non-finite residual at
exit is reported as not converged and the returned solution is NaN — never a hang,
never a finite-looking wrong answer.

Example: a scalar Newton iteration for √a, differentiated implicitly.

    >>> import jax, jax.numpy as jnp
    >>> from glrjax.iterate import Iteration, iterate
    >>> from glrjax import Implicit
    >>> newton = Iteration(
    ...     init=lambda a, x0: x0,
    ...     step=lambda x, a, k: 0.5 * (x + a / x),
    ...     residual=lambda x: jnp.abs(x),  # placeholder, replaced below
    ...     solution=lambda x: x,
    ...     optimality=lambda x, a: x * x - a,
    ... )
    >>> def sqrt(a):
    ...     it = newton._replace(residual=lambda x: jnp.abs(x * x - a))
    ...     return iterate(it, a, jnp.ones(()), tol=1e-6, maxiter=50, gradient=Implicit())
    >>> x, info = sqrt(4.0)
    >>> round(float(x), 5), bool(info.converged)
    (2.0, True)
    >>> round(float(jax.grad(lambda a: sqrt(a)[0])(4.0)), 5)  # d√a/da = 1/(2√a)
    0.25
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from glrjax.gradients import (
    Checkpointed,
    GradientMode,
    Implicit,
    Truncated,
    Unrolled,
    check_gradient,
)
from glrjax.implicit import implicit_solve

__all__ = ["Info", "Iteration", "iterate"]


class Info(NamedTuple):
    """What a solver reports about its run. Returned by every solver, never ``None``."""

    iterations: jax.Array  # int32: steps taken (a frozen, converged tail not counted)
    residual: jax.Array  # the solver's stopping quantity at exit (see each solver)
    converged: jax.Array  # bool: residual <= tol at exit


class Iteration(NamedTuple):
    """A solver, as the engine sees it. All functions are pure functions of arrays."""

    init: Callable[[Any, jax.Array], Any]  # (params, x0) -> state
    step: Callable[[Any, Any, jax.Array], Any]  # (state, params, k) -> state; k = step index
    residual: Callable[[Any], jax.Array]  # state -> scalar stopping quantity
    solution: Callable[[Any], Any]  # state -> x (an array or a pytree, e.g. (x, y))
    # (x, params) -> F = T(x) - x, zero at x*, for a fixed-point map T whose Jacobian
    # Implicit(solver="neumann") sums; e.g. b - Ax for a linear system (T = Richardson).
    optimality: Callable[[jax.Array, Any], jax.Array]
    symmetric: bool = False  # ∂F/∂x symmetric: Implicit(solver="auto") uses CG
    # (v, params) -> P v with P ≈ ((∂F/∂x)ᵀ)⁻¹: preconditions that backward CG (e.g. -M⁻¹v
    # for F = b - Ax and a forward preconditioner M⁻¹); None: unpreconditioned.
    adjoint_precond: Callable[[Any, Any], Any] | None = None


def _stop(it: Iteration, state, tol):
    r = it.residual(state)
    return (r <= tol) | ~jnp.isfinite(r)


def _select(pred, old, new):
    return jax.tree_util.tree_map(lambda a, b: jnp.where(pred, a, b), old, new)


def _frozen_step(it: Iteration, params, tol, maxiter: int | None):
    """One scan body: step unless stopped; count the steps taken."""

    def body(carry, _):
        state, k = carry
        stop = _stop(it, state, tol)
        if maxiter is not None:  # padded steps of the last checkpoint segment
            stop = stop | (k >= maxiter)
        state = _select(stop, state, it.step(state, params, k))
        return (state, k + (~stop).astype(jnp.int32)), None

    return body


def _finish(it: Iteration, state, k, tol) -> tuple[jax.Array, Info]:
    """Solution and Info; a non-finite residual poisons the solution with NaN."""
    r = it.residual(state)
    x = it.solution(state)
    x = jax.tree_util.tree_map(lambda v: jnp.where(jnp.isfinite(r), v, jnp.nan), x)
    return x, Info(iterations=k, residual=r, converged=r <= tol)


def _unrolled(it, params, x0, tol, maxiter):
    state = it.init(params, x0)
    body = _frozen_step(it, params, tol, None)
    (state, k), _ = lax.scan(body, (state, jnp.asarray(0, jnp.int32)), None, length=maxiter)
    return _finish(it, state, k, tol)


def _checkpointed(it, params, x0, tol, maxiter, every):
    every = min(every, maxiter)
    segments = -(-maxiter // every)
    body = _frozen_step(it, params, tol, maxiter if segments * every != maxiter else None)

    @jax.checkpoint
    def segment(carry, _):
        carry, _ = lax.scan(body, carry, None, length=every)
        return carry, None

    state = it.init(params, x0)
    (state, k), _ = lax.scan(segment, (state, jnp.asarray(0, jnp.int32)), None, length=segments)
    return _finish(it, state, k, tol)


def _while(it, params, state, tol, maxiter):
    """Forward ``while_loop`` to tolerance; returns the final state and the steps taken."""

    def cond(carry):
        state, k = carry
        return (k < maxiter) & ~_stop(it, state, tol)

    def body(carry):
        state, k = carry
        return it.step(state, params, k), k + 1

    return lax.while_loop(cond, body, (state, jnp.asarray(0, jnp.int32)))


def _truncated(it, params, x0, tol, maxiter, last):
    if last >= maxiter:  # every step taken is kept: exactly Unrolled
        return _unrolled(it, params, x0, tol, maxiter)
    state0 = it.init(params, x0)
    # Pass 1, no gradient: run to tolerance to learn n, the number of steps taken.
    frozen_params, frozen_state0 = lax.stop_gradient((params, state0))
    _, n = _while(it, frozen_params, frozen_state0, tol, maxiter)
    start = jnp.maximum(n - last, 0)

    # Pass 2, no gradient: replay the first n - last steps (storing nothing; a ring buffer
    # of the last states would be a batched scatter per step under vmap, far slower).
    def replay(carry):
        state, k = carry
        return it.step(state, frozen_params, k), k + 1

    cut, _ = lax.while_loop(
        lambda c: c[1] < start, replay, (frozen_state0, jnp.asarray(0, jnp.int32))
    )
    # n <= last: all steps are kept, so start from the differentiable initial state.
    state = _select(start == 0, state0, cut)

    # Pass 3: the last min(n, last) steps again, differentiated w.r.t. params.
    def body(carry, _):
        state, k = carry
        new = it.step(state, params, k)
        active = k < n
        return (_select(active, new, state), k + active.astype(jnp.int32)), None

    (state, _), _ = lax.scan(body, (state, start), None, length=last)
    return _finish(it, state, n, tol)


def _implicit(it, params, x0, tol, maxiter, gradient):
    def forward(params, x0):
        state, k = _while(it, params, it.init(params, x0), tol, maxiter)
        return _finish(it, state, k, tol)

    return implicit_solve(
        forward, it.optimality, params, x0, gradient, it.symmetric, it.adjoint_precond
    )


def iterate(
    it: Iteration,
    params,
    x0: jax.Array,
    *,
    tol,
    maxiter: int,
    gradient: GradientMode,
) -> tuple[jax.Array, Info]:
    """Run ``it`` from ``x0`` for at most ``maxiter`` steps under a gradient mode.

    Args:
        it: the solver's :class:`Iteration`.
        params: pytree of arrays the solution depends on (differentiable).
        x0: starting point; differentiable under the unrolled modes only.
        tol: threshold on ``it.residual`` (a traced value: changing it does not recompile).
        maxiter: static cap on the number of steps.
        gradient: the gradient mode.

    Returns:
        ``(x, info)``: the solution and an :class:`Info`.
    """
    check_gradient(gradient)
    tol = jnp.asarray(tol, jnp.result_type(*jax.tree_util.tree_leaves(x0)))
    if isinstance(gradient, Unrolled):
        return _unrolled(it, params, x0, tol, maxiter)
    if isinstance(gradient, Checkpointed):
        return _checkpointed(it, params, x0, tol, maxiter, gradient.every)
    if isinstance(gradient, Truncated):
        return _truncated(it, params, x0, tol, maxiter, gradient.last)
    if isinstance(gradient, Implicit):
        return _implicit(it, params, x0, tol, maxiter, gradient)
    raise TypeError(f"gradient mode {gradient!r} is not supported by glrjax.iterate.")
