"""GEM graph learning and the unrolled GEM network.

References: dense numpy linear algebra (inverses, solves, slogdet) on edge lists built
from ``to_edges`` (checked against a brute-force construction in test_graph.py); central
finite differences in float64; a synthetic GMRF with a known sparse Laplacian; empirical
probe statistics.
"""

import dataclasses
import math

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

import glrjax
from glrjax import EdgeGraph, GridGraph, gem

# ------------------------------------------------------------------------ helpers


def random_grid(rng, h=4, w=5, r=2, zero_fraction=0.2, dtype=np.float64):
    k = len(glrjax.window_offsets(r))
    weights = rng.uniform(0.2, 1.5, (k, h, w))
    weights[rng.uniform(size=weights.shape) < zero_fraction] = 0.0
    return GridGraph.window(h, w, r, weights.astype(dtype))


def flat(graph, a):
    """Grid-stencil entries in to_edges order (offset, then row-major valid sources)."""
    mask = np.asarray(GridGraph.window(graph.height, graph.width, graph.radius).weights) > 0
    a = np.asarray(a)
    return np.concatenate([a[k][mask[k]] for k in range(mask.shape[0])])


def dense(graph):
    return np.asarray(glrjax.to_dense(graph), np.float64)


def pair_terms(e, m):
    """M_ii + M_jj − 2M_ij (symmetrised) for every edge of an EdgeGraph e."""
    i, j = np.asarray(e.src), np.asarray(e.dst)
    return m[i, i] + m[j, j] - m[i, j] - m[j, i]


def with_weights(graph, w):
    return dataclasses.replace(graph, weights=w)


# ------------------------------------------------------------------- edge terms


def test_edge_differences_match_numpy():
    rng = np.random.default_rng(0)
    g = random_grid(rng, zero_fraction=0.0)
    x = rng.standard_normal((3, 4, 5))
    e = g.to_edges()
    ref = x.reshape(3, -1)[:, np.asarray(e.src)] - x.reshape(3, -1)[:, np.asarray(e.dst)]
    d = np.asarray(gem.edge_differences(g, x))
    assert d.shape == (3,) + g.weights.shape
    np.testing.assert_allclose(np.stack([flat(g, v) for v in d]), ref, atol=1e-14)
    np.testing.assert_allclose(gem.edge_differences(e, x.reshape(3, -1)), ref, atol=1e-14)
    off_grid = np.asarray(GridGraph.window(4, 5, 2).weights) == 0
    assert np.all(d[:, off_grid] == 0)


@pytest.mark.parametrize("kind", ["grid", "edge"])
def test_dense_and_columns_routes_equal_the_inverse(kind):
    rng = np.random.default_rng(1)
    g = random_grid(rng)
    graph = g if kind == "grid" else g.to_edges()
    mu = 1.7
    ref = pair_terms(g.to_edges(), np.linalg.inv(np.eye(20) + mu * dense(g)))
    for route in ("dense", "columns"):
        t, info = gem.inverse_edge_terms(graph, mu, route=route, tol=1e-13, maxiter=200)
        got = flat(g, t) if kind == "grid" else np.asarray(t)
        np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)
        assert bool(info.converged)


def test_probe_route_is_unbiased_within_its_stated_error():
    """|t̂ − t| ≤ 4.5 standard errors on every edge, and the variance formula is right."""
    rng = np.random.default_rng(2)
    g = random_grid(rng, 6, 6, 1, zero_fraction=0.0)
    e = g.to_edges()
    mu = 2.0
    exact = np.asarray(gem.inverse_edge_terms(e, mu, route="dense")[0])
    var = np.asarray(gem.probe_variance(e, mu))
    p = 300
    est, _ = gem.inverse_edge_terms(e, mu, route="probes", num_probes=p, key=3, tol=1e-10)
    z = (np.asarray(est) - exact) / np.sqrt(var / p)
    assert np.max(np.abs(z)) < 4.5, np.max(np.abs(z))
    assert abs(np.mean(z)) < 4.0 / np.sqrt(z.size)
    # The variance formula against the empirical variance of one-probe estimates (numpy).
    zs = np.asarray(gem.probes(7, 3000, (36,), jnp.float64))
    us = np.linalg.solve(np.eye(36) + mu * dense(e), zs.T).T
    i, j = np.asarray(e.src), np.asarray(e.dst)
    single = (zs[:, i] - zs[:, j]) * (us[:, i] - us[:, j])
    np.testing.assert_allclose(single.mean(0), exact, atol=5 * np.sqrt(var.max() / 3000))
    np.testing.assert_allclose(single.var(0), var, rtol=0.12)


