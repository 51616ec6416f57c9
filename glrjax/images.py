"""Procedurally generated test images: piecewise-smooth scenes with noise, no download.

>>> from glrjax.images import piecewise_smooth, noisy
>>> clean = piecewise_smooth(32, seed=0)
>>> clean.shape, float(clean.min()) >= 0.0, float(clean.max()) <= 1.0
((32, 32), True, True)
>>> noisy(clean, sigma=0.1, seed=1).shape
(32, 32)
"""

from __future__ import annotations

import numpy as np

__all__ = ["piecewise_smooth", "noisy"]


def piecewise_smooth(size: int = 32, seed: int = 0, dtype=np.float32) -> np.ndarray:
    """A ``size × size`` image in [0, 1]: smooth gradients cut by sharp edges.

    A linear ramp plus a few discs and rectangles of constant offset and a soft blob, so
    that a graph filter must keep edges while smoothing flat regions.
    """
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, size)
    yy, xx = np.meshgrid(t, t, indexing="ij")
    angle = rng.uniform(0, 2 * np.pi)
    img = 0.3 + 0.25 * (np.cos(angle) * xx + np.sin(angle) * yy)
    for _ in range(3):  # discs
        cy, cx, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.1, 0.25)
        img += (
            rng.choice([-1, 1]) * rng.uniform(0.15, 0.3) * ((yy - cy) ** 2 + (xx - cx) ** 2 < r**2)
        )
    for _ in range(2):  # rectangles
        y0, x0 = rng.uniform(0.0, 0.6, 2)
        h, w = rng.uniform(0.15, 0.4, 2)
        inside = (yy > y0) & (yy < y0 + h) & (xx > x0) & (xx < x0 + w)
        img += rng.choice([-1, 1]) * rng.uniform(0.1, 0.25) * inside
    cy, cx = rng.uniform(0.3, 0.7, 2)
    img += 0.15 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.02)
    img = (img - img.min()) / (img.max() - img.min())
    return img.astype(dtype)


def noisy(image: np.ndarray, sigma: float = 0.1, seed: int = 0) -> np.ndarray:
    """``image`` plus i.i.d. Gaussian noise of standard deviation ``sigma``."""
    rng = np.random.default_rng(seed)
    return (image + sigma * rng.standard_normal(image.shape)).astype(image.dtype)
