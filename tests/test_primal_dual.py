"""primal_dual against a LASSO (scikit-learn) and a 1-D TV problem (scipy on the dual QP)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from sklearn.linear_model import Lasso

import glrjax
from glrjax.primal_dual import operator_norm, primal_dual


def soft(v, lam, t):
    return jnp.sign(v) * jnp.maximum(jnp.abs(v) - t * lam, 0.0)


def lasso_problem(n=40, d=12, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, d))
    x_true = np.where(rng.uniform(size=d) < 0.5, rng.standard_normal(d), 0.0)
    b = a @ x_true + 0.05 * rng.standard_normal(n)
    return a, b


def test_lasso_matches_scikit_learn():
    a, b = lasso_problem()
    lam = 2.0
    sol, info = primal_dual(
        lambda x, p: x,
        jnp.zeros(a.shape[1]),
        (jnp.asarray(a), jnp.asarray(b), lam),
        grad_f=lambda x, p: p[0].T @ (p[0] @ x - p[1]),
        prox_h=lambda v, p, t: soft(v, p[2], t),
        tol=1e-13,
        maxiter=20000,
    )
    ref = Lasso(alpha=lam / a.shape[0], fit_intercept=False, tol=1e-14, max_iter=10**6).fit(a, b)
    assert bool(info.converged)
    np.testing.assert_allclose(sol.x, ref.coef_, atol=1e-7)

    def objective(x):
        return 0.5 * np.sum((a @ x - b) ** 2) + lam * np.abs(x).sum()

    assert objective(np.asarray(sol.x)) <= objective(ref.coef_) * (1 + 1e-10)


def test_lasso_with_k_as_design_and_g_as_l1():
    """The same LASSO split the other way: h = ½‖· − b‖², K = A, g = λ‖·‖₁."""
    a, b = lasso_problem(seed=1)
    lam = 1.5
    sol, info = primal_dual(
        lambda x, p: p[0] @ x,
        jnp.zeros(a.shape[1]),
        (jnp.asarray(a), jnp.asarray(b), lam),
        prox_g=lambda v, p, t: soft(v, p[2], t),
        prox_h=lambda v, p, t: (v + t * p[1]) / (1 + t),
        tol=1e-13,
        maxiter=50000,
    )
    ref = Lasso(alpha=lam / a.shape[0], fit_intercept=False, tol=1e-14, max_iter=10**6).fit(a, b)
    assert bool(info.converged)
    np.testing.assert_allclose(sol.x, ref.coef_, atol=1e-7)


def diff(x, p):  # K x = w ⊙ (x_{i+1} − x_i) on a path; p = (y, w, μ)
    return p[1] * (x[1:] - x[:-1])


def tv_reference(y, w, mu):
    """1-D weighted TV denoising via its dual box QP: x = y − Dᵀu, |u| ≤ μ w, scipy L-BFGS-B."""
    n = y.size
    d = np.zeros((n - 1, n))
    d[np.arange(n - 1), np.arange(1, n)] = w
    d[np.arange(n - 1), np.arange(n - 1)] = -w

    def fun(u):
        r = d.T @ u - y
        return 0.5 * r @ r, d @ r

    res = scipy.optimize.minimize(
        fun,
        np.zeros(n - 1),
        jac=True,
        method="L-BFGS-B",
        bounds=[(-mu, mu)] * (n - 1),
        options=dict(ftol=1e-16, gtol=1e-14, maxiter=100000, maxcor=50),
    )
    return y - d.T @ res.x


def tv_exact(y, w, mu, structure_from=None):
    """Exact 1-D TV solution from its structure (fused segments and jump signs).

    The structure is read off a numerical solution; then on each fused segment S,
    c_S = mean(y_S) - μ (w_left s_left - w_right s_right) / |S| with s the signs of the
    jumps at S's left and right boundary edges (optimality x - y + Kᵀu = 0, u = μ s).
    Piecewise affine in (y, μ), so finite differences of it are exact.
    """
    x = tv_reference(*(structure_from or (y, w, mu)))
    jumps = np.abs(np.diff(x)) > 1e-7
    bounds = np.concatenate([[0], np.nonzero(jumps)[0] + 1, [y.size]])
    segs = [(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    means = [x[a] for a, _ in segs]
    out = np.empty_like(y)
    for j, (a, b) in enumerate(segs):
        left = w[a - 1] * np.sign(means[j] - means[j - 1]) if j > 0 else 0.0
        right = w[b - 1] * np.sign(means[j + 1] - means[j]) if j + 1 < len(segs) else 0.0
        out[a:b] = y[a:b].mean() - mu * (left - right) / (b - a)
    return out


def tv_problem(n=20, seed=3):
    rng = np.random.default_rng(seed)
    y = np.repeat(rng.standard_normal(4), n // 4) + 0.2 * rng.standard_normal(n)
    w = rng.uniform(0.5, 1.5, n - 1)
    return y, w


def tv_solve(y, w, mu, mode=glrjax.Unrolled(), tol=1e-12, maxiter=20000):
    sol, info = primal_dual(
        diff,
        jnp.zeros_like(y),
        (y, w, mu),
        grad_f=lambda x, p: x - p[0],
        prox_h=lambda v, p, t: soft(v, p[2], t),
        lipschitz=1.0,
        tol=tol,
        maxiter=maxiter,
        gradient=mode,
    )
    return sol.x, info


def test_tv_matches_dual_qp_reference():
    y, w = tv_problem()
    x, info = tv_solve(jnp.asarray(y), jnp.asarray(w), 0.3)
    assert bool(info.converged)
    np.testing.assert_allclose(x, tv_reference(y, w, 0.3), atol=1e-8)


MODES = [
    glrjax.Unrolled(),
    glrjax.Checkpointed(every=50),
    glrjax.Truncated(last=20000),
    glrjax.Implicit(tol=1e-10, maxiter=2000),
]


@pytest.mark.parametrize("mode", MODES, ids=["unrolled", "checkpointed", "truncated", "implicit"])
def test_tv_gradients_match_finite_differences_of_the_reference(mode):
    y, w = tv_problem(n=12, seed=4)
    mu = 0.25
    c = np.random.default_rng(5).standard_normal(y.size)
    maxiter = 3000 if not isinstance(mode, glrjax.Implicit) else 20000

    def loss(y, mu):
        x, _ = tv_solve(y, jnp.asarray(w), mu, mode, tol=1e-12, maxiter=maxiter)
        return jnp.vdot(jnp.asarray(c), x)

    gy, gmu = jax.jit(jax.grad(loss, argnums=(0, 1)))(jnp.asarray(y), jnp.asarray(mu))
    h = 1e-6
    ref = (y, w, mu)

    def exact(y, mu):
        return c @ tv_exact(y, w, mu, structure_from=ref)

    np.testing.assert_allclose(tv_exact(y, w, mu), tv_reference(y, w, mu), atol=1e-8)
    fd_mu = (exact(y, mu + h) - exact(y, mu - h)) / (2 * h)
    np.testing.assert_allclose(gmu, fd_mu, rtol=1e-7, atol=1e-9)
    for i in (0, 5, 11):
        e = np.zeros_like(y)
        e[i] = h
        fd = (exact(y + e, mu) - exact(y - e, mu)) / (2 * h)
        np.testing.assert_allclose(gy[i], fd, rtol=1e-7, atol=1e-9)


def test_step_schedules_get_unrolled_gradients():
    y, w = tv_problem(n=8, seed=6)
    steps = 6
    rng = np.random.default_rng(7)
    tau = rng.uniform(0.2, 0.4, steps)
    sigma = rng.uniform(0.2, 0.4, steps)

    def f(tau, sigma):
        sol, _ = primal_dual(
            diff,
            jnp.zeros(8),
            (jnp.asarray(y), jnp.asarray(w), 0.3),
            grad_f=lambda x, p: x - p[0],
            prox_h=lambda v, p, t: soft(v, p[2], t),
            tau=tau,
            sigma=sigma,
            tol=0.0,
            maxiter=steps,
        )
        return jnp.sum(sol.x**2)

    g = jax.grad(f)(jnp.asarray(tau), jnp.asarray(sigma))
    h = 1e-6
    for i in range(steps):
        e = np.zeros(steps)
        e[i] = h
        fd = (f(jnp.asarray(tau + e), jnp.asarray(sigma)) - f(jnp.asarray(tau - e), sigma)) / (
            2 * h
        )
        np.testing.assert_allclose(g[i], fd, rtol=1e-5, atol=1e-9)


def test_too_large_steps_are_reported():
    y, w = tv_problem(n=8, seed=8)
    kw = dict(grad_f=lambda x, p: x - p[0], prox_h=lambda v, p, t: soft(v, p[2], t))
    args = (jnp.asarray(y), jnp.asarray(w), 0.3)
    # Known numbers: a trace-time error that says what to do.
    with pytest.raises(ValueError, match="step condition"):
        primal_dual(diff, jnp.zeros(8), args, tau=1.0, sigma=1.0, norm_K=3.0, lipschitz=1.0, **kw)
    # Traced steps: the run stops at once, not converged, NaN result.
    run = jax.jit(lambda t: primal_dual(diff, jnp.zeros(8), args, tau=t, sigma=t, **kw))
    sol, info = run(5.0)
    assert not bool(info.converged) and np.all(np.isnan(sol.x))
    sol, info = run(0.3)
    assert bool(info.converged) and np.all(np.isfinite(sol.x))


def test_operator_norm_matches_svd():
    a = np.random.default_rng(9).standard_normal((7, 5))
    est = operator_norm(lambda x, a: a @ x, jnp.zeros(5), jnp.asarray(a), iters=200)
    np.testing.assert_allclose(est, np.linalg.norm(a, 2), rtol=1e-8)


def test_float32_vmap_and_info():
    y, w = tv_problem(n=8, seed=10)
    ys = jnp.asarray(np.stack([y, -y, 2 * y]), jnp.float32)
    mus = jnp.asarray([0.1, 0.2, 0.3], jnp.float32)

    def solve(y, mu):
        sol, info = primal_dual(
            diff,
            jnp.zeros(8, jnp.float32),
            (y, jnp.asarray(w, jnp.float32), mu),
            grad_f=lambda x, p: x - p[0],
            prox_h=lambda v, p, t: soft(v, p[2], t),
            tol=1e-5,
            maxiter=3000,
        )
        return sol.x, info

    x, info = jax.jit(jax.vmap(solve))(ys, mus)
    assert x.dtype == jnp.float32 and x.shape == (3, 8)
    assert info.iterations.shape == (3,) and bool(jnp.all(info.converged))
    for i in range(3):
        ref = tv_reference(np.asarray(ys[i], np.float64), w, float(mus[i]))
        np.testing.assert_allclose(x[i], ref, atol=1e-3)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(x0=jnp.arange(8)), TypeError, "x0"),
        (dict(tau=jnp.ones(3)), ValueError, "tau"),
        (dict(tau=-1.0), ValueError, "tau"),
        (dict(maxiter=0), ValueError, "maxiter"),
        (dict(y0=jnp.zeros(3)), ValueError, "y0"),
        (dict(grad_f=3), TypeError, "grad_f"),
        (dict(gradient=None), TypeError, "gradient"),
    ],
)
def test_bad_input(kwargs, error, match):
    call = dict(x0=jnp.zeros(8), maxiter=10)
    call.update(kwargs)
    x0 = call.pop("x0")
    with pytest.raises(error, match=match):
        primal_dual(diff, x0, (jnp.ones(8), jnp.ones(7), 0.1), **call)
