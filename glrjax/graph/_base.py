"""The graph interface: :class:`AbstractGraph` and :class:`AbstractLaplacian`.

Every glrjax solver that takes a graph talks to it only through this interface (the model
is lineax's ``AbstractLinearOperator``): shapes (``node_shape``, ``edge_shape``,
``batch_shape``), ``with_weights``, the Laplacian as an operator (``laplacian()`` with
``mv`` and ``diagonal``), the unweighted incidence operator (``edge_difference``), the
static structure (``valid_mask``, ``edge_index``, ``max_neighbours``,
``incidence_norm_bound``) and dense references (``to_dense``).
"""

from __future__ import annotations

import abc

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["AbstractGraph", "AbstractLaplacian", "check_graph"]


class AbstractLaplacian(abc.ABC):
    """L = D − W of one graph (or a batch) as a linear operator, built once per solve.

    ``graph.laplacian()`` hoists everything that does not depend on the signal (both edge
    directions of a stencil, the degrees) out of a solver's loop; ``mv`` is then one fused
    pass. Laplacians are pytrees: pass them to solvers as arguments.
    """

    @abc.abstractmethod
    def mv(self, x) -> jax.Array:
        """L x for a signal ``x`` of shape ``(..., *node_shape)`` (leading axes broadcast)."""

    @abc.abstractmethod
    def diagonal(self) -> jax.Array:
        """The weighted degrees d_i = Σ_j w_ij, shape ``batch_shape + node_shape``."""


class AbstractGraph(abc.ABC):
    """An undirected weighted graph; its edge weights ``weights`` are the pytree leaves.

    A subclass provides ``num_nodes``, ``node_shape``, ``edge_shape``, ``with_weights``,
    ``valid_mask``, ``edge_index``, ``laplacian`` and ``edge_difference``; the rest
    (``batch_shape``, ``max_neighbours``, ``incidence_norm_bound``, ``laplacian_matvec``,
    ``degree``, ``num_edges``, ``to_dense``) is derived from those and may be overridden by
    faster versions.

    Shapes: a signal is ``(..., *node_shape)``; the weights are ``(..., *edge_shape)``,
    one entry per candidate edge (slot); slots where ``valid_mask()`` is False (a grid
    neighbour off the grid) are no edge and read as weight 0. Leading axes of the weights
    are a batch of graphs sharing one structure.
    """

    weights: jax.Array
    num_nodes: int  # N, the size of node_shape (a property or a static field)

    # ------------------------------------------------------------------ abstract part

    @property
    @abc.abstractmethod
    def node_shape(self) -> tuple[int, ...]:
        """Shape of one signal on the graph, e.g. (H, W) for a grid, (N,) for an edge list."""

    @property
    @abc.abstractmethod
    def edge_shape(self) -> tuple[int, ...]:
        """The core (non-batch) shape of ``weights``: (K, H, W) for a grid, (E,) for a list."""

    @abc.abstractmethod
    def with_weights(self, weights) -> AbstractGraph:
        """The same structure with new weights of shape ``(..., *edge_shape)``."""

    @abc.abstractmethod
    def valid_mask(self) -> np.ndarray:
        """numpy bool array of ``edge_shape``: True where a slot is a candidate edge."""

    @abc.abstractmethod
    def edge_index(self):
        """``(src, dst)``: int arrays of ``edge_shape``, flat (row-major) node indices.

        numpy arrays when the structure is static (always for grids); slots with
        ``valid_mask()`` False hold 0. An edge list built from traced indices returns them
        as they are (traced).
        """

    @abc.abstractmethod
    def laplacian(self) -> AbstractLaplacian:
        """The Laplacian operator (``.mv(x)``, ``.diagonal()``), built once per solve."""

    @abc.abstractmethod
    def edge_difference(self, x) -> jax.Array:
        """x_i − x_j on every slot (i, j): shape ``(..., *edge_shape)``, 0 on invalid slots.

        The unweighted incidence operator D: Σ_e w_e (Dx)_e² = xᵀLx and Dᵀ(w ⊙ Dx) = Lx.
        """

    # ------------------------------------------------------------------ derived part

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """Leading (batch) axes of ``weights``."""
        return tuple(self.weights.shape[: len(self.weights.shape) - len(self.edge_shape)])

    def max_neighbours(self):
        """The largest unweighted degree over the candidate edges (a Python int).

        Self-loops count twice and duplicate slots each count, as in the degree of the
        all-ones weights. For an edge list with traced indices, a traced int32 scalar.
        """
        src, dst = self.edge_index()
        mask = self.valid_mask()
        if isinstance(src, jax.core.Tracer) or isinstance(dst, jax.core.Tracer):
            ones = jnp.asarray(mask, jnp.int32).ravel()
            n = self.num_nodes
            counts = jax.ops.segment_sum(ones, jnp.ravel(src), num_segments=n)
            counts = counts + jax.ops.segment_sum(ones, jnp.ravel(dst), num_segments=n)
            return jnp.max(counts)
        ends = np.concatenate([np.asarray(src)[mask], np.asarray(dst)[mask]])
        if ends.size == 0:
            return 0
        return int(np.bincount(ends, minlength=self.num_nodes).max())

    def incidence_norm_bound(self) -> float | None:
        """An upper bound of ‖D‖ for the unweighted incidence operator D (``edge_difference``).

        ‖D‖² = λ_max(DᵀD) = λ_max(unweighted L) ≤ 2·``max_neighbours()`` (Gershgorin), tight
        on window graphs. None for an edge list with traced indices (estimate it instead).
        """
        m = self.max_neighbours()
        if not isinstance(m, int):  # traced edge list
            return None
        return float(np.sqrt(2 * max(m, 1)))

    def check_signal(self, x, name: str = "x") -> jax.Array:
        """``x`` as an array of shape ``(..., *node_shape)``, or a ValueError naming it."""
        x = jnp.asarray(x)
        shape = self.node_shape
        if x.ndim < len(shape) or tuple(x.shape[x.ndim - len(shape) :]) != shape:
            raise ValueError(
                f"{name} has shape {tuple(x.shape)}; a signal on this graph needs (..., "
                f"{', '.join(map(str, shape))})."
            )
        return x

    def laplacian_matvec(self, x) -> jax.Array:
        """L x, shape ``broadcast(batch) + node_shape``; see :func:`glrjax.laplacian_matvec`."""
        return self.laplacian().mv(self.check_signal(x))

    def degree(self) -> jax.Array:
        """Weighted degrees d_i = Σ_j w_ij, shape ``batch_shape + node_shape``."""
        return self.laplacian().diagonal()

    def num_edges(self) -> jax.Array:
        """Number of valid slots with positive weight (int32, one per graph of the batch)."""
        mask = jnp.asarray(self.valid_mask())
        axes = tuple(range(-len(self.edge_shape), 0))
        return jnp.sum((self.weights > 0) & mask, axis=axes, dtype=jnp.int32)

    def to_dense(self) -> jax.Array:
        """The dense N×N Laplacian D − W (row-major nodes), shape ``batch_shape + (N, N)``.

        For tests and small graphs only: it holds N² numbers.
        """
        src, dst = self.edge_index()
        mask = self.valid_mask()
        w = self.weights
        core = len(self.edge_shape)
        flat = w.shape[: w.ndim - core] + (-1,)
        w = jnp.where(mask, w, jnp.zeros((), w.dtype)).reshape(flat)
        src, dst = jnp.ravel(jnp.asarray(src)), jnp.ravel(jnp.asarray(dst))
        n = self.num_nodes
        adj = jnp.zeros(w.shape[:-1] + (n, n), w.dtype)
        adj = adj.at[..., src, dst].add(w).at[..., dst, src].add(w)
        deg = jnp.sum(adj, axis=-1)
        return deg[..., :, None] * jnp.eye(n, dtype=w.dtype) - adj


