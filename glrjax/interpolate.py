"""Graph interpolation: fill in unobserved pixels with a GLR or GTV smoothness prior.

Pixels S (``mask`` True) are observed with values y_S; the rest U are unknown.

- :func:`glr_interpolate` (GLR, quadratic prior xᵀLx):

  * hard constraint (``mu=None``): min xᵀLx subject to x_S = y_S. The minimiser solves
    L_UU x_U = −L_US y_S, a system on the unknowns only, by :func:`glrjax.cg`. L_UU is
    SPD when every connected component of the graph holds an observed pixel (window
    graphs with positive weights are connected, so one observed pixel suffices); a
    ``delta`` > 0 adds δI to L_UU for graphs where that may fail.
  * soft constraint (``mu`` ≥ 0): min ‖Hx − y‖² + μ xᵀLx for noisy samples, H the
    sampling operator (HᵀH = diag(mask)): (HᵀH + μL) x = Hᵀy, by CG.

- :func:`gtv_interpolate` (GTV, ℓ1 prior Σ w_ij |x_i − x_j|), by
  :func:`glrjax.primal_dual`: hard constraint by projection (prox of the indicator of
  {x : x_S = y_S}), soft constraint as the smooth term ½‖Hx − y‖².

These are the per-layer problems of the unrolled uGLR/uGTV networks
(:mod:`glrjax.networks`; Do et al., NeurIPS 2024). Every gradient mode applies, with
gradients w.r.t. y, μ and the graph weights (so the features and metric they come from).

>>> import jax.numpy as jnp, glrjax
>>> y = jnp.tile(jnp.arange(5.0), (5, 1))          # a ramp
>>> mask = jnp.zeros((5, 5), bool).at[:, 0].set(True).at[:, 4].set(True)
>>> g = glrjax.GridGraph.window(5, 5, radius=1)
>>> x, info = glrjax.glr_interpolate(y, mask, g, tol=1e-8)
>>> bool(info.converged), bool((x[mask] == y[mask]).all())   # observed pixels kept exactly
(True, True)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from glrjax._validate import (
    check_float_array,
    check_graph_weights,
    check_maxiter,
    check_nonnegative,
    check_tol,
)
from glrjax.gradients import GradientMode, Implicit, Unrolled, check_gradient
from glrjax.graph import EdgeGraph, GridGraph, degree, edge_difference, laplacian_matvec
from glrjax.iterate import Info
from glrjax.linear import cg
from glrjax.primal_dual import primal_dual

__all__ = ["glr_interpolate", "gtv_interpolate"]


def _is_tracer(x) -> bool:
    return isinstance(x, jax.core.Tracer)


def _check_mu(mu, name="mu"):
    if mu is None:
        return None
    if isinstance(mu, bool) or not (
        isinstance(mu, int | float | np.integer | np.floating) or hasattr(mu, "dtype")
    ):
        raise TypeError(f"{name}={mu!r} must be None (hard constraint) or a number, e.g. 0.1.")
    mu = jnp.asarray(mu)
    if not (jnp.issubdtype(mu.dtype, jnp.floating) or jnp.issubdtype(mu.dtype, jnp.integer)):
        raise TypeError(f"{name} has dtype {mu.dtype}; it must be real, e.g. {name}=0.1.")
    check_nonnegative(mu, name, "0.1")
    return mu


def _inputs(y, mask, graph, mu, x0, delta):
    """Validate the common arguments; return them cast to y's dtype and the batch shape."""
    if not isinstance(graph, GridGraph | EdgeGraph):
        raise TypeError(
            f"graph must be a glrjax.GridGraph or glrjax.EdgeGraph, got {type(graph).__name__}; "
            "build one with GridGraph.window(...) or GridGraph.mahalanobis(...)."
        )
    y = check_float_array(y, "y")
    dtype = y.dtype
    node = tuple(graph.node_shape)
    core = len(node)
    if y.ndim < core or tuple(y.shape[-core:]) != node:
        raise ValueError(
            f"y has shape {y.shape}, but the graph has node shape {node}; y needs "
            f"(..., {', '.join(map(str, node))})."
        )
    mask = jnp.asarray(mask)
    if mask.dtype != jnp.bool_:
        raise TypeError(
            f"mask has dtype {mask.dtype}; it must be boolean, True where the pixel is "
            "observed, e.g. mask = (m > 0.5)."
        )
    if mask.ndim < core or tuple(mask.shape[-core:]) != node:
        raise ValueError(
            f"mask has shape {mask.shape}, but the image (graph node shape) is {node}; mask "
            f"needs (..., {', '.join(map(str, node))}), like y {y.shape}."
        )
    if not _is_tracer(mask):
        per_image = np.asarray(mask).reshape(mask.shape[: mask.ndim - core] + (-1,)).any(-1)
        if not per_image.all():
            raise ValueError(
                f"mask has no observed pixel in {int((~per_image).sum())} image(s); "
                "interpolation needs at least one True entry per image."
            )
    mu = _check_mu(mu)
    check_nonnegative(delta, "delta", "1e-6")
    weights = check_float_array(graph.weights, "graph.weights")
    check_graph_weights(graph, "the smoothness prior", "a PSD Laplacian needs them.")
    if x0 is not None:
        x0 = check_float_array(x0, "x0")
        if x0.ndim < core or tuple(x0.shape[-core:]) != node:
            raise ValueError(f"x0 has shape {x0.shape}; it needs y's node shape (..., {node}).")
        x0 = x0.astype(dtype)
    w_core = 3 if isinstance(graph, GridGraph) else 1
    shapes = {
        "y": y.shape[: y.ndim - core],
        "mask": mask.shape[: mask.ndim - core],
        "graph.weights": weights.shape[: weights.ndim - w_core],
    }
    if mu is not None:
        shapes["mu"] = mu.shape
    if x0 is not None:
        shapes["x0"] = x0.shape[: x0.ndim - core]
    try:
        batch = tuple(np.broadcast_shapes(*shapes.values()))
    except ValueError as err:
        detail = ", ".join(f"{k} {v}" for k, v in shapes.items())
        raise ValueError(
            f"batch axes do not broadcast: {detail}; give each image its own or share one."
        ) from err
    weights = weights.astype(dtype)
    mu = None if mu is None else mu.astype(dtype)
    return y, mask, weights, mu, x0, jnp.asarray(delta, dtype), batch, core, w_core


