"""Command line: ``glrjax compare`` (the main job).

``glrjax compare`` runs every solver case (the CG GLR filter, FISTA group-ℓ2,1, GEM) under
every gradient mode on the built-in problem and prints, per row, the gradient error
against an independent reference, the forward+backward time and XLA's temporary memory;
it also measures the curse of unrolling (Jacobian error against iterations per mode, with
the theoretical bound) and memory against iterations per mode, and writes a JSON record
and PNG plots to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
from datetime import datetime, timezone

MODE_NAMES = ("unrolled", "checkpointed", "truncated", "implicit")
PROBLEMS = ("all", "glr", "fista", "gem", "uglr")
ITER_PRESETS = {"small": 20, "default": 100, "large": 400}
SWEEPS = {  # iteration counts of the memory sweep and of the curse-of-unrolling curves
    "small": ([5, 10, 20], [2, 5, 10, 20]),
    "default": ([10, 25, 50, 100], [5, 10, 20, 40, 80]),
    "large": ([25, 50, 100, 200, 400], [2, 5, 10, 20, 40, 80, 160]),
}


def _parse_iters(text: str) -> int | str:
    if text in ITER_PRESETS:
        return text
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"--iters {text!r}: give an int >= 1 or one of {sorted(ITER_PRESETS)}"
        ) from err
    if value < 1:
        raise argparse.ArgumentTypeError(f"--iters {value}: must be >= 1")
    return value


def _parse_modes(text: str) -> list[str]:
    names = [m.strip().lower() for m in text.split(",") if m.strip()]
    bad = [m for m in names if m not in MODE_NAMES]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"--modes {text!r}: choose a comma-separated subset of {','.join(MODE_NAMES)}"
        )
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="glrjax", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cmp = sub.add_parser(
        "compare",
        help="gradient error, time and memory of every gradient mode on the built-in problem",
        description=(
            "Run each solver case under each gradient mode on the built-in problem (a "
            "procedurally generated piecewise-smooth noisy image and its radius-2 window graph, "
            "11,346 edges at 32x32; a seed-003 group-l21 reconstruction; a small unrolled GEM "
            "network) and print gradient error against an independent float64 reference, "
            "forward+backward time and XLA temporary memory. Also measures the curse of "
            "unrolling (Jacobian error vs iterations per mode, with the bound) and memory vs "
            "iterations. Writes compare.json and PNG plots to --out."
        ),
    )
    cmp.add_argument(
        "--problem",
        default="all",
        choices=PROBLEMS,
        help="which solver case(s) to run: glr (CG GLR filter), fista (group-l21), gem (unrolled "
        "GEM network), uglr (unrolled uGLR network; not part of all) or all (default: all: "
        "glr, fista, gem)",
    )
    cmp.add_argument(
        "--modes",
        type=_parse_modes,
        default=list(MODE_NAMES),
        help="comma-separated gradient modes to compare (default: all four: "
        + ",".join(MODE_NAMES)
        + ")",
    )
    cmp.add_argument(
        "--iters",
        type=_parse_iters,
        default="default",
        help=(
            "iteration cap K: an int, or a preset "
            f"({', '.join(f'{k}={v}' for k, v in ITER_PRESETS.items())}) that also sizes the "
            "memory and Jacobian sweeps. Checkpointed uses every=sqrt(K), Truncated last=K/4; "
            "FISTA runs 3K (default: default)"
        ),
    )
    cmp.add_argument(
        "--size", type=int, default=32, help="image side in pixels for glr and gem (default: 32)"
    )
    cmp.add_argument(
        "--dtype",
        choices=["float32", "float64"],
        default="float32",
        help="dtype of the solvers under test; references are always float64 (default: float32)",
    )
    cmp.add_argument(
        "--out",
        default="compare-out",
        help="output folder for JSON and PNGs (default: compare-out)",
    )
    cmp.add_argument(
        "--device",
        choices=["default", "cpu", "gpu"],
        default="default",
        help="JAX platform to run on (default: JAX's default device)",
    )
    cmp.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="timed repetitions per row, median reported (default: 5)",
    )
    cmp.add_argument(
        "--no-sweeps",
        action="store_true",
        help="skip the memory-vs-iterations and curse-of-unrolling sweeps",
    )
    cmp.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    return parser


def _cases(problem: str, size: int, dtype):
    from glrjax import compare as c

    builders = {
        "glr": lambda: c.glr_case(size=size, dtype=dtype),
        "fista": lambda: c.fista_case(dtype=dtype),
    }
    if hasattr(c, "gem_case"):
        builders["gem"] = lambda: c.gem_case(size=min(size, 16), dtype=dtype)
    # (the GEM case is capped at 16×16: its reference is finite differences)
    names = list(builders) if problem == "all" else [problem]
    # uGLR (2 layers, a dense float64 solve per layer as reference) only on request: it
    # would lengthen the default run. Full setting: benchmarks/interpolation.py.
    if hasattr(c, "uglr_case"):
        builders["uglr"] = lambda: c.uglr_case(size=min(size, 16), dtype=dtype)
    missing = [n for n in names if n not in builders]
    if missing:
        raise SystemExit(f"--problem {problem}: not available in this version")
    return [builders[n]() for n in names]


def _save(fig, out, name):
    """Write a figure as ``out/name`` (PNG, 120 dpi), close it, return the path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = os.path.join(out, name)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _bar_plots(rows, out):
    import matplotlib.pyplot as plt

    files = []
    cases = list(dict.fromkeys(r["case"] for r in rows))
    modes = list(dict.fromkeys(r["mode_name"] for r in rows))
    for key, label, fname in [
        ("time_ms", "forward+backward time (ms)", "time_per_mode.png"),
        ("temp_mb", "XLA temp memory (MB)", "memory_per_mode.png"),
        ("grad_error", "relative gradient error", "grad_error_per_mode.png"),
    ]:
        fig, ax = plt.subplots(figsize=(7.5, 3.8))
        width = 0.8 / max(len(cases), 1)
        for i, case in enumerate(cases):
            vals = []
            for m in modes:
                row = next((r for r in rows if r["case"] == case and r["mode_name"] == m), None)
                v = None if row is None else row[key]
                vals.append(v if v is not None and math.isfinite(v) else 0.0)
            ax.bar([j + i * width for j in range(len(modes))], vals, width, label=case)
        ax.set_xticks([j + width * (len(cases) - 1) / 2 for j in range(len(modes))], modes)
        ax.set_ylabel(label)
        if key in ("grad_error", "time_ms"):
            ax.set_yscale("log")
        ax.legend(fontsize=7)
        files.append(_save(fig, out, fname))
    return files


