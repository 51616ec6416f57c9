"""Shared pieces of the GEM package: argument checks, graph access, Info summaries.

Graph access goes through the graph interface (:class:`glrjax.graph.AbstractGraph`:
``valid_mask``, ``edge_index``, ``with_weights``, ``max_neighbours``, ``edge_difference``).
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np

from glrjax import graph as _graph
from glrjax._validate import check_float_array, check_graph_weights
from glrjax.iterate import Info
from glrjax.results import RESULTS

# ----------------------------------------------------------------------------- checks


def check_graph(graph, name: str = "graph"):
    """One graph (no batch axes) with non-negative floating weights."""
    _graph.check_graph(graph, name)
    if graph.batch_shape:
        raise ValueError(
            f"{name} has batch axes {graph.batch_shape}; GEM learns one graph from the samples "
            "on the leading axis of y. Use jax.vmap for a batch of graphs."
        )
    check_float_array(graph.weights, f"{name}.weights")
    check_graph_weights(graph, "GEM", "Θ = L + δI must be a GMRF precision (L a Laplacian).")


def concrete(value):
    """``value`` as a float64 numpy array when known at trace time, else None."""
    if isinstance(value, jax.core.Tracer):
        return None
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None


def check_scalar(value, name: str, *, positive: bool, example: str):
    """A real number (or array) that is finite and > 0 (``positive``) or ≥ 0 when concrete."""
    if isinstance(value, bool) or not (isinstance(value, numbers.Real) or hasattr(value, "dtype")):
        raise TypeError(f"{name}={value!r} must be a real number, e.g. {name}={example}.")
    arr = concrete(value)
    if arr is not None and arr.size:
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name}={value} must be finite, e.g. {name}={example}.")
        ok = np.all(arr > 0) if positive else np.all(arr >= 0)
        if not ok:
            rel = "> 0" if positive else ">= 0"
            raise ValueError(f"{name}={value} must be {rel}, e.g. {name}={example}.")


def check_choice(value, name: str, choices):
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not one of {choices}.")


def check_samples(y, graph, name: str = "y"):
    """Samples ``(S,) + node_shape`` (one sample ``node_shape`` gets S = 1)."""
    y = check_float_array(y, name)
    shape = graph.node_shape
    core = len(shape)
    if y.ndim < core or tuple(y.shape[-core:]) != shape or y.ndim > core + 1:
        raise ValueError(
            f"{name} has shape {y.shape}; GEM needs samples (S, {', '.join(map(str, shape))}) "
            f"or one sample {shape} on this graph."
        )
    return y if y.ndim == core + 1 else y[None]


def check_terms(terms, graph, name: str = "terms"):
    terms = check_float_array(terms, name)
    if terms.shape != graph.weights.shape:
        raise ValueError(
            f"{name} has shape {terms.shape}; edge terms are shaped like graph.weights "
            f"{graph.weights.shape}."
        )
    return terms


# ------------------------------------------------------------------------ graph access


def with_weights(graph, w):
    """The same graph structure with weights ``w``."""
    return graph.with_weights(w)


def valid_mask(graph) -> np.ndarray:
    """numpy bool array of the weights' core shape: False where a slot is not an edge."""
    return np.asarray(graph.valid_mask())


def edge_index(graph):
    """Flat node indices ``(src, dst)`` of the weights' core shape (0 on invalid slots):
    numpy, or the traced index arrays of a traced edge list."""
    return graph.edge_index()


def max_neighbours(graph):
    """The largest unweighted degree over the candidate edges (≥ 1): a Python int, or a
    traced scalar for a traced edge list."""
    m = graph.max_neighbours()
    if isinstance(m, jax.core.Tracer):
        return jnp.maximum(m, 1)
    return max(int(m), 1)


def edge_differences(graph, x):
    """x_i − x_j for every edge (i, j), shaped like ``graph.weights`` (zero off the grid).

    Args:
        graph: a :class:`~glrjax.GridGraph` (differences ``(..., K, H, W)``: entry k at
            pixel p is x(p) − x(p + o_k)) or an :class:`~glrjax.EdgeGraph` (``(..., E)``).
        x: signals ``(..., H, W)`` or ``(..., N)``.

    The same as ``graph.edge_difference(x)``.

    >>> import jax.numpy as jnp, glrjax
    >>> g = glrjax.GridGraph.window(1, 3, radius=1)
    >>> edge_differences(g, jnp.array([[0.0, 1.0, 3.0]]))[0].tolist()  # offset (0, 1)
    [[-1.0, -2.0, 0.0]]
    """
    return graph.edge_difference(x)


# ----------------------------------------------------------------------------- Info


def summary(info: Info) -> Info:
    """One Info for a batch of solves: most iterations, largest residual, all converged."""
    info = jax.lax.stop_gradient(info)
    return info._replace(
        iterations=jnp.max(info.iterations),
        residual=jnp.max(info.residual),
        converged=jnp.all(info.converged),
        result=jnp.max(info.result),
    )


def exact_info(dtype, ok=True) -> Info:
    """Info of a direct (Cholesky) computation; ``ok`` False when its result is not finite."""
    return Info(
        iterations=jnp.asarray(0, jnp.int32),
        residual=jnp.zeros((), dtype),
        converged=jnp.asarray(ok),
        result=jnp.where(jnp.asarray(ok), RESULTS.successful, RESULTS.nonfinite).astype(jnp.int32),
    )


class Structure:
    """A graph's structure as a hashable static value (jit's static arguments).

    Equal when the graph type, node shape and edge index are; ``graph(w)`` rebuilds the
    graph with weights ``w``.
    """

    def __init__(self, graph):
        self._graph = graph
        src, dst = edge_index(graph)
        self._key = (
            type(graph).__name__,
            tuple(graph.node_shape),
            np.asarray(src).tobytes(),
            np.asarray(dst).tobytes(),
            np.shape(graph.weights),
        )

    def __hash__(self):
        return hash(self._key)

    def __eq__(self, other):
        return isinstance(other, Structure) and self._key == other._key

    def graph(self, w):
        return with_weights(self._graph, w)
