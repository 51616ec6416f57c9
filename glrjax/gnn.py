"""Graph neural network layers on glrjax graphs, with learnable non-negative edge weights.

- :func:`gcn_propagate`: the renormalised propagation Â x of a graph convolutional network
  (Kipf & Welling 2017), Â = D̃^{-1/2}(W + I)D̃^{-1/2} with D̃ = D + I, matrix-free:
  (W + I)y = (D + I)y − Ly, one Laplacian matvec. Any :class:`~glrjax.AbstractGraph`
  (a :class:`~glrjax.GridGraph` stencil or an :class:`~glrjax.EdgeGraph` list).
- :func:`gcn_init` / :func:`gcn_layer`: one GCN layer Â (Θᵀx) + b on features laid out
  channel-first, ``(..., F, *node_shape)`` (images: ``(B, C, H, W)``).
- The GLR layer (I + μL)⁻¹x is :func:`glrjax.glr_filter`: differentiable under every
  gradient mode, in the signal, in μ and in the edge weights.
- :func:`edge_prox`: an optax transformation that follows an optimiser with a proximal
  step on the edge weights (e.g. :func:`glrjax.prox.nonneg_l0`), so edges are cut while
  the network trains and the weights stay ≥ 0 (seed 000, part 2).

The edge weights are the graph's pytree leaves: put the graph (or its weights) in the
parameter pytree and ``jax.grad`` gives the weight gradient.

>>> import jax, jax.numpy as jnp, glrjax
>>> g = glrjax.GridGraph.window(4, 4, radius=1)
>>> p = gcn_init(jax.random.key(0), 3, 2)
>>> h = gcn_layer(p, g, jnp.ones((3, 4, 4)))  # features (F, H, W)
>>> h.shape
(2, 4, 4)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from glrjax._validate import check_float_array, check_graph_weights
from glrjax.graph import AbstractGraph, check_graph

__all__ = ["GCNParams", "edge_prox", "gcn_init", "gcn_layer", "gcn_propagate"]


class GCNParams(NamedTuple):
    """One GCN layer's parameters."""

    weight: jax.Array  # (F_in, F_out) feature mixing Θ
    bias: jax.Array  # (F_out,) added at every node


def gcn_propagate(graph: AbstractGraph, x) -> jax.Array:
    """Â x with Â = D̃^{-1/2}(W + I)D̃^{-1/2}, D̃ = D + I: the GCN propagation rule.

    ``x`` has shape ``(..., *node_shape)``; leading axes (features, a batch) broadcast
    against the graph's batch axes. The weights must be ≥ 0 (then D̃ ≥ 1 and Â has
    eigenvalues in (−1, 1]); concrete negative weights raise.

    >>> import jax.numpy as jnp, glrjax
    >>> path = glrjax.EdgeGraph(jnp.array([0, 1]), jnp.array([1, 2]), jnp.ones(2), 3)
    >>> x = jnp.sqrt(jnp.array([2.0, 3.0, 2.0]))  # √(d + 1): Â's eigenvector of 1
    >>> bool(jnp.allclose(gcn_propagate(path, x), x))
    True
    """
    check_graph(graph)
    check_graph_weights(
        graph,
        "GCN propagation",
        "keep learned weights non-negative, e.g. with edge_prox(glrjax.prox.nonneg_l0, lam).",
    )
    x = graph.check_signal(check_float_array(x, "x"))
    op = graph.laplacian()
    d = op.diagonal() + 1.0
    s = 1.0 / jnp.sqrt(d)
    y = s * x
    return s * (d * y - op.mv(y))


def gcn_init(key, features_in: int, features_out: int, dtype=jnp.float32) -> GCNParams:
    """Glorot-uniform Θ and zero bias for :func:`gcn_layer` (as in Kipf & Welling)."""
    for name, v in (("features_in", features_in), ("features_out", features_out)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name}={v!r} must be a positive int, e.g. 16.")
    limit = (6.0 / (features_in + features_out)) ** 0.5
    w = jax.random.uniform(key, (features_in, features_out), dtype, -limit, limit)
    return GCNParams(weight=w, bias=jnp.zeros((features_out,), dtype))


def gcn_layer(params: GCNParams, graph: AbstractGraph, x) -> jax.Array:
    """Â (Θᵀx) + b for features ``x`` of shape ``(..., F_in, *node_shape)``.

    Returns ``(..., F_out, *node_shape)``. The axes before F line up with the graph's batch
    axes (one graph per image: weights ``(B, K, H, W)``, x ``(B, F, H, W)``). No
    activation: compose with e.g. ``jax.nn.relu``.
    """
    check_graph(graph)
    x = check_float_array(x, "x")
    nd = len(graph.node_shape)
    w, b = params.weight, params.bias
    if w.ndim != 2 or b.shape != (w.shape[1],):
        raise ValueError(
            f"params.weight {w.shape} and params.bias {b.shape} must be (F_in, F_out) and "
            f"(F_out,); make them with gcn_init(key, F_in, F_out)."
        )
    if x.ndim < nd + 1 or x.shape[-nd - 1] != w.shape[0]:
        raise ValueError(
            f"x has shape {x.shape}; gcn_layer needs (..., F_in={w.shape[0]}, "
            f"*{graph.node_shape}) — features on the axis before the node axes."
        )
    # Features first, so the remaining leading axes line up with the graph's batch axes.
    mixed = jnp.tensordot(w.astype(x.dtype), jnp.moveaxis(x, -nd - 1, 0), axes=(0, 0))
    out = gcn_propagate(graph, mixed)
    out = out + b.astype(x.dtype).reshape((-1,) + (1,) * (out.ndim - 1))
    return jnp.moveaxis(out, 0, -nd - 1)


def edge_prox(prox, lam) -> optax.GradientTransformation:
    """A proximal step on the parameters after the optimiser's update: p ← prox(p + u, λ).

    Chain it after an optimiser, on the edge-weight leaves only (``optax.masked``)::

        tx = optax.chain(optax.adam(1e-2),
                         optax.masked(edge_prox(glrjax.prox.nonneg_l0, lam), is_weights))

    With :func:`glrjax.prox.nonneg_l0` every weight below √(2λ) is cut to exactly 0 and
    the rest stay > 0; with :func:`glrjax.prox.nonneg_l1` weights shrink by λ and stop at
    0. ``lam`` is the threshold parameter as the prox takes it (step t = 1), traced.
    Needs ``params`` in ``update``.

    >>> import jax.numpy as jnp, optax, glrjax
    >>> tx = edge_prox(glrjax.prox.nonneg_l0, 0.5)  # cuts below √(2·0.5) = 1
    >>> w = jnp.array([0.5, 2.0, 3.0])
    >>> u, _ = tx.update(jnp.array([0.2, -0.5, -4.0]), tx.init(w), w)
    >>> optax.apply_updates(w, u).tolist()
    [0.0, 1.5, 0.0]
    """
    if not callable(prox):
        raise TypeError(
            f"prox={prox!r} must be a function prox(x, lam), e.g. glrjax.prox.nonneg_l0."
        )

    def init(params):
        del params
        return optax.EmptyState()

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("edge_prox needs params: call tx.update(updates, state, params).")

        def one(u, p):
            new = prox(p + u, jnp.asarray(lam, p.dtype))
            return new - p  # p + (new − p) is exactly 0 where new is 0

        return jax.tree_util.tree_map(one, updates, params), state

    return optax.GradientTransformation(init, update)
