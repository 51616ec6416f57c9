"""The layer loop shared by uGLR and uGTV: features → normalised graph → interpolation solve."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from glrjax._validate import check_float_array
from glrjax.graph import GridGraph
from glrjax.networks.features import bilinear_interpolate, cnn_apply, cnn_init, normalized_graph


class UnrolledParams(NamedTuple):
    """Learnable parameters of an unrolled graph network, stacked over its L layers."""

    cnn: tuple  # feature CNN per layer: {"w": (L, out, in, 3, 3), "b": (L, out)} dicts
    q: jax.Array  # (L, F, F): Mahalanobis metric factor Q of each layer's graph
    log_mu: jax.Array  # (L,): log μ, each layer's regularisation weight (μ = exp(log_mu) > 0)
    # (L, K) learned CG steps of each layer as logarithms (α, β > 0), or None: CG computes them
    log_alpha: jax.Array | None = None
    log_beta: jax.Array | None = None


def check_config(config, name: str) -> None:
    for field in ("layers", "channels", "features", "hidden", "depth", "radius", "maxiter"):
        v = getattr(config, field)
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise ValueError(f"{name}.{field}={v!r} must be a Python int >= 1.")
    if not isinstance(getattr(config, "learn_cg", False), bool):
        raise TypeError(f"{name}.learn_cg={config.learn_cg!r} must be True or False.")
    if config.depth < 2:
        raise ValueError(f"{name}.depth={config.depth} must be >= 2 (input and output convs).")


def init(key, config, dtype, mu: float, steps=None):
    """Per-layer CNNs (He init), Q = I, μ = ``mu`` and CG ``steps`` = (α, β) in every layer."""
    channels = (config.channels,) + (config.hidden,) * (config.depth - 1) + (config.features,)
    keys = jax.random.split(key, config.layers)
    cnns = [cnn_init(k, channels, dtype) for k in keys]
    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *cnns)
    q = jnp.tile(jnp.eye(config.features, dtype=dtype), (config.layers, 1, 1))
    log_mu = jnp.full((config.layers,), np.log(mu), dtype)
    if steps is None:
        return UnrolledParams(stacked, q, log_mu)
    # the last β multiplies a direction no step uses; keep its logarithm finite
    log_a, log_b = (jnp.log(jnp.maximum(jnp.asarray(v, dtype), 1e-6)) for v in steps)
    tile = lambda v: jnp.tile(v, (config.layers, 1))  # noqa: E731
    return UnrolledParams(stacked, q, log_mu, tile(log_a), tile(log_b))


def apply(params, y, mask, config, solve, x0):
    """Run the L layers; ``solve(y, mask, graph, mu, x0, steps) -> (x, info)`` is one layer's
    solve, ``steps`` its learned CG (α, β) or None."""
    if not isinstance(params, UnrolledParams):
        raise TypeError(
            f"params must be UnrolledParams (from *_init), got {type(params).__name__}."
        )
    y = check_float_array(y, "y")
    dtype = y.dtype
    if y.ndim < 3 or y.shape[-3] != config.channels:
        raise ValueError(
            f"y has shape {y.shape}; the network expects (..., C, H, W) with "
            f"C = config.channels = {config.channels}."
        )
    mask = jnp.asarray(mask)
    if mask.dtype != jnp.bool_:
        raise TypeError(f"mask has dtype {mask.dtype}; it must be boolean (True = observed).")
    if mask.shape[-3:] != y.shape[-3:]:
        raise ValueError(f"mask has shape {mask.shape}; it needs y's (..., C, H, W) {y.shape}.")
    if params.log_mu.shape != (config.layers,):
        raise ValueError(
            f"params have {params.log_mu.shape[0]} layers but config.layers = {config.layers}."
        )
    learned = getattr(config, "learn_cg", False)
    if learned != (params.log_alpha is not None):
        have = "no learned CG steps" if params.log_alpha is None else "learned CG steps"
        raise ValueError(
            f"config.learn_cg={learned} but params have {have}; make the parameters with "
            "the network's *_init(key, config) for this config."
        )
    steps_shape = (config.layers, config.maxiter)
    if learned and not (params.log_alpha.shape == params.log_beta.shape == steps_shape):
        raise ValueError(
            f"params.log_alpha/log_beta have shapes {params.log_alpha.shape}/"
            f"{params.log_beta.shape}; config needs (layers, maxiter) = {steps_shape}."
        )
    x = bilinear_interpolate(y, mask) if x0 is None else check_float_array(x0, "x0").astype(dtype)
    h, w = y.shape[-2:]

    def layer(x, p):
        cnn, q, log_mu, log_a, log_b = p
        f = cnn_apply(cnn, x)
        g = normalized_graph(f, q.astype(dtype), config.radius)
        # one graph per image, shared by its C channels (a batch axis of size 1 before K)
        g = GridGraph(g.weights[..., None, :, :, :], g.offsets, h, w)
        steps = None if log_a is None else (jnp.exp(log_a), jnp.exp(log_b))
        return solve(y, mask, g, jnp.exp(log_mu).astype(dtype), x, steps)

    return jax.lax.scan(layer, x, tuple(params))
