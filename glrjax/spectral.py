"""Spectral clustering of any glrjax graph: normalised operators, a matrix-free embedding, k-means.

For a graph with weights W and degrees D (a :class:`~glrjax.GridGraph` or
:class:`~glrjax.EdgeGraph`; only :func:`glrjax.degree` and :func:`glrjax.laplacian_matvec`
are used, so the operators are matrix-free and cost one Laplacian matvec each):

- :func:`normalized_adjacency_matvec`: D^{-1/2} W D^{-1/2} x = D^{-1/2}(D − L) D^{-1/2} x;
- :func:`normalized_laplacian_matvec`: L_sym x = x − D^{-1/2} W D^{-1/2} x;
- :func:`spectral_embedding`: the k eigenvectors of the normalised adjacency with the largest
  eigenvalues (the k smallest of L_sym), by LOBPCG
  (``jax.experimental.sparse.linalg.lobpcg_standard``) on the shifted operator
  I + D^{-1/2} W D^{-1/2} (eigenvalues in [0, 2]) or a dense ``eigh`` for small graphs, with
  the true residuals ‖A u − λ u‖ of the returned vectors in :class:`SpectralInfo`;
- :func:`kmeans`: k-means++ seeding and Lloyd iterations in JAX, best of ``n_init`` runs;
- :func:`spectral_clustering`: the embedding, its rows scaled (:class:`RowNormalized`, the
  Ng–Jordan–Weiss algorithm, or :class:`RandomWalk`, D^{-1/2}U as scikit-learn), then k-means.

**Bad input.** ``k`` must be a Python int in [1, N]. Weights known at trace time must be
>= 0, and every node must have a positive degree: an isolated node (degree 0) has no
normalised operator row, so a concrete graph with one raises a ``ValueError``. Under
``jit`` (weights traced, nothing can be raised) isolated nodes get a zero embedding row and
label -1, and ``info.isolated`` counts them. Each connected component contributes one
eigenvalue 1: a graph with more than k components cannot be split into k clusters this way.

>>> import jax, jax.numpy as jnp, glrjax
>>> src = jnp.array([0, 1, 0, 3, 4, 3, 2])  # two triangles joined by a weak edge 2-3
>>> dst = jnp.array([1, 2, 2, 4, 5, 5, 3])
>>> w = jnp.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.01])
>>> labels, emb, info = glrjax.spectral_clustering(glrjax.EdgeGraph(src, dst, w, 6), 2,
...                                                jax.random.key(0))
>>> bool(labels[0] == labels[1] == labels[2]), bool(labels[0] != labels[3])
(True, True)
>>> bool(info.converged), emb.shape
(True, (6, 2))
"""

from __future__ import annotations

import functools
import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental.sparse.linalg import lobpcg_standard

from glrjax._validate import check_graph_weights
from glrjax.graph import EdgeGraph, degree, laplacian_matvec

__all__ = [
    "Dense",
    "Lobpcg",
    "RandomWalk",
    "RowNormalized",
    "SpectralInfo",
    "kmeans",
    "normalized_adjacency_matvec",
    "normalized_laplacian_matvec",
    "rbf_graph",
    "spectral_clustering",
    "spectral_embedding",
]


# ----------------------------------------------------------------------------- strategies
class Lobpcg(NamedTuple):
    """Eigensolver: LOBPCG on the shifted normalised adjacency (matrix-free, scales).

    Needs 5·(k + oversample) < N (LOBPCG's own limit); smaller graphs take :class:`Dense`.
    """

    maxiter: int = 300  # LOBPCG iterations (static)
    oversample: int = 4  # extra block vectors: a bigger block converges in fewer steps


class Dense(NamedTuple):
    """Eigensolver: ``jnp.linalg.eigh`` of the materialised N×N matrix (small graphs only)."""


class RowNormalized(NamedTuple):
    """Embedding rows scaled to unit length before k-means (Ng, Jordan & Weiss 2002)."""


class RandomWalk(NamedTuple):
    """Embedding D^{-1/2} U: eigenvectors of the random-walk matrix D⁻¹W (scikit-learn's)."""


class SpectralInfo(NamedTuple):
    """What the embedding (and the clustering) report. Arrays, so it passes through jit."""

    eigenvalues: jax.Array  # (k,) of D^-1/2 W D^-1/2, descending (1 - these: of L_sym)
    residuals: jax.Array  # (k,) ‖A u − λ u‖ of each returned unit eigenvector, recomputed
    iterations: jax.Array  # int32: LOBPCG iterations (0 for Dense)
    converged: jax.Array  # bool: every residual <= tol
    isolated: jax.Array  # int32: nodes of degree 0 (zero embedding row, label -1)
    inertia: jax.Array  # k-means objective Σ ‖e_i − c(i)‖² (NaN from spectral_embedding)


