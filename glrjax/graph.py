"""Graphs as pytrees: image grids as stencils, any graph as an edge list; L = D - W.

- :class:`GridGraph`: an H×W grid whose edges join pixels within a window (Chebyshev
  distance <= radius). It is stored as a stencil: K half offsets (dy, dx) and weights of
  shape ``(..., K, H, W)``; weight k at pixel p is the edge (p, p + offset_k), and it is
  ignored (read as zero) where p + offset_k falls off the grid. The Laplacian matvec
  multiplies 2K static slices of one zero-padded copy of x by the weights of both edge
  directions (built once per solve), which XLA fuses into one pass: no gather, no
  scatter, no pad inside a solver's loop.
- :class:`EdgeGraph`: ``src``, ``dst`` (int arrays of shape (E,)), weights ``(..., E)``
  and a static ``num_nodes``; its matvec is a gather and two ``segment_sum``.

Both matvecs have a custom VJP: L is symmetric, so the backward pass applies the same
fast kernel to the cotangent and recomputes the weight cotangent from x (reverse mode
only; ``jax.jvp`` is not available).

Weights are the pytree leaves (differentiable); offsets, grid size and node count are
static. Leading axes of ``weights`` are a batch: one graph per image, with signals
``x`` of shape ``(..., H, W)`` (grid) or ``(..., N)`` (edge list) broadcast against them.

Weights from node features: :meth:`GridGraph.gaussian` (intensity differences,
w = exp(-(f_i - f_j)² / 2σ²)) and :meth:`GridGraph.mahalanobis` /
:meth:`EdgeGraph.mahalanobis`, w = exp(-(f_i - f_j)ᵀ QQᵀ (f_i - f_j)), the learned
metric of the unrolled GLR transformer (Do et al., seed 001), differentiable in the
features and in Q.

>>> import jax.numpy as jnp, glrjax
>>> g = glrjax.GridGraph.window(32, 32, radius=2)
>>> len(g.offsets), int(glrjax.num_edges(g))
(12, 11346)
>>> x = jnp.ones((32, 32))
>>> float(jnp.abs(glrjax.laplacian_matvec(g, x)).max())  # L·1 = 0
0.0
"""

from __future__ import annotations

import dataclasses
import functools
import numbers

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "EdgeGraph",
    "GridGraph",
    "degree",
    "edge_difference",
    "laplacian_matvec",
    "num_edges",
    "to_dense",
    "window_offsets",
]


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


def _regions(offset, height: int, width: int):
    """Static slices (rows, cols) of the sources p and the targets p + offset on the grid."""
    rows, cols = (_span(d, n) for d, n in zip(offset, (height, width), strict=True))
    return (rows[0], cols[0]), (rows[1], cols[1])


def _span(d: int, n: int) -> tuple[slice, slice]:
    """Source and target index ranges along one axis of length n for a shift d."""
    if abs(d) >= n:  # no pair fits on this axis
        return slice(0, 0), slice(0, 0)
    return slice(max(0, -d), n - max(0, d)), slice(max(0, d), n - max(0, -d))


def _place(f, region, height: int, width: int):
    """Zero-pad ``f`` (..., h, w) back onto the grid at ``region`` (a static ``lax.pad``)."""
    rows, cols = region
    pads = [(0, 0)] * (f.ndim - 2) + [
        (rows.start, height - rows.stop),
        (cols.start, width - cols.stop),
    ]
    return jnp.pad(f, pads)


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


def _register(cls, data: tuple[str, ...], meta: tuple[str, ...]):
    """Register a frozen dataclass as a pytree: ``data`` fields are leaves, ``meta`` static."""

    def flatten(obj):
        children = [(jax.tree_util.GetAttrKey(n), getattr(obj, n)) for n in data]
        return children, tuple(getattr(obj, n) for n in meta)

    def unflatten(aux, children):
        obj = object.__new__(cls)  # no validation: leaves may be tracers or placeholders
        for n, v in zip(data, children, strict=True):
            object.__setattr__(obj, n, v)
        for n, v in zip(meta, aux, strict=True):
            object.__setattr__(obj, n, v)
        return obj

    jax.tree_util.register_pytree_with_keys(cls, flatten, unflatten)
    return cls


