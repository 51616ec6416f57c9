"""GMRF graph learning by generalized EM (GEM), and the unrolled GEM network (seed 000).

**Model.** y = x + n with x ~ N(0, Θ⁻¹), Θ = L(w) + δI (L = D − W, w ≥ 0) and
n ~ N(0, σ²I). GEM alternates

- **E-step** (:func:`e_step`): the posterior mean x̂ = (I + σ²Θ)⁻¹y — a GLR filter
  (I + μL)⁻¹y/(1 + σ²δ) with μ = σ²/(1 + σ²δ), solved by CG — and the posterior
  covariance C = (Θ + σ⁻²I)⁻¹ = μ(I + μL)⁻¹. The M-step needs S̃ = mean_k x̂_k x̂_kᵀ + C only
  through its **edge terms** s_ij = S̃_ii + S̃_jj − 2S̃_ij = mean_k (x̂_ki − x̂_kj)² + C_ij-term
  (``posterior_covariance=False`` drops C).
- **M-step** (:func:`m_step`): maximise log det Θ(w) − tr(Θ(w)S̃) − γ‖w‖₀ over w ≥ 0 by
  proximal gradient (:func:`glrjax.pgd` with :func:`glrjax.prox.nonneg_l0`), with
  ∂/∂w_ij = (e_i − e_j)ᵀΘ⁻¹(e_i − e_j) − s_ij (:func:`m_step_gradient`).

**Edge terms of an inverse** (:func:`inverse_edge_terms`): t_ij = (e_i − e_j)ᵀ(I + μL)⁻¹(e_i − e_j)
for every edge, three routes, chosen by ``route=``:

- ``"dense"``: Cholesky of the dense N×N matrix (small N; tests, references);
- ``"columns"``: the N inverse columns by CG (N right-hand sides; what seed 000 did — exact
  up to CG tolerance, and the reason its unrolled network needed gigabytes);
- ``"probes"``: P random Rademacher probes z_p (projected to zero mean, which changes no
  estimate since every e_i − e_j ⊥ 1 and only speeds CG), u_p = (I + μL)⁻¹z_p by one batched CG,
  t̂_ij = mean_p (z_pi − z_pj)(u_pi − u_pj). Unbiased; with b = (I + μL)⁻¹(e_i − e_j) its
  variance is (2‖b‖² + t_ij² − 2b_i² − 2b_j²)/P (:func:`probe_variance`), so the relative error
  falls as 1/√P. Probes come from a fixed key: the estimate is deterministic.

Θ⁻¹ = δ⁻¹(I + δ⁻¹L)⁻¹ and C = μ(I + μL)⁻¹, so both go through the same function (and through
:func:`glrjax.glr_filter`, hence every gradient mode).

**M-step metric and step.** Plain PGD with one step size crawls: the curvature of
−log det Θ along w_ij is t_ij², which ranges over orders of magnitude across edges.
:func:`m_step` uses a diagonal metric fixed at the M-step's start, D = 1/max(s, t₀)²
(t₀: the Θ⁻¹ edge terms there; ``metric="diagonal"``): w ← prox_{ηDγ‖·‖₀}(w + ηD∇), i.e.
:func:`glrjax.pgd` on grad_f = −D∇ with per-edge ℓ0 weights γD. On a kept edge of an
M-step optimum t = s, so D is the diagonal Newton step there; away from it the larger of
s, t₀ gives the smaller step. Off the diagonal the Hessian still couples each edge to its
neighbours: measured λ_max(D^½HD^½) ≈ 6 on radius-1 and ≈ 17 on radius-2 window graphs
(8 and 24 neighbours), so the PGD step is η = ``step``/(number of neighbours), stable for
``step`` below about 2·neighbours/λ_max ≈ 2.7; default 1.5. The ℓ0 threshold √(2ηγD) is a
cut when the quadratic model's loss of dropping the edge is below γ, whatever the scale
of w.

**The unrolled GEM network** (:func:`gem_network`, :class:`GEMNetConfig`,
:class:`GEMNetParams`) — see its docstring: N_GEM unrolled iterations of an E-step of
N_CG(E) learned-step CG steps and an M-step of N_PGD PGD steps whose Θ⁻¹ terms use
N_CG(inv) CG steps on random probes, with per-iteration μ, γ, PGD step and CG α/β.

>>> import jax.numpy as jnp, numpy as np, glrjax
>>> from glrjax import gem
>>> g = glrjax.GridGraph.window(4, 4, radius=1)
>>> t, _ = gem.inverse_edge_terms(g, 1.0, route="dense")
>>> tc, _ = gem.inverse_edge_terms(g, 1.0, route="columns", tol=1e-10)
>>> bool(jnp.allclose(t, tc, atol=1e-6)), t.shape
(True, (4, 4, 4))
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from typing import NamedTuple

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np

from glrjax import prox as _prox
from glrjax._validate import check_float_array, check_maxiter, check_tol
from glrjax.glr import _check_weights_nonnegative, glr_filter
from glrjax.gradients import (
    Checkpointed,
    GradientMode,
    Implicit,
    Unrolled,
    check_gradient,
)
from glrjax.graph import AbstractGraph, GridGraph, check_graph
from glrjax.iterate import Info
from glrjax.proximal import pgd

__all__ = [
    "EStep",
    "GEMHistory",
    "GEMNetConfig",
    "GEMNetInfo",
    "GEMNetParams",
    "chebyshev_steps",
    "e_step",
    "edge_differences",
    "gem_compare_case",
    "gem_fit",
    "gem_network",
    "gem_network_init",
    "gem_reference_gradient",
    "inverse_edge_terms",
    "l0_gate",
    "m_step",
    "m_step_gradient",
    "m_step_objective",
    "marginal_objective",
    "probe_variance",
    "probes",
]

ROUTES = ("dense", "columns", "probes")
METRICS = ("diagonal", "identity")
RELAXATIONS = ("straight_through", "smooth", "hard")
DENSE_OBJECTIVE_LIMIT = 1024  # gem_fit records its (dense) objective up to this N
FLOOR = 1e-3  # the metric D = 1/max(s, FLOOR·mean s)² never divides by a vanishing s


# ----------------------------------------------------------------------------- checks


def _check_graph(graph, name: str = "graph"):
    check_graph(graph, name)
    if graph.batch_shape:
        raise ValueError(
            f"{name} has batch axes {graph.batch_shape}; GEM learns one graph from the samples "
            "on the leading axis of y. Use jax.vmap for a batch of graphs."
        )
    check_float_array(graph.weights, f"{name}.weights")
    _check_weights_nonnegative(graph.weights)


def _concrete(value):
    if isinstance(value, jax.core.Tracer):
        return None
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None


def _check_scalar(value, name: str, *, positive: bool, example: str):
    if isinstance(value, bool) or not (isinstance(value, numbers.Real) or hasattr(value, "dtype")):
        raise TypeError(f"{name}={value!r} must be a real number, e.g. {name}={example}.")
    arr = _concrete(value)
    if arr is not None and arr.size:
        ok = np.all(arr > 0) if positive else np.all(arr >= 0)
        if not ok:
            rel = "> 0" if positive else ">= 0"
            raise ValueError(f"{name}={value} must be {rel}, e.g. {name}={example}.")


def _check_choice(value, name: str, choices):
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not one of {choices}.")


def _check_samples(y, graph, name: str = "y"):
    y = check_float_array(y, name)
    shape = graph.node_shape
    core = len(shape)
    if y.ndim < core or tuple(y.shape[-core:]) != shape or y.ndim > core + 1:
        raise ValueError(
            f"{name} has shape {y.shape}; GEM needs samples (S, {', '.join(map(str, shape))}) "
            f"or one sample {shape} on this graph."
        )
    return y if y.ndim == core + 1 else y[None]


def _check_terms(terms, graph, name: str = "terms"):
    terms = check_float_array(terms, name)
    if terms.shape != graph.weights.shape:
        raise ValueError(
            f"{name} has shape {terms.shape}; edge terms are shaped like graph.weights "
            f"{graph.weights.shape}."
        )
    return terms


def _with_weights(graph, w):
    return graph.with_weights(w)


def _summary(info: Info) -> Info:
    """One Info for a batch of solves: most iterations, largest residual, all converged."""
    info = jax.lax.stop_gradient(info)
    return Info(
        iterations=jnp.max(info.iterations),
        residual=jnp.max(info.residual),
        converged=jnp.all(info.converged),
        result=jnp.max(info.result),
    )


def _exact_info(dtype) -> Info:
    return Info(
        iterations=jnp.asarray(0, jnp.int32),
        residual=jnp.zeros((), dtype),
        converged=jnp.asarray(True),
        result=jnp.asarray(0, jnp.int32),
    )


# ------------------------------------------------------------------------- edge terms


def edge_differences(graph, x):
    """x_i − x_j for every edge (i, j), shaped like ``graph.weights`` (zero off the grid).

    Args:
        graph: a :class:`~glrjax.GridGraph` (differences ``(..., K, H, W)``: entry k at
            pixel p is x(p) − x(p + o_k)) or an :class:`~glrjax.EdgeGraph` (``(..., E)``).
        x: signals ``(..., H, W)`` or ``(..., N)``.

    >>> import jax.numpy as jnp, glrjax
    >>> g = glrjax.GridGraph.window(1, 3, radius=1)
    >>> edge_differences(g, jnp.array([[0.0, 1.0, 3.0]]))[0].tolist()  # offset (0, 1)
    [[-1.0, -2.0, 0.0]]
    """
    return graph.edge_difference(x)


def _edge_index(graph):
    """Static node indices (i, j) of every edge entry, shaped like the weights' core."""
    src, dst = graph.edge_index()  # off the grid i = j = 0: the term is then exactly 0
    return jnp.asarray(src, jnp.int32), jnp.asarray(dst, jnp.int32)


