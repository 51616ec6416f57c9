"""gtv_denoise against a dual-QP reference (scipy) refined to its exact piecewise-affine form."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
import scipy.sparse as sp
import scipy.sparse.csgraph as csg

import glrjax


def dual_reference(y, src, dst, w, mu):
    """x = y − Dᵀu, u = argmin ½‖Dᵀu − y‖² s.t. |u_e| ≤ μ w_e, by scipy L-BFGS-B."""
    d = np.zeros((len(src), y.size))
    d[np.arange(len(src)), src] = 1.0
    d[np.arange(len(src)), dst] = -1.0

    def fun(u):
        r = d.T @ u - y
        return 0.5 * r @ r, d @ r

    res = scipy.optimize.minimize(
        fun,
        np.zeros(len(src)),
        jac=True,
        method="L-BFGS-B",
        bounds=[(-mu * we, mu * we) for we in w],
        options=dict(ftol=1e-16, gtol=1e-14, maxiter=100000, maxcor=50),
    )
    return y - d.T @ res.x


def exact(y, src, dst, w, mu, structure):
    """The exact solution with the fused components and jump signs of ``structure``.

    On a fused component S: |S| c_S = Σ_S y − μ Σ_(boundary e) ±w_e sign(jump_e), from
    x − y + Dᵀu = 0 with u_e = μ w_e sign(x_i − x_j) on the edges that jump. Piecewise
    affine in (y, μ, w), so finite differences of it are exact.
    """
    n = y.size
    fused = np.abs(structure[src] - structure[dst]) < 1e-7
    adj = sp.coo_matrix((np.ones(fused.sum()), (src[fused], dst[fused])), shape=(n, n))
    ncomp, label = csg.connected_components(adj, directed=False)
    out = np.zeros(n)
    jumps = np.nonzero(~fused)[0]
    for c in range(ncomp):
        nodes = label == c
        total = y[nodes].sum()
        for e in jumps:
            s = np.sign(structure[src[e]] - structure[dst[e]])
            total -= mu * w[e] * s * (int(nodes[src[e]]) - int(nodes[dst[e]]))
        out[nodes] = total / nodes.sum()
    return out


def problem(h=5, w=5, seed=0):
    rng = np.random.default_rng(seed)
    clean = np.zeros((h, w))
    clean[:, w // 2 + 1 :] = 1.0
    clean[h // 2 + 1 :, :2] = 0.5
    y = clean + 0.1 * rng.standard_normal((h, w))
    g = glrjax.GridGraph.gaussian(jnp.asarray(y), radius=1, sigma=0.5)
    return y, g


def edges(g):
    e = g.to_edges()
    return np.asarray(e.src), np.asarray(e.dst), np.asarray(e.weights)


@pytest.mark.parametrize("kind", ["grid", "edge"])
def test_matches_long_run_float64_reference(kind):
    y, g = problem()
    src, dst, w = edges(g)
    mu = 0.1
    ref = dual_reference(y.ravel(), src, dst, w, mu)
    ref = exact(y.ravel(), src, dst, w, mu, ref)
    graph, yy = (g, jnp.asarray(y)) if kind == "grid" else (g.to_edges(), jnp.asarray(y.ravel()))
    x, info = glrjax.gtv_denoise(yy, graph, mu, tol=1e-12, maxiter=20000)
    assert bool(info.converged)
    np.testing.assert_allclose(np.asarray(x).ravel(), ref, atol=1e-9)


MODES = [
    glrjax.Unrolled(),
    glrjax.Checkpointed(every=40),
    glrjax.Truncated(last=20000),
    glrjax.Implicit(tol=1e-11, maxiter=3000),
]


@pytest.mark.parametrize("mode", MODES, ids=["unrolled", "checkpointed", "truncated", "implicit"])
def test_gradients_match_exact_finite_differences(mode):
    y, g = problem(4, 5, seed=1)
    src, dst, w = edges(g)
    mu = 0.08
    c = np.random.default_rng(2).standard_normal(y.shape)
    structure = exact(y.ravel(), src, dst, w, mu, dual_reference(y.ravel(), src, dst, w, mu))

    def loss(y, mu, weights):
        graph = glrjax.GridGraph(weights, g.offsets, g.height, g.width)
        x, _ = glrjax.gtv_denoise(y, graph, mu, tol=1e-12, maxiter=4000, gradient=mode)
        return jnp.sum(jnp.asarray(c) * x)

    gy, gmu, gw = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(
        jnp.asarray(y), jnp.asarray(mu), g.weights
    )

    def ref(yv, muv, wv):
        return c.ravel() @ exact(yv, src, dst, wv, muv, structure)

    h = 1e-6
    fd_mu = (ref(y.ravel(), mu + h, w) - ref(y.ravel(), mu - h, w)) / (2 * h)
    np.testing.assert_allclose(gmu, fd_mu, rtol=1e-6, atol=1e-9)
    for i in (0, 7, 19):
        e = np.zeros(y.size)
        e[i] = h
        fd = (ref(y.ravel() + e, mu, w) - ref(y.ravel() - e, mu, w)) / (2 * h)
        np.testing.assert_allclose(np.asarray(gy).ravel()[i], fd, rtol=1e-6, atol=1e-9)
    # to_edges lists the on-grid stencil entries in the order of edges(g).
    gw_edges = np.asarray(glrjax.GridGraph(gw, g.offsets, g.height, g.width).to_edges().weights)
    for e_idx in (0, 5, len(w) - 1):
        e = np.zeros_like(w)
        e[e_idx] = h
        fd = (ref(y.ravel(), mu, w + e) - ref(y.ravel(), mu, w - e)) / (2 * h)
        np.testing.assert_allclose(gw_edges[e_idx], fd, rtol=1e-6, atol=1e-9)


def test_batch_of_images_with_their_own_graphs_and_mu():
    ys, gs = zip(*(problem(4, 4, seed=s) for s in range(3)), strict=True)
    y = jnp.asarray(np.stack(ys))
    weights = jnp.stack([g.weights for g in gs])
    graph = glrjax.GridGraph(weights, gs[0].offsets, 4, 4)
    mus = jnp.asarray([0.05, 0.1, 0.2])
    x, info = glrjax.gtv_denoise(y, graph, mus, tol=1e-11, maxiter=5000)
    assert x.shape == (3, 4, 4) and info.converged.shape == (3,)
    for i in range(3):
        src, dst, w = edges(gs[i])
        ref = dual_reference(ys[i].ravel(), src, dst, w, float(mus[i]))
        np.testing.assert_allclose(np.asarray(x[i]).ravel(), ref, atol=1e-6)


def test_float32_and_large_mu_gives_the_mean():
    y, g = problem(seed=3)
    y32 = jnp.asarray(y, jnp.float32)
    g32 = glrjax.GridGraph(g.weights.astype(jnp.float32), g.offsets, g.height, g.width)
    x, info = glrjax.gtv_denoise(y32, g32, 100.0, tol=1e-6, maxiter=5000)
    assert x.dtype == jnp.float32
    np.testing.assert_allclose(x, np.full(y.shape, y.mean()), atol=1e-3)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(mu=-1.0), ValueError, "mu"),
        (dict(y=jnp.zeros((4, 4))), ValueError, "shape"),
        (dict(y=jnp.zeros((5, 5), jnp.int32)), TypeError, "dtype"),
        (dict(maxiter=0), ValueError, "maxiter"),
        (dict(graph="grid"), TypeError, "GridGraph"),
        (dict(tau=jnp.ones(3)), ValueError, "tau"),
    ],
)
def test_bad_input(kwargs, error, match):
    y, g = problem()
    call = dict(y=jnp.asarray(y), graph=g, mu=0.1, maxiter=10)
    call.update(kwargs)
    with pytest.raises(error, match=match):
        glrjax.gtv_denoise(call.pop("y"), call.pop("graph"), call.pop("mu"), **call)
