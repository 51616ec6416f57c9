"""The curse of unrolling (Scieur et al., NeurIPS 2022), measured with glrjax.curse.

Left: the Jacobian error ‖∂x_t/∂θ − ∂x*/∂θ‖ (relative to its start) of unrolled solvers
on a quadratic with H(θ) = θH₀, eigenvalues of H₀ evenly spaced in [1, κ]; dashed, the
paper's bounds. Gradient descent with h = 1/L decreases monotonically; with
h = 2/(L+ℓ) it first climbs to a burn-in peak near t ≈ κ/2; Chebyshev peaks earlier
(t ≈ √κ) and higher, relative to its start. Middle: the same methods on ridge regression
(random target, ∂H = I), where the smallest eigenvalue dominates and the curves decrease.
Right: the Jacobian error of each glrjax gradient mode on gradient descent (h = 2/(L+ℓ))
after K steps: unrolled and checkpointed follow the burn-in, implicit does not.

    python examples/curse_of_unrolling.py [--smoke] [--out examples/out] [--kappa 200]

Writes curse_of_unrolling.png and curse_of_unrolling.json to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import glrjax  # noqa: E402
from glrjax import curse  # noqa: E402

STYLE = {
    "gd-1/L": ("GD, h = 1/L", "tab:blue", 2.0),
    "gd-2/(L+l)": ("GD, h = 2/(L+ℓ)", "tab:orange", 2.0),
    "chebyshev": ("Chebyshev", "tab:green", 2.0),
    "heavy-ball": ("heavy ball", "tab:red", 1.0),
    "cg": ("CG", "tab:purple", 1.0),
    "fista": ("FISTA", "tab:brown", 1.0),
}
MARKERS = [("o", "-"), ("x", "--"), ("^", "-"), ("s", "-")]
PAPER = ("gd-1/L", "gd-2/(L+l)", "chebyshev")  # the three curves of the paper's figure


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny, fast run (CI)")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out"))
    p.add_argument("--kappa", type=float, default=None, help="condition number (200; smoke 50)")
    p.add_argument("--steps", type=int, default=None, help="iterations (2000; smoke 300)")
    args = p.parse_args()
    args.smoke = args.smoke or os.environ.get("GLRJAX_SMOKE", "") not in ("", "0")
    args.kappa = args.kappa or (50.0 if args.smoke else 200.0)
    args.steps = args.steps or (300 if args.smoke else 2000)
    return args


def draw(ax, c: curse.Curves, title: str):
    for m, (label, color, width) in STYLE.items():
        ax.semilogy(c.t, c.error[m] / c.start, color=color, lw=width, label=label)
        if m in PAPER:
            ax.semilogy(c.t, c.bound[m] / c.start, color=color, lw=1.0, ls="--")
    ax.set_ylim(1e-10, 10 * max(max(c.error[m].max(), c.bound[m].max()) for m in PAPER) / c.start)
    ax.set_xlabel("iteration t")
    ax.set_ylabel("‖∂x_t − ∂x*‖ / ‖∂x₀ − ∂x*‖")
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)


def main():
    args = parse()
    os.makedirs(args.out, exist_ok=True)
    t0 = time.perf_counter()
    kappa = args.kappa
    spd = curse.spd_problem(kappa=kappa, n=100)
    ridge = curse.ridge_problem()
    c_spd = curse.curves(spd, args.steps)
    c_ridge = curse.curves(ridge, args.steps)

    small = spd  # the gradient modes, on the same problem
    ks = [2, 10, 25] if args.smoke else [1, 2, 5, 10, 20, 50, 100, 200, 500]
    k_max = max(ks)
    modes = [
        glrjax.Unrolled(),
        glrjax.Checkpointed(every=max(1, math.isqrt(k_max))),
        glrjax.Truncated(last=10),
        glrjax.Implicit(tol=1e-12, maxiter=5000),
    ]
    per_mode = curse.mode_errors(small, modes, ks, solver="gd-2/(L+l)")

    print(f"{spd.name}: κ = {spd.kappa:.1f}, √κ = {math.sqrt(spd.kappa):.1f}, κ/2 = {kappa / 2:g}")
    print(f"{'method':<12} {'peak t':>7} {'peak/start':>11} {'bound peak t':>13} {'final':>10}")
    for m in curse.METHODS:
        t, ratio = curse.peak(c_spd.error[m])
        bt = curse.peak(c_spd.bound[m])[0] if m in c_spd.bound else None
        final = c_spd.error[m][-1] / c_spd.start
        print(f"{m:<12} {t:>7d} {ratio:>11.2f} {str(bt):>13} {final:>10.1e}")
    print(f"{ridge.name}: κ = {ridge.kappa:.1f}; peaks (t, ratio):")
    print("  " + ", ".join(f"{m} {curse.peak(c_ridge.error[m])}" for m in curse.METHODS))
    print(f"gradient modes on GD h = 2/(L+ℓ), {small.name}, K = {ks}:")
    for mode, e in per_mode.items():
        print(f"  {mode!r:<70} " + " ".join(f"{v:.1e}" for v in e))

    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    draw(axes[0], c_spd, f"{spd.name}; dashed: the bounds")
    for x, name in ((math.sqrt(kappa), "√κ"), (kappa / 2, "κ/2")):
        axes[0].axvline(x, color="gray", ls=":", lw=1)
        axes[0].text(x, axes[0].get_ylim()[1] / 30, " " + name, color="gray", ha="left")
    axes[0].set_xscale("symlog", linthresh=1.0)  # the peaks at √κ and κ/2 apart
    axes[0].set_xlim(0, args.steps)
    axes[0].legend(loc="lower left", fontsize=8)
    draw(axes[1], c_ridge, f"{ridge.name}, κ = {ridge.kappa:.0f}: no burn-in")
    ax = axes[2]
    for (mode, e), (marker, ls) in zip(per_mode.items(), MARKERS, strict=False):
        label = repr(mode).split(", on_")[0].replace("solver='auto', ", "")
        ax.loglog(ks, np.maximum(e, 1e-16), marker=marker, ls=ls, label=label)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.minorticks_off()
    ax.set_xlabel("iterations K")
    ax.set_ylabel("‖∂x_K − ∂x*‖ / ‖∂x*‖")
    ax.set_title(f"gradient modes, GD h = 2/(L+ℓ), {small.name}")
    ax.legend(fontsize=7)
    ax.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    png = os.path.join(args.out, "curse_of_unrolling.png")
    fig.savefig(png, dpi=110)

    record = {
        "spd": c_spd.to_json(),
        "ridge": c_ridge.to_json(),
        "modes": {
            "problem": small.name,
            "solver": "gd-2/(L+l)",
            "maxiter": ks,
            "error": {repr(m): e.tolist() for m, e in per_mode.items()},
        },
    }
    with open(os.path.join(args.out, "curse_of_unrolling.json"), "w") as f:
        json.dump(record, f)
    print(f"wrote {png} ({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