def _column_terms(graph, u):
    """M_ii + M_jj − M_ij − M_ji for every edge, from the N×N matrix ``u``."""
    i, j = _edge_index(graph)
    diag = jnp.diagonal(u)
    return diag[i] + diag[j] - u[i, j] - u[j, i]


def _pair_terms(graph, z, u):
    """mean_p (z_pi − z_pj)(u_pi − u_pj) over the probes on axis 0."""
    return jnp.mean(edge_differences(graph, z) * edge_differences(graph, u), axis=0)


def probes(key, num_probes: int, node_shape, dtype=jnp.float32):
    """``num_probes`` Rademacher vectors, each projected to zero mean, ``(P,) + node_shape``.

    ``key`` is an int seed or a JAX key; the same key gives the same probes.

    >>> z = probes(0, 4, (3, 3), jnp.float64)
    >>> z.shape, bool(jnp.allclose(z.sum(axis=(1, 2)), 0.0))
    ((4, 3, 3), True)
    """
    if isinstance(key, numbers.Integral):
        key = jax.random.key(int(key))
    z = jax.random.rademacher(key, (num_probes,) + tuple(node_shape), dtype)
    axes = tuple(range(1, z.ndim))
    return z - jnp.mean(z, axis=axes, keepdims=True)


def inverse_edge_terms(
    graph,
    mu,
    *,
    route: str = "probes",
    num_probes: int = 16,
    key=0,
    tol=1e-6,
    maxiter: int = 200,
    precond="jacobi",
    alpha=None,
    beta=None,
    gradient: GradientMode = Implicit(),
) -> tuple[jax.Array, Info]:
    """t_ij = (e_i − e_j)ᵀ(I + μL)⁻¹(e_i − e_j) for every edge, shaped like ``graph.weights``.

    Args:
        graph: one graph (no batch axes).
        mu: μ ≥ 0 (traced).
        route: ``"dense"`` (Cholesky, small N), ``"columns"`` (N CG solves of the identity's
            columns) or ``"probes"`` (``num_probes`` Rademacher probes, CG; see the module
            docstring for the estimator and its variance).
        num_probes, key: probe count and seed (``"probes"`` only).
        tol, maxiter, precond, alpha, beta, gradient: passed to :func:`glrjax.glr_filter`
            for the CG routes (``alpha``/``beta``: learned CG steps of shape (maxiter,)).

    Returns:
        ``(terms, info)``; ``info`` summarises the CG solves (exact for ``"dense"``).

    >>> import glrjax
    >>> g = glrjax.GridGraph.window(1, 2, radius=1)  # one edge of weight 1: I + μL
    >>> round(float(inverse_edge_terms(g, 1.0, route="dense")[0][0, 0, 0]), 6)  # 2/(1 + 2μ)
    0.666667
    """
    _check_choice(route, "route", ROUTES)
    w = graph.weights
    dtype = w.dtype
    mu = jnp.asarray(mu, dtype)
    n = math.prod(graph.node_shape)
    if route == "dense":
        a = jnp.eye(n, dtype=dtype) + mu * graph.to_dense()
        chol = jnp.linalg.cholesky(a)
        u = jax.scipy.linalg.cho_solve((chol, True), jnp.eye(n, dtype=dtype))
        return _column_terms(graph, u), _exact_info(dtype)
    if route == "columns":
        z = jnp.eye(n, dtype=dtype).reshape((n,) + graph.node_shape)
    else:
        z = probes(key, num_probes, graph.node_shape, dtype)
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
    if route == "columns":
        return _column_terms(graph, u.reshape(n, n)), _summary(info)
    return _pair_terms(graph, z, u), _summary(info)


def probe_variance(graph, mu):
    """Per-edge variance of the one-probe estimate of :func:`inverse_edge_terms` (dense).

    With b = (I + μL)⁻¹(e_i − e_j) and t = b_i − b_j, the estimate (aᵀz)(bᵀz) of a
    Rademacher z has variance 2‖b‖² + t² − 2b_i² − 2b_j²; P probes divide it by P.
    Small graphs only (N×N).
    """
    n = math.prod(graph.node_shape)
    dtype = graph.weights.dtype
    a = jnp.eye(n, dtype=dtype) + jnp.asarray(mu, dtype) * graph.to_dense()
    inv = jnp.linalg.inv(a)
    i, j = _edge_index(graph)
    b = inv[..., i] - inv[..., j]  # (N,) + edge shape: column b of every edge
    t = jnp.take_along_axis(b, i[None], 0)[0] - jnp.take_along_axis(b, j[None], 0)[0]
    bi = jnp.take_along_axis(b, i[None], 0)[0]
    bj = jnp.take_along_axis(b, j[None], 0)[0]
    var = 2.0 * jnp.sum(b * b, axis=0) + t * t - 2.0 * bi * bi - 2.0 * bj * bj
    return jnp.where(i == j, 0.0, var)


# ----------------------------------------------------------------------------- E-step


class EStep(NamedTuple):
    """What the E-step gives the M-step."""

    mean: jax.Array  # x̂ = (I + σ²Θ)⁻¹y, shape (S,) + node_shape
    terms: jax.Array  # S̃ edge terms s_ij = mean_k (x̂_ki − x̂_kj)² (+ C terms), like weights
    covariance: jax.Array  # C edge terms (zeros when posterior_covariance=False)
    info: Info  # the posterior-mean CG solve


