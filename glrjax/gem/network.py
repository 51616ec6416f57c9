"""The unrolled GEM network (seed 000): :func:`gem_network`, :class:`GEMNetConfig`.

N_GEM unrolled iterations of an E-step of N_CG(E) learned-step CG steps and an M-step —
:func:`glrjax.gem.m_step` itself — of N_PGD PGD steps whose Θ⁻¹ terms use N_CG(inv) CG
steps on the edge-term estimator's probes, with per-iteration μ, γ, PGD step and CG α/β.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from glrjax import prox as _prox
from glrjax._validate import check_float_array, check_maxiter
from glrjax.glr import glr_filter
from glrjax.gradients import Checkpointed, GradientMode, Unrolled, check_gradient
from glrjax.graph import GridGraph
from glrjax.iterate import Info
from glrjax.linear import chebyshev_steps

from ._common import check_choice, check_scalar, edge_differences, summary, valid_mask, with_weights
from .em import METRICS, _check_implicit, m_step, theta_inverse_terms
from .estimators import (
    Dense,
    EdgeTermEstimator,
    Probes,
    inverse_edge_terms,
    resolve_estimator,
)

__all__ = [
    "GEMNetConfig",
    "GEMNetInfo",
    "GEMNetParams",
    "gem_network",
    "gem_network_init",
    "l0_gate",
]

RELAXATIONS = ("straight_through", "smooth", "hard")


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
    check_choice(relaxation, "relaxation", RELAXATIONS)
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
        pgd_steps: N_PGD, PGD steps of each M-step (at most, with ``pgd_tol``).
        cg_inv: N_CG(inv), CG steps of each Θ⁻¹ probe solve (Jacobi preconditioned).
        cg_e: N_CG(E), CG steps of each E-step (posterior mean, and C probes).
        second_order: the training gradient flows through the M-step's inner gradient
            (True) or treats it as a constant direction (False, ``stop_gradient``).
        estimator: the Θ⁻¹ and C edge terms' estimator (:mod:`glrjax.gem.estimators`;
            default ``Probes(num=16, key=0)``; ``Columns()``: the exact N right-hand sides).
        posterior_covariance: S̃ with C (probe estimators' C solves share the E-step CG).
        relaxation, temperature: the ℓ0 prox relaxation (:func:`l0_gate`).
        delta: δ in Θ = L + δI.
        radius: window radius of the graph (2: the 11,346-edge graph at 32×32).
        learn_cg: learn CG α/β per step (else CG computes them).
        metric: M-step metric (``"diagonal"``: D = 1/max(s, t₀)², see :func:`m_step`).
        max_ratio: each M-step caps the weights at ``max_ratio`` × their mean at its start
            (a box constraint in the prox). A single noisy sample makes the GMRF likelihood
            favour contracting some edges (w → ∞); one runaway edge would then dominate
            the graph's scale. ``math.inf`` disables the cap.
        tol: relative-residual tolerance of every inner CG (0: always the full counts).
        pgd_tol: each M-step's PGD stops on its relative fixed-point residual ≤ ``pgd_tol``
            (0: always ``pgd_steps`` steps).
        pgd_gradient: gradient mode of each M-step's PGD loop, whatever mode the inner
            solvers use. ``Unrolled()`` (default): the N_PGD steps are layers of the
            network, differentiated through like the GEM iterations (rematerialised with
            them under :class:`~glrjax.Checkpointed`). Another mode makes the PGD loop a
            solver differentiated that way; :class:`~glrjax.Implicit` differentiates its fixed
            point, which is the network's gradient only when ``pgd_tol`` is small and
            ``pgd_steps`` large enough to reach it (else the backward solve fails and says
            so, NaN under ``on_failure="nan"``).
        num_probes, route, probe_seed: deprecated spellings of ``estimator``
            (``Probes(num=num_probes, key=probe_seed)``, ``Columns()``, ``Dense()``).

    Each GEM iteration is rematerialised under :class:`~glrjax.Checkpointed`.
    """

    gem_iterations: int = 3
    pgd_steps: int = 5
    cg_inv: int = 4
    cg_e: int = 3
    second_order: bool = True
    estimator: EdgeTermEstimator | None = None
    posterior_covariance: bool = True
    relaxation: str = "straight_through"
    temperature: float = 0.25
    delta: float = 1e-2
    radius: int = 2
    learn_cg: bool = True
    metric: str = "diagonal"
    max_ratio: float = 10.0
    tol: float = 0.0
    pgd_tol: float = 0.0
    pgd_gradient: GradientMode = Unrolled()
    num_probes: int | None = None
    route: str | None = None
    probe_seed: int | None = None

    def __post_init__(self):
        for name in ("gem_iterations", "pgd_steps", "cg_inv", "cg_e", "radius"):
            check_maxiter(getattr(self, name), name)
        if self.num_probes is not None:
            check_maxiter(self.num_probes, "num_probes")
        est = resolve_estimator(
            self.estimator,
            self.route,
            self.num_probes,
            self.probe_seed,
            default=Probes(num=16, key=0),
            where="GEMNetConfig",
        )
        object.__setattr__(self, "estimator", est)
        for name in ("num_probes", "route", "probe_seed"):  # folded into the estimator
            object.__setattr__(self, name, None)
        check_choice(self.relaxation, "relaxation", RELAXATIONS)
        check_choice(self.metric, "metric", METRICS)
        if not self.delta > 0:
            raise ValueError(f"GEMNetConfig(delta={self.delta}) must be > 0, e.g. 1e-2.")
        if not self.temperature > 0:
            raise ValueError(f"GEMNetConfig(temperature={self.temperature}) must be > 0.")
        if not self.tol >= 0:
            raise ValueError(f"GEMNetConfig(tol={self.tol}) must be >= 0.")
        if not self.pgd_tol >= 0:
            raise ValueError(f"GEMNetConfig(pgd_tol={self.pgd_tol}) must be >= 0.")
        check_gradient(self.pgd_gradient, "pgd_gradient")
        _check_implicit(self.pgd_gradient)
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
    valid = jnp.asarray(valid_mask(base))
    delta = jnp.asarray(config.delta, dtype)
    estimator = config.estimator
    dense = isinstance(estimator, Dense)
    # One probe set for C and Θ⁻¹ (m_step draws the same): correlated errors cancel in
    # t(Θ⁻¹) − s (see gem_fit).
    z = None if dense else estimator.vectors(base, dtype)
    gate = l0_gate(config.relaxation, config.temperature)
    pc = config.posterior_covariance
    stacked = pc and not dense  # the C probes ride along in the E-step CG

    def graph_of(w):
        return with_weights(base, w)

    def correction_rhs(g, mu):
        # The E-step CG starts from y: x̂ = y + u with (I + μL)u = −μLy. A few steps from
        # zero lose the image's smooth content (their polynomial is far from 1/λ near λ = 1);
        # the correction's right-hand side has none.
        return -mu * g.laplacian_matvec(y)

    def gem_iteration(w, row):
        log_mu, log_gamma, log_step, ea, eb, ia, ib = row
        g = graph_of(w)
        mu = _relative_mu(log_mu, g)
        rhs = jnp.concatenate([correction_rhs(g, mu), z]) if stacked else correction_rhs(g, mu)
        sol, _ = glr_filter(
            rhs, g, mu, tol=config.tol, maxiter=config.cg_e, alpha=ea, beta=eb, gradient=gradient
        )
        x = y + sol[:s_count]
        s = jnp.mean(edge_differences(g, x) ** 2, axis=0)
        if stacked:
            s = s + mu * estimator.read(g, z, sol[s_count:])
        elif pc:
            s = s + mu * inverse_edge_terms(g, mu, estimator)[0]
        cap = None
        if not math.isinf(config.max_ratio):
            cap = jnp.asarray(config.max_ratio, dtype) * _mean_weight(w, valid)
        g, _ = m_step(
            g,
            s,
            delta,
            jnp.exp(log_gamma).astype(dtype),
            steps=config.pgd_steps,
            step=jnp.exp(log_step).astype(dtype),
            metric=config.metric,
            estimator=estimator,
            tol=config.tol,
            maxiter=config.cg_inv,
            pgd_tol=config.pgd_tol,
            gradient=config.pgd_gradient,
            cg_gradient=gradient,
            alpha=ia,
            beta=ib,
            prox=gate,
            cap=cap,
            second_order=config.second_order,
        )
        return g.weights, (g.weights, g.num_edges())

    if isinstance(gradient, Checkpointed):
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
    return x, GEMNetInfo(edges=edges, weights=weights, info=summary(info))


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

    ``gradient`` governs how the inner solvers (E-step CG, Θ⁻¹ probe CGs) are
    differentiated; the network's layers — the GEM iterations and the N_PGD steps of each
    M-step — are differentiated through (``config.pgd_gradient`` makes the PGD loop a
    solver with a mode of its own). Under :class:`~glrjax.Implicit` each CG solve is
    differentiated at its solution by backward CG, so the learned CG α/β get zero gradient
    by construction, and the gradient is the network's with converged inner solves.
    ``config.pgd_gradient=Implicit()`` differentiates each M-step at its PGD fixed point
    (:func:`m_step`: GMRES on VJPs, or the Neumann series with ``solver="neumann"``); that
    is right only where the PGD reaches its fixed point (``pgd_tol``, ``pgd_steps``) and
    fails — NaN under ``on_failure="nan"`` — where the backward system does not converge
    (with ``second_order=False`` it is singular on kept edges;
    ``Implicit(solver="neumann", maxiter=0)`` is Jacobian-free backprop).
    Under :class:`~glrjax.Checkpointed` each GEM iteration is also rematerialised.

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
    kw = dict(tol=1e-4)
    est = config.estimator

    def one(yk, f):
        g = GridGraph.mahalanobis(f, params.q, config.radius)
        mu = _relative_mu(params.log_mu[0], g)
        x, _ = glr_filter(yk, g, mu, tol=1e-4, maxiter=200)
        sample = jnp.mean(edge_differences(g, x) ** 2, axis=0)
        c, _ = inverse_edge_terms(g, mu, est, **kw)
        r, _ = theta_inverse_terms(g, delta, est, **kw)
        ratio = (r - mu * c) / sample
        valid = jnp.asarray(valid_mask(g))
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
        check_scalar(v, name, positive=True, example="1.0")
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
