"""Primal-dual splitting (Condat–Vũ; Chambolle–Pock when f = 0) under any gradient mode.

Solves  min_x f(x) + g(x) + h(Kx)  with f smooth (∇f L-Lipschitz), g and h with
cheap proximal operators and K linear, by (Condat 2013, Vũ 2013)

    x⁺ = prox_{τg}(x − τ(∇f(x) + Kᵀy))
    y⁺ = prox_{σh*}(y + σK(2x⁺ − x)),     prox_{σh*}(v) = v − σ prox_{h/σ}(v/σ)  (Moreau)

which converges when τ(L/2 + σ‖K‖²) < 1. The solution is the saddle point (x*, y*);
``Implicit`` differentiates the fixed point (x, y) = T(x, y) of this map.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from glrjax import _krylov
from glrjax._eager import cached, validated
from glrjax._validate import (
    check_float_array,
    check_maxiter,
    check_positive,
    check_solver_array,
    check_tol,
)
from glrjax.gradients import GradientMode, Unrolled, check_gradient
from glrjax.iterate import Info, Iteration, iterate
from glrjax.proximal import lipschitz as estimate_lipschitz
from glrjax.results import RESULTS

__all__ = ["PrimalDual", "operator_norm", "primal_dual", "primal_dual_step"]


class PrimalDual(NamedTuple):
    """A primal-dual pair; the solution returned by :func:`primal_dual`."""

    x: jax.Array  # primal variable
    y: jax.Array  # dual variable, shaped like K(x)


class _State(NamedTuple):
    x: jax.Array  # primal iterate
    y: jax.Array  # dual iterate
    residual: jax.Array  # relative change of (x, y) in the last step
    size: jax.Array  # ‖(x, y)‖ after the last step: the scale of atol


def operator_norm(K, x, args, iters: int = 50) -> jax.Array:
    """‖K‖ (largest singular value) by power iteration on KᵀK, without gradient.

    Power iteration approaches ‖K‖ from below.

    >>> import jax.numpy as jnp
    >>> K = lambda x, a: a @ x
    >>> round(float(operator_norm(K, jnp.ones(2), jnp.diag(jnp.array([3.0, 1.0])))), 4)
    3.0
    """
    x, args = jax.lax.stop_gradient((x, args))
    kt = jax.linear_transpose(lambda v: K(v, args), x)
    return jnp.sqrt(_krylov.power_iteration(lambda v: kt(K(v, args))[0], x, iters))


def _schedule(value, name, maxiter, dtype):
    if value is None:
        return None
    value = check_float_array(value, name).astype(dtype)
    if value.ndim == 1 and value.shape != (maxiter,):
        raise ValueError(
            f"{name} has shape {value.shape}; give a scalar or one value per iteration, "
            f"shape (maxiter,) = ({maxiter},)."
        )
    if value.ndim > 1:
        raise ValueError(f"{name} must be a scalar or shape (maxiter,), got {value.shape}.")
    check_positive(value, name, "0.5")
    return value


def _at(value, k):
    return value if value.ndim == 0 else value[jnp.minimum(k, value.shape[0] - 1)]


def primal_dual_step(K, x, y, args, tau, sigma, grad_f=None, prox_g=None, prox_h=None):
    """One Condat–Vũ step (x, y) → (x⁺, y⁺) with steps ``tau``, ``sigma`` (module docstring).

    The map that :func:`primal_dual` iterates, exposed for unrolled networks whose
    per-layer parameters live outside ``args`` (e.g. :func:`glrjax.l2g.l2g_unrolled`).

    >>> import jax.numpy as jnp
    >>> x, y = primal_dual_step(lambda x, a: x, jnp.ones(2), jnp.zeros(2), None, 0.5, 1.0,
    ...                         grad_f=lambda x, a: x)
    >>> [float(v) for v in x], [float(v) for v in y]
    ([0.5, 0.5], [0.0, 0.0])
    """
    kt = jax.linear_transpose(lambda v: K(v, args), x)
    v = x - tau * kt(y)[0]
    if grad_f is not None:
        v = v - tau * grad_f(x, args)
    x_new = v if prox_g is None else prox_g(v, args, tau)
    w = y + sigma * K(2 * x_new - x, args)
    # Moreau: prox_{σh*}(w) = w − σ prox_{h/σ}(w/σ).
    y_new = (
        jnp.zeros_like(w) if prox_h is None else w - sigma * prox_h(w / sigma, args, 1.0 / sigma)
    )
    return x_new, y_new


@cached
def primal_dual(
    K,
    x0,
    args=None,
    *,
    grad_f=None,
    prox_g=None,
    prox_h=None,
    y0=None,
    tau=None,
    sigma=None,
    lipschitz=None,
    norm_K=None,
    tol=1e-6,
    rtol=None,
    atol=0.0,
    maxiter: int = 1000,
    gradient: GradientMode = Unrolled(),
) -> tuple[PrimalDual, Info]:
    """Minimise f(x) + g(x) + h(K(x, args)) by Condat–Vũ primal-dual splitting.

    Args:
        K: ``K(x, args)``, linear in ``x`` (its adjoint comes from ``jax.linear_transpose``).
        x0: primal starting point (its shape and dtype are the solution's).
        args: pytree of arrays shared by every function (hyperparameters such as λ, μ, α
            live here, traced: changing them does not recompile). Gradients flow to it.
        grad_f: ``grad_f(x, args)``, gradient of the smooth term (None: f = 0).
        prox_g: ``prox_g(x, args, t) = prox_{t·g}(x)`` (None: g = 0).
        prox_h: ``prox_h(v, args, t) = prox_{t·h}(v)``; the dual step uses Moreau's identity.
            None: h = 0.
        y0: dual starting point (zeros shaped like ``K(x0)`` by default).
        tau, sigma: primal and dual steps, scalars or per-iteration schedules of shape
            ``(maxiter,)``. Default: σ = 1/‖K‖, τ = 0.99/(‖K‖ + L/2).
        lipschitz: L, the Lipschitz constant of ``grad_f`` (estimated at ``x0`` by power
            iteration when None and ``grad_f`` is given).
        norm_K: ‖K‖ if known (estimated by power iteration when None).
        tol: stop when the relative change ‖Δ(x, y)‖/‖(x, y)‖ of one step is <= tol.
        rtol, atol: the general rule ‖Δ(x, y)‖ ≤ atol + rtol·‖(x, y)‖ (``rtol`` defaults to
            ``tol``). Traced.
        maxiter: maximum number of steps (static).
        gradient: gradient mode; ``Implicit`` differentiates the saddle point (GMRES).

    Returns:
        ``(PrimalDual(x, y), info)``; ``info.residual`` is the relative change of one
        more step from the returned pair (recomputed at exit). Steps that break
        τ(L/2 + σ‖K‖²) < 1 for the (under-)estimated ‖K‖ end the run at once with NaN and
        ``info.result == RESULTS.step_condition_violated``.

    Example: the LASSO min ½‖x − b‖² + λ‖x‖₁ (f = ½‖x − b‖², h = λ‖·‖₁, K = I) is
    soft-thresholding.

    >>> import jax.numpy as jnp
    >>> soft = lambda v, lam, t: jnp.sign(v) * jnp.maximum(jnp.abs(v) - t * lam, 0)
    >>> sol, info = primal_dual(
    ...     lambda x, a: x, jnp.zeros(3), 0.5, grad_f=lambda x, a: x - jnp.array([2.0, 0.1, -1.0]),
    ...     prox_h=soft, tol=1e-10, maxiter=2000)
    >>> [round(float(v), 4) for v in sol.x], bool(info.converged)
    ([1.5, 0.0, -0.5], True)
    """
    gradient = check_gradient(gradient)
    maxiter = check_maxiter(maxiter)
    rtol = tol if rtol is None else rtol
    check_tol(tol)
    check_tol(rtol, "rtol")
    check_tol(atol, "atol")
    for name, fn in [("K", K), ("grad_f", grad_f), ("prox_g", prox_g), ("prox_h", prox_h)]:
        if fn is not None and not callable(fn):
            raise TypeError(f"{name} must be a function, got {type(fn).__name__}.")
    if isinstance(x0, dict | tuple) or (
        isinstance(x0, list) and any(jnp.ndim(v) > 0 for v in jax.tree_util.tree_leaves(x0))
    ):
        raise TypeError(
            "primal_dual takes an array x0, not a pytree; flatten it first: "
            "flat, unravel = jax.flatten_util.ravel_pytree(x0), and unravel inside K/grad_f/prox."
        )
    x0 = check_solver_array(x0, "x0")
    dtype = x0.dtype
    try:
        ky = jax.eval_shape(K, x0, args)
    except Exception as err:
        raise ValueError(f"K(x, args) failed for x shaped like x0 {x0.shape}: {err}") from err
    if ky.dtype != dtype:
        raise TypeError(f"K(x, args) returned dtype {ky.dtype} for x0 of dtype {dtype}.")
    y0 = jnp.zeros(ky.shape, dtype) if y0 is None else check_float_array(y0, "y0").astype(dtype)
    if y0.shape != ky.shape:
        raise ValueError(f"y0 has shape {y0.shape}; it must have K(x0)'s shape {ky.shape}.")
    tau = _schedule(tau, "tau", maxiter, dtype)
    sigma = _schedule(sigma, "sigma", maxiter, dtype)
    check_positive(norm_K, "norm_K")
    if lipschitz is not None:
        check_tol(lipschitz, "lipschitz")
    _check_concrete_steps(tau, sigma, norm_K, lipschitz if grad_f is not None else 0.0)
    validated()

    knorm = operator_norm(K, x0, args) if norm_K is None else jnp.asarray(norm_K, dtype)
    if grad_f is None:
        lip = jnp.zeros((), dtype)
    elif lipschitz is None:
        lip = estimate_lipschitz(grad_f, x0, args)
    else:
        lip = jnp.asarray(lipschitz, dtype)
    if sigma is None:
        sigma = 1.0 / knorm
    if tau is None:
        tau = 0.99 / (knorm + lip / 2)
    # Step condition τ(L/2 + σ‖K‖²) < 1, checked at run time (power iteration underestimates).
    ok = jnp.all(tau * (lip / 2 + sigma * knorm**2) <= 1.0 + 1e-3)
    ok = jax.lax.stop_gradient(ok)

    params = (args, tau, sigma)

    def step(state, p, k):
        a, tau, sigma = p
        t, s = _at(tau, k), _at(sigma, k)
        x, y = primal_dual_step(K, state.x, state.y, a, t, s, grad_f, prox_g, prox_h)
        return _State(x, y, *_change(x, y, state.x, state.y))

    def init(p, z0):
        x, y = z0
        big = jnp.asarray(jnp.finfo(dtype).max, dtype)
        return _State(x, y, big, jnp.ones((), dtype))

    def one_step(z, p):
        a, tau, sigma = p
        last = maxiter - 1
        return primal_dual_step(
            K, z[0], z[1], a, _at(tau, last), _at(sigma, last), grad_f, prox_g, prox_h
        )

    def optimality(z, p):
        x, y = one_step(z, p)
        return (x - z[0], y - z[1])

    def certify(state, p):  # one more step from the returned pair: its relative change
        x, y = one_step((state.x, state.y), p)
        return _change(x, y, state.x, state.y)[0]

    bad_steps = jnp.asarray(RESULTS.step_condition_violated, jnp.int32)
    it = Iteration(
        init=init,
        step=step,
        residual=lambda s: s.residual,
        solution=lambda s: (s.x, s.y),
        optimality=optimality,
        symmetric=False,
        certify=certify,
        scale=lambda s: s.size,
        status=lambda s: jnp.where(ok, jnp.zeros((), jnp.int32), bad_steps),
    )
    (x, y), info = iterate(
        it, params, (x0, y0), tol=rtol, atol=atol, maxiter=maxiter, gradient=gradient
    )
    return PrimalDual(x, y), info


def _change(x, y, x_old, y_old):
    """(‖Δ(x, y)‖/‖(x, y)‖, ‖(x, y)‖), with one shared unit (no under/overflow)."""
    m = jnp.maximum(
        jnp.maximum(jnp.max(jnp.abs(x)), jnp.max(jnp.abs(y))),
        jnp.maximum(jnp.max(jnp.abs(x_old)), jnp.max(jnp.abs(y_old))),
    )
    unit = jax.lax.stop_gradient(jnp.where((m > 0) & jnp.isfinite(m), m, jnp.ones_like(m)))
    dx, dy = (x - x_old) / unit, (y - y_old) / unit
    change = jnp.sqrt(_krylov.vdot(dx, dx) + _krylov.vdot(dy, dy))
    size = jnp.sqrt(_krylov.vdot(x / unit, x / unit) + _krylov.vdot(y / unit, y / unit))
    rel = _krylov.safe_div(change, size) + jnp.where(size > 0, 0.0, change)
    return rel, size * unit


def _check_concrete_steps(tau, sigma, norm_K, lipschitz) -> None:
    """Trace-time check of τ(L/2 + σ‖K‖²) < 1 when every number is known."""
    import numpy as np

    if tau is None or sigma is None or norm_K is None:
        return
    try:
        t = np.asarray(tau, np.float64)
        s = np.asarray(sigma, np.float64)
        n = float(norm_K)
        lip = float(lipschitz)
    except Exception:  # noqa: BLE001 - something is traced or missing: checked at run time
        return
    if t.dtype == object or s.dtype == object:
        return
    worst = float(np.max(t * (lip / 2 + s * n**2)))
    if worst >= 1.0:
        raise ValueError(
            f"tau and sigma break the step condition tau*(L/2 + sigma*norm_K**2) < 1 "
            f"(got {worst:.3g}); decrease them, e.g. sigma = 1/norm_K and "
            "tau = 0.99/(norm_K + L/2), or leave them None to have them chosen."
        )
