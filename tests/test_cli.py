"""`glrjax compare`, the main job: runs, prints a row per mode, writes finite JSON and plots."""

import json
import os
import subprocess
import sys

import pytest

from glrjax.cli import build_parser, main


@pytest.mark.slow
def test_compare_small_writes_json_with_a_finite_row_per_solver_and_mode(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "--iters", "small", "--out", str(out), "--repeats", "1"]) == 0
    record = json.loads((out / "compare.json").read_text())
    rows = record["rows"]
    pairs = {(r["solver"], r["mode_name"]) for r in rows}
    solvers = {r["solver"] for r in rows}
    assert len(pairs) == len(rows) == 4 * len(solvers)
    printed = capsys.readouterr().out
    for r in rows:
        for key in ("time_ms", "temp_mb", "loss", "grad_error"):
            value = r[key]
            assert value is not None and value == value and abs(value) < float("inf"), (key, r)
    # Modes that differentiate the whole converged solve agree with the dense reference.
    for r in rows:
        if r["mode_name"] in ("unrolled", "checkpointed", "implicit") and r["converged"]:
            assert r["grad_error"] < 1e-2, r
    for name in ("time_per_mode.png", "memory_per_mode.png", "grad_error_per_mode.png"):
        assert (out / name).stat().st_size > 1000
    for mode in ("unrolled", "checkpointed", "truncated", "implicit"):
        assert mode in printed


def test_compare_one_problem_without_sweeps_is_quick_and_accurate(tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", "--problem", "glr", "--iters", "small", "--no-sweeps", "--repeats", "1"]
    assert main([*argv, "--out", str(out)]) == 0
    rows = json.loads((out / "compare.json").read_text())["rows"]
    assert [r["mode_name"] for r in rows] == ["unrolled", "checkpointed", "truncated", "implicit"]
    for r in rows:
        assert r["solver"] == "cg" and r["time_ms"] > 0 and r["temp_mb"] > 0, r
        assert 0 <= r["grad_error"] < float("inf"), r
    # Unrolled and Implicit track the float64 reference; Truncated is biased by design.
    by_mode = {r["mode_name"]: r["grad_error"] for r in rows}
    assert by_mode["unrolled"] < 1e-1 and by_mode["implicit"] < 1e-1
    assert (out / "time_per_mode.png").stat().st_size > 1000
    assert "implicit" in capsys.readouterr().out


def test_compare_options_are_validated():
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["compare", "--modes", "unrolled,magic"])
    with pytest.raises(SystemExit):
        parser.parse_args(["compare", "--iters", "0"])
    args = parser.parse_args(["compare", "--modes", "implicit,unrolled", "--iters", "7"])
    assert args.modes == ["implicit", "unrolled"] and args.iters == 7


def test_console_script_help_explains_every_option():
    exe = os.path.join(os.path.dirname(sys.executable), "glrjax")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "glrjax.cli"]
    text = subprocess.run(cmd + ["compare", "--help"], capture_output=True, text=True, check=True)
    for opt in ("--problem", "--modes", "--iters", "--dtype", "--out", "--device"):
        assert opt in text.stdout
