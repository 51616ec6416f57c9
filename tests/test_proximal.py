"""pgd and fista under every gradient mode, against scikit-learn, scipy, numpy references and
finite differences; the look-ahead q and the stopping rule as seed 003 describes them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from seed003 import seed_small
from sklearn.linear_model import Lasso

import glrjax
from glrjax import prox
from glrjax.proximal import _fista_iteration

MODES = [
    glrjax.Unrolled(),
    glrjax.Checkpointed(every=16),
    glrjax.Truncated(last=5000),
    glrjax.Implicit(tol=1e-12, maxiter=500),
]
MODE_IDS = ["unrolled", "checkpointed", "truncated", "implicit"]
# Jitted once per configuration (eager calls would compile each loop separately).
jpgd = jax.jit(glrjax.pgd, static_argnums=(0, 1), static_argnames=("maxiter", "gradient"))
jfista = jax.jit(
    glrjax.fista, static_argnums=(0, 1), static_argnames=("maxiter", "gradient", "restart")
)
SOLVERS = {"pgd": jpgd, "fista": jfista, "fista-restart": None}


def solver(name):
    if name == "fista-restart":
        return lambda *a, **k: jfista(*a, restart=True, **k)
    return SOLVERS[name]


def lasso_problem(n=40, p=12, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, p))
    w = np.where(rng.random(p) < 0.5, rng.standard_normal(p), 0.0)
    y = x @ w + 0.1 * rng.standard_normal(n)
    return x, y


def lasso_grad(w, data):
    x, y = data
    return x.T @ (x @ w - y) / x.shape[0]


def lasso_objective(w, x, y, lam):
    return 0.5 * np.sum((x @ w - y) ** 2) / x.shape[0] + lam * np.abs(w).sum()


@pytest.mark.parametrize("name", list(SOLVERS))
def test_lasso_matches_scikit_learn(name):
    x, y = lasso_problem()
    lam = 0.05
    w, info = solver(name)(
        lasso_grad,
        prox.l1,
        jnp.zeros(12),
        (jnp.asarray(x), jnp.asarray(y)),
        lam,
        tol=1e-12,
        maxiter=20000,
    )
    ref = Lasso(alpha=lam, fit_intercept=False, tol=1e-14, max_iter=100000).fit(x, y).coef_
    assert bool(info.converged) and float(info.residual) <= 1e-12
    f, f_ref = lasso_objective(np.asarray(w), x, y, lam), lasso_objective(ref, x, y, lam)
    assert f <= f_ref + 1e-12 * abs(f_ref)
    np.testing.assert_allclose(w, ref, atol=1e-8)
    assert np.array_equal(np.asarray(w) == 0, ref == 0)


@pytest.mark.parametrize("name", list(SOLVERS))
def test_nonnegative_least_squares_matches_scipy_nnls(name):
    x, y = lasso_problem(n=30, p=8, seed=1)
    w, info = solver(name)(
        lasso_grad,
        prox.nonneg,
        jnp.zeros(8),
        (jnp.asarray(x), jnp.asarray(y)),
        None,
        tol=1e-13,
        maxiter=20000,
    )
    ref, _ = scipy.optimize.nnls(x, y)
    assert bool(info.converged)
    np.testing.assert_allclose(w, ref, atol=1e-9)


def test_box_constrained_quadratic_matches_scipy():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((10, 10))
    a = a @ a.T + np.eye(10)
    b = 3 * rng.standard_normal(10)
    w, _ = jfista(
        lambda w, ab: ab[0] @ w - ab[1],
        prox.box,
        jnp.zeros(10),
        (jnp.asarray(a), jnp.asarray(b)),
        (-0.5, 0.5),
        restart=True,
        tol=1e-13,
        maxiter=20000,
    )
    res = scipy.optimize.minimize(
        lambda v: (0.5 * v @ a @ v - b @ v, a @ v - b),
        np.zeros(10),
        jac=True,
        method="L-BFGS-B",
        bounds=[(-0.5, 0.5)] * 10,
        options=dict(ftol=1e-16, gtol=1e-12),
    )
    np.testing.assert_allclose(w, res.x, atol=1e-6)


def test_lipschitz_estimate_matches_largest_eigenvalue():
    x, y = lasso_problem(seed=3)
    est = glrjax.lipschitz(lasso_grad, jnp.zeros(12), (jnp.asarray(x), jnp.asarray(y)))
    exact = np.linalg.eigvalsh(x.T @ x / x.shape[0])[-1]
    assert est <= exact * (1 + 1e-12) and est >= 0.99 * exact


# ----------------------------------------------------------------------------- numpy references
def np_pgd(x, y, lam, w0, steps, t):
    w = w0.copy()
    for k in range(steps):
        tk = t[k] if np.ndim(t) else t
        z = w - tk * x.T @ (x @ w - y) / x.shape[0]
        w = np.sign(z) * np.maximum(np.abs(z) - tk * lam, 0)
    return w


def np_fista(x, y, lam, w0, steps, t, q):
    """Seed 003's recurrence: A_k = M_k + k/(k+q+1)(M_k − M_{k−1}), M_{k+1} = prox(A_k − t∇f)."""
    w, w_prev = w0.copy(), w0.copy()
    for k in range(steps):
        a = w + k / (k + q + 1) * (w - w_prev)
        z = a - t * x.T @ (x @ a - y) / x.shape[0]
        w_prev, w = w, np.sign(z) * np.maximum(np.abs(z) - t * lam, 0)
    return w


