"""Proximal operators with one signature, ``prox(x, hyper, t)``, and their penalty values.

Each operator returns prox_{t·g}(x) = argmin_u t·g(u) + ½‖u − x‖² for a penalty g scaled
by the hyperparameter ``hyper`` (λ, or bounds for :func:`box`) and a step ``t`` — the
``prox(x, hyperparams, scaling)`` habit of jaxopt. ``hyper`` is a traced array: changing
it never recompiles, and gradients reach it.

Every operator has finite derivatives everywhere, in particular at a zero group: the
group norm uses the double-``where`` trick, so ``jax.grad`` through :func:`group_l21` at
a zero column gives 0, not NaN (jaxopt's ``prox_group_lasso`` gives NaN there).

The matching penalty values λ·g(x) (``*_value``) are what objectives and stopping rules
need.

**What ``x`` may be.** A JAX or numpy array of a real floating dtype (kept: a float64 numpy
array becomes float32 without a warning when x64 is off, as ``jnp.asarray`` does), a Python
number, a (nested) list or tuple of numbers (an array; Python ints become the default float
dtype), or a pytree (dict, NamedTuple, list of arrays, ...) whose leaves are any of those.
The result is a JAX array, or a pytree of the same structure. The separable penalties
(:func:`l1`, :func:`l0`, :func:`nonneg`, :func:`nonneg_l1`, :func:`nonneg_l0`, :func:`box`)
act leaf by leaf, and their ``*_value`` sums over the leaves. :func:`group_l21` takes its
groups inside each leaf (along ``axis``) unless ``axis=WholeTree()`` asks for the whole
pytree to be one group. ``lam`` (or each box bound) is either one scalar/array used for
every leaf or a pytree with the structure of ``x``. Integer, boolean or complex arrays,
strings and object arrays raise a ``TypeError``; mismatched pytrees a ``ValueError``.

    >>> import jax, jax.numpy as jnp
    >>> from glrjax import prox
    >>> m = jnp.array([[3.0, 0.0], [4.0, 0.0]])  # columns are groups; the second is zero
    >>> prox.group_l21(m, 2.5).tolist()  # column norms 5 and 0: scale by 1 - 2.5/5, keep 0
    [[1.5, 0.0], [2.0, 0.0]]
    >>> jax.grad(lambda m: prox.group_l21(m, 2.5).sum())(m)[:, 1].tolist()  # finite at 0
    [0.0, 0.0]
    >>> params = {"w": jnp.array([-2.0, 0.5]), "b": 3.0}  # a pytree, λ per leaf
    >>> {k: v.tolist() for k, v in prox.l1(params, {"w": 1.0, "b": 0.5}).items()}
    {'b': 2.5, 'w': [-1.0, 0.0]}
"""

from __future__ import annotations

import functools
import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from glrjax._validate import check_nonnegative

__all__ = [
    "WholeTree",
    "box",
    "box_value",
    "group_l21",
    "group_l21_value",
    "group_norms",
    "l0",
    "l0_value",
    "l1",
    "l1_value",
    "nonneg",
    "nonneg_l0",
    "nonneg_l0_value",
    "nonneg_l1",
    "nonneg_l1_value",
    "nonneg_value",
]


class WholeTree(NamedTuple):
    """Grouping strategy for :func:`group_l21`: the whole pytree ``x`` is one group.

    Its norm is √(Σ over every entry of every leaf of x²); all leaves are scaled together
    (e.g. switching a whole layer's parameters off). ``lam`` must then be one scalar. For a
    single array it is the same as ``axis=None``.

    >>> import jax.numpy as jnp
    >>> tree = {"w": jnp.array([3.0]), "b": jnp.array([4.0])}  # norm 5
    >>> {k: v.tolist() for k, v in group_l21(tree, 2.5, axis=WholeTree()).items()}
    {'b': [2.0], 'w': [1.5]}
    """


# ----------------------------------------------------------------------------- input handling
def _is_number(v) -> bool:
    return isinstance(v, numbers.Number) and not isinstance(v, np.generic)


def _is_number_list(v) -> bool:
    """A (nested) plain list/tuple of Python numbers: one array, not a pytree."""
    if type(v) not in (list, tuple):
        return False
    return all(_is_number(e) or _is_number_list(e) for e in v)


