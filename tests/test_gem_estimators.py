"""GEM's edge-term estimators (Dense, Columns, Probes, Coloured), the implicit M-step, and
argument checks. References: numpy dense inverses, numpy matrix powers for graph distances,
central finite differences in float64."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import glrjax
from glrjax import EdgeGraph, GridGraph, gem


def random_grid(rng, h=5, w=5, r=1, dtype=np.float64):
    k = len(glrjax.window_offsets(r))
    weights = rng.uniform(0.5, 1.5, (k, h, w))
    return GridGraph.window(h, w, r, weights.astype(dtype))


def exact_terms(graph, mu):
    """(e_i − e_j)ᵀ(I + μL)⁻¹(e_i − e_j) on every valid slot, from numpy's inverse."""
    n = int(np.prod(graph.node_shape))
    inv = np.linalg.inv(np.eye(n) + mu * np.asarray(glrjax.to_dense(graph), np.float64))
    src, dst = (np.asarray(a) for a in graph.edge_index())
    mask = np.asarray(graph.valid_mask())
    return np.where(mask, inv[src, src] + inv[dst, dst] - 2 * inv[src, dst], 0.0), mask


def hops_within(graph, d):
    """Boolean N×N: graph distance ≤ d, by powers of (A + I) (numpy)."""
    a = np.asarray(glrjax.to_dense(GridGraph.window(*graph.node_shape, graph.radius))) < 0
    reach = np.eye(len(a), dtype=bool)
    step = a | np.eye(len(a), dtype=bool)
    for _ in range(d):
        reach = (reach.astype(int) @ step.astype(int)) > 0
    return reach


@pytest.mark.parametrize("radius, d", [(1, 1), (1, 2), (2, 1), (2, 3)])
def test_colouring_separates_nodes_within_distance_and_stays_flat_in_n(radius, d):
    g = GridGraph.window(9, 9, radius)
    c = gem.colouring(g, d)
    near = hops_within(g, d)
    same = c[:, None] == c[None, :]
    assert not np.any(same & near & ~np.eye(len(c), dtype=bool))
    big = gem.colouring(GridGraph.window(20, 20, radius), d)
    assert big.max() == c.max() <= (d * radius + 1) ** 2 - 1  # colours do not grow with N


def test_colouring_of_an_edge_list():
    rng = np.random.default_rng(0)
    n = 30
    src = rng.integers(0, n, 60)
    dst = (src + rng.integers(1, n, 60)) % n
    e = EdgeGraph(jnp.asarray(src), jnp.asarray(dst), jnp.ones(60), n)
    c = gem.colouring(e, 2)
    a = np.zeros((n, n), bool)
    a[src, dst] = a[dst, src] = True
    two = ((a.astype(int) + np.eye(n, dtype=int)) @ (a.astype(int) + np.eye(n, dtype=int))) > 0
    assert not np.any((c[:, None] == c[None, :]) & two & ~np.eye(n, dtype=bool))


def test_coloured_estimator_converges_to_the_inverse_as_distance_grows():
    rng = np.random.default_rng(1)
    g = random_grid(rng, 8, 8, 1)
    mu = 3.0
    ref, mask = exact_terms(g, mu)
    errs = []
    for d in (1, 2, 3, 14):  # 14 ≥ the diameter: every node its own colour, exact
        t, info = gem.inverse_edge_terms(g, mu, gem.Coloured(distance=d), tol=1e-12, maxiter=500)
        assert bool(info.converged)
        errs.append(np.linalg.norm(np.asarray(t)[mask] - ref[mask]) / np.linalg.norm(ref[mask]))
    assert errs[0] > errs[1] > errs[2] and errs[2] < 0.1, errs  # measured .29, .11, .072
    assert errs[3] < 1e-9
    assert np.all(np.asarray(t)[~mask] == 0)


