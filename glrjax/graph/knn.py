"""k-nearest-neighbour graphs of points (or of pixels' feature vectors) as edge lists.

:func:`knn_graph` joins every point to its k nearest neighbours (Euclidean distance,
brute force in numpy at trace time: the structure is static) and returns an
:class:`~glrjax.EdgeGraph`, so every solver that takes a graph (``glr_filter``,
``gtv_denoise``, ``gem_fit``, ...) takes it unchanged. For an image, pass the pixels'
feature vectors in row-major order (``features.reshape(C, H * W).T``); signals on the
graph are then flattened images ``(..., H * W)``.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from glrjax._validate import check_choice, check_int, check_scalar
from glrjax.graph.edges import EdgeGraph

__all__ = ["knn_edges", "knn_graph"]

_CHUNK = 1024  # rows of the distance matrix held at once


def _points(points) -> np.ndarray:
    if isinstance(points, jax.core.Tracer):
        raise TypeError(
            "points are traced; the k-NN structure is static (built in numpy at trace time). "
            "Build the graph outside jit/grad, then change its weights with "
            "graph.with_weights(...) or EdgeGraph.mahalanobis(graph.src, graph.dst, ...)."
        )
    arr = np.asarray(points)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise TypeError(f"points have dtype {arr.dtype}; they must be a real array (N, C).")
    if arr.ndim != 2:
        raise ValueError(
            f"points have shape {arr.shape}; they need (N, C): one feature vector per node "
            "(for an image's pixels: features.reshape(C, H * W).T)."
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError("points contain NaN or inf; k nearest neighbours need finite points.")
    return arr


def knn_edges(points, k: int, mode: Literal["union", "mutual"] = "union"):
    """The undirected k-NN edges of ``points`` (N, C) as numpy ``(src, dst)``, src < dst.

    Each point's k nearest other points (ties broken by the lower index); ``"union"``
    keeps a pair if either point is among the other's k nearest, ``"mutual"`` if both are.
    Edges are sorted by (src, dst).

    >>> import numpy as np
    >>> src, dst = knn_edges(np.array([[0.0], [1.0], [3.0], [7.0]]), k=1)
    >>> src.tolist(), dst.tolist()
    ([0, 1, 2], [1, 2, 3])
    """
    arr = _points(points).astype(np.float64)
    n = arr.shape[0]
    k = check_int(k, "k", minimum=1, example="8")
    if k > n - 1:
        raise ValueError(f"k={k} must be <= N - 1 = {n - 1} (the number of other points).")
    check_choice(mode, "mode", ("union", "mutual"))
    sq = np.sum(arr * arr, axis=1)
    nbrs = np.empty((n, k), np.int64)
    for lo in range(0, n, _CHUNK):
        rows = arr[lo : lo + _CHUNK]
        d2 = sq[lo : lo + _CHUNK, None] + sq[None, :] - 2.0 * rows @ arr.T
        d2 = np.maximum(d2, 0.0)
        d2[np.arange(rows.shape[0]), np.arange(lo, lo + rows.shape[0])] = np.inf  # not itself
        nbrs[lo : lo + rows.shape[0]] = np.argsort(d2, axis=1, kind="stable")[:, :k]
    i = np.repeat(np.arange(n), k)
    j = nbrs.ravel()
    lo_, hi_ = np.minimum(i, j), np.maximum(i, j)
    pairs, counts = np.unique(lo_ * n + hi_, return_counts=True)
    if mode == "mutual":
        pairs = pairs[counts == 2]
    return (pairs // n).astype(np.int32), (pairs % n).astype(np.int32)


def knn_graph(
    points,
    k: int,
    *,
    sigma=None,
    mode: Literal["union", "mutual"] = "union",
    dtype=None,
) -> EdgeGraph:
    """The k-nearest-neighbour graph of ``points`` as an :class:`~glrjax.EdgeGraph`.

    Args:
        points: node features, a concrete real array ``(N, C)`` (numpy or JAX).
        k: neighbours per point, 1 <= k <= N - 1.
        sigma: ``None`` for unit weights, or σ > 0 for Gaussian weights
            w_ij = exp(-‖p_i - p_j‖² / 2σ²) (σ may be traced: it does not change the
            structure).
        mode: ``"union"`` (i ~ j if either is among the other's k nearest; every node has
            degree >= k) or ``"mutual"`` (both).
        dtype: weight dtype (default: the points' floating dtype, else float32).

    Returns:
        An :class:`~glrjax.EdgeGraph` with N nodes, each undirected edge once (src < dst).

    >>> import numpy as np, glrjax
    >>> pts = np.random.default_rng(0).normal(size=(50, 2))
    >>> g = glrjax.knn_graph(pts, k=4, sigma=1.0)
    >>> g.num_nodes, bool(g.degree().min() > 0), g.max_neighbours() >= 4
    (50, True, True)
    """
    arr = _points(points)
    src, dst = knn_edges(arr, k, mode)
    if dtype is None:
        dtype = arr.dtype if np.issubdtype(arr.dtype, np.floating) else np.float32
    dtype = jax.dtypes.canonicalize_dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"dtype={dtype} must be a floating dtype, e.g. dtype=jnp.float32.")
    if sigma is None:
        w = jnp.ones(src.shape, dtype)
    else:
        check_scalar(sigma, "sigma", positive=True, example="1.0")
        p = jnp.asarray(arr, dtype)
        d = p[src] - p[dst]
        sigma = jnp.asarray(sigma, dtype)
        w = jnp.exp(-jnp.sum(d * d, axis=-1) / (2.0 * sigma**2))
    return EdgeGraph(jnp.asarray(src), jnp.asarray(dst), w, arr.shape[0])
