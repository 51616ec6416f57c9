"""One contract over every public solver × gradient mode × dtype (jaxopt's common_test, stricter).

Each solver registers a :class:`Case`: a builder of ``solve(theta, gradient, maxiter, tol)
-> (x, info)`` and a dict ``theta`` of arrays (data and hyperparameters). Every test
below runs over every registered case.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import glrjax


class Case(NamedTuple):
    name: str
    make: Callable  # dtype -> (solve, theta)
    data: str  # key of theta holding the input data (NaN test)
    hyper: tuple[str, ...]  # keys of hyperparameters (no-recompile test)
    maxiter: int  # enough steps to converge at tol
    tol: float
    fd_steps: int = 8  # fixed step count for the finite-difference check (tol = 0)


# ---------------------------------------------------------------------------------- cases


def _spd(n, seed):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((n, n))
    return q @ q.T / n + np.eye(n), rng.standard_normal(n)


def make_cg(dtype):
    s, b = _spd(6, 0)

    def solve(theta, gradient, maxiter, tol):
        return glrjax.cg(
            lambda x, a: a["S"] @ x + a["mu"] * x,
            theta["b"],
            {"S": theta["S"], "mu": theta["mu"]},
            tol=tol,
            maxiter=maxiter,
            gradient=gradient,
        )

    theta = {"b": jnp.asarray(b, dtype), "S": jnp.asarray(s, dtype), "mu": jnp.asarray(0.5, dtype)}
    return solve, theta


def _soft(v, lam, t):
    return jnp.sign(v) * jnp.maximum(jnp.abs(v) - t * lam, 0.0)


def make_primal_dual(dtype):
    rng = np.random.default_rng(1)
    y = np.repeat(rng.standard_normal(3), 3) + 0.1 * rng.standard_normal(9)

    def solve(theta, gradient, maxiter, tol):
        sol, info = glrjax.primal_dual(
            lambda x, p: x[1:] - x[:-1],
            jnp.zeros_like(theta["y"]),
            theta,
            grad_f=lambda x, p: x - p["y"],
            prox_h=lambda v, p, t: _soft(v, p["mu"], t),
            lipschitz=1.0,
            norm_K=2.0,
            tol=tol,
            maxiter=maxiter,
            gradient=gradient,
        )
        return sol.x, info

    return solve, {"y": jnp.asarray(y, dtype), "mu": jnp.asarray(0.2, dtype)}


def make_l2g(dtype):
    from glrjax.l2g import l2g, synthetic_dataset

    z, _ = synthetic_dataset("ER", 1, 6, 100, seed=0)

    def solve(theta, gradient, maxiter, tol):
        return l2g(
            theta["z"], theta["alpha"], theta["beta"], tol=tol, maxiter=maxiter, gradient=gradient
        )

    theta = {"z": jnp.asarray(z[0], dtype), "alpha": jnp.asarray(2.0, dtype)}
    return solve, {**theta, "beta": jnp.asarray(1.0, dtype)}


def _grid_case(y, sigma, denoise, mu, dtype):
    """A denoiser on y's radius-1 window graph, differentiable in y, w and μ."""
    height, width = y.shape
    w = glrjax.GridGraph.gaussian(jnp.asarray(y), radius=1, sigma=sigma).weights
    w = jnp.where(w == 0, 1.0, w)  # off-grid entries are ignored; keep them positive for FD

    def solve(theta, gradient, maxiter, tol):
        g = glrjax.GridGraph(theta["w"], glrjax.window_offsets(1), height, width)
        return denoise(theta["y"], g, theta["mu"], tol=tol, maxiter=maxiter, gradient=gradient)

    theta = {"y": jnp.asarray(y, dtype), "w": jnp.asarray(w, dtype)}
    return solve, {**theta, "mu": jnp.asarray(mu, dtype)}


def make_glr(dtype):
    y = np.random.default_rng(2).uniform(size=(4, 5))
    return _grid_case(y, 0.3, glrjax.glr_filter, 0.7, dtype)


def make_gtv(dtype):
    rng = np.random.default_rng(3)
    y = np.zeros((4, 4))
    y[:, 2:] = 1.0
    y += 0.1 * rng.standard_normal((4, 4))
    return _grid_case(y, 0.5, glrjax.gtv_denoise, 0.05, dtype)