def _graph_builder(graph):
    """(leaves, rebuild): the graph's weights and a function making the graph from them."""
    if isinstance(graph, GridGraph):
        meta = (graph.offsets, graph.height, graph.width)
        return lambda w: GridGraph(w, *meta)
    src, dst, n = graph.src, graph.dst, graph.num_nodes
    return lambda w: EdgeGraph(src, dst, w, n)


def _vmap_flat(fn, args, cores, batch):
    """``fn(*args)`` for every image of ``batch``: one vmap over the flattened batch axes.

    An argument without batch axes (``ndim == core``) is shared (not mapped); the others
    are broadcast to ``batch`` and flattened. Outputs get ``batch`` back as leading axes.
    """
    if not batch:
        return fn(*args)
    size = int(np.prod(batch))
    axes, flat = [], []
    for a, core in zip(args, cores, strict=True):
        if a is None or a.ndim == core:
            axes.append(None)
            flat.append(a)
        else:
            full = jnp.broadcast_to(a, batch + a.shape[a.ndim - core :])
            axes.append(0)
            flat.append(full.reshape((size,) + full.shape[len(batch) :]))
    out = jax.vmap(fn, in_axes=tuple(axes))(*flat)
    return jax.tree_util.tree_map(lambda o: o.reshape(batch + o.shape[1:]), out)


def _no_observation(x, info, mask):
    """NaN and converged=False for an image without any observed pixel (traced masks)."""
    ok = jnp.any(mask)
    x = jnp.where(ok, x, jnp.nan)
    return x, info._replace(converged=info.converged & ok)


