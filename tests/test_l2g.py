"""L2G graph learning: optimality against KKT and scipy, gradients against finite
differences in every mode, the unrolled network, metrics against scikit-learn, data."""

import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.optimize
from jax.test_util import check_grads
from sklearn.metrics import f1_score, roc_auc_score

import glrjax
from glrjax.l2g import (
    L2GParams,
    degrees,
    distances,
    edge_auc,
    edge_f1,
    gmse,
    init_l2g_params,
    l2g,
    l2g_objective,
    l2g_unrolled,
    random_graph,
    synthetic_dataset,
    to_matrix,
    to_vector,
)

N = 8  # nodes of the small test problems (28 edges)


def problem(seed=3, n=N, family="ER"):
    z, w = synthetic_dataset(family, 1, n, 200, seed=seed)
    return z[0], w[0]


def degree_matrix(n):
    """D as a dense numpy matrix, built independently of glrjax.l2g."""
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    d = np.zeros((n, len(pairs)))
    for e, (i, j) in enumerate(pairs):
        d[i, e] = d[j, e] = 1.0
    return d


def scipy_reference(z, alpha, beta):
    """L-BFGS-B with bounds w >= 0, best of a few starts (the barrier makes starts matter)."""
    dm = degree_matrix(N)

    def fun(x):
        d = dm @ x
        if np.any(d <= 0):
            return np.inf, np.zeros_like(x)
        return (
            2 * x @ z - alpha * np.log(d).sum() + beta * x @ x,
            2 * z + 2 * beta * x - alpha * dm.T @ (1 / d),
        )

    best = None
    for start in (0.01, 0.1, 1.0):
        res = scipy.optimize.minimize(
            fun,
            np.full(z.size, start),
            jac=True,
            method="L-BFGS-B",
            bounds=[(0, None)] * z.size,
            options=dict(ftol=1e-16, gtol=1e-12, maxiter=20000, maxcor=50),
        )
        if best is None or res.fun < best.fun:
            best = res
    return best.x, best.fun, fun


@pytest.mark.parametrize("alpha,beta", [(2.0, 3.0), (4.0, 2.0), (1.0, 0.5)])
def test_solution_satisfies_kkt_and_matches_scipy(alpha, beta):
    z, _ = problem()
    w, info = l2g(jnp.asarray(z), alpha, beta, tol=1e-14, maxiter=20000)
    w = np.asarray(w)
    assert bool(info.converged)
    # KKT of min F(w) s.t. w >= 0: w >= 0, ∇F >= 0, w ⊙ ∇F = 0.
    dm = degree_matrix(N)
    grad = 2 * z + 2 * beta * w - alpha * dm.T @ (1 / (dm @ w))
    assert np.all(w >= 0)
    assert 0 < np.sum(w > 0) < w.size  # both active and inactive constraints
    np.testing.assert_allclose(grad[w > 0], 0.0, atol=1e-9)
    assert np.all(grad[w == 0] > 1e-3)  # strict complementarity (smooth solution map)
    x_ref, f_ref, fun = scipy_reference(z, alpha, beta)
    assert fun(w)[0] <= f_ref + 1e-10 * abs(f_ref)
    np.testing.assert_allclose(w, x_ref, atol=1e-5)
    np.testing.assert_allclose(l2g_objective(jnp.asarray(w), z, alpha, beta), fun(w)[0])


def test_weights_are_a_nonnegative_symmetric_adjacency():
    z, _ = problem(seed=5)
    w, _ = l2g(jnp.asarray(z), 2.0, 1.0, tol=1e-10, maxiter=5000)
    a = np.asarray(to_matrix(w))
    assert np.all(a >= 0) and np.allclose(a, a.T) and np.all(np.diag(a) == 0)
    np.testing.assert_array_equal(to_vector(a), w)
    np.testing.assert_allclose(degrees(w), a.sum(1))
    p = init_l2g_params(N, 7, 2.0, 1.0, jnp.float64)
    p = p._replace(tau=p.tau * 3.0)  # any positive layers keep w >= 0
    assert np.all(np.asarray(l2g_unrolled(jnp.asarray(z), p)) >= 0)