def e_step(
    y,
    graph,
    sigma,
    delta,
    *,
    posterior_covariance: bool = True,
    route: str = "dense",
    num_probes: int = 32,
    key=0,
    tol=1e-6,
    maxiter: int = 200,
    gradient: GradientMode = Implicit(),
) -> EStep:
    """Posterior mean x̂ = (I + σ²Θ)⁻¹y by CG and the edge terms of S̃ = mean x̂x̂ᵀ + C.

    Args:
        y: samples ``(S,) + node_shape`` (or one sample ``node_shape``).
        graph: the current graph (weights ≥ 0, no batch axes).
        sigma: noise standard deviation σ > 0.
        delta: δ > 0 in Θ = L + δI.
        posterior_covariance: include C = (Θ + σ⁻²I)⁻¹ in S̃ (else S̃ = mean x̂x̂ᵀ).
        route, num_probes, key: how the C terms are computed (:func:`inverse_edge_terms`).
        tol, maxiter, gradient: CG settings of every solve.

    >>> import jax.numpy as jnp, glrjax
    >>> g = glrjax.GridGraph.window(3, 3, radius=1)
    >>> e = e_step(jnp.ones((2, 3, 3)), g, 0.5, 0.1)
    >>> e.mean.shape, e.terms.shape, bool(jnp.all(e.terms > 0) == jnp.all(e.covariance > 0))
    ((2, 3, 3), (4, 3, 3), True)
    """
    _check_graph(graph)
    _check_scalar(sigma, "sigma", positive=True, example="0.1")
    _check_scalar(delta, "delta", positive=True, example="0.01")
    _check_choice(route, "route", ROUTES)
    y = _check_samples(y, graph)
    dtype = y.dtype
    sigma2 = jnp.asarray(sigma, dtype) ** 2
    delta = jnp.asarray(delta, dtype)
    mu = sigma2 / (1.0 + sigma2 * delta)  # (I + σ²Θ) = (1 + σ²δ)(I + μL)
    graph = _with_weights(graph, graph.weights.astype(dtype))
    x, info = glr_filter(
        y / (1.0 + sigma2 * delta), graph, mu, tol=tol, maxiter=maxiter, gradient=gradient
    )
    sample = jnp.mean(edge_differences(graph, x) ** 2, axis=0)
    if posterior_covariance:  # C = (Θ + σ⁻²I)⁻¹ = μ(I + μL)⁻¹
        cov, _ = inverse_edge_terms(
            graph,
            mu,
            route=route,
            num_probes=num_probes,
            key=key,
            tol=tol,
            maxiter=maxiter,
            gradient=gradient,
        )
        cov = mu * cov
    else:
        cov = jnp.zeros_like(sample)
    return EStep(mean=x, terms=sample + cov, covariance=cov, info=_summary(info))


# ----------------------------------------------------------------------------- M-step


def m_step_objective(graph, terms, delta):
    """log det Θ(w) − Σ_ij w_ij s_ij (dense Cholesky; small graphs).

    The M-step objective log det Θ − tr(ΘS̃) up to its w-independent part −δ tr S̃:
    tr(L(w)S̃) = Σ_ij w_ij (S̃_ii + S̃_jj − 2S̃_ij). Differentiable in the weights (a
    reference for :func:`m_step_gradient`).
    """
    w = graph.weights
    n = math.prod(graph.node_shape)
    theta = graph.to_dense() + jnp.asarray(delta, w.dtype) * jnp.eye(n, dtype=w.dtype)
    chol = jnp.linalg.cholesky(theta)
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol)))
    return logdet - jnp.sum(w * terms)


def _theta_inverse_terms(graph, delta, **kw):
    """(e_i − e_j)ᵀΘ⁻¹(e_i − e_j) with Θ⁻¹ = δ⁻¹(I + δ⁻¹L)⁻¹."""
    t, info = inverse_edge_terms(graph, 1.0 / delta, **kw)
    return t / delta, info


def m_step_gradient(
    graph,
    terms,
    delta,
    *,
    route: str = "dense",
    num_probes: int = 32,
    key=0,
    tol=1e-6,
    maxiter: int = 200,
    gradient: GradientMode = Implicit(),
) -> tuple[jax.Array, Info]:
    """∂/∂w_ij of log det Θ(w) − tr(Θ(w)S̃): (e_i − e_j)ᵀΘ⁻¹(e_i − e_j) − s_ij.

    Args:
        graph: current graph; terms: S̃ edge terms (:attr:`EStep.terms`); delta: δ > 0.
        route, num_probes, key, tol, maxiter, gradient: see :func:`inverse_edge_terms`.

    Returns:
        ``(gradient, info)``, the gradient shaped like the weights (0 off the grid).

    >>> import jax, jax.numpy as jnp, glrjax
    >>> g = glrjax.GridGraph.window(2, 2, radius=1, dtype=jnp.float64)
    >>> s = jnp.full(g.weights.shape, 0.3)
    >>> d, _ = m_step_gradient(g, s, 0.1)
    >>> ref = jax.grad(lambda w: m_step_objective(glrjax.GridGraph.window(2, 2, 1, w), s, 0.1))(
    ...     g.weights)
    >>> bool(jnp.allclose(d, ref))
    True
    """
    _check_graph(graph)
    _check_scalar(delta, "delta", positive=True, example="0.01")
    terms = _check_terms(terms, graph)
    delta = jnp.asarray(delta, graph.weights.dtype)
    r, info = _theta_inverse_terms(
        graph,
        delta,
        route=route,
        num_probes=num_probes,
        key=key,
        tol=tol,
        maxiter=maxiter,
        gradient=gradient,
    )
    return jnp.where(_valid(graph), r - terms, 0.0), info


def _metric(terms, r0, valid):
    """D = 1/max(s, t₀, FLOOR·mean s)² on the valid edge entries (1 elsewhere).

    t₀: the Θ⁻¹ edge terms at the M-step's start. Near an optimum t = s on kept edges and
    D is the diagonal Newton step; far from it the larger of the two gives the smaller step
    (growth of a too-small weight by about η·w per step, a too-large one shrinks by η·w).
    """
    count = jnp.maximum(jnp.sum(valid), 1)
    mean = jnp.sum(jnp.where(valid, terms, 0.0)) / count
    floor = FLOOR * jnp.where(mean > 0, mean, 1.0)
    s = jnp.maximum(jnp.maximum(terms, r0), floor)
    return jnp.where(valid, 1.0 / (s * s), 1.0)


def _neighbours(graph):
    """The largest number of neighbours of a node (the unweighted degree of the candidates)."""
    return jnp.maximum(jnp.asarray(graph.max_neighbours(), graph.weights.dtype), 1.0)


def _valid(graph):
    return jnp.asarray(graph.valid_mask())


def m_step(
    graph,
    terms,
    delta,
    gamma,
    *,
    steps: int = 20,
    step=1.5,
    metric: str = "diagonal",
    route: str = "dense",
    num_probes: int = 32,
    key=0,
    tol=1e-6,
    maxiter: int = 200,
    pgd_tol=0.0,
    gradient: GradientMode = Unrolled(),
    cg_gradient: GradientMode = Implicit(),
) -> tuple[AbstractGraph, Info]:
    """PGD on log det Θ(w) − tr(Θ(w)S̃) − γ‖w‖₀ over w ≥ 0, from the current weights.

    Args:
        graph: the current graph (the start point).
        terms: S̃ edge terms from :func:`e_step`.
        delta: δ > 0; gamma: ℓ0 weight γ ≥ 0 (traced).
        steps: PGD steps (static); pgd_tol: stop earlier on PGD's relative residual.
        step: PGD step η (scalar, traced).
        metric: ``"diagonal"`` (D = 1/max(s, t₀)², module docstring) or ``"identity"``.
        route, num_probes, key, tol, maxiter: the Θ⁻¹ terms (:func:`m_step_gradient`).
        gradient: gradient mode of the PGD loop; cg_gradient: of the CG solves.

    Returns:
        ``(graph, info)`` — the graph with the new weights and PGD's :class:`~glrjax.Info`.

    >>> import jax.numpy as jnp, glrjax
    >>> g = glrjax.GridGraph.window(3, 3, radius=1, dtype=jnp.float64)
    >>> s = jnp.where(g.weights > 0, 0.5, 0.0).at[0, 0, 0].set(5.0)  # one rough edge
    >>> new, info = m_step(g, s, 0.1, 0.05, steps=30)
    >>> up = m_step_objective(new, s, 0.1) > m_step_objective(g, s, 0.1)
    >>> float(new.weights[0, 0, 0]), bool(up)  # the rough edge is cut; the objective rose
    (0.0, True)
    """
    _check_graph(graph)
    _check_scalar(delta, "delta", positive=True, example="0.01")
    _check_scalar(gamma, "gamma", positive=False, example="0.05")
    _check_scalar(step, "step", positive=True, example="1.5")
    _check_choice(metric, "metric", METRICS)
    _check_choice(route, "route", ROUTES)
    steps = check_maxiter(steps, "steps")
    check_tol(pgd_tol, "pgd_tol")
    gradient = check_gradient(gradient)
    terms = _check_terms(terms, graph)
    dtype = graph.weights.dtype
    delta = jnp.asarray(delta, dtype)
    terms = terms.astype(dtype)
    kw = dict(route=route, num_probes=num_probes, key=key, tol=tol, maxiter=maxiter)
    if metric == "diagonal":
        r0, _ = _theta_inverse_terms(graph, delta, gradient=cg_gradient, **kw)
        d = _metric(terms, r0, _valid(graph))
    else:
        d = jnp.ones_like(terms)

    def grad_f(w, args):  # minimise −(log det Θ − tr ΘS̃): descent along D∇
        s, d, delta = args
        r, _ = _theta_inverse_terms(_with_weights(graph, w), delta, gradient=cg_gradient, **kw)
        return d * (s - r)

    w, info = pgd(
        grad_f,
        _prox.nonneg_l0,
        graph.weights,
        (terms, d, delta),
        jnp.asarray(gamma, dtype) * d,
        step=jnp.asarray(step, dtype) / _neighbours(graph),
        tol=pgd_tol,
        maxiter=steps,
        gradient=gradient,
    )
    return _with_weights(graph, w), info


