"""GNN layers against dense numpy references and finite differences; the edge prox step."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import glrjax
from glrjax import gnn

H, W = 4, 5


def grid_graph(rng, dtype=jnp.float64):
    g = glrjax.GridGraph.window(H, W, radius=1, dtype=dtype)
    w = rng.uniform(0.2, 2.0, g.weights.shape) * g.valid_mask()
    return g.with_weights(jnp.asarray(w, dtype))


def edge_graph(rng, n=12, e=30, dtype=jnp.float64):
    src = rng.integers(0, n, e)
    dst = (src + rng.integers(1, n, e)) % n  # no self-loops
    return glrjax.EdgeGraph(
        jnp.asarray(src), jnp.asarray(dst), jnp.asarray(rng.uniform(0.2, 2.0, e), dtype), n
    )


def dense_adjacency(graph):
    """W as numpy: from the edge list itself (EdgeGraph) or D − L (grids, tested elsewhere)."""
    if isinstance(graph, glrjax.EdgeGraph):
        n = graph.num_nodes
        a = np.zeros((n, n))
        for i, j, w in zip(graph.src, graph.dst, np.asarray(graph.weights), strict=True):
            a[i, j] += w
            a[j, i] += w
        return a
    lap = np.asarray(glrjax.to_dense(graph))
    return np.diag(np.diag(lap)) - lap


def dense_gcn_operator(graph):
    a = dense_adjacency(graph) + np.eye(graph.num_nodes)
    s = 1.0 / np.sqrt(a.sum(1))
    return s[:, None] * a * s[None, :]


GRAPHS = {"grid": grid_graph, "edge": edge_graph}


@pytest.mark.parametrize("kind", GRAPHS)
def test_propagation_and_layer_equal_the_dense_formula(kind):
    rng = np.random.default_rng(0)
    g = GRAPHS[kind](rng)
    n, shape = g.num_nodes, g.node_shape
    a_hat = dense_gcn_operator(g)
    x = rng.standard_normal((2,) + shape)  # two signals
    out = np.asarray(gnn.gcn_propagate(g, jnp.asarray(x))).reshape(2, n)
    np.testing.assert_allclose(out, x.reshape(2, n) @ a_hat.T, rtol=1e-12, atol=1e-12)
    # The renormalised operator's largest eigenvalue is 1 (eigenvector √(d + 1)).
    assert abs(np.linalg.eigvalsh(a_hat)[-1] - 1) < 1e-12
    p = gnn.gcn_init(jax.random.key(1), 3, 4, jnp.float64)
    p = p._replace(bias=jnp.asarray(rng.standard_normal(4)))
    feats = rng.standard_normal((2, 3) + shape)  # (B, F, *node_shape)
    h = np.asarray(gnn.gcn_layer(p, g, jnp.asarray(feats)))
    assert h.shape == (2, 4) + shape
    xf = feats.reshape(2, 3, n)
    ref = (
        np.einsum("ij,bfj,fo->boi", a_hat, xf, np.asarray(p.weight))
        + np.asarray(p.bias)[None, :, None]
    )
    np.testing.assert_allclose(h.reshape(2, 4, n), ref, rtol=1e-12, atol=1e-12)


def test_layer_takes_one_graph_per_image():
    rng = np.random.default_rng(2)
    graphs = [grid_graph(rng) for _ in range(2)]
    batched = graphs[0].with_weights(jnp.stack([g.weights for g in graphs]))
    p = gnn.gcn_init(jax.random.key(0), 2, 3, jnp.float64)
    x = jnp.asarray(rng.standard_normal((2, 2, H, W)))
    h = gnn.gcn_layer(p, batched, x)
    for b in range(2):
        np.testing.assert_allclose(h[b], gnn.gcn_layer(p, graphs[b], x[b]), rtol=1e-12)


@pytest.mark.parametrize("kind", GRAPHS)
def test_gradients_wrt_edge_weights_and_parameters_match_finite_differences(kind):
    rng = np.random.default_rng(3)
    g = GRAPHS[kind](rng)
    p1 = gnn.gcn_init(jax.random.key(0), 2, 4, jnp.float64)
    p2 = gnn.gcn_init(jax.random.key(1), 4, 1, jnp.float64)
    x = jnp.asarray(rng.standard_normal((2,) + g.node_shape))
    target = jnp.asarray(rng.standard_normal((1,) + g.node_shape))

    def loss(w, p1):
        gw = g.with_weights(w)
        h = jax.nn.tanh(gnn.gcn_layer(p1, gw, x))
        return jnp.sum((gnn.gcn_layer(p2, gw, h) - target) ** 2)

    gw, gp = jax.jit(jax.grad(loss, argnums=(0, 1)))(g.weights, p1)
    eps = 1e-6
    mask = np.asarray(g.valid_mask(), np.float64)
    v = jnp.asarray(rng.standard_normal(g.weights.shape) * mask)
    fd = (loss(g.weights + eps * v, p1) - loss(g.weights - eps * v, p1)) / (2 * eps)
    np.testing.assert_allclose(jnp.vdot(gw, v), fd, rtol=1e-7)
    assert abs(float(fd)) > 1e-3  # a real, non-zero directional derivative
    dw = jnp.asarray(rng.standard_normal(p1.weight.shape))
    plus, minus = (p1._replace(weight=p1.weight + s * eps * dw) for s in (1, -1))
    fd = (loss(g.weights, plus) - loss(g.weights, minus)) / (2 * eps)
    np.testing.assert_allclose(jnp.vdot(gp.weight, dw), fd, rtol=1e-7)


def test_float32_jit_vmap_and_no_recompilation_when_weights_change():
    rng = np.random.default_rng(4)
    g = grid_graph(rng, jnp.float32)
    p = gnn.gcn_init(jax.random.key(0), 2, 3)
    traces = []

    @jax.jit
    def f(w, x):
        traces.append(1)
        return gnn.gcn_layer(p, g.with_weights(w), x)

    x = jnp.asarray(rng.standard_normal((2, H, W)), jnp.float32)
    h1, h2 = f(g.weights, x), f(2 * g.weights, x)
    assert h1.dtype == jnp.float32 and len(traces) == 1
    assert not np.allclose(h1, h2)
    hb = jax.vmap(lambda w: gnn.gcn_layer(p, g.with_weights(w), x))(
        jnp.stack([g.weights, 2 * g.weights])
    )
    np.testing.assert_allclose(hb[1], h2, rtol=1e-5)


@pytest.mark.parametrize("prox", [glrjax.prox.nonneg_l0, glrjax.prox.nonneg_l1])
def test_edge_prox_after_adam_cuts_exactly_the_edges_below_threshold(prox):
    rng = np.random.default_rng(5)
    lam = 0.02
    params = {
        "w": jnp.asarray(rng.uniform(0.0, 0.4, 200)),
        "theta": jnp.asarray(rng.standard_normal(5)),
    }
    grads = {"w": jnp.asarray(rng.standard_normal(200)), "theta": jnp.ones(5)}
    mask = {"w": True, "theta": False}
    tx = optax.chain(optax.adam(0.1), optax.masked(gnn.edge_prox(prox, lam), mask))
    updates, _ = tx.update(grads, tx.init(params), params)
    new = optax.apply_updates(params, updates)
    adam = optax.adam(0.1)
    plain, _ = adam.update(grads, adam.init(params), params)
    stepped = np.asarray(params["w"] + plain["w"])
    if prox is glrjax.prox.nonneg_l0:  # keep w only where w² > 2λ (and w > 0)
        expected = np.where((stepped > 0) & (stepped**2 > 2 * lam), stepped, 0.0)
    else:
        expected = np.maximum(stepped - lam, 0.0)
    w = np.asarray(new["w"])
    assert np.all(w >= 0)
    np.testing.assert_array_equal(w == 0, expected == 0)  # exactly the cut edges are 0
    np.testing.assert_allclose(w, expected, rtol=1e-12, atol=1e-15)
    assert 0 < np.sum(w == 0) < w.size  # the step cut some edges, not all
    np.testing.assert_allclose(new["theta"], params["theta"] + plain["theta"], rtol=1e-12)


def test_bad_input_gets_clear_errors():
    rng = np.random.default_rng(6)
    g = grid_graph(rng)
    p = gnn.gcn_init(jax.random.key(0), 3, 2, jnp.float64)
    with pytest.raises(ValueError, match="F_in=3"):
        gnn.gcn_layer(p, g, jnp.ones((2, H, W)))
    with pytest.raises(ValueError, match="shape"):
        gnn.gcn_propagate(g, jnp.ones((H + 1, W)))
    with pytest.raises(ValueError, match="negative edge weights"):
        gnn.gcn_propagate(g.with_weights(-g.weights), jnp.ones((H, W)))
    with pytest.raises(ValueError, match="gcn_init"):
        gnn.gcn_layer(p._replace(bias=jnp.ones(3)), g, jnp.ones((3, H, W)))
    with pytest.raises(ValueError, match="features_out"):
        gnn.gcn_init(jax.random.key(0), 3, 0)
    with pytest.raises(TypeError, match="prox"):
        gnn.edge_prox(0.1, 0.1)
    tx = gnn.edge_prox(glrjax.prox.nonneg_l0, 0.1)
    with pytest.raises(ValueError, match="params"):
        tx.update(jnp.ones(3), tx.init(None))
