"""Edge-term estimators of GEM: error against the dense inverse vs cost, cost vs N, gem_fit F1.

The edge terms t_ij = (e_i − e_j)ᵀA⁻¹(e_i − e_j), A = I + μL, on radius-2 window graphs with
random weights in [0.5, 1.5]. Reference: numpy's dense inverse (independent of glrjax).

1. **Error vs cost** (16×16): ``Coloured(distance=d)`` for d = 1…4 against ``Probes`` with
   the same number of solves (mean over 4 keys); relative error ‖t̂ − t‖/‖t‖ and the
   largest per-edge relative error, for the Θ⁻¹ terms (μ = 1/δ, δ = 0.1) and the posterior
   covariance's (μ = σ²/(1 + σ²δ), σ = 0.3).
2. **Cost vs N** (16², 32², 64²): colours (solves) and error of each d, and the probes
   needed for the coloured estimator's error (extrapolated from P = 64 as 64·(e₆₄/e)²,
   the 1/√P law).
3. **gem_fit support F1** on synthetic 16×16 radius-2 GMRFs: the truth is a random 30 %
   of the 2,610 window edges with weights in [0.5, 1.5]; x ~ N(0, (L + δI)⁻¹) exactly by
   Cholesky, y = x + σn, 2,000 samples; gem_fit from the full unit-weight window graph
   along a warm-started γ path (``gem_path``) with Dense / Probes(32) / Coloured(d = 2, 3, 4);
   F1 at the best γ, and edges left per γ (non-increasing by construction).

    python benchmarks/gem_estimators.py [--smoke] [--no-fit]

Writes benchmarks/results/gem_estimators.json.
"""

from __future__ import annotations

import os
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _common import smoke, table, write  # noqa: E402

import glrjax  # noqa: E402
from glrjax import gem  # noqa: E402

DELTA, SIGMA = 0.1, 0.3


def random_window(size, radius=2, seed=0):
    g = glrjax.GridGraph.window(size, size, radius, dtype=jnp.float64)
    rng = np.random.default_rng(seed)
    w = np.where(np.asarray(g.weights) > 0, rng.uniform(0.5, 1.5, g.weights.shape), 0.0)
    return glrjax.GridGraph.window(size, size, radius, jnp.asarray(w))


def exact_terms(graph, mu):
    n = int(np.prod(graph.node_shape))
    inv = np.linalg.inv(np.eye(n) + mu * np.asarray(glrjax.to_dense(graph)))
    src, dst = (np.asarray(a) for a in graph.edge_index())
    mask = np.asarray(graph.valid_mask())
    t = inv[src, src] + inv[dst, dst] - 2 * inv[src, dst]
    return np.where(mask, t, 0.0), mask


def errors(est, ref, mask):
    est, ref = np.asarray(est)[mask], ref[mask]
    rel = float(np.linalg.norm(est - ref) / np.linalg.norm(ref))
    return rel, float(np.max(np.abs(est - ref) / np.abs(ref)))


def measure(graph, mu, estimator):
    t, info = gem.inverse_edge_terms(graph, mu, estimator, tol=1e-10, maxiter=2000)
    return np.asarray(t), bool(info.converged)


def error_vs_cost(size, distances, keys):
    rows = []
    g = random_window(size)
    for label, mu in (
        ("theta_inv", 1.0 / DELTA),
        ("covariance", SIGMA**2 / (1 + SIGMA**2 * DELTA)),
    ):
        ref, mask = exact_terms(g, mu)
        for d in distances:
            est = gem.Coloured(distance=d)
            solves = est.num_solves(g)
            t, ok = measure(g, mu, est)
            rel, worst = errors(t, ref, mask)
            prel = []
            for k in range(keys):
                tp, _ = measure(g, mu, gem.Probes(num=solves, key=k))
                prel.append(errors(tp, ref, mask)[0])
            rows.append(
                {
                    "terms": label,
                    "N": size * size,
                    "distance": d,
                    "solves": solves,
                    "coloured_rel_err": rel,
                    "coloured_max_rel_err": worst,
                    "probes_rel_err": float(np.mean(prel)),
                    "converged": ok,
                }
            )
    return rows


