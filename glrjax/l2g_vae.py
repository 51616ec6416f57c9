"""L2G-VAE (Pu et al., NeurIPS 2021): unrolled primal-dual layers with a topological-difference VAE.

The network of "Learning to Learn Graph Topologies" maps the pairwise distances ``z`` of
smooth signals to the edge weights of a graph. Its first layers are the unrolled primal-dual
iteration of :func:`glrjax.l2g.l2g_unrolled` (Condat–Vũ on the log-degree model, per-layer
τ_t, σ_t, α_t, β_t); in the **last** layer the proximal projection max(0, ·) of the primal
update is replaced by a variational autoencoder, the paper's *TopoDiffVAE*, that refines the
estimate so that it acquires the topology of the training graphs (where the paper's released
code puts it: ``learn2graph.forward``, the last unrolled layer).

TopoDiffVAE here (plain pytrees, pure JAX):

- an **encoder** e (MLP, tanh) on an edge vector;
- a **posterior** over a latent code h from the *topological difference* of the encodings of
  the ground-truth graph and of the estimate, d = e(w*) − e(p), p = max(0, v) the projected
  estimate: mean μ = A_μ d + b_μ and log-variance −|A_s d + b_s| (variance ≤ 1, as in the
  paper); h = μ + exp(½ log-var)·ε with ε ~ N(0, I) drawn from an explicit key;
- a **decoder** (MLP, tanh) on [p, h] that outputs a correction, plus a small graph-aware
  MLP shared by all edges (ours, not the paper's): on each edge it sees the weight p_e/s
  and the two-step path weight c_e/s² = (P²)_e/s² of the estimate (s its typical strong
  weight), so it can learn the weight distribution of the training graphs and how much of
  an edge is two-hop correlation, at a cost that does not grow with E²:
  ŵ = max(0, p + dec(p, h) + s·edge(p/s, c/s²)), residual and non-negative. Both last layers
  start at zero, so an untrained block is exactly the projection it replaces and L2G-VAE
  starts as the Unrolling network.

At test time there is no w*: h is the prior mean 0 (or, given a key, a draw of the prior
N(0, I), which is what the paper's ``refine`` does), so the network is deterministic.

The training objective (:func:`l2g_vae_loss`) is the paper's, term for term: the GMSE of the
network's output plus the VAE's reconstruction error Σ_e (ŵ_e − w*_e)² plus the KL term
KL(q(h | d) ‖ N(0, I)) averaged over the latent dimensions, with weight ``kl_weight = 1``
(the β of a β-VAE; their ``kl_hyper``) — each averaged over the batch. One difference: the
paper's unrolling term weights every layer's GMSE by 0.9^(T−t); we use the last layer's
only (their ``dn=None`` option), because storing every layer's output is what the
checkpointed and implicit gradient modes exist to avoid.

Gradient modes apply to the unrolled part (the first T − 1 layers), which runs on the engine
(:func:`glrjax.iterate.iterate`) as an :class:`~glrjax.iterate.Iteration`; the last layer
and the VAE are always differentiated by plain backprop. ``Unrolled``, ``Checkpointed`` and
``Truncated`` run exactly the T − 1 layers (same forward pass). ``Implicit`` runs layer t's
step for t < T − 1 and then keeps repeating layer T − 2's step to its fixed point (``tol``,
``maxiter``): a deep-equilibrium version of the network whose gradient flows to layer T − 2's
parameters, the last layer and the VAE; the earlier layers get zero gradient by construction.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from glrjax import _krylov
from glrjax._validate import check_float_array, check_maxiter, check_nonnegative, check_tol
from glrjax.gradients import GradientMode, Implicit, Unrolled, check_gradient
from glrjax.iterate import Info, Iteration, iterate
from glrjax.l2g import (
    L2GParams,
    _check_z,
    _grad_f,
    _prox_neglog,
    _prox_nonneg,
    _triu,
    degrees,
    gmse,
    init_l2g_params,
    num_nodes,
)
from glrjax.primal_dual import primal_dual_step

__all__ = [
    "L2GVAEOutput",
    "L2GVAEParams",
    "VAEParams",
    "init_l2g_vae_params",
    "init_vae_params",
    "l2g_vae",
    "l2g_vae_loss",
    "load_params",
    "save_params",
    "vae_block",
]


# ---------------------------------------------------------------------------- the VAE


class VAEParams(NamedTuple):
    """Weights of the TopoDiffVAE block; every layer is a ``(W, b)`` pair, ``y = x @ W + b``."""

    enc: tuple  # encoder MLP: ((W E×H, b H), (W H×F, b F)), tanh after each layer
    mean: tuple  # posterior mean head: (W F×Z, b Z)
    logvar: tuple  # posterior log-variance head (−|·| applied): (W F×Z, b Z)
    dec: tuple  # decoder MLP on [p, h]: ((W (E+Z)×G, b G), (W G×E, b E)), tanh between
    edge: tuple  # shared per-edge MLP, (p_e/s, c_e/s²) -> correction: ((2×K, K), (K×1, 1))


class L2GVAEParams(NamedTuple):
    """Parameters of :func:`l2g_vae`."""

    unrolled: L2GParams  # per-layer τ_t, σ_t, α_t, β_t of the T layers, each of shape (T,)
    vae: VAEParams  # the TopoDiffVAE block of the last layer


class L2GVAEOutput(NamedTuple):
    """What :func:`l2g_vae` returns."""

    w: jax.Array  # (E,) non-negative edge weights: the VAE block's output
    kl: jax.Array  # KL(q(h | d) ‖ N(0, I)), mean over latent dimensions (0 at test time)
    info: Info  # the engine's report on the unrolled part (T − 1 layers)


EDGE_FEATURES = 2  # inputs of the per-edge MLP: p_e / s and c_e / s² (see _edge_features)


def _dense(key, fan_in: int, fan_out: int, dtype, gain: float = 1.0, zero: bool = False):
    if zero:
        w = jnp.zeros((fan_in, fan_out), dtype)
    else:  # Xavier-uniform, as the paper's init_weights
        lim = gain * math.sqrt(6.0 / (fan_in + fan_out))
        w = jax.random.uniform(key, (fan_in, fan_out), dtype, -lim, lim)
    return (w, jnp.zeros((fan_out,), dtype))


def init_vae_params(
    key,
    num_nodes: int,
    *,
    hidden: int = 32,
    features: int = 16,
    latent: int = 16,
    dec_hidden: int | None = None,
    edge_hidden: int = 16,
    dtype=jnp.float32,
) -> VAEParams:
    """TopoDiffVAE weights for graphs of ``num_nodes`` nodes (E = N(N−1)/2 edges).

    Sizes default to the paper's: encoder hidden 32, graph features 16, latent 16, decoder
    hidden ⌊2N(N−1)/3⌋; ``edge_hidden`` units in the per-edge MLP. The last layers of the
    decoder and of the per-edge MLP are zero, so the block starts as max(0, ·).

    >>> p = init_vae_params(jax.random.key(0), 10)
    >>> p.enc[0][0].shape, p.dec[0][0].shape, p.dec[1][0].shape
    ((45, 32), (61, 60), (60, 45))
    """
    key = _check_key(key, "key")
    if not isinstance(num_nodes, int) or num_nodes < 3:
        raise ValueError(f"num_nodes={num_nodes!r} must be an int >= 3.")
    e = num_nodes * (num_nodes - 1) // 2
    g = dec_hidden if dec_hidden is not None else int(num_nodes * (num_nodes - 1) * 2 / 3)
    sizes = [("hidden", hidden), ("features", features), ("latent", latent), ("dec_hidden", g),
             ("edge_hidden", edge_hidden)]  # fmt: skip
    for name, v in sizes:
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}={v!r} must be a positive int.")
    tanh_gain = 5.0 / 3.0
    k = jax.random.split(key, 7)
    return VAEParams(
        enc=(_dense(k[0], e, hidden, dtype, tanh_gain), _dense(k[1], hidden, features, dtype)),
        mean=_dense(k[2], features, latent, dtype, tanh_gain),
        logvar=_dense(k[3], features, latent, dtype, tanh_gain),
        dec=(_dense(k[4], e + latent, g, dtype, tanh_gain), _dense(k[5], g, e, dtype, zero=True)),
        edge=(
            _dense(k[6], EDGE_FEATURES, edge_hidden, dtype, tanh_gain),
            _dense(k[6], edge_hidden, 1, dtype, zero=True),
        ),
    )


def _check_key(key, name: str):
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    arr = key if isinstance(key, jax.Array | np.ndarray) else None
    if arr is not None and arr.dtype == jnp.uint32 and arr.shape == (2,):
        return key  # a raw jax.random.PRNGKey
    raise TypeError(
        f"{name} must be a JAX PRNG key, e.g. {name}=jax.random.key(0), got "
        f"{type(key).__name__}{getattr(key, 'shape', '')}."
    )


def _mlp(layers, x):
    for i, (w, b) in enumerate(layers):
        x = _krylov.matmul(x, w) + b
        if i < len(layers) - 1:
            x = jnp.tanh(x)
    return x


def _unit(layers, x, k):
    """Hidden unit k of the per-edge MLP on every edge: (tanh(x w1_k + b1_k), w1_k, w2_k)."""
    (w1, b1), (w2, _) = layers
    return jnp.tanh(x @ w1[:, k] + b1[k]), w1[:, k], w2[k, 0]


@jax.custom_jvp
def _edge_mlp(layers, x):
    """The per-edge MLP Σ_k w2_k tanh(x_e · w1_k + b1_k) + b2 on the (E, F) edge features
    ``x``, one hidden unit at a time.

    Plain backprop would store the (E, K) hidden activations of every graph in the batch:
    at N = 20, batch 32 that was 1.0 of the VAE block's 1.3 MB and set the floor of every
    gradient mode. The JVP rule below loops over the K units with a rematerialised body, so
    reverse mode (its transpose) keeps (E,)-sized buffers only and recomputes each tanh.
    """

    def body(k, acc):
        h, _, w2k = _unit(layers, x, k)
        return acc + w2k * h

    out = jax.lax.fori_loop(0, layers[0][1].shape[0], body, jnp.zeros(x.shape[:1], x.dtype))
    return out + layers[1][1][0]


@_edge_mlp.defjvp
def _edge_mlp_jvp(primals, tangents):
    layers, x = primals
    ((dw1, db1), (dw2, db2)), dx = tangents

    @jax.checkpoint
    def body(k, acc):
        h, w1k, w2k = _unit(layers, x, k)
        d_pre = x @ dw1[:, k] + dx @ w1k + db1[k]
        return acc + w2k * (1.0 - h * h) * d_pre + dw2[k, 0] * h  # tanh' = 1 − tanh²

    dout = jax.lax.fori_loop(0, db1.shape[0], body, jnp.zeros(x.shape[:1], x.dtype)) + db2[0]
    return _edge_mlp(layers, x), dout


def _edge_features(p):
    """Per-edge inputs of the per-edge MLP: (p_e / s, c_e / s²) and the scale s.

    s = Σ p_e² / Σ p_e is the typical weight of the estimate's strong edges (1 when p = 0),
    so the features do not depend on the graph's overall scale; c_ij = Σ_k p_ik p_kj is the
    weight of the two-step paths between i and j. Smooth signals make nodes with many common
    neighbours look close even when they are not adjacent, and the unrolled estimate keeps
    part of that two-hop correlation as a spurious or inflated edge; c_e lets the shared MLP
    learn how much to discount it. On 20-node ER and RG graphs a lookup table on
    (p_e/s, c_e/s²), fitted on the training graphs, lowers the Unrolling network's test GMSE
    to 0.37× and 0.70×; one on p_e/s alone only to 0.98× and 0.92×
    (``benchmarks/l2g_edge_features.py``).
    """
    total = jnp.sum(p)
    scale = jnp.where(total > 0, jnp.sum(p * p) / jnp.where(total > 0, total, 1.0), 1.0)
    q = p / scale
    return jnp.stack([q, _two_step(q)], axis=-1), scale


@functools.lru_cache
def _edge_index(e: int):
    """(index, i, j): entry (a, b) of the N×N adjacency is edge index[a, b] (E: none)."""
    n = num_nodes(e)
    i, j = _triu(n)
    index = np.full((n, n), e)
    index[i, j] = index[j, i] = np.arange(e)
    return index, i, j


def _adjacency(q):
    """The (N, N) adjacency of an edge vector by a gather (entry E is a zero)."""
    index, i, j = _edge_index(q.shape[-1])
    return jnp.concatenate([q, jnp.zeros((1,), q.dtype)])[index], (i, j)


@jax.custom_jvp
def _two_step(q):
    """c_ij = (A²)_ij on every edge, A the adjacency of ``q``."""
    a, (i, j) = _adjacency(q)
    return (a @ a)[i, j]


@_two_step.defjvp
def _two_step_jvp(primals, tangents):
    # d(A²) = dA·A + A·dA = T + Tᵀ with T = dA·A (A symmetric): reverse mode (the transpose)
    # then needs A and two (N, N) buffers, not the four of differentiating A·A directly.
    (q,), (dq,) = primals, tangents
    a, (i, j) = _adjacency(q)
    t = _adjacency(dq)[0] @ a
    return (a @ a)[i, j], t[i, j] + t[j, i]


def _encode(vae: VAEParams, w):
    return jnp.tanh(_mlp(vae.enc, w))


def _num_edges(vae: VAEParams) -> int:
    return vae.dec[1][0].shape[-1]


def _latent(vae: VAEParams) -> int:
    return vae.mean[0].shape[-1]


def vae_block(vae: VAEParams, v, *, target=None, key=None) -> tuple[jax.Array, jax.Array]:
    """The TopoDiffVAE refinement of a pre-projection edge vector ``v``: ``(ŵ ≥ 0, KL)``.

    Training (``target`` = the true edge weights w*): h ~ q(h | e(w*) − e(max(0, v))) by the
    reparameterisation trick with ε from ``key`` (``key=None``: h = the posterior mean).
    Test (``target=None``): h = 0, the prior mean, or a prior draw when ``key`` is given;
    KL is 0.

    Args:
        vae: :class:`VAEParams`.
        v: (E,) edge vector (any sign; ``jax.vmap`` for a batch).
        target: (E,) non-negative true weights (training) or None (test).
        key: PRNG key of ε (training) or of the prior draw (test), or None.

    Returns:
        ``(w, kl)``: the (E,) non-negative refined weights and the scalar KL term.

    >>> vae = init_vae_params(jax.random.key(0), 5)
    >>> v = jnp.linspace(-1.0, 1.0, 10)
    >>> w, kl = vae_block(vae, v)  # untrained block = the projection max(0, v)
    >>> bool(jnp.allclose(w, jnp.maximum(v, 0))), float(kl)
    (True, 0.0)
    """
    if not isinstance(vae, VAEParams):
        raise TypeError(f"vae must be a VAEParams (see init_vae_params), got {type(vae).__name__}.")
    v = check_float_array(v, "v")
    e = _num_edges(vae)
    if v.shape != (e,):
        raise ValueError(
            f"v has shape {v.shape}; this VAE was built for {e} edges, shape ({e},). "
            "Use jax.vmap for a batch."
        )
    if key is not None:
        key = _check_key(key, "key")
    vae = jax.tree_util.tree_map(lambda a: a.astype(v.dtype), vae)
    p = jnp.maximum(v, 0.0)
    zdim = _latent(vae)
    if target is None:
        h = jnp.zeros((zdim,), v.dtype)
        if key is not None:
            h = jax.random.normal(key, (zdim,), v.dtype)
        kl = jnp.zeros((), v.dtype)
    else:
        target = _check_target(target, e, v.dtype)
        d = _encode(vae, target) - _encode(vae, p)  # the topological difference
        mu = _krylov.matmul(d, vae.mean[0]) + vae.mean[1]
        logvar = -jnp.abs(_krylov.matmul(d, vae.logvar[0]) + vae.logvar[1])
        kl = -0.5 * jnp.mean(1.0 + logvar - mu * mu - jnp.exp(logvar))
        h = mu
        if key is not None:
            h = mu + jnp.exp(0.5 * logvar) * jax.random.normal(key, (zdim,), v.dtype)
    # The per-edge branch reweights the edges the estimate has (p_e > 0); it adds none.
    feats, scale = _edge_features(p)
    edge = jnp.where(p > 0, scale * _edge_mlp(vae.edge, feats), 0.0)
    w = jnp.maximum(p + _mlp(vae.dec, jnp.concatenate([p, h])) + edge, 0.0)
    return w, kl


def _check_target(target, e: int, dtype):
    target = check_float_array(target, "target")
    if target.shape != (e,):
        raise ValueError(f"target has shape {target.shape}; it must be the ({e},) true weights.")
    check_nonnegative(target, "target", "the true edge weights w* >= 0")
    return target.astype(dtype)


# ------------------------------------------------------------------------ the network


class _State(NamedTuple):
    w: jax.Array  # primal iterate: edge weights
    y: jax.Array  # dual iterate: one entry per node
    residual: jax.Array  # relative change of (w, y) in the last step


def _layer_params(prm: L2GParams, k, last: int):
    j = jnp.minimum(k, last)  # Implicit's forward repeats layer `last` to its fixed point
    return tuple(a[j] for a in prm)


def _iteration(layers: int, dtype) -> Iteration:
    """The T − 1 engine layers; params = (z, L2GParams) (nothing traced is closed over)."""
    last = layers - 2  # index of the last engine layer; layer T − 1 holds the VAE

    def step(state, p, k):
        z, prm = p
        tau, sigma, alpha, beta = _layer_params(prm, k, last)
        w, y = primal_dual_step(
            lambda u, _: degrees(u), state.w, state.y, (z, alpha, beta), tau, sigma,
            _grad_f, _prox_nonneg, _prox_neglog,
        )  # fmt: skip
        change = jnp.sqrt(jnp.sum((w - state.w) ** 2) + jnp.sum((y - state.y) ** 2))
        size = jnp.sqrt(jnp.sum(w * w) + jnp.sum(y * y))
        return _State(w, y, _krylov.safe_div(change, size) + jnp.where(size > 0, 0.0, change))

    def init(p, x0):
        return _State(x0[0], x0[1], jnp.asarray(jnp.finfo(dtype).max, dtype))

    def optimality(x, p):
        new = step(_State(x[0], x[1], jnp.zeros((), dtype)), p, last)
        return (new.w - x[0], new.y - x[1])

    return Iteration(
        init=init,
        step=step,
        residual=lambda s: s.residual,
        solution=lambda s: (s.w, s.y),
        optimality=optimality,
    )


def init_l2g_vae_params(
    key, num_nodes: int, layers: int, alpha, beta, *, dtype=jnp.float32, **vae_sizes
) -> L2GVAEParams:
    """Parameters of :func:`l2g_vae`: the unrolled layers of :func:`glrjax.l2g.init_l2g_params`
    (exactly ``layers`` steps of :func:`glrjax.l2g.l2g` with ``alpha``, ``beta``) and a fresh
    TopoDiffVAE (:func:`init_vae_params`; ``vae_sizes`` are its size keywords).

    >>> p = init_l2g_vae_params(jax.random.key(0), 20, 20, 1.0, 0.5)
    >>> p.unrolled.tau.shape, p.vae.dec[1][0].shape
    ((20,), (253, 190))
    """
    layers = check_maxiter(layers, "layers")
    if layers < 2:
        raise ValueError(f"layers={layers} must be >= 2 (the last layer holds the VAE).")
    unrolled = init_l2g_params(num_nodes, layers, alpha, beta, dtype)
    return L2GVAEParams(unrolled, init_vae_params(key, num_nodes, dtype=dtype, **vae_sizes))


def _check_params(params, e: int, dtype) -> L2GVAEParams:
    if not isinstance(params, L2GVAEParams):
        raise TypeError(
            f"params must be an L2GVAEParams (see init_l2g_vae_params), got "
            f"{type(params).__name__}."
        )
    un = params.unrolled
    if not isinstance(un, L2GParams):
        raise TypeError(f"params.unrolled must be an L2GParams, got {type(un).__name__}.")
    shapes = {jnp.shape(p) for p in un}
    if len(shapes) != 1 or len(next(iter(shapes))) != 1 or next(iter(shapes))[0] < 2:
        raise ValueError(
            "params.unrolled.tau, sigma, alpha and beta must all have shape (layers,) with "
            f"layers >= 2, got {[jnp.shape(p) for p in un]}; see init_l2g_vae_params."
        )
    if _num_edges(params.vae) != e:
        n_vae = (1 + math.isqrt(1 + 8 * _num_edges(params.vae))) // 2
        n_z = (1 + math.isqrt(1 + 8 * e)) // 2
        raise ValueError(
            f"z has {e} entries ({n_z} nodes) but params were built for {n_vae} nodes "
            f"({_num_edges(params.vae)} entries): pass distances of {n_vae}-node signals or "
            f"init_l2g_vae_params(key, {n_z}, ...)."
        )
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a).astype(dtype), params)


def l2g_vae(
    z,
    params: L2GVAEParams,
    *,
    target=None,
    key=None,
    gradient: GradientMode = Unrolled(),
    tol=1e-6,
    maxiter: int = 1000,
) -> L2GVAEOutput:
    """The L2G-VAE network: T − 1 unrolled primal-dual layers, then a last layer whose primal
    projection is the TopoDiffVAE block (:func:`vae_block`).

    Args:
        z: (N(N−1)/2,) pairwise squared distances (:func:`glrjax.l2g.distances`);
            ``jax.vmap`` for a batch.
        params: :class:`L2GVAEParams` (:func:`init_l2g_vae_params`).
        target: the (N(N−1)/2,) true weights w* at training time (the VAE's posterior needs
            them); None at test time.
        key: PRNG key of the VAE's sample (training) or prior draw (test); None: the mean.
        gradient: gradient mode of the T − 1 unrolled layers (see the module docstring):
            ``Unrolled()``, ``Checkpointed(every)``, ``Truncated(last)`` or ``Implicit()``.
        tol, maxiter: stopping rule of ``Implicit``'s forward pass to the fixed point
            (relative change of (w, y) <= tol); the other modes run exactly T − 1 layers.

    Returns:
        :class:`L2GVAEOutput` ``(w, kl, info)``.

    >>> import jax, jax.numpy as jnp
    >>> from glrjax.l2g import l2g_unrolled
    >>> z = jnp.array([0.1, 4.0, 4.0, 4.0, 4.0, 0.1])
    >>> p = init_l2g_vae_params(jax.random.key(0), 4, 20, 1.0, 0.1, dtype=jnp.float64)
    >>> out = l2g_vae(z, p)  # untrained: the VAE block is the projection it replaces
    >>> bool(jnp.allclose(out.w, l2g_unrolled(z, p.unrolled)))
    True
    """
    z, _ = _check_z(z)
    check_gradient(gradient)
    maxiter = check_maxiter(maxiter)
    check_tol(tol)
    e = z.shape[0]
    params = _check_params(params, e, z.dtype)
    if key is not None:
        key = _check_key(key, "key")
    if target is not None:
        target = _check_target(target, e, z.dtype)
    layers = params.unrolled.tau.shape[0]
    n = (1 + math.isqrt(1 + 8 * e)) // 2
    x0 = (jnp.zeros_like(z), jnp.zeros((n,), z.dtype))
    it = _iteration(layers, z.dtype)
    if isinstance(gradient, Implicit):
        run_tol, run_max = tol, max(maxiter, layers - 1)
    else:
        run_tol, run_max = 0.0, layers - 1
    (w, y), info = iterate(
        it, (z, params.unrolled), x0, tol=run_tol, maxiter=run_max, gradient=gradient
    )
    # The last layer: Condat–Vũ's primal update with the VAE in place of max(0, ·).
    tau, sigma, alpha, beta = (a[-1] for a in params.unrolled)
    kty = jax.linear_transpose(degrees, w)(y)[0]
    v = w - tau * (_grad_f(w, (z, alpha, beta)) + kty)
    w_out, kl = vae_block(params.vae, v, target=target, key=key)
    return L2GVAEOutput(w_out, kl, info)


def l2g_vae_loss(
    params: L2GVAEParams,
    z,
    w_true,
    key,
    *,
    kl_weight=1.0,
    gradient: GradientMode = Unrolled(),
    tol=1e-6,
    maxiter: int = 1000,
) -> jax.Array:
    """The paper's training objective on a batch: mean over graphs of
    GMSE(ŵ, w*) + ‖ŵ − w*‖² + ``kl_weight``·KL (see the module docstring).

    Args:
        params: :class:`L2GVAEParams`.
        z: (B, E) distances; w_true: (B, E) true weights (non-negative).
        key: PRNG key, split into one per graph for the VAE's samples.
        kl_weight: β of the KL term (the paper's ``kl_hyper`` = 1); traced.
        gradient, tol, maxiter: as in :func:`l2g_vae`.

    >>> from glrjax.l2g import synthetic_dataset
    >>> z, w = synthetic_dataset("BA", 2, 8, 200)
    >>> p = init_l2g_vae_params(jax.random.key(0), 8, 5, 1.0, 0.5, dtype=jnp.float64)
    >>> bool(jnp.isfinite(l2g_vae_loss(p, z, w, jax.random.key(1))))
    True
    """
    z = check_float_array(z, "z")
    w_true = check_float_array(w_true, "w_true")
    if z.ndim != 2 or w_true.shape != z.shape:
        raise ValueError(
            f"z and w_true must both be (batch, edges); got {z.shape} and {w_true.shape}."
        )
    check_nonnegative(w_true, "w_true", "the true edge weights w* >= 0")
    key = _check_key(key, "key")
    keys = jax.random.split(key, z.shape[0])

    def one(zz, ww, kk):
        out = l2g_vae(zz, params, target=ww, key=kk, gradient=gradient, tol=tol, maxiter=maxiter)
        return gmse(out.w, ww) + jnp.sum((out.w - ww) ** 2) + kl_weight * out.kl

    return jnp.mean(jax.vmap(one)(z, w_true, keys))


# ------------------------------------------------------------------------ save / load


def _template() -> L2GVAEParams:
    pair = (0, 0)
    vae = VAEParams((pair, pair), pair, pair, (pair, pair), (pair, pair))
    return L2GVAEParams(L2GParams(0, 0, 0, 0), vae)


def save_params(path, params: L2GVAEParams) -> None:
    """Save trained :class:`L2GVAEParams` to a numpy ``.npz`` file (one array per leaf).

    >>> import tempfile, os
    >>> p = init_l2g_vae_params(jax.random.key(0), 5, 3, 1.0, 0.5)
    >>> f = os.path.join(tempfile.mkdtemp(), "p.npz")
    >>> save_params(f, p)
    >>> q = load_params(f)
    >>> all(bool((a == b).all()) for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(q)))
    True
    """
    if not isinstance(params, L2GVAEParams):
        raise TypeError(f"params must be an L2GVAEParams, got {type(params).__name__}.")
    leaves, _ = jax.tree_util.tree_flatten_with_path(params)
    if jax.tree_util.tree_structure(params) != jax.tree_util.tree_structure(_template()):
        raise ValueError("params do not have the structure of init_l2g_vae_params' output.")
    arrays = {
        f"{i:03d}{jax.tree_util.keystr(kp)}": np.asarray(leaf)
        for i, (kp, leaf) in enumerate(leaves)
    }
    np.savez(path, **arrays)


def load_params(path) -> L2GVAEParams:
    """Load :class:`L2GVAEParams` written by :func:`save_params` (numpy arrays)."""
    with np.load(path) as data:
        names = sorted(data.files)
        leaves = [data[k] for k in names]
    tree = jax.tree_util.tree_structure(_template())
    if len(leaves) != tree.num_leaves:
        raise ValueError(
            f"{path} holds {len(leaves)} arrays, not the {tree.num_leaves} of L2GVAEParams."
        )
    return jax.tree_util.tree_unflatten(tree, [jnp.asarray(a) for a in leaves])
