"""glr_filter: dense solves, finite differences under every gradient mode, batching, errors.

References: (I + μL)⁻¹y by numpy's dense solve on the dense Laplacian (itself checked
against a brute-force construction in test_graph.py); gradients by central finite
differences of that dense pipeline.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import glrjax
from glrjax import EdgeGraph, GridGraph

MODES = [
    glrjax.Unrolled(),
    glrjax.Checkpointed(every=5),
    glrjax.Truncated(last=1000),
    glrjax.Implicit(tol=1e-12, maxiter=500),
]
MODE_IDS = ["unrolled", "checkpointed", "truncated", "implicit"]
H, W, R = 4, 5, 2
# Jitted once per shape: eager calls would compile each small op separately.
jfilter = jax.jit(glrjax.glr_filter, static_argnames=("maxiter", "precond"))


def random_graph(rng, batch=(), h=H, w=W, r=R, zero_fraction=0.2):
    k = len(glrjax.window_offsets(r))
    weights = rng.uniform(0.1, 1.5, batch + (k, h, w))
    weights[rng.uniform(size=weights.shape) < zero_fraction] = 0.0
    return GridGraph.window(h, w, r, weights)


def dense_solve(graph, y, mu):
    """(I + μL)⁻¹y in numpy, for one graph and one signal."""
    lap = np.asarray(glrjax.to_dense(graph), np.float64)
    n = lap.shape[0]
    return np.linalg.solve(np.eye(n) + mu * lap, np.asarray(y, np.float64).ravel())


def as_kind(graph, y, kind):
    if kind == "edge":
        return graph.to_edges(), y.reshape(y.shape[:-2] + (-1,))
    return graph, y


def with_weights(graph, w):
    return dataclasses.replace(graph, weights=w)


@pytest.mark.parametrize("kind", ["grid", "edge"])
@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_matches_dense_solve(mode, kind):
    rng = np.random.default_rng(0)
    g = random_graph(rng)
    y = rng.standard_normal((H, W))
    graph, yk = as_kind(g, y, kind)
    x, info = jax.jit(
        lambda y, g, mu: glrjax.glr_filter(y, g, mu, tol=1e-14, maxiter=300, gradient=mode)
    )(yk, graph, 1.7)
    ref = dense_solve(g, y, 1.7)
    assert x.shape == yk.shape and x.dtype == jnp.float64
    assert bool(info.converged) and int(info.iterations) > 0
    assert np.linalg.norm(np.asarray(x).ravel() - ref) <= 1e-10 * np.linalg.norm(ref)


@pytest.mark.parametrize("kind", ["grid", "edge"])
@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_gradients_match_finite_differences(mode, kind):
    """∂/∂y, ∂/∂weights (a random direction) and ∂/∂μ of a scalar loss of x̂."""
    rng = np.random.default_rng(1)
    g = random_graph(rng)
    y = rng.standard_normal((H, W))
    c = rng.standard_normal(H * W)
    mu = 0.8
    graph, yk = as_kind(g, y, kind)

    def loss(y, w, mu):
        x, _ = glrjax.glr_filter(
            y, with_weights(graph, w), mu, tol=1e-13, maxiter=300, gradient=mode
        )
        return jnp.vdot(jnp.asarray(c).reshape(x.shape), x) + 0.5 * jnp.sum(x**2)

    def loss_np(y, w, mu):
        x = dense_solve(with_weights(graph, jnp.asarray(w)), y, mu)
        return c @ x + 0.5 * x @ x

    gy, gw, gmu = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(yk, graph.weights, mu)
    w0 = np.asarray(graph.weights)
    # ∂/∂y in closed form: A⁻ᵀ(c + x) with A = I + μL symmetric.
    a = np.eye(H * W) + mu * np.asarray(glrjax.to_dense(g))
    np.testing.assert_allclose(
        np.asarray(gy).ravel(), np.linalg.solve(a, c + dense_solve(g, y, mu)), rtol=1e-8
    )
    eps = 1e-6
    fd_mu = (loss_np(y, w0, mu + eps) - loss_np(y, w0, mu - eps)) / (2 * eps)
    np.testing.assert_allclose(gmu, fd_mu, rtol=1e-6)
    v = rng.standard_normal(w0.shape) * (w0 > 0)  # keep zero (and off-grid) weights at zero
    fd_w = (loss_np(y, w0 + eps * v, mu) - loss_np(y, w0 - eps * v, mu)) / (2 * eps)
    np.testing.assert_allclose(np.sum(np.asarray(gw) * v), fd_w, rtol=1e-6)


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_gradients_through_mahalanobis_weights_wrt_q_and_features(mode):
    rng = np.random.default_rng(2)
    c_in, m = 3, 2
    feats = rng.standard_normal((c_in, H, W))
    q = 0.4 * rng.standard_normal((c_in, m))
    y = rng.standard_normal((H, W))

    def loss(feats, q, mu):
        g = GridGraph.mahalanobis(feats, q, radius=1)
        x, _ = glrjax.glr_filter(y, g, mu, tol=1e-13, maxiter=300, gradient=mode)
        return jnp.sum((x - 0.3) ** 2)

    def loss_np(feats, q, mu):
        g = GridGraph.mahalanobis(jnp.asarray(feats), jnp.asarray(q), radius=1)
        return np.sum((dense_solve(g, y, mu) - 0.3) ** 2)

    mu = 1.3
    gf, gq = jax.jit(jax.grad(loss, argnums=(0, 1)))(feats, q, mu)
    eps = 1e-6
    for arr, grad, i in [(feats, gf, 0), (q, gq, 1)]:
        v = rng.standard_normal(arr.shape)
        plus = [feats, q]
        minus = [feats, q]
        plus[i] = arr + eps * v
        minus[i] = arr - eps * v
        fd = (loss_np(*plus, mu) - loss_np(*minus, mu)) / (2 * eps)
        np.testing.assert_allclose(np.sum(np.asarray(grad) * v), fd, rtol=1e-6)


def test_edge_graph_mahalanobis_gradient_wrt_q_matches_grid():
    rng = np.random.default_rng(3)
    feats = rng.standard_normal((2, H, W))
    q = 0.5 * rng.standard_normal((2, 2))
    y = rng.standard_normal((H, W))
    e = GridGraph.window(H, W, 1).to_edges()

    def loss_grid(q):
        x, _ = glrjax.glr_filter(y, GridGraph.mahalanobis(feats, q, 1), 2.0, tol=1e-13)
        return jnp.sum(x**3)

    def loss_edge(q):
        g = EdgeGraph.mahalanobis(e.src, e.dst, feats.reshape(2, -1).T, q)
        x, _ = glrjax.glr_filter(y.ravel(), g, 2.0, tol=1e-13)
        return jnp.sum(x**3)

    np.testing.assert_allclose(
        jax.jit(jax.grad(loss_edge))(q), jax.jit(jax.grad(loss_grid))(q), rtol=1e-9
    )


@pytest.mark.parametrize(
    "mode", [glrjax.Unrolled(), glrjax.Implicit(tol=1e-12)], ids=["unrolled", "implicit"]
)
def test_vmap_and_batch_axes_over_images_with_different_graphs(mode):
    rng = np.random.default_rng(4)
    g = random_graph(rng, batch=(3,))
    y = rng.standard_normal((3, H, W))
    mu = np.array([0.3, 1.0, 4.0])

    def solve(y, g, mu):
        return glrjax.glr_filter(y, g, mu, tol=1e-13, maxiter=300, gradient=mode)

    x_b, info_b = jax.jit(solve)(y, g, mu)  # built-in batch axes
    x_v, info_v = jax.jit(jax.vmap(solve))(y, g, mu)  # user's vmap over graphs
    assert info_b.iterations.shape == (3,) and info_b.converged.shape == (3,)
    np.testing.assert_array_equal(info_b.iterations, info_v.iterations)
    for i in range(3):
        ref = dense_solve(jax.tree_util.tree_map(lambda a, i=i: a[i], g), y[i], mu[i])
        np.testing.assert_allclose(np.asarray(x_b[i]).ravel(), ref, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(np.asarray(x_v[i]).ravel(), ref, rtol=1e-10, atol=1e-12)
    # Each image is its own CG: iteration counts differ with μ.
    assert len(set(np.asarray(info_b.iterations).tolist())) > 1
    # Per-image μ gets a per-image gradient; compare with finite differences.
    gmu = jax.jit(jax.grad(lambda mu: jnp.sum(solve(y, g, mu)[0] ** 2)))(mu)
    eps = 1e-6
    for i in range(3):
        gi = jax.tree_util.tree_map(lambda a, i=i: a[i], g)
        fd = (
            np.sum(dense_solve(gi, y[i], mu[i] + eps) ** 2)
            - np.sum(dense_solve(gi, y[i], mu[i] - eps) ** 2)
        ) / (2 * eps)
        np.testing.assert_allclose(gmu[i], fd, rtol=1e-6)


def test_batch_axes_broadcast_shared_graph_and_shared_mu():
    rng = np.random.default_rng(5)
    g = random_graph(rng)  # one graph for every image
    y = rng.standard_normal((2, 3, H, W))
    x, info = jfilter(y, g, 0.9, tol=1e-13)
    assert x.shape == (2, 3, H, W) and info.iterations.shape == (2, 3)
    gb = random_graph(rng, batch=(3,))  # one graph per column of the batch
    x2, info2 = jfilter(y, gb, jnp.array([[0.5], [2.0]]), tol=1e-13)
    assert x2.shape == (2, 3, H, W) and info2.residual.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            np.testing.assert_allclose(
                np.asarray(x[i, j]).ravel(), dense_solve(g, y[i, j], 0.9), rtol=1e-10
            )
            gj = jax.tree_util.tree_map(lambda a, j=j: a[j], gb)
            np.testing.assert_allclose(
                np.asarray(x2[i, j]).ravel(),
                dense_solve(gj, y[i, j], [0.5, 2.0][i]),
                rtol=1e-10,
            )
    # An edge list with batched weights and shared edges.
    e = gb.to_edges()
    x3, _ = jfilter(y.reshape(2, 3, -1), e, jnp.array([[0.5], [2.0]]), tol=1e-13)
    np.testing.assert_allclose(np.asarray(x3), np.asarray(x2).reshape(2, 3, -1), rtol=1e-9)


def test_float32_stays_float32_and_is_accurate():
    rng = np.random.default_rng(6)
    g = random_graph(rng, batch=(2,))
    y = rng.standard_normal((2, H, W)).astype(np.float32)
    g32 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), g)
    x, info = jfilter(jnp.asarray(y), g32, jnp.float32(1.5), tol=1e-6)
    assert x.dtype == jnp.float32 and info.residual.dtype == jnp.float32
    assert bool(np.all(info.converged))
    for i in range(2):
        gi = jax.tree_util.tree_map(lambda a, i=i: a[i], g)
        np.testing.assert_allclose(np.asarray(x[i]).ravel(), dense_solve(gi, y[i], 1.5), atol=1e-5)
    # float64 weights with float32 data: the data's dtype wins.
    x2, _ = jfilter(jnp.asarray(y), g, 1.5)
    assert x2.dtype == jnp.float32
    gw = jax.grad(lambda w: jfilter(jnp.asarray(y), with_weights(g32, w), 1.5)[0].sum())(
        g32.weights
    )
    assert gw.dtype == jnp.float32


def test_float32_default_implicit_gradient_is_finite_and_accurate_on_image_patches():
    # A fixed backward tol of 1e-6 is about where float32 adjoint CG stagnates on window
    # graphs (1.5e-6 to 2.0e-6 measured on 8×8 and 32×32 image patches): Implicit()'s
    # default follows the dtype.
    from glrjax.images import noisy, piecewise_smooth

    g = glrjax.GridGraph.window(16, 16, radius=2, dtype=jnp.float32)
    y = np.stack([noisy(piecewise_smooth(16, seed=s), 0.1, seed=s) for s in range(4)])
    log = []
    mode = glrjax.Implicit(report=log.append)

    def loss(w):
        x, _ = glrjax.glr_filter(
            jnp.asarray(y), with_weights(g, w), 1.0, tol=1e-5, maxiter=100, gradient=mode
        )
        return jnp.sum(x**2)

    gw = jax.jit(jax.grad(loss))(g.weights)
    assert len(log) == 4 and all(bool(r.converged) for r in log)
    assert all(r.residual <= 100 * np.finfo(np.float32).eps for r in log)
    # Reference: dL/dW of Σ‖x‖², x = (I + L)⁻¹y, from dense float64 solves:
    # ∂/∂w_ij = −(u_i − u_j)(x_i − x_j) with u = (I + L)⁻¹(2x).
    g64 = with_weights(g, g.weights.astype(jnp.float64))
    a = np.eye(256) + np.asarray(glrjax.to_dense(g64))
    x = np.linalg.solve(a, y.reshape(4, 256).T)
    u = np.linalg.solve(a, 2 * x)
    dx = np.asarray(g64.edge_difference(jnp.asarray(x.T.reshape(4, 16, 16))))
    du = np.asarray(g64.edge_difference(jnp.asarray(u.T.reshape(4, 16, 16))))
    ref = -np.sum(du * dx, axis=0)
    got = np.asarray(gw, np.float64)
    assert np.all(np.isfinite(got))
    assert np.linalg.norm(got - ref) <= 1e-3 * np.linalg.norm(ref)


def test_jacobi_and_callable_preconditioners():
    rng = np.random.default_rng(7)
    # Degrees spread over orders of magnitude: Jacobi helps.
    k = len(glrjax.window_offsets(1))
    w = np.exp(rng.uniform(-4, 4, (k, 8, 8)))
    g = GridGraph.window(8, 8, 1, w)
    y = rng.standard_normal((8, 8))
    ref = dense_solve(g, y, 3.0)
    x0, i0 = jfilter(y, g, 3.0, tol=1e-12, maxiter=1000)
    x1, i1 = jfilter(y, g, 3.0, tol=1e-12, maxiter=1000, precond="jacobi")
    diag = lambda r, graph, mu: r / (1.0 + mu * glrjax.degree(graph))  # noqa: E731
    x2, i2 = jfilter(y, g, 3.0, tol=1e-12, maxiter=1000, precond=diag)
    for x in (x0, x1, x2):
        np.testing.assert_allclose(np.asarray(x).ravel(), ref, rtol=1e-9, atol=1e-10)
    assert int(i1.iterations) < int(i0.iterations)
    assert int(i2.iterations) == int(i1.iterations)
    # Gradients agree with and without the preconditioner (implicit: the same system).
    mode = glrjax.Implicit(tol=1e-12)

    def loss(w, p):
        x, _ = jfilter(
            y, with_weights(g, w), 3.0, precond=p, tol=1e-12, maxiter=1000, gradient=mode
        )
        return jnp.sum(x**2)

    grads = [jax.jit(jax.grad(loss), static_argnums=1)(g.weights, p) for p in (None, "jacobi")]
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-8, atol=1e-12)


def test_learned_schedules_get_gradients_when_unrolled_and_zero_when_implicit():
    rng = np.random.default_rng(8)
    g = random_graph(rng)
    y = rng.standard_normal((H, W))
    steps = 4
    alpha = jnp.asarray(rng.uniform(0.1, 0.3, steps))
    beta = jnp.asarray(rng.uniform(0.0, 0.3, steps))
    a = np.eye(H * W) + 1.0 * np.asarray(glrjax.to_dense(g))

    def plain(alpha, beta):  # the learned-step recurrence of DESIGN §3, in numpy
        x = np.zeros(H * W)
        r = y.ravel().copy()
        p = r.copy()
        for k in range(steps):
            ap = a @ p
            x = x + alpha[k] * p
            r = r - alpha[k] * ap
            p = r + beta[k] * p
        return np.sum(x**2)

    def f(alpha, beta, mode):
        x, _ = glrjax.glr_filter(
            y, g, 1.0, tol=0.0, maxiter=steps, alpha=alpha, beta=beta, gradient=mode
        )
        return jnp.sum(x**2)

    f = jax.jit(f)
    np.testing.assert_allclose(f(alpha, beta, glrjax.Unrolled()), plain(alpha, beta), rtol=1e-12)
    ga = jax.jit(jax.grad(f))(alpha, beta, glrjax.Unrolled())
    eps = 1e-6
    e = np.zeros(steps)
    e[2] = eps
    fd = (plain(np.asarray(alpha) + e, beta) - plain(np.asarray(alpha) - e, beta)) / (2 * eps)
    np.testing.assert_allclose(ga[2], fd, rtol=1e-6)
    gi = jax.jit(jax.grad(f))(alpha, beta, glrjax.Implicit())
    assert np.all(np.asarray(gi) == 0)


def _grad_temp_bytes(gradient, maxiter):
    g = GridGraph.window(16, 16, 2, dtype=jnp.float32)
    y = jnp.ones((16, 16), jnp.float32)

    def loss(y, w, mu):
        return jnp.sum(
            glrjax.glr_filter(
                y, with_weights(g, w), mu, tol=0.0, maxiter=maxiter, gradient=gradient
            )[0]
            ** 2
        )

    comp = jax.jit(jax.grad(loss, argnums=(0, 1, 2))).lower(y, g.weights, jnp.float32(1)).compile()
    stats = comp.memory_analysis()
    return None if stats is None else stats.temp_size_in_bytes


def test_implicit_gradient_memory_does_not_grow_with_maxiter():
    implicit = glrjax.Implicit(tol=1e-6, on_failure="ignore")
    small, large = _grad_temp_bytes(implicit, 10), _grad_temp_bytes(implicit, 400)
    if small is None:
        pytest.skip("this backend reports no memory analysis")
    assert large == small
    unrolled = _grad_temp_bytes(glrjax.Unrolled(), 400)
    assert unrolled > 10 * small  # the contrast: unrolled stores every iteration


def test_changing_mu_or_weights_does_not_recompile():
    rng = np.random.default_rng(9)
    g = random_graph(rng)
    y = jnp.asarray(rng.standard_normal((H, W)))
    traces = []

    @jax.jit
    def f(y, g, mu):
        traces.append(1)
        return glrjax.glr_filter(y, g, mu)[0]

    f(y, g, 1.0)
    f(y, with_weights(g, g.weights * 2), 3.0)
    assert len(traces) == 1


BAD = [
    (dict(y=np.ones((H, W + 1))), ValueError, "node shape"),
    (dict(y=np.ones((H, W), np.int32)), TypeError, "y has dtype"),
    (dict(mu=-1.0), ValueError, "mu"),
    (dict(mu=np.array([1.0, -0.5])), ValueError, "mu"),
    (dict(mu="1"), TypeError, "mu"),
    (dict(mu=1j), TypeError, "mu"),
    (dict(graph=np.eye(3)), TypeError, "GridGraph"),
    (dict(weights=-1.0), ValueError, "non-negative"),
    (dict(precond="ilu"), ValueError, "jacobi"),
    (dict(precond=3), TypeError, "precond"),
    (dict(maxiter=0), ValueError, "maxiter"),
    (dict(tol=-1.0), ValueError, "tol"),
    (dict(gradient=glrjax.Unrolled), TypeError, "instance"),
    (dict(alpha=np.ones(3)), ValueError, "alpha"),
    (dict(y=np.ones((2, H, W)), mu=np.ones(3)), ValueError, "broadcast"),
]


@pytest.mark.parametrize(
    "kwargs,error,match", BAD, ids=[f"{i}-{m}" for i, (_, _, m) in enumerate(BAD)]
)
def test_bad_input_gives_clear_error(kwargs, error, match):
    kwargs = dict(kwargs)
    g = GridGraph.window(H, W, 1)
    if "weights" in kwargs:
        g = with_weights(g, g.weights * kwargs.pop("weights"))
    call = dict(y=np.ones((H, W)), graph=g, mu=1.0, maxiter=10)
    call.update(kwargs)
    with pytest.raises(error, match=match):
        glrjax.glr_filter(call.pop("y"), call.pop("graph"), call.pop("mu"), **call)


def test_non_float_weights_rejected():
    g = GridGraph.window(H, W, 1)
    object.__setattr__(g, "weights", g.weights.astype(jnp.int32))  # bypass the constructor
    with pytest.raises(TypeError, match="graph.weights has dtype"):
        glrjax.glr_filter(np.ones((H, W)), g, 1.0)