# ---------------------------------------------------------------------------- GEM fit


class GEMHistory(NamedTuple):
    """One entry per GEM iteration (after its M-step)."""

    # 2·mean_k log p(y_k | w) − γ‖w‖₀ without the constant N·log 2π: the penalized marginal
    # log-likelihood that GEM increases (dense; NaN when not recorded)
    objective: jax.Array
    edges: jax.Array  # int32: edges with w > 0
    change: jax.Array  # ‖w_t − w_{t−1}‖ / ‖w_{t−1}‖


def marginal_objective(y, graph, sigma, delta, gamma):
    """2·mean_k log p(y_k | w) − γ‖w‖₀ + N log 2π, y ~ N(0, Θ⁻¹ + σ²I) (dense; small N).

    The quantity GEM increases: −log det(Θ⁻¹ + σ²I) − mean_k y_kᵀ(Θ⁻¹ + σ²I)⁻¹y_k − γ‖w‖₀.
    """
    w = graph.weights
    dtype = w.dtype
    n = math.prod(graph.node_shape)
    eye = jnp.eye(n, dtype=dtype)
    theta = graph.to_dense() + jnp.asarray(delta, dtype) * eye
    cov = jnp.linalg.inv(theta) + jnp.asarray(sigma, dtype) ** 2 * eye
    chol = jnp.linalg.cholesky(0.5 * (cov + cov.T))
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol)))
    ys = y.reshape(y.shape[0], n).T
    sol = jax.scipy.linalg.solve_triangular(chol, ys, lower=True)
    quad = jnp.sum(sol * sol) / y.shape[0]
    return -logdet - quad - jnp.asarray(gamma, dtype) * graph.num_edges()


@functools.partial(
    jax.jit,
    static_argnames=(
        "iterations",
        "steps",
        "metric",
        "route",
        "posterior_covariance",
        "num_probes",
        "maxiter",
        "objective",
    ),
)
def _gem_fit(
    y,
    graph,
    sigma,
    delta,
    gamma,
    step,
    tol,
    key,
    *,
    iterations,
    steps,
    metric,
    route,
    posterior_covariance,
    num_probes,
    maxiter,
    objective,
):
    # One probe set for the C terms (E-step) and the Θ⁻¹ terms (M-step): their errors are
    # then correlated and largely cancel in the M-step gradient t(Θ⁻¹) − s, which depends on
    # Θ⁻¹ − C (a control variate); independent probes leave a persistent per-edge bias.
    kw = dict(route=route, num_probes=num_probes, tol=tol, maxiter=maxiter, key=key)

    def body(w, _):
        g = _with_weights(graph, w)
        e = e_step(y, g, sigma, delta, posterior_covariance=posterior_covariance, **kw)
        g_new, _ = m_step(g, e.terms, delta, gamma, steps=steps, step=step, metric=metric, **kw)
        w_new = g_new.weights
        if objective:
            obj = marginal_objective(y, g_new, sigma, delta, gamma)
        else:
            obj = jnp.asarray(jnp.nan, w.dtype)
        change = jnp.linalg.norm(w_new - w) / jnp.maximum(jnp.linalg.norm(w), 1e-30)
        return w_new, GEMHistory(obj, g_new.num_edges(), change)

    w, history = jax.lax.scan(body, graph.weights, None, length=iterations)
    return w, history


def gem_fit(
    y,
    graph0,
    *,
    sigma,
    delta,
    gamma,
    iterations: int = 10,
    steps: int = 20,
    step=1.5,
    metric: str = "diagonal",
    route: str = "dense",
    posterior_covariance: bool = True,
    num_probes: int = 32,
    key=0,
    tol=1e-6,
    maxiter: int = 200,
    objective: bool | None = None,
) -> tuple[AbstractGraph, GEMHistory]:
    """Learn a sparse GMRF graph from noisy samples by GEM (E-step, then M-step, repeated).

    Args:
        y: noisy samples ``(S,) + node_shape`` of y = x + n.
        graph0: the starting graph (e.g. the full window graph with unit weights); its
            structure (offsets or edge list) is the candidate edge set.
        sigma: noise σ > 0; delta: δ > 0 in Θ = L + δI; gamma: ℓ0 weight γ ≥ 0.
        iterations: GEM iterations; steps, step, metric: each M-step's PGD (:func:`m_step`).
        route: ``"dense"``, ``"columns"`` or ``"probes"`` for the C and Θ⁻¹ edge terms.
        posterior_covariance: S̃ with C (the EM E-step) or without.
        num_probes, key: probe route settings; tol, maxiter: every CG solve.
        objective: record the objective (:func:`marginal_objective`, dense); default when
            N ≤ 1024.

    Returns:
        ``(graph, history)``: the learned graph and a :class:`GEMHistory`.

    Runs jit-compiled (one compilation per static configuration).

    >>> import numpy as np, jax.numpy as jnp, glrjax
    >>> g0 = glrjax.GridGraph.window(4, 4, radius=1, dtype=jnp.float64)
    >>> y = np.random.default_rng(0).standard_normal((50, 4, 4))
    >>> g, hist = gem_fit(y, g0, sigma=0.3, delta=0.1, gamma=0.5, iterations=3)
    >>> hist.edges.shape, bool(hist.edges[-1] < glrjax.num_edges(g0))
    ((3,), True)
    """
    _check_graph(graph0, "graph0")
    for name, v, pos, ex in [
        ("sigma", sigma, True, "0.1"),
        ("delta", delta, True, "0.01"),
        ("gamma", gamma, False, "0.05"),
        ("step", step, True, "1.5"),
    ]:
        _check_scalar(v, name, positive=pos, example=ex)
    _check_choice(route, "route", ROUTES)
    _check_choice(metric, "metric", METRICS)
    iterations = check_maxiter(iterations, "iterations")
    steps = check_maxiter(steps, "steps")
    maxiter = check_maxiter(maxiter)
    check_tol(tol)
    y = _check_samples(y, graph0)
    dtype = y.dtype
    graph0 = _with_weights(graph0, graph0.weights.astype(dtype))
    n = math.prod(graph0.node_shape)
    if objective is None:
        objective = n <= DENSE_OBJECTIVE_LIMIT
    if isinstance(key, numbers.Integral):
        key = jax.random.key(int(key))
    cast = lambda v: jnp.asarray(v, dtype)  # noqa: E731
    w, history = _gem_fit(
        y,
        graph0,
        cast(sigma),
        cast(delta),
        cast(gamma),
        cast(step),
        cast(tol),
        key,
        iterations=iterations,
        steps=steps,
        metric=metric,
        route=route,
        posterior_covariance=bool(posterior_covariance),
        num_probes=int(num_probes),
        maxiter=maxiter,
        objective=bool(objective),
    )
    return _with_weights(graph0, w), history


# ------------------------------------------------------------------ the GEM network


