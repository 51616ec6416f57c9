"""cg under every gradient mode, against dense numpy solves, closed forms and finite differences."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import glrjax

MODES = [
    glrjax.Unrolled(),
    glrjax.Checkpointed(every=4),
    glrjax.Truncated(last=1000),
    glrjax.Implicit(tol=1e-12, maxiter=500),
]
MODE_IDS = ["unrolled", "checkpointed", "truncated", "implicit"]
DTYPES = [jnp.float64, jnp.float32]
RTOL = {jnp.float64: 1e-10, jnp.float32: 1e-4}
TOL = {jnp.float64: 1e-13, jnp.float32: 1e-6}


def problem(n=24, seed=0):
    """SPD A(θ) = S + θ B with B PSD, as numpy arrays."""
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((n, n))
    s = q @ q.T / n + np.eye(n)
    c = rng.standard_normal((n, n))
    bmat = c @ c.T / n
    b = rng.standard_normal(n)
    return s, bmat, b


def matvec(x, args):
    s, theta, bmat = args
    return s @ x + theta * (bmat @ x)


def as_args(s, bmat, theta, dtype):
    return (jnp.asarray(s, dtype), jnp.asarray(theta, dtype), jnp.asarray(bmat, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_forward_matches_numpy_solve(mode, dtype):
    s, bmat, b = problem()
    theta = 0.7
    args = as_args(s, bmat, theta, dtype)
    mode = glrjax.Implicit(tol=1e-5) if dtype == jnp.float32 and mode == MODES[3] else mode
    x, info = jax.jit(
        lambda b, a: glrjax.cg(matvec, b, a, tol=TOL[dtype], maxiter=200, gradient=mode)
    )(jnp.asarray(b, dtype), args)
    expected = np.linalg.solve(s + theta * bmat, b)
    assert x.dtype == dtype
    assert bool(info.converged)
    assert info.iterations.dtype == jnp.int32 and 0 < int(info.iterations) <= 200
    np.testing.assert_allclose(np.asarray(x, np.float64), expected, rtol=RTOL[dtype] * 10, atol=0)
    assert np.linalg.norm(np.asarray(x, np.float64) - expected) <= RTOL[dtype] * np.linalg.norm(
        expected
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_gradients_match_closed_form(mode, dtype):
    """∂(cᵀx)/∂b = A⁻ᵀc and ∂(cᵀx)/∂θ = -(A⁻ᵀc)ᵀ B A⁻¹b."""
    s, bmat, b = problem(seed=1)
    theta = 0.3
    c = np.random.default_rng(5).standard_normal(b.shape)
    a = s + theta * bmat
    x = np.linalg.solve(a, b)
    adj = np.linalg.solve(a.T, c)
    if dtype == jnp.float32 and isinstance(mode, glrjax.Implicit):
        mode = glrjax.Implicit(tol=1e-6)

    def loss(b, theta, smat):
        xs, _ = glrjax.cg(
            matvec,
            b,
            (smat, theta, jnp.asarray(bmat, dtype)),
            tol=TOL[dtype],
            maxiter=200,
            gradient=mode,
        )
        return jnp.vdot(jnp.asarray(c, dtype), xs)

    gb, gt, gs = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(
        jnp.asarray(b, dtype), jnp.asarray(theta, dtype), jnp.asarray(s, dtype)
    )
    rtol = 1e-8 if dtype == jnp.float64 else 2e-3
    np.testing.assert_allclose(gb, adj, rtol=rtol, atol=rtol * np.abs(adj).max())
    np.testing.assert_allclose(gt, -adj @ bmat @ x, rtol=rtol)
    # ∂/∂S of cᵀ(S + θB)⁻¹b is -adj xᵀ. CG's iterates are defined for symmetric A only, so
    # the unrolled modes agree on symmetric perturbations: compare symmetric parts.
    expected_s = -np.outer(adj, x)
    sym = lambda g: (np.asarray(g) + np.asarray(g).T) / 2  # noqa: E731
    np.testing.assert_allclose(
        sym(gs), sym(expected_s), rtol=rtol, atol=rtol * np.abs(expected_s).max()
    )
    assert gb.dtype == dtype and gt.dtype == dtype


def plain_cg(a, b, x0, steps, alpha=None, beta=None):
    """Textbook CG in numpy (an independent reference for the recurrence)."""
    x = x0.copy()
    r = b - a @ x
    p = r.copy()
    for k in range(steps):
        ap = a @ p
        al = (r @ r) / (p @ ap) if alpha is None else alpha[k]
        x = x + al * p
        r_new = r - al * ap
        be = (r_new @ r_new) / (r @ r) if beta is None else beta[k]
        p = r_new + be * p
        r = r_new
    return x


@pytest.mark.parametrize("steps", [1, 3, 5])
def test_unrolled_gradient_equals_finite_differences_of_truncated_iteration(steps):
    s, bmat, b = problem(n=12, seed=2)
    x0 = np.random.default_rng(3).standard_normal(12)

    def f_glr(theta, b, x0):
        x, info = glrjax.cg(
            matvec,
            b,
            (jnp.asarray(s), theta, jnp.asarray(bmat)),
            x0=x0,
            tol=0.0,
            maxiter=steps,
            gradient=glrjax.Unrolled(),
        )
        return jnp.sum(x**2)

    def f_np(theta, b, x0):
        return np.sum(plain_cg(s + theta * bmat, b, x0, steps) ** 2)

    theta = 0.4
    gt, gb, gx = jax.grad(f_glr, argnums=(0, 1, 2))(theta, jnp.asarray(b), jnp.asarray(x0))
    np.testing.assert_allclose(f_glr(theta, b, x0), f_np(theta, b, x0), rtol=1e-12)
    h = 1e-6
    fd_t = (f_np(theta + h, b, x0) - f_np(theta - h, b, x0)) / (2 * h)
    np.testing.assert_allclose(gt, fd_t, rtol=1e-6)
    for grad, base in [(gb, b), (gx, x0)]:
        i = 4
        e = np.zeros_like(base)
        e[i] = h
        args_p = (b + e, x0) if base is b else (b, x0 + e)
        args_m = (b - e, x0) if base is b else (b, x0 - e)
        fd = (f_np(theta, *args_p) - f_np(theta, *args_m)) / (2 * h)
        np.testing.assert_allclose(grad[i], fd, rtol=1e-6)


def test_checkpointed_and_long_truncated_equal_unrolled_exactly():
    s, bmat, b = problem(seed=4)

    def grads(mode):
        def loss(b, theta):
            x, _ = glrjax.cg(
                matvec,
                b,
                (jnp.asarray(s), theta, jnp.asarray(bmat)),
                tol=1e-10,
                maxiter=60,
                gradient=mode,
            )
            return jnp.sum(jnp.sin(x))

        return jax.grad(loss, argnums=(0, 1))(jnp.asarray(b), 0.5)

    ref = grads(glrjax.Unrolled())
    for mode in [
        glrjax.Checkpointed(every=7),
        glrjax.Checkpointed(every=60),
        glrjax.Truncated(last=60),
        glrjax.Truncated(last=40),
    ]:
        out = grads(mode)
        for u, v in zip(ref, out, strict=True):
            np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-14)


def test_truncated_gradient_restarts_cg_from_the_cut_iterate():
    """Reference: a hand-written CG to n steps; the gradient of k CG steps restarted from
    x_{n-k} (r = b - A x, p = r) with the value of the full run (straight through)."""
    s, bmat, b = problem(n=10, seed=6)
    a_np = s + 0.5 * bmat
    _, info = glrjax.cg(
        matvec, jnp.asarray(b), (jnp.asarray(s), 0.5, jnp.asarray(bmat)), tol=1e-10, maxiter=100
    )
    n = int(info.iterations)
    k = 3
    assert n > k

    def cg_steps(b, x, steps):
        r = b - a_np @ x
        p = r
        for _ in range(steps):
            ap = a_np @ p
            al = (r @ r) / (p @ ap)
            x = x + al * p
            r_new = r - al * ap
            p = r_new + (r_new @ r_new) / (r @ r) * p
            r = r_new
        return x

    def ref_loss(b):
        x_n = jax.lax.stop_gradient(cg_steps(b, jnp.zeros_like(b), n))
        x_cut = jax.lax.stop_gradient(cg_steps(b, jnp.zeros_like(b), n - k))
        x_r = cg_steps(b, x_cut, k)
        return jnp.sum((x_n + x_r - jax.lax.stop_gradient(x_r)) ** 2)

    def loss(b):
        x, _ = glrjax.cg(
            matvec,
            b,
            (jnp.asarray(s), 0.5, jnp.asarray(bmat)),
            tol=1e-10,
            maxiter=100,
            gradient=glrjax.Truncated(last=k),
        )
        return jnp.sum(x**2)

    g = jax.grad(loss)(jnp.asarray(b))
    np.testing.assert_allclose(g, jax.grad(ref_loss)(jnp.asarray(b)), rtol=1e-8, atol=1e-11)
    # Not zero (glrjax 0.1 froze r and p at the cut: ∂/∂b was exactly 0 for k < n).
    assert np.linalg.norm(g) > 0.1 * np.linalg.norm(
        2 * np.linalg.solve(a_np, np.linalg.solve(a_np, b))
    )


def test_learned_schedules_replace_step_sizes_and_get_gradients():
    s, bmat, b = problem(n=10, seed=7)
    a_np = s + 0.2 * bmat
    steps = 4
    rng = np.random.default_rng(8)
    alpha = rng.uniform(0.2, 0.6, steps)
    beta = rng.uniform(0.0, 0.5, steps)
    args = (jnp.asarray(s), 0.2, jnp.asarray(bmat))

    def f(alpha, beta, mode=glrjax.Unrolled()):
        x, _ = glrjax.cg(
            matvec,
            jnp.asarray(b),
            args,
            tol=0.0,
            maxiter=steps,
            alpha=alpha,
            beta=beta,
            gradient=mode,
        )
        return jnp.sum(x**2)

    ref = np.sum(plain_cg(a_np, b, np.zeros(10), steps, alpha, beta) ** 2)
    np.testing.assert_allclose(f(alpha, beta), ref, rtol=1e-12)
    ga, gbeta = jax.grad(f, argnums=(0, 1))(jnp.asarray(alpha), jnp.asarray(beta))
    h = 1e-6
    for i in range(steps):
        e = np.zeros(steps)
        e[i] = h
        fd_a = (
            np.sum(plain_cg(a_np, b, np.zeros(10), steps, alpha + e, beta) ** 2)
            - np.sum(plain_cg(a_np, b, np.zeros(10), steps, alpha - e, beta) ** 2)
        ) / (2 * h)
        fd_b = (
            np.sum(plain_cg(a_np, b, np.zeros(10), steps, alpha, beta + e) ** 2)
            - np.sum(plain_cg(a_np, b, np.zeros(10), steps, alpha, beta - e) ** 2)
        ) / (2 * h)
        np.testing.assert_allclose(ga[i], fd_a, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(gbeta[i], fd_b, rtol=1e-6, atol=1e-9)
    for mode in [glrjax.Checkpointed(every=3), glrjax.Truncated(last=steps)]:
        g = jax.grad(f, argnums=(0, 1))(jnp.asarray(alpha), jnp.asarray(beta), mode)
        np.testing.assert_allclose(g[0], ga, rtol=1e-12)
    # Implicit: the solution of A x = b does not depend on the schedule.
    gi = jax.grad(f, argnums=(0, 1))(jnp.asarray(alpha), jnp.asarray(beta), glrjax.Implicit())
    assert np.all(np.asarray(gi[0]) == 0) and np.all(np.asarray(gi[1]) == 0)


def test_cg_computed_steps_reproduced_by_schedule():
    """Feeding CG's own α_k, β_k back as a schedule gives the same iterates."""
    s, bmat, b = problem(n=8, seed=9)
    a_np = s + bmat
    x, r, p = np.zeros(8), b.copy(), b.copy()
    alphas, betas = [], []
    for _ in range(5):
        ap = a_np @ p
        al = (r @ r) / (p @ ap)
        x = x + al * p
        r_new = r - al * ap
        be = (r_new @ r_new) / (r @ r)
        p = r_new + be * p
        r = r_new
        alphas.append(al)
        betas.append(be)
    args = (jnp.asarray(s), 1.0, jnp.asarray(bmat))
    x1, _ = glrjax.cg(matvec, jnp.asarray(b), args, tol=0.0, maxiter=5, gradient=glrjax.Unrolled())
    x2, _ = glrjax.cg(
        matvec,
        jnp.asarray(b),
        args,
        tol=0.0,
        maxiter=5,
        alpha=jnp.asarray(alphas),
        beta=jnp.asarray(betas),
        gradient=glrjax.Unrolled(),
    )
    np.testing.assert_allclose(x1, x, rtol=1e-10)
    np.testing.assert_allclose(x2, x1, rtol=1e-12)


