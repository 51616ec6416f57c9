"""CG under every gradient mode beside jax.scipy's and lineax's CG: time and XLA memory.

An SPD system with 1024 unknowns (I + μL on a 32×32 4-connected grid with random
weights), a batch of 8 right-hand sides (vmap), float32, maxiter 10/100/1000 with
tol = 0 so every solver takes exactly maxiter steps. Forward and forward+gradient
(w.r.t. b and the weights) time, and XLA temporary memory of each compiled function.

    python benchmarks/cg_modes.py [--smoke]
"""

from __future__ import annotations

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from _common import compiled, smoke, table, temp_mb, time_ms, write

import glrjax

SIDE = 8 if smoke() else 32
BATCH = 2 if smoke() else 8
ITERS = [10, 20] if smoke() else [10, 100, 1000]
DTYPE = jnp.float32


def matvec(x, args):
    """(I + μL)x on a 4-connected grid; weights (2, H, W): right and down neighbours."""
    mu, w = args
    x = x.reshape(SIDE, SIDE)
    wr, wd = w[0], w[1]
    dx = x[:, :-1] - x[:, 1:]
    dy = x[:-1, :] - x[1:, :]
    lx = jnp.zeros_like(x)
    lx = lx.at[:, :-1].add(wr[:, :-1] * dx).at[:, 1:].add(-wr[:, :-1] * dx)
    lx = lx.at[:-1, :].add(wd[:-1, :] * dy).at[1:, :].add(-wd[:-1, :] * dy)
    return (x + mu * lx).ravel()


def glrjax_solver(mode, maxiter):
    def solve(b, args):
        return glrjax.cg(matvec, b, args, tol=0.0, maxiter=maxiter, gradient=mode)[0]

    return solve


def jax_scipy_solver(maxiter):
    def solve(b, args):
        return jax.scipy.sparse.linalg.cg(lambda v: matvec(v, args), b, tol=0.0, maxiter=maxiter)[0]

    return solve


def lineax_solver(maxiter):
    import lineax as lx

    def solve(b, args):
        op = lx.FunctionLinearOperator(
            lambda v: matvec(v, args),
            jax.ShapeDtypeStruct(b.shape, b.dtype),
            tags=lx.positive_semidefinite_tag,
        )
        sol = lx.linear_solve(op, b, lx.CG(rtol=0.0, atol=0.0, max_steps=maxiter), throw=False)
        return sol.value

    return solve


def measure(solve, b, args):
    fwd = jax.vmap(solve, in_axes=(0, None))

    def loss(b, args):
        return jnp.sum(fwd(b, args) ** 2)

    out = {}
    c_fwd = compiled(fwd, b, args)
    c_grad = compiled(jax.grad(loss, argnums=(0, 1)), b, args)
    out["fwd_ms"] = time_ms(c_fwd, b, args)
    out["grad_ms"] = time_ms(c_grad, b, args)
    out["fwd_mb"] = temp_mb(c_fwd)
    out["grad_mb"] = temp_mb(c_grad)
    return out


def main():
    rng = np.random.default_rng(0)
    n = SIDE * SIDE
    b = jnp.asarray(rng.standard_normal((BATCH, n)), DTYPE)
    args = (jnp.asarray(2.0, DTYPE), jnp.asarray(rng.uniform(0.1, 1.0, (2, SIDE, SIDE)), DTYPE))
    rows = []
    for k in ITERS:
        solvers = {
            "jax.scipy cg": jax_scipy_solver(k),
            "lineax CG": lineax_solver(k),
            "glrjax unrolled": glrjax_solver(glrjax.Unrolled(), k),
            f"glrjax checkpointed({math.isqrt(k)})": glrjax_solver(
                glrjax.Checkpointed(every=math.isqrt(k)), k
            ),
            f"glrjax truncated({max(1, k // 10)})": glrjax_solver(
                glrjax.Truncated(last=max(1, k // 10)), k
            ),
            "glrjax implicit": glrjax_solver(glrjax.Implicit(tol=1e-6, on_failure="ignore"), k),
        }
        base = None
        for name, solve in solvers.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m = measure(solve, b, args)
            row = {"maxiter": k, "solver": name, **m}
            if name == "jax.scipy cg":
                base = m
            row["fwd_vs_jax.scipy"] = m["fwd_ms"] / base["fwd_ms"]
            row["grad_vs_jax.scipy"] = m["grad_ms"] / base["grad_ms"]
            rows.append(row)
            print(f"  measured maxiter={k} {name}", flush=True)
    cols = [
        "maxiter",
        "solver",
        "fwd_ms",
        "grad_ms",
        "fwd_mb",
        "grad_mb",
        "fwd_vs_jax.scipy",
        "grad_vs_jax.scipy",
    ]
    table(rows, cols, title=f"CG, n={n}, batch={BATCH}, float32, tol=0 (exactly maxiter steps)")
    write("cg_modes", {"n": n, "batch": BATCH, "dtype": "float32", "rows": rows})


if __name__ == "__main__":
    main()
