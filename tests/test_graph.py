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


# ----------------------------------------------------------------- the graph interface


def _interface_graphs():
    rng = np.random.default_rng(3)
    h, w, r = 4, 5, 2
    k = len(glrjax.window_offsets(r))
    grid = GridGraph.window(h, w, r, rng.uniform(0.1, 2.0, (k, h, w)))
    pts = rng.standard_normal((15, 3))
    return [grid, grid.to_edges(), glrjax.knn_graph(pts, 4, sigma=1.5, dtype=jnp.float64)]


def _dense_from_structure(g):
    """Dense Laplacian from edge_index/valid_mask/weights, by numpy loops (independent)."""
    src, dst = (np.asarray(a) for a in g.edge_index())
    mask = g.valid_mask()
    w = np.asarray(g.weights)
    n = g.num_nodes
    a = np.zeros((n, n))
    for idx in zip(*np.nonzero(mask), strict=True):
        i, j = src[idx], dst[idx]
        a[i, j] += w[idx]
        a[j, i] += w[idx]
    return np.diag(a.sum(1)) - a, a


@pytest.mark.parametrize("which", [0, 1, 2], ids=["grid", "edges", "knn"])
def test_interface_methods_agree_with_dense_references(which):
    g = _interface_graphs()[which]
    assert isinstance(g, glrjax.AbstractGraph)
    l_ref, a_ref = _dense_from_structure(g)
    if which == 0:  # the grid's structure against the brute-force pixel-pair loop
        np.testing.assert_allclose(
            a_ref, reference_adjacency(np.asarray(g.weights), 4, 5, 2), atol=1e-12
        )
    n = g.num_nodes
    assert g.edge_shape == tuple(g.weights.shape) and g.batch_shape == ()
    assert g.valid_mask().dtype == bool and g.valid_mask().shape == g.edge_shape
    src, dst = g.edge_index()
    assert isinstance(src, np.ndarray) and src.shape == g.edge_shape
    assert np.all(src[~g.valid_mask()] == 0) and np.all(dst[~g.valid_mask()] == 0)
    np.testing.assert_allclose(np.asarray(g.to_dense()), l_ref, atol=1e-12)
    x = np.random.default_rng(4).standard_normal(g.node_shape)
    op = g.laplacian()
    np.testing.assert_allclose(np.asarray(op.mv(x)).ravel(), l_ref @ x.ravel(), atol=1e-12)
    np.testing.assert_allclose(np.asarray(op.diagonal()).ravel(), np.diag(l_ref), atol=1e-12)
    np.testing.assert_allclose(np.asarray(g.degree()).ravel(), a_ref.sum(1), atol=1e-12)
    np.testing.assert_allclose(
        np.asarray(g.laplacian_matvec(x)).ravel(), l_ref @ x.ravel(), atol=1e-12
    )
    assert int(g.num_edges()) == int(np.sum(np.triu(a_ref, 1) > 0))
    # Incidence operator: Dx on valid slots, 0 elsewhere; Σ w (Dx)² = xᵀLx.
    d = np.asarray(g.edge_difference(x))
    xf = x.ravel()
    np.testing.assert_allclose(d, np.where(g.valid_mask(), xf[src] - xf[dst], 0.0), atol=1e-12)
    np.testing.assert_allclose(np.sum(np.asarray(g.weights) * d**2), xf @ l_ref @ xf, rtol=1e-10)
    # max_neighbours: the unweighted degree; ‖D‖ ≤ incidence_norm_bound.
    unweighted = (np.abs(a_ref) > 0) | (
        np.abs(_dense_from_structure(g.with_weights(jnp.ones(g.edge_shape, g.weights.dtype)))[1])
        > 0
    )
    deg0 = _dense_from_structure(g.with_weights(jnp.ones(g.edge_shape, g.weights.dtype)))[1]
    assert g.max_neighbours() == int(deg0.sum(1).max()) and unweighted.any()
    dmat = np.stack(
        [np.asarray(g.edge_difference(e.reshape(g.node_shape))).ravel() for e in np.eye(n)], axis=1
    )
    assert np.linalg.norm(dmat, 2) <= g.incidence_norm_bound() + 1e-9
    # with_weights keeps the type and structure, accepts a batch.
    g2 = g.with_weights(jnp.stack([g.weights, 2 * g.weights]))
    assert type(g2) is type(g) and g2.batch_shape == (2,)
    np.testing.assert_allclose(np.asarray(g2.to_dense())[1], 2 * l_ref, atol=1e-12)