def test_coloured_beats_random_probes_at_equal_solves():
    rng = np.random.default_rng(2)
    g = random_grid(rng, 10, 10, 1)
    mu = 2.0
    ref, mask = exact_terms(g, mu)
    est = gem.Coloured(distance=2)
    solves = est.num_solves(g)
    t, _ = gem.inverse_edge_terms(g, mu, est, tol=1e-12, maxiter=500)
    tp, _ = gem.inverse_edge_terms(g, mu, gem.Probes(num=solves, key=0), tol=1e-12, maxiter=500)

    def err(a):
        return np.linalg.norm(np.asarray(a)[mask] - ref[mask]) / np.linalg.norm(ref[mask])

    assert err(t) < 0.5 * err(tp), (err(t), err(tp))  # at least 2x better


def test_probes_have_the_same_bits_whatever_dtype_and_x64():
    with jax.enable_x64(True):
        a = np.asarray(gem.probes(3, 5, (4, 4), jnp.float64))
        b = np.asarray(gem.probes(3, 5, (4, 4), jnp.float32))
    with jax.enable_x64(False):
        c = np.asarray(gem.probes(3, 5, (4, 4), jnp.float32))
    np.testing.assert_array_equal(a, b.astype(np.float64))
    np.testing.assert_array_equal(b, c)
    np.testing.assert_allclose(a.sum(axis=(1, 2)), 0.0, atol=1e-12)


def test_deprecated_route_keywords_warn_and_map_to_estimators():
    g = random_grid(np.random.default_rng(3), 4, 4, 1)
    with pytest.warns(DeprecationWarning, match="estimator"):
        old, _ = gem.inverse_edge_terms(g, 1.0, route="probes", num_probes=7, key=2)
    new, _ = gem.inverse_edge_terms(g, 1.0, gem.Probes(num=7, key=2))
    np.testing.assert_array_equal(old, new)
    with pytest.warns(DeprecationWarning):
        cfg = gem.GEMNetConfig(num_probes=4)
    assert cfg.estimator == gem.Probes(num=4, key=0)
    with pytest.raises(ValueError, match="alone"):
        gem.inverse_edge_terms(g, 1.0, gem.Dense(), route="dense")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gem.inverse_edge_terms(g, 1.0, gem.Dense())  # the new spelling does not warn


def test_validation_gaps_give_clear_errors():
    g = random_grid(np.random.default_rng(4), 3, 3, 1)
    with pytest.raises(ValueError, match="mu=-1.0 must be finite and >= 0"):
        gem.inverse_edge_terms(g, -1.0, gem.Dense())
    _, info = jax.jit(lambda m: gem.inverse_edge_terms(g, m, gem.Dense()))(-1.0)
    assert not bool(info.converged)  # traced μ < 0: the factorisation fails, and says so
    with pytest.raises(ValueError, match="sigma=inf must be finite"):
        gem.e_step(jnp.ones((2, 3, 3)), g, float("inf"), 0.1)
    with pytest.raises(ValueError, match="distance"):
        gem.Coloured(distance=0)
    with pytest.raises(TypeError, match="estimator"):
        gem.inverse_edge_terms(g, 1.0, 42)


def test_e_step_with_huge_sigma_is_the_prior_limit():
    """σ → ∞: x̂ → 0 and C → Θ⁻¹ (no overflow to NaN in σ²)."""
    rng = np.random.default_rng(5)
    g = random_grid(rng, 3, 3, 1, np.float32)
    y = jnp.asarray(rng.standard_normal((2, 3, 3)), jnp.float32)
    e = gem.e_step(y, g, 1e20, 0.1)
    assert bool(jnp.all(jnp.isfinite(e.terms))) and float(jnp.max(jnp.abs(e.mean))) < 1e-30
    ref, _ = exact_terms(g, 1.0 / 0.1)
    np.testing.assert_allclose(np.asarray(e.covariance), ref / 0.1, rtol=1e-4)


def _converging_m_step():
    rng = np.random.default_rng(6)
    g = random_grid(rng, 4, 4, 1)
    mask = np.asarray(g.valid_mask())
    s = jnp.asarray(np.where(mask, rng.uniform(0.3, 0.8, mask.shape), 0.0))
    return g, s