def _is_arraylike(v) -> bool:
    """One array: a JAX/numpy array or scalar, a Python number or a list of numbers."""
    return isinstance(v, (jax.Array, np.ndarray, np.generic)) or _is_number(v) or _is_number_list(v)


class _Leaf(NamedTuple):
    name: str  # where the leaf sits, e.g. "x['w']" (for error messages)
    value: object  # the leaf as given


def _split(x, name: str):
    """(leaves, treedef) of ``x``; an array-like (a list of numbers too) is a single leaf."""
    if _is_arraylike(x):
        return [_Leaf(name, x)], jax.tree_util.tree_structure(0)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(x, is_leaf=_is_arraylike)
    return [_Leaf(f"{name}{jax.tree_util.keystr(p)}", v) for p, v in leaves], treedef


def _as_float(leaf: _Leaf) -> jax.Array:
    """A leaf as a real floating JAX array (Python ints promoted), else a TypeError."""
    v, name = leaf.value, leaf.name
    if isinstance(v, np.ndarray) and v.dtype == object:
        raise TypeError(f"{name} is an object array; pass numbers, e.g. {name}.astype(float).")
    if not _is_arraylike(v):
        raise TypeError(
            f"{name} is a {type(v).__name__}; glrjax.prox takes real floating arrays, Python "
            f"numbers, lists of numbers, or pytrees (dicts, tuples, ...) of those."
        )
    python = _is_number(v) or _is_number_list(v)
    if python:
        try:
            kind = np.asarray(v).dtype.kind
        except ValueError as err:  # a ragged list
            raise TypeError(f"{name} is a ragged list ({err}); pass a rectangular one.") from None
        if kind == "c":
            raise TypeError(f"{name} is complex; glrjax.prox needs real numbers.")
    arr = jnp.asarray(v)
    if python and not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(jnp.result_type(float))  # 3 or [1, 2] mean floats, as in jnp.sin(3)
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        raise TypeError(
            f"{name} has dtype {arr.dtype}; glrjax.prox needs real floating arrays. "
            f"Cast it, e.g. {name}.astype(jnp.float32)."
        )
    return arr


def _hyper_leaves(hyper, leaves, treedef, name: str) -> list:
    """``hyper`` once per leaf of x: shared if it is one array, leaf-wise if a container.

    For a single-array ``x`` any array-like (a list of numbers too) is shared. For a pytree
    ``x``, arrays and numbers are shared by every leaf while a container (list, tuple, dict,
    ...) is read as a pytree with the structure of ``x``: one sub-value per leaf of ``x``.
    """
    shared = hyper is None or (
        _is_arraylike(hyper)
        and (jax.tree_util.treedef_is_leaf(treedef) or type(hyper) not in (list, tuple))
    )
    if shared:
        return [_check_real(hyper, name)] * len(leaves)
    try:
        per_leaf = treedef.flatten_up_to(hyper)
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"{name} does not match the pytree structure of x ({err}); pass one scalar or "
            f"array shared by every leaf (e.g. {name}=0.1, or {name}=jnp.asarray([...])) or "
            f"a pytree shaped like x, whose structure is {treedef}."
        ) from None
    return [
        _check_real(h, name + leaf.name[1:]) for h, leaf in zip(per_leaf, leaves, strict=True)
    ]  # leaf.name is "x[...]": reuse its path


def _check_real(v, name: str):
    """A hyperparameter must be a real number/array (or None); returned unchanged."""
    if v is None:
        return v
    if not _is_arraylike(v) or (isinstance(v, np.ndarray) and v.dtype == object):
        raise TypeError(
            f"{name} is a {type(v).__name__}; pass a real number or array, e.g. {name}=0.1."
        )
    dtype = v.dtype if isinstance(v, jax.Array) else np.asarray(v).dtype
    if not any(jnp.issubdtype(dtype, k) for k in (jnp.floating, jnp.integer, jnp.bool_)):
        raise TypeError(f"{name} has dtype {dtype}; pass a real number or array, e.g. 0.1.")
    return v


def _check_t(t):
    if not _is_arraylike(t):
        raise TypeError(f"t is a {type(t).__name__}; pass one step size, e.g. t=1.0.")
    check_nonnegative(_check_real(t, "t"), "t", "1.0")
    return t


