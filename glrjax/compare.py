"""Side-by-side measurement of gradient modes: gradient error, time and XLA memory.

A :class:`Case` is a differentiable loss built on one solver, a point θ and an
independent reference gradient (dense float64 linear algebra). :func:`measure` runs
one (case, mode) pair: it compiles ``value_and_grad`` once, reads XLA's temporary
memory from ``compiled.memory_analysis()``, times forward+backward, and compares the
gradient with the reference. ``glrjax compare`` (``glrjax.cli``) drives it.

>>> import glrjax
>>> from glrjax.compare import cg_case, measure
>>> case = cg_case(size=8)
>>> row = measure(case, glrjax.Implicit(tol=1e-10), maxiter=100, repeats=1)
>>> row["grad_error"] < 1e-4, row["converged"]
(True, True)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from glrjax.gradients import Checkpointed, GradientMode, Implicit, Truncated, Unrolled
from glrjax.images import noisy, piecewise_smooth
from glrjax.linear import cg

__all__ = ["Case", "cg_case", "default_modes", "measure", "mode_label", "relative_error"]


class Case(NamedTuple):
    """A differentiable experiment on one solver."""

    name: str  # row label, e.g. "cg / GLR 32x32"
    solver: str  # the solver under test, e.g. "cg"
    loss: Callable[[Any, GradientMode, int], tuple[jax.Array, Any]]  # (θ, mode, K) -> (ℓ, info)
    theta: Any  # pytree at which the gradient is taken
    reference: Callable[[], Any]  # () -> the exact gradient at θ (independent, float64)


def default_modes(maxiter: int) -> list[GradientMode]:
    """One instance of each mode, sized for ``maxiter`` (Checkpointed at √K, Truncated at K/4)."""
    return [
        Unrolled(),
        Checkpointed(every=max(1, math.isqrt(maxiter))),
        Truncated(last=max(1, maxiter // 4)),
        Implicit(tol=1e-8, maxiter=10 * maxiter),
    ]


def mode_label(mode: GradientMode) -> str:
    """Short label: ``unrolled``, ``checkpointed(10)``, ``truncated(25)``, ``implicit(gmres)``."""
    if isinstance(mode, Checkpointed):
        return f"checkpointed({mode.every})"
    if isinstance(mode, Truncated):
        return f"truncated({mode.last})"
    if isinstance(mode, Implicit):
        return f"implicit({mode.solver})"
    return type(mode).__name__.lower()


def relative_error(grad, reference) -> float:
    """‖g - g_ref‖ / ‖g_ref‖ over all leaves, in float64."""
    g = np.concatenate(
        [np.ravel(np.asarray(x, np.float64)) for x in jax.tree_util.tree_leaves(grad)]
    )
    r = np.concatenate(
        [np.ravel(np.asarray(x, np.float64)) for x in jax.tree_util.tree_leaves(reference)]
    )
    return float(np.linalg.norm(g - r) / max(np.linalg.norm(r), np.finfo(np.float64).tiny))


def measure(case: Case, mode: GradientMode, maxiter: int, repeats: int = 5) -> dict:
    """Gradient error, forward+backward time and XLA temp memory of one (case, mode)."""
    fn = jax.value_and_grad(lambda th: case.loss(th, mode, maxiter), has_aux=True)
    compiled = jax.jit(fn).lower(case.theta).compile()
    stats = compiled.memory_analysis()
    temp = getattr(stats, "temp_size_in_bytes", None) if stats is not None else None
    (value, info), grad = jax.block_until_ready(compiled(case.theta))  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(case.theta))
        times.append(time.perf_counter() - t0)
    error = relative_error(grad, case.reference())
    return {
        "case": case.name,
        "solver": case.solver,
        "mode": mode_label(mode),
        "mode_repr": repr(mode),
        "maxiter": maxiter,
        "loss": float(value),
        "iterations": int(np.max(np.asarray(info.iterations))),
        "converged": bool(np.all(np.asarray(info.converged))),
        "grad_error": error,
        "time_ms": 1e3 * float(np.median(times)),
        "temp_mb": None if temp is None else temp / 2**20,
        "finite": bool(np.isfinite(error)),
    }


def _grid_laplacian(x, w):
    """L x on a 4-connected grid; w = (w_right, w_down) of shape (H, W) (zero off-grid)."""
    wr, wd = w
    d = jnp.zeros_like(x)
    d = d.at[:, :-1].add(wr[:, :-1] * (x[:, :-1] - x[:, 1:]))
    d = d.at[:, 1:].add(wr[:, :-1] * (x[:, 1:] - x[:, :-1]))
    d = d.at[:-1, :].add(wd[:-1, :] * (x[:-1, :] - x[1:, :]))
    d = d.at[1:, :].add(wd[:-1, :] * (x[1:, :] - x[:-1, :]))
    return d


def _dense_grid_laplacian(wr, wd):
    h, w = wr.shape
    n = h * w
    lap = np.zeros((n, n))
    idx = np.arange(n).reshape(h, w)
    for i, j, wgt in [(idx[:, :-1], idx[:, 1:], wr[:, :-1]), (idx[:-1, :], idx[1:, :], wd[:-1, :])]:
        for a, b, c in zip(i.ravel(), j.ravel(), wgt.ravel(), strict=True):
            lap[a, a] += c
            lap[b, b] += c
            lap[a, b] -= c
            lap[b, a] -= c
    return lap


def cg_case(size: int = 32, mu: float = 2.0, sigma: float = 0.1, dtype=jnp.float32) -> Case:
    """GLR denoising by CG on the built-in image: (I + μL)x = y, loss ‖x - clean‖²/N.

    θ = (μ, y); the 4-connected graph has Gaussian weights of the noisy image. The
    reference gradient is the dense float64 closed form: ∂ℓ/∂y = A⁻ᵀg and
    ∂ℓ/∂μ = -(A⁻ᵀg)ᵀ L x with g = ∂ℓ/∂x, A = I + μL.
    """
    clean = piecewise_smooth(size, seed=0).astype(np.float64)
    y = noisy(clean, sigma=sigma, seed=1).astype(np.float64)
    wr = np.zeros_like(y)
    wd = np.zeros_like(y)
    wr[:, :-1] = np.exp(-((y[:, :-1] - y[:, 1:]) ** 2) / (2 * sigma**2))
    wd[:-1, :] = np.exp(-((y[:-1, :] - y[1:, :]) ** 2) / (2 * sigma**2))
    w = (jnp.asarray(wr, dtype), jnp.asarray(wd, dtype))
    target = jnp.asarray(clean, dtype)

    def loss(theta, mode, maxiter):
        mu, yy = theta
        x, info = cg(
            lambda v, a: v + a[0] * _grid_laplacian(v, a[1]),
            yy,
            (mu, w),
            tol=1e-6 if dtype == jnp.float32 else 1e-10,
            maxiter=maxiter,
            gradient=mode,
        )
        return jnp.mean((x - target) ** 2), info

    def reference():
        lap = _dense_grid_laplacian(wr, wd)
        a = np.eye(size * size) + mu * lap
        x = np.linalg.solve(a, y.ravel())
        g = 2 * (x - clean.ravel()) / x.size
        adj = np.linalg.solve(a.T, g)
        return (-(adj @ (lap @ x)), adj.reshape(size, size))

    theta = (jnp.asarray(mu, dtype), jnp.asarray(y, dtype))
    return Case(f"cg / GLR {size}x{size}", "cg", loss, theta, reference)
