"""Batch sharding over 4 host devices equals the single-device results and gradients."""

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np
    jax.config.update("jax_enable_x64", True)
    import glrjax
    from glrjax.sharding import shard_batch

    assert jax.device_count() == 4, jax.devices()
    rng = np.random.default_rng(0)
    n, batch = 12, 8
    q = rng.standard_normal((n, n)); s = q @ q.T / n + np.eye(n)
    bs = jnp.asarray(rng.standard_normal((batch, n)))
    mus = jnp.asarray(rng.uniform(0.1, 2.0, batch))
    A = lambda x, mu: jnp.asarray(s) @ x + mu * x

    for mode in [glrjax.Unrolled(), glrjax.Checkpointed(every=4), glrjax.Truncated(last=3),
                 glrjax.Implicit(tol=1e-12)]:
        def solve(b, mu):
            return glrjax.cg(A, b, mu, tol=1e-12, maxiter=60, gradient=mode)

        sharded = shard_batch(solve)
        x, info = sharded(bs, mus)
        assert len(x.sharding.device_set) == 4, x.sharding
        x1, info1 = jax.jit(jax.vmap(solve))(bs, mus)
        np.testing.assert_allclose(x, x1, rtol=1e-12, atol=1e-14)
        np.testing.assert_array_equal(info.iterations, info1.iterations)
        for i in range(batch):
            np.testing.assert_allclose(x[i], np.linalg.solve(s + float(mus[i]) * np.eye(n), bs[i]),
                                       rtol=1e-9)

        def loss(bs, mus, f):
            return jnp.sum(f(bs, mus)[0] ** 2)

        g = jax.grad(loss, argnums=(0, 1))(bs, mus, sharded)
        g1 = jax.grad(loss, argnums=(0, 1))(bs, mus, jax.vmap(solve))
        # Truncated differentiates 3 CG steps restarted from x_{n-3}, whose residual
        # (~1e-10) has a direction set by rounding; α, β depend on that direction, so a
        # last-bit difference in x_{n-3} moves this gradient by ~1e-6 relative.
        rtol = 1e-5 if isinstance(mode, glrjax.Truncated) else 1e-10
        for a, b in zip(g, g1):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-13)
    try:
        shard_batch(solve)(bs[:6], mus[:6])
        raise AssertionError("uneven batch accepted")
    except ValueError as err:
        assert "multiple" in str(err)
    print("SHARDED-OK")
    """
)


def test_sharded_batch_equals_single_device():
    env = dict(os.environ)
    env["XLA_FLAGS"] = env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    env["JAX_PLATFORMS"] = "cpu"
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "SHARDED-OK" in out.stdout


def test_uneven_batch_is_rejected():
    import jax
    import jax.numpy as jnp

    from glrjax.sharding import batch_mesh, shard_batch

    mesh = batch_mesh(jax.devices()[:1] * 1)
    f = shard_batch(lambda b: b * 2, mesh=mesh)
    assert f(jnp.ones((3, 2))).shape == (3, 2)
    with pytest.raises(ValueError, match="leading axis"):
        shard_batch(lambda b: b, in_axes=1, mesh=mesh)(jnp.ones((2, 2)))
