"""Forward mode and second order on every solver × gradient mode, against finite differences.

    python benchmarks/forward_mode.py [--smoke]

Uses the contract suite's problems (``tests/test_contract.py``), float64. For each solver and
mode: the relative error of ``jax.jvp`` against a central finite difference of the solution
along a random direction (fixed step count for the unrolled family, so the map is smooth;
Implicit at a 1e-14 solution), and for Implicit the relative error of a Hessian-vector product
(``jax.grad`` of a JVP-free ⟨∇ℓ, v⟩) against central differences of the gradient. Writes
``benchmarks/results/forward_mode.json``.
"""

from __future__ import annotations

import pathlib
import sys

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _common import smoke, table, write  # noqa: E402

import glrjax  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
import test_contract as contract  # noqa: E402


def _rel(a, b):
    a, b = np.ravel(np.asarray(a)), np.ravel(np.asarray(b))
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def main():
    cases = contract.CASES[:2] if smoke() else contract.CASES
    modes = {
        "unrolled": glrjax.Unrolled(),
        "checkpointed": glrjax.Checkpointed(every=3),
        "truncated": None,
        "implicit": glrjax.Implicit(tol=1e-12, maxiter=5000),
    }
    rows = []
    for case in cases:
        solve, theta = case.make(jnp.float64)
        v = contract._tangent(theta, 0)
        for name, mode in modes.items():
            implicit = name == "implicit"
            steps = 20 * case.maxiter if implicit else case.fd_steps
            tol = 1e-14 if implicit else 0.0
            gradient = glrjax.Truncated(last=steps) if mode is None else mode

            def f(t, gradient=gradient, steps=steps, tol=tol, solve=solve):
                return solve(t, gradient, steps, tol)[0]

            row = {"solver": case.name, "mode": name}
            try:
                _, jv = jax.jit(lambda t, v, f=f: jax.jvp(f, (t,), (v,)))(theta, v)
                h = 1e-6
                fd = (
                    f({k: theta[k] + h * v[k] for k in theta})
                    - f({k: theta[k] - h * v[k] for k in theta})
                ) / (2 * h)
                row["jvp_vs_fd"] = _rel(jv, fd)
            except Exception as err:  # noqa: BLE001 - reported, not hidden
                row["jvp_vs_fd"] = None
                row["error"] = f"{type(err).__name__}: {str(err)[:80]}"
            if implicit:
                try:
                    row["hvp_vs_fd"] = _hvp_error(f, theta, v)
                except Exception as err:  # noqa: BLE001 - reported, not hidden
                    row["hvp_vs_fd"] = None
                    row["error"] = f"{type(err).__name__}: {str(err)[:80]}"
            rows.append(row)
            print(row)
    table(rows, ["solver", "mode", "jvp_vs_fd", "hvp_vs_fd", "error"], "Forward mode vs FD")
    write("forward_mode", {"rows": rows})


def _hvp_error(f, theta, v):
    """Relative error of a Hessian-vector product (grad of ⟨∇ℓ, v⟩) against central
    differences of the gradient, ℓ = Σ sin(f)."""

    def loss(t):
        return jnp.sum(jnp.sin(f(t)))

    g = jax.grad(loss)
    hvp = jax.jit(jax.grad(lambda t: sum(jnp.vdot(a, v[k]) for k, a in g(t).items())))(theta)
    g = jax.jit(g)
    h = 1e-5
    plus = g({k: theta[k] + h * v[k] for k in theta})
    minus = g({k: theta[k] - h * v[k] for k in theta})
    fd = {k: (plus[k] - minus[k]) / (2 * h) for k in theta}
    if "S" in theta:  # symmetric solves: the symmetric part (see the guide)
        fd["S"] = 0.5 * (fd["S"] + fd["S"].T)
        hvp = {**hvp, "S": 0.5 * (hvp["S"] + hvp["S"].T)}
    return _rel(
        np.concatenate([np.ravel(hvp[k]) for k in theta]),
        np.concatenate([np.ravel(fd[k]) for k in theta]),
    )


if __name__ == "__main__":
    main()