# ---------------------------------------------------------------------- E-step


@pytest.mark.parametrize("kind", ["grid", "edge"])
def test_e_step_and_posterior_covariance_switch(kind):
    rng = np.random.default_rng(4)
    g = random_grid(rng)
    graph = g if kind == "grid" else g.to_edges()
    sigma, delta = 0.5, 0.2
    y = rng.standard_normal((3, 4, 5))
    yk = y if kind == "grid" else y.reshape(3, 20)
    theta = dense(g) + delta * np.eye(20)
    xhat = np.linalg.solve(np.eye(20) + sigma**2 * theta, y.reshape(3, 20).T).T
    e = g.to_edges()
    i, j = np.asarray(e.src), np.asarray(e.dst)
    sample = np.mean((xhat[:, i] - xhat[:, j]) ** 2, axis=0)
    cov = pair_terms(e, np.linalg.inv(theta + np.eye(20) / sigma**2))
    get = (lambda a: flat(g, a)) if kind == "grid" else np.asarray
    off = gem.e_step(yk, graph, sigma, delta, posterior_covariance=False, tol=1e-13)
    on = gem.e_step(yk, graph, sigma, delta, posterior_covariance=True, tol=1e-13)
    np.testing.assert_allclose(np.asarray(on.mean).reshape(3, 20), xhat, atol=1e-10)
    np.testing.assert_allclose(get(off.terms), sample, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(get(on.covariance), cov, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(get(on.terms), sample + cov, rtol=1e-9, atol=1e-12)
    assert np.all(np.asarray(off.covariance) == 0)


# ---------------------------------------------------------------------- M-step


@pytest.mark.parametrize("kind", ["grid", "edge"])
def test_m_step_gradient_equals_autodiff_and_finite_differences(kind):
    rng = np.random.default_rng(5)
    g = random_grid(rng)
    graph = g if kind == "grid" else g.to_edges()
    delta = 0.3
    s = rng.uniform(0.0, 1.0, graph.weights.shape)
    if kind == "grid":
        s = np.where(np.asarray(GridGraph.window(4, 5, 2).weights) > 0, s, 0.0)
    grad, _ = gem.m_step_gradient(graph, s, delta, route="dense")
    auto = jax.grad(lambda w: gem.m_step_objective(with_weights(graph, w), s, delta))(graph.weights)
    np.testing.assert_allclose(grad, auto, rtol=1e-9, atol=1e-11)
    cols, _ = gem.m_step_gradient(graph, s, delta, route="columns", tol=1e-13, maxiter=300)
    np.testing.assert_allclose(cols, grad, rtol=1e-8, atol=1e-10)

    # Independent: numpy slogdet along a random direction of the edge weights.
    e = g.to_edges()
    w0 = np.asarray(e.weights)
    se = flat(g, s) if kind == "grid" else s
    v = rng.standard_normal(w0.shape)

    def objective(w):
        return np.linalg.slogdet(dense(with_weights(e, w)) + delta * np.eye(20))[1] - w @ se

    h = 1e-6
    fd = (objective(w0 + h * v) - objective(w0 - h * v)) / (2 * h)
    got = (flat(g, grad) if kind == "grid" else np.asarray(grad)) @ v
    assert abs(got - fd) <= 1e-6 * max(1.0, abs(fd))


@pytest.mark.parametrize("gamma", [0.0, 0.02, 1e9])
def test_m_step_one_step_equals_the_numpy_formula(gamma):
    """w₁ = hard_threshold(max(w₀ + ηD(t − s), 0), √(2ηγD)), D = 1/max(s, t)², η = step/8."""
    rng = np.random.default_rng(6)
    g = random_grid(rng, 4, 4, 1, zero_fraction=0.0)
    e = g.to_edges()
    delta = 0.2
    s = rng.uniform(0.05, 1.0, e.weights.shape)
    new, info = gem.m_step(e, s, delta, gamma, steps=1, step=1.5)
    t = pair_terms(e, np.linalg.inv(dense(e) + delta * np.eye(16)))
    d = 1.0 / np.maximum(s, t) ** 2
    eta = 1.5 / 8  # 8 neighbours in a radius-1 window
    v = np.maximum(np.asarray(e.weights) + eta * d * (t - s), 0.0)
    ref = np.where(v**2 > 2 * eta * gamma * d, v, 0.0)
    np.testing.assert_allclose(new.weights, ref, rtol=1e-10, atol=1e-12)
    assert int(info.iterations) == 1
    if gamma > 1e6:
        assert int(glrjax.num_edges(new)) == 0


def test_m_step_raises_the_objective_with_gamma_zero():
    rng = np.random.default_rng(7)
    g = random_grid(rng, 4, 4, 1, zero_fraction=0.0)
    s = jnp.where(GridGraph.window(4, 4, 1).weights > 0, rng.uniform(0.1, 1.0, g.weights.shape), 0)
    new, _ = gem.m_step(g, s, 0.1, 0.0, steps=20)
    assert bool(jnp.all(new.weights >= 0))
    assert gem.m_step_objective(new, s, 0.1) > gem.m_step_objective(g, s, 0.1)


# ---------------------------------------------------------------------- GEM fit


def synthetic_gmrf(seed=0, size=16, samples=1500, sigma=0.3, delta=0.1):
    """Samples of y = x + n, x ~ N(0, (L + δI)⁻¹), L on half the radius-1 window edges."""
    rng = np.random.default_rng(seed)
    g0 = GridGraph.window(size, size, radius=1, dtype=jnp.float64)
    valid = np.asarray(g0.weights) > 0
    true = valid & (rng.uniform(size=valid.shape) < 0.5)
    wt = np.where(true, rng.uniform(0.5, 1.5, valid.shape), 0.0)
    n = size * size
    theta = dense(GridGraph.window(size, size, 1, wt)) + delta * np.eye(n)
    x = np.linalg.cholesky(np.linalg.inv(theta)) @ rng.standard_normal((n, samples))
    y = (x + sigma * rng.standard_normal(x.shape)).T.reshape(samples, size, size)
    return y, g0, true


def f1(pred, true):
    tp = np.sum(pred & true)
    return 2 * tp / (np.sum(pred) + np.sum(true))


def test_gem_fit_recovers_the_support_of_a_sparse_gmrf():
    sigma, delta = 0.3, 0.1
    y, g0, true = synthetic_gmrf(sigma=sigma, delta=delta)
    g, hist = gem.gem_fit(y, g0, sigma=sigma, delta=delta, gamma=0.05, iterations=8, steps=20)
    score = f1(np.asarray(g.weights) > 0, true)
    assert score >= 0.9, score
    edges = np.asarray(hist.edges)
    assert edges[0] < int(glrjax.num_edges(g0)) and edges[-1] <= edges[0]
    obj = np.asarray(hist.objective)  # the penalized marginal likelihood GEM increases
    assert np.all(np.diff(obj) >= -1e-6 * np.abs(obj[1:]))

    # Independent: numpy's marginal log-likelihood of y under the start and the result.
    def loglik(graph):
        cov = np.linalg.inv(dense(graph) + delta * np.eye(256)) + sigma**2 * np.eye(256)
        ys = y.reshape(len(y), 256)
        sol = np.linalg.solve(cov, ys.T)
        return -np.linalg.slogdet(cov)[1] - np.mean(np.sum(ys.T * sol, 0))

    assert loglik(g) > loglik(g0)
    np.testing.assert_allclose(obj[-1], loglik(g) - 0.05 * int(glrjax.num_edges(g)), rtol=1e-8)


def test_gem_fit_edge_graph_matches_grid_graph():
    sigma, delta = 0.3, 0.1
    y, g0, _ = synthetic_gmrf(seed=1, size=6, samples=300)
    kw = dict(sigma=sigma, delta=delta, gamma=0.05, iterations=2, steps=10)
    g, hist = gem.gem_fit(y, g0, **kw)
    ge, hist_e = gem.gem_fit(y.reshape(len(y), 36), g0.to_edges(), **kw)
    np.testing.assert_array_equal(hist.edges, hist_e.edges)
    np.testing.assert_allclose(flat(g, g.weights), ge.weights, rtol=1e-8, atol=1e-10)


# --------------------------------------------------------------- the l0 gate


def test_l0_gate_relaxations():
    x = jnp.array([-1.0, 0.3, 1.2, 1.45, 1.6, 10.0])
    lam, t = 1.0, 1.0  # threshold √2
    hard = glrjax.prox.nonneg_l0(x, lam, t)
    np.testing.assert_array_equal(gem.l0_gate("hard")(x, lam, t), hard)
    ste = gem.l0_gate("straight_through")
    np.testing.assert_array_equal(ste(x, lam, t), hard)
    # STE: x-derivative of the hard threshold; a γ-derivative only near the threshold.
    dx = jax.grad(lambda v: ste(v, lam, t).sum())(x)
    np.testing.assert_array_equal(dx, (hard != 0).astype(dx.dtype))
    dl = np.array([float(jax.grad(lambda g, i=i: ste(x, g, t)[i])(lam)) for i in range(6)])
    assert dl[0] == 0 and dl[5] == 0  # negative (projected to 0), far above the threshold
    assert np.all(dl[1:5] < 0) and abs(dl[1]) < abs(dl[2]) < abs(dl[3])
    # smooth: derivatives match finite differences.
    smooth = gem.l0_gate("smooth", temperature=0.5)
    for i in range(1, 6):
        g = jax.grad(lambda lam, i=i: smooth(x, lam, t)[i])(lam)
        fd = (smooth(x, lam + 1e-6, t)[i] - smooth(x, lam - 1e-6, t)[i]) / 2e-6
        assert abs(float(g) - float(fd)) < 1e-6


# -------------------------------------------------------------- the network

SMALL = gem.GEMNetConfig(
    gem_iterations=2,
    pgd_steps=2,
    cg_inv=3,
    cg_e=3,
    num_probes=6,
    radius=1,
    relaxation="smooth",
    max_ratio=math.inf,
)


def small_problem(dtype=np.float64, size=6, samples=2):
    from glrjax.images import noisy, piecewise_smooth

    clean = np.stack([piecewise_smooth(size, seed=i) for i in range(samples)])
    y = np.stack([noisy(c, 0.1, seed=50 + i) for i, c in enumerate(clean)])
    f = np.stack([y.mean(0), y[0]])  # two feature channels
    return jnp.asarray(clean, dtype), jnp.asarray(y, dtype), jnp.asarray(f, dtype)


def small_params(config, dtype=np.float64):
    g = config.gem_iterations
    rng = np.random.default_rng(8)
    return gem.GEMNetParams(
        q=jnp.asarray([[3.0, 0.5], [0.0, 2.0]], dtype),
        log_scale=jnp.asarray(0.0, dtype),
        log_mu=jnp.asarray(rng.uniform(-0.5, 0.5, g + 1), dtype),
        log_gamma=jnp.asarray(np.log([0.02, 0.03][:g]), dtype),
        log_step=jnp.asarray(np.log([1.0, 1.2][:g]), dtype),
        log_e_alpha=jnp.asarray(np.log(rng.uniform(0.2, 0.5, (g + 1, config.cg_e))), dtype),
        log_e_beta=jnp.asarray(np.log(rng.uniform(0.1, 0.4, (g + 1, config.cg_e))), dtype),
        log_inv_alpha=jnp.asarray(np.log(rng.uniform(0.5, 1.0, (g, config.cg_inv))), dtype),
        log_inv_beta=jnp.asarray(np.log(rng.uniform(0.1, 0.4, (g, config.cg_inv))), dtype),
    )


def test_network_gradients_match_finite_differences_and_second_order_switch():
    """float64, unrolled, smooth relaxation: ∂/∂(μ, γ, features, Q, α) against FD; then
    second_order=False: same forward, the inner M-step gradient's inputs get no gradient."""
    clean, y, f = small_problem()
    c = jnp.asarray(np.random.default_rng(9).standard_normal(y.shape))
    params = small_params(SMALL)

    def make(config):
        def loss(params, f):
            x, info = gem.gem_network(params, y, f, config)
            return jnp.sum(c * x) + jnp.sum((x - clean) ** 2), info

        return jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))

    (value, info), (gp, gf) = make(SMALL)(params, f)
    assert info.edges.shape == (2,) and info.weights.shape == (3, 4, 6, 6)
    forward = jax.jit(lambda p, f: gem.gem_network(p, y, f, SMALL)[0])

    def fd(direction_p, direction_f, h=1e-6):
        def at(s):
            p = jax.tree_util.tree_map(lambda a, d: a + s * h * d, params, direction_p)
            x = forward(p, f + s * h * direction_f)
            return float(jnp.sum(c * x) + jnp.sum((x - clean) ** 2))

        return (at(1) - at(-1)) / (2 * h)

    rng = np.random.default_rng(10)
    zero = jax.tree_util.tree_map(jnp.zeros_like, params)
    for name in ("log_mu", "log_gamma", "q", "log_e_alpha", "log_inv_alpha", "log_step"):
        v = jnp.asarray(rng.standard_normal(np.shape(getattr(params, name))))
        got = float(jnp.sum(getattr(gp, name) * v))
        ref = fd(zero._replace(**{name: v}), jnp.zeros_like(f))
        assert abs(got - ref) <= 1e-5 * max(1.0, abs(ref)), (name, got, ref)
    v = jnp.asarray(rng.standard_normal(f.shape))
    assert abs(float(jnp.sum(gf * v)) - fd(zero, v)) <= 1e-5 * max(1.0, abs(fd(zero, v)))

    first = dataclasses.replace(SMALL, second_order=False)
    (value1, info1), (gp1, gf1) = make(first)(params, f)
    # The same forward pass (stop_gradient only changes derivatives); two compiled programs
    # may round the last bit differently.
    np.testing.assert_allclose(float(value1), float(value), rtol=1e-14)
    np.testing.assert_allclose(info1.weights, info.weights, rtol=1e-12, atol=1e-14)
    # The output E-step does not pass through an M-step: identical gradient.
    np.testing.assert_allclose(gp1.log_mu[-1], gp.log_mu[-1], rtol=1e-12)
    # Inputs of the inner gradient only (the first E-step, the Θ⁻¹ CG steps): zero.
    for g in (gp1.log_mu[0], gp1.log_e_alpha[0], gp1.log_inv_alpha, gp1.log_inv_beta):
        assert np.all(np.asarray(g) == 0)
    assert np.all(np.asarray(gp.log_inv_alpha) != 0) and float(gp.log_mu[0]) != 0
    # Through the prox and the initial weights, gradients still flow.
    assert float(jnp.abs(gp1.log_gamma).sum()) > 0 and float(jnp.abs(gf1).sum()) > 0