_MISSING = object()  # the hyperparameter was not passed


def _hyper_or_default(hyper, leaf_fn, name):
    if name is None:  # nonneg: the hyperparameter is unused
        return None
    if hyper is _MISSING or hyper is None:
        raise TypeError(f"{leaf_fn.__name__}() needs {name}, e.g. {leaf_fn.__name__}(x, 0.1).")
    return hyper


def _separable(leaf_fn, hyper_name: str | None = "lam"):
    """Lift ``leaf_fn(x_leaf, hyper_leaf, t)`` to array-likes and pytrees, leaf by leaf."""

    @functools.wraps(leaf_fn)
    def prox_fn(x, hyper=_MISSING, t=1.0):
        hyper = _hyper_or_default(hyper, leaf_fn, hyper_name)
        leaves, treedef = _split(x, "x")
        hypers = _hyper_leaves(hyper, leaves, treedef, hyper_name or "hyper")
        t = _check_t(t)
        out = [leaf_fn(_as_float(v), h, t) for v, h in zip(leaves, hypers, strict=True)]
        return jax.tree_util.tree_unflatten(treedef, out)

    return prox_fn


def _separable_value(leaf_fn, hyper_name: str | None = "lam"):
    """Lift ``leaf_fn(x_leaf, hyper_leaf)`` (a scalar) to pytrees: the sum over leaves."""

    @functools.wraps(leaf_fn)
    def value_fn(x, hyper=_MISSING):
        hyper = _hyper_or_default(hyper, leaf_fn, hyper_name)
        leaves, treedef = _split(x, "x")
        hypers = _hyper_leaves(hyper, leaves, treedef, hyper_name or "hyper")
        values = [leaf_fn(_as_float(v), h) for v, h in zip(leaves, hypers, strict=True)]
        return functools.reduce(jnp.add, values) if values else jnp.zeros(())

    return value_fn


def _threshold(x, hyper, t):
    """t·λ in x's dtype (λ may be a scalar or an array broadcastable to x); λ, t ≥ 0."""
    check_nonnegative(hyper, "lam", "0.1")
    return jnp.asarray(t, x.dtype) * jnp.asarray(hyper, x.dtype)


def _known(v) -> bool:
    return not isinstance(v, jax.core.Tracer)


# ----------------------------------------------------------------------------- group norms
def _group_norms(x, axis=0, keepdims=False):
    sq = jnp.sum(x * x, axis=axis, keepdims=keepdims)
    positive = sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def _tree_norm(leaves) -> jax.Array:
    """√(Σ x²) over every leaf, in the leaves' common dtype, finite gradient at 0."""
    if not leaves:
        return jnp.zeros(())
    sq = functools.reduce(jnp.add, [jnp.sum(v * v) for v in leaves])
    positive = sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def _check_axis(axis):
    if isinstance(axis, type) and issubclass(axis, WholeTree):
        raise TypeError("axis=WholeTree is the class; pass an instance, axis=WholeTree().")
    ok = axis is None or isinstance(axis, (int, WholeTree))
    ok = ok or (isinstance(axis, tuple) and all(isinstance(a, int) for a in axis))
    if not ok or isinstance(axis, bool):
        raise TypeError(
            f"axis={axis!r} must be an int, a tuple of ints, None (each leaf is one group) or "
            f"glrjax.prox.WholeTree() (the whole pytree is one group)."
        )


def group_norms(x, axis=0, keepdims=False):
    """Euclidean norms over ``axis`` (one per group) with a finite gradient at zero groups.

    A pytree ``x`` gives a pytree of per-leaf norms; ``axis=WholeTree()`` one scalar.

    >>> group_norms([[3.0, 0.0], [4.0, 0.0]]).tolist()
    [5.0, 0.0]
    """
    _check_axis(axis)
    leaves, treedef = _split(x, "x")
    arrays = [_as_float(v) for v in leaves]
    if isinstance(axis, WholeTree):
        return _tree_norm(arrays)
    out = [
        _group_norms(v, axis=_leaf_axis(axis, v, leaf.name), keepdims=keepdims)
        for v, leaf in zip(arrays, leaves, strict=True)
    ]
    return jax.tree_util.tree_unflatten(treedef, out)