# ----------------------------------------------------------------------------- operators
def _inv_sqrt_degree(graph):
    d = degree(graph)
    positive = d > 0
    return jnp.where(positive, 1.0 / jnp.sqrt(jnp.where(positive, d, 1.0)), 0.0), d


def normalized_adjacency_matvec(graph, x):
    """D^{-1/2} W D^{-1/2} x, matrix-free (one Laplacian matvec); isolated nodes give 0.

    ``x`` has the graph's node shape (``(N,)`` or ``(H, W)``), with optional leading batch
    axes (e.g. ``(k,) + node_shape`` for a block of k vectors).

    >>> import jax.numpy as jnp, glrjax
    >>> path = glrjax.EdgeGraph(jnp.array([0, 1]), jnp.array([1, 2]), jnp.ones(2), 3)
    >>> x = jnp.sqrt(jnp.array([1.0, 2.0, 1.0]))  # √d: the eigenvector of eigenvalue 1
    >>> bool(jnp.allclose(normalized_adjacency_matvec(path, x), x))
    True
    """
    s, d = _inv_sqrt_degree(graph)
    y = s * x
    return s * (d * y - laplacian_matvec(graph, y))


def normalized_laplacian_matvec(graph, x):
    """L_sym x = x − D^{-1/2} W D^{-1/2} x (isolated nodes: L_sym x = x there).

    >>> import jax.numpy as jnp, glrjax
    >>> path = glrjax.EdgeGraph(jnp.array([0, 1]), jnp.array([1, 2]), jnp.ones(2), 3)
    >>> x = jnp.sqrt(jnp.array([1.0, 2.0, 1.0]))
    >>> bool(jnp.abs(normalized_laplacian_matvec(path, x)).max() < 1e-6)
    True
    """
    return x - normalized_adjacency_matvec(graph, x)


def rbf_graph(points, gamma, neighbors: int | None = None) -> EdgeGraph:
    """An :class:`~glrjax.EdgeGraph` with RBF weights w_ij = exp(−γ‖p_i − p_j‖²).

    Args:
        points: ``(N, d)`` coordinates (concrete: the edge list is built with numpy).
        gamma: RBF scale γ > 0 (traced in the weights; gradients reach it and the points).
        neighbors: None for all N(N−1)/2 pairs (small N), or m for the symmetrised
            m-nearest-neighbour graph (an edge where either end is among the other's m
            nearest), O(N·m) edges.

    >>> import jax.numpy as jnp
    >>> g = rbf_graph(jnp.array([[0.0], [1.0], [2.0]]), 1.0)
    >>> g.src.tolist(), g.dst.tolist(), g.weights.round(4).tolist()
    ([0, 0, 1], [1, 2, 2], [0.3679, 0.0183, 0.3679])
    """
    pts = np.asarray(points)
    if pts.ndim != 2 or not np.issubdtype(pts.dtype, np.floating):
        raise ValueError(
            f"points must be a floating (N, d) array, got {pts.dtype}{list(pts.shape)}."
        )
    n = pts.shape[0]
    if n < 2:
        raise ValueError(f"points has {n} row; a graph needs at least 2 points.")
    if neighbors is None:
        src, dst = np.triu_indices(n, 1)
    else:
        m = _check_k(neighbors, n - 1, "neighbors")
        d2 = np.sum((pts[:, None, :] - pts[None, :, :]) ** 2, axis=-1)
        np.fill_diagonal(d2, np.inf)
        nn = np.argpartition(d2, m - 1, axis=1)[:, :m]
        i = np.repeat(np.arange(n), m)
        pairs = np.unique(np.sort(np.stack([i, nn.ravel()], 1), axis=1), axis=0)
        src, dst = pairs[:, 0], pairs[:, 1]
    p = jnp.asarray(points)
    d = p[src] - p[dst]
    w = jnp.exp(-jnp.asarray(gamma, p.dtype) * jnp.sum(d * d, axis=-1))
    return EdgeGraph(jnp.asarray(src, jnp.int32), jnp.asarray(dst, jnp.int32), w, n)


