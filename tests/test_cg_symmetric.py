"""CG's gradient w.r.t. a dense matrix: Unrolled/Checkpointed give its symmetric part only.

The reference is ``jax.grad`` through ``jnp.linalg.solve`` (a dense LU solve, independent of
CG). See docs/guide/gradient-modes.md and benchmarks/cg_symmetric.py.
"""

import jax
import jax.numpy as jnp
import numpy as np

import glrjax


def spd(n, cond, seed):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    m = q @ np.diag(np.geomspace(1.0, cond, n)) @ q.T
    return jnp.asarray(0.5 * (m + m.T)), jnp.asarray(rng.standard_normal(n)), rng


def loss_cg(mode):
    def loss(m, b, c):
        x, _ = glrjax.cg(lambda v, m: m @ v, b, m, tol=1e-14, maxiter=60, gradient=mode)
        return 0.5 * jnp.sum((x - c) ** 2)

    return loss


def sym(g):
    return 0.5 * (g + g.T)


def test_unrolled_gives_the_symmetric_part_and_implicit_the_full_gradient():
    m, b, rng = spd(8, 100.0, 0)
    c = jnp.asarray(rng.standard_normal(8))
    ref = jax.grad(lambda m: 0.5 * jnp.sum((jnp.linalg.solve(m, b) - c) ** 2))(m)
    scale = float(jnp.max(jnp.abs(ref)))
    for mode in [glrjax.Unrolled(), glrjax.Checkpointed(5)]:
        g = jax.grad(loss_cg(mode))(m, b, c)
        np.testing.assert_allclose(sym(g), sym(ref), atol=1e-10 * scale)
        # The antisymmetric part is the recurrence's, not the solve's: the raw gradients differ.
        assert float(jnp.max(jnp.abs(g - ref))) > 1e-4 * scale
    g = jax.grad(loss_cg(glrjax.Implicit(tol=1e-14)))(m, b, c)
    np.testing.assert_allclose(g, ref, atol=1e-10 * scale)
