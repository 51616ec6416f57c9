"""Image grids as stencils: :class:`GridGraph` and its Laplacian operator.

An H×W grid whose edges join pixels within a window (Chebyshev distance <= radius) is
stored as a stencil: K half offsets (dy, dx) and weights of shape ``(..., K, H, W)``;
weight k at pixel p is the edge (p, p + offset_k), ignored (read as zero) where
p + offset_k falls off the grid. The Laplacian matvec multiplies 2K static slices of one
zero-padded copy of x by the weights of both edge directions (built once per solve by
:meth:`GridGraph.laplacian`), which XLA fuses into one pass: no gather, no scatter, no
pad inside a solver's loop.
"""

from __future__ import annotations

import dataclasses
import numbers

import jax
import jax.numpy as jnp
import numpy as np

from glrjax._validate import check_scalar
from glrjax.graph import _kernels
from glrjax.graph._base import (
    AbstractGraph,
    AbstractLaplacian,
    check_weight_dtype,
    register,
    shape_str,
)

__all__ = ["GridGraph", "GridLaplacian", "window_offsets"]


def window_offsets(radius: int) -> tuple[tuple[int, int], ...]:
    """The K = ((2r+1)² - 1)/2 half offsets (dy, dx) of a Chebyshev window of radius r.

    One of each pair ±(dy, dx): dy > 0, or dy = 0 and dx > 0.

    >>> window_offsets(1)
    ((0, 1), (1, -1), (1, 0), (1, 1))
    """
    if isinstance(radius, bool) or not isinstance(radius, numbers.Integral) or radius < 1:
        raise ValueError(f"radius={radius!r} must be a Python int >= 1, e.g. radius=2.")
    r = int(radius)
    return tuple(
        (dy, dx) for dy in range(r + 1) for dx in range(-r, r + 1) if dy > 0 or (dy == 0 and dx > 0)
    )


def _check_offsets(offsets) -> tuple[tuple[int, int], ...]:
    try:
        offsets = tuple((int(dy), int(dx)) for dy, dx in offsets)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"offsets={offsets!r} must be a sequence of integer pairs (dy, dx), e.g. "
            "window_offsets(2)."
        ) from err
    for dy, dx in offsets:
        if not (dy > 0 or (dy == 0 and dx > 0)):
            raise ValueError(
                f"offset {(dy, dx)} is not a half offset: use dy > 0, or dy = 0 and dx > 0 "
                f"(each edge once; its reverse is implied), e.g. {(-dy, -dx)}."
            )
    if len(set(offsets)) != len(offsets):
        raise ValueError(f"offsets {offsets} contain duplicates; list each offset once.")
    if not offsets:
        raise ValueError("offsets is empty; a grid graph needs at least one offset.")
    return offsets


