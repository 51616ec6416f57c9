"""Compress the hidden layer of a small MLP by group-ℓ2,1 linear reconstruction (seed 003).

A 64 → H → 10 ReLU network is trained on scikit-learn's digits with optax. Its last
layer y = W₂a + b₂ reads the hidden activations a; choosing which inputs of that layer
to keep is choosing which hidden neurons to keep. For each λ of a path (warm-started),
``glrjax.linear_reconstruction`` finds M minimising E½‖y − M[a; 1]‖² + λ Σ_j ‖M_:j‖
(bias column unpenalized); the zero columns of M are neurons to remove: their rows of
W₁, b₁ are dropped (the "collapse" of the previous layer) and the last layer becomes the
kept columns of M — as is, or debiased (least squares on the kept columns). The script
prints test accuracy against kept neurons and saves the Pareto frontier.

    python examples/compress_mlp.py [--smoke] [--out examples/out]
"""

from __future__ import annotations

import argparse
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

import glrjax

jax.config.update("jax_enable_x64", True)


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny, fast run (CI)")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out"))
    p.add_argument("--hidden", type=int, default=128, help="hidden neurons H")
    p.add_argument("--steps", type=int, default=600, help="training steps (full batch)")
    p.add_argument("--lambdas", type=int, default=24, help="points on the λ path")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.smoke or os.environ.get("GLRJAX_SMOKE", "") not in ("", "0"):
        args.smoke, args.hidden, args.steps, args.lambdas = True, 32, 150, 6
    return args


def load_digits(seed):
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    idx = np.random.default_rng(seed).permutation(len(x))
    split = int(0.7 * len(x))
    train, test = idx[:split], idx[split:]
    return (x[train], y[train]), (x[test], y[test])


def init(key, hidden):
    k1, k2 = jax.random.split(key)
    return {
        "w1": jax.random.normal(k1, (hidden, 64), jnp.float32) * jnp.sqrt(2.0 / 64),
        "b1": jnp.zeros(hidden, jnp.float32),
        "w2": jax.random.normal(k2, (10, hidden), jnp.float32) * jnp.sqrt(1.0 / hidden),
        "b2": jnp.zeros(10, jnp.float32),
    }


def hidden(params, x):
    return jax.nn.relu(x @ params["w1"].T + params["b1"])


def logits(params, x):
    return hidden(params, x) @ params["w2"].T + params["b2"]


def accuracy(params, x, y):
    return float(jnp.mean(jnp.argmax(logits(params, x), axis=1) == y))


def train(params, x, y, steps):
    opt = optax.adam(3e-3)
    state = opt.init(params)

    def loss(p):
        return optax.softmax_cross_entropy_with_integer_labels(logits(p, x), y).mean()

    @jax.jit
    def step(p, s):
        g = jax.grad(loss)(p)
        u, s = opt.update(g, s)
        return optax.apply_updates(p, u), s

    for _ in range(steps):
        params, state = step(params, state)
    return params


def compress(params, m, keep):
    """The network with hidden neurons ``keep`` only; last layer from M = [W₂' b₂']."""
    keep_h = np.asarray(keep[:-1])
    m = np.asarray(m, np.float32)
    return {
        "w1": params["w1"][keep_h],
        "b1": params["b1"][keep_h],
        "w2": jnp.asarray(m[:, :-1][:, keep_h]),
        "b2": jnp.asarray(m[:, -1]),
    }


def main():
    args = parse()
    os.makedirs(args.out, exist_ok=True)
    (x_tr, y_tr), (x_te, y_te) = load_digits(args.seed)
    params = train(init(jax.random.key(args.seed), args.hidden), x_tr, y_tr, args.steps)
    base = accuracy(params, x_te, y_te)
    print(f"trained 64-{args.hidden}-10 MLP: test accuracy {base:.4f}")

    # Correlations of the last layer's inputs [a; 1] and outputs y = W₂a + b₂ (float64),
    # accumulated over batches of the training set.
    p64 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), params)

    def features(xb):
        a = hidden(p64, xb.astype(jnp.float64))
        return a, a @ p64["w2"].T + p64["b2"]

    rxx, ryx = glrjax.correlations(features, jnp.asarray(x_tr), batch_size=256, bias=True)
    # Dead ReLUs give zero rows/columns; Rxx stays PSD and the solvers handle it.
    lmax = float(glrjax.lambda_max(rxx, ryx, bias=True))
    lams = lmax * np.geomspace(0.5, 1e-4, args.lambdas)

    @jax.jit
    def solve(lam, m0):
        return glrjax.linear_reconstruction(rxx, ryx, lam, bias=True, M0=m0, tol=1e-7, maxiter=5000)

    from rich.progress import track

    rows, m = [], jnp.zeros_like(ryx)
    for lam in track(lams, description="λ path (warm starts)"):
        m, info = solve(lam, m)  # warm start from the previous λ
        keep = glrjax.support(m, bias=True)
        debiased = glrjax.debias(rxx, ryx, keep, bias=True)
        rows.append(
            {
                "lam": float(lam),
                "kept": int(keep[:-1].sum()),
                "acc": accuracy(compress(params, m, keep), x_te, y_te),
                "acc_debiased": accuracy(compress(params, debiased, keep), x_te, y_te),
                "iterations": int(info.iterations),
                "converged": bool(info.converged),
            }
        )

    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"hidden-layer compression (full network: {args.hidden} neurons, {base:.4f})"
    )
    for c in ["λ/λmax", "kept", "acc", "acc debiased", "iterations"]:
        table.add_column(c, justify="right")
    for r in rows:
        table.add_row(
            f"{r['lam'] / lmax:.2e}",
            str(r["kept"]),
            f"{r['acc']:.4f}",
            f"{r['acc_debiased']:.4f}",
            str(r["iterations"]),
        )
    Console().print(table)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    kept = [r["kept"] for r in rows]
    ax.plot(kept, [r["acc_debiased"] for r in rows], "o-", label="group-ℓ2,1 + debias")
    ax.plot(kept, [r["acc"] for r in rows], "s--", alpha=0.7, label="group-ℓ2,1 (shrunk)")
    ax.axhline(base, color="k", lw=0.8, ls=":", label=f"full network ({args.hidden} neurons)")
    ax.set_xlabel("hidden neurons kept")
    ax.set_ylabel("test accuracy")
    ax.set_title("digits MLP: accuracy vs kept neurons (λ path)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    path = os.path.join(args.out, "compress_mlp_pareto.png")
    fig.savefig(path, dpi=120)
    with open(os.path.join(args.out, "compress_mlp.json"), "w") as fh:
        json.dump({"hidden": args.hidden, "base_accuracy": base, "path": rows}, fh, indent=2)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