# ----------------------------------------------------------------------------- checks
def _check_k(k, n: int, name: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"{name}={k!r} must be a Python int (the number of clusters).")
    if not 1 <= k <= n:
        raise ValueError(f"{name}={k} must satisfy 1 <= {name} <= N = {n} (the number of nodes).")
    return int(k)


def _node_shape(graph) -> tuple[int, ...]:
    if not hasattr(graph, "weights") or not hasattr(graph, "node_shape"):
        raise TypeError(
            f"graph is a {type(graph).__name__}; pass a glrjax.GridGraph or glrjax.EdgeGraph."
        )
    shape = tuple(graph.node_shape)
    if tuple(degree(graph).shape) != shape:
        raise ValueError(
            f"graph has a batch of weights (degrees of shape {tuple(degree(graph).shape)}); "
            f"spectral clustering takes one graph: use jax.vmap over the batch."
        )
    return shape


def _check_weights(graph) -> None:
    w = graph.weights
    if isinstance(w, jax.core.Tracer):
        return
    if not np.issubdtype(np.asarray(w).dtype, np.floating):
        raise TypeError(f"graph weights have dtype {np.asarray(w).dtype}; use floating weights.")
    check_graph_weights(graph, "spectral clustering", "e.g. an RBF affinity exp(-gamma·d²).")
    d = np.asarray(degree(graph))
    if np.any(d <= 0):
        idx = np.flatnonzero(d.ravel() <= 0)
        raise ValueError(
            f"graph has {idx.size} isolated nodes (degree 0; first: {idx[:5].tolist()}); their "
            f"normalised operator is undefined. Connect them (e.g. a k-nearest-neighbour "
            f"graph) or drop them. (Under jit they would get label -1.)"
        )


# ----------------------------------------------------------------------------- embedding
def _default_tol(dtype) -> float:
    return 1e-4 if dtype == jnp.float32 else 1e-8


def spectral_embedding(graph, k: int, key=None, *, eigensolver=None, tol=None):
    """The k leading eigenvectors of D^{-1/2} W D^{-1/2}, shape ``node_shape + (k,)``.

    Args:
        graph: a :class:`~glrjax.GridGraph` or :class:`~glrjax.EdgeGraph` (one graph).
        k: number of eigenvectors, a Python int in [1, N].
        key: PRNG key of LOBPCG's random start (default ``jax.random.key(0)``).
        eigensolver: :class:`Lobpcg` (default when 5·(k + oversample) < N) or :class:`Dense`.
        tol: residual ‖A u − λ u‖ under which ``info.converged`` (default 1e-4 in float32,
            1e-8 in float64); traced.

    Returns:
        ``(U, info)``: orthonormal columns, each signed so its largest-magnitude entry is
        positive; ``info.eigenvalues`` descending and ``info.residuals`` recomputed.

    >>> import jax.numpy as jnp, glrjax
    >>> g = glrjax.GridGraph.window(8, 8, radius=1)
    >>> u, info = spectral_embedding(g, 2)
    >>> u.shape, bool(info.converged), round(float(info.eigenvalues[0]), 4)
    ((8, 8, 2), True, 1.0)
    """
    shape = _node_shape(graph)
    n = int(np.prod(shape))
    k = _check_k(k, n)
    _check_weights(graph)
    dtype = jnp.result_type(graph.weights.dtype, jnp.float32)
    tol = _default_tol(dtype) if tol is None else tol
    if eigensolver is None:
        eigensolver = Lobpcg() if 5 * (k + Lobpcg().oversample) < n else Dense()
    if not isinstance(eigensolver, (Lobpcg, Dense)):
        raise TypeError(
            f"eigensolver={eigensolver!r} must be glrjax.spectral.Lobpcg() or Dense() "
            f"(an instance, not the class)."
        )

    if isinstance(eigensolver, Lobpcg) and not 5 * (k + eigensolver.oversample) < n:
        raise ValueError(
            f"Lobpcg needs 5·(k + oversample) < N, got k={k}, oversample="
            f"{eigensolver.oversample}, N={n}; use eigensolver=Dense() for small graphs."
        )
    key = jax.random.key(0) if key is None else key
    return _embed(graph, key, jnp.asarray(tol, dtype), k=k, shape=shape, eigensolver=eigensolver)


