"""Truncated(last=k): relative gradient error against the exact gradient, as k grows.

    python benchmarks/truncated.py [--smoke]

For each solver, a loss ℓ = ⟨w, x*(b, θ)⟩ and its gradient with respect to the data b and an
operator parameter θ (μ for CG and the GLR filter, λ for PGD/FISTA, μ for the primal-dual
TV problem), float64. Reference: the exact gradient from a dense numpy solve (CG, GLR) or
Implicit at a 1e-14 solution (the proximal and primal-dual ones). Each Truncated gradient
takes the value of the run to tolerance and differentiates k steps restarted from x_{n−k}.
Writes ``benchmarks/results/truncated.json``.
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _common import smoke, table, write  # noqa: E402

import glrjax  # noqa: E402


def _rel(g, ref):
    g, ref = np.ravel(np.asarray(g)), np.ravel(np.asarray(ref))
    return float(np.linalg.norm(g - ref) / max(np.linalg.norm(ref), 1e-300))


def cg_problem(n):
    """(I + μL) x = b on a path graph of n nodes (κ grows like n²)."""

    def A(x, mu):
        inner = 2 * x[1:-1] - x[:-2] - x[2:]
        lap = jnp.concatenate([x[:1] - x[1:2], inner, x[-1:] - x[-2:-1]])
        return x + mu * lap

    rng = np.random.default_rng(0)
    b, w = rng.standard_normal(n), rng.standard_normal(n)
    mu = 20.0

    def solve(b, mu, mode):
        return glrjax.cg(A, b, mu, tol=1e-12, maxiter=4 * n, gradient=mode)

    dense = np.asarray(jax.jacfwd(lambda x: A(x, 1.0) - x)(jnp.zeros(n)))
    a = np.eye(n) + mu * dense
    x = np.linalg.solve(a, b)
    u = np.linalg.solve(a.T, w)
    return solve, b, mu, w, (u, -u @ (dense @ x))


def glr_problem(size):
    from glrjax.images import noisy, piecewise_smooth

    img = noisy(piecewise_smooth(size, dtype=np.float64), 0.1, seed=1)
    g = glrjax.GridGraph.gaussian(jnp.asarray(img), radius=2, sigma=0.1)
    lap = np.asarray(glrjax.to_dense(g))
    w = np.random.default_rng(2).standard_normal(img.shape)
    mu = 2.0

    def solve(y, mu, mode):
        return glrjax.glr_filter(y, g, mu, tol=1e-12, maxiter=400, gradient=mode)

    a = np.eye(size * size) + mu * lap
    x = np.linalg.solve(a, img.ravel())
    u = np.linalg.solve(a.T, w.ravel())
    return solve, jnp.asarray(img), mu, w, (u.reshape(img.shape), -u @ (lap @ x))


def _lasso(method):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((40, 20))
    b = a @ np.where(rng.uniform(size=20) < 0.4, rng.standard_normal(20), 0.0)
    b = b + 0.05 * rng.standard_normal(40)
    w = rng.standard_normal(20)
    step = 1.0 / np.linalg.eigvalsh(a.T @ a).max()
    fn = glrjax.fista if method == "fista" else glrjax.pgd

    def solve(b, lam, mode):
        return fn(
            lambda x, p: p[0].T @ (p[0] @ x - p[1]),
            glrjax.prox.l1,
            jnp.zeros(20),
            (jnp.asarray(a), b),
            lam,
            step=step,
            tol=1e-12,
            maxiter=20000,
            gradient=mode,
        )

    return solve, jnp.asarray(b), 2.0, w, None


def tv_problem(n):
    rng = np.random.default_rng(4)
    y = np.repeat(rng.standard_normal(n // 10), 10) + 0.1 * rng.standard_normal(n)
    w = rng.standard_normal(n)
    soft = lambda v, mu, t: jnp.sign(v) * jnp.maximum(jnp.abs(v) - t * mu, 0.0)  # noqa: E731

    def solve(y, mu, mode):
        sol, info = glrjax.primal_dual(
            lambda x, p: x[1:] - x[:-1],
            jnp.zeros_like(y),
            (y, mu),
            grad_f=lambda x, p: x - p[0],
            prox_h=lambda v, p, t: soft(v, p[1], t),
            lipschitz=1.0,
            norm_K=2.0,
            tol=1e-12,
            maxiter=40000,
            gradient=mode,
        )
        return sol.x, info

    return solve, jnp.asarray(y), 0.3, w, None


def run_case(name, problem, ks):
    solve, b, theta, w, exact = problem

    def grads(mode):
        f = jax.jit(
            jax.grad(lambda b, th: jnp.vdot(jnp.asarray(w), solve(b, th, mode)[0]), argnums=(0, 1))
        )
        return f(b, jnp.asarray(theta))

    _, info = solve(b, jnp.asarray(theta), glrjax.Implicit())
    n = int(info.iterations)
    if exact is None:
        exact = grads(glrjax.Implicit(tol=1e-13, maxiter=20000))
    rows = []
    for k in sorted({k for k in ks if k < n} | {n}):
        gb, gt = grads(glrjax.Truncated(last=k))
        rows.append(
            {
                "solver": name,
                "steps_taken": n,
                "last": k,
                "err_data": _rel(gb, exact[0]),
                "err_param": _rel(gt, exact[1]),
            }
        )
        print(rows[-1])
    return rows


def main():
    small = smoke()
    ks = [1, 2, 3, 5] if small else [1, 2, 5, 10, 20, 50, 100, 200, 400, 1000]
    cases = [
        ("cg (path, n=400, mu=20)" if not small else "cg", cg_problem(40 if small else 400)),
        ("glr_filter 16x16" if not small else "glr_filter", glr_problem(6 if small else 16)),
        ("pgd (lasso 40x20)", _lasso("pgd")),
        ("fista (lasso 40x20)", _lasso("fista")),
        ("primal_dual (1-D TV)", tv_problem(20 if small else 100)),
    ]
    rows = []
    for name, problem in cases:
        rows += run_case(name, problem, ks)
    table(rows, ["solver", "steps_taken", "last", "err_data", "err_param"], "Truncated error vs k")
    write("truncated", {"rows": rows})


if __name__ == "__main__":
    main()