def test_old_module_functions_delegate_to_the_methods():
    from glrjax.graph import degree, edge_difference, laplacian_matvec, num_edges, to_dense

    for g in _interface_graphs():
        x = jnp.ones(g.node_shape).at[(0,) * len(g.node_shape)].set(3.0)
        np.testing.assert_array_equal(laplacian_matvec(g, x), g.laplacian().mv(x))
        np.testing.assert_array_equal(edge_difference(g, x), g.edge_difference(x))
        np.testing.assert_array_equal(degree(g), g.degree())
        np.testing.assert_array_equal(num_edges(g), g.num_edges())
        np.testing.assert_array_equal(to_dense(g), g.to_dense())


# ----------------------------------------------------------------- k-NN graphs


def _brute_knn(points, k, mode):
    n = len(points)
    d = np.array([[np.sum((points[i] - points[j]) ** 2) for j in range(n)] for i in range(n)])
    near = [
        set(sorted((d[i, j], j) for j in range(n) if j != i)[t][1] for t in range(k))
        for i in range(n)
    ]
    pairs = set()
    for i in range(n):
        for j in range(i + 1, n):
            a, b = j in near[i], i in near[j]
            if (a or b) if mode == "union" else (a and b):
                pairs.add((i, j))
    return pairs, d


@pytest.mark.parametrize("mode", ["union", "mutual"])
@pytest.mark.parametrize("n,c,k", [(12, 2, 1), (30, 3, 5), (25, 1, 24)])
def test_knn_graph_matches_brute_force(mode, n, c, k):
    pts = np.random.default_rng(n + k).standard_normal((n, c))
    g = glrjax.knn_graph(pts, k, sigma=0.7, mode=mode, dtype=jnp.float64)
    pairs, d = _brute_knn(pts, k, mode)
    got = set(zip(np.asarray(g.src).tolist(), np.asarray(g.dst).tolist(), strict=True))
    assert got == pairs and len(got) == g.edge_shape[0]
    w = {
        (i, j): v
        for i, j, v in zip(g.src.tolist(), g.dst.tolist(), g.weights.tolist(), strict=True)
    }
    for i, j in pairs:
        np.testing.assert_allclose(w[i, j], np.exp(-d[i, j] / (2 * 0.7**2)), rtol=1e-12)
    if mode == "union":
        assert g.max_neighbours() >= k and float(g.degree().min()) > 0


def test_knn_graph_of_pixel_features_and_unit_weights():
    img = np.random.default_rng(0).uniform(size=(3, 6, 7))  # (C, H, W)
    g = glrjax.knn_graph(img.reshape(3, -1).T, 6)
    assert g.node_shape == (42,) and g.weights.dtype == jnp.float64
    assert np.all(np.asarray(g.weights) == 1.0)
    g32 = glrjax.knn_graph(img.reshape(3, -1).T.astype(np.float32), 6)
    assert g32.weights.dtype == jnp.float32


KNN_BAD = [
    (lambda: glrjax.knn_graph(np.zeros((5, 2)), 5), ValueError, "k=5"),
    (lambda: glrjax.knn_graph(np.zeros((5, 2)), 0), ValueError, "k=0"),
    (lambda: glrjax.knn_graph(np.zeros((5, 2)), 2.0), TypeError, "k=2.0"),
    (lambda: glrjax.knn_graph(np.zeros(5), 2), ValueError, r"\(N, C\)"),
    (lambda: glrjax.knn_graph(np.zeros((5, 2)), 2, sigma=0.0), ValueError, "sigma"),
    (lambda: glrjax.knn_graph(np.zeros((5, 2)), 2, mode="both"), ValueError, "mode"),
    (lambda: glrjax.knn_graph(np.full((5, 2), np.nan), 2), ValueError, "NaN"),
    (
        lambda: jax.jit(lambda p: glrjax.knn_graph(p, 2).weights)(jnp.zeros((5, 2))),
        TypeError,
        "traced",
    ),
]


