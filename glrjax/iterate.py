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
from glrjax.results import RESULTS

__all__ = ["Info", "Iteration", "RESULTS", "iterate"]


class Info(NamedTuple):
    """What a solver reports about its run. Returned by every solver, never ``None``."""

    iterations: jax.Array  # int32: steps taken (a frozen, converged tail not counted)
    residual: jax.Array  # the stopping quantity recomputed at the returned point (each solver)
    converged: jax.Array  # bool: result == RESULTS.successful
    result: jax.Array  # int32 status code of glrjax.RESULTS (RESULTS.message(code) explains)


class Iteration(NamedTuple):
    """A solver, as the engine sees it. All functions are pure functions of arrays."""

    init: Callable[[Any, jax.Array], Any]  # (params, x0) -> state
    step: Callable[[Any, Any, jax.Array], Any]  # (state, params, k) -> state; k = step index
    residual: Callable[[Any], jax.Array]  # state -> scalar (relative) stopping quantity
    solution: Callable[[Any], Any]  # state -> x (an array or a pytree, e.g. (x, y))
    # (x, params) -> F = T(x) - x, zero at x*, for a fixed-point map T whose Jacobian
    # Implicit(solver="neumann") sums; e.g. b - Ax for a linear system (T = Richardson).
    optimality: Callable[[jax.Array, Any], jax.Array]
    symmetric: bool = False  # ∂F/∂x symmetric: Implicit(solver="auto") uses CG
    # (v, params) -> P v with P ≈ (∂F/∂x)⁻¹ (∂F/∂x symmetric): preconditions the implicit
    # CG solves (e.g. -M⁻¹v for F = b - Ax and a forward preconditioner M⁻¹); None: none.
    adjoint_precond: Callable[[Any, Any], Any] | None = None
    # (params, x) -> state: the solver's derived state rebuilt at x with the live params
    # (Truncated's restart; CG: r = b - Ax, p = r). None: init(params, x).
    restart: Callable[[Any, Any], Any] | None = None
    # (state, params) -> the stopping quantity recomputed at solution(state) (CG: the true
    # residual, one matvec), or (quantity, rounding floor): the floor, the accuracy the
    # dtype allows that quantity, is added to the tolerance, at most 10·tolerance of it;
    # decides `converged`. None: residual(state).
    certify: Callable[[Any, Any], jax.Array] | None = None
    # state -> the absolute size the relative residual is measured against (CG: ‖b‖), so
    # that the rule is residual <= rtol + atol / scale. None: 1.
    scale: Callable[[Any], jax.Array] | None = None
    # state -> int32 code of a solver-specific failure (RESULTS.breakdown, ...), 0 if none;
    # a nonzero code stops the iteration. None: never.
    status: Callable[[Any], jax.Array] | None = None


class _Tol(NamedTuple):
    rtol: jax.Array  # relative tolerance (the solvers' `tol`)
    atol: jax.Array  # absolute tolerance, divided by Iteration.scale


def _threshold(it: Iteration, state, tol: _Tol):
    if it.scale is None:
        return tol.rtol + tol.atol
    scale = it.scale(state)
    return tol.rtol + _krylov_safe_ratio(tol.atol, scale)


def _krylov_safe_ratio(num, den):
    # atol / scale with scale = 0 (b = 0) read as "any residual is small enough".
    return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), jnp.inf)


def _status(it: Iteration, state):
    if it.status is None:
        return jnp.asarray(0, jnp.int32)
    return jnp.asarray(it.status(state), jnp.int32)


def _stop(it: Iteration, state, tol: _Tol):
    r = it.residual(state)
    return (r <= _threshold(it, state, tol)) | ~jnp.isfinite(r) | (_status(it, state) != 0)


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


def _poisoned(code):
    """Codes whose solution is NaN: nonfinite, breakdown, step condition violated."""
    return (
        (code == RESULTS.nonfinite)
        | (code == RESULTS.breakdown)
        | (code == RESULTS.step_condition_violated)
    )


