#!/usr/bin/env bash
# Run every benchmark and the main job on a GPU machine, within about 8 minutes.
#
#   bash benchmarks/gpu.sh [OUT]
#
# Needs jax with CUDA, optax, lineax, scipy, scikit-learn, rich, matplotlib on the machine;
# jaxopt (a peer in group_lasso) is installed from .whl/ when that folder holds its wheel.
# Results: benchmarks/results/*-gpu.json, copied with one log (gpu.log) to OUT (default: $OUT
# or ./gpu-out): at most 7 files.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-gpu-out}}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
python3 - <<'PY' 2>&1 | tee "$OUT/gpu.log"
import jax, sys
print(sys.version.split()[0], "jax", jax.__version__, jax.devices())
PY
start=$SECONDS
# Most important first; each under its own limit so one slow script cannot eat the rest.
timeout 200 python3 benchmarks/run_all.py --only gem_memory --timeout 190 --rows 1 --no-growth 2>&1 | tee -a "$OUT/gpu.log"
timeout 110 python3 benchmarks/run_all.py --only cg_modes --timeout 100 2>&1 | tee -a "$OUT/gpu.log"
timeout 90 python3 benchmarks/run_all.py --only glr_filter --timeout 80 2>&1 | tee -a "$OUT/gpu.log"
timeout 60 python3 -m glrjax.cli compare --device gpu --out /tmp/glrjax-compare --no-plots 2>&1 | tee -a "$OUT/gpu.log"
timeout 60 python3 benchmarks/run_all.py --only group_lasso --timeout 55 2>&1 | tee -a "$OUT/gpu.log"
echo "gpu.sh finished in $((SECONDS - start)) s" | tee -a "$OUT/gpu.log"
cp benchmarks/results/*-gpu.json "$OUT"/ 2>/dev/null || true
cp /tmp/glrjax-compare/compare.json "$OUT/compare-gpu.json" 2>/dev/null || true
ls -la "$OUT"
