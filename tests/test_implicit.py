"""Implicit derivatives: forward mode, second order, failed solves, tiny cotangents, reports."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import glrjax
from glrjax.implicit import root_vjp


def _spd(n=8, seed=0):
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((n, n))
    return m @ m.T / n + np.eye(n), rng.standard_normal(n)


def _mv(x, a):
    return a @ x


def _solve(a, b, mode=glrjax.Implicit(tol=1e-12)):
    return glrjax.cg(_mv, b, a, tol=1e-13, maxiter=200, gradient=mode)[0]


def test_forward_mode_matches_the_dense_derivative():
    a, b = _spd()
    da = np.random.default_rng(1).standard_normal(a.shape)
    da = da + da.T
    db = np.random.default_rng(2).standard_normal(b.shape)
    x, xdot = jax.jvp(_solve, (jnp.asarray(a), jnp.asarray(b)), (jnp.asarray(da), jnp.asarray(db)))
    ref = np.linalg.solve(a, db - da @ np.linalg.solve(a, b))
    np.testing.assert_allclose(x, np.linalg.solve(a, b), rtol=1e-10)
    np.testing.assert_allclose(xdot, ref, rtol=1e-8)
    jf = jax.jacfwd(_solve, argnums=1)(jnp.asarray(a), jnp.asarray(b))
    jr = jax.jacrev(_solve, argnums=1)(jnp.asarray(a), jnp.asarray(b))
    np.testing.assert_allclose(jf, np.linalg.inv(a), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(jr, np.linalg.inv(a), rtol=1e-8, atol=1e-12)


def test_hessian_and_grad_of_grad_against_finite_differences():
    a, b = _spd(seed=3)

    def loss(mu):  # ‖(A + μI)⁻¹ b‖²
        return jnp.sum(_solve(jnp.asarray(a) + mu * jnp.eye(8), jnp.asarray(b)) ** 2)

    g = jax.grad(loss)
    h = 1e-5
    fd = (g(1.0 + h) - g(1.0 - h)) / (2 * h)
    np.testing.assert_allclose(jax.grad(g)(1.0), fd, rtol=1e-6)
    np.testing.assert_allclose(jax.hessian(loss)(1.0), fd, rtol=1e-6)
    # closed form: f = bᵀ(A+μ)⁻² b, f'' = 6 bᵀ(A+μ)⁻⁴ b
    inv = np.linalg.inv(a + np.eye(8))
    np.testing.assert_allclose(
        jax.grad(g)(1.0), 6 * b @ np.linalg.matrix_power(inv, 4) @ b, rtol=1e-8
    )


@pytest.mark.parametrize("solver", ["cg", "gmres"])
def test_failed_solve_poisons_every_parameter_in_both_modes(solver):
    """A projection (prox) drops the NaN of a failed adjoint through a select; the engine
    must still make every parameter's derivative NaN."""
    rng = np.random.default_rng(4)
    a = rng.standard_normal((6, 6))
    h = a @ a.T + 0.1 * np.eye(6)
    c = rng.standard_normal(6)
    grad_f = lambda x, p: p[0] @ x - p[1]  # noqa: E731
    mode = glrjax.Implicit(solver=solver, tol=1e-15, maxiter=1)

    def solve(c, lam):
        return glrjax.pgd(
            grad_f,
            glrjax.prox.l1,
            jnp.zeros(6),
            (jnp.asarray(h), c),
            lam,
            tol=1e-12,
            maxiter=5000,
            gradient=mode,
        )[0]

    g = jax.grad(lambda c, lam: jnp.sum(solve(c, lam)), argnums=(0, 1))(jnp.asarray(c), 0.3)
    assert np.all(np.isnan(g[0])) and np.isnan(g[1])
    _, t = jax.jvp(solve, (jnp.asarray(c), 0.3), (jnp.ones(6), 0.0))
    assert np.all(np.isnan(t))
    ok = glrjax.Implicit(solver=solver, tol=1e-15, maxiter=1, on_failure="ignore")
    g2 = jax.grad(
        lambda c: jnp.sum(
            glrjax.pgd(
                grad_f,
                glrjax.prox.l1,
                jnp.zeros(6),
                (jnp.asarray(h), c),
                0.3,
                tol=1e-12,
                maxiter=5000,
                gradient=ok,
            )[0]
        )
    )(jnp.asarray(c))
    assert np.all(np.isfinite(g2))


