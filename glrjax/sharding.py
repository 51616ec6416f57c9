"""Split work across devices: a batch of problems (:func:`shard_batch`) or one graph.

**One graph** (:func:`shard_graph`, :func:`shard_nodes`): an
:class:`~glrjax.EdgeGraph`'s edges (weights, src, dst) or a
:class:`~glrjax.GridGraph`'s rows are placed across a one-dimensional mesh with
``NamedSharding``, and a signal's nodes likewise. Any solver called on them (``glr_filter``,
``gem.gem_fit``, ...) then runs partitioned: XLA's SPMD partitioner inserts the
communication (a halo exchange for a stencil's shifts, all-gathers and all-reduces for an
edge list's gathers and segment sums). Nothing else changes; the results equal the
single-device ones up to the order of floating-point sums. On several hosts, call
``jax.distributed.initialize()`` in each process first: ``jax.devices()`` then lists every
host's devices and the same code runs across them.

**A batch**: every solver is a pure function of arrays that ``jax.vmap`` batches;
:func:`shard_batch` vmaps it over a leading batch axis, places that axis on a
one-dimensional device mesh with ``NamedSharding`` and lets XLA's SPMD partitioner split
the work. Gradients of a loss of the sharded outputs stay sharded the same way.

>>> import jax, jax.numpy as jnp, glrjax
>>> solve = lambda b, mu: glrjax.cg(lambda x, m: x + m * x, b, mu)[0]
>>> x = shard_batch(solve, in_axes=(0, None))(jnp.ones((jax.device_count() * 2, 3)), 1.0)
>>> x.shape
(2, 3)
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = ["batch_mesh", "pad_edges", "shard_batch", "shard_graph", "shard_nodes"]


def batch_mesh(devices=None, axis_name: str = "batch") -> Mesh:
    """A one-dimensional mesh over ``devices`` (all devices by default)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (axis_name,))


def shard_batch(fn, in_axes=0, *, mesh: Mesh | None = None):
    """``jax.jit(jax.vmap(fn, in_axes))`` with the batch axis sharded over ``mesh``.

    Args:
        fn: a function of unbatched arguments (e.g. a solver call returning ``(x, info)``).
        in_axes: as for ``jax.vmap``: 0 for batched arguments, None for shared ones.
        mesh: a one-dimensional mesh (default: :func:`batch_mesh` over all devices).

    Returns:
        A function of batched arguments; its outputs are sharded along the batch axis.
        The batch size must be a multiple of the number of devices.
    """
    mesh = batch_mesh() if mesh is None else mesh
    if len(mesh.axis_names) != 1:
        raise ValueError(f"mesh must be one-dimensional (one batch axis), got {mesh.axis_names}.")
    (axis,) = mesh.axis_names
    batched = NamedSharding(mesh, PartitionSpec(axis))
    replicated = NamedSharding(mesh, PartitionSpec())
    vf = jax.jit(jax.vmap(fn, in_axes=in_axes))

    def wrapped(*args):
        axes = in_axes if isinstance(in_axes, tuple) else (in_axes,) * len(args)
        if len(axes) != len(args):
            raise ValueError(f"in_axes has {len(axes)} entries for {len(args)} arguments.")
        placed = []
        for arg, ax in zip(args, axes, strict=True):
            if ax is None:
                placed.append(jax.device_put(arg, replicated))
                continue
            if ax != 0:
                raise ValueError("shard_batch shards the leading axis: use in_axes of 0 or None.")
            for leaf in jax.tree_util.tree_leaves(arg):
                if np.ndim(leaf) == 0 or np.shape(leaf)[0] % mesh.size:
                    raise ValueError(
                        f"batch size {np.shape(leaf)[:1]} is not a multiple of the "
                        f"{mesh.size} devices; pad the batch or use fewer devices."
                    )
            placed.append(jax.device_put(arg, batched))
        return vf(*placed)

    return wrapped


