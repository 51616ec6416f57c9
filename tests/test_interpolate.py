"""glr_interpolate and gtv_interpolate against dense float64 scipy solutions and FD."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import scipy.optimize

import glrjax

H, W = 4, 5


def _grid(seed=0, h=H, w=W, radius=1, dtype=np.float64):
    rng = np.random.default_rng(seed)
    k = len(glrjax.window_offsets(radius))
    return glrjax.GridGraph.window(
        h, w, radius, jnp.asarray(rng.uniform(0.2, 1.0, (k, h, w)), dtype)
    )


def _dense_edges(graph):
    """(i, j, w) of every on-grid edge, from the offsets and weights (independent of glrjax)."""
    w = np.asarray(graph.weights, np.float64)
    h, wd = graph.height, graph.width
    edges = []
    for k, (dy, dx) in enumerate(graph.offsets):
        for r in range(h):
            for c in range(wd):
                rr, cc = r + dy, c + dx
                if 0 <= rr < h and 0 <= cc < wd:
                    edges.append((r * wd + c, rr * wd + cc, w[k, r, c]))
    return edges


def _dense_laplacian(graph):
    n = graph.height * graph.width
    lap = np.zeros((n, n))
    for i, j, wij in _dense_edges(graph):
        lap[i, i] += wij
        lap[j, j] += wij
        lap[i, j] -= wij
        lap[j, i] -= wij
    return lap


def _hard_ref(graph, y, mask):
    lap = _dense_laplacian(graph)
    s, u = mask.ravel(), ~mask.ravel()
    x = y.ravel().astype(np.float64).copy()
    x[u] = scipy.linalg.solve(lap[np.ix_(u, u)], -lap[np.ix_(u, s)] @ x[s], assume_a="pos")
    return x.reshape(mask.shape)


def _soft_ref(graph, y, mask, mu):
    lap = _dense_laplacian(graph)
    m = mask.ravel().astype(np.float64)
    return scipy.linalg.solve(np.diag(m) + mu * lap, m * y.ravel()).reshape(mask.shape)


def _data(seed=1, h=H, w=W):
    rng = np.random.default_rng(seed)
    y = rng.standard_normal((h, w))
    mask = rng.random((h, w)) < 0.4
    mask[0, 0] = True
    mask[-1, -1] = False
    return y, mask


def test_glr_hard_matches_dense_and_keeps_observed():
    g = _grid()
    y, mask = _data()
    x, info = glrjax.glr_interpolate(y, mask, g, tol=1e-14, maxiter=200)
    assert bool(info.converged)
    np.testing.assert_allclose(np.asarray(x), _hard_ref(g, y, mask), atol=1e-10)
    assert np.array_equal(np.asarray(x)[mask], y[mask])  # exactly, not approximately


def test_glr_soft_matches_dense():
    g = _grid(2)
    y, mask = _data(3)
    x, info = glrjax.glr_interpolate(y, mask, g, 0.3, tol=1e-14, maxiter=200, precond="jacobi")
    assert bool(info.converged)
    np.testing.assert_allclose(np.asarray(x), _soft_ref(g, y, mask, 0.3), atol=1e-10)


def test_glr_hard_edge_graph_matches_dense():
    g = _grid(4)
    y, mask = _data(5)
    eg = g.to_edges()
    x, _ = glrjax.glr_interpolate(y.ravel(), mask.ravel(), eg, tol=1e-14, maxiter=200)
    np.testing.assert_allclose(np.asarray(x), _hard_ref(g, y, mask).ravel(), atol=1e-10)


def test_batch_axes_each_image_its_own_solve():
    g = _grid(6)
    rng = np.random.default_rng(7)
    ys = rng.standard_normal((3, H, W))
    masks = rng.random((3, H, W)) < 0.5
    masks[:, 0, 0] = True
    mus = np.array([0.1, 1.0, 3.0])
    x, info = glrjax.glr_interpolate(ys, masks, g, mus, tol=1e-14, maxiter=200)
    assert x.shape == (3, H, W) and info.converged.shape == (3,)
    for b in range(3):
        np.testing.assert_allclose(
            np.asarray(x[b]), _soft_ref(g, ys[b], masks[b], mus[b]), atol=1e-10
        )
    xh, _ = glrjax.glr_interpolate(ys, masks, g, tol=1e-14, maxiter=200)
    for b in range(3):
        np.testing.assert_allclose(np.asarray(xh[b]), _hard_ref(g, ys[b], masks[b]), atol=1e-10)


def _gtv_objective(graph, x):
    x = np.asarray(x, np.float64).ravel()
    return sum(wij * abs(x[i] - x[j]) for i, j, wij in _dense_edges(graph))


def test_gtv_hard_reaches_the_linear_program_optimum():
    g = _grid(8)
    y, mask = _data(9)
    x, info = glrjax.gtv_interpolate(y, mask, g, tol=1e-10, maxiter=20000)
    assert np.array_equal(np.asarray(x)[mask], y[mask])
    # LP: variables (x_U, t_e), min Σ w_e t_e s.t. ±(Dx)_e ≤ t_e, x_S = y_S.
    edges = _dense_edges(g)
    n, ne = H * W, len(edges)
    u = np.flatnonzero(~mask.ravel())
    col = {p: c for c, p in enumerate(u)}
    a_ub, b_ub = [], []
    ys = y.ravel()
    for e, (i, j, _) in enumerate(edges):
        for sign in (1.0, -1.0):
            row = np.zeros(u.size + ne)
            rhs = 0.0
            for p, coef in ((i, sign), (j, -sign)):
                if p in col:
                    row[col[p]] += coef
                else:
                    rhs -= coef * ys[p]
            row[u.size + e] = -1.0
            a_ub.append(row)
            b_ub.append(rhs)
    c = np.concatenate([np.zeros(u.size), [wij for _, _, wij in edges]])
    bounds = [(None, None)] * u.size + [(0, None)] * ne
    lp = scipy.optimize.linprog(c, A_ub=np.array(a_ub), b_ub=b_ub, bounds=bounds, method="highs")
    assert lp.status == 0 and n == H * W
    assert abs(_gtv_objective(g, x) - lp.fun) <= 1e-6 * max(1.0, lp.fun)


def test_gtv_soft_reaches_the_qp_optimum():
    g = _grid(10)
    y, mask = _data(11)
    mu = 0.2
    x, info = glrjax.gtv_interpolate(y, mask, g, mu, tol=1e-11, maxiter=20000)
    edges = _dense_edges(g)
    m = mask.ravel().astype(float)

    def objective(x):
        return 0.5 * np.sum(m * (x - y.ravel()) ** 2) + mu * _gtv_objective(g, x)

    # smooth reformulation in (x, t): ½‖m(x − y)‖² + μ Σ w t, −t ≤ Dx ≤ t (scipy SLSQP).
    n, ne = H * W, len(edges)
    wv = np.array([e[2] for e in edges])
    dmat = np.zeros((ne, n))
    for e, (i, j, _) in enumerate(edges):
        dmat[e, i], dmat[e, j] = 1.0, -1.0

    def f(z):
        return 0.5 * np.sum(m * (z[:n] - y.ravel()) ** 2) + mu * wv @ z[n:]

    def df(z):
        return np.concatenate([m * (z[:n] - y.ravel()), mu * wv])

    cons = [
        {
            "type": "ineq",
            "fun": lambda z: z[n:] - dmat @ z[:n],
            "jac": lambda z: np.hstack([-dmat, np.eye(ne)]),
        },
        {
            "type": "ineq",
            "fun": lambda z: z[n:] + dmat @ z[:n],
            "jac": lambda z: np.hstack([dmat, np.eye(ne)]),
        },
    ]
    z0 = np.concatenate([np.where(mask.ravel(), y.ravel(), 0.0), np.abs(dmat @ y.ravel()) + 1])
    res = scipy.optimize.minimize(
        f, z0, jac=df, constraints=cons, method="SLSQP", options={"ftol": 1e-14, "maxiter": 2000}
    )
    assert res.success
    assert abs(objective(np.asarray(x).ravel()) - res.fun) <= 1e-6 * max(1.0, abs(res.fun))


MODES = [
    glrjax.Unrolled(),
    glrjax.Checkpointed(every=5),
    glrjax.Truncated(last=60),  # >= the steps taken: the exact unrolled gradient
    glrjax.Implicit(tol=1e-12, maxiter=500),
]


def _dense_loss(y, mu, wts, mask, weights_c, hard):
    g = glrjax.GridGraph.window(H, W, 1, jnp.asarray(wts))
    x = _hard_ref(g, y, mask) if hard else _soft_ref(g, y, mask, mu)
    return float(np.sum(weights_c * x))


def _fd(fun, x, eps=1e-6):
    x = np.asarray(x, np.float64)
    out = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = eps
        out[idx] = (fun(x + e) - fun(x - e)) / (2 * eps)
    return out


@functools.lru_cache(maxsize=2)
def _fd_reference(hard):
    """Central differences of the dense scipy solution (shared by every mode)."""
    g = _grid(12)
    y, mask = _data(13)
    c = np.random.default_rng(14).standard_normal((H, W))
    wts = np.asarray(g.weights)
    mu0 = 0.0 if hard else 0.7
    ref_y = _fd(lambda v: _dense_loss(v, mu0, wts, mask, c, hard), y)
    ref_w = _fd(lambda v: _dense_loss(y, mu0, v, mask, c, hard), wts)
    ref_mu = _fd(lambda v: _dense_loss(y, float(v), wts, mask, c, hard), np.asarray(mu0))
    return g, y, mask, c, mu0, ref_y, ref_w, ref_mu


@pytest.mark.parametrize("hard", [True, False], ids=["hard", "soft"])
@pytest.mark.parametrize("mode", MODES, ids=lambda m: type(m).__name__)
def test_glr_gradients_match_finite_differences(mode, hard):
    g, y, mask, c, mu0, ref_y, ref_w, ref_mu = _fd_reference(hard)

    def loss(y, mu, w):
        graph = glrjax.GridGraph.window(H, W, 1, w)
        x, _ = glrjax.glr_interpolate(
            y, mask, graph, None if hard else mu, tol=1e-13, maxiter=60, gradient=mode
        )
        return jnp.sum(jnp.asarray(c) * x)

    gy, gmu, gw = jax.grad(loss, argnums=(0, 1, 2))(jnp.asarray(y), jnp.asarray(mu0), g.weights)
    np.testing.assert_allclose(np.asarray(gy), ref_y, atol=1e-7)
    valid = np.asarray(g.weights) > 0  # off-grid entries are not edges
    np.testing.assert_allclose(np.asarray(gw)[valid], ref_w[valid], atol=1e-7)
    if not hard:
        np.testing.assert_allclose(float(gmu), float(ref_mu), atol=1e-7)


def test_gtv_unrolled_gradient_matches_finite_differences():
    g = _grid(15)
    y, mask = _data(16)
    c = np.random.default_rng(17).standard_normal((H, W))

    def loss(y, mu):
        x, _ = glrjax.gtv_interpolate(y, mask, g, mu, tol=0.0, maxiter=30)
        return jnp.sum(jnp.asarray(c) * x)

    gy, gmu = jax.grad(loss, argnums=(0, 1))(jnp.asarray(y), jnp.asarray(0.3))
    f = jax.jit(loss)
    ref_y = _fd(lambda v: float(f(jnp.asarray(v), 0.3)), y)
    ref_mu = _fd(lambda v: float(f(jnp.asarray(y), jnp.asarray(v))), np.asarray(0.3))
    np.testing.assert_allclose(np.asarray(gy), ref_y, atol=1e-6)
    np.testing.assert_allclose(float(gmu), float(ref_mu), atol=1e-6)


def test_float32_jit_vmap_and_no_recompilation():
    g = _grid(18, dtype=np.float32)
    y, mask = _data(19)
    y32 = jnp.asarray(y, jnp.float32)
    f = jax.jit(
        lambda y, mu, w: glrjax.glr_interpolate(
            y, mask, glrjax.GridGraph.window(H, W, 1, w), mu, tol=1e-5, maxiter=50
        )[0]
    )
    x1 = f(y32, jnp.float32(0.5), g.weights)
    x2 = f(y32, jnp.float32(2.0), g.weights * 1.5)
    assert x1.dtype == jnp.float32 and f._cache_size() == 1
    np.testing.assert_allclose(np.asarray(x1), _soft_ref(g, y, mask, 0.5), atol=1e-4)
    assert not np.allclose(np.asarray(x1), np.asarray(x2))
    xs = jax.vmap(lambda yy: f(yy, jnp.float32(0.5), g.weights))(jnp.stack([y32, 2 * y32]))
    np.testing.assert_allclose(np.asarray(xs[1]), 2 * np.asarray(x1), rtol=1e-4, atol=1e-4)


def test_traced_mask_without_observation_gives_nan():
    g = _grid(20)
    y, _ = _data(21)
    f = jax.jit(lambda m: glrjax.glr_interpolate(y, m, g, maxiter=20))
    x, info = f(jnp.zeros((H, W), bool))
    assert np.isnan(np.asarray(x)).all() and not bool(info.converged)


@pytest.mark.parametrize("solver", [glrjax.glr_interpolate, glrjax.gtv_interpolate])
def test_bad_inputs_name_the_argument(solver):
    g = _grid(22)
    y, mask = _data(23)
    with pytest.raises(ValueError, match="mask has shape"):
        solver(y, mask[:, :-1], g)
    with pytest.raises(ValueError, match="no observed pixel"):
        solver(y, np.zeros((H, W), bool), g)
    with pytest.raises(TypeError, match="mask has dtype"):
        solver(y, mask.astype(np.float64), g)
    with pytest.raises(ValueError, match="mu=-1.0 must be >= 0"):
        solver(y, mask, g, -1.0)
    with pytest.raises(TypeError, match="graph must be"):
        solver(y, mask, np.ones((H, W)))


def test_jacobi_unrolled_gradient_finite_at_a_nearly_isolated_pixel():
    # An unknown pixel whose 8 edges weigh 1e-25 (float32): its Jacobi diagonal μ·deg is
    # ~1e-24, and the Unrolled backward's −r/diag² overflowed to NaN before the diagonal was
    # floored at ε·max(diag). The weights are below float32's resolution of the system, so
    # the gradient must equal the one with those edges exactly 0 (an isolated pixel).
    h = w = 6
    offs = glrjax.window_offsets(1)
    tiny = np.ones((len(offs), h, w), np.float32)
    for k, (dy, dx) in enumerate(offs):
        tiny[k, 2, 2] = 1e-25
        if 0 <= 2 - dy < h and 0 <= 2 - dx < w:
            tiny[k, 2 - dy, 2 - dx] = 1e-25
    zero = np.where(tiny < 1e-20, 0.0, tiny).astype(np.float32)
    mask = np.zeros((h, w), bool)
    mask[::2, ::2] = True
    mask[2, 2] = False
    y = jnp.asarray(np.random.default_rng(0).random((h, w)) * mask, jnp.float32)

    def grad_mu(weights):
        g = glrjax.GridGraph.window(h, w, 1, jnp.asarray(weights))

        def f(mu):
            x, _ = glrjax.glr_interpolate(
                y, jnp.asarray(mask), g, mu, maxiter=10, gradient=glrjax.Unrolled(),
                precond="jacobi",
            )  # fmt: skip
            return jnp.sum(x)

        return float(jax.grad(f)(jnp.float32(1.0)))

    g_tiny, g_zero = grad_mu(tiny), grad_mu(zero)
    assert np.isfinite(g_tiny) and np.isfinite(g_zero) and g_zero != 0.0
    np.testing.assert_allclose(g_tiny, g_zero, rtol=1e-4)