def _leaf_axis(axis, x, name: str):
    """``axis`` for one leaf: a 0-d leaf is one group; an axis beyond ``x.ndim`` an error."""
    if x.ndim == 0 or axis is None:
        return None
    for a in axis if isinstance(axis, tuple) else (axis,):
        if not -x.ndim <= a < x.ndim:
            raise ValueError(
                f"axis={axis!r} is out of range for {name} of shape {x.shape}; pick group axes "
                f"below {x.ndim}, axis=None (the leaf is one group) or axis=WholeTree()."
            )
    return axis


def _naxes(axis, ndim) -> int:
    if axis is None:
        return ndim
    return len(axis) if isinstance(axis, tuple) else 1


def _group_scale(norms, thr):
    """1 − thr / max(norm, thr), exactly 0 inside the threshold, 1 where thr = 0."""
    den = jnp.maximum(norms, thr)
    positive = den > 0
    return jnp.where(positive, 1.0 - thr / jnp.where(positive, den, 1.0), 1.0)


def _group_l21_leaf(leaf: _Leaf, lam, t, axis):
    x = _as_float(leaf)
    axis = _leaf_axis(axis, x, leaf.name)
    norms = _group_norms(x, axis=axis, keepdims=True)
    thr = _threshold(x, lam, t)
    if thr.ndim:  # per-group weights: put the reduced axes back for broadcasting
        thr = jnp.expand_dims(thr, axis) if thr.ndim == x.ndim - _naxes(axis, x.ndim) else thr
    return x * _group_scale(norms, thr)


def group_l21(x, lam, t=1.0, axis=0):
    """Group soft threshold, the prox of tλ Σ_g ‖x_g‖₂, with groups = slices along ``axis``.

    With the default ``axis=0`` and a matrix M, the groups are the columns (seed 003):
    M_ij · max(0, 1 − tλ/‖M_:j‖). ``axis`` is the axis (or tuple of axes) a group
    spans; the other axes index the groups; ``axis=None`` makes the whole array one group
    (so does a 0-d array, whatever ``axis``).
    ``lam`` is a scalar or an array of per-group weights with the shape of the group norms
    (e.g. ``(d,)`` for the columns of an ``(h, d)`` matrix; a zero weight leaves that group
    unpenalized, e.g. a bias column).

    A pytree ``x`` is handled leaf by leaf with the same ``axis`` in every leaf (``lam`` one
    value or a pytree like ``x``); ``axis=WholeTree()`` instead makes the whole pytree one
    group, with one scalar ``lam``.

    The scale is written 1 − tλ / max(‖x_g‖, tλ) with guarded divisions, so it is exactly
    0 inside the threshold, exactly 1 where tλ = 0 (even at a zero group), and its
    derivatives are finite everywhere.

    >>> import jax.numpy as jnp
    >>> group_l21(jnp.array([[3.0, 0.3], [4.0, 0.4]]), 2.5).tolist()  # norms 5 and 0.5
    [[1.5, 0.0], [2.0, 0.0]]
    """
    _check_axis(axis)
    leaves, treedef = _split(x, "x")
    t = _check_t(t)
    if isinstance(axis, WholeTree):
        lam = _whole_tree_lam(lam)
        arrays = [_as_float(v) for v in leaves]
        if not arrays:
            return x
        norm = _tree_norm(arrays)
        thr = _threshold(norm, lam, t)
        scale = _group_scale(norm, thr)
        out = [v * scale.astype(v.dtype) for v in arrays]
        return jax.tree_util.tree_unflatten(treedef, out)
    hypers = _hyper_leaves(lam, leaves, treedef, "lam")
    out = [_group_l21_leaf(v, h, t, axis) for v, h in zip(leaves, hypers, strict=True)]
    return jax.tree_util.tree_unflatten(treedef, out)


def _whole_tree_lam(lam):
    if not _is_arraylike(lam) or np.ndim(lam) != 0:
        raise ValueError(
            f"lam={lam!r}: with axis=WholeTree() the whole pytree is one group, so lam must "
            f"be one scalar, e.g. lam=0.1."
        )
    return _check_real(lam, "lam")


