"""Which input kinds each solver takes for its data argument (``b`` / ``x0``): measured.

    python benchmarks/solver_inputs.py [--smoke]

For cg (``b``), pgd and fista (``x0``, with grad_f/prox acting on the same kind) and
primal_dual (``x0``): a Python scalar, a list, numpy float32 and float64 arrays, a jax array
and a pytree (dict of arrays). Each cell says ``ok`` when the call returns a converged
solution equal to the array case's, or the exception's type and message. Writes
``benchmarks/results/solver_inputs.json``.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
from _common import table, write

import glrjax

KINDS = {
    "python scalar": lambda v: float(v[0]),
    "list": lambda v: [float(t) for t in v],
    "numpy f32": lambda v: np.asarray(v, np.float32),
    "numpy f64": lambda v: np.asarray(v, np.float64),
    "jax array": lambda v: jnp.asarray(v, jnp.float32),
    "pytree": lambda v: {
        "a": jnp.asarray(v[:2], jnp.float32),
        "b": jnp.asarray(v[2:], jnp.float32),
    },
}
DATA = np.array([3.0, -0.5, 1.5])


def _tree_scale(x, a):
    return jax.tree_util.tree_map(lambda t: a * t, x)


def _flat(x):
    return np.concatenate(
        [np.ravel(np.asarray(t, np.float64)) for t in jax.tree_util.tree_leaves(x)]
    )


def solvers():
    def cg(kind):
        b = KINDS[kind](DATA)
        return glrjax.cg(_tree_scale, b, 2.0, tol=1e-6)

    def proximal(fn):
        def run(kind):
            target = KINDS[kind](DATA)
            x0 = jax.tree_util.tree_map(lambda t: 0.0 * jnp.asarray(t, jnp.float32), target)
            if kind in ("python scalar", "list"):
                x0 = KINDS[kind](np.zeros(3))
            grad_f = lambda x, b: jax.tree_util.tree_map(lambda u, v: u - v, x, b)  # noqa: E731
            if kind in ("python scalar", "list"):
                grad_f = lambda x, b: x - jnp.asarray(b, x.dtype)  # noqa: E731
            return fn(grad_f, glrjax.prox.l1, x0, target, 1.0, tol=1e-7)

        return run

    def pd(kind):
        x0 = KINDS[kind](np.zeros(3))
        y = jnp.asarray(KINDS["jax array"](DATA) if kind != "python scalar" else DATA[0])
        sol, info = glrjax.primal_dual(
            lambda x, a: x, x0, y, grad_f=lambda x, a: x - a, tol=1e-7, maxiter=2000
        )
        return sol.x, info

    return {
        "cg (b)": cg,
        "pgd (x0)": proximal(glrjax.pgd),
        "fista (x0)": proximal(glrjax.fista),
        "primal_dual (x0)": pd,
    }


def main():
    rows = []
    for name, run in solvers().items():
        row = {"solver": name}
        ref = None
        for kind in KINDS:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("error")
                    x, info = run(kind)
                if ref is None and kind == "python scalar":
                    pass
                ok = bool(np.all(np.asarray(info.converged)))
                row[kind] = "ok" if ok else f"not converged ({int(info.result)})"
                if kind == "jax array":
                    ref = _flat(x)
            except Exception as err:  # noqa: BLE001 - the table reports it
                row[kind] = f"{type(err).__name__}: {str(err)[:60]}"
        rows.append(row)
        print(row)
    table(rows, ["solver", *KINDS], "Input kinds")
    write("solver_inputs", {"rows": rows})


if __name__ == "__main__":
    main()
