"""Gradient modes on the unrolled GEM network: error against finite differences, as K grows.

    python benchmarks/gem_modes.py [--smoke]

The network of ``glrjax compare``'s GEM case (:func:`glrjax.compare.gem_case`: 2 GEM
iterations of 3 PGD steps, 8 Θ⁻¹ probes, batch 4, radius-2 window, second-order gradients,
float32), with every inner CG solve capped at K steps to tol 1e-5, under each gradient mode.
Reference: central finite differences of the same network in float64 with converged inner
solves (:func:`glrjax.gem.gem_reference_gradient`). On one CG solve, ``Truncated(last=k)``
is biased but tame (``benchmarks/truncated.py``); inside this network its errors compound
through the M-step's differentiated inner gradient, and this script measures by how much.
Writes ``benchmarks/results/gem_modes.json``.
"""

from __future__ import annotations

import jax.numpy as jnp
from _common import smoke, table, write

from glrjax.compare import default_modes, gem_case, measure


def main():
    small = smoke()
    sizes = [6] if small else [8, 12, 16]
    ks = [10] if small else [30, 60, 100]
    rows = []
    for size in sizes:
        case = gem_case(size=size)
        for k in ks:
            for mode in default_modes(k, jnp.float32):
                row = measure(case, mode, k, repeats=1)
                rows.append(
                    {
                        "size": size,
                        "K": k,
                        "mode": row["mode"],
                        "grad_error": row["grad_error"],
                        "e_step_iterations": row["iterations"],
                        "e_step_converged": row["converged"],
                        "temp_mb": row["temp_mb"],
                    }
                )
                print(rows[-1], flush=True)
    table(
        rows,
        ["size", "K", "mode", "grad_error", "e_step_iterations", "temp_mb"],
        "GEM network: relative gradient error vs finite differences",
    )
    write("gem_modes", {"rows": rows})


if __name__ == "__main__":
    main()