@pytest.mark.parametrize("solver", ["cg", "gmres"])
def test_implicit_backward_failure_is_nan_by_default_and_finite_when_ignored(solver):
    s, bmat, b = problem(n=30, seed=10)
    args = (jnp.asarray(s), 5.0, jnp.asarray(bmat))

    def grad(mode):
        def loss(b):
            return jnp.sum(glrjax.cg(matvec, b, args, tol=1e-10, maxiter=200, gradient=mode)[0])

        return jax.grad(loss)(jnp.asarray(b))

    failing = dict(solver=solver, tol=1e-12, maxiter=2)
    assert np.all(np.isnan(grad(glrjax.Implicit(**failing))))
    g = grad(glrjax.Implicit(**failing, on_failure="ignore"))
    assert np.all(np.isfinite(g))
    good = grad(glrjax.Implicit(solver=solver, tol=1e-12, maxiter=300))
    np.testing.assert_allclose(good, np.linalg.solve((s + 5.0 * bmat).T, np.ones(30)), rtol=1e-7)


def test_implicit_neumann_and_jacobian_free_backprop():
    """For A = I - M with ‖M‖ < 1 the Neumann series converges to A⁻ᵀx̄; 0 terms give x̄."""
    rng = np.random.default_rng(11)
    m = rng.standard_normal((10, 10))
    m = 0.4 * (m + m.T) / np.linalg.norm(m + m.T, 2)
    a = np.eye(10) - m
    b = rng.standard_normal(10)
    mv = lambda x, a: a @ x  # noqa: E731

    def grad(mode):
        return jax.grad(
            lambda b: jnp.sum(glrjax.cg(mv, b, jnp.asarray(a), tol=1e-12, gradient=mode)[0])
        )(jnp.asarray(b))

    np.testing.assert_allclose(
        grad(glrjax.Implicit(solver="neumann", tol=1e-14, maxiter=200)),
        np.linalg.solve(a.T, np.ones(10)),
        rtol=1e-10,
    )
    np.testing.assert_allclose(grad(glrjax.Implicit(solver="neumann", maxiter=0)), np.ones(10))
    # A diverging series is a failure: NaN by default.
    mv2 = lambda x, a: 3.0 * a @ x  # noqa: E731
    g = jax.grad(
        lambda b: jnp.sum(
            glrjax.cg(
                mv2, b, jnp.asarray(a), gradient=glrjax.Implicit(solver="neumann", maxiter=20)
            )[0]
        )
    )(jnp.asarray(b))
    assert np.all(np.isnan(g))


