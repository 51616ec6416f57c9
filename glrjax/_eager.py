"""Eager calls of the public solvers run one cached compiled computation.

A solver called outside ``jit`` would otherwise be traced and compiled afresh on every
call: its loops close over new Python functions each time, so JAX's caches miss
(220–270 ms per ``glr_filter`` call on a 16×16 image, against 0.1 ms jitted). The
:func:`cached` decorator splits a call's arguments into arrays and Python floats
(traced: new values never recompile) and everything else — user functions (hashed by
identity), ints, strings, gradient modes, graph structure — which keys a ``jax.jit``
cache. Argument checks that read concrete values (μ ≥ 0, tol ≥ 0, ...) still run on
every call: the solver is first run in *validation* mode, which stops at the solver's
:func:`validated` marker, right after its checks.
"""

from __future__ import annotations

import contextvars
import functools

import jax
import numpy as np

_VALIDATING = contextvars.ContextVar("glrjax_validating", default=False)


class _Validated(Exception):
    """Raised at a solver's marker during a validation pass."""


def validated() -> None:
    """Mark the end of a public solver's argument checks (see :func:`cached`)."""
    if _VALIDATING.get():
        raise _Validated


class _Indices:
    """An integer/bool array held static (graph indices, column groups), keyed by value."""

    def __init__(self, array):
        self.array = array
        host = np.asarray(array)
        self._key = (host.shape, host.dtype.str, host.tobytes())

    def __hash__(self):
        return hash(self._key)

    def __eq__(self, other):
        return isinstance(other, _Indices) and self._key == other._key


def _is_array(leaf) -> bool:
    return isinstance(leaf, jax.Array | np.ndarray | np.generic)


def _dynamic(leaf) -> bool:
    """Traced: floating arrays and Python floats. Static: the rest (ints, index arrays, ...)."""
    if isinstance(leaf, bool):
        return False
    if _is_array(leaf):
        return bool(np.issubdtype(leaf.dtype, np.inexact))
    return isinstance(leaf, float | complex)


def _static(leaf):
    return _Indices(leaf) if _is_array(leaf) else leaf


def _traced(leaves) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in leaves)


def _unwrap(leaf):
    return leaf.array if isinstance(leaf, _Indices) else leaf


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _compiled(fn, treedef, mask, static, *dynamic):
    it_dynamic, it_static = iter(dynamic), iter(static)
    leaves = [next(it_dynamic) if m else _unwrap(next(it_static)) for m in mask]
    args, kwargs = jax.tree_util.tree_unflatten(treedef, leaves)
    return fn(*args, **kwargs)


def cached(fn):
    """Decorate a public solver so that repeated eager calls reuse one compilation.

    Inside a trace (``jit``, ``grad``, ``vmap`` of the caller) the solver runs as is.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if _VALIDATING.get():
            return fn(*args, **kwargs)
        leaves, treedef = jax.tree_util.tree_flatten((args, kwargs))
        if _traced(leaves):
            return fn(*args, **kwargs)
        mask = tuple(_dynamic(leaf) for leaf in leaves)
        static = tuple(_static(leaf) for leaf, m in zip(leaves, mask, strict=True) if not m)
        try:
            hash((treedef, static))
        except TypeError:  # an unhashable static argument: run uncached
            return fn(*args, **kwargs)
        token = _VALIDATING.set(True)
        try:
            out = fn(*args, **kwargs)  # the argument checks, on the concrete values
        except _Validated:
            pass
        else:  # no marker reached: the function ran to the end eagerly
            return out
        finally:
            _VALIDATING.reset(token)
        dynamic = [leaf for leaf, m in zip(leaves, mask, strict=True) if m]
        return _compiled(fn, treedef, mask, static, *dynamic)

    wrapper.__wrapped__ = fn
    return wrapper