def l0_gate(relaxation: str = "straight_through", temperature: float = 0.25):
    """The M-step prox nonneg_l0 with a relaxation that gives γ a gradient.

    The hard threshold x·[x² > 2tλ] (x = max(v, 0)) has zero derivative in λ almost
    everywhere: trained through it, γ never moves (a likely reason seed 000's network never
    cut an edge). The relaxations use the gate σ((x²/(2tλ) − 1)/τ), τ = ``temperature``
    (relative to the threshold, so it does not depend on the scale of w):

    - ``"straight_through"`` (training): the forward pass is the exact hard threshold —
      cut edges are exactly zero and counted as cut. The backward pass (a straight-through
      estimator, Bengio et al. 2013) takes the derivative in x from the hard threshold
      (1 on kept entries, 0 on cut ones) and the derivative in the threshold 2tλ (so in γ
      and the step) from the smooth gate x·σ(...): out = hard + soft − stop_gradient(soft)
      with x held constant in soft. The smooth gate's own x-derivative peaks near
      1 + 2/τ > 1 at the threshold, and a chain of PGD steps multiplies such factors:
      training through it blew the early iterations' gradients up by ~10² per GEM
      iteration.
    - ``"smooth"``: x·σ(...) forwards and backwards: differentiable, so its gradients
      match finite differences (tests); weights below the threshold are small, not zero.
    - ``"hard"``: :func:`glrjax.prox.nonneg_l0` itself (zero gradient to γ).

    Returns ``prox(x, lam, t)``.

    >>> import jax, jax.numpy as jnp
    >>> prox = l0_gate()
    >>> prox(jnp.array([-1.0, 0.5, 2.0]), 1.0, 1.0).tolist()  # threshold √2
    [0.0, 0.0, 2.0]
    >>> float(jax.grad(lambda lam: prox(jnp.array([1.5]), lam, 1.0).sum())(1.0)) < 0
    True
    """
    _check_choice(relaxation, "relaxation", RELAXATIONS)
    if not temperature > 0:
        raise ValueError(f"temperature={temperature} must be > 0, e.g. 0.25.")
    tau = float(temperature)

    def prox(x, lam, t=1.0):
        x = jnp.maximum(x, 0.0)
        hard = _prox.l0(x, lam, t)
        if relaxation == "hard":
            return hard
        thr = 2.0 * jnp.asarray(t, x.dtype) * jnp.asarray(lam, x.dtype)
        # The gate is 1 to float precision for x² ≥ (1 + 40τ)·thr; outside that band it is
        # a constant, so x²/thr (whose derivative may overflow) is never differentiated there.
        if relaxation == "straight_through":
            # Derivatives: in x those of the hard threshold (1 on kept, 0 on cut entries),
            # so a chain of PGD steps does not amplify them; in the threshold those of the gate.
            x = jax.lax.stop_gradient(x)
        x2 = x * x
        band = (x2 < (1.0 + 40.0 * tau) * thr) & (thr > 0)
        ratio = jnp.where(band, x2, 0.0) / jnp.where(band, thr, 1.0)
        gate = jnp.where(band, jax.nn.sigmoid((ratio - 1.0) / tau), 1.0)
        soft = x * gate
        if relaxation == "smooth":
            return soft
        return hard + (soft - jax.lax.stop_gradient(soft))

    return prox


@dataclasses.dataclass(frozen=True)
class GEMNetConfig:
    """Static configuration of the unrolled GEM network (the columns of seed 000's table).

    Attributes:
        gem_iterations: N_GEM, outer GEM iterations (unrolled).
        pgd_steps: N_PGD, PGD steps of each M-step.
        cg_inv: N_CG(inv), CG steps of each Θ⁻¹ probe solve (Jacobi preconditioned).
        cg_e: N_CG(E), CG steps of each E-step (posterior mean, and C probes).
        second_order: the training gradient flows through the M-step's inner gradient
            (True) or treats it as a constant direction (False, ``stop_gradient``).
        num_probes: P, random probes of the Θ⁻¹ (and C) edge terms.
        route: ``"probes"`` or the exact ``"columns"`` (N CG right-hand sides) / ``"dense"``.
        posterior_covariance: S̃ with C (its probes share the E-step CG).
        relaxation, temperature: the ℓ0 prox relaxation (:func:`l0_gate`).
        delta: δ in Θ = L + δI.
        radius: window radius of the graph (2: the 11,346-edge graph at 32×32).
        learn_cg: learn CG α/β per step (else CG computes them).
        metric: M-step metric (``"diagonal"``: D = 1/max(s, t₀)², see :func:`m_step`).
        probe_seed: the fixed probe key.
        remat: under :class:`~glrjax.Checkpointed`, also rematerialise each GEM iteration.
        max_ratio: each M-step caps the weights at ``max_ratio`` × their mean at its start
            (a box constraint in the prox). A single noisy sample makes the GMRF likelihood
            favour contracting some edges (w → ∞); one runaway edge would then dominate
            the graph's scale. ``math.inf`` disables the cap.
        tol: relative-residual tolerance of every inner CG (0: always the full counts).
    """

    gem_iterations: int = 3
    pgd_steps: int = 5
    cg_inv: int = 4
    cg_e: int = 3
    second_order: bool = True
    num_probes: int = 16
    route: str = "probes"
    posterior_covariance: bool = True
    relaxation: str = "straight_through"
    temperature: float = 0.25
    delta: float = 1e-2
    radius: int = 2
    learn_cg: bool = True
    metric: str = "diagonal"
    probe_seed: int = 0
    remat: bool = True
    max_ratio: float = 10.0
    tol: float = 0.0

    def __post_init__(self):
        for name in ("gem_iterations", "pgd_steps", "cg_inv", "cg_e", "num_probes", "radius"):
            check_maxiter(getattr(self, name), name)
        _check_choice(self.route, "route", ROUTES)
        _check_choice(self.relaxation, "relaxation", RELAXATIONS)
        _check_choice(self.metric, "metric", METRICS)
        if not self.delta > 0:
            raise ValueError(f"GEMNetConfig(delta={self.delta}) must be > 0, e.g. 1e-2.")
        if not self.temperature > 0:
            raise ValueError(f"GEMNetConfig(temperature={self.temperature}) must be > 0.")
        if not self.tol >= 0:
            raise ValueError(f"GEMNetConfig(tol={self.tol}) must be >= 0.")
        if not self.max_ratio > 1:
            raise ValueError(f"GEMNetConfig(max_ratio={self.max_ratio}) must be > 1, e.g. 10.")


jax.tree_util.register_static(GEMNetConfig)


class GEMNetParams(NamedTuple):
    """Learned parameters of the GEM network (a pytree; positive ones as logarithms)."""

    q: jax.Array  # (C, M) metric factor: initial w_ij = c·exp(−‖Qᵀ(f_i − f_j)‖²)
    log_scale: jax.Array  # () log c, the scale of the initial weights
    # (N_GEM + 1,) E-step GLR strengths μ̄_t = μ_t·d_max (the last: the output filter)
    log_mu: jax.Array
    log_gamma: jax.Array  # (N_GEM,) ℓ0 weights γ_t
    log_step: jax.Array  # (N_GEM,) PGD steps η_t
    # CG steps as logarithms (α, β > 0 in CG; an optimizer step is then a relative change)
    log_e_alpha: jax.Array | None  # (N_GEM + 1, N_CG(E)) E-step CG log α (None: computed)
    log_e_beta: jax.Array | None  # (N_GEM + 1, N_CG(E)) E-step CG log β
    log_inv_alpha: jax.Array | None  # (N_GEM, N_CG(inv)) Θ⁻¹-probe CG log α
    log_inv_beta: jax.Array | None  # (N_GEM, N_CG(inv)) Θ⁻¹-probe CG log β


class GEMNetInfo(NamedTuple):
    """What the network reports (leading axes: the batch of graphs)."""

    edges: jax.Array  # (..., N_GEM) int32: edges left after each GEM iteration's M-step
    weights: jax.Array  # (..., N_GEM + 1, K, H, W): initial weights, then after each M-step
    info: Info  # the output E-step's CG


def _pgd_mode(gradient: GradientMode, config: GEMNetConfig) -> GradientMode:
    """The M-step's mode: Implicit becomes a Neumann series (see :func:`gem_network`)."""
    if not isinstance(gradient, Implicit):
        return gradient
    # GMRES (jax.scipy) transposes its operator, and the M-step's contains the inner CG
    # solves' while loops, which JAX cannot transpose; the fixed-point map is a contraction
    # (PGD with a stable step), so its Neumann series converges. With second_order=False the
    # Hessian is dropped and ∂F/∂w is singular on kept edges: zero terms (Jacobian-free
    # backprop), the first-order approximation.
    terms = config.pgd_steps if config.second_order else 0
    return Implicit(solver="neumann", maxiter=terms, on_failure=gradient.on_failure)


