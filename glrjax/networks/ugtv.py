"""uGTV: the unrolled graph total variation network (Do et al., NeurIPS 2024).

Layer l: f = CNN_l(x_{l−1}) → normalised graph W_l → ``maxiter`` primal-dual steps on
min ½‖Hx − y‖² + μ_l Σ w_ij |x_i − x_j| started at x_{l−1} (:func:`glrjax.gtv_interpolate`).

>>> import jax, jax.numpy as jnp
>>> from glrjax.networks import UGTVConfig, ugtv, ugtv_init
>>> cfg = UGTVConfig(layers=2, channels=1, maxiter=5)
>>> y = jnp.ones((1, 8, 8)); mask = jnp.zeros((1, 8, 8), bool).at[:, ::2, ::2].set(True)
>>> x, info = ugtv(ugtv_init(jax.random.key(0), cfg), y, mask, cfg)
>>> x.shape, bool(jnp.allclose(x, 1.0, atol=1e-5))
((1, 8, 8), True)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from glrjax.gradients import GradientMode, Unrolled, check_gradient
from glrjax.interpolate import gtv_interpolate
from glrjax.networks import _unrolled
from glrjax.networks._unrolled import UnrolledParams

__all__ = ["UGTVConfig", "ugtv", "ugtv_init"]


class UGTVConfig(NamedTuple):
    """Static architecture of uGTV (hashable: pass it as a static argument)."""

    layers: int = 4  # L: unrolled layers, each with its own graph, μ and feature CNN
    channels: int = 3  # C: image channels
    features: int = 3  # F: features per pixel (Q is F×F)
    hidden: int = 8  # hidden channels of each feature CNN
    depth: int = 3  # conv layers of each feature CNN
    radius: int = 1  # window radius of each layer's graph
    maxiter: int = 10  # primal-dual steps per layer
    tol: float = 0.0  # primal-dual tolerance (0: always maxiter steps)


_DEFAULT = UGTVConfig()


def ugtv_init(key, config: UGTVConfig = _DEFAULT, dtype=jnp.float32, mu: float = 0.05):
    """Initial parameters: He-initialised CNNs, Q = I and μ = ``mu`` in every layer."""
    _unrolled.check_config(config, "config")
    return _unrolled.init(key, config, dtype, mu)


def ugtv(
    params: UnrolledParams,
    y,
    mask,
    config: UGTVConfig = _DEFAULT,
    *,
    gradient: GradientMode = Unrolled(),
    x0=None,
) -> tuple[jax.Array, object]:
    """Interpolate ``y`` (..., C, H, W) observed where ``mask`` is True with uGTV.

    Arguments and returns as in :func:`glrjax.networks.uglr`; ``gradient`` applies to
    every layer's primal-dual solve.
    """
    gradient = check_gradient(gradient)
    _unrolled.check_config(config, "config")

    def solve(y, mask, g, mu, x, steps):  # steps: None (uGTV has no CG)
        return gtv_interpolate(
            y, mask, g, mu, x0=x, tol=config.tol, maxiter=config.maxiter, gradient=gradient
        )

    return _unrolled.apply(params, y, mask, config, solve, x0)