@pytest.mark.parametrize(
    "mode",
    [
        glrjax.Unrolled(),
        glrjax.Checkpointed(every=2),
        glrjax.Truncated(last=1),
        glrjax.Implicit(),
    ],
    ids=["unrolled", "checkpointed", "truncated", "implicit"],
)
def test_network_float32_gradients_finite_in_every_mode(mode):
    config = dataclasses.replace(
        SMALL, relaxation="straight_through", max_ratio=10.0, gem_iterations=1, cg_inv=2, cg_e=2
    )
    clean, y, f = small_problem(np.float32)
    params = small_params(config, np.float32)

    def loss(params):
        x, info = gem.gem_network(params, y, f, config, gradient=mode)
        return jnp.mean((x - clean) ** 2), (x, info)

    (value, (x, info)), g = jax.jit(jax.value_and_grad(loss, has_aux=True))(params)
    assert x.dtype == jnp.float32 and bool(jnp.isfinite(value))
    for leaf in jax.tree_util.tree_leaves(g):
        assert leaf.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(leaf)))
    if isinstance(mode, glrjax.Unrolled | glrjax.Checkpointed):  # the relaxed threshold's
        assert float(jnp.abs(g.log_gamma).sum()) > 0  # gradient (other modes: last steps only)
    if isinstance(mode, glrjax.Implicit):  # CG steps: zero by construction (each CG solve is
        # differentiated at its solution, which α/β do not move)
        for leaf in (g.log_e_alpha, g.log_e_beta, g.log_inv_alpha, g.log_inv_beta):
            assert np.all(np.asarray(leaf) == 0)