def _sweep_plots(memory, jacobian, out):
    import matplotlib.pyplot as plt

    files = []
    if memory:
        fig, ax = plt.subplots(figsize=(6, 3.8))
        for mode in dict.fromkeys(r["mode_name"] for r in memory):
            pts = [(r["maxiter"], r["temp_mb"]) for r in memory if r["mode_name"] == mode]
            ax.plot(*zip(*pts, strict=True), marker="o", label=mode)
        ax.set_xlabel("iterations K")
        ax.set_ylabel("XLA temp memory of forward+backward (MB)")
        ax.set_title(memory[0]["case"], fontsize=9)
        ax.legend(fontsize=8)
        files.append(_save(fig, out, "memory_vs_iterations.png"))
    if jacobian:
        fig, ax = plt.subplots(figsize=(6, 3.8))
        t = jacobian["t"]
        ax.plot(t, jacobian["unrolled_curve"], color="0.6", lw=1, label="unrolled GD, every t")
        ax.plot(t, jacobian["bound"], "k--", lw=1, label="bound (Scieur et al. 2022)")
        for mode, errs in jacobian["modes"].items():
            ax.plot(jacobian["maxiters"], errs, marker="o", label=mode)
        ax.set_yscale("log")
        ax.set_xlabel("iterations K")
        ax.set_ylabel("relative Jacobian error ‖∂x_K − ∂x*‖/‖∂x*‖")
        ax.set_title(jacobian["problem"], fontsize=9)
        ax.legend(fontsize=7)
        files.append(_save(fig, out, "jacobian_error.png"))
    return files


def _jacobian_sweep(modes, maxiters) -> dict:
    """Curse of unrolling on an SPD quadratic (κ = 50), GD with h = 2/(L+ℓ)."""
    import numpy as np

    from glrjax import curse
    from glrjax.compare import mode_label

    q = curse.spd_problem(kappa=50.0)
    scale = float(np.linalg.norm(curse.exact_jacobian(q)))
    horizon = max(maxiters)
    c = curse.curves(q, horizon, methods=("gd-2/(L+l)",))
    errs = curse.mode_errors(q, modes, maxiters=maxiters, solver="gd-2/(L+l)")
    return {
        "problem": "SPD quadratic, κ = 50, GD h = 2/(L+ℓ), H(θ) = θH₀",
        "t": [int(v) for v in c.t],
        "unrolled_curve": [float(v) / scale for v in c.error["gd-2/(L+l)"]],
        "bound": [float(v) / scale for v in c.bound["gd-2/(L+l)"]],
        "maxiters": list(maxiters),
        "modes": {mode_label(m): [float(v) for v in e] for m, e in errs.items()},
    }


