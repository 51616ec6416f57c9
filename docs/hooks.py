"""mkdocs hook: fill ``<!-- results:NAME -->`` markers from benchmarks/results/NAME.json.

Keeps the measured numbers in the docs in sync with the committed benchmark records.
"""

from __future__ import annotations

import json
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MARKER = re.compile(r"<!-- results:([\w.-]+)(?::([\w,.-]+))? -->")


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.3g}"
    return "-" if v is None else str(v)


def render(name: str, columns: str | None = None) -> str:
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return f"*(no measurement recorded yet: `benchmarks/results/{name}.json` is missing)*"
    record = json.loads(path.read_text())
    rows = record.get("rows", [])
    if not rows:
        return "*(empty record)*"
    cols = columns.split(",") if columns else list(rows[0])
    m = record.get("machine", {})
    lines = [
        f"Measured {m.get('date', '?')} on {m.get('device', '?')} ({m.get('processor', '')}, "
        f"{m.get('cpu_count', '?')} CPUs), jax {m.get('jax_version', '?')}.",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def on_page_markdown(markdown, **kwargs):
    return MARKER.sub(lambda m: render(m.group(1), m.group(2)), markdown)