def test_network_batch_of_graphs_are_independent_and_init_is_finite():
    config = dataclasses.replace(SMALL, relaxation="straight_through", gem_iterations=1)
    clean, y, f = small_problem(np.float32, samples=2)
    yb, fb = y[:, None], jnp.stack([f, f[::-1]])  # two graphs, one sample each
    params = gem.gem_network_init(config, yb, fb)
    assert params.log_e_alpha.shape == (2, 3) and params.log_inv_alpha.shape == (1, 3)
    assert all(bool(jnp.all(jnp.isfinite(a))) for a in jax.tree_util.tree_leaves(params))
    run = jax.jit(lambda y, f: gem.gem_network(params, y, f, config))
    xb, info = run(yb, fb)
    xr, info_r = run(yb[::-1], fb[::-1])  # same shapes: no recompilation
    np.testing.assert_allclose(xb[1], xr[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(info.edges[1], info_r.edges[0])
    assert info.edges.shape == (2, 1) and xb.shape == yb.shape


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda g, y: gem.e_step(y, g, 0.0, 0.1), ValueError, "sigma"),
        (lambda g, y: gem.e_step(y, g, -1.0, 0.1), ValueError, "sigma"),
        (lambda g, y: gem.e_step(y, g, 0.5, 0.0), ValueError, "delta"),
        (lambda g, y: gem.gem_fit(y, g, sigma=0.5, delta=-1.0, gamma=0.1), ValueError, "delta"),
        (lambda g, y: gem.gem_fit(y, g, sigma=0.5, delta=0.1, gamma=-1.0), ValueError, "gamma"),
        (
            lambda g, y: gem.gem_fit(
                y, with_weights(g, -g.weights), sigma=0.5, delta=0.1, gamma=0.1
            ),
            ValueError,
            "negative",
        ),
        (lambda g, y: gem.e_step(y, g, 0.5, 0.1, route="exact"), ValueError, "route"),
        (lambda g, y: gem.e_step(y[..., :3], g, 0.5, 0.1), ValueError, "shape"),
        (lambda g, y: gem.m_step(g, g.weights[:2], 0.1, 0.1), ValueError, "shape"),
        (lambda g, y: gem.GEMNetConfig(delta=0.0), ValueError, "delta"),
        (lambda g, y: gem.GEMNetConfig(relaxation="ste"), ValueError, "relaxation"),
        (lambda g, y: gem.e_step(y, "graph", 0.5, 0.1), TypeError, "GridGraph"),
    ],
)
def test_bad_input_gives_clear_error(call, error, match):
    g = GridGraph.window(3, 4, radius=1, dtype=jnp.float64)
    y = jnp.ones((2, 3, 4))
    with pytest.raises(error, match=match):
        call(g, y)


