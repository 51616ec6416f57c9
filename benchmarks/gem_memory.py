"""Memory and time of one training step of the unrolled GEM network: seed 000's table.

The five configurations of seed 000 (32×32 image graph, radius 2, 11,346 edges, batch 8,
float32, one graph learned from the batch): GEM iterations 3; second-order gradients on/off;
PGD 5/4; CG(inv) 4/3; CG(E) 3/2. For each gradient mode of the inner solvers, one
training step (loss and gradient w.r.t. every network parameter) is compiled and timed:

- ``xla_temp_mb``: XLA's temporary memory of the compiled step (``memory_analysis()``) on
  the device that ran it (the CPU compiler keeps more intermediates alive than the GPU one);
- ``xla_total_mb``: arguments + outputs + temp − aliased, XLA's count of all the device
  memory the step holds at its peak;
- ``gpu_peak_mb`` (GPU only): the allocator's ``peak_bytes_in_use`` after the step, minus
  what was in use before. The peak cannot be reset and includes compile-time scratch
  (autotuning), so rows run in ascending order of XLA temp and a row whose peak did not
  exceed an earlier one's is marked ``peak_exact: false`` (then it bounds nothing);
- ``time_ms``: median wall time per training step.

They are printed beside the seed's reported MB and seconds (an RTX 3090, PyTorch). Further
rows: the exact route (N = 1024 inverse columns by CG instead of 16 probes: what the seed
did, and where its gigabytes came from), and the memory of each mode as N_PGD and the CG
counts grow (Implicit stays flat in the CG counts; the PGD steps are layers, so it grows with
N_PGD).

    python benchmarks/gem_memory.py [--smoke] [--no-exact] [--no-growth] [--modes a,b]
        [--rows 1,2,3,4,5] [--tag NAME]
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _common import machine, smoke, table, write  # noqa: E402

import glrjax  # noqa: E402
from glrjax import gem  # noqa: E402
from glrjax.images import noisy, piecewise_smooth  # noqa: E402

SIZE = 8 if smoke() else 32
BATCH = 2 if smoke() else 8
PROBES = 4 if smoke() else 16
DTYPE = jnp.float32
SEED_ROWS = [  # seed 000, RTX 3090: (N_GEM, 2nd order, N_PGD, N_CG(inv), N_CG(E)) -> MB, s, #params
    ((3, True, 5, 4, 3), 19038, 1.24, 8423),
    ((3, False, 5, 4, 3), 8964, None, 8423),
    ((3, True, 5, 3, 3), 14300, 0.91, 8397),
    ((3, True, 4, 4, 3), 15506, 1.04, 8406),
    ((3, True, 5, 4, 2), 19022, 1.23, 8427),
]
MODES = {
    "unrolled": glrjax.Unrolled(),
    "checkpointed": glrjax.Checkpointed(every=2),
    "truncated": glrjax.Truncated(last=2),
    "implicit": glrjax.Implicit(tol=1e-4, maxiter=100),
}


def arg(name, default=None):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def problem():
    clean = np.stack([piecewise_smooth(SIZE, seed=i) for i in range(BATCH)])
    y = np.stack([noisy(c, 0.1, seed=100 + i) for i, c in enumerate(clean)])
    y = jnp.asarray(y, DTYPE)[None]  # one graph, BATCH samples (seed 000: "only 1 graph")
    features = jnp.mean(y, axis=1, keepdims=True)  # (1, C=1, H, W)
    return jnp.asarray(clean, DTYPE)[None], y, features


def config_of(row, **kw):
    n_gem, second, n_pgd, cg_inv, cg_e = row
    return gem.GEMNetConfig(
        gem_iterations=n_gem,
        second_order=second,
        pgd_steps=n_pgd,
        cg_inv=cg_inv,
        cg_e=cg_e,
        num_probes=PROBES,
        **kw,
    )


def step_fn(config, mode, y, features, clean):
    def loss(params):
        x, info = gem.gem_network(params, y, features, config, gradient=mode)
        return jnp.mean((x - clean) ** 2), info.edges

    return jax.value_and_grad(loss, has_aux=True)


def gpu_stats():
    dev = jax.devices()[0]
    if dev.platform != "gpu":
        return None
    try:
        return dev.memory_stats()
    except Exception:  # noqa: BLE001 - not every backend reports
        return None


def compile_step(config, mode, data, params):
    """The compiled training step and its XLA temp memory (MB) and compile time (s)."""
    clean, y, features = data
    fn = step_fn(config, mode, y, features, clean)
    t0 = time.perf_counter()
    comp = jax.jit(fn).lower(params).compile()
    compile_s = time.perf_counter() - t0
    stats = comp.memory_analysis()
    if stats is None:
        return comp, {"xla_temp_mb": None, "xla_total_mb": None, "compile_s": compile_s}
    total = (
        stats.argument_size_in_bytes
        + stats.output_size_in_bytes
        + stats.temp_size_in_bytes
        - stats.alias_size_in_bytes
    )
    return comp, {
        "xla_temp_mb": stats.temp_size_in_bytes / 2**20,
        "xla_total_mb": total / 2**20,
        "compile_s": compile_s,
    }


def run_step(comp, params, repeats=5):
    """Run a compiled step: GPU peak (first call), median time, loss, edges, finiteness."""
    before = gpu_stats()
    (loss, edges), grads = jax.block_until_ready(comp(params))
    after = gpu_stats()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(comp(params))
        times.append(time.perf_counter() - t0)
    finite = all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree_util.tree_leaves(grads))
    rec = {
        "time_ms": 1e3 * float(np.median(times)),
        "loss": float(loss),
        "edges_left": np.asarray(edges).reshape(-1).tolist(),
        "grads_finite": finite,
    }
    if before is not None and after is not None:
        peak = after.get("peak_bytes_in_use", 0)
        rec["gpu_peak_mb"] = (peak - before.get("bytes_in_use", 0)) / 2**20
        rec["peak_exact"] = peak > before.get("peak_bytes_in_use", 0)
    return rec


def main():
    modes = arg("--modes", ",".join(MODES)).split(",")
    wanted = {int(v) for v in arg("--rows", "1" if smoke() else "1,2,3,4,5").split(",")}
    data = problem()
    clean, y, features = data
    rows, plan = [], []
    params = {}
    for i, (row, seed_mb, seed_s, seed_params) in enumerate(
        SEED_ROWS[:2] if smoke() else SEED_ROWS
    ):
        config = config_of(row)
        params[row] = gem.gem_network_init(config, y, features)
        if i + 1 not in wanted:
            continue
        n_params = sum(int(np.size(p)) for p in jax.tree_util.tree_leaves(params[row]))
        for name in modes:
            base = {
                "table_row": i + 1,
                "n_gem": row[0],
                "second_order": row[1],
                "n_pgd": row[2],
                "cg_inv": row[3],
                "cg_e": row[4],
                "route": f"probes({PROBES})",
                "mode": name,
                "params": n_params,
                "seed_mb": seed_mb,
                "seed_s": seed_s,
                "seed_params": seed_params,
            }
            plan.append((base, config, MODES[name], params[row]))
    if "--no-exact" not in sys.argv:
        row = SEED_ROWS[0][0]
        exact = config_of(row, route="columns")
        n = SIZE * SIZE
        exact_modes = ("unrolled",) if smoke() else ("unrolled", "implicit")
        for name in [m for m in exact_modes if m in modes]:
            base = {
                "table_row": 1,
                "n_gem": row[0],
                "second_order": row[1],
                "n_pgd": row[2],
                "cg_inv": row[3],
                "cg_e": row[4],
                "route": f"columns({n})",
                "mode": name,
                "seed_mb": SEED_ROWS[0][1],
                "seed_s": SEED_ROWS[0][2],
            }
            plan.append((base, exact, MODES[name], params[row]))
    # Compile everything first; run in ascending order of XLA temp (see the GPU peak note).
    compiled = []
    for base, config, mode, p in plan:
        comp, rec = compile_step(config, mode, data, p)
        compiled.append((base | rec, comp, p))
        print(
            f"  compiled row {base['table_row']} {base['route']} {base['mode']}: "
            f"{rec['xla_temp_mb']:.1f} MB, {rec['compile_s']:.1f} s",
            flush=True,
        )
    for r, comp, p in sorted(compiled, key=lambda c: c[0]["xla_temp_mb"] or 0.0):
        repeats = 2 if r["route"].startswith("columns") else 5
        r = r | run_step(comp, p, repeats=repeats)
        r["seed_mb_over_ours"] = (
            r["seed_mb"] / r["xla_temp_mb"] if r["seed_mb"] and r["xla_temp_mb"] else None
        )
        rows.append(r)
        print(
            f"  ran row {r['table_row']} {r['route']} {r['mode']}: {r['time_ms']:.2f} ms, "
            f"temp {r['xla_temp_mb']:.1f} MB, peak {r.get('gpu_peak_mb')} MB",
            flush=True,
        )
    del compiled
    rows.sort(key=lambda r: (r["route"].startswith("columns"), r["table_row"], r["mode"]))
    growth = []
    if "--no-growth" not in sys.argv:
        row = SEED_ROWS[0][0]
        sizes = [(5, 4, 3), (10, 8, 6), (20, 16, 12)] if not smoke() else [(2, 2, 2), (4, 4, 4)]
        for n_pgd, cg_inv, cg_e in sizes:
            cfg = config_of((row[0], True, n_pgd, cg_inv, cg_e))
            p = gem.gem_network_init(cfg, y, features)
            rec = {"n_pgd": n_pgd, "cg_inv": cg_inv, "cg_e": cg_e}
            for name in [m for m in modes if not smoke() or m == "implicit"]:
                rec[f"{name}_mb"] = compile_step(cfg, MODES[name], data, p)[1]["xla_temp_mb"]
            growth.append(rec)
            print(f"  growth {n_pgd}/{cg_inv}/{cg_e} measured", flush=True)
    dev = machine()["device"]
    cols = ["table_row", "second_order", "n_pgd", "cg_inv", "cg_e", "route", "mode", "params"]
    cols += ["xla_temp_mb", "xla_total_mb", "gpu_peak_mb", "time_ms"]
    cols += ["seed_mb", "seed_s", "seed_mb_over_ours"]
    cols += ["edges_left", "grads_finite"]
    shown = [r | {"edges_left": "/".join(map(str, r["edges_left"]))} for r in rows]
    title = (
        f"GEM network training step, {SIZE}x{SIZE}, batch {BATCH} (one graph), "
        f"{int(glrjax.num_edges(glrjax.GridGraph.window(SIZE, SIZE, 2)))} edges, float32, "
        f"{dev}; seed 000: RTX 3090 (PyTorch). xla_temp_mb: XLA temp memory on {dev}"
    )
    table(shown, cols, title=title)
    if growth:
        table(growth, list(growth[0]), title=f"XLA temp MB as N_PGD / CG(inv) / CG(E) grow ({dev})")
    first = {r["mode"]: r for r in rows if r["table_row"] == 1 and r["route"].startswith("probes")}
    targets = {}
    if "unrolled" in first:
        targets["unrolled_temp_mb (target <= 380 on CPU)"] = first["unrolled"]["xla_temp_mb"]
        targets["unrolled_xla_total_mb (target peak <= 100 on GPU)"] = first["unrolled"][
            "xla_total_mb"
        ]
        targets["unrolled_gpu_peak_mb (target <= 100)"] = first["unrolled"].get("gpu_peak_mb")
        targets["unrolled_time_ms (target <= 2 on H100/H200)"] = first["unrolled"]["time_ms"]
    if "implicit" in first:
        targets["implicit_temp_mb (target <= 30)"] = first["implicit"]["xla_temp_mb"]
    if growth and "implicit_mb" in growth[0]:
        vals = [g["implicit_mb"] for g in growth]
        targets["implicit_mb_as_counts_grow"] = vals
    for k, v in targets.items():
        print(k, v)
    tag = arg("--tag")
    write(
        f"gem_memory-{tag}" if tag else "gem_memory",
        {
            "size": SIZE,
            "batch": BATCH,
            "probes": PROBES,
            "dtype": "float32",
            "rows": rows,
            "growth": growth,
            "targets": targets,
        },
    )


if __name__ == "__main__":
    main()
