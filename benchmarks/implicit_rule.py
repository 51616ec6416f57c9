"""Reverse-mode time and XLA memory of glr_filter's gradient, Implicit vs Unrolled.

    python benchmarks/implicit_rule.py [--smoke] [--tag NAME]

Measures ``jax.value_and_grad`` (w.r.t. μ and y) of an MSE through ``glr_filter`` on a
radius-2 Gaussian window graph of a noisy piecewise-smooth image, float32, tol 1e-5, at
most 100 CG steps. Run it with ``PYTHONPATH`` pointing at another checkout of glrjax (and
``--tag``) to compare two versions of the Implicit rule on the same machine, e.g. the
custom-VJP rule before issue 14 against the custom-JVP rule with certified backward CG:

    PYTHONPATH=/path/to/old/checkout python benchmarks/implicit_rule.py --tag before

Writes ``benchmarks/results/implicit_rule[-TAG].json``.
"""

from __future__ import annotations

import subprocess
import sys

import jax
import jax.numpy as jnp
from _common import compiled, table, temp_mb, time_ms, write

import glrjax
from glrjax.images import noisy, piecewise_smooth


def _tag() -> str:
    if "--tag" in sys.argv:
        return "-" + sys.argv[sys.argv.index("--tag") + 1]
    return ""


def _commit() -> str:
    root = glrjax.__file__.rsplit("/glrjax/", 1)[0]
    out = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True)
    return out.stdout.decode().strip() or "unknown"


def main():
    sizes = [16] if "--smoke" in sys.argv else [32, 64]
    rows = []
    for n in sizes:
        clean = jnp.asarray(piecewise_smooth(n, seed=0), jnp.float32)
        y = jnp.asarray(noisy(clean, 0.1, seed=1), jnp.float32)
        graph = glrjax.GridGraph.gaussian(y, 2, 0.1)
        for name, mode in [("implicit", glrjax.Implicit()), ("unrolled", glrjax.Unrolled())]:

            def loss(mu, y, mode=mode, graph=graph, clean=clean):
                x, _ = glrjax.glr_filter(y, graph, mu, tol=1e-5, maxiter=100, gradient=mode)
                return jnp.mean((x - clean) ** 2)

            fn = jax.value_and_grad(loss, argnums=(0, 1))
            mu = jnp.float32(0.5)
            comp = compiled(fn, mu, y)
            rows.append(
                {
                    "size": n,
                    "mode": name,
                    "temp_mb": temp_mb(comp),
                    "ms": time_ms(comp, mu, y, repeats=20),
                    "grad_mu": float(comp(mu, y)[1][0]),
                }
            )
            print(rows[-1])
    table(rows, ["size", "mode", "temp_mb", "ms", "grad_mu"], "glr_filter value_and_grad")
    write("implicit_rule" + _tag(), {"glrjax_commit": _commit(), "rows": rows})


if __name__ == "__main__":
    main()