def test_edge_graph_negative_weight_rejected():
    e = EdgeGraph(jnp.array([0, 1]), jnp.array([1, 2]), jnp.array([1.0, -0.5]), 3)
    with pytest.raises(ValueError, match="negative"):
        gem.m_step_gradient(e, jnp.ones(2), 0.1)


def test_compare_case_gradient_matches_its_finite_difference_reference():
    kw = dict(size=6, batch=2, gem_iterations=1, pgd_steps=2, num_probes=4)
    loss, theta = gem.gem_compare_case(**kw, tol=1e-12, dtype=jnp.float64)
    (value, info), grad = jax.jit(
        jax.value_and_grad(lambda th: loss(th, glrjax.Unrolled(), 200), has_aux=True)
    )(theta)
    assert bool(info.converged) and float(value) > 0
    ref = gem.gem_reference_gradient(theta, **kw, maxiter=200)
    g, r = (jax.flatten_util.ravel_pytree(t)[0] for t in (grad, ref))
    assert float(jnp.linalg.norm(g - r)) <= 1e-5 * float(jnp.linalg.norm(r))


def test_compare_case_float32_gradient_matches_the_float64_reference():
    """The float32 case draws the same probes as the float64 reference (uint32 bits), so
    Unrolled in float32 tracks it to ≤ 1e-3 with every sign right (it was 10–18 % off when
    jax.random drew different probes under x64)."""
    kw = dict(size=6, batch=2, gem_iterations=1, pgd_steps=2, num_probes=4)
    loss, theta = gem.gem_compare_case(**kw, tol=1e-6, dtype=jnp.float32)
    (value, info), grad = jax.jit(
        jax.value_and_grad(lambda th: loss(th, glrjax.Unrolled(), 100), has_aux=True)
    )(theta)
    assert grad.q.dtype == jnp.float32 and bool(info.converged)
    ref = gem.gem_reference_gradient(theta, **kw, maxiter=200)
    g, r = (np.asarray(jax.flatten_util.ravel_pytree(t)[0], np.float64) for t in (grad, ref))
    assert np.linalg.norm(g - r) <= 1e-3 * np.linalg.norm(r), np.linalg.norm(g - r)
    big = np.abs(r) > 1e-3 * np.abs(r).max()
    assert np.all(np.sign(g[big]) == np.sign(r[big]))