@pytest.mark.parametrize("steps", [1, 4, 9])
def test_fixed_steps_match_numpy_recurrences_and_finite_differences(steps):
    x, y = lasso_problem(n=20, p=6, seed=4)
    w0 = np.random.default_rng(5).standard_normal(6)
    t, q, lam = 0.3, 3.0, 0.2
    data = (jnp.asarray(x), jnp.asarray(y))

    def run(fn, lam, y, w0, **kw):
        return fn(lasso_grad, prox.l1, w0, (data[0], y), lam, step=t, tol=0.0, maxiter=steps, **kw)

    wp, info = run(glrjax.pgd, lam, data[1], jnp.asarray(w0))
    np.testing.assert_allclose(wp, np_pgd(x, y, lam, w0, steps, t), rtol=1e-12, atol=1e-14)
    assert int(info.iterations) == steps
    wf, _ = run(glrjax.fista, lam, data[1], jnp.asarray(w0), q=q)
    np.testing.assert_allclose(wf, np_fista(x, y, lam, w0, steps, t, q), rtol=1e-12, atol=1e-14)

    # Unrolled gradients = central differences of the numpy recurrence.
    def loss(lam, y, w0):
        return jnp.sum(run(glrjax.fista, lam, y, w0, q=q)[0] ** 2)

    g = jax.grad(loss, argnums=(0, 1, 2))(lam, data[1], jnp.asarray(w0))
    h = 1e-6
    ref = lambda lam, y, w0: np.sum(np_fista(x, y, lam, w0, steps, t, q) ** 2)  # noqa: E731
    np.testing.assert_allclose(
        g[0], (ref(lam + h, y, w0) - ref(lam - h, y, w0)) / (2 * h), rtol=1e-6, atol=1e-9
    )
    e = np.zeros(20)
    e[3] = h
    np.testing.assert_allclose(
        g[1][3], (ref(lam, y + e, w0) - ref(lam, y - e, w0)) / (2 * h), rtol=1e-6, atol=1e-9
    )
    e = np.zeros(6)
    e[2] = h
    np.testing.assert_allclose(
        g[2][2], (ref(lam, y, w0 + e) - ref(lam, y, w0 - e)) / (2 * h), rtol=1e-6, atol=1e-9
    )


def test_step_schedule_gets_gradients_unrolled_and_zero_implicit():
    x, y = lasso_problem(n=20, p=6, seed=6)
    data = (jnp.asarray(x), jnp.asarray(y))
    steps = 5
    sched = np.linspace(0.2, 0.5, steps)
    w0 = np.ones(6)

    def loss(s, mode):
        w, _ = jpgd(
            lasso_grad,
            prox.l1,
            jnp.asarray(w0),
            data,
            0.1,
            step=s,
            tol=0.0,
            maxiter=steps,
            gradient=mode,
        )
        return jnp.sum(w**2)

    g = jax.grad(loss)(jnp.asarray(sched), glrjax.Unrolled())
    h = 1e-6
    for k in range(steps):
        e = np.zeros(steps)
        e[k] = h
        fd = (
            np.sum(np_pgd(x, y, 0.1, w0, steps, sched + e) ** 2)
            - np.sum(np_pgd(x, y, 0.1, w0, steps, sched - e) ** 2)
        ) / (2 * h)
        np.testing.assert_allclose(g[k], fd, rtol=1e-6, atol=1e-10)
    gi = jax.grad(loss)(jnp.asarray(sched), glrjax.Implicit())
    assert np.all(np.asarray(gi) == 0)


