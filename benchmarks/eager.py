"""Eager (un-jitted) calls of the public solvers: cost per call against the jitted call.

    python benchmarks/eager.py [--smoke]

A user calling ``glrjax.glr_filter(y, graph, mu)`` outside ``jit`` (the README's example)
with a new μ each time. Before the eager cache every call re-traced and re-compiled the
solver; now repeated calls reuse one compilation (``glrjax._eager``). Reports the median
time of an eager call with a new μ, of the jitted call, and their ratio, for glr_filter
(16×16, radius 2), cg and fista. Writes ``benchmarks/results/eager.json``.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from _common import smoke, table, write

import glrjax


def _median_ms(fn, calls):
    times = []
    for i in range(calls):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(i))
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times[1:] if calls > 2 else times))


def main():
    calls = 4 if smoke() else 30
    rng = np.random.default_rng(0)
    y = jnp.asarray(rng.uniform(size=(16, 16)), jnp.float32)
    g = glrjax.GridGraph.gaussian(y, radius=2, sigma=0.2)

    def A(x, mu):
        return x + mu * (2 * x - jnp.roll(x, 1) - jnp.roll(x, -1))

    b = jnp.asarray(rng.standard_normal(256), jnp.float32)
    m = jnp.asarray(rng.standard_normal((30, 20)), jnp.float32)
    c = m @ jnp.asarray(rng.standard_normal(20), jnp.float32)

    def grad_f(x, p):
        return p[0].T @ (p[0] @ x - p[1])

    cases = {
        "glr_filter 16x16": (
            lambda mu: glrjax.glr_filter(y, g, mu)[0],
            jax.jit(lambda mu: glrjax.glr_filter(y, g, mu)[0]),
        ),
        "cg n=256": (
            lambda mu: glrjax.cg(A, b, mu)[0],
            jax.jit(lambda mu: glrjax.cg(A, b, mu)[0]),
        ),
        "fista lasso 30x20": (
            lambda lam: glrjax.fista(grad_f, glrjax.prox.l1, jnp.zeros(20), (m, c), lam)[0],
            jax.jit(
                lambda lam: glrjax.fista(grad_f, glrjax.prox.l1, jnp.zeros(20), (m, c), lam)[0]
            ),
        ),
    }
    rows = []
    for name, (eager, jitted) in cases.items():
        values = [1.0 + 0.01 * i for i in range(calls)]  # a new hyperparameter every call
        t_eager = _median_ms(lambda i, f=eager, v=values: f(v[i]), calls)
        t_jit = _median_ms(lambda i, f=jitted, v=values: f(jnp.float32(v[i])), calls)
        rows.append(
            {
                "case": name,
                "eager_ms": t_eager,
                "jit_ms": t_jit,
                "eager_over_jit": t_eager / t_jit,
            }
        )
        print(rows[-1])
    table(rows, ["case", "eager_ms", "jit_ms", "eager_over_jit"], "Eager call with a new value")
    write("eager", {"rows": rows, "calls": calls})


if __name__ == "__main__":
    main()