@dataclasses.dataclass(frozen=True, repr=False, eq=False)
class GridGraph:
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
    >>> g.weights.shape, g.num_nodes, int(num_edges(g))
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
        _check_weight_dtype(w)
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
    def batch_shape(self) -> tuple[int, ...]:
        """Leading (batch) axes of ``weights``."""
        return tuple(self.weights.shape[:-3])

    @property
    def radius(self) -> int:
        """The largest |dy| or |dx| among the offsets (the window radius)."""
        return max(max(abs(dy), abs(dx)) for dy, dx in self.offsets)

    def __repr__(self):
        return (
            f"GridGraph(weights={_shape_str(self.weights)}, height={self.height}, "
            f"width={self.width}, radius={self.radius}, K={len(self.offsets)})"
        )

    @classmethod
    def window(cls, height: int, width: int, radius: int = 2, weights=None, *, dtype=None):
        """The window graph of radius ``radius`` (Chebyshev distance) on an H×W grid.

        Args:
            height, width: grid size.
            radius: window radius r; K = ((2r+1)² - 1)/2 offsets (12 for r = 2).
            weights: optional ``(..., K, H, W)`` weights; off-grid entries are set to zero.
                Default: 1 on every edge.
            dtype: dtype of the default weights (float32 unless x64 is on and asked).

        >>> int(num_edges(GridGraph.window(32, 32, radius=2)))
        11346
        """
        offsets = window_offsets(radius)
        mask = _valid_mask(offsets, height, width)
        if weights is None:
            w = jnp.asarray(mask, dtype or jnp.float32)
        else:
            w = jnp.asarray(weights)
            if dtype is not None:
                w = w.astype(dtype)
            _check_weight_dtype(w)
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
            sigma: intensity scale σ > 0 (differentiable).

        >>> import jax.numpy as jnp
        >>> g = GridGraph.gaussian(jnp.zeros((6, 6)), radius=1, sigma=0.5)
        >>> float(g.weights.max())
        1.0
        """
        image = jnp.asarray(image)
        _check_weight_dtype(image, "image")
        if image.ndim < 2:
            raise ValueError(f"image has shape {image.shape}; it needs (..., H, W).")
        sigma = jnp.asarray(sigma, image.dtype)
        d2 = _grid_sq_differences(image[..., None, :, :], window_offsets(radius))
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
        _check_weight_dtype(features, "features")
        q = jnp.asarray(q)
        _check_weight_dtype(q, "q")
        if features.ndim < 3:
            raise ValueError(f"features have shape {features.shape}; they need (..., C, H, W).")
        c = features.shape[-3]
        if q.ndim != 2 or q.shape[0] != c:
            raise ValueError(f"q has shape {q.shape}; features with C={c} channels need (C, M).")
        dtype = jnp.result_type(features, q)
        g = jnp.einsum("...chw,cm->...mhw", features.astype(dtype), q.astype(dtype))
        d2 = _grid_sq_differences(g, window_offsets(radius))
        return cls.window(*features.shape[-2:], radius, jnp.exp(-d2))

    def to_edges(self) -> EdgeGraph:
        """The same graph as an :class:`EdgeGraph` (every on-grid stencil entry an edge).

        Edges are ordered by offset, then row-major by source pixel; zero weights stay
        (they are not counted by :func:`num_edges`).
        """
        idx = np.arange(self.num_nodes).reshape(self.height, self.width)
        src, dst, ws = [], [], []
        for k, off in enumerate(self.offsets):
            s, d = _regions(off, self.height, self.width)
            src.append(idx[s].ravel())
            dst.append(idx[d].ravel())
            ws.append(self.weights[..., k, s[0], s[1]].reshape(self.batch_shape + (-1,)))
        return EdgeGraph(
            jnp.asarray(np.concatenate(src), jnp.int32),
            jnp.asarray(np.concatenate(dst), jnp.int32),
            jnp.concatenate(ws, axis=-1),
            self.num_nodes,
        )

    def laplacian_matvec(self, x):
        """L x; see :func:`laplacian_matvec`."""
        return laplacian_matvec(self, x)

    def degree(self):
        """Weighted degrees; see :func:`degree`."""
        return degree(self)

    def num_edges(self):
        """Edges with positive weight; see :func:`num_edges`."""
        return num_edges(self)

    def to_dense(self):
        """Dense Laplacian; see :func:`to_dense`."""
        return to_dense(self)


@dataclasses.dataclass(frozen=True, repr=False, eq=False)
class EdgeGraph:
    """Any undirected graph as an edge list; each edge (src[e], dst[e]) appears once.

    Attributes:
        src, dst: int arrays of shape (E,), node indices in [0, num_nodes).
        weights: edge weights, shape ``(..., E)``; leading axes are a batch of graphs.
        num_nodes: static number of nodes N.

    >>> import jax.numpy as jnp
    >>> path = EdgeGraph(jnp.array([0, 1]), jnp.array([1, 2]), jnp.array([1.0, 2.0]), 3)
    >>> to_dense(path).tolist()
    [[1.0, -1.0, 0.0], [-1.0, 3.0, -2.0], [0.0, -2.0, 2.0]]
    """

    src: jax.Array
    dst: jax.Array
    weights: jax.Array
    num_nodes: int

    def __post_init__(self):
        n = self.num_nodes
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ValueError(f"EdgeGraph num_nodes={n!r} must be a Python int >= 1.")
        object.__setattr__(self, "num_nodes", int(n))
        for name in ("src", "dst", "weights"):
            if not hasattr(getattr(self, name), "shape"):
                object.__setattr__(self, name, jnp.asarray(getattr(self, name)))
        for name in ("src", "dst"):
            a = getattr(self, name)
            if not jnp.issubdtype(a.dtype, jnp.integer):
                raise TypeError(
                    f"EdgeGraph {name} has dtype {a.dtype}; node indices must be integers, "
                    f"e.g. {name}.astype(jnp.int32)."
                )
        if self.src.ndim != 1 or self.src.shape != self.dst.shape:
            raise ValueError(
                f"EdgeGraph src {tuple(self.src.shape)} and dst {tuple(self.dst.shape)} must "
                "both have shape (E,)."
            )
        _check_weight_dtype(self.weights)
        e = self.src.shape[0]
        if self.weights.ndim < 1 or self.weights.shape[-1] != e:
            raise ValueError(
                f"EdgeGraph weights have shape {tuple(self.weights.shape)}; {e} edges need "
                f"(..., E) = (..., {e})."
            )
        for name in ("src", "dst"):
            a = getattr(self, name)
            if not isinstance(a, jax.core.Tracer) and a.size:
                a = np.asarray(a)
                lo, hi = int(a.min()), int(a.max())
                if lo < 0 or hi >= n:
                    raise ValueError(
                        f"EdgeGraph {name} has indices in [{lo}, {hi}]; they must lie in "
                        f"[0, num_nodes) = [0, {n})."
                    )

    @property
    def node_shape(self) -> tuple[int]:
        """Shape of one signal on the graph: (N,)."""
        return (self.num_nodes,)

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """Leading (batch) axes of ``weights``."""
        return tuple(self.weights.shape[:-1])

    def __repr__(self):
        return (
            f"EdgeGraph(num_nodes={self.num_nodes}, E={self.src.shape[0]}, "
            f"weights={_shape_str(self.weights)})"
        )

    @classmethod
    def mahalanobis(cls, src, dst, features, q, num_nodes: int | None = None):
        """Edge list with w_e = exp(-(f_s - f_d)ᵀ QQᵀ (f_s - f_d)).

        Args:
            src, dst: int arrays (E,).
            features: node features, shape ``(..., N, C)``.
            q: metric factor Q, shape ``(C, M)``.
            num_nodes: N (default: ``features.shape[-2]``).

        >>> import jax.numpy as jnp
        >>> f = jnp.array([[0.0], [1.0], [1.0]])
        >>> g = EdgeGraph.mahalanobis(jnp.array([0, 1]), jnp.array([1, 2]), f, jnp.eye(1))
        >>> g.weights.round(4).tolist()
        [0.3679, 1.0]
        """
        features = jnp.asarray(features)
        _check_weight_dtype(features, "features")
        q = jnp.asarray(q)
        _check_weight_dtype(q, "q")
        if features.ndim < 2:
            raise ValueError(f"features have shape {features.shape}; they need (..., N, C).")
        if q.ndim != 2 or q.shape[0] != features.shape[-1]:
            raise ValueError(
                f"q has shape {q.shape}; features with C={features.shape[-1]} channels need (C, M)."
            )
        dtype = jnp.result_type(features, q)
        g = features.astype(dtype) @ q.astype(dtype)
        src, dst = jnp.asarray(src), jnp.asarray(dst)
        d = g[..., src, :] - g[..., dst, :]
        n = features.shape[-2] if num_nodes is None else num_nodes
        return cls(src, dst, jnp.exp(-jnp.sum(d * d, axis=-1)), n)

    def laplacian_matvec(self, x):
        """L x; see :func:`laplacian_matvec`."""
        return laplacian_matvec(self, x)

    def degree(self):
        """Weighted degrees; see :func:`degree`."""
        return degree(self)

    def num_edges(self):
        """Edges with positive weight; see :func:`num_edges`."""
        return num_edges(self)

    def to_dense(self):
        """Dense Laplacian; see :func:`to_dense`."""
        return to_dense(self)


_register(GridGraph, ("weights",), ("offsets", "height", "width"))
_register(EdgeGraph, ("src", "dst", "weights"), ("num_nodes",))


def _shape_str(a) -> str:
    shape = getattr(a, "shape", None)
    dtype = getattr(a, "dtype", None)
    return f"{dtype}{list(shape)}" if shape is not None else repr(a)


def _check_weight_dtype(w, name: str = "weights") -> None:
    dtype = getattr(w, "dtype", None)
    if dtype is not None and not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
            f"{name} have dtype {dtype}; graph weights and features must be real floating "
            f"arrays. Cast them, e.g. {name}.astype(jnp.float32)."
        )


def _valid_mask(offsets, height: int, width: int) -> np.ndarray:
    """(K, H, W) bool: True where pixel p + offset_k is on the grid."""
    mask = np.zeros((len(offsets), height, width), bool)
    for k, off in enumerate(offsets):
        s, _ = _regions(off, height, width)
        mask[k][s] = True
    return mask


def _grid_sq_differences(f, offsets):
    """Σ_c (f_p - f_{p+o_k})² over the channel axis -3 of ``f`` (..., C, H, W) → (..., K, H, W).

    Zero where the neighbour is off the grid.
    """
    height, width = f.shape[-2:]
    out = []
    for off in offsets:
        s, d = _regions(off, height, width)
        diff = f[..., s[0], s[1]] - f[..., d[0], d[1]]
        out.append(_place(jnp.sum(diff * diff, axis=-3), s, height, width))
    return jnp.stack(out, axis=-3)


def _check_signal(graph, x):
    x = jnp.asarray(x)
    shape = graph.node_shape
    if tuple(x.shape[-len(shape) :]) != shape or x.ndim < len(shape):
        raise ValueError(
            f"x has shape {tuple(x.shape)}; a signal on this graph needs (..., "
            f"{', '.join(map(str, shape))})."
        )
    return x


def _check_graph(graph) -> None:
    if not isinstance(graph, GridGraph | EdgeGraph):
        raise TypeError(
            f"graph must be a glrjax.GridGraph or glrjax.EdgeGraph, got {type(graph).__name__}."
        )


def _unbroadcast(ct, like):
    """Sum a cotangent over the axes that broadcasting added or stretched, back to ``like``."""
    shape = like.shape
    ct = jnp.sum(ct, axis=tuple(range(ct.ndim - len(shape))))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and ct.shape[i] != 1)
    ct = jnp.sum(ct, axis=axes, keepdims=True) if axes else ct
    return ct.astype(like.dtype)


def _full_offsets(offsets):
    """The K half offsets followed by their K negatives."""
    return tuple(offsets) + tuple((-dy, -dx) for dy, dx in offsets)


def _grid_stencil(graph: GridGraph):
    """The operator data of a grid Laplacian: ``(wm, full, deg)``, built once per solve.

    ``wm``: the K stored weights as K arrays (..., H, W), zero off the grid (the
    differentiable input). ``full``: 2K arrays, entry j at pixel p the weight of the edge
    (p, p + o_j) for the K half offsets then their negatives, so the matvec reads only
    shifted copies of x. ``deg``: the degrees. Separate arrays rather than one stacked
    array let XLA fuse each weight's update (2× faster unrolled backward on CPU).
    """
    h, w = graph.height, graph.width
    mask = _valid_mask(graph.offsets, h, w)
    zero = jnp.zeros((), graph.weights.dtype)
    wm, back = [], []
    for k, off in enumerate(graph.offsets):
        wk = jnp.where(mask[k], graph.weights[..., k, :, :], zero)
        s, d = _regions(off, h, w)
        wm.append(wk)
        back.append(_place(wk[..., s[0], s[1]], d, h, w))
    full = tuple(wm + back)
    return tuple(wm), full, sum(full[1:], full[0])


def _shifted(x, offsets):
    """x(p + o) for every offset o, zero off the grid: static slices of one padded copy."""
    h, w = x.shape[-2:]
    r = max(max(abs(dy), abs(dx)) for dy, dx in offsets)
    xp = jnp.pad(x, [(0, 0)] * (x.ndim - 2) + [(r, r), (r, r)])
    return [xp[..., r + dy : r + dy + h, r + dx : r + dx + w] for dy, dx in offsets]


def _grid_apply_plain(offsets, full, deg, x):
    # (Lx)_p = d_p x_p - Σ_j w_j(p) x(p + o_j) over both directions of every offset.
    out = deg * x
    for wj, xs in zip(full, _shifted(x, _full_offsets(offsets)), strict=True):
        out = out - wj * xs
    return out


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _grid_apply(offsets, wm, full, deg, x):
    """L x for ``(wm, full, deg) = _grid_stencil(graph)``.

    Custom VJP: L is symmetric, so x̄ = L ḡ by the same fused slices (autodiff would
    transpose them into pads, several times slower on CPU); the weight cotangent
    w̄_k(p) = (x_p - x_{p+o_k})(ḡ_p - ḡ_{p+o_k}) goes to ``wm`` (K values per pixel) and
    none to ``full``/``deg``, which must be derived from ``wm``; the residual is x.
    """
    return _grid_apply_plain(offsets, full, deg, x)


def _grid_apply_fwd(offsets, wm, full, deg, x):
    return _grid_apply_plain(offsets, full, deg, x), (wm, full, deg, x)


def _grid_apply_bwd(offsets, res, g):
    wm, full, deg, x = res
    x_bar = _grid_apply_plain(offsets, full, deg, g)
    mask = _valid_mask(offsets, *x.shape[-2:])
    pairs = zip(_shifted(x, offsets), _shifted(g, offsets), strict=True)
    w_bar = tuple(
        _unbroadcast(jnp.where(mask[k], (x - xs) * (g - gs), 0), wk)
        for k, ((xs, gs), wk) in enumerate(zip(pairs, wm, strict=True))
    )
    return w_bar, None, None, _unbroadcast(x_bar, x)


_grid_apply.defvjp(_grid_apply_fwd, _grid_apply_bwd)


def _grid_matvec(graph: GridGraph, x):
    return _grid_apply(graph.offsets, *_grid_stencil(graph), x)


def _segment_sum_last(f, idx, n):
    """Σ of ``f[..., e]`` into ``out[..., idx[e]]`` (a segment sum over the last axis)."""
    out = jax.ops.segment_sum(jnp.moveaxis(f, -1, 0), idx, num_segments=n)
    return jnp.moveaxis(out, 0, -1)


def _edge_apply_plain(n, w, x, src, dst):
    f = w * (x[..., src] - x[..., dst])
    return _segment_sum_last(f, src, n) - _segment_sum_last(f, dst, n)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _edge_apply(n, w, x, src, dst):
    """L x on an edge list. Custom VJP: x̄ = L ḡ by the same gather/segment-sum (autodiff
    would transpose them into slower scatters), w̄_e = (x_s - x_d)(ḡ_s - ḡ_d), residual x."""
    return _edge_apply_plain(n, w, x, src, dst)


def _edge_apply_fwd(n, w, x, src, dst):
    return _edge_apply_plain(n, w, x, src, dst), (w, x, src, dst)


def _edge_apply_bwd(n, res, g):
    w, x, src, dst = res
    x_bar = _edge_apply_plain(n, w, g, src, dst)
    w_bar = (x[..., src] - x[..., dst]) * (g[..., src] - g[..., dst])
    return _unbroadcast(w_bar, w), _unbroadcast(x_bar, x), None, None


_edge_apply.defvjp(_edge_apply_fwd, _edge_apply_bwd)


def _edge_matvec(graph: EdgeGraph, x):
    return _edge_apply(graph.num_nodes, graph.weights, x, graph.src, graph.dst)


def laplacian_matvec(graph, x):
    """L x with L = D - W: ``(Lx)_i = Σ_j w_ij (x_i - x_j)``.

    Args:
        graph: a :class:`GridGraph` or :class:`EdgeGraph`.
        x: signal of shape ``(..., H, W)`` (grid) or ``(..., N)`` (edge list); leading
            axes broadcast against the graph's batch axes.

    Returns:
        L x, shape ``broadcast(batch) + node_shape``, in the promoted dtype of x and weights.

    Reverse-mode derivatives use a custom VJP: since L is symmetric, x̄ = L ḡ by the same
    fast kernel, and the weight cotangent w̄_ij = (x_i - x_j)(ḡ_i - ḡ_j) is recomputed from
    x, so an unrolled solver stores N values per matvec, not one per edge. Forward mode
    (``jax.jvp``) is therefore not available; ``grad``, ``vmap`` and ``jit`` are.

    >>> import jax.numpy as jnp
    >>> g = GridGraph.window(1, 3, radius=1)  # a path 0 - 1 - 2
    >>> laplacian_matvec(g, jnp.array([[0.0, 1.0, 3.0]])).tolist()
    [[-1.0, -1.0, 2.0]]
    """
    _check_graph(graph)
    x = _check_signal(graph, x)
    if isinstance(graph, GridGraph):
        return _grid_matvec(graph, x)
    return _edge_matvec(graph, x)


def edge_difference(graph, x):
    """The unweighted incidence operator: x_i − x_j on every edge (i, j).

    Args:
        graph: a :class:`GridGraph` (edge (p, p + o_k)) or :class:`EdgeGraph` (src, dst).
        x: signal ``(..., H, W)`` or ``(..., N)``.

    Returns:
        ``(..., K, H, W)`` for a grid, zero where p + o_k is off the grid, or ``(..., E)``
        for an edge list. Σ_e w_e (Dx)_e² = xᵀLx, and Dᵀ(w ⊙ Dx) = Lx.

    >>> import jax.numpy as jnp
    >>> edge_difference(GridGraph.window(1, 3, radius=1), jnp.array([[0.0, 1.0, 3.0]]))[0].tolist()
    [[-1.0, -2.0, 0.0]]
    """
    _check_graph(graph)
    x = _check_signal(graph, x)
    if isinstance(graph, EdgeGraph):
        return x[..., graph.src] - x[..., graph.dst]
    mask = _valid_mask(graph.offsets, graph.height, graph.width)
    shifted = _shifted(x, graph.offsets)
    return jnp.stack([jnp.where(mask[k], x - xs, 0) for k, xs in enumerate(shifted)], axis=-3)


def degree(graph):
    """Weighted degrees d_i = Σ_j w_ij, shape ``batch + node_shape``.

    >>> import jax.numpy as jnp
    >>> degree(GridGraph.window(3, 3, radius=1)).tolist()
    [[3.0, 5.0, 3.0], [5.0, 8.0, 5.0], [3.0, 5.0, 3.0]]
    """
    _check_graph(graph)
    if isinstance(graph, GridGraph):
        h, w = graph.height, graph.width
        out = None
        for k, off in enumerate(graph.offsets):
            s, d = _regions(off, h, w)
            wk = graph.weights[..., k, s[0], s[1]]
            term = _place(wk, s, h, w) + _place(wk, d, h, w)
            out = term if out is None else out + term
        return out
    n = graph.num_nodes
    return _segment_sum_last(graph.weights, graph.src, n) + _segment_sum_last(
        graph.weights, graph.dst, n
    )


def num_edges(graph):
    """Number of edges with positive weight (int32, one per graph of the batch).

    >>> import jax.numpy as jnp
    >>> g = GridGraph.window(32, 32, radius=2)
    >>> int(num_edges(g)), int(num_edges(g.to_edges()))
    (11346, 11346)
    """
    _check_graph(graph)
    if isinstance(graph, GridGraph):
        mask = jnp.asarray(_valid_mask(graph.offsets, graph.height, graph.width))
        positive = (graph.weights > 0) & mask
        return jnp.sum(positive, axis=(-3, -2, -1), dtype=jnp.int32)
    return jnp.sum(graph.weights > 0, axis=-1, dtype=jnp.int32)


def to_dense(graph):
    """The dense N×N Laplacian D - W (N = H·W, row-major pixels), shape ``batch + (N, N)``.

    For tests and small graphs only: it holds N² numbers.
    """
    _check_graph(graph)
    if isinstance(graph, GridGraph):
        graph = graph.to_edges()
    n = graph.num_nodes
    w = graph.weights
    adj = jnp.zeros(w.shape[:-1] + (n, n), w.dtype)
    adj = adj.at[..., graph.src, graph.dst].add(w).at[..., graph.dst, graph.src].add(w)
    deg = jnp.sum(adj, axis=-1)
    return deg[..., :, None] * jnp.eye(n, dtype=w.dtype) - adj
