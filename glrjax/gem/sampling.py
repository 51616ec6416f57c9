"""Exact samples of a GMRF x ~ N(0, Θ⁻¹), Θ = L(w) + δI, matrix-free: :func:`sample_gmrf`.

With B the graph's incidence operator (``graph.edge_difference`` is Bᵀ: x ↦ x_i − x_j
per edge), L = B diag(w) Bᵀ. For z₁ ~ N(0, I_E) and z₂ ~ N(0, I_N),
b = B diag(√w) z₁ + √δ z₂ has covariance B W Bᵀ + δI = Θ, so x = Θ⁻¹b has covariance
Θ⁻¹ΘΘ⁻¹ = Θ⁻¹: one CG solve per sample, no factorisation (Papandreou & Yuille's
perturb-and-MAP, exact for Gaussians). Θx = b is solved as the GLR filter
(I + L/δ)x = b/δ, so its cost is that of :func:`glrjax.glr_filter`.

>>> import jax, jax.numpy as jnp, glrjax
>>> g = glrjax.GridGraph.window(4, 4, radius=1)
>>> x, info = sample_gmrf(g, 0.5, 3, jax.random.key(0))
>>> x.shape, bool(info.converged.all())
((3, 4, 4), True)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from glrjax._validate import check_int, dtype_tol
from glrjax.glr import glr_filter

from ._common import check_graph, check_scalar

__all__ = ["sample_gmrf"]


def sample_gmrf(graph, delta, num: int, key, *, tol=None, maxiter: int = 1000):
    """``num`` exact samples of N(0, (L + δI)⁻¹) on ``graph``.

    Args:
        graph: one graph with non-negative weights (no batch axes).
        delta: δ > 0 (traced: changing it does not recompile).
        num: number of samples (static).
        key: a ``jax.random`` key.
        tol, maxiter: the CG solve of Θx = b (default tol: 1e-10 in float64, 100 ulps in
            float32); a sample is exact up to tol.

    Returns:
        ``(x, info)``: samples ``(num,) + node_shape`` in the weights' dtype and the CG
        :class:`~glrjax.Info` per sample (check ``info.converged``).
    """
    check_graph(graph)
    check_scalar(delta, "delta", positive=True, example="0.5")
    num = check_int(num, "num", minimum=1, example="100")
    if not (isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key)):
        raise TypeError(f"key={key!r} must be a typed PRNG key, e.g. jax.random.key(0).")
    dtype = graph.weights.dtype
    tol = dtype_tol(dtype, 1e-10) if tol is None else tol
    k1, k2 = jax.random.split(key)
    node = tuple(graph.node_shape)
    diff = lambda x: graph.edge_difference(x)  # noqa: E731 - Bᵀ, linear in x
    incidence = jax.linear_transpose(jax.vmap(diff), jnp.zeros((num,) + node, dtype))
    z1 = jax.random.normal(k1, (num,) + tuple(graph.edge_shape), dtype)
    z2 = jax.random.normal(k2, (num,) + node, dtype)
    delta = jnp.asarray(delta, dtype)
    b = incidence(jnp.sqrt(graph.weights) * z1)[0] + jnp.sqrt(delta) * z2
    x, info = glr_filter(b / delta, graph, 1.0 / delta, tol=tol, maxiter=maxiter)
    return x, info
