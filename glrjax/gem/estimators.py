"""Edge terms of an inverse, t_ij = (e_i − e_j)ᵀ(I + μL)⁻¹(e_i − e_j), by strategy objects.

GEM's E- and M-steps need the inverse only through these edge terms. An estimator is a
frozen object passed as one argument (``estimator=Dense()``) and says how they are computed:

- :class:`Dense`: Cholesky of the dense N×N matrix (small N; tests, references). 0 solves.
- :class:`Columns`: the N inverse columns by CG (exact up to the CG tolerance; what seed 000
  did, and why its unrolled network needed gigabytes). N solves.
- :class:`Probes`: P random Rademacher probes z_p (projected to zero mean, which changes no
  estimate since every e_i − e_j ⊥ 1 and only speeds CG), u_p = (I + μL)⁻¹z_p,
  t̂_ij = mean_p (z_pi − z_pj)(u_pi − u_pj). Unbiased; with b = (I + μL)⁻¹(e_i − e_j) its
  variance is (2‖b‖² + t_ij² − 2b_i² − 2b_j²)/P (:func:`probe_variance`): relative error
  ∝ 1/√P. The probes are drawn from uint32 bits, so they are the same whatever the dtype and
  the ``jax_enable_x64`` flag.
- :class:`Coloured`: structured probing (Tang & Saad, "A probing method for computing the
  diagonal of a matrix inverse", 2012). A distance-d colouring of the candidate graph
  (:func:`colouring`: no two nodes within d hops share a colour) gives one probe per colour,
  v_c = Σ_{k of colour c} e_k; with u_c = A⁻¹v_c, A = I + μL,
  t̂_ij = u_{c(i)}[i] − u_{c(i)}[j] + u_{c(j)}[j] − u_{c(j)}[i]. Exact up to the entries of
  A⁻¹ between nodes of one colour (more than d hops apart), which decay geometrically with
  distance; deterministic, and the number of solves is the number of colours, independent
  of N on a grid.

All but :class:`Dense` go through :func:`glrjax.glr_filter`, hence every gradient mode.

>>> import jax.numpy as jnp, glrjax
>>> from glrjax import gem
>>> g = glrjax.GridGraph.window(4, 4, radius=1)
>>> t, _ = gem.inverse_edge_terms(g, 1.0, gem.Dense())
>>> tc, _ = gem.inverse_edge_terms(g, 1.0, gem.Columns(), tol=1e-10)
>>> bool(jnp.allclose(t, tc, atol=1e-6)), t.shape
(True, (4, 4, 4))
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from glrjax.glr import glr_filter
from glrjax.gradients import GradientMode, Implicit
from glrjax.iterate import Info

from ._common import concrete, edge_differences, edge_index, exact_info, summary, valid_mask

__all__ = [
    "Coloured",
    "Columns",
    "Dense",
    "EdgeTermEstimator",
    "Probes",
    "colouring",
    "inverse_edge_terms",
    "probe_variance",
    "probes",
    "resolve_estimator",
]

ROUTES = ("dense", "columns", "probes")


class EdgeTermEstimator:
    """Base class of the edge-term estimators (frozen dataclasses).

    A subclass with probe vectors defines :meth:`vectors` (``(P,) + node_shape``) and
    :meth:`read` (the edge terms from the probes z and the solutions u = (I + μL)⁻¹z).
    """

    def vectors(self, graph, dtype):  # pragma: no cover - abstract
        raise NotImplementedError

    def read(self, graph, z, u):  # pragma: no cover - abstract
        raise NotImplementedError

    def num_solves(self, graph) -> int:
        """Right-hand sides of the CG solve (0 for :class:`Dense`)."""
        return int(self.vectors(graph, jnp.float32).shape[0])


def _register(cls):
    return dataclasses.dataclass(frozen=True)(cls)


@_register
class Dense(EdgeTermEstimator):
    """Cholesky of the dense N×N matrix I + μL (small N).

    >>> Dense()
    Dense()
    """

    def num_solves(self, graph) -> int:
        return 0


@_register
class Columns(EdgeTermEstimator):
    """The N columns of the identity as probes, solved by CG: exact up to its tolerance.

    >>> Columns().num_solves(__import__("glrjax").GridGraph.window(3, 3, radius=1))
    9
    """

    def vectors(self, graph, dtype):
        n = math.prod(graph.node_shape)
        return jnp.eye(n, dtype=dtype).reshape((n,) + tuple(graph.node_shape))

    def read(self, graph, z, u):
        n = math.prod(graph.node_shape)
        return column_terms(graph, u.reshape(n, n))


@_register
class Probes(EdgeTermEstimator):
    """``num`` Rademacher probes from ``key`` (an int seed or a JAX key): unbiased, random.

    >>> Probes(num=8, key=1)
    Probes(num=8, key=1)
    """

    num: int = 16  # P, the number of probes (right-hand sides)
    key: object = 0  # int seed or JAX key; the same key gives the same probes

    def __post_init__(self):
        if isinstance(self.num, bool) or not isinstance(self.num, numbers.Integral):
            raise TypeError(f"Probes(num={self.num!r}) must be a Python int, e.g. num=16.")
        if self.num < 1:
            raise ValueError(f"Probes(num={self.num}) must be >= 1, e.g. num=16.")

    def vectors(self, graph, dtype):
        return probes(self.key, self.num, graph.node_shape, dtype)

    def read(self, graph, z, u):
        return pair_terms(graph, z, u)

    def num_solves(self, graph) -> int:
        return int(self.num)


@_register
class Coloured(EdgeTermEstimator):
    """Probing from a distance-``distance`` colouring of the graph (Tang & Saad 2012).

    One probe per colour class (the sum of its nodes' indicator vectors). The error of an
    edge term comes from entries of (I + μL)⁻¹ between nodes of one colour, more than
    ``distance`` hops apart; larger ``distance``: more colours (solves), smaller error.
    With ``signs=0`` the estimate is deterministic and biased (those entries are all
    positive and add up). With ``signs=S > 0`` each colour's indicator entries get random
    signs ±1, S draws from ``key`` (probing combined with Hutchinson's estimator, as in
    Stathopoulos et al.'s hierarchical probing): unbiased, the far entries add up
    incoherently; S × colours solves. The colouring is computed once per graph structure,
    in numpy, at trace time (:func:`colouring`).

    >>> import glrjax
    >>> Coloured(distance=2).num_solves(glrjax.GridGraph.window(16, 16, radius=1))
    9
    >>> Coloured(distance=2, signs=2).num_solves(glrjax.GridGraph.window(16, 16, radius=1))
    18
    """

    distance: int = 2  # d: nodes within d hops of each other get different colours
    signs: int = 0  # S: draws of random signs inside the colour classes (0: none, biased)
    key: int = 0  # seed of the signs

    def __post_init__(self):
        d = self.distance
        if isinstance(d, bool) or not isinstance(d, numbers.Integral):
            raise TypeError(f"Coloured(distance={d!r}) must be a Python int, e.g. distance=2.")
        if d < 1:
            raise ValueError(
                f"Coloured(distance={d}) must be >= 1 (an edge's two ends need different "
                "colours), e.g. distance=2."
            )
        s = self.signs
        if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0:
            raise ValueError(f"Coloured(signs={s!r}) must be an int >= 0, e.g. signs=2.")

    def _signs(self, n):
        """(max(S, 1), N) ±1 signs (all +1 when S = 0), numpy, from ``key``."""
        if self.signs == 0:
            return np.ones((1, n))
        rng = np.random.default_rng(int(self.key))
        return np.where(rng.integers(0, 2, (self.signs, n)) == 0, 1.0, -1.0)

    def vectors(self, graph, dtype):
        colours = colouring(graph, self.distance)
        n, count = colours.size, int(colours.max()) + 1
        signs = self._signs(n)
        v = np.zeros((signs.shape[0], count, n))
        v[:, colours, np.arange(n)] = signs
        v = v.reshape(-1, n)
        v -= v.mean(axis=1, keepdims=True)  # ⊥ 1: the same estimates, faster CG
        v = jnp.asarray(v, dtype).reshape((v.shape[0],) + tuple(graph.node_shape))
        # A barrier keeps XLA from constant-folding reductions of this (colours × N)
        # literal at compile time: 78 s for 13 × 2·10⁶ without it, 1.5 s with it.
        return jax.lax.optimization_barrier(v)

    def read(self, graph, z, u):
        colours = colouring(graph, self.distance)
        n, count = colours.size, int(colours.max()) + 1
        src, dst = edge_index(graph)
        ci, cj = colours[src], colours[dst]
        rounds = max(self.signs, 1)
        u = u.reshape(rounds, count, n)
        t_i, t_j = u[:, ci, src] - u[:, ci, dst], u[:, cj, dst] - u[:, cj, src]
        if self.signs:  # (R,) + edge shape; numpy: gathered at trace time, not folded by XLA
            signs = self._signs(n)
            t_i = jnp.asarray(signs[:, src], u.dtype) * t_i
            t_j = jnp.asarray(signs[:, dst], u.dtype) * t_j
        t = jnp.mean(t_i + t_j, axis=0)
        return jnp.where(jnp.asarray(valid_mask(graph)), t, jnp.zeros((), t.dtype))

    def num_solves(self, graph) -> int:
        return (int(colouring(graph, self.distance).max()) + 1) * max(self.signs, 1)


def resolve_estimator(estimator, route=None, num_probes=None, key=None, *, default, where):
    """The estimator, from ``estimator`` or the deprecated ``route``/``num_probes``/``key``.

    ``default`` is used when nothing is given. Mixing ``estimator`` with the old keywords is
    an error; the old keywords alone warn (DeprecationWarning) and map to
    ``Dense()``/``Columns()``/``Probes(num_probes, key)``.
    """
    old = {k: v for k, v in (("route", route), ("num_probes", num_probes), ("key", key))}
    given = {k: v for k, v in old.items() if v is not None}
    if estimator is not None:
        if given:
            raise ValueError(
                f"{where}: pass the estimator alone (estimator={estimator!r}); "
                f"{', '.join(given)} are its deprecated spellings."
            )
        if isinstance(estimator, str):  # estimator="probes": a route name in the new slot
            return resolve_estimator(None, estimator, default=default, where=where)
        if not isinstance(estimator, EdgeTermEstimator):
            raise TypeError(
                f"{where}: estimator={estimator!r} must be an edge-term estimator: "
                "glrjax.gem.Dense(), Columns(), Probes(num=16, key=0) or Coloured(distance=2)."
            )
        return estimator
    if not given:
        return default
    warnings.warn(
        f"{where}: route=/num_probes=/key= are deprecated; pass one estimator, e.g. "
        "estimator=glrjax.gem.Probes(num=16, key=0), Dense(), Columns() or Coloured(distance=2).",
        DeprecationWarning,
        stacklevel=3,
    )
    if route is None:
        route = "probes" if isinstance(default, Probes) else None
    if route is None:  # only num_probes/key given with a non-probe default
        route = "probes"
    if route not in ROUTES:
        raise ValueError(f"route={route!r} is not one of {ROUTES}.")
    if route == "dense":
        return Dense()
    if route == "columns":
        return Columns()
    base = default if isinstance(default, Probes) else Probes()
    return Probes(
        num=base.num if num_probes is None else num_probes, key=base.key if key is None else key
    )


# ------------------------------------------------------------------------ read-offs


def column_terms(graph, u):
    """M_ii + M_jj − M_ij − M_ji for every edge, from the N×N matrix ``u``."""
    i, j = edge_index(graph)
    diag = jnp.diagonal(u)
    t = diag[i] + diag[j] - u[i, j] - u[j, i]
    return jnp.where(jnp.asarray(valid_mask(graph)), t, jnp.zeros((), t.dtype))


def pair_terms(graph, z, u):
    """mean_p (z_pi − z_pj)(u_pi − u_pj) over the probes on axis 0."""
    return jnp.mean(edge_differences(graph, z) * edge_differences(graph, u), axis=0)


def probes(key, num_probes: int, node_shape, dtype=jnp.float32):
    """``num_probes`` Rademacher vectors, each projected to zero mean, ``(P,) + node_shape``.

    ``key`` is an int seed or a JAX key; the same key gives the same probes, whatever
    ``dtype`` and the ``jax_enable_x64`` flag (the signs come from uint32 bits).

    >>> z = probes(0, 4, (3, 3), jnp.float64)
    >>> z.shape, bool(jnp.allclose(z.sum(axis=(1, 2)), 0.0))
    ((4, 3, 3), True)
    """
    if isinstance(key, numbers.Integral):
        key = jax.random.key(int(key))
    bits = jax.random.bits(key, (num_probes,) + tuple(node_shape), jnp.uint32)
    z = jnp.where(bits >> 31 == 0, 1.0, -1.0).astype(dtype)
    axes = tuple(range(1, z.ndim))
    return z - jnp.mean(z, axis=axes, keepdims=True)


# ------------------------------------------------------------------------ colouring


@functools.lru_cache(maxsize=64)
def _colouring_cached(n: int, src: bytes, dst: bytes, distance: int) -> np.ndarray:
    src = np.frombuffer(src, np.int64)
    dst = np.frombuffer(dst, np.int64)
    keep = src != dst
    src, dst = src[keep], dst[keep]
    # Symmetric adjacency as CSR (numpy only).
    a = np.concatenate([src, dst])
    b = np.concatenate([dst, src])
    order = np.lexsort((b, a))
    a, b = a[order], b[order]
    start = np.searchsorted(a, np.arange(n + 1))
    nbrs = [np.unique(b[start[i] : start[i + 1]]) for i in range(n)]
    colours = np.full(n, -1, np.int64)
    for v in range(n):  # greedy, natural (row-major) order
        ball = {v}
        frontier = {v}
        for _ in range(distance):
            nxt = set()
            for u in frontier:
                nxt.update(nbrs[u].tolist())
            frontier = nxt - ball
            ball |= frontier
        used = {int(colours[u]) for u in ball if colours[u] >= 0}
        c = 0
        while c in used:
            c += 1
        colours[v] = c
    colours.setflags(write=False)
    return colours


def colouring(graph, distance: int) -> np.ndarray:
    """A distance-``distance`` colouring of the candidate graph: numpy int ``(N,)``.

    Greedy colouring (row-major node order) of the ``distance``-th power of the graph of
    every candidate edge (weights ignored): nodes within ``distance`` hops of each other get
    different colours. On a radius-r window grid this uses about (d·r + 1)² colours, whatever
    the grid size. Computed in numpy at trace time and cached per structure.

    >>> import glrjax
    >>> c = colouring(glrjax.GridGraph.window(6, 6, radius=1), 1)
    >>> int(c.max()) + 1, c.reshape(6, 6)[:2].tolist()
    (4, [[0, 1, 0, 1, 0, 1], [2, 3, 2, 3, 2, 3]])
    """
    n = math.prod(graph.node_shape)
    src, dst = edge_index(graph)
    mask = valid_mask(graph)
    s = np.ascontiguousarray(src[mask], np.int64)
    d = np.ascontiguousarray(dst[mask], np.int64)
    return _colouring_cached(n, s.tobytes(), d.tobytes(), int(distance))


# ------------------------------------------------------------------------ the terms


def inverse_edge_terms(
    graph,
    mu,
    estimator: EdgeTermEstimator | None = None,
    *,
    tol=1e-6,
    maxiter: int = 200,
    precond="jacobi",
    alpha=None,
    beta=None,
    gradient: GradientMode = Implicit(),
    route: str | None = None,
    num_probes: int | None = None,
    key=None,
) -> tuple[jax.Array, Info]:
    """t_ij = (e_i − e_j)ᵀ(I + μL)⁻¹(e_i − e_j) for every edge, shaped like ``graph.weights``.

    Args:
        graph: one graph (no batch axes).
        mu: μ ≥ 0 (traced).
        estimator: :class:`Dense`, :class:`Columns`, :class:`Probes` (default,
            ``Probes(num=16, key=0)``) or :class:`Coloured` (see the module docstring).
        tol, maxiter, precond, alpha, beta, gradient: passed to :func:`glrjax.glr_filter`
            for the CG estimators (``alpha``/``beta``: learned CG steps of shape (maxiter,)).
        route, num_probes, key: deprecated spellings of ``estimator``.

    Returns:
        ``(terms, info)``; ``info`` summarises the CG solves. For :class:`Dense`,
        ``info.converged`` is False when the factorisation failed (e.g. a traced μ < 0).

    >>> import glrjax
    >>> g = glrjax.GridGraph.window(1, 2, radius=1)  # one edge of weight 1: I + μL
    >>> round(float(inverse_edge_terms(g, 1.0, Dense())[0][0, 0, 0]), 6)  # 2/(1 + 2μ)
    0.666667
    """
    estimator = resolve_estimator(
        estimator, route, num_probes, key, default=Probes(), where="inverse_edge_terms"
    )
    arr = concrete(mu)
    if arr is not None and arr.size and not (np.all(np.isfinite(arr)) and np.all(arr >= 0)):
        raise ValueError(
            f"mu={mu} must be finite and >= 0 (I + μL is then positive definite), e.g. mu=1.0."
        )
    w = graph.weights
    dtype = w.dtype
    mu = jnp.asarray(mu, dtype)
    n = math.prod(graph.node_shape)
    if isinstance(estimator, Dense):
        a = jnp.eye(n, dtype=dtype) + mu * graph.to_dense()
        chol = jnp.linalg.cholesky(a)
        u = jax.scipy.linalg.cho_solve((chol, True), jnp.eye(n, dtype=dtype))
        terms = column_terms(graph, u)
        ok = jax.lax.stop_gradient(jnp.all(jnp.isfinite(terms)))
        return terms, exact_info(dtype, ok)
    z = estimator.vectors(graph, dtype)
    u, info = glr_filter(
        z,
        graph,
        mu,
        tol=tol,
        maxiter=maxiter,
        precond=precond,
        alpha=alpha,
        beta=beta,
        gradient=gradient,
    )
    return estimator.read(graph, z, u), summary(info)


def probe_variance(graph, mu):
    """Per-edge variance of the one-probe estimate of :class:`Probes` (dense; small graphs).

    With b = (I + μL)⁻¹(e_i − e_j) and t = b_i − b_j, the estimate (aᵀz)(bᵀz) of a
    Rademacher z has variance 2‖b‖² + t² − 2b_i² − 2b_j²; P probes divide it by P.
    """
    n = math.prod(graph.node_shape)
    dtype = graph.weights.dtype
    a = jnp.eye(n, dtype=dtype) + jnp.asarray(mu, dtype) * graph.to_dense()
    inv = jnp.linalg.inv(a)
    i, j = (jnp.asarray(v) for v in edge_index(graph))
    b = inv[..., i] - inv[..., j]  # (N,) + edge shape: column b of every edge
    t = jnp.take_along_axis(b, i[None], 0)[0] - jnp.take_along_axis(b, j[None], 0)[0]
    bi = jnp.take_along_axis(b, i[None], 0)[0]
    bj = jnp.take_along_axis(b, j[None], 0)[0]
    var = 2.0 * jnp.sum(b * b, axis=0) + t * t - 2.0 * bi * bi - 2.0 * bj * bj
    return jnp.where(jnp.asarray(valid_mask(graph)), var, 0.0)