def _net_terms(g, mu, z, route, maxiter, alpha, beta, precond, gradient, tol):
    """Edge terms of (I + μL)⁻¹ in the network: probes z, or the exact routes."""
    if route == "probes":
        u, info = glr_filter(
            z,
            g,
            mu,
            tol=tol,
            maxiter=maxiter,
            precond=precond,
            alpha=alpha,
            beta=beta,
            gradient=gradient,
        )
        return _pair_terms(g, z, u), info
    return inverse_edge_terms(
        g,
        mu,
        route=route,
        tol=tol,
        maxiter=maxiter,
        precond=precond,
        alpha=alpha,
        beta=beta,
        gradient=gradient,
    )


def _row(a, t):
    """exp of row t of a log schedule (None: CG computes its steps)."""
    return None if a is None else jnp.exp(a[t])


def _mean_weight(w, valid):
    """Mean edge weight over the valid stencil entries (the scale of the graph)."""
    return jnp.sum(jnp.where(valid, w, 0.0)) / jnp.maximum(jnp.sum(valid), 1)


def _relative_mu(log_mu, g):
    """μ = exp(log μ̄)/d_max: the eigenvalues of μL then lie in [0, 2μ̄] on every graph.

    The M-step changes the scale of w by orders of magnitude (and differently on each
    image); relative to the largest weighted degree, μ̄ keeps its meaning, and the E-step
    operator I + μL has its spectrum in [1, 1 + 2μ̄] (Gershgorin), so learned CG steps
    tuned on that interval stay stable on unseen graphs.
    """
    d_max = jnp.max(g.degree())
    return jnp.exp(log_mu).astype(g.weights.dtype) / jnp.where(d_max > 0, d_max, 1.0)


def _gem_single(params: GEMNetParams, y, features, config: GEMNetConfig, gradient):
    """The network on one graph: y (S, H, W) samples, features (C, H, W)."""
    dtype = y.dtype
    s_count = y.shape[0]
    base = GridGraph.mahalanobis(features, params.q.astype(dtype), config.radius)
    offsets, h, w_ = base.offsets, base.height, base.width
    valid = jnp.asarray(base.valid_mask())
    delta = jnp.asarray(config.delta, dtype)
    key = jax.random.key(config.probe_seed)
    # One probe set for C and Θ⁻¹: correlated errors cancel in t(Θ⁻¹) − s (see gem_fit).
    z_c = z_r = probes(key, config.num_probes, (h, w_), dtype)
    gate = l0_gate(config.relaxation, config.temperature)

    def prox(x, args, t):  # the relaxed nonneg-ℓ0 prox, then the cap (a box)
        lam, cap = args
        out = gate(x, lam, t)
        return out if math.isinf(config.max_ratio) else jnp.minimum(out, cap)

    pgd_mode = _pgd_mode(gradient, config)
    pc = config.posterior_covariance
    stacked = pc and config.route == "probes"  # C probes ride along in the E-step CG

    def graph_of(w):
        return base.with_weights(w)

    def correction_rhs(g, mu):
        # The E-step CG starts from y: x̂ = y + u with (I + μL)u = −μLy. A few steps from
        # zero lose the image's smooth content (their polynomial is far from 1/λ near λ = 1);
        # the correction's right-hand side has none.
        return -mu * g.laplacian_matvec(y)

    def gem_iteration(w, row):
        log_mu, log_gamma, log_step, ea, eb, ia, ib = row
        g = graph_of(w)
        mu = _relative_mu(log_mu, g)
        rhs = jnp.concatenate([correction_rhs(g, mu), z_c]) if stacked else correction_rhs(g, mu)
        sol, _ = glr_filter(
            rhs, g, mu, tol=config.tol, maxiter=config.cg_e, alpha=ea, beta=eb, gradient=gradient
        )
        x = y + sol[:s_count]
        s = jnp.mean(edge_differences(g, x) ** 2, axis=0)
        if stacked:
            s = s + mu * _pair_terms(g, z_c, sol[s_count:])
        elif pc:
            c, _ = _net_terms(
                g, mu, z_c, config.route, config.cg_e, ea, eb, None, gradient, config.tol
            )
            s = s + mu * c

        def theta_terms(w, ia, ib):
            r, _ = _net_terms(
                graph_of(w),
                1.0 / delta,
                z_r,
                config.route,
                config.cg_inv,
                ia,
                ib,
                "jacobi",
                gradient,
                config.tol,
            )
            return r / delta

        if config.metric == "diagonal":
            d = _metric(s, theta_terms(w, ia, ib), valid)
        else:
            d = jnp.ones_like(s)
        if not config.second_order:  # the metric is part of the inner gradient
            d = jax.lax.stop_gradient(d)

        def grad_f(w, args):
            s, d, ia, ib = args
            out = d * (s - theta_terms(w, ia, ib))
            return out if config.second_order else jax.lax.stop_gradient(out)

        gamma = jnp.exp(log_gamma).astype(dtype)
        eta = jnp.exp(log_step).astype(dtype) / (2 * len(offsets))
        cap = jnp.asarray(min(config.max_ratio, 1e30), dtype) * _mean_weight(w, valid)
        w, _ = pgd(
            grad_f,
            prox,
            w,
            (s, d, ia, ib),
            (gamma * d, cap),
            step=eta,
            tol=0.0,
            maxiter=config.pgd_steps,
            gradient=pgd_mode,
        )
        return w, (w, graph_of(w).num_edges())

    if config.remat and isinstance(gradient, Checkpointed):
        gem_iteration = jax.checkpoint(gem_iteration)

    n = config.gem_iterations

    def rows(a):
        return None if a is None else jnp.exp(a[:n])

    xs = (
        params.log_mu[:n],
        params.log_gamma,
        params.log_step,
        rows(params.log_e_alpha),
        rows(params.log_e_beta),
        rows(params.log_inv_alpha),
        rows(params.log_inv_beta),
    )
    w0 = jnp.exp(params.log_scale).astype(dtype) * base.weights
    # The outer loop is a scan (one compiled body): it is unrolled for differentiation
    # like any scan, with per-iteration parameters as its inputs.
    w, (history, edges) = jax.lax.scan(gem_iteration, w0, xs)
    g = graph_of(w)
    mu = _relative_mu(params.log_mu[n], g)
    u, info = glr_filter(
        correction_rhs(g, mu),
        g,
        mu,
        tol=config.tol,
        maxiter=config.cg_e,
        alpha=_row(params.log_e_alpha, n),
        beta=_row(params.log_e_beta, n),
        gradient=gradient,
    )
    x = y + u
    weights = jnp.concatenate([w0[None], history])
    return x, GEMNetInfo(edges=edges, weights=weights, info=_summary(info))


def _check_net_inputs(params, y, features, config):
    if not isinstance(config, GEMNetConfig):
        raise TypeError(f"config must be a GEMNetConfig, got {type(config).__name__}.")
    if not isinstance(params, GEMNetParams):
        raise TypeError(
            f"params must be a GEMNetParams (from gem_network_init), got {type(params).__name__}."
        )
    y = check_float_array(y, "y")
    features = check_float_array(features, "features")
    if y.ndim not in (3, 4):
        raise ValueError(
            f"y has shape {y.shape}; the network needs samples (S, H, W) of one graph or "
            "(B, S, H, W) for B graphs."
        )
    if features.ndim != y.ndim or features.shape[-2:] != y.shape[-2:]:
        raise ValueError(
            f"features have shape {features.shape}; with y {y.shape} they need "
            f"{'(B, ' if y.ndim == 4 else '('}C, {y.shape[-2]}, {y.shape[-1]})."
        )
    if y.ndim == 4 and features.shape[0] != y.shape[0]:
        raise ValueError(f"features batch {features.shape[0]} != y batch {y.shape[0]}.")
    g, k = config.gem_iterations, None
    expected = {"log_mu": (g + 1,), "log_gamma": (g,), "log_step": (g,), "log_scale": ()}
    if config.learn_cg:
        expected |= {"log_e_alpha": (g + 1, config.cg_e), "log_e_beta": (g + 1, config.cg_e)}
        expected |= {"log_inv_alpha": (g, config.cg_inv), "log_inv_beta": (g, config.cg_inv)}
    for name, shape in expected.items():
        v = getattr(params, name)
        if v is None or tuple(jnp.shape(v)) != shape:
            raise ValueError(
                f"params.{name} has shape {k if v is None else jnp.shape(v)}; this config "
                f"needs {shape}. Build params with gem_network_init(config, ...)."
            )
    if jnp.ndim(params.q) != 2 or jnp.shape(params.q)[0] != features.shape[-3]:
        raise ValueError(
            f"params.q has shape {jnp.shape(params.q)}; features with "
            f"C={features.shape[-3]} channels need (C, M)."
        )
    return y, features.astype(y.dtype)


