"""Group-ℓ2,1 linear reconstruction (seed 003) against scikit-learn, jaxopt, closed forms,
least squares and finite differences."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from seed003 import seed_small

import glrjax

METHODS = ["pgd", "fista", "altmin"]
# One compilation per configuration (eager calls would compile each loop separately).
STATIC = ("method", "bias", "maxiter", "altmin_iterations", "restart", "gradient")
solve = jax.jit(glrjax.linear_reconstruction, static_argnames=STATIC)


def objective(m, rxx, ryx, lam, bias=False):
    m = np.asarray(m, np.float64)
    norms = np.linalg.norm(m, axis=0)
    if bias:
        norms = norms[:-1]
    return 0.5 * np.sum((m @ rxx) * m) - np.sum(ryx * m) + lam * norms.sum()


def small_problem(d=10, h=6, seed=0, bias=False):
    """Full-rank correlations of n samples (unique solution); y = W x + noise."""
    rng = np.random.default_rng(seed)
    n = 200
    x = rng.standard_normal((n, d)) * rng.uniform(0.3, 2.0, d)
    if bias:
        x[:, -1] = 1.0
    w = rng.standard_normal((d, h)) * rng.uniform(0.0, 1.0, (d, 1))  # inputs of mixed use
    y = x @ w + 0.3 * rng.standard_normal((n, h))
    return x.T @ x / n, y.T @ x / n


# ----------------------------------------------------------------------------- peers
def test_seed_small_size_agrees_with_scikit_learn_and_jaxopt():
    """All methods reach the same objective as MultiTaskLasso and jaxopt, within 1e-8."""
    import jaxopt
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import MultiTaskLasso

    rxx, ryx = seed_small()
    lam = 0.1
    # scikit-learn on the equivalent design: Rxx = V diag(s) Vᵀ, X = √m diag(√s) Vᵀ and
    # Y = √m Ryx V diag(1/√s) give XᵀX/m = Rxx and YᵀX/m = Ryx (Ryx lies in Rxx's range).
    s, v = np.linalg.eigh(rxx)
    keep = s > 1e-12 * s.max()
    s, v = s[keep], v[:, keep]
    m = len(s)
    xs = np.sqrt(m) * np.sqrt(s)[:, None] * v.T
    ys = (np.sqrt(m) * ryx @ v / np.sqrt(s)).T
    np.testing.assert_allclose(xs.T @ xs / m, rxx, atol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk = MultiTaskLasso(alpha=lam, fit_intercept=False, tol=1e-12, max_iter=5000)
        m_sk = sk.fit(xs, ys).coef_
    # jaxopt's FISTA with the column prox and the exact 1/L.
    col_prox = jax.vmap(jaxopt.prox.prox_group_lasso, in_axes=(1, None, None), out_axes=1)
    solver = jaxopt.ProximalGradient(
        fun=lambda mm, r, y: 0.5 * jnp.sum((mm @ r) * mm) - jnp.sum(y * mm),
        prox=col_prox,
        stepsize=1.0 / np.linalg.eigvalsh(rxx)[-1],
        maxiter=2000,
        tol=1e-12,
    )
    m_jo = solver.run(jnp.zeros_like(ryx), lam, jnp.asarray(rxx), jnp.asarray(ryx)).params
    f_sk, f_jo = objective(m_sk, rxx, ryx, lam), objective(m_jo, rxx, ryx, lam)
    for method in METHODS:
        mm, info = solve(rxx, ryx, lam, method=method, tol=1e-10, maxiter=20000)
        assert bool(info.converged), method
        f = objective(mm, rxx, ryx, lam)
        for f_peer in (f_sk, f_jo):
            assert abs(f - f_peer) <= 1e-8 * abs(f_peer), (method, f, f_peer)
        np.testing.assert_allclose(mm, m_sk, atol=1e-4 * np.abs(m_sk).max())


def test_identity_correlation_is_the_group_soft_threshold():
    rng = np.random.default_rng(1)
    ryx = rng.standard_normal((5, 8)) * rng.uniform(0.1, 2.0, 8)
    lam = 1.2
    norms = np.linalg.norm(ryx, axis=0)
    expected = ryx * np.maximum(0, 1 - lam / norms)
    for method in METHODS:
        mm, _ = solve(np.eye(8), ryx, lam, method=method, tol=1e-12)
        np.testing.assert_allclose(mm, expected, atol=1e-10)
    # With a bias column the last column is not shrunk.
    mm, _ = solve(np.eye(8), ryx, lam, bias=True, tol=1e-12)
    np.testing.assert_allclose(mm[:, :-1], expected[:, :-1], atol=1e-10)
    np.testing.assert_allclose(mm[:, -1], ryx[:, -1], atol=1e-10)


# ----------------------------------------------------------------------------- gradients
@jax.jit
def _tight(lam, rxx, ryx):
    return solve(
        rxx, ryx, lam, method="fista", tol=1e-15, maxiter=50_000, gradient=glrjax.Implicit()
    )[0]


def tight(lam, rxx, ryx):
    return np.asarray(_tight(lam, jnp.asarray(rxx), jnp.asarray(ryx)))


CASES = [
    ("pgd", glrjax.Implicit(tol=1e-12)),
    ("fista", glrjax.Implicit(tol=1e-12)),
    ("altmin", glrjax.Implicit(tol=1e-12)),
    ("altmin", glrjax.Unrolled()),
    ("altmin", glrjax.Checkpointed(every=30)),
    ("altmin", glrjax.Truncated(last=40)),
    ("fista", glrjax.Unrolled()),
]


@pytest.mark.parametrize(
    "method,mode", CASES, ids=[f"{m}-{type(g).__name__.lower()}" for m, g in CASES]
)
def test_gradients_wrt_lambda_ryx_rxx(method, mode):
    """Implicit against central differences of tight solves; the unrolled modes at
    convergence against Implicit (Truncated is biased: checked loosely)."""
    rxx, ryx = small_problem(seed=2)
    lam = 0.4
    c = np.random.default_rng(3).standard_normal(ryx.shape)

    def loss(lam, rxx, ryx, mode):
        mm, _ = solve(rxx, ryx, lam, method=method, tol=1e-13, maxiter=400, gradient=mode)
        return jnp.sum(jnp.asarray(c) * mm)

    grad = jax.jit(jax.grad(loss, argnums=(0, 1, 2)), static_argnums=3)
    g_lam, g_rxx, g_ryx = grad(lam, jnp.asarray(rxx), jnp.asarray(ryx), mode)
    m_star = tight(lam, rxx, ryx)
    assert 0 < np.count_nonzero(np.linalg.norm(m_star, axis=0)) < rxx.shape[0]  # some zeroed
    if isinstance(mode, glrjax.Implicit):
        h = 1e-6
        fd = np.sum(c * (tight(lam + h, rxx, ryx) - tight(lam - h, rxx, ryx))) / (2 * h)
        np.testing.assert_allclose(g_lam, fd, rtol=1e-5)
        e = np.zeros_like(ryx)
        e[2, 3] = h
        fd = np.sum(c * (tight(lam, rxx, ryx + e) - tight(lam, rxx, ryx - e))) / (2 * h)
        np.testing.assert_allclose(g_ryx[2, 3], fd, rtol=1e-5, atol=1e-9)
        e = np.zeros_like(rxx)
        e[1, 4] = e[4, 1] = h  # a symmetric perturbation of Rxx
        fd = np.sum(c * (tight(lam, rxx + e, ryx) - tight(lam, rxx - e, ryx))) / (2 * h)
        np.testing.assert_allclose(g_rxx[1, 4] + g_rxx[4, 1], fd, rtol=1e-5, atol=1e-9)
    else:
        ref = grad(lam, jnp.asarray(rxx), jnp.asarray(ryx), glrjax.Implicit(tol=1e-12))
        rtol = 1e-2 if isinstance(mode, glrjax.Truncated) else 1e-6
        for u, v in zip((g_lam, g_rxx, g_ryx), ref, strict=True):
            np.testing.assert_allclose(u, v, rtol=rtol, atol=rtol * np.abs(np.asarray(v)).max())


# ----------------------------------------------------------------------------- debias, bias
def test_debias_is_least_squares_on_the_kept_columns():
    rxx, ryx = small_problem(seed=4, bias=True)
    keep = np.array([True, False, True, True, False, False, True, False, True, False])
    got = np.asarray(glrjax.debias(rxx, ryx, keep, bias=True))
    kept = keep.copy()
    kept[-1] = True  # the bias column is always kept
    expected = np.zeros_like(ryx)
    sol, *_ = np.linalg.lstsq(rxx[np.ix_(kept, kept)], ryx[:, kept].T, rcond=None)
    expected[:, kept] = sol.T
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    assert np.all(got[:, ~kept] == 0)
    # Debiasing a penalized solution on its own support lowers the reconstruction error.
    mm, _ = solve(rxx, ryx, 0.3, bias=True, tol=1e-12)
    sup = glrjax.support(mm, bias=True)
    db = glrjax.debias(rxx, ryx, sup, bias=True)
    assert objective(db, rxx, ryx, 0.0) < objective(mm, rxx, ryx, 0.0)
    np.testing.assert_array_equal(glrjax.support(db, bias=True), sup)
    # Differentiable in Ryx (a linear map): the gradient of Σ c⊙M is c restricted, times Rxx_SS⁻¹.
    c = np.random.default_rng(5).standard_normal(ryx.shape)
    g = jax.grad(lambda y: jnp.sum(c * glrjax.debias(rxx, y, keep, bias=True)))(jnp.asarray(ryx))
    inv = np.linalg.inv(rxx[np.ix_(kept, kept)])
    expected_g = np.zeros_like(ryx)
    expected_g[:, kept] = c[:, kept] @ inv.T
    np.testing.assert_allclose(g, expected_g, rtol=1e-9, atol=1e-12)


def test_debias_with_dependent_columns_is_minimum_norm():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((50, 3))
    x = np.concatenate([x, x[:, :1]], axis=1)  # column 3 duplicates column 0
    rxx = x.T @ x / 50
    ryx = rng.standard_normal((2, 50)) @ x / 50
    got = np.asarray(glrjax.debias(rxx, ryx, np.ones(4, bool)))
    np.testing.assert_allclose(got, ryx @ np.linalg.pinv(rxx), atol=1e-10)


@pytest.mark.parametrize("bias", [False, True])
def test_lambda_max_is_where_the_solution_becomes_empty(bias):
    rxx, ryx = small_problem(seed=7, bias=bias)
    lmax = float(glrjax.lambda_max(rxx, ryx, bias=bias))
    above, _ = solve(rxx, ryx, lmax * 1.001, bias=bias, tol=1e-12)
    below, _ = solve(rxx, ryx, lmax * 0.99, bias=bias, tol=1e-12)
    n_above = int(glrjax.support(above).sum())
    assert n_above == int(bias)
    assert int(glrjax.support(below).sum()) == int(bias) + 1
    if bias:  # only the bias column: its least-squares value Ryx_:d / Rxx_dd
        expected = ryx[:, -1] / rxx[-1, -1]
        np.testing.assert_allclose(above[:, -1], expected, atol=1e-10 * np.abs(expected).max())
        # The bias column satisfies its unpenalized optimality condition: (M Rxx − Ryx)_:d = 0.
        np.testing.assert_allclose((np.asarray(below) @ rxx - ryx)[:, -1], 0.0, atol=1e-10)


# ----------------------------------------------------------------------------- path
def test_lambda_path_matches_independent_solves_and_warm_starts_save_iterations():
    rxx, ryx = small_problem(seed=8)
    lmax = float(glrjax.lambda_max(rxx, ryx))
    lams = jnp.asarray(lmax * np.geomspace(0.9, 0.01, 8))
    kw = dict(method="fista", tol=1e-11, maxiter=5000)
    ms, info = jax.jit(lambda l: glrjax.lambda_path(rxx, ryx, l, **kw))(lams)
    assert ms.shape == (8,) + ryx.shape and info.iterations.shape == (8,)
    cold = 0
    for i, lam in enumerate(np.asarray(lams)):
        mm, inf = solve(rxx, ryx, lam, **kw)
        cold += int(inf.iterations)
        f, f_ind = objective(ms[i], rxx, ryx, lam), objective(mm, rxx, ryx, lam)
        assert abs(f - f_ind) <= 1e-9 * abs(f_ind)
    assert int(info.iterations.sum()) < cold
    counts = [int(glrjax.support(m).sum()) for m in ms]
    assert counts == sorted(counts) and counts[0] < counts[-1]
    # Differentiable along the path.
    g = jax.jit(jax.grad(lambda l: jnp.sum(glrjax.lambda_path(rxx, ryx, l, **kw)[0])))(lams)
    assert g.shape == (8,) and np.all(np.isfinite(g))


# ----------------------------------------------------------------------------- correlations
def test_correlations_accumulate_batches_like_one_big_product():
    rng = np.random.default_rng(9)
    data = {"a": rng.standard_normal((103, 4)), "b": rng.standard_normal((103, 2))}
    w = rng.standard_normal((4, 3))

    def fn(batch):  # features x and targets y of a batch
        x = jnp.tanh(batch["a"])
        return x, x @ w + batch["b"][:, :1]

    rxx, ryx = glrjax.correlations(fn, data, batch_size=16)
    x = np.tanh(data["a"])
    y = x @ w + data["b"][:, :1]
    np.testing.assert_allclose(rxx, x.T @ x / 103, rtol=1e-12)
    np.testing.assert_allclose(ryx, y.T @ x / 103, rtol=1e-12)
    rxx1, ryx1 = glrjax.correlations(fn, data, batch_size=1000, bias=True)
    x1 = np.concatenate([x, np.ones((103, 1))], axis=1)
    np.testing.assert_allclose(rxx1, x1.T @ x1 / 103, rtol=1e-12)
    np.testing.assert_allclose(ryx1, y.T @ x1 / 103, rtol=1e-12)
    f32 = {k: v.astype(np.float32) for k, v in data.items()}
    r32, _ = glrjax.correlations(lambda b: (b["a"], b["b"]), f32, batch_size=10)
    assert r32.dtype == jnp.float32


# ----------------------------------------------------------------------------- contract
def test_float32_vmap_and_no_recompilation():
    rxx, ryx = small_problem(seed=10)
    r32, y32 = jnp.asarray(rxx, jnp.float32), jnp.asarray(ryx, jnp.float32)
    mm, info = solve(r32, y32, jnp.float32(0.3), tol=1e-5)
    assert mm.dtype == jnp.float32 and bool(info.converged)
    ref, _ = solve(rxx, ryx, 0.3, tol=1e-12)
    np.testing.assert_allclose(mm, ref, atol=1e-4)
    traces = []

    @jax.jit
    def solve_lam(lam):
        traces.append(1)
        return glrjax.linear_reconstruction(rxx, ryx, lam, tol=1e-10)[0]

    out = jax.vmap(solve_lam)(jnp.asarray([0.1, 0.3]))
    np.testing.assert_allclose(out[1], ref, atol=1e-8)
    for lam in [0.1, 0.2, 0.5]:
        solve_lam(lam)
    assert len(traces) == 2  # one trace for the vmap, one for the scalar calls


def kkt_violation(m, rxx, ryx, lam):
    """Largest violation of the group-lasso optimality conditions, in float64 numpy:
    g_j = (M Rxx − Ryx)_:j equals −λ m_j/‖m_j‖ on kept columns and has ‖g_j‖ ≤ λ on the rest."""
    m = np.asarray(m, np.float64)
    g = m @ rxx - ryx
    norms = np.linalg.norm(m, axis=0)
    kept = norms > 0
    on = np.linalg.norm(g[:, kept] + lam * m[:, kept] / norms[kept], axis=0)
    off = np.maximum(np.linalg.norm(g[:, ~kept], axis=0) - lam, 0.0)
    return float(np.max(np.concatenate([on, off, [0.0]])))


@pytest.mark.parametrize("method", METHODS)
def test_float32_defaults_stop_on_a_tolerance_float32_can_reach(method):
    # With float64's 1e-8 the float32 solvers ran to maxiter: the step-to-step change they
    # stop on jitters at about 1e-7 from rounding.
    rxx, ryx = small_problem(seed=11)
    m, info = solve(
        jnp.asarray(rxx, jnp.float32), jnp.asarray(ryx, jnp.float32), 0.3, method=method
    )
    assert bool(info.converged) and int(info.iterations) < 2000
    assert float(info.residual) <= 100 * np.finfo(np.float32).eps
    # A residual r bounds the optimality error by about 2·λ_max(Rxx)·r·‖M‖ (prox step).
    bound = 2 * np.linalg.eigvalsh(rxx)[-1] * float(info.residual) * np.linalg.norm(m)
    assert kkt_violation(m, rxx, ryx, 0.3) <= 10 * bound
    _, info64 = solve(rxx, ryx, 0.3, method=method)
    assert float(info64.residual) <= 1e-8  # float64 keeps its default


def test_altmin_with_zero_lambda_and_singular_rxx_falls_back_to_the_polish():
    rng = np.random.default_rng(13)
    a = rng.standard_normal((30, 10))
    rxx = a @ a.T / 30  # rank 10: Rxx + 0·diag(1/η) cannot be inverted
    ryx = rng.standard_normal((4, 30)) @ rxx
    mm, info = solve(rxx, ryx, 0.0, tol=1e-9, maxiter=20000)
    ref, _ = solve(rxx, ryx, 0.0, method="fista", tol=1e-9, maxiter=20000)
    assert np.all(np.isfinite(np.asarray(mm))) and bool(info.converged)
    np.testing.assert_allclose(mm @ rxx, ryx, atol=1e-6)  # a least-squares solution
    assert abs(objective(mm, rxx, ryx, 0.0) - objective(ref, rxx, ryx, 0.0)) < 1e-9


def test_altmin_counts_its_irls_steps():
    rxx, ryx = small_problem(seed=11)
    _, info = solve(rxx, ryx, 0.3, altmin_iterations=7, maxiter=3, tol=0.0)
    assert int(info.iterations) == 7 + 1 + 3  # IRLS steps, the prox step, FISTA steps


@pytest.mark.parametrize("mode", [glrjax.Implicit(), glrjax.Unrolled()])
def test_irls_stops_once_its_prox_step_passes_the_tolerance(mode):
    """IRLS ends at the first iterate whose prox step has residual ≤ tol (then no FISTA
    step): the same count and iterate in the while_loop (Implicit) and frozen (unrolled)
    forms, and the iterate equals the fixed-count run of that many steps."""
    rxx, ryx = small_problem(seed=12)
    kw = dict(altmin_iterations=40, step=0.05, gradient=mode)
    mm, info = solve(rxx, ryx, 0.01, tol=1e-6, maxiter=50, **kw)
    k = int(info.iterations) - 1  # IRLS steps taken (+ the prox step, no FISTA step)
    assert 1 < k < 40 and bool(info.converged) and float(info.residual) <= 1e-6
    kw.update(altmin_iterations=k, maxiter=0, tol=0.0)
    fixed, info_k = solve(rxx, ryx, 0.01, **kw)
    np.testing.assert_allclose(mm, np_altmin_start(rxx, ryx, 0.01, k, 0.05), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(mm, fixed, rtol=1e-12, atol=1e-14)
    assert float(info_k.residual) <= 1e-6
    kw["altmin_iterations"] = k - 1  # one step fewer does not pass
    assert float(solve(rxx, ryx, 0.01, **kw)[1].residual) > 1e-6


def np_altmin_start(rxx, ryx, lam, steps, t, eps=1e-10, kinds=None):
    """Seed 003's IRLS from η = ‖Ryx‖_F/‖Rxx‖_F, each step after the first a Richardson step
    preconditioned by the last factored K_f = Rxx + λ diag(1/η_f) while the weights' ratios
    r = η_f/η keep max(1 − min r, max r − 1) ≤ 1/2, else a fresh solve; then a prox step
    with the true gradient. ``kinds`` collects "solve"/"richardson" per step."""
    kinds = [] if kinds is None else kinds
    eta = np.full(rxx.shape[0], np.linalg.norm(ryx) / np.linalg.norm(rxx))
    d_f = lam / eta
    m = np.linalg.solve(rxx + np.diag(d_f), ryx.T).T
    kinds.append("solve")
    for _ in range(steps - 1):
        dd = lam / np.sqrt((m**2).sum(0) + eps)
        r = dd / d_f
        if max(1 - r.min(), r.max() - 1) <= 0.5:
            residual = ryx - m @ (rxx + np.diag(dd))
            m = m + np.linalg.solve(rxx + np.diag(d_f), residual.T).T
            kinds.append("richardson")
        else:
            d_f = dd
            m = np.linalg.solve(rxx + np.diag(d_f), ryx.T).T
            kinds.append("solve")
    z = m - t * (m @ rxx - ryx)
    norms = np.linalg.norm(z, axis=0)
    return z * np.maximum(0, 1 - t * lam / norms)


def np_irls_fixed_point(rxx, ryx, lam, steps=200, eps=1e-10):
    """Plain IRLS (a solve per step) run to its fixed point."""
    eta = np.ones(rxx.shape[0])
    for _ in range(steps):
        m = np.linalg.solve(rxx + lam * np.diag(1 / eta), ryx.T).T
        eta = np.sqrt((m**2).sum(0) + eps)
    return m


@pytest.mark.parametrize("lam", [0.01, 0.3])
def test_irls_takes_frozen_factor_steps_and_refactors_when_the_weights_move(lam):
    rxx, ryx = small_problem(seed=12)
    kinds = []
    ref = np_altmin_start(rxx, ryx, lam, 12, 0.05, kinds=kinds)
    mm, _ = solve(rxx, ryx, lam, altmin_iterations=12, maxiter=0, step=0.05, tol=0.0)
    np.testing.assert_allclose(mm, ref, rtol=1e-9, atol=1e-12)
    if lam == 0.01:  # every column alive: once η has settled, only cheap steps
        assert kinds[-10:] == ["richardson"] * 10
    else:  # columns shrinking to zero move their weights by > 1/2: fresh factorizations
        assert kinds.count("solve") > 1
        return
    # Frozen-factor IRLS has plain IRLS's fixed point.
    mm, _ = solve(rxx, ryx, lam, altmin_iterations=60, maxiter=0, step=0.05, tol=0.0)
    fixed = np_irls_fixed_point(rxx, ryx, lam)
    np.testing.assert_allclose(mm, fixed, atol=1e-6 * np.abs(fixed).max())


@pytest.mark.parametrize("mode", [glrjax.Unrolled(), glrjax.Implicit(tol=1e-12)])
def test_altmin_without_polish_is_irls_and_one_prox_step(mode):
    rxx, ryx = small_problem(seed=12)
    t = 0.05
    # Implicit differentiates the fixed point: check it where IRLS converges (no zero column).
    lam, steps = (0.3, 4) if isinstance(mode, glrjax.Unrolled) else (0.01, 12)
    kw = dict(altmin_iterations=steps, maxiter=0, step=t, gradient=mode, tol=0.0)
    mm, info = solve(rxx, ryx, lam, **kw)
    np.testing.assert_allclose(mm, np_altmin_start(rxx, ryx, lam, steps, t), rtol=1e-9, atol=1e-12)
    assert int(info.iterations) == steps + 1 and float(info.residual) > 0
    g = jax.grad(lambda l: jnp.sum(solve(rxx, ryx, l, **kw)[0]))(lam)
    if isinstance(mode, glrjax.Unrolled):  # exact derivative of the 5-step map
        h = 1e-6
        fd = np.sum(
            np_altmin_start(rxx, ryx, lam + h, 4, t) - np_altmin_start(rxx, ryx, lam - h, 4, t)
        ) / (2 * h)
        np.testing.assert_allclose(g, fd, rtol=1e-6)
    else:  # the implicit gradient of the fixed point, at the (nearly converged) output
        assert bool(glrjax.support(mm).all())
        ref = jax.grad(lambda l: jnp.sum(_tight(l, jnp.asarray(rxx), jnp.asarray(ryx))))(lam)
        np.testing.assert_allclose(g, ref, rtol=1e-6)


def test_the_cholesky_route_other_platforms_take_gives_the_same_altmin(monkeypatch):
    # On this CPU lax.platform_dependent picks the explicit inverse; check the Cholesky
    # route (GPU, TPU) here too, by substituting it.
    from glrjax import reconstruction

    rxx, ryx = small_problem(seed=14)
    kw = dict(altmin_iterations=6, maxiter=0, step=0.05, tol=0.0)
    cpu_route, _ = glrjax.linear_reconstruction(rxx, ryx, 0.05, **kw)
    calls = []

    def factor(K):
        calls.append("factor")
        return reconstruction._cholesky(K)

    monkeypatch.setattr(reconstruction, "_factor", factor)
    monkeypatch.setattr(reconstruction, "_apply_inverse", reconstruction._cholesky_apply)
    # A fresh trace (eager calls reuse the first call's compilation, which had no substitute).
    cholesky_route, _ = jax.jit(lambda a, b: glrjax.linear_reconstruction(a, b, 0.05, **kw))(
        rxx, ryx
    )
    assert calls  # the substitute was traced
    ref = np_altmin_start(rxx, ryx, 0.05, 6, 0.05)
    np.testing.assert_allclose(cholesky_route, ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(cpu_route, ref, rtol=1e-9, atol=1e-12)


BAD = [
    (dict(lam=-0.1), ValueError, "lam"),
    (dict(lam=np.ones(3)), ValueError, "lam"),
    (dict(ryx=np.ones((4, 5))), ValueError, "Ryx"),
    (dict(rxx=np.ones((6, 5))), ValueError, "Rxx"),
    (dict(rxx=np.triu(np.ones((6, 6)))), ValueError, "symmetric"),
    (dict(rxx=np.eye(6, dtype=np.float32)), TypeError, "dtype"),
    (dict(method="admm"), ValueError, "method"),
    (dict(M0=np.zeros((3, 3))), ValueError, "M0"),
    (dict(altmin_iterations=0), ValueError, "altmin_iterations"),
    (dict(gradient=glrjax.Implicit), TypeError, "instance"),
]


@pytest.mark.parametrize(
    "kwargs,error,match", BAD, ids=[f"{m}{i}" for i, (*_, m) in enumerate(BAD)]
)
def test_bad_input_raises_clear_errors(kwargs, error, match):
    call = dict(rxx=np.eye(6), ryx=np.ones((4, 6)), lam=0.1)
    call.update(kwargs)
    rxx, ryx, lam = call.pop("rxx"), call.pop("ryx"), call.pop("lam")
    with pytest.raises(error, match=match):
        glrjax.linear_reconstruction(rxx, ryx, lam, **call)


def test_bad_input_of_the_helpers():
    with pytest.raises(ValueError, match="keep"):
        glrjax.debias(np.eye(3), np.ones((2, 3)), np.ones(3))  # not boolean
    with pytest.raises(ValueError, match="lams"):
        glrjax.lambda_path(np.eye(3), np.ones((2, 3)), np.array([0.1, -1.0]))
    with pytest.raises(ValueError, match="same leading"):
        glrjax.correlations(lambda b: b, (np.ones((4, 2)), np.ones((5, 2))))
    with pytest.raises(ValueError, match="symmetric"):
        glrjax.lambda_max(np.triu(np.ones((3, 3))), np.ones((2, 3)))


def test_products_ask_for_full_precision_so_gpus_do_not_use_tf32():
    """GPUs multiply float32 in TF32 (about 3 digits) by default; on an H200 that left the
    main job's FISTA case unconverged. Every product of the solver asks for HIGHEST."""
    rxx = jnp.eye(4, dtype=jnp.float32)
    ryx = jnp.ones((2, 4), jnp.float32)

    def solve(rxx, ryx):
        return glrjax.linear_reconstruction(rxx, ryx, 0.1, method="fista", maxiter=5)[0]

    text = str(jax.make_jaxpr(solve)(rxx, ryx))
    dots = text.count("dot_general[")
    assert dots > 0, "expected matrix products in the solver"
    assert text.count("HIGHEST") >= dots, text
