"""Gradient modes on the uGLR network: time per training step, XLA memory, gradient error.

uGLR (:func:`glrjax.networks.uglr`; feature CNN 1→8→8→3 per layer, normalised radius-1
graph) on 2× interpolation of a batch of 2 built-in 16×16 images, float32, for
L ∈ {4, 8} layers × K ∈ {10, 50} CG steps per layer at most (tol 1e-6) and each
gradient mode (Unrolled, Checkpointed(√K), Truncated(K/4), Implicit). Per row: the time of
one forward+backward (the training step's cost; Adam's update is negligible), XLA's
temporary memory of the compiled step, and the relative error of the gradient w.r.t. all
network parameters against the float64 network whose layers are solved exactly by dense
solves (:func:`glrjax.compare.uglr_dense_loss`): it mixes CG's truncation at K with the
mode's own error.

    python benchmarks/interpolation.py [--smoke]
"""

from __future__ import annotations

import jax
from _common import smoke, table, write

from glrjax.compare import default_modes, measure, uglr_case

LAYERS = [2] if smoke() else [4, 8]
ITERS = [3, 6] if smoke() else [10, 50]
SIZE = 8 if smoke() else 16


def main():
    rows = []
    for layers in LAYERS:
        case = uglr_case(size=SIZE, layers=layers)
        for k in ITERS:
            for mode in default_modes(k):
                row = measure(case, mode, k, repeats=3)
                row.update(layers=layers, K=k)
                rows.append(row)
                print(
                    f"L={layers} K={k} {row['mode']:>16}: {row['time_ms']:8.1f} ms  "
                    f"{row['temp_mb']:.2f} MB  grad err {row['grad_error']:.2e}",
                    flush=True,
                )
    cols = ["layers", "K", "mode", "time_ms", "temp_mb", "grad_error"]
    table(rows, cols, "uGLR training step per gradient mode")
    ratios = {}
    for layers in LAYERS:
        for k in ITERS:
            sel = {
                r["mode"].split("(")[0]: r for r in rows if r["layers"] == layers and r["K"] == k
            }
            if sel.get("unrolled") and sel.get("implicit") and sel["unrolled"]["temp_mb"]:
                ratios[f"L={layers},K={k}"] = (
                    sel["implicit"]["temp_mb"] / sel["unrolled"]["temp_mb"]
                )
    write(
        "interpolation",
        {
            "problem": f"uGLR, 2x interpolation, batch 2 of {SIZE}x{SIZE} grey, float32",
            "layers": LAYERS,
            "iters": ITERS,
            "rows": rows,
            "implicit_over_unrolled_temp": ratios,
            "backend": jax.default_backend(),
        },
    )


if __name__ == "__main__":
    main()