def gem_network(
    params: GEMNetParams,
    y,
    features,
    config: GEMNetConfig,
    *,
    gradient: GradientMode = Unrolled(),
) -> tuple[jax.Array, GEMNetInfo]:
    """The unrolled GEM network: denoised samples and the edges left per GEM iteration.

    For t = 0 … N_GEM − 1, starting from w₀ = c·exp(−‖Qᵀ(f_i − f_j)‖²) (node features f):

    1. E-step: X̂ = (I + μ_t L(w_t))⁻¹Y by N_CG(E) CG steps with learned α/β, started
       from Y (it solves for the correction X̂ − Y; the GLR filter — the network drops
       the model's 1/(1 + σ²δ) shrinkage), μ_t = μ̄_t/d_max(w_t) relative to the largest
       weighted degree (so the spectrum of I + μ_t L is inside [1, 1 + 2μ̄_t] whatever the
       graph), and the edge terms of S̃ = mean x̂x̂ᵀ + C, C = μ_t(I + μ_t L)⁻¹, from P
       probes solved in the same CG;
    2. M-step: N_PGD steps w ← min(prox_{η_t D γ_t ‖·‖₀}(w + η_t D(R̂(w) − s)), cap) with
       R̂ = Θ⁻¹ edge terms from the same P probes (N_CG(inv) Jacobi-preconditioned CG
       steps), D = 1/max(s, R̂(w_t))² (:func:`m_step`), η_t the learned step over the
       neighbour count, the relaxed ℓ0 prox of :func:`l0_gate`, and the cap
       ``config.max_ratio``·mean(w_t);

    and the output X̂ = (I + μ_{N_GEM} L(w_{N_GEM}))⁻¹Y. With ``second_order=False`` the
    inner direction D(R̂ − s) and the metric D are under ``stop_gradient``.

    ``gradient`` governs how every inner solver (E-step CG, probe CGs, the PGD loop) is
    differentiated; the outer GEM loop is unrolled. Under :class:`~glrjax.Implicit` the
    learned α/β (and PGD steps η) get zero gradient by construction — the implicit
    gradient sees only the fixed point. The CG solves are differentiated by backward CG;
    the M-step's fixed point by the Neumann series of its PGD map with N_PGD terms
    (GMRES would have to transpose an operator containing the inner solves' while loops,
    which JAX cannot do), and with ``second_order=False`` by zero terms — Jacobian-free
    backprop — since its implicit system needs the Hessian that ``second_order=False``
    drops. Under :class:`~glrjax.Checkpointed` each GEM iteration is
    also rematerialised (``config.remat``).

    Args:
        params: :class:`GEMNetParams` (from :func:`gem_network_init`).
        y: noisy samples ``(S, H, W)`` of one graph, or ``(B, S, H, W)``: B graphs, each
            learned from its own S samples (seed 000: B = 1, S = 8; denoising: S = 1).
        features: node features ``(C, H, W)`` or ``(B, C, H, W)``.
        config: :class:`GEMNetConfig` (static).
        gradient: gradient mode of the inner solvers.

    Returns:
        ``(x̂, info)``: x̂ shaped like y, and a :class:`GEMNetInfo`.

    >>> import jax, jax.numpy as jnp
    >>> config = GEMNetConfig(gem_iterations=2, pgd_steps=2, cg_inv=2, cg_e=3, radius=1)
    >>> y = jnp.zeros((2, 6, 6)).at[:, :, 3:].set(1.0) + 0.1 * jax.random.normal(
    ...     jax.random.key(0), (2, 6, 6))  # two noisy samples of a step edge
    >>> f = y.mean(0)[None]  # one feature channel
    >>> params = gem_network_init(config, y, f)
    >>> x, info = jax.jit(lambda p: gem_network(p, y, f, config))(params)
    >>> x.shape, info.edges.shape, info.weights.shape  # edges left after each iteration
    ((2, 6, 6), (2,), (3, 4, 6, 6))
    """
    gradient = check_gradient(gradient)
    y, features = _check_net_inputs(params, y, features, config)
    fn = functools.partial(_gem_single, config=config, gradient=gradient)
    if y.ndim == 3:
        return fn(params, y, features)
    return jax.vmap(fn, in_axes=(None, 0, 0))(params, y, features)


def chebyshev_steps(lo, hi, steps: int):
    """CG-form steps (α_k, β_k) of Chebyshev iteration for a spectrum inside [lo, hi].

    With these, :func:`glrjax.cg`'s update x += α_k p, r −= α_k Ap, p = M⁻¹r + β_k p is the
    Chebyshev semi-iterative method (Saad, *Iterative Methods*, Alg. 12.1, with
    d_k = α_k p_k): its residual polynomial is T_k((θ − λ)/c)/T_k(θ/c), θ = (hi + lo)/2,
    c = (hi − lo)/2, bounded by 1 on [0, hi] for every right-hand side — unlike a recorded CG
    schedule, whose polynomial can blow up on another graph's spectrum. ``lo`` may exceed the
    true smallest eigenvalue (those components then just converge more slowly); ``hi`` must
    bound the largest.

    >>> a, b = chebyshev_steps(1.0, 3.0, 3)
    >>> [round(float(v), 4) for v in a], [round(float(v), 4) for v in b]
    ([0.5, 0.5714, 0.5385], [0.125, 0.0816, 0.0725])
    """
    theta, c = 0.5 * (hi + lo), 0.5 * (hi - lo)
    sigma = theta / c
    rho = 1.0 / sigma
    alphas, betas = [1.0 / theta], []
    for k in range(1, steps + 1):
        rho_next = 1.0 / (2.0 * sigma - rho)
        betas.append(rho * rho / 2.0 if k == 1 else rho * rho)
        alphas.append(2.0 * rho_next / c)
        rho = rho_next
    return jnp.asarray(alphas[:steps]), jnp.asarray(betas[:steps])


def _balanced_log_scale(params, y, features, config):
    """log c with c = median over edges of (t(Θ⁻¹) − t(C))/mean (x̂_i − x̂_j)² at c = 1.

    With μ relative to the largest degree, scaling w by c scales the Θ⁻¹ and C edge terms
    by 1/c and leaves the sample term alone, so at this c the M-step gradient
    t(Θ⁻¹) − s changes sign at the median edge: as many weights start to grow as to shrink.
    Probe estimates with converged CG.
    """
    ys = y.reshape((-1,) + y.shape[-3:])
    fs = features.reshape((-1,) + features.shape[-3:])
    delta = config.delta
    valid = jnp.asarray(GridGraph.window(*y.shape[-2:], config.radius).valid_mask())
    kw = dict(route="probes", num_probes=config.num_probes, key=config.probe_seed, tol=1e-4)

    def one(yk, f):
        g = GridGraph.mahalanobis(f, params.q, config.radius)
        mu = _relative_mu(params.log_mu[0], g)
        x, _ = glr_filter(yk, g, mu, tol=1e-4, maxiter=200)
        sample = jnp.mean(edge_differences(g, x) ** 2, axis=0)
        c, _ = inverse_edge_terms(g, mu, **kw)
        r, _ = _theta_inverse_terms(g, delta, **kw)
        ratio = (r - mu * c) / sample
        ok = valid & (sample > 0) & (ratio > 0)
        return jnp.where(ok, ratio, jnp.nan)

    ratios = jax.jit(jax.vmap(one))(ys, fs)
    return jnp.log(jnp.nanmedian(ratios)).astype(y.dtype)


