"""mkdocs hook: fill ``<!-- results:NAME -->`` markers from benchmarks/results/NAME.json.

``NAME`` shows the record's ``rows``; ``NAME#KEY`` another list of rows in it (``KEY`` may
be dotted: ``graph_learning_scale#edge_cutting.rows``).

Keeps the measured numbers in the docs in sync with the committed benchmark records.
``<!-- figure:FILE.png:caption -->`` shows ``docs/assets/FILE.png`` when it exists, and
otherwise says which command produces it (a missing image would fail ``--strict``).
"""

from __future__ import annotations

import json
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MARKER = re.compile(r"<!-- results:([\w.#-]+)(?::([\w,.-]+))? -->")
FIGURE = re.compile(r"<!-- figure:([\w.-]+\.png):(.+?) -->")
ASSETS = pathlib.Path(__file__).resolve().parent / "assets"
FIGURE_SOURCES = {  # who writes each figure (copied into docs/assets/ by hand)
    "jacobian_error.png": "glrjax compare",
    "memory_vs_iterations.png": "glrjax compare",
    "time_per_mode.png": "glrjax compare",
    "compress_lenet_pareto.png": "examples/compress_lenet.py",
}


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.3g}"
    return "-" if v is None else str(v)


def render(name: str, columns: str | None = None) -> str:
    name, _, key = name.partition("#")
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return f"*(no measurement recorded yet: `benchmarks/results/{name}.json` is missing)*"
    record = json.loads(path.read_text())
    rows = record
    for part in (key or "rows").split("."):
        rows = rows.get(part, {}) if isinstance(rows, dict) else []
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


def figure(name: str, caption: str, src_uri: str) -> str:
    if (ASSETS / name).exists():
        prefix = "../" * src_uri.count("/")
        return f"![{caption}]({prefix}assets/{name})\n\n*{caption}*"
    source = FIGURE_SOURCES.get(name, "its example script")
    return (
        f"*(figure `{name}` not in the site yet: it is written by `{source}` into its "
        f"output folder; copy it to `docs/assets/{name}` to show it here.)*"
    )


def bad_inputs() -> str:
    """The bad-input table of tests/bad_inputs.py, with each call's actual error message."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bad_inputs", ROOT / "tests" / "bad_inputs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    lines = ["| function | argument | bad input | error | message |", "|---|---|---|---|---|"]
    for function, argument, problem, call, error, _ in module.ROWS:
        try:
            call()
            message = "**no error raised**"
        except Exception as err:  # noqa: BLE001 - we show whatever was raised
            message = str(err).replace("|", "\\|").replace("\n", " ")
            error = type(err)
        row = [f"`{function}`", f"`{argument}`", problem, f"`{error.__name__}`", message]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def on_page_markdown(markdown, page=None, **kwargs):
    markdown = MARKER.sub(lambda m: render(m.group(1), m.group(2)), markdown)
    if "<!-- bad-inputs -->" in markdown:
        markdown = markdown.replace("<!-- bad-inputs -->", bad_inputs())
    src_uri = page.file.src_uri if page is not None else ""
    return FIGURE.sub(lambda m: figure(m.group(1), m.group(2), src_uri), markdown)