def test_objective_decreases_to_the_minimum():
    z, _ = problem(seed=6)
    _, f_ref, _ = scipy_reference(z, 2.0, 2.0)
    values = []
    for k in (100, 200, 400, 3000):
        w, _ = l2g(jnp.asarray(z), 2.0, 2.0, tol=0.0, maxiter=k)
        values.append(float(l2g_objective(w, jnp.asarray(z), 2.0, 2.0)))
    assert all(a >= b - 1e-12 for a, b in zip(values, values[1:], strict=False))
    np.testing.assert_allclose(values[-1], f_ref, rtol=1e-10)


MODES = {
    "unrolled": glrjax.Unrolled(),
    "checkpointed": glrjax.Checkpointed(every=40),
    "truncated": glrjax.Truncated(last=400),
    "implicit": glrjax.Implicit(tol=1e-12, maxiter=500),
}


@pytest.fixture(scope="module")
def fd_reference():
    """Central differences of the converged solution's projection c·w(z, α, β)."""
    z, _ = problem(seed=3)
    z = jnp.asarray(z)
    alpha, beta = 2.0, 3.0
    c = jnp.asarray(np.random.default_rng(0).standard_normal(z.size))
    solve = jax.jit(lambda z, a, b: jnp.vdot(c, l2g(z, a, b, tol=1e-15, maxiter=20000)[0]))
    h = 1e-6
    fd_a = (solve(z, alpha + h, beta) - solve(z, alpha - h, beta)) / (2 * h)
    fd_b = (solve(z, alpha, beta + h) - solve(z, alpha, beta - h)) / (2 * h)
    eye = np.eye(z.size) * h
    fd_z = np.array(
        [(solve(z + e, alpha, beta) - solve(z - e, alpha, beta)) / (2 * h) for e in eye]
    )
    return z, alpha, beta, c, (fd_z, fd_a, fd_b)


@pytest.mark.parametrize("mode", list(MODES))
def test_gradients_match_finite_differences(mode, fd_reference):
    z, alpha, beta, c, fd = fd_reference

    def loss(z, a, b):
        return jnp.vdot(c, l2g(z, a, b, tol=1e-14, maxiter=3000, gradient=MODES[mode])[0])

    grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(z, alpha, beta)
    for g, ref in zip(grads, fd, strict=True):
        np.testing.assert_allclose(g, ref, rtol=1e-6, atol=1e-8)


def test_implicit_equals_unrolled_at_convergence():
    z, _ = problem(seed=7)
    c = jnp.asarray(np.random.default_rng(1).standard_normal(z.size))

    def grad(mode):
        def loss(z, a, b):
            w, _ = l2g(z, a, b, tol=1e-14, maxiter=5000, gradient=mode)
            return jnp.vdot(c, w) + jnp.sum(w**2)

        return jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(jnp.asarray(z), 3.0, 1.5)

    gu = grad(glrjax.Unrolled())
    gi = grad(glrjax.Implicit(tol=1e-12, maxiter=500))
    for a, b in zip(gu, gi, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-10)


def test_unrolled_network_equals_solver_with_constant_layers():
    z, _ = problem(seed=8)
    for dtype in (jnp.float64, jnp.float32):
        zz = jnp.asarray(z, dtype)
        w = l2g_unrolled(zz, init_l2g_params(N, 15, 2.0, 1.0, dtype))
        ref, _ = l2g(zz, 2.0, 1.0, tol=0.0, maxiter=15)
        assert w.dtype == dtype
        np.testing.assert_allclose(w, ref, rtol=1e-5 if dtype == jnp.float32 else 1e-12)
    w, ws = l2g_unrolled(jnp.asarray(z), init_l2g_params(N, 4, 2.0, 1.0), all_layers=True)
    assert ws.shape == (4, z.size) and np.array_equal(ws[-1], w)


