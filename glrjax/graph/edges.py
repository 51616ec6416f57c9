"""Any graph as an edge list: :class:`EdgeGraph` and its Laplacian operator.

``src``, ``dst`` (int arrays of shape (E,)), weights ``(..., E)`` and a static
``num_nodes``; the matvec is a gather and two ``segment_sum``.
"""

from __future__ import annotations

import dataclasses
import numbers

import jax
import jax.numpy as jnp
import numpy as np

from glrjax.graph import _kernels
from glrjax.graph._base import (
    AbstractGraph,
    AbstractLaplacian,
    check_weight_dtype,
    register,
    segment_sum_last,
    shape_str,
)

__all__ = ["EdgeGraph", "EdgeLaplacian"]


def _is_traced(a) -> bool:
    return isinstance(a, jax.core.Tracer)


@dataclasses.dataclass(frozen=True, repr=False, eq=False)
class EdgeGraph(AbstractGraph):
    """Any undirected graph as an edge list; each edge (src[e], dst[e]) appears once.

    Attributes:
        src, dst: int arrays of shape (E,), node indices in [0, num_nodes).
        weights: edge weights, shape ``(..., E)``; leading axes are a batch of graphs.
        num_nodes: static number of nodes N.

    >>> import jax.numpy as jnp
    >>> path = EdgeGraph(jnp.array([0, 1]), jnp.array([1, 2]), jnp.array([1.0, 2.0]), 3)
    >>> path.to_dense().tolist()
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
        check_weight_dtype(self.weights)
        e = self.src.shape[0]
        if self.weights.ndim < 1 or self.weights.shape[-1] != e:
            raise ValueError(
                f"EdgeGraph weights have shape {tuple(self.weights.shape)}; {e} edges need "
                f"(..., E) = (..., {e})."
            )
        for name in ("src", "dst"):
            a = getattr(self, name)
            if not _is_traced(a) and a.size:
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
    def edge_shape(self) -> tuple[int]:
        """Core shape of ``weights``: (E,)."""
        return (int(self.src.shape[0]),)

    def __repr__(self):
        return (
            f"EdgeGraph(num_nodes={self.num_nodes}, E={self.src.shape[0]}, "
            f"weights={shape_str(self.weights)})"
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
        check_weight_dtype(features, "features")
        q = jnp.asarray(q)
        check_weight_dtype(q, "q")
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

    # ------------------------------------------------------------------ interface

    def with_weights(self, weights) -> EdgeGraph:
        """The same edges with new weights ``(..., E)``."""
        return EdgeGraph(self.src, self.dst, weights, self.num_nodes)

    def valid_mask(self) -> np.ndarray:
        """(E,) all True: every listed edge is a candidate."""
        return np.ones(self.edge_shape, bool)

    def edge_index(self):
        """(src, dst) as numpy int arrays (the traced arrays if the indices are traced)."""
        if _is_traced(self.src) or _is_traced(self.dst):
            return self.src, self.dst
        return np.asarray(self.src), np.asarray(self.dst)

    def laplacian(self) -> EdgeLaplacian:
        """The edge-list Laplacian (weights and indices)."""
        return EdgeLaplacian(self.weights, self.src, self.dst, self.num_nodes)

    def edge_difference(self, x) -> jax.Array:
        """x[src] − x[dst], shape ``(..., E)``."""
        x = self.check_signal(x)
        return x[..., self.src] - x[..., self.dst]

    def degree(self) -> jax.Array:
        """Weighted degrees by two segment sums, shape ``batch + (N,)``."""
        n = self.num_nodes
        w = self.weights
        return segment_sum_last(w, self.src, n) + segment_sum_last(w, self.dst, n)


@dataclasses.dataclass(frozen=True, eq=False)
class EdgeLaplacian(AbstractLaplacian):
    """The Laplacian of an :class:`EdgeGraph` (a pytree).

    Attributes:
        weights: edge weights ``(..., E)``.
        src, dst: int arrays (E,).
        num_nodes: N (static).
    """

    weights: jax.Array
    src: jax.Array
    dst: jax.Array
    num_nodes: int

    def mv(self, x) -> jax.Array:
        """L x by a gather and two segment sums."""
        return _kernels.edge_apply(self.num_nodes, self.weights, x, self.src, self.dst)

    def diagonal(self) -> jax.Array:
        """The degrees."""
        n = self.num_nodes
        w = self.weights
        return segment_sum_last(w, self.src, n) + segment_sum_last(w, self.dst, n)


register(EdgeGraph, ("src", "dst", "weights"), ("num_nodes",))
register(EdgeLaplacian, ("weights", "src", "dst"), ("num_nodes",))
