"""Building blocks of the unrolled graph networks: a shallow CNN, the normalised graph, bilinear.

- :func:`cnn_init` / :func:`cnn_apply`: a few 3×3 convolutions (``lax.conv_general_dilated``)
  with ReLU between them; parameters are a plain tuple of ``{"w", "b"}`` dicts.
- :func:`normalized_graph`: Mahalanobis affinities exp(−‖Qᵀ(f_i − f_j)‖²) on a window graph,
  normalised per node (a softmax over each pixel's neighbours: the attention weights of
  the lightweight transformer), then symmetrised, ½(a_ij + a_ji), so that the Laplacian
  L = D − W is symmetric PSD with L·1 = 0.
- :func:`bilinear_interpolate`: normalised convolution with the 3×3 tent kernel, which is
  bilinear demosaicking on a Bayer mosaic and bilinear 2× upsampling on a sampling grid.
- :func:`num_params`: the number of scalars in a parameter pytree.

>>> import jax, jax.numpy as jnp
>>> from glrjax.networks import cnn_init, cnn_apply, num_params
>>> p = cnn_init(jax.random.key(0), (1, 4, 2))
>>> cnn_apply(p, jnp.ones((1, 8, 8))).shape, num_params(p)
((2, 8, 8), 114)
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from glrjax._validate import check_float_array
from glrjax.graph import GridGraph, window_offsets

__all__ = [
    "bilinear_interpolate",
    "cnn_apply",
    "cnn_init",
    "normalized_graph",
    "num_params",
]


def num_params(params) -> int:
    """Number of scalars in a pytree of arrays (the parameter count of a network).

    >>> num_params({"a": jnp.zeros((2, 3)), "b": [jnp.zeros(4)]})
    10
    """
    return int(sum(np.size(leaf) for leaf in jax.tree_util.tree_leaves(params)))


def cnn_init(key, channels: Sequence[int], dtype=jnp.float32, kernel: int = 3):
    """He-initialised 3×3 convolutions ``channels[0] → channels[1] → … → channels[-1]``.

    Returns a tuple of ``{"w": (out, in, k, k), "b": (out,)}`` dicts (a plain pytree).
    """
    channels = tuple(int(c) for c in channels)
    if len(channels) < 2 or min(channels) < 1:
        raise ValueError(f"channels={channels} needs at least two positive sizes, e.g. (3, 8, 3).")
    keys = jax.random.split(key, len(channels) - 1)
    layers = []
    for k, (cin, cout) in zip(keys, zip(channels[:-1], channels[1:], strict=True), strict=True):
        scale = np.sqrt(2.0 / (cin * kernel * kernel))
        w = scale * jax.random.normal(k, (cout, cin, kernel, kernel), dtype)
        layers.append({"w": w, "b": jnp.zeros((cout,), dtype)})
    return tuple(layers)


def cnn_apply(params, x):
    """Apply the CNN to ``x`` of shape ``(..., C, H, W)`` ("same" zero padding, ReLU between).

    Returns ``(..., C_out, H, W)``.
    """
    x = check_float_array(x, "x")
    if x.ndim < 3 or x.shape[-3] != params[0]["w"].shape[1]:
        raise ValueError(
            f"x has shape {x.shape}; the CNN expects (..., C, H, W) with C = "
            f"{params[0]['w'].shape[1]} input channels."
        )
    lead = x.shape[:-3]
    h = x.reshape((-1,) + x.shape[-3:])
    for i, layer in enumerate(params):
        h = jax.lax.conv_general_dilated(
            h,
            layer["w"].astype(h.dtype),
            (1, 1),
            "SAME",
            dimension_numbers=("NCHW", "OIHW", "NCHW"),
        )
        h = h + layer["b"].astype(h.dtype)[:, None, None]
        if i < len(params) - 1:
            h = jax.nn.relu(h)
    return h.reshape(lead + h.shape[1:])


def _shift(a, dy: int, dx: int, fill, xp=jnp):
    """a(p + (dy, dx)) on the last two axes, ``fill`` off the grid (``xp=np``: static masks)."""
    h, w = a.shape[-2:]
    r = max(abs(dy), abs(dx))
    pad = xp.pad(a, [(0, 0)] * (a.ndim - 2) + [(r, r), (r, r)], constant_values=fill)
    return pad[..., r + dy : r + dy + h, r + dx : r + dx + w]


def normalized_graph(features, q, radius: int = 1) -> GridGraph:
    """The normalised, symmetrised feature graph of one layer of uGLR/uGTV.

    With d_ij = ‖Qᵀ(f_i − f_j)‖² on the window graph and u_ij = exp(−d_ij) (the weights
    of :meth:`GridGraph.mahalanobis`), the row-normalised affinity a_ij = u_ij / Σ_k u_ik
    is a softmax of the negative distances over i's neighbours — self-attention with
    keys = queries = Qᵀf. It is asymmetric (a_ij ≠ a_ji); the graph uses
    w_ij = ½(a_ij + a_ji), symmetric and non-negative, so L = D − W is symmetric PSD and
    L·1 = 0. The softmax runs over the neighbours on the grid only and subtracts each pixel's
    smallest distance first, so distant features (all u_ik underflowing) give finite weights
    and gradients, and every pixel's affinities sum to 1.

    Args:
        features: ``(..., C, H, W)``; q: ``(C, M)``; radius: window radius.

    >>> import jax.numpy as jnp, glrjax
    >>> g = normalized_graph(jnp.zeros((2, 5, 5)), jnp.eye(2), radius=1)
    >>> round(float(glrjax.degree(g)[2, 2]), 6)   # an interior pixel: its 8 affinities sum to 1
    1.0
    """
    features = check_float_array(features, "features")
    q = check_float_array(q, "q")
    if features.ndim < 3 or q.ndim != 2 or q.shape[0] != features.shape[-3]:
        raise ValueError(
            f"features {features.shape} and q {q.shape}: need features (..., C, H, W) and "
            "q (C, M) with the same C."
        )
    dtype = jnp.result_type(features, q)
    g = jnp.einsum("...chw,cm->...mhw", features.astype(dtype), q.astype(dtype))
    h, w = g.shape[-2:]
    offsets = window_offsets(radius)
    fwd, valid = [], []
    for dy, dx in offsets:  # d of the edge p -> p + o_k, stored at p
        ok = np.zeros((h, w), bool)
        ok[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)] = True
        diff = g - _shift(g, dy, dx, 0.0)
        fwd.append(jnp.where(ok, jnp.sum(diff * diff, axis=-3), 0.0))
        valid.append(ok)
    bwd = [_shift(d, -dy, -dx, 0.0) for d, (dy, dx) in zip(fwd, offsets, strict=True)]
    back = [_shift(v, -dy, -dx, False, np) for v, (dy, dx) in zip(valid, offsets, strict=True)]
    dist = jnp.stack(fwd + bwd)  # (2K, ..., H, W): every neighbour of every pixel
    # Off-grid neighbours are left out of the softmax. (A large finite "distance" for them
    # is not enough: learned features can put every real neighbour of a border pixel
    # further away, and the pixel's affinity then went to edges that do not exist.)
    on_grid = np.stack(valid + back)
    on_grid = on_grid.reshape(on_grid.shape[:1] + (1,) * (dist.ndim - 3) + (h, w))
    low = jax.lax.stop_gradient(jnp.min(jnp.where(on_grid, dist, jnp.inf), axis=0))
    low = jnp.where(jnp.isfinite(low), low, 0.0)  # a pixel without neighbours (a 1×1 grid)
    e = jnp.where(on_grid, jnp.exp(-(jnp.where(on_grid, dist, low) - low)), 0.0)
    total = jnp.sum(e, axis=0)
    a = e / jnp.where(total > 0, total, 1.0)  # a[k](p) = a_{p -> p + o_k}; a[K + k]: p - o_k
    n = len(offsets)
    weights = [
        jnp.where(valid[k], 0.5 * (a[k] + _shift(a[n + k], dy, dx, 0.0)), 0.0)
        for k, (dy, dx) in enumerate(offsets)
    ]
    return GridGraph.window(h, w, radius, jnp.stack(weights, axis=-3))


def bilinear_interpolate(y, mask):
    """Bilinear interpolation of the observed pixels by normalised convolution.

    x = (k ∗ (m·y)) / (k ∗ m) with the 3×3 tent kernel k, observed pixels kept exactly.
    On an RGGB Bayer mosaic (per-channel masks) this is bilinear demosaicking, on a
    sampling of every other row and column it is bilinear 2× upsampling. Pixels with no
    observed neighbour in their 3×3 window are 0.

    >>> import jax.numpy as jnp
    >>> y = jnp.arange(5.0)[None] * jnp.ones((3, 1))
    >>> m = jnp.zeros((3, 5), bool).at[:, ::2].set(True)
    >>> bilinear_interpolate(y, m)[1].tolist()
    [0.0, 1.0, 2.0, 3.0, 4.0]
    """
    y = check_float_array(y, "y")
    mask = jnp.asarray(mask)
    if mask.dtype != jnp.bool_:
        raise TypeError(f"mask has dtype {mask.dtype}; it must be boolean (True = observed).")
    m = jnp.broadcast_to(mask, y.shape).astype(y.dtype)
    k = jnp.asarray([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]], y.dtype)

    def conv(a):
        flat = a.reshape((-1, 1) + a.shape[-2:])
        out = jax.lax.conv_general_dilated(flat, k[None, None], (1, 1), "SAME")
        return out.reshape(a.shape)

    num, den = conv(m * y), conv(m)
    x = jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 0.0)
    return jnp.where(mask, y, x)
