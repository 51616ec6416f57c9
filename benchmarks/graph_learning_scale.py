"""Graph learning at 10⁴–10⁶ nodes: a synthetic connectivity GMRF learned by GEM, 1/2/4 devices.

**Problem** (a stand-in for "finding connections between 10⁵ neurons", seed 000 part 2):
N neurons uniform in the unit square, numbered along a sweep of small cells (a spatial
order: a random numbering makes every edge gather a cache miss); the candidate edges are
their 4-nearest-neighbour graph (union; built by scikit-learn's k-d tree, outside the
timed fit); the truth keeps a random half of them with weights U[0.5, 1.5];
x ~ N(0, (L + δI)⁻¹) exactly by :func:`glrjax.gem.sample_gmrf` (δ = 0.5), y = x + σn
(σ = 0.1), S = 100 samples, float32.

**Learner**: :func:`glrjax.gem.gem_fit` from the unit-weight candidate graph with the
scalable edge-term estimator ``Coloured(distance=2)`` (a distance-2 colouring: the number
of solves does not grow with N), γ = 0.1, 5 GEM iterations of 10 M-step steps. And **edge
cutting**: the same E-steps, but each M-step replaced by 10 Adam steps (optax, lr 0.05) on
the log-likelihood gradient :func:`glrjax.gem.m_step_gradient`, each followed by
:func:`glrjax.gnn.edge_prox` with ``nonneg_l0`` (λ = 0.045: weights below √(2λ) = 0.3 are
cut) — the GNN example's training loop applied to graph learning; at N = 10⁴ and 10⁵.

**Measured per N**: colours (solves per edge-term estimate), compile and run time of the
ahead-of-time compiled fit, time per GEM iteration, XLA memory from
``compiled.memory_analysis()`` (temporaries and arguments) and the process's peak RSS,
support F1 against the truth, edges left. **Cost exponent**: the least-squares slope of
log(time per iteration) on log(candidate edges).

**Devices**: the N = 10⁵ fit (one GEM iteration) in child processes with 1, 2 and 4 forced
host devices (``--xla_force_host_platform_device_count``), the graph's edges and the
samples' nodes split by :func:`glrjax.sharding.shard_graph` / ``shard_nodes``; XLA's SPMD
partitioner inserts the communication. On this 2-core machine 4 host devices share 2
cores, so this measures the partitioned program's overhead, not a speed-up.

    python benchmarks/graph_learning_scale.py [--smoke] [--sizes 10000,100000,1000000]
        [--no-devices]

Writes benchmarks/results/graph_learning_scale.json.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _common import smoke, table, temp_mb, write

import glrjax
from glrjax import gem
from glrjax.gnn import edge_prox
from glrjax.sharding import pad_edges, shard_graph, shard_nodes

DELTA, SIGMA, GAMMA, SAMPLES, K = 0.5, 0.1, 0.1, 100, 4
ITERATIONS, STEPS = 5, 10
LR, LAM = 0.05, 0.045


def problem(n: int, samples: int = SAMPLES, seed: int = 0):
    """(y, candidate graph, true support) of the synthetic connectivity problem."""
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(seed)
    pts = rng.uniform(size=(n, 2))
    # Number the nodes along a sweep of ~4-node cells, as one would number neurons by
    # position: neighbours get nearby indices and the edge gathers stay in cache (about 2×
    # faster at N = 10⁵ than a random numbering, measured on this machine).
    cells = int(np.sqrt(n / 4))
    cell = np.floor(pts * cells).astype(np.int64)
    pts = pts[np.lexsort((pts[:, 0], cell[:, 0], cell[:, 1]))]
    _, idx = NearestNeighbors(n_neighbors=K + 1).fit(pts).kneighbors(pts)
    i, j = np.repeat(np.arange(n), K), idx[:, 1:].ravel()
    pairs = np.unique(np.minimum(i, j).astype(np.int64) * n + np.maximum(i, j))
    src, dst = (pairs // n).astype(np.int32), (pairs % n).astype(np.int32)
    keep = rng.uniform(size=src.size) < 0.5
    w = np.where(keep, rng.uniform(0.5, 1.5, src.size), 0.0).astype(np.float32)
    truth = pad_edges(glrjax.EdgeGraph(src, dst, w, n), 4)
    x, info = gem.sample_gmrf(truth, DELTA, samples, jax.random.key(seed))
    if not bool(info.converged.all()):
        raise RuntimeError("sample_gmrf did not converge")
    y = x + SIGMA * jax.random.normal(jax.random.key(seed + 1), x.shape, x.dtype)
    candidates = truth.with_weights(
        jnp.asarray(np.r_[np.ones(src.size), np.zeros(truth.src.shape[0] - src.size)], "float32")
    )
    return y, candidates, np.r_[keep, np.zeros(truth.src.shape[0] - src.size, bool)]


def fitter(graph0, iterations: int):
    estimator = gem.Coloured(distance=2)

    def fit(y, w):
        g, hist = gem.gem_fit(
            y,
            graph0.with_weights(w),
            sigma=SIGMA,
            delta=DELTA,
            gamma=GAMMA,
            iterations=iterations,
            steps=STEPS,
            estimator=estimator,
        )
        return g.weights, hist.edges

    return fit, estimator.num_solves(graph0)


def edge_cutter(graph0, iterations: int):
    """E-steps as in gem_fit; M-steps by Adam + edge_prox(nonneg_l0) on the likelihood."""
    estimator = gem.Coloured(distance=2)
    tx = optax.chain(optax.adam(LR), edge_prox(glrjax.prox.nonneg_l0, LAM))

    def fit(y, w):
        def m_step(carry, terms):
            w, state = carry
            grad, _ = gem.m_step_gradient(graph0.with_weights(w), terms, DELTA, estimator=estimator)
            u, state = tx.update(-grad, state, w)  # ascend the log-likelihood
            return (optax.apply_updates(w, u), state), None

        def iteration(carry, _):
            w, state = carry
            terms = gem.e_step(y, graph0.with_weights(w), SIGMA, DELTA, estimator=estimator)
            carry, _ = jax.lax.scan(
                lambda c, _: m_step(c, terms.terms), (w, state), None, length=STEPS
            )
            return carry, jnp.sum(carry[0] > 0)

        (w, _), edges = jax.lax.scan(iteration, (w, tx.init(w)), None, length=iterations)
        return w, edges

    return fit, estimator.num_solves(graph0)


LEARNERS = {"gem_fit": fitter, "edge_cutting": edge_cutter}


def run(n: int, iterations: int, *, shard: bool = False, learner: str = "gem_fit"):
    t0 = time.perf_counter()
    y, g0, truth = problem(n)
    setup = time.perf_counter() - t0
    fit, colours = LEARNERS[learner](g0, iterations)
    w0 = g0.weights
    if shard:
        y, w0 = shard_nodes(y, g0), shard_graph(g0).weights
    t0 = time.perf_counter()
    comp = jax.jit(fit).lower(y, w0).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    w, edges = jax.block_until_ready(comp(y, w0))
    run_s = time.perf_counter() - t0
    est = np.asarray(w) > 0
    stats = comp.memory_analysis()
    row = {
        "learner": learner,
        "N": n,
        "candidate_edges": int(truth.size),
        "true_edges": int(truth.sum()),
        "samples": SAMPLES,
        "devices": jax.device_count(),
        "colours": colours,
        "iterations": iterations,
        "setup_s": round(setup, 2),
        "compile_s": round(compile_s, 2),
        "run_s": round(run_s, 2),
        "s_per_iteration": round(run_s / iterations, 3),
        "temp_mb": round(temp_mb(comp) or 0.0, 1),
        "argument_mb": round(getattr(stats, "argument_size_in_bytes", 0) / 2**20, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "edges_left": int(np.asarray(edges)[-1]),
        "f1": round(float(2 * np.sum(est & truth) / (est.sum() + truth.sum())), 4),
    }
    return row, np.asarray(w)


def devices_rows(n: int, counts=(1, 2, 4)) -> list[dict]:
    rows, first = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for c in counts:
            env = dict(os.environ, JAX_PLATFORMS="cpu")
            env["XLA_FLAGS"] = (
                env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={c}"
            )
            path = os.path.join(tmp, f"w{c}.npy")
            cmd = [sys.executable, __file__, "--child", str(n), path]
            cmd += ["--smoke"] if smoke() else []
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            w = np.load(path)
            first = w if first is None else first
            row["max_abs_diff_vs_1_device"] = float(np.max(np.abs(w - first)))
            rows.append(row)
    return rows


def main():
    if "--child" in sys.argv:
        i = sys.argv.index("--child")
        row, w = run(int(sys.argv[i + 1]), 1, shard=True)
        np.save(sys.argv[i + 2], w)
        print(json.dumps(row))
        return
    if "--sizes" in sys.argv:
        sizes = [int(s) for s in sys.argv[sys.argv.index("--sizes") + 1].split(",")]
    else:
        sizes = [400, 1600] if smoke() else [10_000, 100_000, 1_000_000]
    rows = []
    for n in sizes:
        row, _ = run(n, ITERATIONS)
        rows.append(row)
        print(json.dumps(row), flush=True)
    cols = ["N", "candidate_edges", "colours", "compile_s", "s_per_iteration", "temp_mb"]
    table(rows, cols + ["peak_rss_mb", "f1", "edges_left"], "gem_fit at scale (1 device)")
    e = np.log([r["candidate_edges"] for r in rows])
    t = np.log([r["s_per_iteration"] for r in rows])
    exponent = float(np.polyfit(e, t, 1)[0]) if len(rows) > 1 else None
    print(f"cost exponent in candidate edges: {exponent}")
    cut_rows = []
    for n in [400] if smoke() else [10_000, 100_000]:
        row, _ = run(n, ITERATIONS, learner="edge_cutting")
        cut_rows.append(row)
        print(json.dumps(row), flush=True)
    table(cut_rows, ["N", "s_per_iteration", "temp_mb", "f1", "edges_left"], "edge cutting")
    record = {
        "problem": {"delta": DELTA, "sigma": SIGMA, "gamma": GAMMA, "k": K, "samples": SAMPLES},
        "learner": {"estimator": "Coloured(distance=2)", "iterations": ITERATIONS, "steps": STEPS},
        "rows": rows,
        "cost_exponent": exponent,
        "edge_cutting": {"lr": LR, "lam": LAM, "rows": cut_rows},
    }
    if "--no-devices" not in sys.argv:
        n = 1600 if smoke() else 100_000
        record["devices"] = devices_rows(n)
        table(
            record["devices"],
            ["N", "devices", "compile_s", "s_per_iteration", "f1"] + ["max_abs_diff_vs_1_device"],
            f"N = {n}, one GEM iteration, sharded",
        )
    write("graph_learning_scale", record)


if __name__ == "__main__":
    main()
