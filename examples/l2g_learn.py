"""Train the unrolled L2G network on random graphs and compare it with the untrained solver.

For each graph family (``--families``, default BA) this script

1. draws training and test sets with :func:`glrjax.l2g.synthetic_dataset` — 20-node
   graphs, log-normal(0, 0.1) edge weights scaled so Σ_{i≠j} W_ij = N, 3000 noise-free
   signals from the graph's GMRF N(0, (L + 10⁻⁴I)⁻¹), z = mean squared distances (the
   data generation of Pu et al.'s released code: ``data_simulation.py``, BA with m = 3);
2. picks α, β of the untrained solver :func:`glrjax.l2g.l2g` by grid search on the
   training set — separately for the solver stopped after ``--layers`` iterations and
   for the solver run to convergence — minimising the mean training GMSE (a grid of
   powers of 2, α ∈ [2⁻¹, 2⁵], β ∈ [2⁻³, 2⁵], then a finer grid around the best);
3. trains :func:`glrjax.l2g.l2g_unrolled` (per-layer τ, σ, α, β, learned in log space
   with optax's Adam on the mean GMSE of the last layer), initialised at the tuned
   ``--layers``-iteration solver, so that training starts from the baseline;
4. reports test GMSE = ‖ŵ − w*‖²/‖w*‖² (mean ± 95% interval; ŵ as it is, the paper's
   convention, and after the best scalar rescaling of ŵ), edge F1 (ŵ > 10⁻⁴) and edge
   AUC, prints a table, writes ``l2g_learn.json`` and ``l2g_learn.png`` (true and
   learned adjacency of a test graph, and the training curve) to ``--out``.

Run: ``python examples/l2g_learn.py --families ER,BA,RG``; ``--smoke`` for a tiny run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from glrjax import Implicit  # noqa: E402
from glrjax.l2g import (  # noqa: E402
    L2GParams,
    edge_auc,
    edge_f1,
    gmse,
    init_l2g_params,
    l2g,
    l2g_unrolled,
    synthetic_dataset,
    to_matrix,
)

SEEDS = {"ER": 100, "BA": 200, "RG": 300}


def parse(argv=None):
    smoke = "--smoke" in (argv or sys.argv) or os.environ.get("GLRJAX_SMOKE", "") not in ("", "0")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny, fast run (CI)")
    p.add_argument("--families", default="BA", help="comma-separated subset of ER,BA,RG")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out"))
    p.add_argument("--nodes", type=int, default=20)
    p.add_argument("--layers", type=int, default=20)
    p.add_argument("--train", type=int, default=64 if smoke else 512)
    p.add_argument("--test", type=int, default=16 if smoke else 128)
    p.add_argument("--signals", type=int, default=300 if smoke else 3000)
    p.add_argument("--steps", type=int, default=30 if smoke else 1500, help="Adam steps")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--tune", type=int, default=32 if smoke else 128, help="graphs for α, β")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    args.smoke = smoke
    return args


# ---------------------------------------------------------------------- the baselines


def make_solvers(layers: int, conv_maxiter: int):
    @jax.jit
    def fixed(z, alpha, beta):  # the plain solver stopped after `layers` iterations
        return jax.vmap(lambda zz: l2g(zz, alpha, beta, tol=0.0, maxiter=layers)[0])(z)

    @jax.jit
    def converged(z, alpha, beta):
        # Implicit(): a while_loop to tolerance (Unrolled would always run conv_maxiter steps).
        w, info = jax.vmap(
            lambda zz: l2g(zz, alpha, beta, tol=1e-9, maxiter=conv_maxiter, gradient=Implicit())
        )(z)
        return w, info

    return fixed, converged


def grid_search(solve, z, w, smoke: bool):
    """(α, β) minimising the mean GMSE of ``solve`` on (z, w): powers of 2, then finer."""

    def score(a, b):
        return float(jnp.mean(gmse(solve(z, a, b), w)))

    coarse_a = 2.0 ** np.arange(-1, 6) if not smoke else 2.0 ** np.arange(0, 3)
    coarse_b = 2.0 ** np.arange(-3, 6) if not smoke else 2.0 ** np.arange(0, 3)
    scores = {(a, b): score(a, b) for a in coarse_a for b in coarse_b}
    a0, b0 = min(scores, key=scores.get)
    if not smoke:
        fine = 2.0 ** np.array([-0.5, -0.25, 0.0, 0.25, 0.5])
        scores.update({(a0 * fa, b0 * fb): score(a0 * fa, b0 * fb) for fa in fine for fb in fine})
    best = min(scores, key=scores.get)
    return float(best[0]), float(best[1]), scores[best], len(scores)


# ----------------------------------------------------------------------------- training


def to_params(theta):
    return L2GParams(*(jnp.exp(t) for t in theta))


def train(theta, z, w, args, rng):
    opt = optax.adam(args.lr)
    state = opt.init(theta)

    def loss(theta, z, w):
        p = to_params(theta)
        return jnp.mean(gmse(jax.vmap(lambda zz: l2g_unrolled(zz, p))(z), w))

    @jax.jit
    def update(theta, state, z, w):
        val, g = jax.value_and_grad(loss)(theta, z, w)
        upd, state = opt.update(g, state, theta)
        return optax.apply_updates(theta, upd), state, val

    curve = []
    for _ in range(args.steps):
        idx = rng.choice(z.shape[0], min(args.batch, z.shape[0]), replace=False)
        theta, state, val = update(theta, state, z[idx], w[idx])
        curve.append(float(val))
    return theta, curve


# --------------------------------------------------------------------------- evaluation


def summary(w_hat, w_true) -> dict:
    w_hat, w_true = np.asarray(w_hat), np.asarray(w_true)
    err = np.asarray(gmse(w_hat, w_true))
    half = 1.96 * err.std(ddof=1) / np.sqrt(err.size) if err.size > 1 else 0.0
    return {
        "gmse": float(err.mean()),
        "gmse_ci95": float(half),
        "gmse_rescaled": float(np.mean(gmse(w_hat, w_true, rescale=True))),
        "f1": float(np.mean([edge_f1(a, b) for a, b in zip(w_hat, w_true, strict=True)])),
        "auc": float(np.mean([edge_auc(a, b) for a, b in zip(w_hat, w_true, strict=True)])),
    }


def run_family(family: str, args) -> dict:
    t0 = time.perf_counter()
    seed = SEEDS[family] + args.seed
    kw = dict(n=args.nodes, num_signals=args.signals)
    z_tr, w_tr = synthetic_dataset(family, args.train, seed=seed, **kw)
    z_te, w_te = synthetic_dataset(family, args.test, seed=seed + 1, **kw)
    z_tr, w_tr, z_te, w_te = map(jnp.asarray, (z_tr, w_tr, z_te, w_te))
    fixed, converged = make_solvers(args.layers, 2000 if args.smoke else 20000)
    tune = slice(0, min(args.tune, args.train))

    a_fix, b_fix, _, n_grid = grid_search(fixed, z_tr[tune], w_tr[tune], args.smoke)
    a_conv, b_conv, _, _ = grid_search(
        lambda z, a, b: converged(z, a, b)[0], z_tr[tune], w_tr[tune], args.smoke
    )
    theta = tuple(jnp.log(p) for p in init_l2g_params(args.nodes, args.layers, a_fix, b_fix))
    rng = np.random.default_rng(args.seed)
    theta, curve = train(theta, z_tr, w_tr, args, rng)
    trained = jax.jit(jax.vmap(lambda zz, p: l2g_unrolled(zz, p), in_axes=(0, None)))

    w_fix = fixed(z_te, a_fix, b_fix)
    w_conv, info = converged(z_te, a_conv, b_conv)
    w_net = trained(z_te, to_params(theta))
    return {
        "family": family,
        "alpha_beta_fixed": [a_fix, b_fix],
        "alpha_beta_converged": [a_conv, b_conv],
        "grid_points": n_grid,
        "converged_iterations_max": int(info.iterations.max()),
        "converged_all": bool(info.converged.all()),
        "untrained_fixed": summary(w_fix, w_te),
        "untrained_converged": summary(w_conv, w_te),
        "trained": summary(w_net, w_te),
        "train_curve": curve,
        "learned": {k: np.asarray(v).tolist() for k, v in to_params(theta)._asdict().items()},
        "seconds": time.perf_counter() - t0,
        "_example": (np.asarray(w_te[0]), np.asarray(w_fix[0]), np.asarray(w_conv[0]),
                     np.asarray(w_net[0])),
    }  # fmt: skip


def figure(res: dict, layers: int, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mats = [np.asarray(to_matrix(jnp.asarray(w))) for w in res["_example"]]
    titles = [
        "true W*",
        f"untrained, {layers} iterations",
        "untrained, converged",
        f"trained unrolled, {layers} layers",
    ]
    vmax = max(m.max() for m in mats)
    fig, axes = plt.subplots(1, 5, figsize=(21, 4), layout="constrained")
    for ax, m, title, w in zip(axes, mats, titles, res["_example"], strict=False):
        im = ax.imshow(m, cmap="viridis", vmin=0, vmax=vmax)
        err = float(gmse(w, res["_example"][0]))
        ax.set_title(title if title == "true W*" else f"{title}\nGMSE {err:.3f}", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=list(axes[:4]), fraction=0.012, pad=0.01)
    ax = axes[4]
    ax.semilogy(res["train_curve"], lw=0.8, label="trained (batch GMSE)")
    ax.axhline(res["untrained_fixed"]["gmse"], color="C1", ls="--", label="untrained, fixed (test)")
    ax.axhline(
        res["untrained_converged"]["gmse"], color="C2", ls=":", label="untrained, conv. (test)"
    )
    ax.axhline(res["trained"]["gmse"], color="C3", label="trained (test)")
    ax.set_xlabel("Adam step")
    ax.set_title(f"{res['family']} graphs: GMSE", fontsize=10)
    ax.legend(fontsize=8, loc="center right")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> dict:
    args = parse(argv)
    families = [f.strip().upper() for f in args.families.split(",") if f.strip()]
    bad = [f for f in families if f not in SEEDS]
    if bad:
        raise SystemExit(f"--families: unknown {bad}; choose from ER, BA, RG.")
    os.makedirs(args.out, exist_ok=True)
    results = []
    for family in families:
        res = run_family(family, args)
        results.append(res)
        print(f"{family}: done in {res['seconds']:.1f} s", flush=True)

    head = f"{'family':6} {'method':34} {'GMSE':>16} {'GMSE resc.':>10} {'F1':>6} {'AUC':>6}"
    print(
        f"\nTest set: {args.test} graphs of {args.nodes} nodes per family, {args.signals} signals"
    )
    print(head)
    print("-" * len(head))
    for res in results:
        rows = [
            (
                f"untrained {args.layers} it (a={res['alpha_beta_fixed'][0]:.3g},"
                f"b={res['alpha_beta_fixed'][1]:.3g})",
                res["untrained_fixed"],
            ),
            (
                f"untrained conv (a={res['alpha_beta_converged'][0]:.3g},"
                f"b={res['alpha_beta_converged'][1]:.3g})",
                res["untrained_converged"],
            ),
            (f"trained unrolled, {args.layers} layers", res["trained"]),
        ]
        for name, s in rows:
            g = f"{s['gmse']:.4f} ± {s['gmse_ci95']:.4f}"
            print(
                f"{res['family']:6} {name:34} {g:>16} {s['gmse_rescaled']:>10.4f} "
                f"{s['f1']:>6.3f} {s['auc']:>6.3f}"
            )
        ratio = res["trained"]["gmse"] / res["untrained_fixed"]["gmse"]
        print(
            f"{res['family']:6} trained / untrained-{args.layers}-it GMSE = {ratio:.3f}; "
            f"trained / untrained-converged = "
            f"{res['trained']['gmse'] / res['untrained_converged']['gmse']:.3f}"
        )

    first = next((r for r in results if r["family"] == "BA"), results[0])
    png = os.path.join(args.out, "l2g_learn.png")
    figure(first, args.layers, png)
    record = {
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "results": [{k: v for k, v in r.items() if not k.startswith("_")} for r in results],
    }
    path = os.path.join(args.out, "l2g_learn.json")
    with open(path, "w") as fh:
        json.dump(record, fh, indent=1)
    print(f"wrote {png} and {path}")
    return record


if __name__ == "__main__":
    main()