# ----------------------------------------------------------------------------- gradient modes
@jax.jit
def _tight_lasso(lam, y, x):
    return jfista(
        lasso_grad,
        prox.l1,
        jnp.zeros(x.shape[1]),
        (x, y),
        lam,
        restart=True,
        tol=1e-14,
        maxiter=50000,
        gradient=glrjax.Implicit(),
    )[0]


def tight_lasso(lam, y, x):
    return np.asarray(_tight_lasso(lam, jnp.asarray(y), jnp.asarray(x)))


@pytest.mark.parametrize("name", list(SOLVERS))
@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_solution_gradients_match_finite_differences(mode, name):
    """∂/∂λ and ∂/∂y of cᵀw*(λ, y); references: central differences of tight solves."""
    x, y = lasso_problem(n=30, p=8, seed=7)
    c = np.random.default_rng(8).standard_normal(8)
    lam = 0.05

    def loss(lam, y):
        w, _ = solver(name)(
            lasso_grad,
            prox.l1,
            jnp.zeros(8),
            (jnp.asarray(x), y),
            lam,
            tol=1e-13,
            maxiter=20000,
            gradient=mode,
        )
        return jnp.vdot(jnp.asarray(c), w)

    g_lam, g_y = jax.jit(jax.grad(loss, argnums=(0, 1)))(lam, jnp.asarray(y))
    h = 1e-6
    fd_lam = c @ (tight_lasso(lam + h, jnp.asarray(y), x) - tight_lasso(lam - h, jnp.asarray(y), x))
    np.testing.assert_allclose(g_lam, fd_lam / (2 * h), rtol=1e-5)
    e = np.zeros(30)
    e[5] = h
    fd_y = c @ (tight_lasso(lam, jnp.asarray(y + e), x) - tight_lasso(lam, jnp.asarray(y - e), x))
    np.testing.assert_allclose(g_y[5], fd_y / (2 * h), rtol=1e-5, atol=1e-9)


def test_checkpointed_and_long_truncated_equal_unrolled_exactly():
    x, y = lasso_problem(seed=9)
    data = (jnp.asarray(x), jnp.asarray(y))

    def grads(mode):
        def loss(lam, y):
            w, _ = jfista(
                lasso_grad,
                prox.l1,
                jnp.zeros(12),
                (data[0], y),
                lam,
                restart=True,
                tol=1e-9,
                maxiter=300,
                gradient=mode,
            )
            return jnp.sum(jnp.sin(w))

        return jax.grad(loss, argnums=(0, 1))(0.03, data[1])

    ref = grads(glrjax.Unrolled())
    for mode in [glrjax.Checkpointed(every=7), glrjax.Truncated(last=300)]:
        for u, v in zip(ref, grads(mode), strict=True):
            np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-14)


def test_group_lasso_prox_args_gradient_and_vmap_over_lambda():
    """A group-lasso fista vmapped over λ: solutions and implicit gradients per λ."""
    rng = np.random.default_rng(10)
    a = rng.standard_normal((6, 6))
    rxx = a @ a.T / 6 + 0.1 * np.eye(6)
    ryx = rng.standard_normal((4, 6))
    corr = (jnp.asarray(rxx), jnp.asarray(ryx))
    grad_f = lambda m, c: m @ c[0] - c[1]  # noqa: E731

    @jax.jit
    def solve(lam, mode=glrjax.Implicit(tol=1e-12)):
        return jfista(
            grad_f,
            prox.group_l21,
            jnp.zeros((4, 6)),
            corr,
            lam,
            restart=True,
            tol=1e-13,
            maxiter=1000,
            gradient=mode,
        )[0]

    lams = jnp.asarray([0.05, 0.3, 1.0])
    ms = jax.vmap(solve)(lams)
    g = jax.grad(lambda l: jnp.sum(jax.vmap(solve)(l)))(lams)
    for i, lam in enumerate(np.asarray(lams)):
        np.testing.assert_allclose(ms[i], solve(lam), rtol=1e-12, atol=1e-14)
        h = 1e-6
        fd = (np.sum(solve(lam + h)) - np.sum(solve(lam - h))) / (2 * h)
        np.testing.assert_allclose(g[i], fd, rtol=1e-5, atol=1e-9)
        gu = jax.grad(lambda l: jnp.sum(solve(l, glrjax.Unrolled())))(lam)
        np.testing.assert_allclose(gu, g[i], rtol=1e-7, atol=1e-10)