@functools.partial(jax.jit, static_argnames=("k", "shape", "eigensolver"))
def _embed(graph, key, tol, *, k, shape, eigensolver):
    """The embedding's computation, jitted with the graph as an argument (not constants)."""
    n = int(np.prod(shape))
    dtype = tol.dtype

    def block(x):  # (N, m) -> (N, m): the normalised adjacency on m columns
        y = normalized_adjacency_matvec(graph, x.T.reshape((x.shape[1],) + shape))
        return y.reshape(x.shape[1], n).T

    if isinstance(eigensolver, Dense):
        mat = block(jnp.eye(n, dtype=dtype))
        vals, vecs = jnp.linalg.eigh(0.5 * (mat + mat.T))
        vals, vecs = vals[::-1][:k], vecs[:, ::-1][:, :k]
        iterations = jnp.zeros((), jnp.int32)
    else:
        m = k + eigensolver.oversample
        x0 = jax.random.normal(key, (n, m), dtype)
        ltol = tol / (10.0 * n * 4.0)  # its test: r < tol·10n(λ + ‖Av‖)
        vals, vecs, iterations = lobpcg_standard(
            lambda x: x + block(x), x0, m=eigensolver.maxiter, tol=ltol
        )
        order = jnp.argsort(-vals)[:k]
        vals, vecs = vals[order] - 1.0, vecs[:, order]
        iterations = jnp.asarray(iterations, jnp.int32)
    # Recompute the residuals on the unit vectors (certify; do not trust the solver's own).
    vecs = vecs / jnp.linalg.norm(vecs, axis=0, keepdims=True)
    av = block(vecs)
    lam = jnp.sum(vecs * av, axis=0)
    residuals = jnp.linalg.norm(av - lam * vecs, axis=0)
    order = jnp.argsort(-lam)
    vecs, lam, residuals = vecs[:, order], lam[order], residuals[order]
    pivot = jnp.argmax(jnp.abs(vecs), axis=0)
    vecs = vecs * jnp.sign(vecs[pivot, jnp.arange(k)])
    isolated = jnp.sum(degree(graph) <= 0, dtype=jnp.int32)
    info = SpectralInfo(
        eigenvalues=lam,
        residuals=residuals,
        iterations=iterations,
        converged=jnp.all(residuals <= tol) & jnp.all(jnp.isfinite(residuals)),
        isolated=isolated,
        inertia=jnp.asarray(jnp.nan, dtype),
    )
    return vecs.reshape(shape + (k,)), info


# ----------------------------------------------------------------------------- k-means
def _sq_dist(points, centers):
    return jnp.maximum(
        jnp.sum(points**2, 1)[:, None] - 2 * points @ centers.T + jnp.sum(centers**2, 1)[None],
        0.0,
    )


def _kmeans_pp(points, weights, k, key):
    """k-means++ seeding: each new center drawn with probability ∝ weight · D²."""
    n = points.shape[0]
    keys = jax.random.split(key, k)
    first = jax.random.choice(keys[0], n, p=weights / jnp.sum(weights))
    centers = jnp.zeros((k, points.shape[1]), points.dtype).at[0].set(points[first])
    d2 = _sq_dist(points, centers[:1])[:, 0]

    def body(j, carry):
        centers, d2 = carry
        p = weights * d2
        p = jnp.where(jnp.sum(p) > 0, p, weights)  # all points on the centers: any point
        idx = jax.random.choice(keys[j], n, p=p / jnp.sum(p))
        centers = centers.at[j].set(points[idx])
        d2 = jnp.minimum(d2, _sq_dist(points, points[idx][None])[:, 0])
        return centers, d2

    centers, _ = jax.lax.fori_loop(1, k, body, (centers, d2))
    return centers


def _lloyd(points, weights, centers, maxiter):
    k = centers.shape[0]

    def assign(centers):
        return jnp.argmin(_sq_dist(points, centers), axis=1)

    def cond(state):
        i, _, changed = state
        return (i < maxiter) & changed

    def body(state):
        i, centers, _ = state
        labels = assign(centers)
        onehot = jax.nn.one_hot(labels, k, dtype=points.dtype) * weights[:, None]
        count = jnp.sum(onehot, axis=0)
        sums = onehot.T @ points
        new = jnp.where(count[:, None] > 0, sums / jnp.maximum(count, 1e-30)[:, None], centers)
        return i + 1, new, jnp.any(new != centers)

    _, centers, _ = jax.lax.while_loop(cond, body, (0, centers, True))
    labels = assign(centers)
    inertia = jnp.sum(weights * jnp.min(_sq_dist(points, centers), axis=1))
    return labels, centers, inertia