def compare(args) -> dict:
    import jax

    if args.device != "default":
        jax.config.update("jax_platforms", {"cpu": "cpu", "gpu": "cuda"}[args.device])
    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from glrjax.compare import default_modes, measure, memory_sweep, mode_label

    console = Console(width=None if sys.stdout.isatty() else 130)
    preset = args.iters if isinstance(args.iters, str) else None
    k = ITER_PRESETS[preset] if preset else args.iters
    mem_iters, jac_iters = SWEEPS[preset or ("small" if k <= 20 else "default")]
    dtype = jnp.float32 if args.dtype == "float32" else jnp.float64
    cases = _cases(args.problem, args.size, dtype)
    by_name = {n: i for i, n in enumerate(MODE_NAMES)}
    steps = len(cases) * len(args.modes) + (0 if args.no_sweeps else 2)
    rows, memory, jacobian = [], [], None
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("compare", total=steps)
        for case in cases:
            kk = max(1, round(case.scale * k))
            modes = default_modes(kk, dtype)
            for name in args.modes:
                mode = modes[by_name[name]]
                progress.update(task, description=f"{case.name} · {name}")
                row = measure(case, mode, kk, repeats=args.repeats)
                row["mode_name"] = name
                rows.append(row)
                progress.advance(task)
        if not args.no_sweeps:
            modes = [default_modes(max(mem_iters), dtype)[by_name[n]] for n in args.modes]
            progress.update(task, description="memory vs iterations")
            glr = cases[0] if cases[0].solver == "cg" else _cases("glr", args.size, dtype)[0]
            memory = memory_sweep(glr, modes, mem_iters)
            for r in memory:
                r["mode_name"] = r["mode"].split("(")[0]
            progress.advance(task)
            progress.update(task, description="curse of unrolling")
            jacobian = _jacobian_sweep(modes, jac_iters)
            progress.advance(task)
    device = jax.devices()[0]
    table = Table(title=f"glrjax compare · {args.dtype} · {device.platform}: {device.device_kind}")
    for col in ("case", "mode", "K", "grad err", "fwd+bwd ms", "temp MB", "iters", "conv"):
        table.add_column(col, justify="left" if col in ("case", "mode") else "right", no_wrap=True)
    for r in rows:
        table.add_row(
            r["case"],
            r["mode"],
            str(r["maxiter"]),
            f"{r['grad_error']:.2e}",
            f"{r['time_ms']:.2f}",
            "n/a" if r["temp_mb"] is None else f"{r['temp_mb']:.3f}",
            str(r["iterations"]),
            "yes" if r["converged"] else "no",
        )
    console.print(table)
    if memory:
        mt = Table(title=f"XLA temp MB of forward+backward vs K · {memory[0]['case']}")
        mt.add_column("mode", no_wrap=True)
        for kk in mem_iters:
            mt.add_column(f"K={kk}", justify="right")
        for name in dict.fromkeys(r["mode_name"] for r in memory):
            vals = [r["temp_mb"] for r in memory if r["mode_name"] == name]
            mt.add_row(name, *("n/a" if v is None else f"{v:.3f}" for v in vals))
        console.print(mt)
    if jacobian:
        jt = Table(title=f"relative Jacobian error vs K · {jacobian['problem']}")
        jt.add_column("mode", no_wrap=True)
        for kk in jacobian["maxiters"]:
            jt.add_column(f"K={kk}", justify="right")
        for name, errs in jacobian["modes"].items():
            jt.add_row(name, *(f"{v:.3g}" for v in errs))
        jt.add_row("bound", *(f"{jacobian['bound'][kk]:.3g}" for kk in jacobian["maxiters"]))
        console.print(jt)
    os.makedirs(args.out, exist_ok=True)
    record = {
        "command": "glrjax " + " ".join(sys.argv[1:]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "jax_version": jax.__version__,
        "device": f"{device.platform}: {device.device_kind}",
        "machine": platform.platform(),
        "cpu_count": os.cpu_count(),
        "dtype": args.dtype,
        "iters": args.iters,
        "rows": rows,
        "memory_vs_iterations": memory,
        "jacobian_error": jacobian,
        "modes": {
            name: mode_label(m) for name, m in zip(MODE_NAMES, default_modes(k, dtype), strict=True)
        },
    }
    path = os.path.join(args.out, "compare.json")
    with open(path, "w") as fh:
        json.dump(record, fh, indent=2)
    files = [path]
    if not args.no_plots:
        import matplotlib

        matplotlib.use("Agg")
        files += _bar_plots(rows, args.out)
        files += _sweep_plots(memory, jacobian, args.out)
    console.print("wrote " + ", ".join(files))
    bad = [r for r in rows if not math.isfinite(r["grad_error"])]
    if bad:
        console.print(
            f"[yellow]{len(bad)} row(s) have a NaN gradient: Implicit's backward solve did not "
            "converge (on_failure='nan'), so there is no implicit gradient to give. "
            "Implicit(report=print) shows each backward solve.[/yellow]"
        )
    return record


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "compare":
        compare(args)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