def test_compare_gem_rows_agree_with_the_reference_and_implicit_with_unrolled_in_sign():
    """What ``glrjax compare`` measures on the GEM network (float32, its default modes, its
    reference), at 8×8: every mode that does not truncate a solve is within 1e-3 of the
    float64 finite differences, and Implicit's gradient has Unrolled's sign on every
    parameter entry. (Under Implicit the PGD steps are layers, differentiated through;
    before, each M-step was differentiated at a PGD fixed point 3 steps never reach, and
    the row was NaN or, with the Neumann series, of the opposite sign.)"""
    from glrjax.compare import default_modes, gem_case, measure

    case = gem_case(size=8)
    k = 30
    for mode in default_modes(k):
        if isinstance(mode, glrjax.Truncated):
            continue
        row = measure(case, mode, k, repeats=1)
        assert row["converged"] and row["grad_error"] <= 1e-3, row

    def grad(mode):
        fn = jax.grad(lambda th: case.loss(th, mode, round(case.scale * k))[0])
        return np.asarray(jax.flatten_util.ravel_pytree(jax.jit(fn)(case.theta))[0])

    implicit, unrolled = grad(default_modes(k)[-1]), grad(glrjax.Unrolled())
    assert np.all(np.isfinite(implicit))
    assert np.all(np.sign(implicit) == np.sign(unrolled)), (implicit, unrolled)


