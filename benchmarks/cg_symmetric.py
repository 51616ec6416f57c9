"""Gradient of CG's solution w.r.t. a dense SPD matrix under each gradient mode vs solve's.

For dense SPD matrices M (n = 20, float64, condition numbers 10 and 1000) and x(M) = M⁻¹b
computed by ``glrjax.cg`` with the operator A(x, M) = M x, the gradient G = ∂L/∂M of
L = ½‖x − c‖² under Unrolled, Checkpointed and Implicit is compared with ``jax.grad``
through ``jnp.linalg.solve``: raw, max |G − G_solve|, and symmetrised,
max |sym G − sym G_solve| with sym G = (G + Gᵀ)/2. Unrolled and Checkpointed differentiate
the K-step CG recurrence, which is only defined for symmetric M: they get the symmetric
part right and the rest wrong. Implicit differentiates M x = b itself and matches the full
gradient. Writes ``benchmarks/results/cg_symmetric.json``.

    python benchmarks/cg_symmetric.py [--smoke]
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from _common import smoke, table, write

import glrjax

N = 20
SEEDS = [0] if smoke() else [0, 1, 2]
CONDS = [10.0] if smoke() else [10.0, 1e3]
MAXITER = 200  # CG on n = 20 reaches rounding level long before: tol=1e-14 stops it


def problem(seed: int, cond: float):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((N, N)))
    m = q @ np.diag(np.geomspace(1.0, cond, N)) @ q.T  # SPD with condition number cond
    m = 0.5 * (m + m.T)  # exactly symmetric in floating point
    return jnp.asarray(m), jnp.asarray(rng.standard_normal(N)), jnp.asarray(rng.standard_normal(N))


def loss_cg(mode):
    def loss(m, b, c):
        x, _ = glrjax.cg(lambda v, m: m @ v, b, m, tol=1e-14, maxiter=MAXITER, gradient=mode)
        return 0.5 * jnp.sum((x - c) ** 2)

    return loss


def loss_solve(m, b, c):
    return 0.5 * jnp.sum((jnp.linalg.solve(m, b) - c) ** 2)


def sym(g):
    return 0.5 * (g + g.T)


MODES = {
    "Unrolled": glrjax.Unrolled(),
    "Checkpointed(10)": glrjax.Checkpointed(10),
    "Implicit": glrjax.Implicit(tol=1e-14),
}


def measure() -> list[dict]:
    rows = []
    for cond, seed in [(k, s) for k in CONDS for s in SEEDS]:
        m, b, c = problem(seed, cond)
        ref = jax.grad(loss_solve)(m, b, c)
        scale = float(jnp.max(jnp.abs(ref)))
        for name, mode in MODES.items():
            g = jax.grad(loss_cg(mode))(m, b, c)
            rows.append(
                {
                    "cond": cond,
                    "seed": seed,
                    "mode": name,
                    "max_abs_grad": scale,
                    "raw_diff": float(jnp.max(jnp.abs(g - ref))),
                    "raw_rel": float(jnp.max(jnp.abs(g - ref))) / scale,
                    "sym_diff": float(jnp.max(jnp.abs(sym(g) - sym(ref)))),
                }
            )
    return rows


def main() -> None:
    jax.config.update("jax_enable_x64", True)
    rows = measure()
    columns = ["cond", "seed", "mode", "max_abs_grad", "raw_diff", "raw_rel", "sym_diff"]
    table(rows, columns, title=f"∂L/∂M: glrjax.cg vs jnp.linalg.solve (n={N}, float64)")
    summary = {
        name: {
            "max_raw_diff": max(r["raw_diff"] for r in rows if r["mode"] == name),
            "max_sym_diff": max(r["sym_diff"] for r in rows if r["mode"] == name),
        }
        for name in MODES
    }
    print(summary)
    write(
        "cg_symmetric",
        {
            "n": N,
            "dtype": "float64",
            "maxiter": MAXITER,
            "tol": 1e-14,
            "rows": rows,
            "summary": summary,
        },
    )


if __name__ == "__main__":
    main()
