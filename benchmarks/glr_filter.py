"""GLR filter (I + μL)⁻¹y on window graphs: glrjax stencil and edge list, jax.scipy, lineax.

32×32 (11,346 edges) and 256×256 grids, radius 2, a batch of 8 images each with its own
Gaussian edge weights, float32, 50 CG iterations (tol = 0, so every solver takes exactly
50 steps; the implicit backward solves take 50 too). Forward and forward+gradient (of
Σx̂² w.r.t. y, the weights and μ) time, and XLA temporary memory of each compiled function.

The peers run over what a user writes today: a hand-written edge-list Laplacian matvec
(gather x[src], x[dst]; scatter-add with ``.at[].add``) on the same graph, vmapped over the
batch. Their gradients are implicit (``custom_linear_solve``), so the headline glrjax rows
use ``Implicit``; unrolled and checkpointed rows show what the other modes cost.

    python benchmarks/glr_filter.py [--smoke] [--sizes 32,256]
"""

from __future__ import annotations

import math
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from _common import compiled, smoke, table, temp_mb, time_ms, write

import glrjax
from glrjax.images import noisy, piecewise_smooth


def _sizes() -> list[int]:
    """Grid sides: ``--sizes 32,256`` (default), 8 for a smoke run."""
    if smoke():
        return [8]
    if "--sizes" in sys.argv:
        return [int(v) for v in sys.argv[sys.argv.index("--sizes") + 1].split(",")]
    return [32, 256]


SIZES = _sizes()
BATCH = 2 if smoke() else 8
ITERS = 5 if smoke() else 50
RADIUS = 2
DTYPE = jnp.float32
MU = 2.0


def implicit(maxiter):
    # tol = 0: the backward CG takes exactly `maxiter` steps, as the peers' do.
    return glrjax.Implicit(solver="cg", tol=0.0, maxiter=maxiter, on_failure="ignore")


def glrjax_stencil(offsets, size, mode, maxiter=ITERS):
    def solve(y, w, mu):
        g = glrjax.GridGraph(w, offsets, size, size)
        return glrjax.glr_filter(y, g, mu, tol=0.0, maxiter=maxiter, gradient=mode)[0]

    return solve


def glrjax_edges(src, dst, n, mode):
    def solve(y, w, mu):
        g = glrjax.EdgeGraph(src, dst, w, n)
        return glrjax.glr_filter(y, g, mu, tol=0.0, maxiter=ITERS, gradient=mode)[0]

    return solve


def scatter_matvec(src, dst):
    """(I + μL)x by gathers and scatter-adds: the edge-list matvec users write by hand."""

    def matvec(x, w, mu):
        f = w * (x[src] - x[dst])
        lx = jnp.zeros_like(x).at[src].add(f).at[dst].add(-f)
        return x + mu * lx

    return matvec


def jax_scipy(src, dst):
    mv = scatter_matvec(src, dst)

    def one(y, w, mu):
        return jax.scipy.sparse.linalg.cg(
            lambda v: mv(v, w, mu), y, tol=0.0, atol=0.0, maxiter=ITERS
        )[0]

    return jax.vmap(one, in_axes=(0, 0, None))


def lineax_cg(src, dst):
    import lineax as lx

    mv = scatter_matvec(src, dst)

    def one(y, w, mu):
        op = lx.FunctionLinearOperator(
            lambda v: mv(v, w, mu),
            jax.ShapeDtypeStruct(y.shape, y.dtype),
            tags=lx.positive_semidefinite_tag,
        )
        solver = lx.CG(rtol=0.0, atol=0.0, max_steps=ITERS)
        return lx.linear_solve(op, y, solver, throw=False).value

    return jax.vmap(one, in_axes=(0, 0, None))


def measure(solve, y, w, mu, repeats):
    def loss(y, w, mu):
        return jnp.sum(solve(y, w, mu) ** 2)

    c_fwd = compiled(solve, y, w, mu)
    c_grad = compiled(jax.grad(loss, argnums=(0, 1, 2)), y, w, mu)
    return {
        "fwd_ms": time_ms(c_fwd, y, w, mu, repeats=repeats),
        "grad_ms": time_ms(c_grad, y, w, mu, repeats=repeats),
        "fwd_mb": temp_mb(c_fwd),
        "grad_mb": temp_mb(c_grad),
    }, c_fwd(y, w, mu)


def grad_mb(solve, y, w, mu):
    loss = lambda y, w, mu: jnp.sum(solve(y, w, mu) ** 2)  # noqa: E731
    return temp_mb(compiled(jax.grad(loss, argnums=(0, 1, 2)), y, w, mu))


def problem(size):
    clean = np.stack([piecewise_smooth(size, seed=i) for i in range(BATCH)])
    y = np.stack([noisy(c, 0.1, seed=100 + i) for i, c in enumerate(clean)])
    graph = glrjax.GridGraph.gaussian(jnp.asarray(y, DTYPE), RADIUS, sigma=0.2)
    return jnp.asarray(y, DTYPE), graph


