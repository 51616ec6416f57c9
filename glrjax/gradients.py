"""Gradient modes: how reverse-mode differentiation passes through an iterative solver.

A gradient mode is a small frozen strategy object passed per call as ``gradient=``
(the habit of optimistix's ``adjoint=``). Solvers never look inside it: they hand a
step function and an optimality map to :func:`glrjax.iterate.iterate`, which is the
only place that knows what each mode means.

- :class:`Unrolled`: ``lax.scan`` of ``maxiter`` steps, frozen once converged;
  backward through every step; memory O(K).
- :class:`Checkpointed`: segments of ``every`` steps under ``jax.checkpoint``;
  backward recomputes each segment; memory O(K/every + every).
- :class:`Truncated`: ``while_loop`` to tolerance, then ``last`` steps restarted from the
  cut iterate x_{n−last}; backward through those only; memory O(last), biased.
- :class:`Implicit`: ``while_loop`` to tolerance; derivatives from the implicit function
  theorem (forward and reverse mode); memory O(1) in K.

Example:
    >>> import glrjax
    >>> glrjax.Checkpointed(every=10)
    Checkpointed(every=10)
    >>> glrjax.Implicit(solver="gmres", tol=1e-8).solver
    'gmres'
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable
from typing import Any, Literal

import jax

from glrjax._validate import dtype_tol

__all__ = ["GradientMode", "Unrolled", "Checkpointed", "Truncated", "Implicit"]


class GradientMode:
    """Base class of the gradient modes. Subclasses are frozen dataclasses."""


def _register(cls):
    cls = dataclasses.dataclass(frozen=True)(cls)
    # Static pytree nodes: a mode has no array leaves, so it can sit inside a pytree that
    # crosses `jit`, and equal modes hash equally (no recompilation for a new instance).
    jax.tree_util.register_static(cls)
    return cls


def _check_positive_int(owner: str, name: str, value, hint: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{owner}({name}=...) must be a Python int, got {type(value).__name__} {value!r}. "
            f"{hint}"
        )
    if value < 1:
        raise ValueError(f"{owner}({name}={value}) must be >= 1. {hint}")


@_register
class Unrolled(GradientMode):
    """Reverse mode through every iteration.

    The loop always runs ``maxiter`` steps (``lax.scan``) and freezes the state once the
    stopping rule holds, so the result equals the early-exit one. Memory grows linearly
    with ``maxiter``. Gradients reach ``x0`` and per-iteration step schedules.

    >>> Unrolled()
    Unrolled()
    """


@_register
class Checkpointed(GradientMode):
    """Unrolled gradients with rematerialization (gradient checkpointing).

    The ``maxiter`` steps run as a scan over segments of ``every`` steps, each under
    ``jax.checkpoint``: the backward pass stores one state per segment and recomputes
    the inside of a segment when it needs it. Memory O(maxiter/every + every), smallest
    near ``every = sqrt(maxiter)``; time at most about twice :class:`Unrolled`.
    Gradients equal :class:`Unrolled`'s.

    >>> Checkpointed(every=32).every
    32
    """

    every: int = 10  # segment length k; ceil(maxiter / k) states are stored

    def __post_init__(self):
        _check_positive_int(
            "Checkpointed", "every", self.every, "Pick about sqrt(maxiter), e.g. every=10."
        )


@_register
class Truncated(GradientMode):
    """Gradient through ``last`` solver steps restarted from the cut iterate.

    The forward pass runs to the stopping rule (n steps) and returns that solution. The
    gradient is that of the map θ ↦ k steps of the solver *restarted* from
    x_{n−k} = stop_gradient(x_{n−k}) with the live parameters θ: the solver's derived
    state (CG's residual r = b − A x and direction p = r, FISTA's momentum, ...) is
    rebuilt from x_{n−k} by ``Iteration.restart``. For CG that is a k-step Krylov solve of
    the correction, so ∂/∂b and ∂/∂A are informative and converge to the exact ones as k
    grows. (Freezing the whole state at the cut instead — glrjax 0.1 — made ∂/∂b exactly
    zero for Krylov methods: b enters CG only through r₀.) With ``last >= steps taken``
    it equals :class:`Unrolled` exactly. Memory O(last); biased by design.

    >>> Truncated(last=5).last
    5
    """

    last: int = 10  # number of final iterations differentiated

    def __post_init__(self):
        _check_positive_int(
            "Truncated", "last", self.last, "It counts the final iterations to differentiate."
        )


_IMPLICIT_SOLVERS = ("auto", "cg", "gmres", "neumann")
_ON_FAILURE = ("nan", "ignore")


@_register
class Implicit(GradientMode):
    """Implicit differentiation of the optimality condition F(x*, θ) = 0.

    The forward pass is a ``while_loop`` to tolerance and stores nothing per iteration;
    the backward pass solves the adjoint system ``(∂F/∂x)ᵀ u = -x̄`` and returns
    ``(∂F/∂θ)ᵀ u`` (jaxopt's ``root_vjp``). Memory does not grow with the iteration count.

    Attributes:
        solver: backward linear solver. ``"cg"`` for symmetric adjoints (CG's own
            system, the GLR filter), ``"gmres"`` otherwise (proximal fixed points),
            ``"neumann"`` for the truncated Neumann series Σ (I + ∂F)ᵀⁱ x̄ of a
            fixed-point map; ``maxiter=0`` there is Jacobian-free backprop.
            ``"auto"`` picks ``"cg"`` when the solver declares its adjoint symmetric,
            else ``"gmres"``. The normal equations are never used: they square the
            condition number.
        tol: relative residual tolerance of the backward solve; ``None`` (default):
            max(1e-6, 100·ε) of the solve's dtype — 1e-6 in float64, 1.2e-5 in float32,
            where an adjoint CG stagnates near 2e-6 on image graphs and a fixed 1e-6
            fails (NaN gradient).
        maxiter: iteration cap of the backward solve (Neumann terms for ``"neumann"``).
        on_failure: ``"nan"`` makes the derivative NaN when the tangent/adjoint solve
            does not reach ``tol`` on its true residual (or stagnates, or a Neumann series
            stops shrinking), so failure is never silent; ``"ignore"`` returns whatever
            the solve reached.
        report: optional ``fn(info)`` called (via ``jax.debug.callback``) after every
            tangent/adjoint solve with a :class:`glrjax.implicit.BackwardInfo` (kind,
            solver, iterations, true residual, status code, converged). Hashed by
            identity: pass the same function to avoid recompiling.
        restart: GMRES's cycle length m (``None``: 30). The backward solve holds an
            (m+1)-vector Krylov basis, so memory grows with m; a smaller m costs more
            cycles and may stagnate (then the solve fails, see ``on_failure``). GMRES only.

    Forward mode (``jax.jvp``, ``jax.jacfwd``), reverse mode and their compositions
    (``jax.hessian``, grad-of-grad) all work: the rule is a JVP whose linear solve JAX
    transposes (:mod:`glrjax.implicit`).

    Per-iteration parameters (step schedules) get zero gradient in this mode: the
    solution of the optimality condition does not depend on them.

    >>> Implicit(tol=1e-8, maxiter=200)
    Implicit(solver='auto', tol=1e-08, maxiter=200, on_failure='nan', report=None, restart=None)
    >>> import jax.numpy as jnp
    >>> Implicit().backward_tol(jnp.float32), Implicit().backward_tol(jnp.float64)
    (1.1920928955078125e-05, 1e-06)
    """

    solver: Literal["auto", "cg", "gmres", "neumann"] = "auto"  # backward linear solver
    tol: float | None = None  # true relative residual the solve must reach (None: by dtype)
    maxiter: int = 1000  # products (or Neumann terms) of the tangent/adjoint solve
    on_failure: Literal["nan", "ignore"] = "nan"  # what a failed solve returns
    report: Callable[[Any], None] | None = None  # fn(BackwardInfo) after each solve
    restart: int | None = None  # GMRES cycle length m: an (m+1)-vector basis (None: 30)

    def __post_init__(self):
        if self.solver not in _IMPLICIT_SOLVERS:
            raise ValueError(
                f"Implicit(solver={self.solver!r}) is not a backward solver; use one of "
                f"{_IMPLICIT_SOLVERS} ('cg' for symmetric systems, 'gmres' otherwise)."
            )
        if self.on_failure not in _ON_FAILURE:
            raise ValueError(
                f"Implicit(on_failure={self.on_failure!r}) must be 'nan' (failed backward "
                "solves give NaN gradients) or 'ignore' (keep whatever was reached)."
            )
        if self.tol is None:
            pass
        elif isinstance(self.tol, bool) or not isinstance(self.tol, numbers.Real):
            raise TypeError(f"Implicit(tol=...) must be a Python float or None, got {self.tol!r}.")
        elif not self.tol >= 0:
            raise ValueError(f"Implicit(tol={self.tol}) must be >= 0, e.g. tol=1e-6.")
        if isinstance(self.maxiter, bool) or not isinstance(self.maxiter, numbers.Integral):
            raise TypeError(f"Implicit(maxiter=...) must be a Python int, got {self.maxiter!r}.")
        minimum = 0 if self.solver == "neumann" else 1
        if self.maxiter < minimum:
            raise ValueError(
                f"Implicit(maxiter={self.maxiter}) must be >= {minimum} for "
                f"solver={self.solver!r} (maxiter=0 is allowed only for 'neumann', where it "
                "is Jacobian-free backprop)."
            )
        if self.restart is not None:
            _check_positive_int("Implicit", "restart", self.restart, "e.g. restart=10.")
            if self.solver in ("cg", "neumann"):
                raise ValueError(
                    f"Implicit(restart={self.restart}) applies to GMRES only; drop it or use "
                    f"solver='gmres' instead of solver={self.solver!r}."
                )
        if self.report is not None and not callable(self.report):
            raise TypeError(
                f"Implicit(report={self.report!r}) must be a function fn(info) or None, "
                "e.g. report=print."
            )

    def backward_tol(self, dtype) -> float:
        """The tolerance of a backward solve in ``dtype``: ``tol``, or its default."""
        if self.tol is not None:
            return float(self.tol)
        return dtype_tol(dtype, 1e-6)


def check_gradient(gradient, name: str = "gradient") -> GradientMode:
    """Raise a TypeError unless ``gradient`` (the argument ``name``) is a gradient-mode instance."""
    if isinstance(gradient, type) and issubclass(gradient, GradientMode):
        raise TypeError(
            f"{name}={gradient.__name__} is a class; pass an instance, "
            f"e.g. {name}={gradient.__name__}()."
        )
    if not isinstance(gradient, GradientMode):
        raise TypeError(
            f"{name}={gradient!r} is not a gradient mode; pass one of glrjax.Unrolled(), "
            "glrjax.Checkpointed(every=k), glrjax.Truncated(last=k), glrjax.Implicit()."
        )
    return gradient
