"""Shard the batch axis of any glrjax solver across devices.

Every solver is a pure function of arrays that ``jax.vmap`` batches; :func:`shard_batch`
vmaps it over a leading batch axis, places that axis on a one-dimensional device mesh
with ``NamedSharding`` and lets XLA's SPMD partitioner split the work. Gradients of a
loss of the sharded outputs stay sharded the same way.

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

__all__ = ["batch_mesh", "shard_batch"]


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
