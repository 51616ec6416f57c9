"""Train a graph neural network denoiser while cutting the edges of its graph (seed 000, part 2).

One learned graph on 32×32 pixels (the radius-2 window graph, 11,346 candidate edges,
weights starting at 1) is shared by every image. The network is three GCN layers
(:func:`glrjax.gnn.gcn_layer`, 1 → 16 → 16 → 1 channels, tanh) that predict a correction
r, followed by a GLR layer x̂ = (I + μL)⁻¹(y + r) (:func:`glrjax.glr_filter`, implicit
gradient) on the same graph. After every Adam step a proximal ℓ0 step on the edge weights
(:func:`glrjax.gnn.edge_prox` with :func:`glrjax.prox.nonneg_l0`) cuts every weight below
√(2λ) to exactly 0. The same network is trained on the full graph for comparison (every
edge kept: its weights are projected onto w ≥ 1e-3).

Data: grey 32×32 patches of scikit-image's astronaut, coffee, chelsea and rocket (training)
and of scikit-learn's china and flower (held out), Gaussian noise σ = 0.1, batch 64.

    python examples/gnn_edge_cutting.py [--smoke] [--out examples/out] [--epochs 8]

Prints loss, held-out PSNR and edges left per epoch; writes gnn_edge_cutting.json and
learned_graph_epoch_<e>.png (the edge weights drawn on the grid) to ``--out``, and the
XLA memory of one training step beside the seed's 12,022 MB (PyTorch, batch 64).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import matplotlib

matplotlib.use("Agg")
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from interpolate import load_images, patches, psnr, to_grey  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import Progress  # noqa: E402
from rich.table import Table  # noqa: E402

import glrjax  # noqa: E402
from glrjax import gnn  # noqa: E402

SEED_MB = 12022  # the seed's training-step memory at batch 64 (RTX 3090, PyTorch)
FLOOR = 1e-3  # the full-graph run's lower bound on the weights


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny, fast run (CI)")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out"))
    p.add_argument("--epochs", type=int, default=None, help="epochs (8; smoke 2)")
    p.add_argument("--lam", type=float, default=0.02, help="ℓ0 weight λ: cut below √(2λ)")
    p.add_argument("--sigma", type=float, default=0.1, help="noise σ")
    p.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate")
    args = p.parse_args()
    args.smoke = args.smoke or os.environ.get("GLRJAX_SMOKE", "") not in ("", "0")
    args.epochs = args.epochs or (2 if args.smoke else 8)
    return args


def init(key, graph, hidden=16):
    k1, k2, k3 = jax.random.split(key, 3)
    return {
        "w": jnp.asarray(graph.valid_mask(), jnp.float32),  # every candidate edge at 1
        "gcn": [
            gnn.gcn_init(k1, 1, hidden),
            gnn.gcn_init(k2, hidden, hidden),
            gnn.gcn_init(k3, hidden, 1)._replace(weight=jnp.zeros((hidden, 1))),
        ],
        "log_mu": jnp.log(jnp.asarray(0.3, jnp.float32)),
    }


def denoise(params, graph, y):
    """y (B, 1, H, W) → x̂: GCN correction, then the GLR layer on the learned graph."""
    g = graph.with_weights(params["w"])
    h = y
    for i, p in enumerate(params["gcn"]):
        h = gnn.gcn_layer(p, g, h)
        if i < len(params["gcn"]) - 1:
            h = jnp.tanh(h)
    mu = jnp.exp(params["log_mu"])
    x, _ = glrjax.glr_filter((y + h)[:, 0], g, mu, tol=1e-5, maxiter=50)  # Implicit()
    return x[:, None]


def make_step(graph, lam, lr, cut: bool):
    adam = optax.adam(lr)
    mask = {"w": True, "gcn": False, "log_mu": False}
    # The full-graph run keeps every edge: its weights are projected onto w ≥ FLOOR.
    if cut:
        prox = gnn.edge_prox(glrjax.prox.nonneg_l0, lam)
    else:
        prox = gnn.edge_prox(lambda w, floor: jnp.maximum(w, floor), FLOOR)
    tx = optax.chain(adam, optax.masked(prox, mask))

    def step(params, state, clean, noise):
        def loss(p):
            return jnp.mean((denoise(p, graph, clean + noise) - clean) ** 2)

        value, grads = jax.value_and_grad(loss)(params)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, value

    return tx, jax.jit(step)


def draw_graph(graph, weights, path, title):
    """Each edge with w > 0 as a segment between its pixels, coloured by w (viridis)."""
    src, dst = (np.asarray(a).ravel() for a in graph.edge_index())
    w = np.asarray(weights).ravel()
    keep = np.asarray(graph.valid_mask()).ravel() & (w > 0)
    width = graph.node_shape[1]
    ys, xs = np.divmod(np.arange(graph.num_nodes), width)
    segs = np.stack([np.stack([xs[src], ys[src]], -1), np.stack([xs[dst], ys[dst]], -1)], 1)[keep]
    shade = w[keep] / max(w[keep].max(), 1e-12) if keep.any() else w[keep]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.add_collection(LineCollection(segs, colors=plt.cm.viridis(shade), linewidths=0.5))
    ax.set_xlim(-1, width)
    ax.set_ylim(graph.node_shape[0], -1)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main():
    args = parse()
    os.makedirs(args.out, exist_ok=True)
    console = Console()
    size, batch, n_train, n_test = (8, 4, 8, 4) if args.smoke else (32, 64, 2048, 64)
    train_imgs, test_imgs = load_images()
    tr = to_grey(patches(train_imgs, n_train, size, np.random.default_rng(0)))
    te = to_grey(patches(test_imgs, n_test, size, np.random.default_rng(1)))
    te_noisy = te + args.sigma * np.random.default_rng(2).standard_normal(te.shape).astype(
        np.float32
    )
    graph = glrjax.GridGraph.window(size, size, radius=2, dtype=jnp.float32)
    total = int(glrjax.num_edges(graph))
    steps_per_epoch = n_train // batch
    evaluate = jax.jit(lambda p, y: denoise(p, graph, y))  # compiled once, for both runs
    record = {
        "size": size,
        "batch": batch,
        "lam": args.lam,
        "lr": args.lr,
        "sigma": args.sigma,
        "n_train_patches": n_train,
        "n_test_patches": n_test,
        "runs": {},
    }
    with Progress(console=console) as progress:
        for name, cut in (("edge cutting", True), ("full graph", False)):
            params = init(jax.random.key(0), graph)
            tx, step = make_step(graph, args.lam, args.lr, cut)
            state = tx.init(params)
            clean0 = jnp.asarray(tr[:batch])
            mem = step.lower(params, state, clean0, clean0).compile().memory_analysis()
            temp_mb = getattr(mem, "temp_size_in_bytes", 0) / 2**20 if mem else float("nan")
            rng = np.random.default_rng(3)
            rows = []
            task = progress.add_task(name, total=args.epochs * steps_per_epoch)
            t0 = time.perf_counter()
            for epoch in range(1, args.epochs + 1):
                order = rng.permutation(n_train)
                losses = []
                for s in range(steps_per_epoch):
                    clean = tr[order[s * batch : (s + 1) * batch]]
                    noise = args.sigma * rng.standard_normal(clean.shape).astype(np.float32)
                    params, state, value = step(
                        params, state, jnp.asarray(clean), jnp.asarray(noise)
                    )
                    losses.append(float(value))
                    progress.advance(task)
                x = evaluate(params, jnp.asarray(te_noisy))
                edges = int(glrjax.num_edges(graph.with_weights(params["w"])))
                rows.append(
                    {
                        "epoch": epoch,
                        "loss": float(np.mean(losses)),
                        "psnr": psnr(x, te),
                        "edges": edges,
                        "mu": float(jnp.exp(params["log_mu"])),
                        "seconds": time.perf_counter() - t0,
                    }
                )
                if cut:
                    draw_graph(
                        graph,
                        params["w"],
                        os.path.join(args.out, f"learned_graph_epoch_{epoch}.png"),
                        f"epoch {epoch}: {edges:,} / {total:,} edges",
                    )
            record["runs"][name] = {"temp_mb": temp_mb, "epochs": rows}

    record["noisy_psnr"] = psnr(te_noisy, te)
    for name, run in record["runs"].items():
        table = Table(title=f"{name}: held-out PSNR (noisy input {record['noisy_psnr']:.2f} dB)")
        for col in ("epoch", "loss", "PSNR dB", "edges left", "μ", "s"):
            table.add_column(col, justify="right")
        for r in run["epochs"]:
            table.add_row(
                str(r["epoch"]),
                f"{r['loss']:.3g}",
                f"{r['psnr']:.2f}",
                f"{r['edges']:,} / {total:,}",
                f"{r['mu']:.3g}",
                f"{r['seconds']:.0f}",
            )
        console.print(table)
        console.print(
            f"{name}: XLA temp memory of one training step (batch {batch}): "
            f"{run['temp_mb']:.1f} MB (seed: {SEED_MB:,} MB, ratio {run['temp_mb'] / SEED_MB:.4f})"
        )
    path = os.path.join(args.out, "gnn_edge_cutting.json")
    with open(path, "w") as fh:
        json.dump(record, fh, indent=2)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
