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

    >>> import jax, jax.numpy as jnp
    >>> from glrjax import prox
    >>> m = jnp.array([[3.0, 0.0], [4.0, 0.0]])  # columns are groups; the second is zero
    >>> prox.group_l21(m, 2.5).tolist()  # column norms 5 and 0: scale by 1 - 2.5/5, keep 0
    [[1.5, 0.0], [2.0, 0.0]]
    >>> jax.grad(lambda m: prox.group_l21(m, 2.5).sum())(m)[:, 1].tolist()  # finite at 0
    [0.0, 0.0]
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from glrjax._validate import check_float_array, check_nonnegative

__all__ = [
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


def _threshold(x, hyper, t):
    """t·λ in x's dtype (λ may be a scalar or an array broadcastable to x).

    Checks at trace time that x is floating and that known λ and t are >= 0.
    """
    check_float_array(x, "x")
    check_nonnegative(hyper, "lam", "0.1")
    check_nonnegative(t, "t", "1.0")
    return jnp.asarray(t, x.dtype) * jnp.asarray(hyper, x.dtype)


def _known(v) -> bool:
    return not isinstance(v, jax.core.Tracer)


def group_norms(x, axis=0, keepdims=False):
    """Euclidean norms over ``axis`` (one per group) with a finite gradient at zero groups."""
    sq = jnp.sum(x * x, axis=axis, keepdims=keepdims)
    positive = sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def l1(x, lam, t=1.0):
    """Soft threshold sign(x)·max(|x| − tλ, 0): the prox of tλ‖·‖₁.

    ``lam`` is a scalar or an array of per-entry weights broadcastable to ``x``.

    >>> import jax.numpy as jnp
    >>> l1(jnp.array([-2.0, 0.5, 3.0]), 1.0).tolist()
    [-1.0, 0.0, 2.0]
    """
    thr = _threshold(x, lam, t)
    return jnp.sign(x) * jnp.maximum(jnp.abs(x) - thr, 0.0)


def l1_value(x, lam):
    """λ‖x‖₁ (with per-entry weights, Σ λᵢ|xᵢ|)."""
    return jnp.sum(jnp.asarray(lam, x.dtype) * jnp.abs(x))


def group_l21(x, lam, t=1.0, axis=0):
    """Group soft threshold, the prox of tλ Σ_g ‖x_g‖₂, with groups = slices along ``axis``.

    With the default ``axis=0`` and a matrix M, the groups are the columns (seed 003):
    M_ij · max(0, 1 − tλ/‖M_:j‖). ``axis`` is the axis (or tuple of axes) a group
    spans; the other axes index the groups. ``lam`` is a scalar or an array of per-group
    weights with the shape of the group norms (e.g. ``(d,)`` for the columns of an
    ``(h, d)`` matrix; a zero weight leaves that group unpenalized, e.g. a bias column).

    The scale is written 1 − tλ / max(‖x_g‖, tλ) with guarded divisions, so it is exactly
    0 inside the threshold, exactly 1 where tλ = 0 (even at a zero group), and its
    derivatives are finite everywhere.

    >>> import jax.numpy as jnp
    >>> group_l21(jnp.array([[3.0, 0.3], [4.0, 0.4]]), 2.5).tolist()  # norms 5 and 0.5
    [[1.5, 0.0], [2.0, 0.0]]
    """
    norms = group_norms(x, axis=axis, keepdims=True)
    thr = _threshold(x, lam, t)
    if thr.ndim:  # per-group weights: put the reduced axes back for broadcasting
        thr = jnp.expand_dims(thr, axis) if thr.ndim == x.ndim - _naxes(axis, x.ndim) else thr
    den = jnp.maximum(norms, thr)
    positive = den > 0
    scale = jnp.where(positive, 1.0 - thr / jnp.where(positive, den, 1.0), 1.0)
    return x * scale


def _naxes(axis, ndim) -> int:
    if axis is None:
        return ndim
    return len(axis) if isinstance(axis, tuple) else 1


def group_l21_value(x, lam, axis=0):
    """λ Σ_g ‖x_g‖₂ over the groups of :func:`group_l21` (per-group weights allowed)."""
    return jnp.sum(jnp.asarray(lam, x.dtype) * group_norms(x, axis=axis))


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


def l0_value(x, lam):
    """λ‖x‖₀ (with per-entry weights, Σ λᵢ [xᵢ ≠ 0])."""
    return jnp.sum(jnp.asarray(lam, x.dtype) * (x != 0).astype(x.dtype))


def nonneg(x, hyper=None, t=1.0):
    """Projection max(x, 0) onto the nonnegative orthant (``hyper`` and ``t`` are unused).

    >>> import jax.numpy as jnp
    >>> nonneg(jnp.array([-1.0, 2.0])).tolist()
    [0.0, 2.0]
    """
    del hyper, t
    return jnp.maximum(x, 0.0)


def nonneg_value(x, hyper=None):
    """Indicator of x ≥ 0: 0 when feasible, +inf otherwise."""
    del hyper
    return jnp.where(jnp.all(x >= 0), 0.0, jnp.inf).astype(x.dtype)


def nonneg_l1(x, lam, t=1.0):
    """max(x − tλ, 0): the prox of tλ‖·‖₁ + the indicator of x ≥ 0.

    >>> import jax.numpy as jnp
    >>> nonneg_l1(jnp.array([-1.0, 0.5, 3.0]), 1.0).tolist()
    [0.0, 0.0, 2.0]
    """
    return jnp.maximum(x - _threshold(x, lam, t), 0.0)


def nonneg_l1_value(x, lam):
    """λ‖x‖₁ where x ≥ 0, +inf otherwise."""
    return l1_value(x, lam) + nonneg_value(x)


def nonneg_l0(x, lam, t=1.0):
    """Hard threshold of max(x, 0) at √(2tλ): the prox of tλ‖·‖₀ + the indicator of x ≥ 0.

    The operator of graph-weight learning (GEM's M-step): negative weights go to 0, and a
    positive weight survives only if keeping it, cost tλ, beats zeroing it, cost x²/2.

    >>> import jax.numpy as jnp
    >>> nonneg_l0(jnp.array([-3.0, 1.0, 2.0]), 1.0).tolist()
    [0.0, 0.0, 2.0]
    """
    return l0(jnp.maximum(x, 0.0), lam, t)


def nonneg_l0_value(x, lam):
    """λ‖x‖₀ where x ≥ 0, +inf otherwise."""
    return l0_value(x, lam) + nonneg_value(x)


def box(x, bounds, t=1.0):
    """Projection clip(x, lower, upper) onto a box; ``bounds = (lower, upper)``, ``t`` unused.

    ``lower``/``upper`` are scalars or arrays broadcastable to ``x`` (±inf allowed).

    >>> import jax.numpy as jnp
    >>> box(jnp.array([-2.0, 0.5, 3.0]), (0.0, 1.0)).tolist()
    [0.0, 0.5, 1.0]
    """
    del t
    check_float_array(x, "x")
    lower, upper = bounds
    lo, hi = (
        np.asarray(lower) if _known(lower) else None,
        np.asarray(upper) if _known(upper) else None,
    )
    if lo is not None and hi is not None and np.any(lo > hi):
        raise ValueError(f"box bounds={bounds!r} need lower <= upper everywhere; swap them.")
    return jnp.clip(x, jnp.asarray(lower, x.dtype), jnp.asarray(upper, x.dtype))


def box_value(x, bounds):
    """Indicator of lower ≤ x ≤ upper: 0 when feasible, +inf otherwise."""
    lower, upper = bounds
    inside = jnp.all((x >= lower) & (x <= upper))
    return jnp.where(inside, 0.0, jnp.inf).astype(x.dtype)