def test_unrolled_network_gradients_match_finite_differences():
    z, _ = problem(seed=9)
    rng = np.random.default_rng(2)
    p = init_l2g_params(N, 6, 2.0, 1.0, jnp.float64)
    p = L2GParams(*(v * rng.uniform(0.7, 1.3, v.shape) for v in p))

    def f(z, tau, sigma, alpha, beta):
        return l2g_unrolled(z, L2GParams(tau, sigma, alpha, beta))

    check_grads(f, (jnp.asarray(z), *p), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


def test_training_the_unrolled_network_lowers_gmse():
    z, w = synthetic_dataset("BA", 16, 12, 500, seed=11)
    z, w = jnp.asarray(z), jnp.asarray(w)
    theta = tuple(jnp.log(v) for v in init_l2g_params(12, 10, 2.0, 2.0, jnp.float64))

    def loss(theta):
        p = L2GParams(*(jnp.exp(t) for t in theta))
        return jnp.mean(gmse(jax.vmap(lambda zz: l2g_unrolled(zz, p))(z), w))

    opt = optax.adam(1e-2)
    state = opt.init(theta)

    @jax.jit
    def step(theta, state):
        g = jax.grad(loss)(theta)
        upd, state = opt.update(g, state, theta)
        return optax.apply_updates(theta, upd), state

    start = float(loss(theta))
    for _ in range(60):
        theta, state = step(theta, state)
    assert float(loss(theta)) < 0.8 * start


def test_float32_jit_vmap_and_no_recompile():
    z, _ = synthetic_dataset("RG", 3, N, 200, seed=12)
    z = jnp.asarray(z, jnp.float32)
    traces = []

    @jax.jit
    def run(z, a, b):
        traces.append(1)
        return jax.vmap(lambda zz: l2g(zz, a, b, tol=1e-5, maxiter=3000))(z)

    for a, b in [(2.0, 1.0), (3.0, 0.5)]:
        w, info = run(z, jnp.float32(a), jnp.float32(b))
        assert w.dtype == jnp.float32 and w.shape == z.shape
        assert info.iterations.shape == (3,) and bool(jnp.all(info.converged))
        for i in range(3):
            ref, _ = l2g(jnp.asarray(z[i], jnp.float64), a, b, tol=1e-12, maxiter=20000)
            np.testing.assert_allclose(w[i], ref, atol=2e-3 * float(ref.max()))
    assert len(traces) == 1


def test_nan_input_is_reported():
    z, _ = problem()
    w, info = l2g(jnp.asarray(z).at[0].set(jnp.nan), 2.0, 1.0, tol=1e-10, maxiter=500)
    assert not bool(info.converged) and bool(jnp.all(jnp.isnan(w)))


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda z: l2g(z, -1.0, 1.0), ValueError, "alpha"),
        (lambda z: l2g(z, 0.0, 1.0), ValueError, "alpha"),
        (lambda z: l2g(z, 1.0, -0.5), ValueError, "beta"),
        (lambda z: l2g(z[:-1], 1.0, 1.0), ValueError, "N\\(N-1\\)/2"),
        (lambda z: l2g(to_matrix(z), 1.0, 1.0), ValueError, "to_vector"),
        (lambda z: l2g(z.astype(jnp.int32), 1.0, 1.0), TypeError, "z"),
        (lambda z: l2g(z, jnp.ones(3), 1.0), ValueError, "scalars"),
        (lambda z: l2g(z, 1.0, 1.0, w0=jnp.ones(3)), ValueError, "w0"),
        (lambda z: l2g(z, 1.0, 1.0, gradient="implicit"), TypeError, "gradient"),
        (lambda z: l2g_unrolled(z, init_l2g_params(N, 3, -1.0, 1.0)), ValueError, "alpha"),
        (lambda z: l2g_unrolled(z, init_l2g_params(N, 3, 1.0, -1.0)), ValueError, "beta"),
        (
            lambda z: l2g_unrolled(
                z, L2GParams(jnp.ones(3), jnp.ones(3), jnp.ones(2), jnp.ones(3))
            ),
            ValueError,
            "layers",
        ),
        (lambda z: l2g_unrolled(z, (1.0, 1.0, 1.0, 1.0)), TypeError, "L2GParams"),
        (lambda z: l2g_unrolled(z[None], init_l2g_params(N, 3, 1.0, 1.0)), ValueError, "vmap"),
        (lambda z: random_graph("WS", 10, np.random.default_rng(0)), ValueError, "family"),
    ],
)
def test_bad_input(call, error, match):
    z = jnp.asarray(problem()[0])
    with pytest.raises(error, match=match):
        call(z)