def test_pgd_gradient_is_a_gradient_mode_and_implicit_pgd_fails_honestly():
    """``GEMNetConfig(pgd_gradient=...)`` is validated at construction, and Implicit on a
    PGD loop that does not reach its fixed point (smooth gate, 2 steps) gives NaN under
    ``on_failure="nan"``, never a finite gradient of another function."""
    with pytest.raises(TypeError, match="pgd_gradient"):
        dataclasses.replace(SMALL, pgd_gradient="implicit")
    with pytest.raises(ValueError, match="solver='cg'"):
        dataclasses.replace(SMALL, pgd_gradient=glrjax.Implicit(solver="cg"))
    clean, y, f = small_problem()
    config = dataclasses.replace(SMALL, gem_iterations=1, pgd_gradient=glrjax.Implicit())
    params = small_params(config)

    def loss(params, config):
        x, _ = gem.gem_network(params, y, f, config, gradient=glrjax.Implicit())
        return jnp.mean((x - clean) ** 2)

    g = jax.jit(jax.grad(loss), static_argnums=1)(params, config)
    assert bool(jnp.all(jnp.isnan(g.log_gamma)))
    g = jax.jit(jax.grad(loss), static_argnums=1)(
        params, dataclasses.replace(config, pgd_gradient=glrjax.Unrolled())
    )
    assert all(bool(jnp.all(jnp.isfinite(a))) for a in jax.tree_util.tree_leaves(g))
