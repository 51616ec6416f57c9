"""Trace-time argument checks shared by all solvers; messages name the argument and the fix."""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np


def check_maxiter(maxiter, name: str = "maxiter") -> int:
    """Validate a static iteration cap (a Python int >= 1)."""
    if isinstance(maxiter, bool) or not isinstance(maxiter, numbers.Integral):
        raise TypeError(
            f"{name}={maxiter!r} must be a Python int (it fixes the loop length at trace time)."
        )
    if maxiter < 1:
        raise ValueError(f"{name}={maxiter} must be >= 1, e.g. {name}=100.")
    return int(maxiter)


def _concrete_array(value):
    """``value`` as a numpy array when known at trace time, else None (traced)."""
    if value is None or isinstance(value, jax.core.Tracer):
        return None
    try:
        arr = np.asarray(value)
    except Exception:  # noqa: BLE001 - anything not concrete is checked at run time
        return None
    return None if arr.dtype == object else arr


def dtype_tol(dtype, floor: float) -> float:
    """A default tolerance: ``floor``, or 100 ulps of ``dtype`` where that is larger."""
    return max(floor, 100 * float(jnp.finfo(dtype).eps))


def check_nonnegative(value, name: str, example: str = "1e-6") -> None:
    """Concrete values must be >= 0 (traced values pass: they cannot be inspected)."""
    arr = _concrete_array(value)
    if arr is not None and arr.size and not bool(np.all(arr >= 0)):
        raise ValueError(f"{name}={value} must be >= 0, e.g. {name}={example}.")


def check_graph_weights(graph, needs: str, fix: str) -> None:
    """Concrete edge weights must be >= 0 (and not NaN) on the graph's valid edges.

    ``needs`` names what requires it ("GCN propagation"), ``fix`` says what to do. Traced
    weights pass: they cannot be inspected.
    """
    w = graph.weights
    if isinstance(w, jax.core.Tracer):
        return
    w = np.asarray(w)
    bad = ~(w >= 0) & np.broadcast_to(np.asarray(graph.valid_mask()), w.shape)
    if bad.any():
        raise ValueError(
            f"graph has negative edge weights ({int(bad.sum())} below 0 or NaN, min "
            f"{np.nanmin(w):.3g}); "
            f"{needs} needs w >= 0: {fix}"
        )


def check_positive(value, name: str, example: str = "1.0") -> None:
    """Concrete values must be > 0 (traced values pass)."""
    arr = _concrete_array(value)
    if arr is not None and arr.size and not bool(np.all(arr > 0)):
        raise ValueError(f"{name}={value} must be > 0, e.g. {name}={example}.")


def check_tol(tol, name: str = "tol") -> None:
    """Validate a tolerance: concrete values must be >= 0; traced values pass."""
    check_nonnegative(tol, name, "1e-6")


def check_float_array(x, name: str) -> jax.Array:
    """Return ``x`` as an array, raising a TypeError unless it has a real floating dtype."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(
            f"{name} has dtype {x.dtype}; glrjax solvers need real floating arrays. "
            f"Cast it, e.g. {name}.astype(jnp.float32)."
        )
    return x


_LOW_PRECISION = ("float16", "bfloat16")


def check_solver_array(x, name: str) -> jax.Array:
    """A floating array a solver can iterate on: float32 or float64 (clear error otherwise)."""
    x = check_float_array(x, name)
    if x.dtype.name in _LOW_PRECISION:
        raise TypeError(
            f"{name} has dtype {x.dtype} (about {3 if x.dtype.name == 'float16' else 2} "
            "significant digits): the solvers' stopping rules and gradients cannot be trusted "
            f"there. Solve in float32 and cast back: {name}.astype(jnp.float32)."
        )
    return x


def check_int(value, name: str, *, minimum: int | None = None, example: str = "10") -> int:
    """A static Python int (not a bool, not an array), >= ``minimum`` when given."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}={value!r} must be a Python int, e.g. {name}={example}.")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}={value} must be >= {minimum}, e.g. {name}={example}.")
    return int(value)


def check_scalar(
    value,
    name: str,
    *,
    positive: bool = False,
    nonnegative: bool = False,
    finite: bool = True,
    example: str = "1.0",
):
    """A real scalar (Python number or 0-d/broadcastable real array; traced values pass).

    Concrete values are checked for finiteness (``finite``), > 0 (``positive``) or >= 0
    (``nonnegative``); the message names the argument and gives an example.
    """
    if isinstance(value, bool) or not (isinstance(value, numbers.Real) or hasattr(value, "dtype")):
        raise TypeError(f"{name}={value!r} must be a real number, e.g. {name}={example}.")
    dtype = getattr(value, "dtype", None)
    if dtype is not None and not (
        jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)
    ):
        raise TypeError(f"{name} has dtype {dtype}; it must be real, e.g. {name}={example}.")
    arr = _concrete_array(value)
    if arr is None or not arr.size:
        return value
    arr = arr.astype(np.float64)
    if finite and not bool(np.all(np.isfinite(arr))):
        raise ValueError(f"{name}={value} must be finite, e.g. {name}={example}.")
    if positive and not bool(np.all(arr > 0)):
        raise ValueError(f"{name}={value} must be > 0, e.g. {name}={example}.")
    if nonnegative and not bool(np.all(arr >= 0)):
        raise ValueError(f"{name}={value} must be >= 0, e.g. {name}={example}.")
    return value


def check_choice(value, name: str, choices):
    """``value`` if it is one of ``choices`` (strings of a ``Literal`` option), else ValueError."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(
            f"{name}={value!r} is not one of {tuple(choices)}; e.g. {name}={choices[0]!r}."
        )
    return value


def check_schedule(s, name: str, maxiter: int):
    """None, or a real array of shape ``(..., maxiter)``: one value per iteration."""
    if s is None:
        return None
    s = check_float_array(s, name)
    if s.ndim < 1 or s.shape[-1] != maxiter:
        raise ValueError(
            f"{name} has shape {s.shape}; a step-size schedule needs one value per iteration, "
            f"shape (..., maxiter) = (..., {maxiter})."
        )
    return s


def check_callable(fn, name: str, signature: str):
    """``fn`` if it is callable, else a TypeError naming the expected ``signature``."""
    if not callable(fn):
        raise TypeError(f"{name} must be a function {signature}, got {type(fn).__name__}.")
    return fn


def call_user(fn, name: str, *args):
    """``fn(*args)``; an exception raised inside it is re-raised naming ``name``.

    The user's function is blamed for its own errors (with the original exception chained)
    instead of the solver reporting a misleading shape or squareness problem.
    """
    try:
        return fn(*args)
    except Exception as err:  # noqa: BLE001 - re-raised with context, never swallowed
        shapes = ", ".join(str(getattr(a, "shape", type(a).__name__)) for a in args)
        message = (
            f"the user function {name} raised {type(err).__name__} when called with "
            f"arguments of shapes ({shapes}): {err}"
        )
        try:
            new = type(err)(message)
        except Exception:  # noqa: BLE001 - an exception type with another constructor
            new = RuntimeError(message)
        raise new from err


def is_pytree_of_arrays(x) -> bool:
    """True for a dict/tuple/list holding arrays; False for an array, a number or a (nested)
    list of numbers, which are array-like."""
    if isinstance(x, jax.Array | np.ndarray) or np.isscalar(x):
        return False
    leaves = jax.tree_util.tree_leaves(x)
    if not leaves:
        return False
    return not (isinstance(x, list | tuple) and all(np.isscalar(v) for v in leaves))