def main():
    rows, checks = [], []
    mu = jnp.asarray(MU, DTYPE)
    for size in SIZES:
        y, graph = problem(size)
        edges = graph.to_edges()
        n, e = size * size, int(edges.src.shape[0])
        y_flat = y.reshape(BATCH, n)
        every = max(1, math.isqrt(ITERS))
        repeats = 3 if size >= 256 else 10
        solvers = {
            "jax.scipy cg (edge scatter)": (jax_scipy(edges.src, edges.dst), "edge"),
            "lineax CG (edge scatter)": (lineax_cg(edges.src, edges.dst), "edge"),
            "glrjax edge list, implicit": (
                glrjax_edges(edges.src, edges.dst, n, implicit(ITERS)),
                "edge",
            ),
            "glrjax stencil, implicit": (
                glrjax_stencil(graph.offsets, size, implicit(ITERS)),
                "grid",
            ),
            "glrjax stencil, unrolled": (
                glrjax_stencil(graph.offsets, size, glrjax.Unrolled()),
                "grid",
            ),
            f"glrjax stencil, checkpointed({every})": (
                glrjax_stencil(graph.offsets, size, glrjax.Checkpointed(every=every)),
                "grid",
            ),
        }
        base, ref = None, None
        for name, (solve, kind) in solvers.items():
            args = (y, graph.weights, mu) if kind == "grid" else (y_flat, edges.weights, mu)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m, out = measure(solve, *args, repeats=repeats)
            out = np.asarray(out).reshape(BATCH, n)
            if ref is None:
                ref, base = out, m
            err = float(np.abs(out - ref).max() / np.abs(ref).max())
            row = {"grid": f"{size}x{size}", "edges": e, "solver": name, **m, "max_rel_diff": err}
            row["fwd_speedup"] = base["fwd_ms"] / m["fwd_ms"]
            row["grad_speedup"] = base["grad_ms"] / m["grad_ms"]
            rows.append(row)
            print(f"  measured {size}x{size} {name}", flush=True)
        # Gradient memory under Implicit does not depend on maxiter (and unrolled does).
        for label, mode in [("implicit", None), ("unrolled", glrjax.Unrolled())]:
            mbs = {}
            for k in (ITERS, 4 * ITERS):
                mk = implicit(k) if mode is None else mode
                mbs[k] = grad_mb(glrjax_stencil(graph.offsets, size, mk, k), y, graph.weights, mu)
            row = {"grid": f"{size}x{size}", "mode": label}
            checks.append(row | {f"grad_mb@{k}": v for k, v in mbs.items()})
    cols = ["grid", "edges", "solver", "fwd_ms", "grad_ms", "fwd_mb", "grad_mb"]
    cols += ["fwd_speedup", "grad_speedup", "max_rel_diff"]
    title = (
        f"GLR filter, radius {RADIUS}, batch {BATCH}, float32, {ITERS} CG iterations; "
        "speedup = jax.scipy time / this time"
    )
    table(rows, cols, title=title)
    table(checks, list(checks[0]), title="gradient temp memory (MB) vs maxiter, stencil")
    targets = {}
    for size in SIZES:
        by = {r["solver"]: r for r in rows if r["grid"] == f"{size}x{size}"}
        st = by["glrjax stencil, implicit"]["grad_speedup"]
        edge, peer = by["glrjax edge list, implicit"], by["jax.scipy cg (edge scatter)"]
        ed = edge["grad_ms"] / peer["grad_ms"]
        ed_f = edge["fwd_ms"] / peer["fwd_ms"]
        mem = [c for c in checks if c["grid"] == f"{size}x{size}" and c["mode"] == "implicit"][0]
        targets[f"{size}x{size}"] = {
            "stencil_grad_speedup_vs_jax_scipy (target >= 5)": st,
            "edge_list_grad_time_ratio_vs_jax_scipy (target <= 1.1)": ed,
            "edge_list_fwd_time_ratio_vs_jax_scipy (target <= 1.1)": ed_f,
            "implicit_grad_mb_independent_of_maxiter": mem[f"grad_mb@{ITERS}"]
            == mem[f"grad_mb@{4 * ITERS}"],
        }
    for k, v in targets.items():
        print(k, {kk: (round(vv, 3) if isinstance(vv, float) else vv) for kk, vv in v.items()})
    write(
        "glr_filter",
        {
            "sizes": SIZES,
            "batch": BATCH,
            "radius": RADIUS,
            "iterations": ITERS,
            "dtype": "float32",
            "rows": rows,
            "memory_vs_maxiter": checks,
            "targets": targets,
        },
    )


if __name__ == "__main__":
    main()