# ----------------------------------------------------------------------------- seed 003 behaviour
def test_q_damps_the_bounce_slows_the_start_and_lets_the_stopping_rule_fire():
    """Seed 003: higher q diminishes the bouncing of the objective but slows down the first
    iterations; raising q a little lets the stopping condition fire earlier."""
    rxx, ryx = map(jnp.asarray, seed_small())
    lam = 0.1
    m_star, _ = glrjax.linear_reconstruction(rxx, ryx, lam, tol=1e-14, maxiter=5000)
    f_star = float(glrjax.reconstruction_objective(m_star, rxx, ryx, lam))
    t = 1 / (1.01 * np.linalg.eigvalsh(np.asarray(rxx))[-1])
    it = _fista_iteration(lambda m, c: m @ c[0] - c[1], prox.group_l21, False, False)

    @jax.jit
    def trajectory(q):
        params = ((rxx, ryx), lam, t, q)
        state = it.init(params, jnp.full_like(ryx, 0.01))  # the seed's starting point

        def body(s, k):
            s = it.step(s, params, k)
            return s, (glrjax.reconstruction_objective(s.x, rxx, ryx, lam), s.residual)

        return jax.lax.scan(body, state, jnp.arange(600))[1]

    out = {}
    for q in [1.0, 5.0, 50.0, 250.0]:
        f, res = map(np.asarray, trajectory(q))
        gap = np.log10(np.maximum((f - f_star) / abs(f_star), 1e-16))
        bounce = np.sum(np.maximum(np.diff(gap), 0))  # total rise of log(F − F*)
        fired = np.flatnonzero(res <= 1e-6)
        out[q] = (bounce, gap[9], fired[0] if fired.size else np.inf)
    bounces = [out[q][0] for q in sorted(out)]
    assert bounces[0] > 1.0 and all(
        a > b or b == 0 for a, b in zip(bounces[:-1], bounces[1:], strict=True)
    )
    assert out[1.0][0] > 4 * out[5.0][0] and out[50.0][0] == 0
    starts = [out[q][1] for q in sorted(out)]
    assert starts == sorted(starts)  # the gap after 10 steps grows with q
    assert out[1.0][2] == np.inf and out[5.0][2] < out[50.0][2] < 600


def test_stopping_rule_certifies_the_objective():
    """Stopping at residual ≤ tol leaves an objective gap that shrinks with tol."""
    x, y = lasso_problem(seed=11)
    data = (jnp.asarray(x), jnp.asarray(y))
    lam = 0.02
    ref = Lasso(alpha=lam, fit_intercept=False, tol=1e-14, max_iter=100000).fit(x, y).coef_
    f_ref = lasso_objective(ref, x, y, lam)
    gaps = []
    for tol in [1e-3, 1e-6, 1e-9]:
        w, info = jfista(lasso_grad, prox.l1, jnp.zeros(12), data, lam, tol=tol)
        assert bool(info.converged) and float(info.residual) <= tol
        gaps.append(lasso_objective(np.asarray(w), x, y, lam) - f_ref)
    assert gaps[0] > gaps[1] > gaps[2] >= -1e-14
    assert gaps[2] <= 1e-12 * abs(f_ref)