def test_implicit_gradient_reaches_closed_over_arrays():
    """A closure over a traced matrix still gets the right implicit gradient."""
    s, bmat, b = problem(n=9, seed=12)

    def loss(smat):
        xs, _ = glrjax.cg(
            lambda x, _: smat @ x,
            jnp.asarray(b),
            None,
            tol=1e-12,
            gradient=glrjax.Implicit(tol=1e-12),
        )
        return jnp.sum(xs)

    adj = np.linalg.solve(s.T, np.ones(9))
    np.testing.assert_allclose(
        jax.grad(loss)(jnp.asarray(s)), -np.outer(adj, np.linalg.solve(s, b)), rtol=1e-8, atol=1e-12
    )


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_vmap_over_batch_of_systems(mode):
    s, bmat, _ = problem(n=16, seed=13)
    rng = np.random.default_rng(14)
    bs = rng.standard_normal((5, 16))
    thetas = np.linspace(0.1, 2.0, 5)

    def solve(b, theta):
        return glrjax.cg(
            matvec,
            b,
            (jnp.asarray(s), theta, jnp.asarray(bmat)),
            tol=1e-12,
            maxiter=100,
            gradient=mode,
        )

    x, info = jax.jit(jax.vmap(solve))(jnp.asarray(bs), jnp.asarray(thetas))
    assert info.iterations.shape == (5,) and info.converged.shape == (5,)
    for i in range(5):
        np.testing.assert_allclose(x[i], np.linalg.solve(s + thetas[i] * bmat, bs[i]), rtol=1e-9)
    g = jax.grad(lambda t: jnp.sum(jax.vmap(solve)(jnp.asarray(bs), t)[0]))(jnp.asarray(thetas))
    for i in range(5):
        a = s + thetas[i] * bmat
        expected = -np.linalg.solve(a.T, np.ones(16)) @ bmat @ np.linalg.solve(a, bs[i])
        np.testing.assert_allclose(g[i], expected, rtol=1e-7)