@pytest.mark.parametrize("make,error,match", KNN_BAD, ids=[m for _, _, m in KNN_BAD])
def test_knn_graph_bad_input(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_gaussian_sigma_must_be_positive():
    img = jnp.zeros((4, 4))
    for s in (0.0, -0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="sigma"):
            GridGraph.gaussian(img, 1, s)
    with pytest.raises(TypeError, match="sigma"):
        GridGraph.gaussian(img, 1, "0.1")
    # traced σ passes (it cannot be inspected) and stays differentiable
    grad = jax.grad(lambda s: GridGraph.gaussian(img.at[0, 0].set(1.0), 1, s).weights.sum())
    assert np.isfinite(float(grad(0.5)))


# ----------------------------------------------------------------- a third graph type


@dataclasses.dataclass(frozen=True)
class _DenseLaplacian(glrjax.graph.AbstractLaplacian):
    lap: jax.Array

    def mv(self, x):
        return jnp.einsum("...ij,...j->...i", self.lap, x)

    def diagonal(self):
        return jnp.diagonal(self.lap, axis1=-2, axis2=-1)


@dataclasses.dataclass(frozen=True)
class _DenseGraph(glrjax.AbstractGraph):
    """A user's graph type: weights (..., N, N), slots i < j (upper triangle)."""

    weights: jax.Array

    @property
    def num_nodes(self):
        return self.weights.shape[-1]

    @property
    def node_shape(self):
        return (self.num_nodes,)

    @property
    def edge_shape(self):
        return (self.num_nodes, self.num_nodes)

    def with_weights(self, weights):
        return _DenseGraph(weights)

    def valid_mask(self):
        return np.triu(np.ones(self.edge_shape, bool), 1)

    def edge_index(self):
        i, j = np.indices(self.edge_shape)
        m = self.valid_mask()
        return np.where(m, i, 0), np.where(m, j, 0)

    def laplacian(self):
        a = jnp.where(self.valid_mask(), self.weights, 0.0)
        a = a + jnp.swapaxes(a, -1, -2)
        return _DenseLaplacian(jnp.sum(a, -1)[..., None] * jnp.eye(self.num_nodes) - a)

    def edge_difference(self, x):
        x = self.check_signal(x)
        return jnp.where(self.valid_mask(), x[..., :, None] - x[..., None, :], 0.0)


jax.tree_util.register_pytree_node(
    _DenseGraph, lambda g: ((g.weights,), None), lambda _, c: _DenseGraph(*c)
)
jax.tree_util.register_pytree_node(
    _DenseLaplacian, lambda g: ((g.lap,), None), lambda _, c: _DenseLaplacian(*c)
)


def test_a_user_defined_graph_type_works_in_the_solvers():
    rng = np.random.default_rng(5)
    n = 9
    w = np.triu(rng.uniform(0.0, 1.0, (n, n)) * (rng.uniform(size=(n, n)) < 0.5), 1)
    g = _DenseGraph(jnp.asarray(w))
    y = rng.standard_normal(n)
    l_ref = np.diag((w + w.T).sum(1)) - (w + w.T)
    x, info = glrjax.glr_filter(y, g, 0.7, tol=1e-12, maxiter=100, precond="jacobi")
    assert bool(info.converged)
    np.testing.assert_allclose(x, np.linalg.solve(np.eye(n) + 0.7 * l_ref, y), atol=1e-9)
    # same answer as the edge list of the same graph
    e = glrjax.EdgeGraph(
        *(jnp.asarray(a[w > 0]) for a in np.indices(w.shape)), jnp.asarray(w[w > 0]), n
    )
    xg, _ = glrjax.gtv_denoise(y, g, 0.1, tol=1e-9, maxiter=5000)
    xe, _ = glrjax.gtv_denoise(y, e, 0.1, tol=1e-9, maxiter=5000)
    np.testing.assert_allclose(xg, xe, atol=1e-6)


# ----------------------------------------------------------------- namespace


def test_l2g_and_primal_dual_are_modules_and_stay_callable():
    import importlib
    import types

    import glrjax.l2g as m
    import glrjax.primal_dual as p

    assert isinstance(m, types.ModuleType) and m is importlib.import_module("glrjax.l2g")
    assert glrjax.l2g is m and glrjax.primal_dual is p
    assert callable(m.synthetic_dataset) and callable(p.primal_dual_step)
    z = jnp.asarray(m.distances(np.random.default_rng(0).standard_normal((6, 20))))
    w1, _ = glrjax.l2g(z, 1.0, 0.5, tol=1e-10, maxiter=500)
    w2, _ = m.l2g(z, 1.0, 0.5, tol=1e-10, maxiter=500)
    np.testing.assert_array_equal(w1, w2)
    x, _ = glrjax.primal_dual(
        lambda x, a: x,
        jnp.ones(3),
        None,
        grad_f=lambda x, a: x - 1.0,
        lipschitz=1.0,
        norm_K=1.0,
        maxiter=50,
    )
    np.testing.assert_allclose(x.x, 1.0, atol=1e-6)
    import inspect

    assert "alpha" in inspect.signature(glrjax.l2g).parameters


# ----------------------------------------------------------------- forward mode


def _fwd_graphs():
    rng = np.random.default_rng(7)
    k = len(glrjax.window_offsets(2))
    g = GridGraph.window(4, 5, 2, rng.uniform(0.1, 1.0, (2, k, 4, 5)))  # a batch of two
    e = GridGraph.window(4, 5, 2, rng.uniform(0.1, 1.0, (k, 4, 5))).to_edges()
    return [g, e, glrjax.knn_graph(rng.standard_normal((12, 2)), 3, sigma=1.0, dtype=jnp.float64)]


@pytest.mark.parametrize("which", [0, 1, 2], ids=["grid-batched", "edges", "knn"])
def test_forward_mode_of_the_laplacian_against_dense_and_finite_differences(which):
    g = _fwd_graphs()[which]
    rng = np.random.default_rng(which)
    n, shape = g.num_nodes, g.node_shape
    x = jnp.asarray(rng.standard_normal(shape))
    w = g.weights
    mask = g.valid_mask()

    def f(w, x):
        return g.with_weights(w).laplacian_matvec(x)

    dense = np.asarray(g.to_dense()).reshape(g.batch_shape + (n, n))
    # jacfwd w.r.t. x is the dense Laplacian (per graph of the batch).
    jx = np.asarray(jax.jacfwd(f, argnums=1)(w, x)).reshape(g.batch_shape + (n, n))
    np.testing.assert_allclose(jx, dense, atol=1e-12)
    # jvp = L(w)ẋ + L(ẇ)x, against dense Laplacians and central differences.
    wd = jnp.asarray(rng.standard_normal(w.shape))
    xd = jnp.asarray(rng.standard_normal(shape))
    out, tan = jax.jvp(f, (w, x), (wd, xd))
    l_wd = np.asarray(g.with_weights(jnp.where(mask, wd, 0.0)).to_dense())
    l_wd = l_wd.reshape(g.batch_shape + (n, n))
    ref = dense @ np.ravel(xd) + l_wd @ np.ravel(x)
    np.testing.assert_allclose(np.asarray(tan).reshape(ref.shape), ref, atol=1e-11)
    eps = 1e-6
    fd = (f(w + eps * wd, x + eps * xd) - f(w - eps * wd, x - eps * xd)) / (2 * eps)
    np.testing.assert_allclose(tan, fd, rtol=1e-7, atol=1e-8)
    # jacfwd w.r.t. the weights equals jacrev (reverse mode's custom rule), and jvp ∘ vmap.
    jw_f = jax.jacfwd(f, argnums=0)(w, x)
    jw_r = jax.jacrev(f, argnums=0)(w, x)
    np.testing.assert_allclose(jw_f, jw_r, atol=1e-12)
    # Second order: forward-over-reverse (jax.hessian) = reverse-over-reverse w.r.t. x, and
    # the directional forward-over-reverse w.r.t. (w, x) against central differences of grad.
    loss = lambda w, x: jnp.sum(jnp.sin(f(w, x)))  # noqa: E731
    np.testing.assert_allclose(
        jax.hessian(loss, argnums=1)(w, x),
        jax.jacrev(jax.jacrev(loss, argnums=1), argnums=1)(w, x),
        atol=1e-11,
    )
    grad = jax.grad(loss, argnums=(0, 1))
    _, hv = jax.jvp(grad, (w, x), (wd, xd))
    fd = [
        (a - b) / (2 * eps)
        for a, b in zip(
            grad(w + eps * wd, x + eps * xd), grad(w - eps * wd, x - eps * xd), strict=True
        )
    ]
    for a, b in zip(hv, fd, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_forward_mode_through_an_unrolled_glr_filter():
    rng = np.random.default_rng(1)
    g = GridGraph.window(4, 4, 1, rng.uniform(0.2, 1.0, (4, 4, 4)))
    y = jnp.asarray(rng.standard_normal((4, 4)))

    def f(y, w, mu):
        x, _ = glrjax.glr_filter(
            y, g.with_weights(w), mu, tol=0.0, maxiter=40, gradient=glrjax.Unrolled()
        )
        return x

    tangents = (  # weight tangents zero off the grid, where the weights are 0
        jnp.asarray(rng.standard_normal((4, 4))),
        jnp.asarray(rng.standard_normal(g.weights.shape) * g.valid_mask()),
        0.3,
    )
    _, tan = jax.jvp(f, (y, g.weights, 0.7), tangents)
    eps = 1e-6
    plus = f(y + eps * tangents[0], g.weights + eps * tangents[1], 0.7 + eps * 0.3)
    minus = f(y - eps * tangents[0], g.weights - eps * tangents[1], 0.7 - eps * 0.3)
    np.testing.assert_allclose(tan, (plus - minus) / (2 * eps), rtol=1e-6, atol=1e-8)
    # and the dense solve's derivative: d/dt (I + μL)⁻¹y
    lap = np.asarray(g.to_dense())
    lap_d = np.asarray(g.with_weights(tangents[1]).to_dense())
    a = np.eye(16) + 0.7 * lap
    xs = np.linalg.solve(a, np.ravel(y))
    ref = np.linalg.solve(a, np.ravel(tangents[0]) - (0.3 * lap + 0.7 * lap_d) @ xs)
    np.testing.assert_allclose(np.ravel(tan), ref, atol=1e-8)


# ----------------------------------------------------------------- solvers on a k-NN graph


def _knn_case(n=14, k=3, seed=0):
    rng = np.random.default_rng(seed)
    pts = rng.standard_normal((n, 2))
    g = glrjax.knn_graph(pts, k, sigma=1.0, dtype=jnp.float64)
    return g, rng


def test_glr_filter_on_a_knn_graph_matches_a_dense_solve():
    g, rng = _knn_case()
    y = rng.standard_normal((3, g.num_nodes))
    x, info = glrjax.glr_filter(y, g, 1.3, tol=1e-12, maxiter=200)
    assert bool(np.all(info.converged))
    ref = np.linalg.solve(np.eye(g.num_nodes) + 1.3 * np.asarray(g.to_dense()), y.T).T
    np.testing.assert_allclose(x, ref, atol=1e-9)
    # gradient w.r.t. μ of cᵀx̂ against the dense solve's −cᵀA⁻¹ L A⁻¹ y
    c = rng.standard_normal(g.num_nodes)
    mode = glrjax.Implicit(tol=1e-13, maxiter=200)

    def loss(mu):
        return jnp.vdot(c, glrjax.glr_filter(y[0], g, mu, tol=1e-13, gradient=mode)[0])

    grad = jax.grad(loss)(1.3)
    lap = np.asarray(g.to_dense())
    a = np.eye(g.num_nodes) + 1.3 * lap
    dref = -c @ np.linalg.solve(a, lap @ np.linalg.solve(a, y[0]))
    np.testing.assert_allclose(grad, dref, rtol=1e-7)


def test_gtv_denoise_on_a_knn_graph_matches_a_qp_solve():
    import scipy.optimize

    g, rng = _knn_case(n=10, k=2, seed=2)
    y = rng.standard_normal(g.num_nodes)
    mu = 0.15
    x, info = glrjax.gtv_denoise(y, g, mu, tol=1e-10, maxiter=20000)
    assert bool(info.converged)
    src, dst = (np.asarray(a) for a in g.edge_index())
    w = np.asarray(g.weights)
    n, e = g.num_nodes, len(src)
    d = np.zeros((e, n))
    d[np.arange(e), src], d[np.arange(e), dst] = 1.0, -1.0

    # min ½‖y − x‖² + μ Σ w t  s.t.  −t ≤ Dx ≤ t   (variables [x, t])
    def obj(v):
        return 0.5 * np.sum((y - v[:n]) ** 2) + mu * w @ v[n:]

    def jac(v):
        return np.concatenate([v[:n] - y, mu * w])

    a = np.block([[-d, np.eye(e)], [d, np.eye(e)]])
    cons = {"type": "ineq", "fun": lambda v: a @ v, "jac": lambda v: a}
    v0 = np.concatenate([y, np.abs(d @ y)])
    ref = scipy.optimize.minimize(
        obj,
        v0,
        jac=jac,
        constraints=[cons],
        method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 1000},
    )
    assert ref.success
    np.testing.assert_allclose(x, ref.x[:n], atol=1e-5)


def test_gem_fit_on_a_knn_graph_equals_the_same_graph_as_a_grid():
    # The 1-nearest-neighbour graph of the points 0, 1, ..., W−1 on a line is the path
    # 0 − 1 − ... − W−1, i.e. the 1×W grid of radius 1: same GEM fit by other kernels.
    w_ = 8
    knn = glrjax.knn_graph(np.arange(w_, dtype=np.float64)[:, None], 1)
    grid = GridGraph.window(1, w_, 1, dtype=jnp.float64)
    assert {(int(s), int(d)) for s, d in zip(knn.src, knn.dst, strict=True)} == {
        (i, i + 1) for i in range(w_ - 1)
    }
    rng = np.random.default_rng(0)
    theta = np.asarray(grid.to_dense()) * 2.0 + 0.5 * np.eye(w_)
    samples = rng.multivariate_normal(np.zeros(w_), np.linalg.inv(theta), size=400)
    y = samples + 0.05 * rng.standard_normal(samples.shape)
    kw = dict(sigma=0.05, delta=0.5, gamma=0.01, iterations=3, route="dense")
    gk, hk = glrjax.gem_fit(jnp.asarray(y), knn, **kw)
    gg, hg = glrjax.gem_fit(jnp.asarray(y[:, None, :]), grid, **kw)
    k = grid.offsets.index((0, 1))
    np.testing.assert_allclose(gk.weights, np.asarray(gg.weights)[k, 0, :-1], rtol=1e-8)
    np.testing.assert_allclose(hk.objective, hg.objective, rtol=1e-10)
    assert np.all(np.diff(np.asarray(hk.objective)) >= -1e-9)  # GEM increases its objective


def test_l2g_learns_a_knn_graph_from_smooth_signals():
    from glrjax.l2g import distances, edge_f1, to_vector

    g, rng = _knn_case(n=12, k=2, seed=4)
    lap = np.asarray(g.to_dense())
    cov = np.linalg.pinv(lap + 1e-2 * np.eye(g.num_nodes))
    x = rng.multivariate_normal(np.zeros(g.num_nodes), cov, size=2000)  # (signals, nodes)
    z = distances(jnp.asarray(x))
    w, info = glrjax.l2g(z, 1.0, 1.0, tol=1e-9, maxiter=20000)
    assert bool(info.converged)
    w_true = to_vector(jnp.asarray(np.diag(np.diag(lap)) - lap))
    f1 = edge_f1(w * (w >= np.sort(np.asarray(w))[-g.edge_shape[0]]), w_true)
    assert f1 >= 0.8, f1


def test_validation_layer_messages_name_the_argument():
    from glrjax import _validate as v

    assert v.check_int(3, "k", minimum=1) == 3
    for bad, err in ((True, TypeError), (2.0, TypeError), (np.ones(1), TypeError), (0, ValueError)):
        with pytest.raises(err, match="k="):
            v.check_int(bad, "k", minimum=1)
    v.check_scalar(0.5, "mu", nonnegative=True)
    for bad, err in (("1", TypeError), (-1.0, ValueError), (float("nan"), ValueError)):
        with pytest.raises(err, match="mu"):
            v.check_scalar(bad, "mu", nonnegative=True)
    with pytest.raises(TypeError, match="mu has dtype"):
        v.check_scalar(jnp.array(1 + 2j), "mu")
    jax.jit(lambda m: v.check_scalar(m, "mu", positive=True))(-1.0)  # traced: passes
    assert v.check_choice("jacobi", "precond", ("jacobi",)) == "jacobi"
    with pytest.raises(ValueError, match="precond='jac'"):
        v.check_choice("jac", "precond", ("jacobi",))
    with pytest.raises(ValueError, match=r"\(\.\.\., maxiter\) = \(\.\.\., 5\)"):
        v.check_schedule(jnp.ones(4), "alpha", 5)
    with pytest.raises(TypeError, match="A must be a function"):
        v.check_callable(3, "A", "A(x, args)")

    def broken(x):
        raise ValueError("boom")

    with pytest.raises(ValueError, match=r"user function A raised ValueError .*\(\(3,\)\): boom"):
        v.call_user(broken, "A", jnp.ones(3))
    with pytest.raises(ValueError, match="precond='jac'"):
        glrjax.glr_filter(jnp.ones((3, 3)), GridGraph.window(3, 3, 1), 1.0, precond="jac")