def group_l21_value(x, lam, axis=0):
    """λ Σ_g ‖x_g‖₂ over the groups of :func:`group_l21` (per-group weights allowed).

    >>> group_l21_value([[3.0, 1.0], [4.0, 0.0]], 2.0).tolist()  # 2 · (5 + 1)
    12.0
    """
    _check_axis(axis)
    leaves, treedef = _split(x, "x")
    if isinstance(axis, WholeTree):
        arrays = [_as_float(v) for v in leaves]
        norm = _tree_norm(arrays)
        return jnp.asarray(_whole_tree_lam(lam), norm.dtype) * norm
    hypers = _hyper_leaves(lam, leaves, treedef, "lam")
    values = []
    for leaf, h in zip(leaves, hypers, strict=True):
        v = _as_float(leaf)
        norms = _group_norms(v, axis=_leaf_axis(axis, v, leaf.name))
        values.append(jnp.sum(jnp.asarray(h, v.dtype) * norms))
    return functools.reduce(jnp.add, values) if values else jnp.zeros(())


# ----------------------------------------------------------------------------- separable
@_separable
def l1(x, lam, t=1.0):
    """Soft threshold sign(x)·max(|x| − tλ, 0): the prox of tλ‖·‖₁.

    ``lam`` is a scalar or an array of per-entry weights broadcastable to ``x``.

    >>> import jax.numpy as jnp
    >>> l1(jnp.array([-2.0, 0.5, 3.0]), 1.0).tolist()
    [-1.0, 0.0, 2.0]
    >>> l1(-1.0, 0.5).tolist()  # Python numbers and lists work too
    -0.5
    """
    thr = _threshold(x, lam, t)
    return jnp.sign(x) * jnp.maximum(jnp.abs(x) - thr, 0.0)


@_separable_value
def l1_value(x, lam):
    """λ‖x‖₁ (with per-entry weights, Σ λᵢ|xᵢ|); summed over the leaves of a pytree."""
    return jnp.sum(jnp.asarray(lam, x.dtype) * jnp.abs(x))


@_separable
def l0(x, lam, t=1.0):
    """Hard threshold x·[|x| > √(2tλ)]: the prox of tλ‖·‖₀ (nonconvex).

    At |x| = √(2tλ) both 0 and x are minimizers; 0 is returned. The test is x² > 2tλ, so
    no square root (and no infinite derivative at λ = 0) appears.

    >>> import jax.numpy as jnp
    >>> l0(jnp.array([-2.0, 0.5, 1.5]), 1.0).tolist()  # threshold √2
    [-2.0, 0.0, 1.5]
    """
    thr = _threshold(x, lam, t)
    return jnp.where(x * x > 2.0 * thr, x, 0.0)


@_separable_value
def l0_value(x, lam):
    """λ‖x‖₀ (with per-entry weights, Σ λᵢ [xᵢ ≠ 0]); summed over the leaves of a pytree."""
    return jnp.sum(jnp.asarray(lam, x.dtype) * (x != 0).astype(x.dtype))


@functools.partial(_separable, hyper_name=None)
def nonneg(x, hyper=None, t=1.0):
    """Projection max(x, 0) onto the nonnegative orthant (``hyper`` and ``t`` are unused).

    >>> import jax.numpy as jnp
    >>> nonneg(jnp.array([-1.0, 2.0])).tolist()
    [0.0, 2.0]
    """
    del hyper, t
    return jnp.maximum(x, 0.0)


def _nonneg_indicator(x):
    return jnp.where(jnp.all(x >= 0), 0.0, jnp.inf).astype(x.dtype)


@functools.partial(_separable_value, hyper_name=None)
def nonneg_value(x, hyper=None):
    """Indicator of x ≥ 0: 0 when feasible (every leaf of a pytree), +inf otherwise."""
    del hyper
    return _nonneg_indicator(x)


@_separable
def nonneg_l1(x, lam, t=1.0):
    """max(x − tλ, 0): the prox of tλ‖·‖₁ + the indicator of x ≥ 0.

    >>> import jax.numpy as jnp
    >>> nonneg_l1(jnp.array([-1.0, 0.5, 3.0]), 1.0).tolist()
    [0.0, 0.0, 2.0]
    """
    return jnp.maximum(x - _threshold(x, lam, t), 0.0)


