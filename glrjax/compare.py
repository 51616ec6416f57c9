"""Side-by-side measurement of gradient modes: gradient error, time and XLA memory.

A :class:`Case` is a differentiable loss built on one solver, a point θ and an
independent reference gradient (dense float64 linear algebra). :func:`measure` runs
one (case, mode) pair: it compiles ``value_and_grad`` once, reads XLA's temporary
memory from ``compiled.memory_analysis()``, times forward+backward, and compares the
gradient with the reference. ``glrjax compare`` (``glrjax.cli``) drives it.

>>> import glrjax
>>> from glrjax.compare import glr_case, measure
>>> case = glr_case(size=8)
>>> row = measure(case, glrjax.Implicit(tol=1e-5), maxiter=100, repeats=1)  # float32
>>> row["grad_error"] < 1e-4, row["converged"]
(True, True)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np

from glrjax import gem
from glrjax.glr import glr_filter
from glrjax.gradients import Checkpointed, GradientMode, Implicit, Truncated, Unrolled
from glrjax.graph import GridGraph, num_edges, to_dense
from glrjax.images import noisy, piecewise_smooth
from glrjax.reconstruction import linear_reconstruction

__all__ = [
    "Case",
    "default_modes",
    "fista_case",
    "gem_case",
    "gem_compare_case",
    "gem_reference_gradient",
    "glr_case",
    "measure",
    "memory_sweep",
    "mode_label",
    "relative_error",
    "uglr_case",
]


class Case(NamedTuple):
    """A differentiable experiment on one solver."""

    name: str  # row label, e.g. "cg / GLR 32x32"
    solver: str  # the solver under test, e.g. "cg"
    loss: Callable[[Any, GradientMode, int], tuple[jax.Array, Any]]  # (θ, mode, K) -> (ℓ, info)
    theta: Any  # pytree at which the gradient is taken
    reference: Callable[[], Any]  # () -> the exact gradient at θ (independent, float64)
    scale: float = 1.0  # this solver's iteration cap is round(scale · K) for the common K


def default_modes(maxiter: int, dtype=jnp.float32) -> list[GradientMode]:
    """One instance of each mode, sized for ``maxiter`` (Checkpointed at √K, Truncated at K/4).

    Implicit's backward tolerance is one the dtype can reach on the true residual:
    1e-5 in float32 (the cases' adjoints have condition numbers in the hundreds), 1e-10 in
    float64.
    """
    tol = 1e-10 if jnp.dtype(dtype) == jnp.float64 else 1e-5
    return [
        Unrolled(),
        Checkpointed(every=max(1, math.isqrt(maxiter))),
        Truncated(last=max(1, maxiter // 4)),
        Implicit(tol=tol, maxiter=10 * maxiter),
    ]


def mode_label(mode: GradientMode) -> str:
    """Short label: ``unrolled``, ``checkpointed(10)``, ``truncated(25)``, ``implicit(gmres)``."""
    if isinstance(mode, Checkpointed):
        return f"checkpointed({mode.every})"
    if isinstance(mode, Truncated):
        return f"truncated({mode.last})"
    if isinstance(mode, Implicit):
        return f"implicit({mode.solver})"
    return type(mode).__name__.lower()


def relative_error(grad, reference) -> float:
    """‖g - g_ref‖ / ‖g_ref‖ over all leaves, in float64."""
    g = np.concatenate(
        [np.ravel(np.asarray(x, np.float64)) for x in jax.tree_util.tree_leaves(grad)]
    )
    r = np.concatenate(
        [np.ravel(np.asarray(x, np.float64)) for x in jax.tree_util.tree_leaves(reference)]
    )
    return float(np.linalg.norm(g - r) / max(np.linalg.norm(r), np.finfo(np.float64).tiny))


def measure(case: Case, mode: GradientMode, maxiter: int, repeats: int = 5) -> dict:
    """Gradient error, forward+backward time and XLA temp memory of one (case, mode)."""
    fn = jax.value_and_grad(lambda th: case.loss(th, mode, maxiter), has_aux=True)
    compiled = jax.jit(fn).lower(case.theta).compile()
    stats = compiled.memory_analysis()
    temp = getattr(stats, "temp_size_in_bytes", None) if stats is not None else None
    (value, info), grad = jax.block_until_ready(compiled(case.theta))  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(case.theta))
        times.append(time.perf_counter() - t0)
    error = relative_error(grad, _reference(case))
    return {
        "case": case.name,
        "solver": case.solver,
        "mode": mode_label(mode),
        "mode_repr": repr(mode),
        "maxiter": maxiter,
        "loss": float(value),
        "iterations": int(np.max(np.asarray(info.iterations))),
        "converged": bool(np.all(np.asarray(info.converged))),
        "grad_error": error,
        "time_ms": 1e3 * float(np.median(times)),
        "temp_mb": None if temp is None else temp / 2**20,
        "finite": bool(np.isfinite(error)),
    }


def glr_case(size: int = 32, mu: float = 2.0, sigma: float = 0.1, dtype=jnp.float32) -> Case:
    """GLR filter by CG on the built-in image and its radius-2 window graph (11,346 edges at 32×32).

    (I + μL)x = y with Gaussian weights of the noisy image; loss ‖x − clean‖²/N;
    θ = (μ, y). Reference: the dense float64 closed form ∂ℓ/∂y = A⁻ᵀg,
    ∂ℓ/∂μ = −(A⁻ᵀg)ᵀ L x with g = ∂ℓ/∂x, A = I + μL (``numpy.linalg.solve``).
    """
    clean = piecewise_smooth(size, seed=0).astype(np.float64)
    y = noisy(clean, sigma=sigma, seed=1).astype(np.float64)
    graph64 = GridGraph.gaussian(np.asarray(y), radius=2, sigma=sigma)
    graph = GridGraph(graph64.weights.astype(dtype), graph64.offsets, size, size)
    target = jnp.asarray(clean, dtype)
    tol = 1e-6 if dtype == jnp.float32 else 1e-10

    def loss(theta, mode, maxiter):
        m, yy = theta
        x, info = glr_filter(yy, graph, m, tol=tol, maxiter=maxiter, gradient=mode)
        return jnp.mean((x - target) ** 2), info

    def reference():
        lap = np.asarray(to_dense(graph64), np.float64)
        a = np.eye(size * size) + mu * lap
        x = np.linalg.solve(a, y.ravel())
        g = 2 * (x - clean.ravel()) / x.size
        adj = np.linalg.solve(a.T, g)
        return (-(adj @ (lap @ x)), adj.reshape(size, size))

    theta = (jnp.asarray(mu, dtype), jnp.asarray(y, dtype))
    edges = int(num_edges(graph))
    return Case(f"GLR filter {size}x{size}, {edges} edges", "cg", loss, theta, reference)


def fista_case(d: int = 40, h: int = 30, r: int = 30, lam: float = 0.1, dtype=jnp.float32) -> Case:
    """Group-ℓ2,1 linear reconstruction by FISTA (seed 003, rank-deficient Rxx).

    min_M ½tr(M Rxx Mᵀ) − tr(Ryx Mᵀ) + λΣ_j‖M_:j‖; loss ½‖M − W‖²; θ = (λ, Ryx).
    FISTA needs about three times CG's iterations here, so its cap is 3K (``scale``).
    Reference: the implicit-function derivative of the optimality conditions restricted
    to the active columns S, M_S Rxx_SS − Ryx_S + λ M_:j/‖M_:j‖ = 0, assembled densely
    in float64 and solved with ``numpy.linalg.solve`` (inactive columns stay at zero under
    small perturbations: their derivative is 0).
    """
    rng = np.random.default_rng(3)
    n = 20 * d
    x = rng.standard_normal((d, r)) @ rng.standard_normal((r, n))
    w_true = rng.standard_normal((h, d))
    rxx = (x / d) @ (x.T / n)
    ryx = (w_true @ x / d) @ (x.T / n)
    rxx_j, ryx_j = jnp.asarray(rxx, dtype), jnp.asarray(ryx, dtype)
    target = jnp.asarray(w_true, dtype)
    tol = 1e-6 if dtype == jnp.float32 else 1e-10

    def loss(theta, mode, maxiter):
        lam_, ryx_ = theta
        m, info = linear_reconstruction(
            rxx_j, ryx_, lam_, method="fista", tol=tol, maxiter=maxiter, gradient=mode
        )
        return 0.5 * jnp.sum((m - target) ** 2), info

    def reference():
        with jax.enable_x64(True):
            m, info = linear_reconstruction(
                jnp.asarray(rxx),
                jnp.asarray(ryx),
                jnp.float64(lam),
                method="altmin",
                tol=1e-13,
                maxiter=20000,
                gradient=Unrolled(),
            )
            m = np.asarray(m, np.float64)
        norms = np.linalg.norm(m, axis=0)
        active = np.nonzero(norms > 1e-9 * max(norms.max(), 1e-300))[0]
        k = active.size
        ms = m[:, active]
        nrm = norms[active]
        units = ms / nrm
        # Jacobian of the active optimality map F(M_S) = M_S Rxx_SS − Ryx_S + λ M_:j/‖M_:j‖
        # in column-major vec order: (Rxx_SS ⊗ I_h) + blkdiag_j λ(I − u_j u_jᵀ)/‖M_:j‖.
        jac = np.kron(rxx[np.ix_(active, active)], np.eye(h))
        for i in range(k):
            blk = slice(i * h, (i + 1) * h)
            jac[blk, blk] += lam * (np.eye(h) - np.outer(units[:, i], units[:, i])) / nrm[i]
        g = (m - w_true)[:, active].reshape(-1, order="F")  # ∂ℓ/∂M_S
        u = np.linalg.solve(jac.T, g)  # dℓ = −uᵀ dF
        g_ryx = np.zeros_like(ryx)
        g_ryx[:, active] = u.reshape(h, k, order="F")  # ∂F/∂Ryx_S = −I
        g_lam = -float(u @ units.reshape(-1, order="F"))  # ∂F/∂λ = M_:j/‖M_:j‖
        return (g_lam, g_ryx)

    theta = (jnp.asarray(lam, dtype), ryx_j)
    name = f"group-l21 FISTA d={d} h={h} r={r}"
    return Case(name, "fista", loss, theta, reference, scale=3.0)


def gem_case(size: int = 16, dtype=jnp.float32) -> Case:
    """The unrolled GEM network (seed 000) on small built-in images, inner solvers per mode.

    :func:`gem_compare_case`: 2 GEM iterations of 3 PGD steps, 8 probes, batch 4;
    loss = MSE against the clean images; θ = the network's parameters (μ, γ, metric, step).
    Reference: central finite differences in float64 with converged inner solves
    (:func:`gem_reference_gradient`). The modes govern the inner CG solves; the PGD steps
    are layers, differentiated through in every mode (``GEMNetConfig.pgd_gradient``).
    """
    loss, theta = gem_compare_case(size, dtype=dtype)

    def reference():
        with jax.enable_x64(True):
            return gem_reference_gradient(theta, size)

    return Case(f"GEM network {size}x{size}, batch 4", "gem", loss, theta, reference, scale=0.3)


def uglr_dense_loss(params, y, mask, clean, config):
    """The uGLR network with every layer solved exactly (dense ``solve``), its MSE to ``clean``.

    Same features, normalised graphs and μ as :func:`glrjax.networks.uglr`, but each
    layer's (HᵀH + μL)x = Hᵀy is solved by ``jnp.linalg.solve`` on the dense Laplacian
    (:func:`~glrjax.to_dense`) instead of CG, so autodiff of it is the exact gradient of
    the converged network. For small grids (N² memory) in float64.
    """
    from glrjax.networks import bilinear_interpolate, cnn_apply, normalized_graph

    x = bilinear_interpolate(y, mask)
    m = mask.astype(y.dtype)
    n = y.shape[-1] * y.shape[-2]
    for layer in range(config.layers):
        p = jax.tree_util.tree_map(lambda a, layer=layer: a[layer], params)
        g = normalized_graph(cnn_apply(p.cnn, x), p.q.astype(y.dtype), config.radius)
        lap = to_dense(g)[..., None, :, :]  # one graph per image, shared by its channels
        a = jnp.exp(p.log_mu).astype(y.dtype) * lap + jax.vmap(jnp.diag)(m.reshape(-1, n)).reshape(
            m.shape[:-2] + (n, n)
        )
        x = jnp.linalg.solve(a, (m * y).reshape(m.shape[:-2] + (n, 1)))[..., 0].reshape(y.shape)
    return jnp.mean((x - clean) ** 2)


def uglr_case(size: int = 16, layers: int = 2, batch: int = 2, dtype=jnp.float32) -> Case:
    """The unrolled uGLR network (seed 001) on 2× interpolation of the built-in images.

    ``layers`` layers of :func:`glrjax.networks.uglr` (feature CNN 1→8→8→3, normalised
    radius-1 graph, at most K CG steps each, tol 1e-6 in float32) on a
    batch of ``size``×``size`` piecewise-smooth images, every other row and column
    observed; loss = MSE to the clean images; θ = the network's parameters. Reference: the
    same network with every layer solved exactly by a dense float64 solve
    (:func:`uglr_dense_loss`), differentiated by autodiff: the error mixes CG's truncation
    at K with each mode's gradient error. CG's cap is ``round(0.1·K)`` per layer (scale).
    """
    from glrjax.networks import UGLRConfig, uglr, uglr_init

    clean64 = np.stack([piecewise_smooth(size, seed=10 + i) for i in range(batch)])[:, None]
    clean64 = clean64.astype(np.float64)
    mask = np.zeros(clean64.shape, bool)
    mask[..., ::2, ::2] = True
    # tol > 0 freezes converged CG steps: float32 CG run on past convergence (tol = 0)
    # drives r·r to ~1e-26 and its unrolled backward overflows to NaN at K = 50.
    tol = 1e-6 if jnp.dtype(dtype) == jnp.float32 else 1e-12
    base = UGLRConfig(layers=layers, channels=1, hidden=8, features=3, radius=1, tol=tol)
    params = uglr_init(jax.random.key(0), base, jnp.float32)
    theta = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), params)
    y = jnp.asarray(clean64 * mask, dtype)
    clean = jnp.asarray(clean64, dtype)
    mask_j = jnp.asarray(mask)

    def loss(params, mode, maxiter):
        x, info = uglr(params, y, mask_j, base._replace(maxiter=maxiter), gradient=mode)
        return jnp.mean((x - clean) ** 2), info

    def reference():
        with jax.enable_x64(True):
            p = jax.tree_util.tree_map(lambda a: jnp.asarray(np.asarray(a), jnp.float64), theta)
            g = jax.grad(uglr_dense_loss)(
                p, jnp.asarray(clean64 * mask), mask_j, jnp.asarray(clean64), base
            )
            return jax.tree_util.tree_map(np.asarray, g)

    name = f"uGLR network {size}x{size}, L={layers}, batch {batch}"
    return Case(name, "uglr", loss, theta, reference, scale=0.1)


def _gem_setup(size: int, batch: int, dtype):
    clean = np.stack([piecewise_smooth(size, seed=i) for i in range(batch)])
    y = np.stack([noisy(c, 0.1, seed=100 + i) for i, c in enumerate(clean)])
    y = jnp.asarray(y, dtype)[None]  # one graph learned from `batch` samples (seed 000)
    return jnp.asarray(clean, dtype)[None], y, jnp.mean(y, axis=1, keepdims=True)


def _gem_config(maxiter: int, gem_iterations: int, pgd_steps: int, num_probes: int, tol):
    return gem.GEMNetConfig(
        gem_iterations=gem_iterations,
        pgd_steps=pgd_steps,
        cg_inv=maxiter,
        cg_e=maxiter,
        estimator=gem.Probes(num=num_probes, key=0),
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
    differences of the same loss in float64 with converged inner solves. ``mode`` governs
    the CG solves; the ``pgd_steps`` PGD steps of each M-step are layers, differentiated
    through in every mode, so every mode that does not truncate a CG solve differentiates
    the reference's function.

    >>> import glrjax
    >>> loss, theta = gem_compare_case(size=6, batch=2, gem_iterations=1, pgd_steps=1)
    >>> value, info = loss(theta, glrjax.Unrolled(), 60)
    >>> bool(value > 0), bool(info.converged)
    (True, True)
    """
    clean, y, features = _gem_setup(size, batch, dtype)
    base = _gem_config(1, gem_iterations, pgd_steps, num_probes, tol)
    theta = gem.gem_network_init(base, y, features, q=10.0 * jnp.ones((1, 1), dtype))

    def loss(theta, mode, maxiter):
        config = _gem_config(maxiter, gem_iterations, pgd_steps, num_probes, tol)
        x, info = gem.gem_network(theta, y, features, config, gradient=mode)
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
    clean, y, features = _gem_setup(size, batch, jnp.float64)
    config = _gem_config(maxiter, gem_iterations, pgd_steps, num_probes, 1e-12)
    flat, unravel = jax.flatten_util.ravel_pytree(
        jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), theta)
    )

    @jax.jit
    def f(v):
        x, _ = gem.gem_network(unravel(v), y, features, config, gradient=Unrolled())
        return jnp.mean((x - clean) ** 2)

    grad = []
    for i in range(flat.size):
        e = jnp.zeros_like(flat).at[i].set(eps)
        grad.append((f(flat + e) - f(flat - e)) / (2 * eps))
    return unravel(jnp.stack(grad))