def test_unreachable_tolerance_stagnates_quickly_and_is_reported():
    """float32 GMRES/CG at tol 1e-12: they stop on stagnation, far below maxiter, and say so."""
    a, b = _spd(n=40, seed=5)
    a = a + 50 * np.diag(np.linspace(0, 1, 40) ** 4)  # κ in the hundreds
    for solver in ["gmres", "cg"]:
        seen = []
        mode = glrjax.Implicit(solver=solver, tol=1e-12, maxiter=5000, report=seen.append)
        g = jax.grad(lambda b, m=mode: jnp.sum(_solve(jnp.asarray(a, jnp.float32), b, m)))(
            jnp.asarray(b, jnp.float32)
        )
        jax.block_until_ready(g)
        (info,) = seen
        assert info.kind == "adjoint" and info.solver == solver
        assert not bool(info.converged) and int(info.iterations) < 400
        assert int(info.result) in (glrjax.RESULTS.stagnation, glrjax.RESULTS.uncertified)
        assert float(info.residual) > 1e-12  # the true residual, not an updated one
        assert np.all(np.isnan(g))


def test_float32_cg_backward_reaches_a_reachable_tolerance():
    """κ = 41, float32, tol 1e-6: CG's recursive residual drifts from the true one by about
    ε·κ, so a solve that trusted it stopped at a true 1.4e-6 (status uncertified, a NaN
    gradient). Restarting from the true residual reaches the tolerance; checked in float64."""
    n = 300
    lap = np.diag(np.r_[1, 2 * np.ones(n - 2), 1]) - np.eye(n, k=1) - np.eye(n, k=-1)
    a = np.eye(n) + 10 * lap
    b = np.random.default_rng(0).standard_normal(n)
    seen = []
    mode = glrjax.Implicit(solver="cg", tol=1e-6, maxiter=2000, report=seen.append)
    a32 = jnp.asarray(a, jnp.float32)
    g = jax.grad(lambda b: jnp.vdot(jnp.asarray(b), _solve(a32, b, mode)))(
        jnp.asarray(b, jnp.float32)
    )
    (info,) = seen
    assert bool(info.converged) and int(info.result) == glrjax.RESULTS.successful
    want = 2 * np.linalg.solve(a, b)  # d/db bᵀA⁻¹b, A symmetric
    np.testing.assert_allclose(np.asarray(g, np.float64), want, rtol=2e-5, atol=1e-5)


def test_adjoint_accepted_on_true_residual_only():
    """CG told the operator is symmetric when it is not: its recursive residual can look
    converged while the true one is not; the derivative must then be NaN, not finite."""
    rng = np.random.default_rng(6)
    m = np.eye(6) + 0.6 * np.triu(rng.standard_normal((6, 6)), 1)  # non-symmetric
    mode = glrjax.Implicit(solver="cg", tol=1e-10, maxiter=50)
    F = lambda x, p: p[1] - p[0] @ x  # noqa: E731
    x = jnp.asarray(np.linalg.solve(m, np.ones(6)))
    g = root_vjp(F, x, (jnp.asarray(m), jnp.ones(6)), jnp.ones(6), mode, True)
    assert np.all(np.isnan(g[1]))
    g = root_vjp(
        F,
        x,
        (jnp.asarray(m), jnp.ones(6)),
        jnp.ones(6),
        glrjax.Implicit(solver="gmres", tol=1e-10),
        False,
    )
    np.testing.assert_allclose(g[1], np.linalg.solve(m.T, np.ones(6)), rtol=1e-8)


def test_neumann_that_stops_shrinking_fails():
    a, b = _spd(seed=7)
    grow = glrjax.Implicit(solver="neumann", maxiter=30)  # I - A has spectral radius > 1
    g = jax.grad(lambda b: jnp.sum(_solve(jnp.asarray(3 * a), b, grow)))(jnp.asarray(b))
    assert np.all(np.isnan(g))
    shrink = glrjax.Implicit(solver="neumann", tol=1e-13, maxiter=2000)
    small = np.eye(8) - 0.3 * (a / np.linalg.eigvalsh(a).max())
    g = jax.grad(lambda b: jnp.sum(_solve(jnp.asarray(small), b, shrink)))(jnp.asarray(b))
    np.testing.assert_allclose(g, np.linalg.solve(small.T, np.ones(8)), rtol=1e-9)