def test_adaptive_restart_needs_fewer_iterations_on_an_ill_conditioned_problem():
    rng = np.random.default_rng(12)
    q, _ = np.linalg.qr(rng.standard_normal((30, 30)))
    a = q @ np.diag(np.logspace(0, 3, 30)) @ q.T
    b = rng.standard_normal(30)
    args = (jnp.asarray(a), jnp.asarray(b))
    grad_f = lambda w, ab: ab[0] @ w - ab[1]  # noqa: E731

    def run(r):
        return jfista(
            grad_f,
            prox.l1,
            jnp.zeros(30),
            args,
            0.01,
            restart=r,
            tol=1e-10,
            maxiter=20000,
            gradient=glrjax.Implicit(),
        )

    w0, i0 = run(False)
    w1, i1 = run(True)
    assert bool(i0.converged) and bool(i1.converged)
    assert int(i1.iterations) < int(i0.iterations) / 3
    np.testing.assert_allclose(w1, w0, atol=1e-7)


# ----------------------------------------------------------------------------- contract
def test_changing_lambda_step_q_and_tol_does_not_recompile():
    x, y = lasso_problem(seed=13)
    data = (jnp.asarray(x), jnp.asarray(y))
    traces = []

    @jax.jit
    def run(lam, step, q, tol):
        traces.append(1)
        return jfista(
            lasso_grad, prox.l1, jnp.zeros(12), data, lam, step=step, q=q, tol=tol, maxiter=50
        )[0]

    for i in range(3):
        run(0.1 * (i + 1), 0.1 / (i + 1), 2.0 + i, 10.0**-i)
    assert len(traces) == 1


def test_float32_stays_float32():
    x, y = lasso_problem(seed=14)
    data = (jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32))
    w, info = jfista(
        lasso_grad, prox.l1, jnp.zeros(12, jnp.float32), data, jnp.float32(0.05), tol=1e-5
    )
    assert w.dtype == jnp.float32 and info.residual.dtype == jnp.float32
    g = jax.grad(
        lambda lam: jpgd(
            lasso_grad, prox.l1, jnp.zeros(12, jnp.float32), data, lam, gradient=glrjax.Implicit()
        )[0].sum()
    )(jnp.float32(0.05))
    assert g.dtype == jnp.float32 and np.isfinite(g)


def test_nan_input_ends_not_converged_with_nan_result():
    x, y = lasso_problem(seed=15)
    y = y.copy()
    y[3] = np.nan
    for mode in MODES:
        w, info = jfista(
            lasso_grad,
            prox.l1,
            jnp.zeros(12),
            (jnp.asarray(x), jnp.asarray(y)),
            0.1,
            step=0.1,
            maxiter=50,
            gradient=mode,
        )
        assert not bool(info.converged) and np.all(np.isnan(np.asarray(w)))


def test_maxiter_exhausted_reports_not_converged():
    x, y = lasso_problem(seed=16)
    w, info = jpgd(
        lasso_grad,
        prox.l1,
        jnp.zeros(12),
        (jnp.asarray(x), jnp.asarray(y)),
        0.01,
        tol=1e-14,
        maxiter=3,
    )
    assert int(info.iterations) == 3 and not bool(info.converged)


BAD = [
    (dict(grad_f=3), TypeError, "grad_f"),
    (dict(prox=None), TypeError, "prox"),
    (dict(grad_f=lambda w, d: w[:3]), ValueError, "shape"),
    (dict(grad_f=lambda w, d: w.astype(jnp.float32)), TypeError, "dtype"),
    (dict(x0=jnp.arange(12)), TypeError, "x0"),
    (dict(step=-1.0), ValueError, "step"),
    (dict(step=jnp.ones(3)), ValueError, "maxiter"),
    (dict(q=0.0), ValueError, "q"),
    (dict(maxiter=0), ValueError, "maxiter"),
    (dict(tol=-1.0), ValueError, "tol"),
    (dict(gradient="implicit"), TypeError, "gradient"),
]


@pytest.mark.parametrize(
    "kwargs,error,match", BAD, ids=[m + str(i) for i, (*_, m) in enumerate(BAD)]
)
def test_bad_input_raises_with_argument_name(kwargs, error, match):
    x, y = lasso_problem(seed=17)
    call = dict(grad_f=lasso_grad, prox=prox.l1, x0=jnp.zeros(12), maxiter=10)
    call.update(kwargs)
    f, p, x0 = call.pop("grad_f"), call.pop("prox"), call.pop("x0")
    with pytest.raises(error, match=match):
        glrjax.fista(f, p, x0, (jnp.asarray(x), jnp.asarray(y)), 0.1, **call)