@_separable_value
def nonneg_l1_value(x, lam):
    """λ‖x‖₁ where x ≥ 0, +inf otherwise; summed over the leaves of a pytree."""
    return jnp.sum(jnp.asarray(lam, x.dtype) * jnp.abs(x)) + _nonneg_indicator(x)


@_separable
def nonneg_l0(x, lam, t=1.0):
    """Hard threshold of max(x, 0) at √(2tλ): the prox of tλ‖·‖₀ + the indicator of x ≥ 0.

    The operator of graph-weight learning (GEM's M-step): negative weights go to 0, and a
    positive weight survives only if keeping it, cost tλ, beats zeroing it, cost x²/2.

    >>> import jax.numpy as jnp
    >>> nonneg_l0(jnp.array([-3.0, 1.0, 2.0]), 1.0).tolist()
    [0.0, 0.0, 2.0]
    """
    x = jnp.maximum(x, 0.0)
    return jnp.where(x * x > 2.0 * _threshold(x, lam, t), x, 0.0)


@_separable_value
def nonneg_l0_value(x, lam):
    """λ‖x‖₀ where x ≥ 0, +inf otherwise; summed over the leaves of a pytree."""
    return jnp.sum(jnp.asarray(lam, x.dtype) * (x != 0).astype(x.dtype)) + _nonneg_indicator(x)


# ----------------------------------------------------------------------------- box
def _bounds(bounds, leaves, treedef):
    """Per-leaf (lower, upper) pairs; each bound is one array-like or a pytree like x."""
    if type(bounds) not in (list, tuple) or len(bounds) != 2:
        raise TypeError(
            f"bounds={bounds!r} must be a pair (lower, upper), e.g. bounds=(0.0, 1.0); each "
            f"bound is a scalar, an array or a pytree shaped like x."
        )
    lower = _hyper_leaves(bounds[0], leaves, treedef, "bounds[0]")
    upper = _hyper_leaves(bounds[1], leaves, treedef, "bounds[1]")
    for lo, hi in zip(lower, upper, strict=True):
        lo_c = np.asarray(lo) if _known(lo) and lo is not None else None
        hi_c = np.asarray(hi) if _known(hi) and hi is not None else None
        if lo_c is not None and hi_c is not None and np.any(lo_c > hi_c):
            raise ValueError(f"box bounds={bounds!r} need lower <= upper everywhere; swap them.")
    return list(zip(lower, upper, strict=True))


def box(x, bounds, t=1.0):
    """Projection clip(x, lower, upper) onto a box; ``bounds = (lower, upper)``, ``t`` unused.

    ``lower``/``upper`` are scalars or arrays broadcastable to ``x`` (±inf allowed), or
    pytrees shaped like a pytree ``x``.

    >>> import jax.numpy as jnp
    >>> box(jnp.array([-2.0, 0.5, 3.0]), (0.0, 1.0)).tolist()
    [0.0, 0.5, 1.0]
    >>> box(-1.0, (0.0, 2.0)).tolist()
    0.0
    """
    leaves, treedef = _split(x, "x")
    pairs = _bounds(bounds, leaves, treedef)
    _check_t(t)
    out = []
    for v, (lo, hi) in zip(leaves, pairs, strict=True):
        v = _as_float(v)
        lo = -jnp.inf if lo is None else lo
        hi = jnp.inf if hi is None else hi
        out.append(jnp.clip(v, jnp.asarray(lo, v.dtype), jnp.asarray(hi, v.dtype)))
    return jax.tree_util.tree_unflatten(treedef, out)


def box_value(x, bounds):
    """Indicator of lower ≤ x ≤ upper: 0 when feasible (every leaf), +inf otherwise."""
    leaves, treedef = _split(x, "x")
    pairs = _bounds(bounds, leaves, treedef)
    values = []
    for v, (lo, hi) in zip(leaves, pairs, strict=True):
        v = _as_float(v)
        lo = -jnp.inf if lo is None else lo
        hi = jnp.inf if hi is None else hi
        inside = jnp.all((v >= jnp.asarray(lo, v.dtype)) & (v <= jnp.asarray(hi, v.dtype)))
        values.append(jnp.where(inside, 0.0, jnp.inf).astype(v.dtype))
    return functools.reduce(jnp.add, values) if values else jnp.zeros(())