def _split(shape, axis: int, mesh: Mesh, what: str, fix: str) -> NamedSharding:
    (name,) = mesh.axis_names
    if shape[axis] % mesh.size:
        raise ValueError(
            f"{what} has {shape[axis]} entries along the split axis, not a multiple of the "
            f"{mesh.size} devices; {fix}"
        )
    spec = [None] * len(shape)
    spec[axis] = name
    return NamedSharding(mesh, PartitionSpec(*spec))


def _mesh(mesh):
    mesh = batch_mesh(axis_name="nodes") if mesh is None else mesh
    if len(mesh.axis_names) != 1:
        raise ValueError(f"mesh must be one-dimensional, got axes {mesh.axis_names}.")
    return mesh


def pad_edges(graph, multiple: int):
    """``graph`` with zero-weight self-loops on node 0 appended until E is a multiple.

    A self-loop of weight 0 changes no Laplacian, no solve and no GEM fit (an edge of weight
    0 is never a candidate). Use it before :func:`shard_graph` when E does not divide.
    """
    from glrjax.graph import EdgeGraph

    if not isinstance(graph, EdgeGraph):
        raise TypeError(f"pad_edges needs an EdgeGraph, got {type(graph).__name__}.")
    pad = -graph.src.shape[0] % int(multiple)
    zeros = np.zeros(pad, np.asarray(graph.src).dtype)
    w = np.asarray(graph.weights)
    w = np.concatenate([w, np.zeros(w.shape[:-1] + (pad,), w.dtype)], axis=-1)
    return EdgeGraph(
        np.concatenate([np.asarray(graph.src), zeros]),
        np.concatenate([np.asarray(graph.dst), zeros]),
        w,
        graph.num_nodes,
    )


def shard_graph(graph, mesh: Mesh | None = None):
    """Place one graph across ``mesh``: an EdgeGraph's edges, a GridGraph's rows.

    Args:
        graph: an :class:`~glrjax.EdgeGraph` (E a multiple of the devices: see
            :func:`pad_edges`) or a :class:`~glrjax.GridGraph` (H a multiple).
        mesh: a one-dimensional mesh (default: all devices, axis ``"nodes"``).

    Returns:
        The same graph, its arrays placed with ``NamedSharding``.

    >>> import jax, jax.numpy as jnp, glrjax
    >>> g = glrjax.GridGraph.window(4 * jax.device_count(), 4, radius=1)
    >>> x, _ = glrjax.glr_filter(shard_nodes(jnp.ones((4 * jax.device_count(), 4)), g),
    ...                          shard_graph(g), 1.0)
    >>> bool(jnp.allclose(x, 1.0))
    True
    """
    from glrjax.graph import EdgeGraph, GridGraph

    if not isinstance(graph, (EdgeGraph, GridGraph)):
        raise TypeError(
            f"shard_graph takes an EdgeGraph or a GridGraph, got {type(graph).__name__}."
        )
    mesh = _mesh(mesh)
    w = graph.weights
    if isinstance(graph, EdgeGraph):
        fix = "pad it with glrjax.sharding.pad_edges(graph, mesh.size)."
        edges = _split(w.shape, w.ndim - 1, mesh, "the edge list", fix)
        index = _split(graph.src.shape, 0, mesh, "the edge list", fix)
        return EdgeGraph(
            jax.device_put(graph.src, index),
            jax.device_put(graph.dst, index),
            jax.device_put(w, edges),
            graph.num_nodes,
        )
    fix = "use a device count that divides the height, or pad the image."
    return graph.with_weights(jax.device_put(w, _split(w.shape, w.ndim - 2, mesh, "H", fix)))


def shard_nodes(x, graph, mesh: Mesh | None = None):
    """Place a signal ``(..., *node_shape)`` across ``mesh`` along its first node axis."""
    mesh = _mesh(mesh)
    x = jax.numpy.asarray(x)
    core = len(graph.node_shape)
    if x.ndim < core or tuple(x.shape[x.ndim - core :]) != tuple(graph.node_shape):
        raise ValueError(f"x has shape {x.shape}; the graph's node shape is {graph.node_shape}.")
    fix = "use a device count that divides it, or pad the signal and the graph."
    return jax.device_put(x, _split(x.shape, x.ndim - core, mesh, "the node axis", fix))
