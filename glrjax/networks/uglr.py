"""uGLR: the unrolled graph Laplacian regularizer network (Do et al., NeurIPS 2024).

Layer l: features f = CNN_l(x_{l−1}) → normalised graph W_l (:func:`normalized_graph`) →
x_l = argmin ‖Hx − y‖² + μ_l xᵀL_l x, i.e. (HᵀH + μ_l L_l)x = Hᵀy by ``maxiter`` CG steps
started at x_{l−1} (:func:`glrjax.glr_interpolate`). x_0 is the bilinear interpolation.
With ``learn_cg=True`` each layer's CG takes learned steps α_k, β_k (Jacobi-preconditioned,
initialised as Chebyshev iteration), trained with the rest under the unrolled modes.

>>> import jax, jax.numpy as jnp
>>> from glrjax.networks import UGLRConfig, uglr, uglr_init, num_params
>>> cfg = UGLRConfig(layers=2, channels=1, maxiter=5)
>>> p = uglr_init(jax.random.key(0), cfg)
>>> y = jnp.ones((1, 8, 8)); mask = jnp.zeros((1, 8, 8), bool).at[:, ::2, ::2].set(True)
>>> x, info = uglr(p, y, mask, cfg)
>>> x.shape, num_params(p), bool(jnp.allclose(x, 1.0, atol=1e-5))
((1, 8, 8), 1786, True)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from glrjax.gradients import GradientMode, Implicit, Unrolled, check_gradient
from glrjax.interpolate import glr_interpolate
from glrjax.linear import chebyshev_steps
from glrjax.networks import _unrolled
from glrjax.networks._unrolled import UnrolledParams

__all__ = ["UGLRConfig", "uglr", "uglr_init"]


class UGLRConfig(NamedTuple):
    """Static architecture of uGLR (hashable: pass it as a static argument).

    ``tol = 0`` makes every layer take exactly ``maxiter`` CG steps; in float32, steps taken
    long after convergence drive r·r towards underflow and the unrolled backward to NaN
    (measured at K = 50 on 16×16), so the default stops (freezes) at tol = 1e-6.
    """

    layers: int = 4  # L: unrolled layers, each with its own graph, μ and feature CNN
    channels: int = 3  # C: image channels (3 for RGB, 1 for grey)
    features: int = 3  # F: features per pixel (the CNN's output channels, Q is F×F)
    hidden: int = 8  # hidden channels of each layer's feature CNN
    depth: int = 3  # conv layers of each feature CNN (3×3 kernels)
    radius: int = 1  # window radius of each layer's graph (8 neighbours for 1)
    maxiter: int = 10  # K: CG steps per layer
    tol: float = 1e-6  # CG tolerance; converged steps are frozen (see below)
    learn_cg: bool = False  # learn each layer's CG α_k, β_k (Jacobi-preconditioned; see uglr)


_DEFAULT = UGLRConfig()


# Lower end of the Chebyshev interval for learned CG steps: the Jacobi-preconditioned
# HᵀH + μL of Bayer and 2× masks on normalised graphs measured [0.08, 1.53] for μ in [0.1, 2].
_CHEBYSHEV_LO = 0.05


def uglr_init(key, config: UGLRConfig = _DEFAULT, dtype=jnp.float32, mu: float = 0.5):
    """Initial parameters: He-initialised CNNs, Q = I and μ = ``mu`` in every layer.

    With ``config.learn_cg`` every layer's CG α_k, β_k start as Chebyshev iteration on
    [0.05, 2] (:func:`glrjax.chebyshev_steps`): Jacobi preconditioning puts the spectrum of
    HᵀH + μL below 2 for every graph and μ (I − D⁻¹μW with D⁻¹μW's row sums below 1), so
    these steps are stable on any image.
    """
    _unrolled.check_config(config, "config")
    steps = chebyshev_steps(_CHEBYSHEV_LO, 2.0, config.maxiter) if config.learn_cg else None
    return _unrolled.init(key, config, dtype, mu, steps)


def uglr(
    params: UnrolledParams,
    y,
    mask,
    config: UGLRConfig = _DEFAULT,
    *,
    gradient: GradientMode = Unrolled(),
    x0=None,
) -> tuple[jax.Array, object]:
    """Interpolate ``y`` (..., C, H, W) observed where ``mask`` is True with uGLR.

    Args:
        params: from :func:`uglr_init` (a pytree; trained with optax).
        y, mask: observations and boolean mask, both ``(..., C, H, W)``.
        config: the architecture (static).
        gradient: gradient mode of every layer's CG solve.
        x0: initial estimate (default: :func:`bilinear_interpolate`).

    Returns:
        ``(x, infos)``: the estimate (y's shape and dtype) and each layer's CG
        :class:`~glrjax.Info` stacked on a leading axis of length L.
    """
    gradient = check_gradient(gradient)
    _unrolled.check_config(config, "config")
    if config.learn_cg and isinstance(gradient, Implicit):
        raise ValueError(
            "config.learn_cg=True with gradient=Implicit(): the implicit gradient of a "
            "solve does not depend on the CG steps, so the learned α/β would get a zero "
            "gradient. Use Unrolled(), Checkpointed(every) or Truncated(last), or "
            "learn_cg=False."
        )

    def solve(y, mask, g, mu, x, steps):
        alpha, beta = (None, None) if steps is None else steps
        return glr_interpolate(
            y,
            mask,
            g,
            mu,
            x0=x,
            tol=config.tol,
            maxiter=config.maxiter,
            gradient=gradient,
            precond="jacobi" if config.learn_cg else None,
            alpha=alpha,
            beta=beta,
        )

    return _unrolled.apply(params, y, mask, config, solve, x0)