def gem_network_init(
    config: GEMNetConfig,
    y,
    features,
    *,
    q=None,
    mu=4.0,
    gamma=1e-2,
    step=0.25,
    scale=None,
) -> GEMNetParams:
    """Initial parameters of :func:`gem_network`, fitted to a batch (data-dependent).

    Q = ``q`` (default 5·I: w ≈ exp(−25(f_i − f_j)²) for intensities in [0, 1]),
    μ̄_t = ``mu`` (μ relative to the largest degree, see :func:`gem_network`), γ_t = ``gamma``,
    PGD ``step`` (divided by the neighbour count, as in :func:`m_step`; smaller than
    :func:`m_step`'s 1.5, so that the untrained network stays near the GLR filter: GEM's
    likelihood-optimal graph is not the best denoising graph, and training finds how far
    to move). The initial
    weight scale c is ``scale`` or, by default, the one that balances the first M-step
    (:func:`_balanced_log_scale`: as many weights start to grow as to shrink). The learned
    CG α/β start as Chebyshev iteration (:func:`chebyshev_steps`) on [hi/(4k²), hi] for k
    steps, hi = 1 + 2μ̄_t, a bound of the E-step operator's spectrum on every graph, and
    (0, 2] for the Jacobi-preconditioned Θ⁻¹ solves: stable on any graph. (Steps recorded
    from a CG run fit that run's spectrum and were seen to diverge on other images.)

    Args:
        config: the network's :class:`GEMNetConfig`.
        y, features: a batch, as for :func:`gem_network`.
        q, mu, gamma, step, scale: initial values.

    See :func:`gem_network` for an example.
    """
    if not isinstance(config, GEMNetConfig):
        raise TypeError(f"config must be a GEMNetConfig, got {type(config).__name__}.")
    y = check_float_array(y, "y")
    features = check_float_array(features, "features")
    dtype = y.dtype
    c = features.shape[-3] if features.ndim >= 3 else 1
    q = 5.0 * jnp.eye(c, dtype=dtype) if q is None else jnp.asarray(q, dtype)
    g = config.gem_iterations
    for name, v in (("mu", mu), ("gamma", gamma), ("step", step), ("scale", scale or 1.0)):
        _check_scalar(v, name, positive=True, example="1.0")
    params = GEMNetParams(
        q=q,
        log_scale=jnp.log(jnp.asarray(scale or 1.0, dtype)),
        log_mu=jnp.full((g + 1,), math.log(mu), dtype),
        log_gamma=jnp.full((g,), math.log(gamma), dtype),
        log_step=jnp.full((g,), math.log(step), dtype),
        log_e_alpha=None,
        log_e_beta=None,
        log_inv_alpha=None,
        log_inv_beta=None,
    )
    if scale is None:
        params = params._replace(log_scale=_balanced_log_scale(params, y, features, config))
    if not config.learn_cg:
        return params
    e_sched, inv_sched = [], []
    for t in range(g + 1):
        # I + μL has its spectrum in [1, 1 + 2μ̄] on every graph (μ relative to d_max). The
        # E-step solves for a correction whose right-hand side μLy has no smooth content,
        # so lo may exceed 1.
        hi = 1.0 + 2.0 * float(jnp.exp(params.log_mu[t]))
        e_sched.append(chebyshev_steps(max(1.0, hi / (4 * config.cg_e**2)), hi, config.cg_e))
        if t < g:  # Jacobi-preconditioned I + L/δ: spectrum inside (0, 2)
            inv_sched.append(chebyshev_steps(2.0 / (4 * config.cg_inv**2), 2.0, config.cg_inv))

    def log(sched, i):  # the last β is never used by the solution; keep it finite
        return jnp.log(jnp.maximum(jnp.stack([v[i] for v in sched]), 1e-6)).astype(dtype)

    return params._replace(
        log_e_alpha=log(e_sched, 0),
        log_e_beta=log(e_sched, 1),
        log_inv_alpha=log(inv_sched, 0),
        log_inv_beta=log(inv_sched, 1),
    )


# ------------------------------------------------------------ `glrjax compare` case


def _compare_setup(size: int, batch: int, dtype):
    from glrjax.images import noisy, piecewise_smooth

    clean = np.stack([piecewise_smooth(size, seed=i) for i in range(batch)])
    y = np.stack([noisy(c, 0.1, seed=100 + i) for i, c in enumerate(clean)])
    y = jnp.asarray(y, dtype)[None]  # one graph learned from `batch` samples (seed 000)
    return jnp.asarray(clean, dtype)[None], y, jnp.mean(y, axis=1, keepdims=True)


def _compare_config(maxiter: int, gem_iterations: int, pgd_steps: int, num_probes: int, tol):
    return GEMNetConfig(
        gem_iterations=gem_iterations,
        pgd_steps=pgd_steps,
        cg_inv=maxiter,
        cg_e=maxiter,
        num_probes=num_probes,
        relaxation="smooth",
        learn_cg=False,
        max_ratio=math.inf,
        tol=tol,
    )


def gem_compare_case(
    size: int = 16,
    *,
    batch: int = 4,
    gem_iterations: int = 2,
    pgd_steps: int = 3,
    num_probes: int = 8,
    tol: float = 1e-5,
    dtype=jnp.float32,
):
    """A small GEM-network case for ``glrjax compare``: ``(loss, theta)``.

    ``loss(theta, mode, maxiter) -> (ℓ, info)``: the MSE of the network's output against
    the clean images, ``maxiter`` CG steps (to ``tol``) in every inner solve (E-step and
    Θ⁻¹ probes), ``mode`` the gradient mode of the inner solvers; ``info`` is the output
    E-step's :class:`~glrjax.Info`. ``theta`` is a :class:`GEMNetParams` without learned CG
    steps (so it does not depend on ``maxiter``). The ℓ0 prox uses the ``"smooth"``
    relaxation, so the loss is differentiable and finite differences are meaningful.

    The independent reference gradient is :func:`gem_reference_gradient`: central finite
    differences of the same loss in float64 with converged inner solves. Note that the
    network's PGD loop has a fixed ``pgd_steps`` (it is not run to convergence), so under
    :class:`~glrjax.Implicit` — which differentiates its fixed point — the gradient differs
    from the reference by design, not only by solver tolerance.

    >>> import glrjax
    >>> loss, theta = gem_compare_case(size=6, batch=2, gem_iterations=1, pgd_steps=1)
    >>> value, info = loss(theta, glrjax.Unrolled(), 60)
    >>> bool(value > 0), bool(info.converged)
    (True, True)
    """
    clean, y, features = _compare_setup(size, batch, dtype)
    base = _compare_config(1, gem_iterations, pgd_steps, num_probes, tol)
    theta = gem_network_init(base, y, features, q=10.0 * jnp.ones((1, 1), dtype))

    def loss(theta, mode, maxiter):
        config = _compare_config(maxiter, gem_iterations, pgd_steps, num_probes, tol)
        x, info = gem_network(theta, y, features, config, gradient=mode)
        return jnp.mean((x - clean) ** 2), info.info

    return loss, theta


def gem_reference_gradient(
    theta,
    size: int = 16,
    *,
    batch: int = 4,
    gem_iterations: int = 2,
    pgd_steps: int = 3,
    num_probes: int = 8,
    maxiter: int = 300,
    eps: float = 1e-6,
):
    """Central finite differences (float64) of :func:`gem_compare_case`'s loss at ``theta``.

    Inner CG solves run to 1e-12 (up to ``maxiter`` steps), so this is the gradient of the
    converged network; pass the same sizes as to :func:`gem_compare_case`. Needs
    ``jax_enable_x64``; one loss evaluation per parameter entry and direction (about 2·15).
    """
    if not jax.config.jax_enable_x64:
        raise RuntimeError(
            "gem_reference_gradient needs jax.config.update('jax_enable_x64', True)."
        )
    clean, y, features = _compare_setup(size, batch, jnp.float64)
    config = _compare_config(maxiter, gem_iterations, pgd_steps, num_probes, 1e-12)
    flat, unravel = jax.flatten_util.ravel_pytree(
        jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), theta)
    )

    @jax.jit
    def f(v):
        x, _ = gem_network(unravel(v), y, features, config, gradient=Unrolled())
        return jnp.mean((x - clean) ** 2)

    grad = []
    for i in range(flat.size):
        e = jnp.zeros_like(flat).at[i].set(eps)
        grad.append((f(flat + e) - f(flat - e)) / (2 * eps))
    return unravel(jnp.stack(grad))
