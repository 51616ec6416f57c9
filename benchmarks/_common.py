"""Shared helpers of the benchmark scripts: timing, XLA memory, machine record, JSON output.

Every script measures glrjax and its peers in one run and reports ratios. Set
``GLRJAX_SMOKE=1`` (or pass ``--smoke``) for a tiny size that only checks the script runs.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from datetime import datetime, timezone

import jax
import numpy as np

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def smoke() -> bool:
    """True for a smoke-size run (``--smoke`` or ``GLRJAX_SMOKE=1``)."""
    return "--smoke" in sys.argv or os.environ.get("GLRJAX_SMOKE", "") not in ("", "0")


def compiled(fn, *args):
    """``jax.jit(fn)`` lowered and compiled for ``args``."""
    return jax.jit(fn).lower(*args).compile()


def temp_mb(comp) -> float | None:
    """XLA temporary memory of a compiled function, in MB (None where not reported)."""
    stats = comp.memory_analysis()
    if stats is None:
        return None
    return getattr(stats, "temp_size_in_bytes", 0) / 2**20


def time_ms(comp, *args, repeats: int = 10, min_time: float = 0.2) -> float:
    """Median wall time of ``comp(*args)`` in ms, after one warm-up call."""
    jax.block_until_ready(comp(*args))
    times = []
    start = time.perf_counter()
    while len(times) < repeats or (time.perf_counter() - start < min_time and len(times) < 200):
        t0 = time.perf_counter()
        jax.block_until_ready(comp(*args))
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def machine() -> dict:
    dev = jax.devices()[0]
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "jax_version": jax.__version__,
        "device": f"{dev.platform}: {dev.device_kind}",
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "smoke": smoke(),
    }


def write(name: str, record: dict) -> str:
    """Write ``record`` (plus the machine) to ``benchmarks/results/<name>[-gpu|-smoke].json``."""
    os.makedirs(RESULTS, exist_ok=True)
    record = {"machine": machine(), **record}
    suffix = "-smoke" if smoke() else ("-gpu" if jax.devices()[0].platform == "gpu" else "")
    path = os.path.join(RESULTS, f"{name}{suffix}.json")
    with open(path, "w") as fh:
        json.dump(record, fh, indent=2)
    print(f"wrote {path}")
    return path


def table(rows: list[dict], columns: list[str], title: str = "") -> None:
    """Print ``rows`` as a rich table."""
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title or None)
    for c in columns:
        t.add_column(c, justify="right", no_wrap=True)
    for r in rows:
        t.add_row(*(_fmt(r.get(c)) for c in columns))
    Console(width=200).print(t)


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.3e}"
    return str(v)