def test_metrics_match_numpy_and_scikit_learn():
    rng = np.random.default_rng(13)
    w_true = np.where(rng.uniform(size=45) < 0.3, rng.uniform(0.5, 1.5, 45), 0.0)
    w_hat = np.abs(w_true + 0.3 * rng.standard_normal(45)) * (rng.uniform(size=45) < 0.8)
    np.testing.assert_allclose(
        gmse(w_hat, w_true), np.sum((w_hat - w_true) ** 2) / np.sum(w_true**2)
    )
    c = np.dot(w_hat, w_true) / np.dot(w_hat, w_hat)
    np.testing.assert_allclose(
        gmse(w_hat, w_true, rescale=True), np.sum((c * w_hat - w_true) ** 2) / np.sum(w_true**2)
    )
    assert edge_auc(w_hat, w_true) == pytest.approx(roc_auc_score(w_true > 0, w_hat))
    assert edge_f1(w_hat, w_true, 0.2) == pytest.approx(f1_score(w_true > 0, w_hat > 0.2))
    batch = np.stack([w_hat, w_true])
    np.testing.assert_allclose(gmse(batch, batch[::-1])[1], gmse(w_true, w_hat))


@pytest.mark.parametrize("family", ["ER", "BA", "RG"])
def test_random_graphs(family):
    rng = np.random.default_rng(14)
    for n in (20, 50):
        a = random_graph(family, n, rng)
        assert a.shape == (n, n) and np.array_equal(a, a.T) and not np.any(np.diag(a))
        assert set(np.unique(a)) <= {0.0, 1.0}
        # Connected: the Laplacian's second eigenvalue is positive.
        assert np.linalg.eigvalsh(np.diag(a.sum(1)) - a)[1] > 1e-9
        if family == "BA":
            assert a.sum() / 2 == 3 + 3 * (n - 4)  # star on m + 1 = 4 nodes, then m per node


def test_synthetic_distances_estimate_the_gmrf_resistances():
    """E (x_i − x_j)² = (e_i − e_j)ᵀ (L + 10⁻⁴ I)⁻¹ (e_i − e_j): sample mean vs exact."""
    z, w = synthetic_dataset("BA", 1, 10, 20000, seed=15)
    wmat = np.asarray(to_matrix(w[0]))
    np.testing.assert_allclose(wmat.sum(), 10.0)
    cov = np.linalg.inv(np.diag(wmat.sum(1)) - wmat + 1e-4 * np.eye(10))
    i, j = np.triu_indices(10, 1)
    exact = cov[i, i] + cov[j, j] - 2 * cov[i, j]
    np.testing.assert_allclose(z[0], exact, rtol=0.05)  # 20000 samples: ~1% error each
    x = np.random.default_rng(16).standard_normal((50, 10))
    ref = np.array([np.mean((x[:, a] - x[:, b]) ** 2) for a, b in zip(i, j, strict=True)])
    np.testing.assert_allclose(distances(jnp.asarray(x)), ref, rtol=1e-12)


def test_example_smoke_run(tmp_path):
    path = os.path.join(os.path.dirname(__file__), "..", "examples", "l2g_learn.py")
    spec = importlib.util.spec_from_file_location("l2g_learn", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    small = ["--train", "32", "--test", "8", "--signals", "100", "--steps", "5"]
    record = module.main(["--smoke", "--out", str(tmp_path), *small])
    res = record["results"][0]
    assert res["family"] == "BA" and np.isfinite(res["trained"]["gmse"])
    assert (tmp_path / "l2g_learn.png").exists() and (tmp_path / "l2g_learn.json").exists()
