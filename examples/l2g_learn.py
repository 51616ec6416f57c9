"""Train the unrolled L2G network and L2G-VAE on random graphs; compare with the plain solver.

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
   ``--layers``-iteration solver, so that training starts from the baseline ("Unrolling");
4. trains L2G-VAE (:func:`glrjax.l2g_vae.l2g_vae`: the same layers with the TopoDiffVAE
   block in the last one) end-to-end on the paper's objective, starting from the Unrolling
   network after half of ``--steps`` and running the other half (both get ``--steps`` Adam
   steps in all; ``--vae-lr`` is the VAE's learning rate, ``--vae-steps 0`` skips it);
5. reports test GMSE = ‖ŵ − w*‖²/‖w*‖² (mean ± 95% interval; ŵ as it is, the paper's
   convention, and after the best scalar rescaling of ŵ), edge F1 (ŵ > 10⁻⁴) and edge
   AUC, prints a table, writes ``l2g_learn.json`` and ``l2g_learn.png`` (true, classical,
   Unrolling and L2G-VAE adjacency of a test graph, the training curves and the metric
   table) to ``--out``.

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
from glrjax.l2g_vae import (  # noqa: E402
    L2GVAEParams,
    init_vae_params,
    l2g_vae,
    l2g_vae_loss,
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
    p.add_argument("--vae-lr", type=float, default=1e-3, help="Adam step of the VAE block")
    p.add_argument(
        "--vae-steps", type=int, default=None, help="L2G-VAE steps (default --steps/2; 0: skip)"
    )
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


def to_vae_params(theta):
    return L2GVAEParams(to_params(theta[0]), theta[1])


def unrolling_loss(theta, z, w, key):
    p = to_params(theta)
    return jnp.mean(gmse(jax.vmap(lambda zz: l2g_unrolled(zz, p))(z), w))


def vae_loss(theta, z, w, key):
    return l2g_vae_loss(to_vae_params(theta), z, w, key)  # GMSE + reconstruction + KL


def train(theta, z, w, args, rng, steps=None, loss=unrolling_loss, opt=None, label="Unrolling"):
    from rich.progress import track

    steps = args.steps if steps is None else steps
    opt = optax.adam(args.lr) if opt is None else opt
    state = opt.init(theta)

    @jax.jit
    def update(theta, state, z, w, key):
        val, g = jax.value_and_grad(loss)(theta, z, w, key)
        upd, state = opt.update(g, state, theta)
        return optax.apply_updates(theta, upd), state, val

    curve = []
    key = jax.random.key(args.seed)
    for i in track(range(steps), description=f"training {label}", transient=True):
        idx = rng.choice(z.shape[0], min(args.batch, z.shape[0]), replace=False)
        theta, state, val = update(theta, state, z[idx], w[idx], jax.random.fold_in(key, i))
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
    vae_steps = args.steps // 2 if args.vae_steps is None else args.vae_steps
    first = args.steps - vae_steps if vae_steps else args.steps
    theta_half, curve = train(theta, z_tr, w_tr, args, rng, steps=first)
    theta, curve2 = train(theta_half, z_tr, w_tr, args, rng, steps=args.steps - first)
    trained = jax.jit(jax.vmap(lambda zz, p: l2g_unrolled(zz, p), in_axes=(0, None)))
    w_fix = fixed(z_te, a_fix, b_fix)
    w_conv, info = converged(z_te, a_conv, b_conv)
    w_net = trained(z_te, to_params(theta))
    out = {}
    if vae_steps:
        vae0 = init_vae_params(jax.random.key(args.seed + 1), args.nodes)
        opt = optax.multi_transform(
            {"u": optax.adam(args.lr), "v": optax.adam(args.vae_lr)}, ("u", "v")
        )
        theta_v, curve_v = train(
            (theta_half, vae0), z_tr, w_tr, args, rng, vae_steps, vae_loss, opt, "L2G-VAE"
        )
        run_vae = jax.jit(jax.vmap(lambda zz, p: l2g_vae(zz, p).w, in_axes=(0, None)))
        w_vae = run_vae(z_te, to_vae_params(theta_v))
        out = {"l2g_vae": summary(w_vae, w_te), "l2g_vae_curve": curve + curve_v}
    curve = curve + curve2
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
        **out,
        "seconds": time.perf_counter() - t0,
        "_example": (np.asarray(w_te[0]), np.asarray(w_fix[0]), np.asarray(w_conv[0]),
                     np.asarray(w_net[0])) + ((np.asarray(w_vae[0]),) if out else ()),
    }  # fmt: skip


def table_rows(res: dict, layers: int) -> list[tuple[str, dict]]:
    rows = [
        (
            f"untrained {layers} it (a={res['alpha_beta_fixed'][0]:.3g},"
            f"b={res['alpha_beta_fixed'][1]:.3g})",
            res["untrained_fixed"],
        ),
        (
            f"classical conv (a={res['alpha_beta_converged'][0]:.3g},"
            f"b={res['alpha_beta_converged'][1]:.3g})",
            res["untrained_converged"],
        ),
        (f"Unrolling, {layers} layers", res["trained"]),
    ]
    if "l2g_vae" in res:
        rows.append((f"L2G-VAE, {layers} layers", res["l2g_vae"]))
    return rows


def figure(res: dict, layers: int, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # true / classical (converged) / Unrolling / L2G-VAE adjacency of one test graph
    ws = [res["_example"][i] for i in (0, 2, 3, 4) if i < len(res["_example"])]
    titles = ["true W*", "classical, converged", f"Unrolling, {layers} layers",
              f"L2G-VAE, {layers} layers"][: len(ws)]  # fmt: skip
    mats = [np.asarray(to_matrix(jnp.asarray(w))) for w in ws]
    vmax = max(m.max() for m in mats)
    fig, axes = plt.subplots(1, len(ws) + 2, figsize=(5 * (len(ws) + 2), 4.4), layout="constrained")
    for ax, m, title, w in zip(axes, mats, titles, ws, strict=False):
        im = ax.imshow(m, cmap="viridis", vmin=0, vmax=vmax)
        err = float(gmse(w, ws[0]))
        ax.set_title(title if title == "true W*" else f"{title}\nGMSE {err:.3f}", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=list(axes[: len(ws)]), fraction=0.012, pad=0.01)
    ax = axes[len(ws)]
    ax.semilogy(res["train_curve"], lw=0.8, label="Unrolling (batch GMSE)")
    if "l2g_vae_curve" in res:
        ax.semilogy(res["l2g_vae_curve"], lw=0.8, label="L2G-VAE (batch loss)")
    ax.axhline(
        res["untrained_converged"]["gmse"], color="C2", ls=":", label="classical, conv. (test)"
    )
    ax.axhline(res["trained"]["gmse"], color="C3", label="Unrolling (test)")
    if "l2g_vae" in res:
        ax.axhline(res["l2g_vae"]["gmse"], color="C4", ls="--", label="L2G-VAE (test)")
    ax.set_xlabel("Adam step")
    ax.set_title(f"{res['family']} graphs: training", fontsize=10)
    ax.legend(fontsize=8, loc="upper right")
    ax = axes[-1]  # the metric table
    ax.axis("off")
    cells = [[name, f"{m['gmse']:.4f}", f"{m['f1']:.3f}", f"{m['auc']:.3f}"]
             for name, m in table_rows(res, layers)]  # fmt: skip
    tab = ax.table(
        cellText=cells, colLabels=["method", "GMSE", "F1", "AUC"], loc="center",
        colWidths=[0.55, 0.15, 0.15, 0.15],
    )  # fmt: skip
    tab.auto_set_font_size(False)
    tab.set_fontsize(8)
    tab.scale(1.0, 1.6)
    ax.set_title(f"{res['family']}: test metrics", fontsize=10)
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
        rows = table_rows(res, args.layers)
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
        if "l2g_vae" in res:
            print(
                f"{res['family']:6} L2G-VAE / Unrolling GMSE = "
                f"{res['l2g_vae']['gmse'] / res['trained']['gmse']:.3f}"
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