def cost_vs_n(sizes, distances):
    rows = []
    mu = 1.0 / DELTA
    for size in sizes:
        g = random_window(size, seed=size)
        ref, mask = exact_terms(g, mu)
        tp, _ = measure(g, mu, gem.Probes(num=64, key=0))
        e64 = errors(tp, ref, mask)[0]
        for d in distances:
            est = gem.Coloured(distance=d)
            t0 = time.perf_counter()
            solves = est.num_solves(g)
            colour_s = time.perf_counter() - t0
            t, _ = measure(g, mu, est)
            rel, worst = errors(t, ref, mask)
            rows.append(
                {
                    "N": size * size,
                    "distance": d,
                    "colours": solves,
                    "colouring_s": colour_s,
                    "coloured_rel_err": rel,
                    "coloured_max_rel_err": worst,
                    "probes64_rel_err": e64,
                    "probes_for_same_err": int(np.ceil(64 * (e64 / rel) ** 2)),
                }
            )
    return rows


def synthetic_gmrf(size, samples, seed, fraction=0.3):
    rng = np.random.default_rng(seed)
    g0 = glrjax.GridGraph.window(size, size, 2, dtype=jnp.float64)
    valid = np.asarray(g0.weights) > 0
    true = valid & (rng.uniform(size=valid.shape) < fraction)
    wt = np.where(true, rng.uniform(0.5, 1.5, valid.shape), 0.0)
    n = size * size
    theta = np.asarray(
        glrjax.to_dense(glrjax.GridGraph.window(size, size, 2, wt))
    ) + DELTA * np.eye(n)
    chol = np.linalg.cholesky(np.linalg.inv(theta))
    x = chol @ rng.standard_normal((n, samples))
    y = (x + SIGMA * rng.standard_normal(x.shape)).T.reshape(samples, size, size)
    return y, g0, true


def f1(pred, true):
    tp = np.sum(pred & true)
    return float(2 * tp / max(np.sum(pred) + np.sum(true), 1))


def fit_f1(size, samples, gammas, iterations, estimators):
    """gem_path (warm-started γ grid, nested supports) per estimator: F1 and edges per γ."""
    y, g0, true = synthetic_gmrf(size, samples, seed=0)
    rows, best = [], {}
    for name, est in estimators.items():
        t0 = time.perf_counter()
        path = gem.gem_path(
            y,
            g0,
            gammas=gammas,
            sigma=SIGMA,
            delta=DELTA,
            iterations=iterations,
            estimator=est,
            objective=False,
            tol=1e-8,
        )
        weights = np.asarray(path.weights)
        seconds = time.perf_counter() - t0
        mine = []
        for k, gamma in enumerate(np.asarray(path.gammas)):
            pred = weights[k] > 0
            mine.append(
                {
                    "estimator": name,
                    "solves": 0 if isinstance(est, gem.Dense) else est.num_solves(g0),
                    "gamma": float(gamma),
                    "edges_left": int(pred.sum()),
                    "true_edges": int(true.sum()),
                    "f1": f1(pred, true),
                    "path_s": seconds,
                }
            )
            print(mine[-1])
        rows += mine
        top = max(mine, key=lambda r: r["f1"])
        best[name] = {
            "best_gamma": top["gamma"],
            "best_f1": top["f1"],
            "edges_monotone_in_gamma": bool(np.all(np.diff([r["edges_left"] for r in mine]) <= 0)),
        }
    return rows, best


def main():
    small = smoke()
    distances = [1, 2] if small else [1, 2, 3, 4]
    ev = error_vs_cost(8 if small else 16, distances, keys=1 if small else 4)
    table(ev, list(ev[0]), "error vs cost (solves)")
    cn = cost_vs_n([8, 12] if small else [16, 32, 64], [1, 2] if small else [1, 2, 3])
    table(cn, list(cn[0]), "cost vs N")
    record = {"delta": DELTA, "sigma": SIGMA, "error_vs_cost": ev, "cost_vs_n": cn}
    if "--no-fit" not in sys.argv:
        if small:
            size, samples, gammas, iters = 6, 200, [0.05, 0.2], 2
        else:
            size, samples, gammas, iters = 16, 2000, [0.02, 0.05, 0.1, 0.2, 0.3, 0.5], 10
        ests = {
            "dense": gem.Dense(),
            "probes32": gem.Probes(num=32, key=0),
            "coloured2": gem.Coloured(distance=2),
            "coloured3": gem.Coloured(distance=3),
            "coloured4": gem.Coloured(distance=4),
        }
        rows, best = fit_f1(size, samples, gammas, iters, ests)
        table(rows, list(rows[0]), "gem_fit support F1")
        print(best)
        record["gem_fit"] = {"size": size, "samples": samples, "rows": rows, "best": best}
    write("gem_estimators", record)


if __name__ == "__main__":
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    main()