def _lasso_data(seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((12, 6))
    b = a @ np.where(rng.uniform(size=6) < 0.5, rng.standard_normal(6), 0.0)
    return a, b + 0.1 * rng.standard_normal(12)


def _make_proximal(method):
    def make(dtype):
        a, b = _lasso_data(4)

        def solve(theta, gradient, maxiter, tol):
            fn = glrjax.fista if method == "fista" else glrjax.pgd
            return fn(
                lambda x, p: p["A"].T @ (p["A"] @ x - p["b"]),
                glrjax.prox.l1,
                jnp.zeros(6, dtype),
                {"A": theta["A"], "b": theta["b"]},
                theta["lam"],
                step=1.0 / 40.0,  # < 1/‖A‖²; a fixed step keeps the map smooth in A
                tol=tol,
                maxiter=maxiter,
                gradient=gradient,
            )

        theta = {"b": jnp.asarray(b, dtype), "A": jnp.asarray(a, dtype)}
        return solve, {**theta, "lam": jnp.asarray(0.5, dtype)}

    return make


def _make_reconstruction(method, seed, ridge):
    """linear_reconstruction by ``method`` on a rank-4 Rxx (+ ridge·I) with 6 inputs."""

    def make(dtype):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((6, 4)) @ rng.standard_normal((4, 200))
        rxx = x @ x.T / 200 + ridge * np.eye(6)
        ryx = rng.standard_normal((3, 6)) @ rxx

        def solve(theta, gradient, maxiter, tol):
            return glrjax.linear_reconstruction(
                jnp.asarray(rxx, dtype),
                theta["Ryx"],
                theta["lam"],
                method=method,
                tol=tol,
                maxiter=maxiter,
                gradient=gradient,
            )

        return solve, {"Ryx": jnp.asarray(ryx, dtype), "lam": jnp.asarray(0.3, dtype)}

    return make


make_reconstruction = _make_reconstruction("fista", 5, 0.0)
make_altmin = _make_reconstruction("altmin", 7, 0.05)  # the default: IRLS, then FISTA


def make_gem_e_step(dtype):
    from glrjax.gem import e_step

    rng = np.random.default_rng(6)
    # One sample on a 4×4 grid: samples are solved independently (a batch), so a NaN
    # in one leaves the others finite, as it should; one sample makes the NaN test apply.
    y = rng.standard_normal((4, 4))
    w = rng.uniform(0.5, 1.5, size=(4, 4, 4))  # off-grid entries are ignored; positive for FD

    def solve(theta, gradient, maxiter, tol):
        g = glrjax.GridGraph(theta["w"], glrjax.window_offsets(1), 4, 4)
        e = e_step(
            theta["y"],
            g,
            theta["sigma"],
            theta["delta"],
            route="probes",  # the C terms by CG on 4 probes: every solve is a CG
            num_probes=4,
            tol=tol,
            maxiter=maxiter,
            gradient=gradient,
        )
        # The posterior mean and the S̃ terms of the edges (off-grid stencil entries are
        # no edges: their structural zero is left out) as one vector, and the mean's Info.
        return jnp.concatenate([e.mean.ravel(), e.terms[on_grid]]), e.info

    on_grid = np.asarray(glrjax.GridGraph.window(4, 4, radius=1).weights > 0)
    theta = {"y": jnp.asarray(y, dtype), "w": jnp.asarray(w, dtype)}
    return solve, {**theta, "sigma": jnp.asarray(0.5, dtype), "delta": jnp.asarray(0.1, dtype)}


CASES = [
    # CG on n = 6 unknowns terminates in 6 steps; past that its step sizes are 0/0-like
    # and the fixed-step map is not smooth, so finite differences use 3 steps.
    Case("cg", make_cg, "b", ("mu",), 50, 1e-10, fd_steps=3),
    Case("primal_dual", make_primal_dual, "y", ("mu",), 3000, 1e-10),
    Case("l2g", make_l2g, "z", ("alpha", "beta"), 500, 1e-10),
    Case("glr_filter", make_glr, "y", ("mu",), 60, 1e-10, fd_steps=4),
    Case("gtv_denoise", make_gtv, "y", ("mu",), 3000, 1e-10),
    Case("pgd", _make_proximal("pgd"), "b", ("lam",), 3000, 1e-10),
    Case("fista", _make_proximal("fista"), "b", ("lam",), 3000, 1e-10),
    Case("linear_reconstruction", make_reconstruction, "Ryx", ("lam",), 5000, 1e-10),
    Case("altmin", make_altmin, "Ryx", ("lam",), 5000, 1e-10),
    Case("gem_e_step", make_gem_e_step, "y", ("sigma", "delta"), 200, 1e-10, fd_steps=4),
]
MODES = {
    "unrolled": glrjax.Unrolled(),
    "checkpointed": glrjax.Checkpointed(every=7),
    "truncated": glrjax.Truncated(last=5),
    "implicit": glrjax.Implicit(tol=1e-10, maxiter=2000),
}
CASE_IDS = [c.name for c in CASES]
DTYPES = [jnp.float32, jnp.float64]


def _tol(case, dtype):
    return case.tol if dtype == jnp.float64 else 1e-5


# ---------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("mode", list(MODES), ids=list(MODES))
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_jit_grad_dtype_and_info(case, mode, dtype):
    solve, theta = case.make(dtype)
    gradient = MODES[mode]
    if mode == "implicit" and dtype == jnp.float32:  # a backward tolerance float32 can hold
        gradient = glrjax.Implicit(tol=1e-5, maxiter=2000)

    def run(theta):
        return solve(theta, gradient, case.maxiter, _tol(case, dtype))

    x, info = jax.jit(run)(theta)
    assert x.dtype == dtype, "no silent up- or down-cast"
    assert isinstance(info, glrjax.Info)
    assert info.iterations.dtype == jnp.int32 and info.iterations.shape == ()
    assert info.converged.dtype == jnp.bool_ and info.converged.shape == ()
    assert info.residual.shape == () and jnp.issubdtype(info.residual.dtype, jnp.floating)
    assert bool(info.converged) and 0 < int(info.iterations) <= case.maxiter
    grads = jax.jit(jax.grad(lambda t: jnp.sum(jnp.sin(run(t)[0]))))(theta)
    for key, g in grads.items():
        assert g.dtype == dtype and g.shape == theta[key].shape
        assert bool(jnp.all(jnp.isfinite(g))), key


@pytest.mark.parametrize("mode", ["unrolled", "checkpointed", "truncated"])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_check_grads_unrolled_family(case, mode):
    """Fixed-step maps (tol = 0) are smooth: reverse mode equals finite differences.

    Truncated(last=k) is a biased surrogate unless it keeps every step, so it is checked
    with last = steps (where it must equal the true gradient).
    """
    solve, theta = case.make(jnp.float64)
    steps = case.fd_steps
    gradient = glrjax.Truncated(last=steps) if mode == "truncated" else MODES[mode]

    def f(*vals):
        t = dict(zip(theta, vals, strict=True))
        return solve(t, gradient, steps, 0.0)[0]

    # Small steps: proximal maps are piecewise smooth; a step must not cross a kink.
    check_grads(f, tuple(theta.values()), order=1, modes=["rev"], atol=1e-6, rtol=1e-6, eps=1e-7)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_check_grads_implicit(case):
    """At a tightly converged solution, the implicit gradient equals finite differences."""
    solve, theta = case.make(jnp.float64)

    def f(*vals):
        t = dict(zip(theta, vals, strict=True))
        return solve(t, glrjax.Implicit(tol=1e-12, maxiter=5000), 20 * case.maxiter, 1e-14)[0]

    check_grads(f, tuple(theta.values()), order=1, modes=["rev"], atol=1e-5, rtol=1e-5, eps=1e-5)


@pytest.mark.parametrize("mode", list(MODES), ids=list(MODES))
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_vmap_batches_problems_and_info(case, mode):
    solve, theta = case.make(jnp.float64)
    batch = 3
    scales = jnp.asarray([1.0, 0.5, 2.0])
    thetas = {
        k: jnp.stack([v * s for s in scales]) if k == case.data else jnp.stack([v] * batch)
        for k, v in theta.items()
    }

    def run(t):
        return solve(t, MODES[mode], case.maxiter, case.tol)

    x, info = jax.jit(jax.vmap(run))(thetas)
    assert info.iterations.shape == (batch,) and info.converged.shape == (batch,)
    for i in range(batch):
        xi, _ = run({k: v[i] for k, v in thetas.items()})
        np.testing.assert_allclose(x[i], xi, rtol=1e-9, atol=1e-12)
    # Permuting the batch permutes the outputs.
    perm = jnp.asarray([2, 0, 1])
    xp, _ = jax.jit(jax.vmap(run))({k: v[perm] for k, v in thetas.items()})
    np.testing.assert_allclose(xp, x[perm], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("mode", list(MODES), ids=list(MODES))
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_changing_hyperparameters_does_not_recompile(case, mode):
    solve, theta = case.make(jnp.float64)
    traces = []

    @jax.jit
    def run(theta, tol):
        traces.append(1)
        return solve(theta, MODES[mode], case.maxiter, tol)

    for i in range(3):
        t = dict(theta)
        for key in case.hyper:
            t[key] = theta[key] * (1.0 + 0.1 * i)
        t[case.data] = theta[case.data] + 0.01 * i
        run(t, 10.0 ** (-6 - i))
    assert len(traces) == 1


@pytest.mark.parametrize("mode", list(MODES), ids=list(MODES))
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_nan_input_stops_not_converged_with_nan_result(case, mode):
    solve, theta = case.make(jnp.float64)
    for bad in (jnp.nan, jnp.inf):
        t = dict(theta)
        t[case.data] = theta[case.data].at[0].set(bad)
        x, info = jax.jit(lambda t: solve(t, MODES[mode], case.maxiter, case.tol))(t)
        assert not bool(info.converged)
        assert bool(jnp.all(jnp.isnan(x))), "never a finite-looking wrong answer"
        assert int(info.iterations) <= case.maxiter


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_maxiter_exhausted_is_not_converged(case):
    solve, theta = case.make(jnp.float64)
    x, info = solve(theta, glrjax.Unrolled(), 2, 1e-14)
    # altmin counts its IRLS steps and prox step in `iterations` too
    assert not bool(info.converged) and int(info.result) == glrjax.RESULTS.max_steps_reached
    assert int(info.iterations) == 2 or case.name == "altmin"
    assert bool(jnp.all(jnp.isfinite(x)))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_implicit_backward_failure_nan_by_default_finite_when_ignored(case):
    solve, theta = case.make(jnp.float64)

    def grad(gradient):
        return jax.grad(lambda t: jnp.sum(solve(t, gradient, case.maxiter, case.tol)[0] ** 2))(
            theta
        )

    failing = dict(solver="gmres", tol=1e-14, maxiter=1)
    g = grad(glrjax.Implicit(**failing))
    # Every input the solution depends on gets NaN (ignored entries, such as off-grid
    # stencil weights, keep their structural zero).
    assert all(bool(jnp.any(jnp.isnan(v))) for v in jax.tree_util.tree_leaves(g))
    assert all(bool(jnp.all(jnp.isnan(v) | (v == 0))) for v in jax.tree_util.tree_leaves(g))
    g = grad(glrjax.Implicit(**failing, on_failure="ignore"))
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in jax.tree_util.tree_leaves(g))


def _tangent(theta, seed):
    """A random direction; symmetric for the SPD matrix S (CG's operator must stay SPD
    along it, or the finite differences would differentiate CG on a non-symmetric matrix)."""
    rng = np.random.default_rng(seed)
    out = {k: jnp.asarray(rng.standard_normal(np.shape(v)), v.dtype) for k, v in theta.items()}
    if "S" in out:
        out["S"] = 0.5 * (out["S"] + out["S"].T)
    return out


@pytest.mark.parametrize("mode", list(MODES), ids=list(MODES))
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_forward_mode_equals_reverse_mode(case, mode):
    """jax.jvp works in every mode and agrees with the VJP: ⟨u, J v⟩ = ⟨Jᵀu, v⟩ (float64)."""
    solve, theta = case.make(jnp.float64)
    gradient = MODES[mode]
    if mode == "implicit":
        gradient = glrjax.Implicit(tol=1e-12, maxiter=5000)

    def f(t):
        return solve(t, gradient, case.maxiter, case.tol)[0]

    v = _tangent(theta, 0)
    x, jv = jax.jit(lambda t, v: jax.jvp(f, (t,), (v,)))(theta, v)
    u = jnp.asarray(np.random.default_rng(1).standard_normal(x.shape))
    (jtu,) = jax.vjp(f, theta)[1](u)
    lhs = float(jnp.vdot(u, jv))
    rhs = sum(float(jnp.vdot(jtu[k], v[k])) for k in theta)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_second_order_implicit_against_finite_differences(case):
    """grad of ⟨∇ℓ(θ), v⟩ under Implicit equals central differences of the gradient."""
    solve, theta = case.make(jnp.float64)
    gradient = glrjax.Implicit(tol=1e-12, maxiter=5000)

    def loss(t):
        return jnp.sum(jnp.sin(solve(t, gradient, 20 * case.maxiter, 1e-14)[0]))

    v = _tangent(theta, 2)
    hvp = jax.jit(jax.grad(lambda t: sum(jnp.vdot(g, v[k]) for k, g in jax.grad(loss)(t).items())))(
        theta
    )
    g = jax.jit(jax.grad(loss))
    h = 1e-5
    plus = g({k: theta[k] + h * v[k] for k in theta})
    minus = g({k: theta[k] - h * v[k] for k in theta})
    for k in theta:
        fd = (plus[k] - minus[k]) / (2 * h)
        got = hvp[k]
        if k == "S":  # CG's solves are declared symmetric: second derivatives w.r.t. a
            # matrix are right in their symmetric part (the gradient-modes guide)
            fd, got = 0.5 * (fd + fd.T), 0.5 * (got + got.T)
        np.testing.assert_allclose(got, fd, rtol=1e-4, atol=1e-6, err_msg=k)
