"""The Laplacian kernels of grids (static slices) and edge lists (gather/segment sum)."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

from glrjax.graph._base import segment_sum_last
from glrjax.graph._linear import linear_call, unbroadcast_to

# ----------------------------------------------------------------------------- grid


def _span(d: int, n: int) -> tuple[slice, slice]:
    """Source and target index ranges along one axis of length n for a shift d."""
    if abs(d) >= n:  # no pair fits on this axis
        return slice(0, 0), slice(0, 0)
    return slice(max(0, -d), n - max(0, d)), slice(max(0, d), n - max(0, -d))


def regions(offset, height: int, width: int):
    """Static slices (rows, cols) of the sources p and the targets p + offset on the grid."""
    rows, cols = (_span(d, n) for d, n in zip(offset, (height, width), strict=True))
    return (rows[0], cols[0]), (rows[1], cols[1])


def place(f, region, height: int, width: int):
    """Zero-pad ``f`` (..., h, w) back onto the grid at ``region`` (a static ``lax.pad``)."""
    rows, cols = region
    pads = [(0, 0)] * (f.ndim - 2) + [
        (rows.start, height - rows.stop),
        (cols.start, width - cols.stop),
    ]
    return jnp.pad(f, pads)


@functools.lru_cache(maxsize=256)
def _grid_valid_mask(offsets, height: int, width: int) -> np.ndarray:
    mask = np.zeros((len(offsets), height, width), bool)
    for k, off in enumerate(offsets):
        s, _ = regions(off, height, width)
        mask[k][s] = True
    mask.setflags(write=False)
    return mask


def grid_valid_mask(offsets, height: int, width: int) -> np.ndarray:
    """(K, H, W) bool: True where pixel p + offset_k is on the grid."""
    return _grid_valid_mask(tuple(offsets), height, width).copy()


def grid_edge_index(offsets, height: int, width: int):
    """(src, dst), each (K, H, W) int: p and p + offset_k (row-major); 0 off the grid."""
    idx = np.arange(height * width).reshape(height, width)
    src = np.zeros((len(offsets), height, width), np.int64)
    dst = np.zeros_like(src)
    for k, off in enumerate(offsets):
        s, d = regions(off, height, width)
        src[k][s] = idx[s]
        dst[k][s] = idx[d]
    return src, dst


def grid_sq_differences(f, offsets):
    """Σ_c (f_p - f_{p+o_k})² over the channel axis -3 of ``f`` (..., C, H, W) → (..., K, H, W).

    Zero where the neighbour is off the grid.
    """
    height, width = f.shape[-2:]
    out = []
    for off in offsets:
        s, d = regions(off, height, width)
        diff = f[..., s[0], s[1]] - f[..., d[0], d[1]]
        out.append(place(jnp.sum(diff * diff, axis=-3), s, height, width))
    return jnp.stack(out, axis=-3)


def full_offsets(offsets):
    """The K half offsets followed by their K negatives."""
    return tuple(offsets) + tuple((-dy, -dx) for dy, dx in offsets)


def shifted(x, offsets):
    """x(p + o) for every offset o, zero off the grid: static slices of one padded copy."""
    h, w = x.shape[-2:]
    r = max(max(abs(dy), abs(dx)) for dy, dx in offsets)
    xp = jnp.pad(x, [(0, 0)] * (x.ndim - 2) + [(r, r), (r, r)])
    return [xp[..., r + dy : r + dy + h, r + dx : r + dx + w] for dy, dx in offsets]


def grid_edge_difference(x, offsets):
    """x(p) − x(p + o_k) stacked on axis -3, zero where p + o_k is off the grid."""
    mask = grid_valid_mask(offsets, *x.shape[-2:])
    d = jnp.stack([x - xs for xs in shifted(x, offsets)], axis=-3)
    return jnp.where(mask, d, jnp.zeros((), d.dtype))


def grid_degree(weights, offsets):
    """Weighted degrees of a stencil, shape ``batch + (H, W)``."""
    h, w = weights.shape[-2:]
    out = None
    for k, off in enumerate(offsets):
        s, d = regions(off, h, w)
        wk = weights[..., k, s[0], s[1]]
        term = place(wk, s, h, w) + place(wk, d, h, w)
        out = term if out is None else out + term
    return out


def grid_stencil(weights, offsets):
    """The operator data of a grid Laplacian: ``(wm, full, deg)``, built once per solve.

    ``wm``: the K stored weights as K arrays (..., H, W), zero off the grid (the
    differentiable input). ``full``: 2K arrays, entry j at pixel p the weight of the edge
    (p, p + o_j) for the K half offsets then their negatives, so the matvec reads only
    shifted copies of x. ``deg``: the degrees. Separate arrays rather than one stacked
    array let XLA fuse each weight's update (2× faster unrolled backward on CPU).
    """
    h, w = weights.shape[-2:]
    mask = grid_valid_mask(offsets, h, w)
    zero = jnp.zeros((), weights.dtype)
    wm, back = [], []
    for k, off in enumerate(offsets):
        wk = jnp.where(mask[k], weights[..., k, :, :], zero)
        s, d = regions(off, h, w)
        wm.append(wk)
        back.append(place(wk[..., s[0], s[1]], d, h, w))
    full = tuple(wm + back)
    return tuple(wm), full, sum(full[1:], full[0])


def _grid_apply_plain(offsets, full, deg, x):
    # (Lx)_p = d_p x_p - Σ_j w_j(p) x(p + o_j) over both directions of every offset.
    out = deg * x
    for wj, xs in zip(full, shifted(x, full_offsets(offsets)), strict=True):
        out = out - wj * xs
    return out


@dataclasses.dataclass(frozen=True)
class _GridSymmetric:
    """x ↦ L x with the stencil ``res = (*full, deg)``; L is symmetric: its own transpose."""

    offsets: tuple

    def apply(self, res, lin):
        return _grid_apply_plain(self.offsets, res[:-1], res[-1], lin[0])

    def transpose(self, res, ct, lin_avals):
        return (unbroadcast_to(linear_call(self, res, (ct,)), lin_avals[0]),)


@dataclasses.dataclass(frozen=True)
class _GridWeights:
    """ẇ ↦ L(ẇ) x for the K half-offset weights ẇ and a fixed signal ``res = (x,)``.

    Its transpose is the weight cotangent w̄_k(p) = (x_p − x_{p+o_k})(ḡ_p − ḡ_{p+o_k})
    (zero off the grid), computed from x alone: an unrolled solver stores N values per
    matvec, not K·N differences.
    """

    offsets: tuple

    def apply(self, res, lin):
        (x,) = res
        h, w = x.shape[-2:]
        mask = grid_valid_mask(self.offsets, h, w)
        fs = [
            jnp.where(mask[k], wk * (x - xs), jnp.zeros((), wk.dtype))
            for k, (wk, xs) in enumerate(zip(lin, shifted(x, self.offsets), strict=True))
        ]
        back = [shifted(f, ((-dy, -dx),))[0] for f, (dy, dx) in zip(fs, self.offsets, strict=True)]
        return sum(fs[1:], fs[0]) - sum(back[1:], back[0])

    def transpose(self, res, ct, lin_avals):
        (x,) = res
        mask = grid_valid_mask(self.offsets, *x.shape[-2:])
        pairs = zip(shifted(x, self.offsets), shifted(ct, self.offsets), strict=True)
        return tuple(
            unbroadcast_to(jnp.where(mask[k], (x - xs) * (ct - cs), 0), aval)
            for k, ((xs, cs), aval) in enumerate(zip(pairs, lin_avals, strict=True))
        )


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def grid_apply(offsets, wm, full, deg, x):
    """L x for ``(wm, full, deg) = grid_stencil(weights, offsets)``.

    Derivatives: the tangent is L(w)ẋ + L(ẇ)x, two linear primitives with their own
    transposes (forward and reverse mode, any order): x̄ = L ḡ by the same fused slices
    (JAX's transpose of slices would be pads, several times slower on CPU) and the weight
    cotangent goes to ``wm`` (K values per pixel), none to ``full``/``deg``, which must be
    derived from ``wm``; the only residual of a matvec is x.
    """
    return linear_call(_GridSymmetric(offsets), (*full, deg), (x,))


def _grid_apply_jvp(offsets, primals, tangents):
    wm, full, deg, x = primals
    wm_dot, _, _, x_dot = tangents  # full/deg are functions of wm: their tangents are implied
    out = linear_call(_GridSymmetric(offsets), (*full, deg), (x,))
    terms = []
    if not _zero(x_dot):
        terms.append(linear_call(_GridSymmetric(offsets), (*full, deg), (x_dot,)))
    if not all(_zero(t) for t in wm_dot):
        wm_dot = tuple(_instantiate(t) for t in wm_dot)
        terms.append(linear_call(_GridWeights(offsets), (x,), wm_dot))
    return out, _total(terms, out)


grid_apply.defjvp(_grid_apply_jvp, symbolic_zeros=True)


# ----------------------------------------------------------------------------- edges


def _edge_apply_plain(n, w, x, src, dst):
    f = w * (x[..., src] - x[..., dst])
    return segment_sum_last(f, src, n) - segment_sum_last(f, dst, n)


@dataclasses.dataclass(frozen=True)
class _EdgeSymmetric:
    """x ↦ L x with ``res = (w, src, dst)``; L is symmetric: its own transpose."""

    num_nodes: int

    def apply(self, res, lin):
        w, src, dst = res
        return _edge_apply_plain(self.num_nodes, w, lin[0], src, dst)

    def transpose(self, res, ct, lin_avals):
        return (unbroadcast_to(linear_call(self, res, (ct,)), lin_avals[0]),)


@dataclasses.dataclass(frozen=True)
class _EdgeWeights:
    """ẇ ↦ L(ẇ) x for a fixed signal ``res = (x, src, dst)``; transpose (x_s − x_d)(ḡ_s − ḡ_d)."""

    num_nodes: int

    def apply(self, res, lin):
        x, src, dst = res
        f = lin[0] * (x[..., src] - x[..., dst])
        return segment_sum_last(f, src, self.num_nodes) - segment_sum_last(f, dst, self.num_nodes)

    def transpose(self, res, ct, lin_avals):
        x, src, dst = res
        w_bar = (x[..., src] - x[..., dst]) * (ct[..., src] - ct[..., dst])
        return (unbroadcast_to(w_bar, lin_avals[0]),)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def edge_apply(n, w, x, src, dst):
    """L x on an edge list. Derivatives: tangent L(w)ẋ + L(ẇ)x by two linear primitives
    whose transposes are x̄ = L ḡ by the same gather/segment-sum (JAX's own would be slower
    scatters) and w̄_e = (x_s − x_d)(ḡ_s − ḡ_d); the only residual is x."""
    return linear_call(_EdgeSymmetric(n), (w, src, dst), (x,))


def _edge_apply_jvp(n, primals, tangents):
    w, x, src, dst = primals
    w_dot, x_dot, _, _ = tangents
    out = linear_call(_EdgeSymmetric(n), (w, src, dst), (x,))
    terms = []
    if not _zero(x_dot):
        terms.append(linear_call(_EdgeSymmetric(n), (w, src, dst), (x_dot,)))
    if not _zero(w_dot):
        terms.append(linear_call(_EdgeWeights(n), (x, src, dst), (w_dot,)))
    return out, _total(terms, out)


edge_apply.defjvp(_edge_apply_jvp, symbolic_zeros=True)


def _zero(t) -> bool:
    return isinstance(t, SymbolicZero)


def _instantiate(t):
    return jnp.zeros(t.shape, t.dtype) if isinstance(t, SymbolicZero) else t


def _total(terms, out):
    """The sum of the tangent terms (a zero tangent shaped like ``out`` if none)."""
    if not terms:
        return jnp.zeros_like(out)
    total = sum(terms[1:], terms[0])
    return jnp.broadcast_to(total, out.shape).astype(out.dtype)
