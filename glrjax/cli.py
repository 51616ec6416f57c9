"""Command line: ``glrjax compare`` (the main job).

``glrjax compare`` runs every solver case under every gradient mode on the built-in
problem and prints, per row, the gradient error against an independent reference,
the forward+backward time and XLA's temporary memory; it writes a JSON record and PNG
plots to ``--out``.
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
ITER_PRESETS = {"small": 20, "default": 100, "large": 400}


def _parse_iters(text: str) -> int:
    if text in ITER_PRESETS:
        return ITER_PRESETS[text]
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
            "Run each solver case (CG GLR filter, ...) under each gradient mode on the built-in "
            "32x32 piecewise-smooth noisy image and print a table of gradient error (relative "
            "to a dense float64 reference), forward+backward time and XLA temporary memory. "
            "Writes compare.json and PNG plots to --out."
        ),
    )
    cmp.add_argument(
        "--problem",
        default="all",
        choices=["all", "cg"],
        help="which solver cases to run (default: all)",
    )
    cmp.add_argument(
        "--modes",
        type=_parse_modes,
        default=list(MODE_NAMES),
        help="comma-separated gradient modes (default: all four)",
    )
    cmp.add_argument(
        "--iters",
        type=_parse_iters,
        default=ITER_PRESETS["default"],
        help=(
            "iteration cap K of every solver: an int or a preset "
            f"({', '.join(f'{k}={v}' for k, v in ITER_PRESETS.items())}); Checkpointed uses "
            "every=sqrt(K), Truncated last=K/4 (default: default)"
        ),
    )
    cmp.add_argument("--size", type=int, default=32, help="image side in pixels (default: 32)")
    cmp.add_argument(
        "--dtype", choices=["float32", "float64"], default="float32", help="(default: float32)"
    )
    cmp.add_argument("--out", default="compare-out", help="output folder (default: compare-out)")
    cmp.add_argument(
        "--device",
        choices=["cpu", "gpu", "default"],
        default="default",
        help="JAX platform to run on (default: JAX's default device)",
    )
    cmp.add_argument("--repeats", type=int, default=5, help="timed repetitions (default: 5)")
    cmp.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    return parser


def _modes(names, maxiter):
    from glrjax.compare import default_modes

    by_name = dict(zip(MODE_NAMES, default_modes(maxiter), strict=True))
    return [by_name[n] for n in names]


def _cases(problem: str, size: int, dtype):
    from glrjax.compare import cg_case

    cases = []
    if problem in ("all", "cg"):
        cases.append(cg_case(size=size, dtype=dtype))
    return cases


def _plots(rows, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    cases = sorted({r["case"] for r in rows})
    for key, label, fname in [
        ("time_ms", "forward+backward time (ms)", "time_per_mode.png"),
        ("temp_mb", "XLA temp memory (MB)", "memory_per_mode.png"),
        ("grad_error", "relative gradient error", "grad_error_per_mode.png"),
    ]:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        width = 0.8 / max(len(cases), 1)
        modes = list(dict.fromkeys(r["mode_name"] for r in rows))
        for i, case in enumerate(cases):
            vals = [
                next((r[key] or 0.0 for r in rows if r["case"] == case and r["mode_name"] == m), 0)
                for m in modes
            ]
            ax.bar([j + i * width for j in range(len(modes))], vals, width, label=case)
        ax.set_xticks([j + width * (len(cases) - 1) / 2 for j in range(len(modes))], modes)
        ax.set_ylabel(label)
        if key == "grad_error":
            ax.set_yscale("log")
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(out, fname)
        fig.savefig(path, dpi=120)
        plt.close(fig)
        files.append(path)
    return files


def compare(args) -> dict:
    if args.device != "default":
        os.environ.setdefault("JAX_PLATFORMS", args.device.replace("gpu", "cuda"))
    import jax
    import jax.numpy as jnp

    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from glrjax.compare import measure

    console = Console(width=None if sys.stdout.isatty() else 120)
    dtype = jnp.float32 if args.dtype == "float32" else jnp.float64
    cases = _cases(args.problem, args.size, dtype)
    modes = _modes(args.modes, args.iters)
    rows = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("compare", total=len(cases) * len(modes))
        for case in cases:
            for name, mode in zip(args.modes, modes, strict=True):
                progress.update(task, description=f"{case.name} · {name}")
                row = measure(case, mode, args.iters, repeats=args.repeats)
                row["mode_name"] = name
                rows.append(row)
                progress.advance(task)
    device = jax.devices()[0]
    table = Table(title=f"glrjax compare · K = {args.iters} · {args.dtype} · {device.device_kind}")
    for col in ("case", "mode", "grad err", "fwd+bwd ms", "temp MB", "iters", "conv"):
        table.add_column(col, justify="left" if col in ("case", "mode") else "right", no_wrap=True)
    for r in rows:
        table.add_row(
            r["case"],
            r["mode"],
            f"{r['grad_error']:.2e}",
            f"{r['time_ms']:.2f}",
            "n/a" if r["temp_mb"] is None else f"{r['temp_mb']:.3f}",
            str(r["iterations"]),
            "yes" if r["converged"] else "no",
        )
    console.print(table)
    os.makedirs(args.out, exist_ok=True)
    record = {
        "command": "glrjax " + " ".join(sys.argv[1:]) if sys.argv[0].endswith("glrjax") else None,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "jax_version": jax.__version__,
        "device": f"{device.platform}: {device.device_kind}",
        "machine": platform.platform(),
        "cpu_count": os.cpu_count(),
        "dtype": args.dtype,
        "maxiter": args.iters,
        "rows": rows,
    }
    path = os.path.join(args.out, "compare.json")
    with open(path, "w") as fh:
        json.dump(record, fh, indent=2)
    files = [path]
    if not args.no_plots:
        files += _plots(rows, args.out)
    console.print("wrote " + ", ".join(files))
    bad = [r for r in rows if not math.isfinite(r["grad_error"])]
    if bad:
        console.print(f"[red]{len(bad)} rows have non-finite gradient error[/red]")
    return record


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "compare":
        compare(args)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
