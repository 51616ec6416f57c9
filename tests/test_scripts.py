"""Every example and benchmark script runs at smoke size, so none goes stale."""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
BENCHMARKS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_"))


def _run(script, *args, tmp_path):
    env = dict(os.environ, GLRJAX_SMOKE="1", MPLBACKEND="Agg", PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, str(script), "--smoke", *args],
        cwd=script.parent,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert out.returncode == 0, f"{script.name} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"
    return out


@pytest.mark.slow
@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_at_smoke_size(script, tmp_path):
    _run(script, "--out", str(tmp_path), tmp_path=tmp_path)
    written = list(tmp_path.iterdir())
    assert any(p.suffix == ".png" and p.stat().st_size > 1000 for p in written), written


@pytest.mark.slow
@pytest.mark.parametrize("script", BENCHMARKS, ids=[p.stem for p in BENCHMARKS])
def test_benchmark_runs_at_smoke_size(script, tmp_path):
    # run_all is checked on one script: the others are smoke-run on their own here.
    extra = ("--only", "cg_modes") if script.stem == "run_all" else ()
    out = _run(script, *extra, tmp_path=tmp_path)
    assert "wrote" in out.stdout
