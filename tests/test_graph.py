"""Graphs: stencil, edge-list and dense Laplacians agree with a brute-force numpy reference."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import glrjax
from glrjax import EdgeGraph, GridGraph


def reference_adjacency(weights, height, width, radius):
    """Dense adjacency by looping over pixel pairs within Chebyshev distance ``radius``.

    Independent of glrjax's slicing: the weight of pair (p, q) is looked up from the
    stencil entry whose offset is q - p (or p - q).
    """
    offsets = [
        (dy, dx)
        for dy in range(radius + 1)
        for dx in range(-radius, radius + 1)
        if (dy, dx) > (0, 0)
    ]
    n = height * width
    a = np.zeros((n, n))
    for i in range(height):
        for j in range(width):
            for k, (dy, dx) in enumerate(offsets):
                i2, j2 = i + dy, j + dx
                if 0 <= i2 < height and 0 <= j2 < width:
                    p, q = i * width + j, i2 * width + j2
                    a[p, q] += weights[k, i, j]
                    a[q, p] += weights[k, i, j]
    return a


def laplacian(a):
    return np.diag(a.sum(1)) - a


# A few grid shapes (tiny, a single row/column, radius beyond the grid) so that compiled
# functions are reused across examples; the weights vary freely.
SHAPES = [(1, 1, 1), (1, 5, 2), (4, 1, 3), (3, 4, 1), (5, 6, 2), (6, 5, 3), (2, 2, 2)]


@st.composite
def grids(draw):
    height, width, radius = draw(st.sampled_from(SHAPES))
    k = ((2 * radius + 1) ** 2 - 1) // 2
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.0, 2.0, (k, height, width))
    w[rng.uniform(size=w.shape) < 0.3] = 0.0  # some zero-weight edges
    return height, width, radius, w, rng


def test_window_count_matches_the_seed_graph():
    g = GridGraph.window(32, 32, radius=2)
    assert len(g.offsets) == 12 and g.weights.shape == (12, 32, 32)
    assert int(glrjax.num_edges(g)) == 11346
    e = g.to_edges()
    assert e.src.shape == (11346,) and int(glrjax.num_edges(e)) == 11346
    # Brute force: unordered pixel pairs within Chebyshev distance 2 on a 32×32 grid.
    ii, jj = np.divmod(np.arange(1024), 32)
    close = np.maximum(np.abs(ii[:, None] - ii[None]), np.abs(jj[:, None] - jj[None])) <= 2
    assert (close.sum() - 1024) // 2 == 11346


def test_window_offsets_count_and_half_property():
    for r in range(1, 5):
        offs = glrjax.window_offsets(r)
        assert len(offs) == ((2 * r + 1) ** 2 - 1) // 2
        full = set(offs) | {(-dy, -dx) for dy, dx in offs}
        assert len(full) == 2 * len(offs) and (0, 0) not in full


@given(grids())
def test_stencil_edge_list_and_dense_agree_and_laplacian_is_valid(case):
    height, width, radius, w, rng = case
    g = GridGraph.window(height, width, radius, w)
    a_ref = reference_adjacency(w, height, width, radius)
    l_ref = laplacian(a_ref)
    x = rng.standard_normal((height, width))

    out = jax.tree_util.tree_map(np.asarray, _everything(g, jnp.asarray(x)))
    np.testing.assert_allclose(out["dense"], l_ref, atol=1e-12)
    np.testing.assert_allclose(out["dense_e"], l_ref, atol=1e-12)
    np.testing.assert_allclose(out["lx"].ravel(), l_ref @ x.ravel(), atol=1e-12)
    np.testing.assert_allclose(out["lx_e"], l_ref @ x.ravel(), atol=1e-12)
    # Symmetric PSD with L·1 = 0.
    dense = out["dense"]
    np.testing.assert_allclose(dense, dense.T, atol=0)
    assert np.linalg.eigvalsh(dense).min() >= -1e-10
    np.testing.assert_allclose(out["l1"], 0.0, atol=1e-12)
    # Degrees and edge counts.
    np.testing.assert_allclose(out["deg"].ravel(), a_ref.sum(1), atol=1e-12)
    np.testing.assert_allclose(out["deg_e"], a_ref.sum(1), atol=1e-12)
    n_ref = int(np.sum(np.triu(a_ref, 1) > 0))
    assert int(out["n"]) == n_ref == int(out["n_e"])


@jax.jit
def _everything(g, x):
    e = g.to_edges()
    return dict(
        dense=glrjax.to_dense(g),
        dense_e=glrjax.to_dense(e),
        lx=glrjax.laplacian_matvec(g, x),
        lx_e=glrjax.laplacian_matvec(e, x.ravel()),
        l1=glrjax.laplacian_matvec(g, jnp.ones_like(x)),
        deg=glrjax.degree(g),
        deg_e=glrjax.degree(e),
        n=glrjax.num_edges(g),
        n_e=glrjax.num_edges(e),
    )


def test_off_grid_entries_are_ignored_and_window_zeroes_them():
    rng = np.random.default_rng(0)
    h, w, r = 4, 5, 2
    k = len(glrjax.window_offsets(r))
    weights = rng.uniform(0.5, 1.0, (k, h, w))  # every entry positive, off-grid ones too
    raw = GridGraph(jnp.asarray(weights), glrjax.window_offsets(r), h, w)
    masked = GridGraph.window(h, w, r, weights)
    a_ref = reference_adjacency(weights, h, w, r)
    x = rng.standard_normal((h, w))
    for g in (raw, masked):
        np.testing.assert_allclose(
            np.asarray(g.laplacian_matvec(x)).ravel(), laplacian(a_ref) @ x.ravel(), atol=1e-12
        )
        np.testing.assert_allclose(np.asarray(g.degree()).ravel(), a_ref.sum(1), atol=1e-12)
        assert int(g.num_edges()) == int(np.sum(np.triu(a_ref, 1) > 0))
    # window() stores zeros off the grid: e.g. offset (0, 1) in the last column.
    kk = masked.offsets.index((0, 1))
    assert np.all(np.asarray(masked.weights[kk, :, -1]) == 0)
    assert np.all(np.asarray(masked.weights[kk, :, :-1]) > 0)


def test_zero_weights_cut_edges():
    g = GridGraph.window(3, 4, radius=1, weights=jnp.zeros((4, 3, 4)))
    assert int(g.num_edges()) == 0
    x = jnp.arange(12.0).reshape(3, 4)
    assert np.all(np.asarray(g.laplacian_matvec(x)) == 0)
    # Cut the graph into two halves (columns 0-1 | 2-3): each half's constant is in the kernel.
    w = np.asarray(GridGraph.window(3, 4, radius=1).weights).copy()
    for k, (_, dx) in enumerate(glrjax.window_offsets(1)):
        for j in range(4):
            if (j < 2) != (j + dx < 2):
                w[k, :, j] = 0.0
    g = GridGraph.window(3, 4, 1, w)
    step = np.repeat([[0.0, 0.0, 1.0, 1.0]], 3, axis=0)
    np.testing.assert_allclose(np.asarray(g.laplacian_matvec(step)), 0.0, atol=1e-15)
    assert np.sum(np.linalg.eigvalsh(np.asarray(g.to_dense())) < 1e-10) == 2


def test_batched_weights_each_image_its_own_graph():
    rng = np.random.default_rng(1)
    h, w, r = 3, 4, 1
    weights = rng.uniform(0, 1, (2, 3, 4, h, w))
    g = GridGraph.window(h, w, r, weights)
    assert g.batch_shape == (2, 3)
    x = rng.standard_normal((2, 3, h, w))
    out = np.asarray(g.laplacian_matvec(x))
    shared = np.asarray(g.laplacian_matvec(x[0, 0]))  # one signal on every graph
    e = g.to_edges()
    assert e.weights.shape[:2] == (2, 3)
    out_e = np.asarray(e.laplacian_matvec(x.reshape(2, 3, -1)))
    dense = np.asarray(g.to_dense())
    assert dense.shape == (2, 3, h * w, h * w)
    assert np.asarray(g.num_edges()).shape == (2, 3)
    for i in range(2):
        for j in range(3):
            l_ref = laplacian(reference_adjacency(weights[i, j], h, w, r))
            np.testing.assert_allclose(out[i, j].ravel(), l_ref @ x[i, j].ravel(), atol=1e-12)
            np.testing.assert_allclose(out_e[i, j], l_ref @ x[i, j].ravel(), atol=1e-12)
            np.testing.assert_allclose(shared[i, j].ravel(), l_ref @ x[0, 0].ravel(), atol=1e-12)
            np.testing.assert_allclose(dense[i, j], l_ref, atol=1e-12)
    # vmap over graphs gives the same as the built-in batch axes.
    vm = jax.vmap(jax.vmap(glrjax.laplacian_matvec))(g, jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(vm), out, atol=1e-12)


def test_edge_graph_general_graph_with_duplicates_and_self_loops():
    rng = np.random.default_rng(2)
    n, e = 7, 15
    src = rng.integers(0, n, e)
    dst = rng.integers(0, n, e)
    w = rng.uniform(0, 1, e)
    g = EdgeGraph(jnp.asarray(src), jnp.asarray(dst), jnp.asarray(w), n)
    a = np.zeros((n, n))
    for s, d, ww in zip(src, dst, w, strict=True):
        if s != d:  # a self-loop adds nothing to L
            a[s, d] += ww
            a[d, s] += ww
    x = rng.standard_normal(n)
    np.testing.assert_allclose(np.asarray(g.laplacian_matvec(x)), laplacian(a) @ x, atol=1e-12)
    np.testing.assert_allclose(np.asarray(g.to_dense()), laplacian(a), atol=1e-12)


def test_gaussian_and_mahalanobis_weights_match_numpy():
    rng = np.random.default_rng(3)
    h, w, r, c, m = 4, 5, 2, 3, 2
    img = rng.uniform(size=(h, w))
    feats = rng.standard_normal((c, h, w))
    q = rng.standard_normal((c, m))
    sigma = 0.3
    gg = GridGraph.gaussian(img, r, sigma)
    gm = GridGraph.mahalanobis(feats, q, r)
    mq = q @ q.T
    for k, (dy, dx) in enumerate(gg.offsets):
        for i in range(h):
            for j in range(w):
                i2, j2 = i + dy, j + dx
                if 0 <= i2 < h and 0 <= j2 < w:
                    d = img[i, j] - img[i2, j2]
                    np.testing.assert_allclose(
                        gg.weights[k, i, j], np.exp(-(d**2) / (2 * sigma**2))
                    )
                    f = feats[:, i, j] - feats[:, i2, j2]
                    np.testing.assert_allclose(gm.weights[k, i, j], np.exp(-f @ mq @ f), rtol=1e-12)
                else:
                    assert gg.weights[k, i, j] == 0 and gm.weights[k, i, j] == 0
    # The edge-list form on the same edges gives the same weights.
    e = gm.to_edges()
    em = EdgeGraph.mahalanobis(e.src, e.dst, feats.reshape(c, -1).T, q)
    np.testing.assert_allclose(np.asarray(em.weights), np.asarray(e.weights), rtol=1e-12)


def test_mahalanobis_weights_differentiable_in_features_and_q():
    rng = np.random.default_rng(4)
    h, w, c, m = 3, 4, 2, 2
    feats = rng.standard_normal((c, h, w))
    q = rng.standard_normal((c, m)) * 0.5
    x = rng.standard_normal((h, w))

    def f(feats, q):  # a scalar through the weights and the Laplacian
        g = GridGraph.mahalanobis(feats, q, radius=1)
        return jnp.sum(jnp.sin(g.laplacian_matvec(x)))

    gf, gq = jax.grad(f, argnums=(0, 1))(feats, q)
    eps = 1e-6
    for arr, grad, argnum in [(feats, gf, 0), (q, gq, 1)]:
        for idx in [np.unravel_index(i, arr.shape) for i in range(0, arr.size, 3)]:
            e = np.zeros_like(arr)
            e[idx] = eps
            args_p = [feats, q]
            args_m = [feats, q]
            args_p[argnum] = arr + e
            args_m[argnum] = arr - e
            fd = (f(*args_p) - f(*args_m)) / (2 * eps)
            np.testing.assert_allclose(grad[idx], fd, rtol=1e-6, atol=1e-9)


BROADCASTS = [((), ()), ((2,), ()), ((), (2,)), ((2,), (2,)), ((1,), (3,)), ((3,), (1,))]


@pytest.mark.parametrize("kind", ["grid", "edge"])
@pytest.mark.parametrize("wb,xb", BROADCASTS, ids=[f"w{a}-x{b}" for a, b in BROADCASTS])
def test_matvec_gradients_match_closed_form_under_broadcasting(kind, wb, xb):
    """For loss = Σ c·Lx: ∂/∂x = Lc and ∂/∂w_pq = (x_p - x_q)(c_p - c_q), summed over
    the batch axes an argument was broadcast along (checks the custom VJP)."""
    rng = np.random.default_rng(5)
    h, w, r = 3, 4, 1
    offsets = glrjax.window_offsets(r)
    weights = rng.uniform(0, 1, wb + (len(offsets), h, w))
    x = rng.standard_normal(xb + (h, w))
    batch = np.broadcast_shapes(wb, xb)
    c = rng.standard_normal(batch + (h, w))
    g = GridGraph.window(h, w, r, weights)
    graph = g if kind == "grid" else g.to_edges()

    def loss(wts, x):
        gg = dataclasses.replace(graph, weights=wts)
        xx = x if kind == "grid" else x.reshape(x.shape[:-2] + (-1,))
        lx = glrjax.laplacian_matvec(gg, xx).reshape(batch + (h, w))
        return jnp.sum(jnp.asarray(c) * lx)

    gw, gx = jax.jit(jax.grad(loss, argnums=(0, 1)))(graph.weights, jnp.asarray(x))
    wfull = np.broadcast_to(weights, batch + weights.shape[-3:])
    xfull = np.broadcast_to(x, batch + (h, w))
    ex_x = np.zeros(batch + (h * w,))
    ex_w = np.zeros(batch + weights.shape[-3:])
    for b in np.ndindex(*batch):
        lap = laplacian(reference_adjacency(wfull[b], h, w, r))
        ex_x[b] = lap @ c[b].ravel()
        xb_, cb = xfull[b], c[b]
        for k, (dy, dx) in enumerate(offsets):
            for i in range(h):
                for j in range(w):
                    if 0 <= i + dy < h and 0 <= j + dx < w:
                        ex_w[b + (k, i, j)] = (xb_[i, j] - xb_[i + dy, j + dx]) * (
                            cb[i, j] - cb[i + dy, j + dx]
                        )

    def reduce_to(a, shape):  # sum the broadcast axes
        a = a.sum(axis=tuple(range(a.ndim - len(shape))))
        axes = tuple(i for i, n in enumerate(shape) if n == 1 and a.shape[i] != 1)
        return a.sum(axis=axes, keepdims=True)

    ex_x = reduce_to(ex_x.reshape(batch + (h, w)), x.shape)
    ex_w = reduce_to(ex_w, weights.shape)
    np.testing.assert_allclose(np.asarray(gx), ex_x, atol=1e-12)
    if kind == "edge":  # the same edges, in to_edges' order
        ex_w = np.asarray(dataclasses.replace(g, weights=jnp.asarray(ex_w)).to_edges().weights)
    np.testing.assert_allclose(np.asarray(gw), ex_w, atol=1e-12)


def test_second_order_reverse_and_hessian_through_the_custom_vjp():
    """grad-of-grad and jax.hessian (forward-over-reverse) work; they match finite differences
    of the first derivative."""
    rng = np.random.default_rng(6)
    g = GridGraph.window(3, 3, 1, rng.uniform(0, 1, (4, 3, 3)))
    x = rng.standard_normal((3, 3))

    def f(w, x):
        return jnp.sum(jnp.sin(dataclasses.replace(g, weights=w).laplacian_matvec(x)))

    dfdw = jax.grad(f)
    v = rng.standard_normal(x.shape)
    eps = 1e-6
    fd = (dfdw(g.weights, x + eps * v) - dfdw(g.weights, x - eps * v)) / (2 * eps)
    mixed = jax.jacrev(dfdw, argnums=1)(g.weights, x)  # reverse over reverse
    np.testing.assert_allclose(np.tensordot(mixed, v, axes=2), fd, rtol=1e-6, atol=1e-9)
    hess = jax.hessian(f, argnums=1)(g.weights, x)
    gx = jax.grad(f, argnums=1)
    fd_x = (gx(g.weights, x + eps * v) - gx(g.weights, x - eps * v)) / (2 * eps)
    np.testing.assert_allclose(np.tensordot(hess, v, axes=2), fd_x, rtol=1e-6, atol=1e-9)


def test_graphs_are_pytrees_with_static_metadata():
    g = GridGraph.window(4, 4, radius=1)
    leaves, treedef = jax.tree_util.tree_flatten(g)
    assert len(leaves) == 1 and leaves[0] is g.weights
    e = g.to_edges()
    assert len(jax.tree_util.tree_leaves(e)) == 3
    traces = []

    @jax.jit
    def f(graph, x):
        traces.append(1)
        return graph.laplacian_matvec(x)

    x = jnp.ones((4, 4))
    f(g, x)
    f(dataclasses.replace(g, weights=g.weights * 2.0), x)  # new weights: no retrace
    assert len(traces) == 1
    f(GridGraph.window(4, 4, radius=2), x)  # new offsets: a new trace
    assert len(traces) == 2
    assert GridGraph(g.weights, g.offsets).node_shape == (4, 4)  # size from the weights
    g2 = jax.tree_util.tree_map(lambda a: a + 1.0, g)
    assert isinstance(g2, GridGraph) and g2.offsets == g.offsets
    assert "GridGraph" in repr(g) and "EdgeGraph" in repr(e)


def test_float32_stays_float32():
    g = GridGraph.window(3, 3, radius=1, dtype=jnp.float32)
    x = jnp.ones((3, 3), jnp.float32)
    assert g.laplacian_matvec(x).dtype == jnp.float32
    assert g.to_edges().laplacian_matvec(x.ravel()).dtype == jnp.float32
    f = jnp.ones((2, 3, 3), jnp.float32)
    assert GridGraph.mahalanobis(f, jnp.eye(2, dtype=jnp.float32)).weights.dtype == jnp.float32


BAD = [
    (lambda: GridGraph(jnp.ones((4, 3, 3)), glrjax.window_offsets(1), 3, 4), ValueError, "shape"),
    (lambda: GridGraph.window(3, 3, 1, jnp.ones((12, 3, 3))), ValueError, "shape"),
    (lambda: GridGraph.window(3, 3, 1, jnp.ones((4, 3, 3), jnp.int32)), TypeError, "floating"),
    (lambda: GridGraph(jnp.ones((1, 3, 3)), ((0, -1),), 3, 3), ValueError, "half offset"),
    (lambda: GridGraph(jnp.ones((2, 3, 3)), ((0, 1), (0, 1)), 3, 3), ValueError, "duplicates"),
    (lambda: GridGraph.window(3, 3, 0), ValueError, "radius"),
    (lambda: GridGraph(jnp.ones((3, 3)), ((0, 1),)), ValueError, "shape"),
    (
        lambda: EdgeGraph(jnp.array([0, 5]), jnp.array([1, 2]), jnp.ones(2), 3),
        ValueError,
        "indices",
    ),
    (lambda: EdgeGraph(jnp.array([0.0]), jnp.array([1]), jnp.ones(1), 3), TypeError, "integers"),
    (lambda: EdgeGraph(jnp.array([0]), jnp.array([1]), jnp.ones(2), 3), ValueError, "edges"),
    (lambda: GridGraph.window(3, 3, 1).laplacian_matvec(jnp.ones((3, 4))), ValueError, "x has"),
    (lambda: glrjax.degree(jnp.ones(3)), TypeError, "GridGraph"),
    (lambda: GridGraph.mahalanobis(jnp.ones((2, 3, 3)), jnp.eye(3)), ValueError, "q has"),
]


@pytest.mark.parametrize(
    "make,error,match", BAD, ids=[f"{i}-{m}" for i, (_, _, m) in enumerate(BAD)]
)
def test_bad_input_gives_clear_error(make, error, match):
    with pytest.raises(error, match=match):
        make()