@dataclasses.dataclass(frozen=True, repr=False, eq=False)
class GridGraph(AbstractGraph):
    """An H×W image graph stored as a stencil of K half offsets.

    Attributes:
        weights: edge weights, shape ``(..., K, H, W)``; ``weights[..., k, i, j]`` joins
            pixel (i, j) and (i + dy_k, j + dx_k). Entries whose neighbour is off the grid
            are ignored. Leading axes: a batch of graphs.
        offsets: static tuple of K half offsets (dy, dx), e.g. ``window_offsets(2)``.
        height, width: static grid size (default: the last two axes of ``weights``;
            give them to have the weights' shape checked against the grid).

    Build one with :meth:`window`, :meth:`gaussian` or :meth:`mahalanobis`, or directly
    as ``GridGraph(weights, offsets)``.

    >>> import jax.numpy as jnp
    >>> g = GridGraph.window(4, 5, radius=1)
    >>> g.weights.shape, g.num_nodes, int(g.num_edges())
    ((4, 4, 5), 20, 55)
    """

    weights: jax.Array
    offsets: tuple[tuple[int, int], ...]
    height: int | None = None
    width: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "offsets", _check_offsets(self.offsets))
        if not hasattr(self.weights, "shape"):
            object.__setattr__(self, "weights", jnp.asarray(self.weights))
        for i, name in ((-2, "height"), (-1, "width")):
            if getattr(self, name) is None:
                if len(self.weights.shape) < 3:
                    raise ValueError(
                        f"GridGraph weights have shape {tuple(self.weights.shape)}; they need "
                        "(..., K, H, W)."
                    )
                object.__setattr__(self, name, int(self.weights.shape[i]))
        for name in ("height", "width"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"GridGraph {name}={v!r} must be a Python int >= 1.")
            object.__setattr__(self, name, int(v))
        w = self.weights
        check_weight_dtype(w)
        expected = (len(self.offsets), self.height, self.width)
        if len(w.shape) < 3 or tuple(w.shape[-3:]) != expected:
            raise ValueError(
                f"GridGraph weights have shape {tuple(w.shape)}; a {self.height}×{self.width} "
                f"grid with {len(self.offsets)} offsets needs (..., K, H, W) = (..., "
                f"{expected[0]}, {expected[1]}, {expected[2]})."
            )

    @property
    def num_nodes(self) -> int:
        """H·W, the number of pixels."""
        return self.height * self.width

    @property
    def node_shape(self) -> tuple[int, int]:
        """Shape of one signal on the graph: (H, W)."""
        return (self.height, self.width)

    @property
    def edge_shape(self) -> tuple[int, int, int]:
        """Core shape of ``weights``: (K, H, W)."""
        return (len(self.offsets), self.height, self.width)

    @property
    def radius(self) -> int:
        """The largest |dy| or |dx| among the offsets (the window radius)."""
        return max(max(abs(dy), abs(dx)) for dy, dx in self.offsets)

    def __repr__(self):
        return (
            f"GridGraph(weights={shape_str(self.weights)}, height={self.height}, "
            f"width={self.width}, radius={self.radius}, K={len(self.offsets)})"
        )

    # ------------------------------------------------------------------ builders

    @classmethod
    def window(cls, height: int, width: int, radius: int = 2, weights=None, *, dtype=None):
        """The window graph of radius ``radius`` (Chebyshev distance) on an H×W grid.

        Args:
            height, width: grid size.
            radius: window radius r; K = ((2r+1)² - 1)/2 offsets (12 for r = 2).
            weights: optional ``(..., K, H, W)`` weights; off-grid entries are set to zero.
                Default: 1 on every edge.
            dtype: dtype of the default weights (float32 unless x64 is on and asked).

        >>> int(GridGraph.window(32, 32, radius=2).num_edges())
        11346
        """
        offsets = window_offsets(radius)
        mask = _kernels.grid_valid_mask(offsets, height, width)
        if weights is None:
            w = jnp.asarray(mask, dtype or jnp.float32)
        else:
            w = jnp.asarray(weights)
            if dtype is not None:
                w = w.astype(dtype)
            check_weight_dtype(w)
            if w.ndim < 3 or tuple(w.shape[-3:]) != mask.shape:
                raise ValueError(
                    f"weights have shape {tuple(w.shape)}; a {height}×{width} grid of radius "
                    f"{radius} needs (..., K, H, W) = (..., {mask.shape[0]}, {height}, {width})."
                )
            w = jnp.where(mask, w, jnp.zeros((), w.dtype))
        return cls(w, offsets, height, width)

    @classmethod
    def gaussian(cls, image, radius: int = 2, sigma=0.1):
        """Window graph with w_ij = exp(-(f_i - f_j)² / (2σ²)) from intensities.

        Args:
            image: intensities, shape ``(..., H, W)`` (leading axes: a batch of graphs).
            radius: window radius.
            sigma: intensity scale σ > 0 (differentiable; σ <= 0 raises a ValueError).

        >>> import jax.numpy as jnp
        >>> g = GridGraph.gaussian(jnp.zeros((6, 6)), radius=1, sigma=0.5)
        >>> float(g.weights.max())
        1.0
        """
        image = jnp.asarray(image)
        check_weight_dtype(image, "image")
        if image.ndim < 2:
            raise ValueError(f"image has shape {image.shape}; it needs (..., H, W).")
        check_scalar(sigma, "sigma", positive=True, example="0.1")
        sigma = jnp.asarray(sigma, image.dtype)
        d2 = _kernels.grid_sq_differences(image[..., None, :, :], window_offsets(radius))
        return cls.window(*image.shape[-2:], radius, jnp.exp(-d2 / (2.0 * sigma**2)))

    @classmethod
    def mahalanobis(cls, features, q, radius: int = 2):
        """Window graph with w_ij = exp(-(f_i - f_j)ᵀ QQᵀ (f_i - f_j)) (seed 001).

        Args:
            features: node features, shape ``(..., C, H, W)``.
            q: the metric factor Q, shape ``(C, M)`` (M <= C gives a low-rank metric).
            radius: window radius.

        Equivalent to Gaussian weights of the projected features Qᵀf, which is how it
        is computed (M channels instead of C).

        >>> import jax.numpy as jnp
        >>> f = jnp.zeros((3, 5, 5)).at[0, :, 3:].set(1.0)
        >>> g = GridGraph.mahalanobis(f, jnp.eye(3), radius=1)
        >>> k = g.offsets.index((0, 1))
        >>> round(float(g.weights[k, 0, 2]), 4), float(g.weights[k, 0, 0])  # across, beside
        (0.3679, 1.0)
        """
        features = jnp.asarray(features)
        check_weight_dtype(features, "features")
        q = jnp.asarray(q)
        check_weight_dtype(q, "q")
        if features.ndim < 3:
            raise ValueError(f"features have shape {features.shape}; they need (..., C, H, W).")
        c = features.shape[-3]
        if q.ndim != 2 or q.shape[0] != c:
            raise ValueError(f"q has shape {q.shape}; features with C={c} channels need (C, M).")
        dtype = jnp.result_type(features, q)
        g = jnp.einsum("...chw,cm->...mhw", features.astype(dtype), q.astype(dtype))
        d2 = _kernels.grid_sq_differences(g, window_offsets(radius))
        return cls.window(*features.shape[-2:], radius, jnp.exp(-d2))

    def to_edges(self):
        """The same graph as an :class:`~glrjax.EdgeGraph` (every on-grid stencil entry an edge).

        Edges are ordered by offset, then row-major by source pixel; zero weights stay
        (they are not counted by :meth:`num_edges`).
        """
        from glrjax.graph.edges import EdgeGraph

        mask = self.valid_mask()
        src, dst = self.edge_index()
        w = self.weights[..., mask]  # boolean mask over (K, H, W): offset-major, row-major
        return EdgeGraph(
            jnp.asarray(src[mask], jnp.int32), jnp.asarray(dst[mask], jnp.int32), w, self.num_nodes
        )

    # ------------------------------------------------------------------ interface

    def with_weights(self, weights) -> GridGraph:
        """The same grid and offsets with new weights ``(..., K, H, W)``."""
        return GridGraph(weights, self.offsets, self.height, self.width)

    def valid_mask(self) -> np.ndarray:
        """(K, H, W) bool: True where pixel p + offset_k is on the grid."""
        return _kernels.grid_valid_mask(self.offsets, self.height, self.width)

    def edge_index(self):
        """(src, dst) of shape (K, H, W): p and p + offset_k as row-major pixel indices."""
        return _kernels.grid_edge_index(self.offsets, self.height, self.width)

    def max_neighbours(self) -> int:
        """The largest number of on-grid neighbours of a pixel (2K on a large grid)."""
        return super().max_neighbours()

    def laplacian(self) -> GridLaplacian:
        """The stencil Laplacian: both edge directions and the degrees, built once."""
        wm, full, deg = _kernels.grid_stencil(self.weights, self.offsets)
        return GridLaplacian(wm, full, deg, self.offsets)

    def edge_difference(self, x) -> jax.Array:
        """x(p) − x(p + o_k), shape ``(..., K, H, W)``, zero where p + o_k is off the grid."""
        return _kernels.grid_edge_difference(self.check_signal(x), self.offsets)

    def degree(self) -> jax.Array:
        """Weighted degrees, shape ``batch + (H, W)`` (without building the stencil)."""
        return _kernels.grid_degree(self.weights, self.offsets)


@dataclasses.dataclass(frozen=True, eq=False)
class GridLaplacian(AbstractLaplacian):
    """The Laplacian of a :class:`GridGraph` as a stencil operator (a pytree).

    Attributes:
        wm: the K stored weights as K arrays ``(..., H, W)``, zero off the grid (the
            differentiable input; ``full`` and ``deg`` are derived from it).
        full: 2K arrays, entry j at pixel p the weight of the edge (p, p + o_j) for the K
            half offsets then their negatives.
        deg: the degrees ``(..., H, W)``.
        offsets: the K half offsets (static).

    Build it with :meth:`GridGraph.laplacian` only: derivative rules assume ``full`` and
    ``deg`` come from ``wm``.
    """

    wm: tuple
    full: tuple
    deg: jax.Array
    offsets: tuple

    def mv(self, x) -> jax.Array:
        """L x by 2K fused slices of one padded copy of x."""
        return _kernels.grid_apply(self.offsets, self.wm, self.full, self.deg, x)

    def diagonal(self) -> jax.Array:
        """The degrees."""
        return self.deg


register(GridGraph, ("weights",), ("offsets", "height", "width"))
register(GridLaplacian, ("wm", "full", "deg"), ("offsets",))
