"""Graphs as operator objects: image grids as stencils, any graph as an edge list; L = D - W.

Every graph is an :class:`AbstractGraph` (the model is lineax's
``AbstractLinearOperator``): a pytree whose leaves are its edge weights, with
``node_shape``, ``edge_shape``, ``batch_shape``, ``with_weights``, the Laplacian as an
operator (``laplacian()`` → ``.mv(x)``, ``.diagonal()``), ``edge_difference`` (the
incidence operator), ``degree``, ``num_edges``, ``to_dense``, the static structure
(``valid_mask``, ``edge_index``, ``max_neighbours``, ``incidence_norm_bound``). Solvers
use only this interface, so any implementation works with all of them.

- :class:`GridGraph` (:mod:`glrjax.graph.grid`): an H×W grid whose edges join pixels
  within a window, stored as a stencil of K half offsets and weights ``(..., K, H, W)``;
  its matvec is 2K fused static slices of one padded copy of x.
- :class:`EdgeGraph` (:mod:`glrjax.graph.edges`): ``src``, ``dst`` (E,), weights
  ``(..., E)`` and a static ``num_nodes``; its matvec is a gather and two ``segment_sum``.
- :func:`knn_graph` (:mod:`glrjax.graph.knn`): the k-nearest-neighbour graph of points
  (or of pixels' feature vectors) as an :class:`EdgeGraph`.

Derivatives of the Laplacian matvec: L is symmetric, so the backward pass applies the
same fast kernel to the cotangent and recomputes the weight cotangent from x (an unrolled
solver stores N values per matvec, not one per edge).

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

from glrjax.graph._base import AbstractGraph, AbstractLaplacian, check_graph
from glrjax.graph.edges import EdgeGraph, EdgeLaplacian
from glrjax.graph.grid import GridGraph, GridLaplacian, window_offsets
from glrjax.graph.knn import knn_edges, knn_graph

__all__ = [
    "AbstractGraph",
    "AbstractLaplacian",
    "EdgeGraph",
    "EdgeLaplacian",
    "GridGraph",
    "GridLaplacian",
    "check_graph",
    "degree",
    "edge_difference",
    "knn_edges",
    "knn_graph",
    "laplacian_matvec",
    "num_edges",
    "to_dense",
    "window_offsets",
]


def laplacian_matvec(graph, x):
    """L x with L = D - W: ``(Lx)_i = Σ_j w_ij (x_i - x_j)``.

    Args:
        graph: a glrjax graph (:class:`GridGraph`, :class:`EdgeGraph`, ...).
        x: signal of shape ``(..., H, W)`` (grid) or ``(..., N)`` (edge list); leading
            axes broadcast against the graph's batch axes.

    Returns:
        L x, shape ``broadcast(batch) + node_shape``, in the promoted dtype of x and weights.

    Derivatives: L is symmetric, so reverse mode applies the same fast kernel to the
    cotangent and recomputes the weight cotangent w̄_ij = (x_i - x_j)(ḡ_i - ḡ_j) from x
    (an unrolled solver stores N values per matvec, not one per edge).

    >>> import jax.numpy as jnp
    >>> g = GridGraph.window(1, 3, radius=1)  # a path 0 - 1 - 2
    >>> laplacian_matvec(g, jnp.array([[0.0, 1.0, 3.0]])).tolist()
    [[-1.0, -1.0, 2.0]]
    """
    return check_graph(graph).laplacian_matvec(x)


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
    return check_graph(graph).edge_difference(x)


def degree(graph):
    """Weighted degrees d_i = Σ_j w_ij, shape ``batch + node_shape``.

    >>> degree(GridGraph.window(3, 3, radius=1)).tolist()
    [[3.0, 5.0, 3.0], [5.0, 8.0, 5.0], [3.0, 5.0, 3.0]]
    """
    return check_graph(graph).degree()


def num_edges(graph):
    """Number of edges with positive weight (int32, one per graph of the batch).

    >>> g = GridGraph.window(32, 32, radius=2)
    >>> int(num_edges(g)), int(num_edges(g.to_edges()))
    (11346, 11346)
    """
    return check_graph(graph).num_edges()


def to_dense(graph):
    """The dense N×N Laplacian D - W (N = H·W, row-major pixels), shape ``batch + (N, N)``.

    For tests and small graphs only: it holds N² numbers.
    """
    return check_graph(graph).to_dense()
