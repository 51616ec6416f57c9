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


def _run_on_4_host_devices(script: str, marker: str) -> None:
    env = dict(os.environ)
    env["XLA_FLAGS"] = env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    env["JAX_PLATFORMS"] = "cpu"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert marker in out.stdout


def test_sharded_batch_equals_single_device():
    _run_on_4_host_devices(SCRIPT, "SHARDED-OK")


def test_uneven_batch_is_rejected():
    import jax
    import jax.numpy as jnp

    from glrjax.sharding import batch_mesh, shard_batch

    mesh = batch_mesh(jax.devices()[:1] * 1)
    f = shard_batch(lambda b: b * 2, mesh=mesh)
    assert f(jnp.ones((3, 2))).shape == (3, 2)
    with pytest.raises(ValueError, match="leading axis"):
        shard_batch(lambda b: b, in_axes=1, mesh=mesh)(jnp.ones((2, 2)))


GRAPH_SCRIPT = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np
    jax.config.update("jax_enable_x64", True)
    import glrjax
    from glrjax import gem
    from glrjax.graph.knn import knn_edges
    from glrjax.sharding import pad_edges, shard_graph, shard_nodes

    assert jax.device_count() == 4, jax.devices()
    rng = np.random.default_rng(0)
    n = 400
    src, dst = knn_edges(rng.uniform(size=(n, 2)), 4)
    w = np.where(rng.uniform(size=src.size) < 0.5, rng.uniform(0.5, 1.5, src.size), 0.0)
    truth = glrjax.EdgeGraph(jnp.asarray(src), jnp.asarray(dst), jnp.asarray(w), n)
    x, info = gem.sample_gmrf(truth, 0.5, 64, jax.random.key(0))
    assert bool(info.converged.all())
    y = x + 0.1 * jax.random.normal(jax.random.key(1), x.shape)
    assert src.size % 4, src.size  # this size's edge count must not divide, to test the error
    try:
        shard_graph(truth.with_weights(jnp.ones(src.size)))
        raise AssertionError("an edge count that does not divide was accepted")
    except ValueError as err:
        assert "pad_edges" in str(err)
    g0 = pad_edges(truth.with_weights(jnp.ones(src.size)), 4)
    assert g0.src.shape[0] % 4 == 0 and g0.src.shape[0] - src.size < 4
    kw = dict(sigma=0.1, delta=0.5, gamma=0.1, iterations=3, steps=5,
              estimator=gem.Coloured(distance=2))
    g1, h1 = gem.gem_fit(y, g0, **kw)
    gs, ys = shard_graph(g0), shard_nodes(y, g0)
    assert tuple(ys.sharding.spec) == (None, "nodes")
    assert tuple(gs.weights.sharding.spec) == ("nodes",)
    g2, h2 = gem.gem_fit(ys, gs, **kw)
    assert len(g2.weights.sharding.device_set) == 4
    np.testing.assert_allclose(g2.weights, g1.weights, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(h2.edges, h1.edges)
    assert int(h1.edges[-1]) < src.size  # it learned something: edges were cut
    # The padding self-loops stay at weight 0 (never candidates).
    assert np.all(np.asarray(g1.weights)[src.size:] == 0)

    # The partitioned program really communicates: the compiled text has collectives.
    f = jax.jit(lambda y, w: glrjax.glr_filter(y, g0.with_weights(w), 1.0, tol=1e-12)[0])
    hlo = f.lower(ys, gs.weights).compile().as_text()
    assert any(c in hlo for c in ("all-gather", "all-reduce", "collective-permute")), "no comms"
    np.testing.assert_allclose(f(ys, gs.weights), f(y, g0.weights), rtol=1e-10, atol=1e-12)

    # A stencil: GridGraph rows across devices, values and weight gradients.
    grid = glrjax.GridGraph.window(16, 12, radius=2, dtype=jnp.float64)
    gw = jnp.asarray(np.where(np.asarray(grid.weights) > 0,
                              rng.uniform(0.2, 1.0, grid.weights.shape), 0.0))
    grid = grid.with_weights(gw)
    img = jnp.asarray(rng.standard_normal((2, 16, 12)))
    loss = lambda g, yy: jnp.sum(glrjax.glr_filter(yy, g, 2.0, tol=1e-12)[0] ** 2)
    v1, d1 = jax.value_and_grad(loss)(grid, img)
    sg, si = shard_graph(grid), shard_nodes(img, grid)
    assert tuple(sg.weights.sharding.spec) == (None, "nodes", None)
    v2, d2 = jax.jit(jax.value_and_grad(loss))(sg, si)
    np.testing.assert_allclose(v2, v1, rtol=1e-10)
    np.testing.assert_allclose(d2.weights, d1.weights, rtol=1e-8, atol=1e-12)
    try:
        shard_graph(glrjax.GridGraph.window(6, 4, radius=1))
        raise AssertionError("height 6 over 4 devices accepted")
    except ValueError as err:
        assert "multiple" in str(err)
    print("GRAPH-SHARDED-OK")
    """
)


def test_one_graph_sharded_over_4_devices_equals_single_device():
    _run_on_4_host_devices(GRAPH_SCRIPT, "GRAPH-SHARDED-OK")


def test_graph_sharding_bad_input():
    import jax.numpy as jnp

    import glrjax
    from glrjax.sharding import batch_mesh, pad_edges, shard_graph, shard_nodes

    g = glrjax.GridGraph.window(4, 4, radius=1)
    mesh = batch_mesh(axis_name="nodes")
    with pytest.raises(ValueError, match="node shape"):
        shard_nodes(jnp.ones((3, 4)), g, mesh)
    with pytest.raises(TypeError, match="EdgeGraph"):
        pad_edges(g, 4)
    with pytest.raises(TypeError, match="EdgeGraph or a GridGraph"):
        shard_graph(object(), mesh)