def _finish(it: Iteration, state, k, params, tol: _Tol) -> tuple[Any, Info]:
    """Solution and Info, with the stopping quantity recomputed at the returned point.

    Status: nonfinite (the solution is then NaN), a solver-specific failure, successful
    (recomputed quantity within tolerance), uncertified (the running quantity was, the
    recomputed one is not) or max_steps_reached.
    """
    r_run = it.residual(state)
    thr = _threshold(it, state, tol)
    if it.certify is None:
        r_cert, thr_cert = r_run, thr
    else:
        r_cert = it.certify(*lax.stop_gradient((state, params)))
        if isinstance(r_cert, tuple):
            r_cert, floor = r_cert
            thr_cert = thr + jnp.minimum(floor, 10 * thr)
        else:
            thr_cert = thr
    x = it.solution(state)
    finite = jnp.isfinite(r_run) & jnp.isfinite(r_cert)
    for leaf in jax.tree_util.tree_leaves(x):
        finite = finite & jnp.all(jnp.isfinite(lax.stop_gradient(leaf)))
    special = _status(it, state)
    code = jnp.where(
        ~finite,
        RESULTS.nonfinite,
        jnp.where(
            special != 0,
            special,
            jnp.where(
                r_cert <= thr_cert,
                RESULTS.successful,
                jnp.where(r_run <= thr, RESULTS.uncertified, RESULTS.max_steps_reached),
            ),
        ),
    ).astype(jnp.int32)
    poison = _poisoned(code)
    x = jax.tree_util.tree_map(lambda v: jnp.where(poison, jnp.nan, v), x)
    r_out = jnp.where(special != 0, jnp.asarray(jnp.nan, r_cert.dtype), r_cert)
    info = Info(iterations=k, residual=r_out, converged=code == RESULTS.successful, result=code)
    return x, info


def _unrolled(it, params, x0, tol, maxiter):
    state = it.init(params, x0)
    body = _frozen_step(it, params, tol, None)
    (state, k), _ = lax.scan(body, (state, jnp.asarray(0, jnp.int32)), None, length=maxiter)
    return _finish(it, state, k, params, tol)


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
    return _finish(it, state, k, params, tol)


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
    # Pass 1, no gradient: run to the stopping rule; n steps, final state (the answer).
    frozen_params, frozen_state0 = lax.stop_gradient((params, state0))
    final, n = _while(it, frozen_params, frozen_state0, tol, maxiter)
    start = jnp.maximum(n - last, 0)

    # Pass 2, no gradient: replay the first n - last steps to the cut iterate x_{n-last}
    # (storing nothing; a ring buffer of states would be a batched scatter per step under
    # vmap, far slower).
    def replay(carry):
        state, k = carry
        return it.step(state, frozen_params, k), k + 1

    cut, _ = lax.while_loop(
        lambda c: c[1] < start, replay, (frozen_state0, jnp.asarray(0, jnp.int32))
    )
    # Rebuild the derived state at the cut iterate with the live parameters (CG: r = b - Ax,
    # p = r); n <= last: all steps are kept, start from the differentiable initial state.
    x_cut = lax.stop_gradient(it.solution(cut))
    restart = it.init if it.restart is None else it.restart
    state = _select(start == 0, state0, restart(params, x_cut))

    # Pass 3: min(n, last) differentiated steps.
    def body(carry, _):
        state, k = carry
        new = it.step(state, params, k)
        active = k < n
        return (_select(active, new, state), k + active.astype(jnp.int32)), None

    (state, _), _ = lax.scan(body, (state, start), None, length=last)
    x_final, info = _finish(it, final, n, frozen_params, tol)
    x_grad = it.solution(state)
    # The value is the solution the stopping rule accepted (as in every mode); the
    # derivative is that of the restarted steps. n <= last: both are the same steps.
    bad = _poisoned(info.result)
    x = jax.tree_util.tree_map(
        lambda a, g: jnp.where(
            bad, jnp.nan, jnp.where(start == 0, g, a + (g - lax.stop_gradient(g)))
        ),
        x_final,
        x_grad,
    )
    return x, info


def _implicit(it, params, x0, tol, maxiter, gradient):
    def forward(params, x0):
        state, k = _while(it, params, it.init(params, x0), tol, maxiter)
        return _finish(it, state, k, params, tol)

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
    atol=0.0,
) -> tuple[jax.Array, Info]:
    """Run ``it`` from ``x0`` for at most ``maxiter`` steps under a gradient mode.

    Args:
        it: the solver's :class:`Iteration`.
        params: pytree of arrays the solution depends on (differentiable).
        x0: starting point; differentiable under the unrolled modes only.
        tol: relative tolerance rtol: stop when ``it.residual(state) <= rtol + atol /
            it.scale(state)`` (traced: changing it does not recompile).
        maxiter: static cap on the number of steps.
        gradient: the gradient mode.
        atol: absolute tolerance (traced), measured against ``it.scale``.

    Returns:
        ``(x, info)``: the solution and an :class:`Info`.
    """
    check_gradient(gradient)
    dtype = jnp.result_type(*jax.tree_util.tree_leaves(x0))
    tol = _Tol(jnp.asarray(tol, dtype), jnp.asarray(atol, dtype))
    if isinstance(gradient, Unrolled):
        return _unrolled(it, params, x0, tol, maxiter)
    if isinstance(gradient, Checkpointed):
        return _checkpointed(it, params, x0, tol, maxiter, gradient.every)
    if isinstance(gradient, Truncated):
        return _truncated(it, params, x0, tol, maxiter, gradient.last)
    if isinstance(gradient, Implicit):
        return _implicit(it, params, x0, tol, maxiter, gradient)
    raise TypeError(f"gradient mode {gradient!r} is not supported by glrjax.iterate.")