def check_graph(graph, name: str = "graph") -> AbstractGraph:
    """``graph`` if it is a glrjax graph, else a TypeError naming ``name`` and the builders."""
    if not isinstance(graph, AbstractGraph):
        raise TypeError(
            f"{name} must be a glrjax graph (GridGraph, EdgeGraph, knn_graph(...) or another "
            f"AbstractGraph), got {type(graph).__name__}; build one with "
            "GridGraph.window(...) or EdgeGraph(src, dst, weights, num_nodes)."
        )
    return graph


def register(cls, data: tuple[str, ...], meta: tuple[str, ...]):
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


def shape_str(a) -> str:
    shape = getattr(a, "shape", None)
    dtype = getattr(a, "dtype", None)
    return f"{dtype}{list(shape)}" if shape is not None else repr(a)


def check_weight_dtype(w, name: str = "weights") -> None:
    dtype = getattr(w, "dtype", None)
    if dtype is not None and not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
            f"{name} have dtype {dtype}; graph weights and features must be real floating "
            f"arrays. Cast them, e.g. {name}.astype(jnp.float32)."
        )


def unbroadcast(ct, like):
    """Sum a cotangent over the axes that broadcasting added or stretched, back to ``like``."""
    shape = like.shape
    ct = jnp.sum(ct, axis=tuple(range(ct.ndim - len(shape))))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and ct.shape[i] != 1)
    ct = jnp.sum(ct, axis=axes, keepdims=True) if axes else ct
    return ct.astype(like.dtype)


def segment_sum_last(f, idx, n):
    """Σ of ``f[..., e]`` into ``out[..., idx[e]]`` (a segment sum over the last axis)."""
    out = jax.ops.segment_sum(jnp.moveaxis(f, -1, 0), idx, num_segments=n)
    return jnp.moveaxis(out, 0, -1)