@pytest.mark.parametrize("scale", [1e-20, 1e20])
def test_tiny_and_huge_cotangents_in_float32(scale):
    a, b = _spd(seed=8)
    a32, b32 = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
    mode = glrjax.Implicit(tol=1e-5)
    g1 = jax.grad(lambda b: jnp.sum(_solve(a32, b, mode)))(b32)
    gs = jax.grad(lambda b: scale * jnp.sum(_solve(a32, b, mode)))(b32)
    assert np.all(np.isfinite(gs))
    np.testing.assert_allclose(np.asarray(gs, np.float64) / scale, g1, rtol=1e-5)


def test_report_in_forward_mode_and_under_jit():
    a, b = _spd(seed=9)
    seen = []
    mode = glrjax.Implicit(tol=1e-10, report=seen.append)
    f = jax.jit(lambda b: jax.jvp(lambda b: _solve(jnp.asarray(a), b, mode), (b,), (b,))[1])
    jax.block_until_ready(f(jnp.asarray(b)))
    assert [s.kind for s in seen] == ["tangent"]
    assert bool(seen[0].converged) and float(seen[0].residual) <= 1e-10
    assert int(seen[0].iterations) >= 1


@pytest.mark.parametrize("name", ["solve_cg", "solve_gmres", "solve_neumann"])
def test_a_nan_right_hand_side_fails_instead_of_solving_as_zero(name):
    """A NaN cotangent (from a failed solve further down the graph) must not be read as
    b = 0, which would return u = 0 with status successful: a silently zero gradient."""
    from glrjax import _krylov

    b = jnp.asarray([1.0, jnp.nan, 2.0])
    solve = getattr(_krylov, name)
    u, info = solve(lambda v: 0.5 * v, b, tol=1e-6, maxiter=20)
    assert int(info.result) == glrjax.RESULTS.nonfinite
    assert np.any(np.isnan(np.asarray(u)))  # NaN in, NaN out: never a finite 0
    u, info = solve(lambda v: 0.5 * v, jnp.zeros(3), tol=1e-6, maxiter=20)
    assert int(info.result) == glrjax.RESULTS.successful and np.all(np.asarray(u) == 0)


def test_gmres_holds_its_krylov_basis_once_under_vmap():
    """GMRES(m) needs the (m+1)×n basis V and the (m+1)×m Hessenberg H; a batched
    while_loop (its select between old and new carry) and a V[:m] slice each held another
    copy of V. Against a dense numpy solve for the answer."""
    from glrjax import _krylov

    n, batch, m = 120, 16, 30
    rng = np.random.default_rng(0)
    a = np.eye(n) + 0.3 * rng.standard_normal((batch, n, n)) / np.sqrt(n)
    b = rng.standard_normal((batch, n))
    f = jax.jit(
        jax.vmap(lambda a, b: _krylov.solve_gmres(lambda u: a @ u, b, tol=1e-6, maxiter=500))
    )
    a32, b32 = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
    temp = f.lower(a32, b32).compile().memory_analysis().temp_size_in_bytes
    basis = batch * (m + 1) * (n + m) * 4  # V and H, float32
    assert temp <= 1.4 * basis, temp / basis  # was 2.2
    u, info = f(a32, b32)
    assert np.all(np.asarray(info.result) == glrjax.RESULTS.successful)
    np.testing.assert_allclose(
        np.asarray(u), np.linalg.solve(a, b[..., None])[..., 0], rtol=0, atol=1e-4
    )


def test_gmres_restart_sets_the_cycle_length_and_keeps_the_gradient():
    a, b = _spd(seed=11)
    ref = np.linalg.solve(a, 2 * np.linalg.solve(a, b))  # ∂‖A⁻¹b‖²/∂b = 2A⁻²b
    products = {}
    for restart in (None, 2):
        seen = []
        mode = glrjax.Implicit(solver="gmres", tol=1e-11, restart=restart, report=seen.append)
        g = jax.grad(lambda b, m=mode: jnp.sum(_solve(jnp.asarray(a), b, m) ** 2))(jnp.asarray(b))
        np.testing.assert_allclose(g, ref, rtol=1e-8)
        assert bool(seen[0].converged)
        products[restart] = int(seen[0].iterations)
    # GMRES(2) restarts from the true residual every 2 steps: one more product per cycle.
    assert products[2] > products[None], products