def glr_interpolate(
    y,
    mask,
    graph,
    mu=None,
    *,
    gradient: GradientMode = Implicit(),
    tol=1e-6,
    maxiter: int = 100,
    x0=None,
    delta=0.0,
    precond=None,
    alpha=None,
    beta=None,
) -> tuple[jax.Array, Info]:
    """GLR interpolation: fill the unobserved pixels by CG (hard or soft constraint).

    Args:
        y: observations ``(..., H, W)`` (grid) or ``(..., N)`` (edge list); only the
            entries where ``mask`` is True are read. Leading axes: a batch of images.
        mask: boolean, True where the pixel is observed; shape ``(..., H, W)`` broadcasting
            against y's batch. Every image needs at least one observed pixel.
        graph: :class:`~glrjax.GridGraph` or :class:`~glrjax.EdgeGraph` (batch axes
            broadcast), non-negative weights.
        mu: ``None`` for the hard constraint x_S = y_S (solve L_UU x_U = −L_US y_S), or
            μ ≥ 0 for the soft form (HᵀH + μL)x = Hᵀy. Scalar or one per image; traced.
        gradient: gradient mode (default ``Implicit()``).
        tol: CG's relative residual tolerance; maxiter: CG's step cap (static).
        x0: optional starting estimate (e.g. the previous layer's output).
        delta: δ ≥ 0 added to the diagonal on the unknowns (δI on L_UU; δI for the soft
            form), only needed when a graph component may hold no observed pixel.
        precond: ``None`` or ``"jacobi"`` (the diagonal of the system).
        alpha, beta: optional learned CG step schedules, shape ``(maxiter,)``.

    Returns:
        ``(x, info)``: x in y's dtype with the batch shape; under the hard constraint
        ``x == y`` exactly where ``mask`` is True. An image whose (traced) mask has no
        observed pixel comes back NaN with ``info.converged`` False.

    >>> import jax.numpy as jnp, glrjax
    >>> y = jnp.ones((4, 4)); mask = jnp.eye(4, dtype=bool)
    >>> x, _ = glrjax.glr_interpolate(y, mask, glrjax.GridGraph.window(4, 4, 1), mu=0.5)
    >>> bool(jnp.allclose(x, 1.0, atol=1e-4))   # constants are the smoothest signals
    True
    """
    gradient = check_gradient(gradient)
    maxiter = check_maxiter(maxiter)
    check_tol(tol)
    if precond not in (None, "jacobi"):
        raise ValueError(f"precond={precond!r}; use None or 'jacobi'.")
    y, mask, weights, mu, x0, delta, batch, core, w_core = _inputs(y, mask, graph, mu, x0, delta)
    alpha = _schedule(alpha, "alpha", maxiter, y.dtype)
    beta = _schedule(beta, "beta", maxiter, y.dtype)
    make = _graph_builder(graph)
    hard = mu is None

    def operator(v, a):
        g, mu_, m, d = a
        if hard:  # [L_UU + δI, 0; 0, I] on the unknowns/observed blocks
            u = (1 - m) * v
            return (1 - m) * (laplacian_matvec(g, u) + d * u) + m * v
        return m * v + mu_ * laplacian_matvec(g, v) + d * v

    def jacobi(r, a):
        g, mu_, m, d = a
        deg = degree(g)
        diag = (1 - m) * (deg + d) + m if hard else m + mu_ * deg + d
        # Entries below ε·max(diag) are at the rounding level of the matrix: floored there,
        # so the Unrolled backward's −r/diag² cannot overflow (edge weights of 1e-25 at a
        # pixel gave NaN gradients in float32). Exact zeros (isolated unknowns) keep z = r.
        floor = jnp.finfo(diag.dtype).eps * jnp.max(diag)
        return jnp.where(diag > 0, r / jnp.maximum(diag, floor), r)

    def single(y, mask, w, mu_, x0):
        g = make(w)
        m = mask.astype(y.dtype)
        if hard:
            # Unknowns only: b_S = 0, and the operator keeps every CG iterate zero on S.
            b = -(1 - m) * laplacian_matvec(g, m * y)
            start = None if x0 is None else (1 - m) * x0
        else:
            b = m * y
            start = x0
        mu_ = jnp.zeros((), y.dtype) if mu_ is None else mu_
        v, info = cg(
            operator,
            b,
            (g, mu_, m, delta),
            x0=start,
            tol=tol,
            maxiter=maxiter,
            precond=jacobi if precond == "jacobi" else None,
            alpha=alpha,
            beta=beta,
            gradient=gradient,
        )
        x = jnp.where(mask, y, v) if hard else v
        return _no_observation(x, info, mask)

    args = (y, mask, weights, mu, x0)
    return _vmap_flat(single, args, (core, core, w_core, 0, core), batch)


def _schedule(s, name, maxiter, dtype):
    if s is None:
        return None
    s = check_float_array(s, name)
    if s.shape != (maxiter,):
        raise ValueError(
            f"{name} has shape {s.shape}; a step-size schedule needs shape (maxiter,) = "
            f"({maxiter},)."
        )
    return s.astype(dtype)


