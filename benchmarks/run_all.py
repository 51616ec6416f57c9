"""Run every benchmark script in one process tree and report which ones finished.

    python benchmarks/run_all.py [--smoke] [--only cg_modes,glr_filter] [--timeout 600]

Each script writes its own ``benchmarks/results/NAME[-gpu|-smoke].json``. Scripts run one
after another (never in parallel: timings would interfere), each under a time limit.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
ORDER = ["gem_memory", "cg_modes", "glr_filter", "group_lasso"]  # most important first


def scripts(only=None):
    found = {p.stem: p for p in HERE.glob("*.py") if not p.name.startswith("_")}
    found.pop("run_all", None)
    names = [n for n in ORDER if n in found] + sorted(n for n in found if n not in ORDER)
    if only:
        unknown = set(only) - set(names)
        if unknown:
            raise SystemExit(f"--only: no benchmark named {sorted(unknown)}; have {names}")
        names = [n for n in names if n in only]
    return [found[n] for n in names]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes (CI)")
    p.add_argument("--only", default="", help="comma-separated benchmark names")
    p.add_argument("--timeout", type=float, default=900, help="seconds per script")
    args, extra = p.parse_known_args(argv)
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])
    )
    if args.smoke:
        env["GLRJAX_SMOKE"] = "1"
    status = {}
    for script in scripts([n for n in args.only.split(",") if n]):
        t0 = time.perf_counter()
        print(f"=== {script.stem}", flush=True)
        try:
            out = subprocess.run(
                [sys.executable, str(script), *(["--smoke"] if args.smoke else []), *extra],
                cwd=HERE,
                env=env,
                timeout=args.timeout,
            )
            status[script.stem] = "ok" if out.returncode == 0 else f"failed ({out.returncode})"
        except subprocess.TimeoutExpired:
            status[script.stem] = f"timed out after {args.timeout:.0f} s"
        print(
            f"=== {script.stem}: {status[script.stem]} in {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
    print("summary:", ", ".join(f"{k} {v}" for k, v in status.items()))
    return 0 if all(v == "ok" for v in status.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
