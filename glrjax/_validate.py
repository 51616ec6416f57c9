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


def check_nonnegative(value, name: str, example: str = "1e-6") -> None:
    """Concrete values must be >= 0 (traced values pass: they cannot be inspected)."""
    arr = _concrete_array(value)
    if arr is not None and arr.size and not bool(np.all(arr >= 0)):
        raise ValueError(f"{name}={value} must be >= 0, e.g. {name}={example}.")


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


def call_user(what: str, fn, *args, hint: str = ""):
    """``jax.eval_shape(fn, *args)``, re-raising a failure inside the user's function with
    context (which function, with what inputs) instead of a misleading diagnosis."""
    try:
        return jax.eval_shape(fn, *args)
    except Exception as err:  # noqa: BLE001 - re-raised with context below
        where = f" ({hint})" if hint else ""
        raise type(err)(
            f"{what} raised {type(err).__name__} when glrjax traced it{where}: {err}"
        ) from err