def memory_sweep(case: Case, modes: list[GradientMode], maxiters: list[int]) -> list[dict]:
    """XLA temp memory of forward+backward for each (mode, maxiter): no timing, compile only."""
    rows = []
    for mode in modes:
        for k in maxiters:
            m = _mode_for(mode, k)
            fn = jax.value_and_grad(lambda th, m=m, k=k: case.loss(th, m, k), has_aux=True)
            stats = jax.jit(fn).lower(case.theta).compile().memory_analysis()
            temp = getattr(stats, "temp_size_in_bytes", None) if stats is not None else None
            rows.append(
                {
                    "case": case.name,
                    "mode": mode_label(m),
                    "maxiter": k,
                    "temp_mb": None if temp is None else temp / 2**20,
                }
            )
    return rows


_REFERENCES: dict = {}


def _reference(case: Case):
    """The case's reference gradient, computed once per case object."""
    key = id(case)
    if key not in _REFERENCES:
        _REFERENCES[key] = (case, case.reference())
    return _REFERENCES[key][1]


def _mode_for(mode: GradientMode, maxiter: int) -> GradientMode:
    """Resize Checkpointed to √K and Truncated to K/4 for an iteration count K."""
    if isinstance(mode, Checkpointed):
        return Checkpointed(every=max(1, math.isqrt(maxiter)))
    if isinstance(mode, Truncated):
        return Truncated(last=max(1, maxiter // 4))
    return mode