def test_implicit_m_step_matches_finite_differences_of_the_converged_m_step():
    g, s = _converging_m_step()
    kw = dict(steps=3000, pgd_tol=1e-13, estimator=gem.Dense())

    def out(s, gamma, mode):
        new, info = gem.m_step(g, s, 0.2, gamma, gradient=mode, **kw)
        return new.weights, info

    w, info = jax.jit(lambda s: out(s, 0.0, glrjax.Unrolled()))(s)
    assert bool(info.converged)
    c = jnp.asarray(np.random.default_rng(7).standard_normal(w.shape))

    def loss(s, gamma, mode):
        return jnp.sum(c * out(s, gamma, mode)[0])

    modes = {"implicit": glrjax.Implicit(tol=1e-10), "unrolled": glrjax.Unrolled()}
    grads = {k: jax.jit(jax.grad(lambda s, m=m: loss(s, 0.0, m)))(s) for k, m in modes.items()}
    v = jnp.asarray(np.random.default_rng(8).standard_normal(s.shape)) * (s > 0)
    h = 1e-6
    f = jax.jit(lambda s: loss(s, 0.0, glrjax.Unrolled()))
    fd = float((f(s + h * v) - f(s - h * v)) / (2 * h))
    for k, gr in grads.items():
        got = float(jnp.sum(gr * v))
        assert abs(got - fd) <= 1e-3 * abs(fd), (k, got, fd)
    gi, gu = (np.asarray(grads[k])[np.asarray(s) > 0] for k in ("implicit", "unrolled"))
    assert np.linalg.norm(gi - gu) <= 1e-2 * np.linalg.norm(gu), np.linalg.norm(gi - gu)
    big = np.abs(gu) > 1e-2 * np.abs(gu).max()  # signs of the entries that carry the gradient
    assert np.all(np.sign(gi[big]) == np.sign(gu[big]))


def test_implicit_m_step_refuses_cg_and_fails_honestly_without_second_order():
    g, s = _converging_m_step()
    with pytest.raises(ValueError, match="symmetric"):
        gem.m_step(g, s, 0.2, 0.0, gradient=glrjax.Implicit(solver="cg"))

    def grad(mode):
        def loss(s):
            new, _ = gem.m_step(g, s, 0.2, 0.0, steps=50, gradient=mode, second_order=False)
            return jnp.sum(new.weights**2)

        return jax.jit(jax.grad(loss))(s)

    # Singular fixed-point system (kept edges): NaN, not a finite wrong gradient.
    assert bool(jnp.all(jnp.isnan(grad(glrjax.Implicit()))))
    jfb = grad(glrjax.Implicit(solver="neumann", maxiter=0))  # Jacobian-free backprop
    assert bool(jnp.all(jnp.isfinite(jfb)))


def _tiny_gmrf(seed=0, size=5, samples=120, sigma=0.3, delta=0.1):
    rng = np.random.default_rng(seed)
    g0 = GridGraph.window(size, size, radius=1, dtype=jnp.float64)
    valid = np.asarray(g0.weights) > 0
    true = valid & (rng.uniform(size=valid.shape) < 0.4)
    wt = np.where(true, rng.uniform(0.5, 1.5, valid.shape), 0.0)
    n = size * size
    theta = np.asarray(glrjax.to_dense(GridGraph.window(size, size, 1, wt))) + delta * np.eye(n)
    x = np.linalg.cholesky(np.linalg.inv(theta)) @ rng.standard_normal((n, samples))
    y = (x + sigma * rng.standard_normal(x.shape)).T.reshape(samples, size, size)
    return y, g0


@settings(max_examples=6, deadline=None)
@given(
    st.lists(st.floats(0.005, 3.0), min_size=3, max_size=3, unique=True),
    st.sampled_from(["dense", "coloured"]),
)
def test_gem_path_edges_never_increase_with_gamma(gammas, kind):
    y, g0 = _tiny_gmrf()
    est = gem.Dense() if kind == "dense" else gem.Coloured(distance=2)
    path = gem.gem_path(
        y,
        g0,
        gammas=gammas,
        sigma=0.3,
        delta=0.1,
        iterations=2,
        steps=5,
        estimator=est,
        objective=False,
    )
    edges = np.asarray(path.edges)
    assert np.all(np.diff(edges) <= 0), (sorted(gammas), edges)
    support = np.asarray(path.weights) > 0
    assert np.all(support[1:] <= support[:-1])  # nested supports
    assert np.all(np.diff(np.asarray(path.gammas)) > 0)