def _badly_scaled_system(seed):
    """SPD a with diagonal 1..1e4 (Jacobi's case) and a right-hand side b."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((50, 50)) * 0.01
    return np.diag(np.logspace(0, 4, 50)) + c @ c.T, rng.standard_normal(50)


def test_jacobi_preconditioner_same_solution_fewer_iterations():
    a, b = _badly_scaled_system(15)
    mv = lambda x, a: a @ x  # noqa: E731
    x1, i1 = glrjax.cg(mv, jnp.asarray(b), jnp.asarray(a), tol=1e-10, maxiter=500)
    x2, i2 = glrjax.cg(
        mv,
        jnp.asarray(b),
        jnp.asarray(a),
        tol=1e-10,
        maxiter=500,
        precond=glrjax.jacobi(lambda a: jnp.diag(a)),
    )
    ref = np.linalg.solve(a, b)
    np.testing.assert_allclose(x1, ref, rtol=1e-7)
    np.testing.assert_allclose(x2, ref, rtol=1e-7)
    assert int(i2.iterations) < int(i1.iterations)


def test_implicit_backward_cg_uses_the_forward_preconditioner():
    """The adjoint system is A itself: the Jacobi preconditioner that speeds the forward
    solve speeds the backward one too (a budget too small without it suffices with it)."""
    a, b = _badly_scaled_system(16)
    mv = lambda x, a: a @ x  # noqa: E731
    pc = glrjax.jacobi(lambda a: jnp.diag(a))

    def grads(precond, maxiter):
        mode = glrjax.Implicit(solver="cg", tol=1e-9, maxiter=maxiter)

        def loss(b, a):
            x, _ = glrjax.cg(mv, b, a, tol=1e-12, maxiter=500, precond=precond, gradient=mode)
            return jnp.sum(x**2)

        return jax.grad(loss, argnums=(0, 1))(jnp.asarray(b), jnp.asarray(a))

    x = np.linalg.solve(a, b)
    u = np.linalg.solve(a.T, 2 * x)  # closed form: b̄ = A⁻ᵀ x̄, Ā = -b̄ xᵀ
    gb, ga = grads(pc, 30)
    np.testing.assert_allclose(gb, u, rtol=1e-6)
    np.testing.assert_allclose(ga, -np.outer(u, x), rtol=1e-6, atol=1e-12)
    assert np.all(np.isnan(grads(None, 30)[0]))  # unpreconditioned: 30 steps are not enough
    assert np.all(np.isfinite(grads(None, 500)[0]))


def _temp_bytes(mode, maxiter, n=256):
    d = jnp.linspace(1.0, 10.0, n, dtype=jnp.float32)
    mv = lambda x, d: d * x + 0.3 * (jnp.roll(x, 1) + jnp.roll(x, -1))  # noqa: E731

    def loss(b, d):
        return glrjax.cg(mv, b, d, tol=0.0, maxiter=maxiter, gradient=mode)[0].sum()

    compiled = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(jnp.ones(n, jnp.float32), d).compile()
    return compiled.memory_analysis().temp_size_in_bytes


def test_gradient_memory_scaling_per_mode():
    unrolled = {k: _temp_bytes(glrjax.Unrolled(), k) for k in (10, 100, 1000)}
    implicit = {k: _temp_bytes(glrjax.Implicit(), k) for k in (10, 100, 1000)}
    # Unrolled: about linear in maxiter (a constant overhead allowed).
    slope = (unrolled[1000] - unrolled[100]) / 900
    assert slope > 0
    assert abs((unrolled[100] - unrolled[10]) / 90 - slope) < 0.1 * slope
    assert unrolled[1000] > 50 * unrolled[10] / 2
    # Implicit: flat within 10 %.
    assert max(implicit.values()) <= 1.1 * min(implicit.values())
    # Checkpointed(every=√K) below a quarter of Unrolled at K = 1000.
    ck = _temp_bytes(glrjax.Checkpointed(every=math.isqrt(1000)), 1000)
    assert ck < unrolled[1000] / 4


def test_changing_values_does_not_recompile():
    traces = []
    s, bmat, b = problem(n=8, seed=16)

    @jax.jit
    def solve(b, args, alpha, tol):
        traces.append(1)
        return glrjax.cg(
            matvec, b, args, tol=tol, maxiter=5, alpha=alpha, gradient=glrjax.Unrolled()
        )[0]

    for i in range(4):
        solve(
            jnp.asarray(b) + i,
            (jnp.asarray(s), 0.1 * i, jnp.asarray(bmat)),
            jnp.full(5, 0.1 * (i + 1)),
            10.0**-i,
        )
    assert len(traces) == 1
    # Equal gradient-mode objects do not recompile either (they are static and hashable).
    f = jax.jit(
        lambda b, mode: glrjax.cg(
            matvec, b, (jnp.asarray(s), 1.0, jnp.asarray(bmat)), gradient=mode
        )[0],
        static_argnums=1,
    )
    f(jnp.asarray(b), glrjax.Checkpointed(every=3))
    f(jnp.asarray(b), glrjax.Checkpointed(every=3))
    assert f._cache_size() == 1


def test_nan_input_ends_not_converged_with_nan_result():
    s, bmat, b = problem(n=8, seed=17)
    b = b.copy()
    b[2] = np.nan
    for mode in MODES:
        x, info = glrjax.cg(
            matvec,
            jnp.asarray(b),
            (jnp.asarray(s), 1.0, jnp.asarray(bmat)),
            maxiter=50,
            gradient=mode,
        )
        assert not bool(info.converged)
        assert np.all(np.isnan(np.asarray(x)))


def test_maxiter_exhausted_reports_not_converged():
    s, bmat, b = problem(n=40, seed=18)
    x, info = glrjax.cg(
        matvec, jnp.asarray(b), (jnp.asarray(s), 1.0, jnp.asarray(bmat)), tol=1e-12, maxiter=3
    )
    assert int(info.iterations) == 3 and not bool(info.converged)
    assert float(info.residual) > 1e-12


def test_zero_rhs_converges_immediately_to_zero():
    s, bmat, _ = problem(n=6, seed=19)
    x, info = glrjax.cg(matvec, jnp.zeros(6), (jnp.asarray(s), 1.0, jnp.asarray(bmat)))
    assert bool(info.converged) and int(info.iterations) == 0
    assert np.all(np.asarray(x) == 0)


def test_float32_in_x64_mode_stays_float32():
    s, bmat, b = problem(n=6, seed=20)
    args = as_args(s, bmat, 1.0, jnp.float32)
    x, info = glrjax.cg(matvec, jnp.asarray(b, jnp.float32), args, tol=1e-5)
    assert x.dtype == jnp.float32 and info.residual.dtype == jnp.float32
    g = jax.grad(lambda b: glrjax.cg(matvec, b, args)[0].sum())(jnp.asarray(b, jnp.float32))
    assert g.dtype == jnp.float32


BAD_INPUTS = [
    # A raises inside (a 4×4 matrix times a 3-vector): re-raised with context, not blamed
    # on squareness.
    (dict(b=jnp.ones((3,))), TypeError, "A\\(x, args\\) raised TypeError"),
    (dict(b=jnp.arange(4)), TypeError, "b has dtype"),
    (dict(maxiter=0), ValueError, "maxiter"),
    (dict(maxiter=2.5), TypeError, "maxiter"),
    (dict(tol=-1.0), ValueError, "tol"),
    (dict(gradient="unrolled"), TypeError, "gradient"),
    (dict(gradient=glrjax.Unrolled), TypeError, "instance"),
    (dict(x0=jnp.ones(3)), ValueError, "x0"),
    (dict(alpha=jnp.ones(3)), ValueError, "alpha"),
    (dict(precond=3), TypeError, "precond"),
]


@pytest.mark.parametrize("kwargs,error,match", BAD_INPUTS, ids=[m[:12] for *_, m in BAD_INPUTS])
def test_bad_input_raises_with_argument_name(kwargs, error, match):
    mv = lambda x, a: a @ x  # noqa: E731
    call = dict(b=jnp.ones(4), maxiter=10)
    call.update(kwargs)
    b = call.pop("b")
    a = jnp.eye(4) if b.shape == (4,) else jnp.eye(4)
    with pytest.raises(error, match=match):
        glrjax.cg(mv, b, a, **call)


def test_operator_returning_wrong_dtype_is_rejected():
    with pytest.raises(TypeError, match="dtype"):
        glrjax.cg(
            lambda x, a: (a @ x).astype(jnp.float32),
            jnp.ones(4, jnp.float64),
            jnp.eye(4, dtype=jnp.float64),
        )


@pytest.mark.parametrize("steps", [1, 2, 7])
def test_chebyshev_steps_give_the_chebyshev_residual_polynomial(steps):
    """CG with these steps on diag(λ) leaves r_k(λ) = T_k((θ − λ)/c)/T_k(θ/c) (closed form)."""
    lo, hi = 0.3, 2.0
    lam = np.linspace(0.0, hi, 17)
    a, b = glrjax.chebyshev_steps(lo, hi, steps)
    x, _ = glrjax.cg(
        lambda v, d: d * v,
        jnp.ones(17),
        jnp.asarray(lam),
        tol=0.0,
        maxiter=steps,
        alpha=a,
        beta=b,
        gradient=glrjax.Unrolled(),
    )
    theta, c = (hi + lo) / 2, (hi - lo) / 2
    t = np.polynomial.chebyshev.Chebyshev.basis(steps)
    expected = t((theta - lam) / c) / t(theta / c)
    np.testing.assert_allclose(1.0 - lam * np.asarray(x), expected, atol=1e-12)
    assert np.all(np.abs(expected) <= 1.0 + 1e-12)  # bounded on [0, hi]
    with pytest.raises(ValueError, match="0 < lo < hi"):
        glrjax.chebyshev_steps(2.0, 1.0, steps)
    with pytest.raises(TypeError, match="steps"):
        glrjax.chebyshev_steps(lo, hi, 2.5)