def kmeans(points, k: int, key, *, n_init: int = 10, maxiter: int = 100, weights=None):
    """k-means (k-means++ seeding, Lloyd iterations), the best of ``n_init`` runs, in JAX.

    Args:
        points: ``(N, d)`` floating array.
        k: number of clusters, a Python int in [1, N].
        key: PRNG key.
        n_init, maxiter: restarts (run in parallel with vmap) and Lloyd steps per run.
        weights: optional ``(N,)`` nonnegative point weights (0 drops a point).

    Returns:
        ``(labels, centers, inertia)`` of the run with the lowest Σ wᵢ‖pᵢ − c(i)‖².

    >>> import jax, jax.numpy as jnp
    >>> pts = jnp.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]])
    >>> labels, centers, inertia = kmeans(pts, 2, jax.random.key(0))
    >>> bool(labels[0] == labels[1]), bool(labels[0] != labels[2])
    (True, True)
    """
    points = jnp.asarray(points)
    if points.ndim != 2 or not jnp.issubdtype(points.dtype, jnp.floating):
        raise ValueError(
            f"points must be a floating (N, d) array, got {points.dtype}{list(points.shape)}."
        )
    n = points.shape[0]
    k = _check_k(k, n)
    for name, v in (("n_init", n_init), ("maxiter", maxiter)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{name}={v!r} must be a Python int >= 1.")
    weights = jnp.ones(n, points.dtype) if weights is None else jnp.asarray(weights, points.dtype)
    return _kmeans(points, weights, key, k=k, n_init=int(n_init), maxiter=int(maxiter))


@functools.partial(jax.jit, static_argnames=("k", "n_init", "maxiter"))
def _kmeans(points, weights, key, *, k, n_init, maxiter):
    def run(key):
        return _lloyd(points, weights, _kmeans_pp(points, weights, k, key), maxiter)

    labels, centers, inertia = jax.vmap(run)(jax.random.split(key, n_init))
    best = jnp.argmin(inertia)
    return labels[best], centers[best], inertia[best]


# ----------------------------------------------------------------------------- clustering
_ROW_NORMALIZED = RowNormalized()


def spectral_clustering(
    graph,
    k: int,
    key,
    *,
    dim: int | None = None,
    scaling=_ROW_NORMALIZED,
    eigensolver=None,
    tol=None,
    n_init: int = 10,
    maxiter: int = 100,
):
    """Cluster the nodes of ``graph`` into k groups from its normalised spectral embedding.

    Args:
        graph: a :class:`~glrjax.GridGraph` or :class:`~glrjax.EdgeGraph` with weights
            >= 0 (an affinity: larger = more similar) and no isolated node.
        k: number of clusters, a Python int in [1, N].
        key: PRNG key (LOBPCG start and k-means seeding).
        dim: embedding dimension (default k).
        scaling: :class:`RowNormalized` (default; unit rows, Ng–Jordan–Weiss) or
            :class:`RandomWalk` (D^{-1/2}U, as scikit-learn's ``SpectralClustering``).
        eigensolver, tol: see :func:`spectral_embedding`.
        n_init, maxiter: see :func:`kmeans`.

    Returns:
        ``(labels, embedding, info)``: int32 labels of shape ``node_shape`` (-1 for an
        isolated node under jit), the embedding ``node_shape + (dim,)`` given to k-means,
        and a :class:`SpectralInfo` (``info.inertia`` is the k-means objective).
    """
    shape = _node_shape(graph)
    n = int(np.prod(shape))
    k = _check_k(k, n)
    dim = k if dim is None else _check_k(dim, n, "dim")
    if not isinstance(scaling, (RowNormalized, RandomWalk)):
        raise TypeError(
            f"scaling={scaling!r} must be glrjax.spectral.RowNormalized() or RandomWalk()."
        )
    k_eig, k_means = jax.random.split(key)
    u, info = spectral_embedding(graph, dim, k_eig, eigensolver=eigensolver, tol=tol)
    u = u.reshape(n, dim)
    d = degree(graph).reshape(n)
    keep = (d > 0).astype(u.dtype)
    if isinstance(scaling, RowNormalized):
        norms = jnp.linalg.norm(u, axis=1, keepdims=True)
        u = jnp.where(norms > 0, u / jnp.where(norms > 0, norms, 1.0), 0.0)
    else:
        s, _ = _inv_sqrt_degree(graph)
        u = u * s.reshape(n, 1)
    labels, _, inertia = kmeans(u, k, k_means, n_init=n_init, maxiter=maxiter, weights=keep)
    labels = jnp.where(keep > 0, labels, -1).astype(jnp.int32)
    return labels.reshape(shape), u.reshape(shape + (dim,)), info._replace(inertia=inertia)
