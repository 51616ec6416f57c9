"""Seed 003's data generator for the reconstruction tests (shared by two test modules)."""

import numpy as np


def seed_small(seed=0):
    """Seed 003's generator at its small size (d, h, r, n) = (100, 200, 80, 10⁴), float64."""
    d, h, r, n = 100, 200, 80, 10_000
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((d, r)) @ rng.standard_normal((r, n))
    y = rng.standard_normal((h, d)) @ x
    return (x / d) @ (x.T / n), (y / d) @ (x.T / n)