def _norm_incidence(graph) -> float | None:
    """An upper bound on ‖D‖ (the unweighted incidence operator): √(2·max degree)."""
    if isinstance(graph, GridGraph):
        return float(np.sqrt(4 * len(graph.offsets)))  # 2K neighbours per pixel at most
    if _is_tracer(graph.src) or _is_tracer(graph.dst):
        return None  # estimated by power iteration inside primal_dual
    counts = np.bincount(
        np.concatenate([np.ravel(graph.src), np.ravel(graph.dst)]), minlength=graph.num_nodes
    )
    return float(np.sqrt(2 * max(int(counts.max()), 1)))


def gtv_interpolate(
    y,
    mask,
    graph,
    mu=None,
    *,
    gradient: GradientMode = Unrolled(),
    tol=1e-5,
    maxiter: int = 1000,
    x0=None,
    tau=None,
    sigma=None,
) -> tuple[jax.Array, Info]:
    """GTV interpolation: min Σ w_ij |x_i − x_j| with x_S = y_S (or a soft data term).

    Solved by :func:`glrjax.primal_dual` with K = D, the unweighted incidence operator
    (:func:`~glrjax.edge_difference`), and h(z) = Σ_e w_e |z_e|:

    - ``mu=None``: hard constraint, g = indicator of {x : x_S = y_S} (prox: reset the
      observed pixels), f = 0 (Chambolle–Pock);
    - ``mu`` ≥ 0: min ½‖Hx − y‖² + μ Σ w_ij |x_i − x_j|, f = ½‖Hx − y‖² (Condat–Vũ).

    The ℓ1 objective need not have a unique minimiser; the solver returns one of them.

    Args:
        y, mask, graph, mu, x0: as in :func:`glr_interpolate` (x0 defaults to y on the
            observed pixels and the mean observed value elsewhere).
        gradient: gradient mode (default ``Unrolled()``, the unrolled-network use).
        tol: stop when one step changes (x, dual) by ≤ tol relative; maxiter: step cap.
        tau, sigma: optional primal/dual steps (scalars or ``(maxiter,)`` schedules).

    Returns:
        ``(x, info)``; under the hard constraint ``x == y`` exactly where ``mask`` is True.

    >>> import jax.numpy as jnp, glrjax
    >>> y = jnp.zeros((6, 6)).at[:, 3:].set(1.0)
    >>> mask = jnp.zeros((6, 6), bool).at[:, 0].set(True).at[:, 5].set(True)
    >>> x, info = glrjax.gtv_interpolate(y, mask, glrjax.GridGraph.window(6, 6, 1), maxiter=3000)
    >>> bool(info.converged), bool(((x >= -1e-3) & (x <= 1 + 1e-3)).all())
    (True, True)
    """
    gradient = check_gradient(gradient)
    maxiter = check_maxiter(maxiter)
    check_tol(tol)
    y, mask, weights, mu, x0, _, batch, core, w_core = _inputs(y, mask, graph, mu, x0, 0.0)
    make = _graph_builder(graph)
    norm_k = _norm_incidence(graph)
    hard = mu is None

    def single(y, mask, w, mu_, x0):
        g = make(w)
        m = mask.astype(y.dtype)
        mu_ = jnp.ones((), y.dtype) if mu_ is None else mu_
        if x0 is None:
            mean = jnp.sum(m * y) / jnp.maximum(jnp.sum(m), 1)
            x0 = jnp.where(mask, y, mean)
        if hard:
            x0 = jnp.where(mask, y, x0)
        sol, info = primal_dual(
            lambda x, a: edge_difference(a[0], x),
            x0,
            (g, y, m, mu_),
            grad_f=None if hard else (lambda x, a: a[2] * (x - a[1])),
            prox_g=(lambda x, a, t: jnp.where(a[2] > 0, a[1], x)) if hard else None,
            prox_h=lambda z, a, t: _soft(z, t * a[3] * a[0].weights),
            tau=tau,
            sigma=sigma,
            lipschitz=None if hard else 1.0,
            norm_K=norm_k,
            tol=tol,
            maxiter=maxiter,
            gradient=gradient,
        )
        x = jnp.where(mask, y, sol.x) if hard else sol.x
        return _no_observation(x, info, mask)

    args = (y, mask, weights, mu, x0)
    x, info = _vmap_flat(single, args, (core, core, w_core, 0, core), batch)
    return x.astype(y.dtype), info


def _soft(z, threshold):
    """Soft thresholding sign(z)·max(|z| − threshold, 0)."""
    return jnp.sign(z) * jnp.maximum(jnp.abs(z) - threshold, 0.0)
