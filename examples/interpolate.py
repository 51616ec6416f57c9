"""Demosaicking and 2× interpolation with the unrolled graph networks uGLR and uGTV.

Trains, on patches of images that ship inside packages, five interpolators with the same
patches, batch and number of Adam steps, and reports held-out PSNR against parameter count:

- bilinear interpolation (no parameters);
- uGLR and uGTV (:mod:`glrjax.networks`): L layers, each learning a graph from the current
  estimate with a shallow CNN and solving one GLR (CG with learned α/β) or GTV
  (primal-dual) problem;
- a residual CNN with about uGLR's parameter count, and one with ~10× as many.

Task 1 is RGGB Bayer demosaicking (RGB); task 2 is 2× upsampling by pixel filling (grey,
every other row and column observed). Training images: scikit-image's astronaut, coffee,
chelsea and rocket; test images: scikit-learn's china and flower (split by image).
Covariate shift: every model is trained on noiseless observations and also tested with
Gaussian noise added to the observed pixels; the table reports each model's PSNR drop.

    python examples/interpolate.py [--smoke] [--out examples/out] [--steps 1000]

Writes interpolate.json, interpolate.png (input / bilinear / uGLR / uGTV / CNN / ground
truth with a zoom) and interpolate_params.png (PSNR vs parameter count) to ``--out``.
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
from rich.console import Console  # noqa: E402
from rich.progress import Progress  # noqa: E402
from rich.table import Table  # noqa: E402

from glrjax.networks import (  # noqa: E402
    UGLRConfig,
    UGTVConfig,
    bilinear_interpolate,
    cnn_apply,
    cnn_init,
    num_params,
    uglr,
    uglr_init,
    ugtv,
    ugtv_init,
)

BORDER = 2  # PSNR ignores this many pixels at each patch border (bilinear's edge effects)


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny, fast run (CI)")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out"))
    p.add_argument("--steps", type=int, default=None, help="Adam steps per model (1000; smoke 3)")
    p.add_argument("--patch", type=int, default=None, help="training patch side (24; smoke 12)")
    p.add_argument("--layers", type=int, default=None, help="unrolled layers L (4; smoke 2)")
    p.add_argument("--noise", type=float, default=0.05, help="test noise σ for covariate shift")
    args = p.parse_args()
    args.smoke = args.smoke or os.environ.get("GLRJAX_SMOKE", "") not in ("", "0")
    args.steps = args.steps or (3 if args.smoke else 1000)
    args.patch = args.patch or (12 if args.smoke else 24)
    args.layers = args.layers or (2 if args.smoke else 4)
    return args


# ----------------------------------------------------------------------------- data


def load_images():
    """(train, test) lists of float32 RGB images in [0, 1], downscaled 2× (antialiased)."""
    from skimage import data, transform
    from sklearn.datasets import load_sample_images

    def prep(img):
        img = np.asarray(img, np.float64)[..., :3] / 255.0
        return transform.rescale(img, 0.5, channel_axis=-1, anti_aliasing=True).astype(np.float32)

    train = [prep(getattr(data, n)()) for n in ("astronaut", "coffee", "chelsea", "rocket")]
    test = [prep(img) for img in load_sample_images().images]  # china, flower
    return train, test


def patches(images, n, size, rng):
    """``n`` random ``size × size`` crops, as (n, 3, size, size)."""
    out = []
    for i in range(n):
        img = images[i % len(images)]
        r = rng.integers(0, img.shape[0] - size)
        c = rng.integers(0, img.shape[1] - size)
        out.append(img[r : r + size, c : c + size].transpose(2, 0, 1))
    return np.stack(out)


def bayer_mask(shape):
    """RGGB: R at (even, even), G at (even, odd) and (odd, even), B at (odd, odd)."""
    *lead, _, h, w = shape
    m = np.zeros((3, h, w), bool)
    m[0, ::2, ::2] = True
    m[1, ::2, 1::2] = True
    m[1, 1::2, ::2] = True
    m[2, 1::2, 1::2] = True
    return np.broadcast_to(m, shape)


def upsample_mask(shape):
    """2× pixel filling: every other row and column observed."""
    m = np.zeros(shape[-2:], bool)
    m[::2, ::2] = True
    return np.broadcast_to(m, shape)


def to_grey(x):
    return (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]


# ----------------------------------------------------------------------------- models


def residual_cnn_init(key, channels, hidden, depth):
    """He init, last layer zero: training starts from bilinear interpolation."""
    params = cnn_init(key, (channels,) + (hidden,) * (depth - 1) + (channels,))
    last = {"w": jnp.zeros_like(params[-1]["w"]), "b": params[-1]["b"]}
    return params[:-1] + (last,)


def residual_cnn(params, y, mask):
    """x = bilinear + CNN(bilinear), observed pixels reset."""
    b = bilinear_interpolate(y, mask)
    return jnp.where(mask, y, b + cnn_apply(params, b))


def make_models(channels, layers, key):
    """name -> (params, apply(params, y, mask) -> x, learning rate)."""
    k1, k2, k3, k4 = jax.random.split(key, 4)
    gcfg = UGLRConfig(
        layers=layers, channels=channels, hidden=6, features=3, maxiter=10, tol=1e-6, learn_cg=True
    )
    tcfg = UGTVConfig(layers=layers, channels=channels, hidden=6, features=3, maxiter=15)
    models = {
        "uGLR": (uglr_init(k1, gcfg), lambda p, y, m: uglr(p, y, m, gcfg)[0], 1e-2),
        "uGTV": (ugtv_init(k2, tcfg), lambda p, y, m: ugtv(p, y, m, tcfg)[0], 1e-2),
    }
    target = num_params(models["uGLR"][0])
    # hidden width h of a 4-layer CNN: ≈ 18h² + (18C + 2)h parameters
    h_same = max(
        2, int(round((-(18 * channels + 2) + np.sqrt((18 * channels + 2) ** 2 + 72 * target)) / 36))
    )
    # 6-layer CNN: ≈ 36h² + (18C + 4)h, rounded up so it has at least 10× uGLR's parameters
    t10 = 10 * target
    h_big = max(
        2, int(np.ceil((-(18 * channels + 4) + np.sqrt((18 * channels + 4) ** 2 + 144 * t10)) / 72))
    )
    models["CNN"] = (residual_cnn_init(k3, channels, h_same, 4), residual_cnn, 2e-3)
    models["CNN 10x"] = (residual_cnn_init(k4, channels, h_big, 6), residual_cnn, 1e-3)
    return models


def psnr(x, clean):
    b = BORDER
    d = np.asarray(x, np.float64)[..., b:-b, b:-b] - np.asarray(clean, np.float64)[..., b:-b, b:-b]
    return float(10 * np.log10(1.0 / np.mean(d**2)))


def train(params, apply, lr, data, mask, steps, batch, progress, task):
    # a step whose gradient is not finite is skipped and counted (reported in the JSON)
    opt = optax.apply_if_finite(optax.adam(lr), max_consecutive_errors=1000)
    state = opt.init(params)
    mask_b = jnp.asarray(mask[:batch])

    @jax.jit
    def step(params, state, clean):
        def loss(p):
            x = apply(p, clean * mask_b, mask_b)
            return jnp.mean((x - clean) ** 2)

        value, grads = jax.value_and_grad(loss)(params)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, value

    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    losses = []
    for _ in range(steps):
        idx = rng.choice(len(data), batch, replace=False)
        params, state, value = step(params, state, jnp.asarray(data[idx]))
        losses.append(float(value))
        progress.advance(task)
    skipped = int(state.total_notfinite)
    return params, losses, time.perf_counter() - t0, skipped


def evaluate(apply, params, clean, mask, sigma, seed=0):
    noise = sigma * np.random.default_rng(seed).standard_normal(clean.shape).astype(np.float32)
    y = jnp.asarray((clean + noise) * mask)
    m = jnp.asarray(mask)
    x = jax.jit(apply)(params, y, m)
    return x, psnr(x, clean)


# ----------------------------------------------------------------------------- main


def main():
    args = parse()
    os.makedirs(args.out, exist_ok=True)
    console = Console()
    rng = np.random.default_rng(0)
    train_imgs, test_imgs = load_images()
    n_train, n_test, test_size, batch = (8, 2, 16, 4) if args.smoke else (256, 16, 48, 8)
    tr = patches(train_imgs, n_train, args.patch, rng)
    te = patches(test_imgs, n_test, test_size, np.random.default_rng(1))
    tasks = {
        "demosaick": (tr, te, bayer_mask),
        "2x": (to_grey(tr), to_grey(te), upsample_mask),
    }
    record = {
        "steps": args.steps,
        "batch": batch,
        "patch": args.patch,
        "layers": args.layers,
        "test_noise": args.noise,
        "n_train_patches": n_train,
        "n_test_patches": n_test,
        "test_patch": test_size,
        "tasks": {},
    }
    figures = {}
    with Progress(console=console) as progress:
        for tname, (tr_c, te_c, mask_fn) in tasks.items():
            channels = tr_c.shape[1]
            models = make_models(channels, args.layers, jax.random.key(0))
            tmask, emask = mask_fn(tr_c.shape), mask_fn(te_c.shape)
            rows = {}
            bil = lambda p, y, m: bilinear_interpolate(y, m)  # noqa: E731
            x_bil, p0 = evaluate(bil, None, te_c, emask, 0.0)
            _, pn = evaluate(bil, None, te_c, emask, args.noise)
            rows["bilinear"] = {"params": 0, "psnr": p0, "psnr_noisy": pn, "train_s": 0.0}
            outputs = {"bilinear": x_bil}
            for name, (params, apply, lr) in models.items():
                task = progress.add_task(f"{tname} · {name}", total=args.steps)
                params, losses, secs, skipped = train(
                    params, apply, lr, tr_c, tmask, args.steps, batch, progress, task
                )
                x, p0 = evaluate(apply, params, te_c, emask, 0.0)
                _, pn = evaluate(apply, params, te_c, emask, args.noise)
                rows[name] = {
                    "params": num_params(params),
                    "psnr": p0,
                    "psnr_noisy": pn,
                    "train_s": secs,
                    "final_loss": losses[-1],
                    "skipped_nonfinite_steps": skipped,
                }
                if name in ("uGLR", "uGTV"):
                    rows[name]["mu"] = np.exp(np.asarray(params.log_mu)).tolist()
                outputs[name] = x
            for r in rows.values():
                r["drop"] = r["psnr"] - r["psnr_noisy"]
            record["tasks"][tname] = rows
            figures[tname] = (te_c, emask, outputs)

    for tname, rows in record["tasks"].items():
        table = Table(title=f"{tname}: held-out PSNR (china, flower; {n_test} patches)")
        for col in ("model", "params", "PSNR dB", f"PSNR σ={args.noise}", "drop dB", "train s"):
            table.add_column(col, justify="left" if col == "model" else "right")
        for name, r in rows.items():
            table.add_row(
                name,
                f"{r['params']:,}",
                f"{r['psnr']:.2f}",
                f"{r['psnr_noisy']:.2f}",
                f"{r['drop']:.2f}",
                f"{r['train_s']:.0f}",
            )
        console.print(table)

    _figure(figures, record, args.out)
    path = os.path.join(args.out, "interpolate.json")
    with open(path, "w") as fh:
        json.dump(record, fh, indent=2)
    print(f"wrote {path}")


def _figure(figures, record, out):
    names = ["input", "bilinear", "uGLR", "uGTV", "CNN", "ground truth"]
    fig, axes = plt.subplots(
        2 * len(figures), len(names), figsize=(2.3 * len(names), 4.8 * len(figures))
    )
    for t, (tname, (clean, mask, outputs)) in enumerate(figures.items()):
        gt = clean[0]
        imgs = [
            np.where(mask[0], gt, 0),
            outputs["bilinear"][0],
            outputs["uGLR"][0],
            outputs["uGTV"][0],
            outputs["CNN"][0],
            gt,
        ]
        s = gt.shape[-1]
        z = slice(s // 4, s // 4 + s // 3)
        for j, (name, img) in enumerate(zip(names, imgs, strict=True)):
            img = np.clip(np.asarray(img), 0, 1).transpose(1, 2, 0)
            cmap = "gray" if img.shape[-1] == 1 else None
            img = img[..., 0] if img.shape[-1] == 1 else img
            title = name
            if name in record["tasks"][tname]:
                title += f"\n{record['tasks'][tname][name]['psnr']:.1f} dB"
            axes[2 * t, j].imshow(img, cmap=cmap, vmin=0, vmax=1)
            axes[2 * t, j].set_title(f"{tname}: {title}", fontsize=8)
            axes[2 * t + 1, j].imshow(img[z, z], cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
            axes[2 * t + 1, j].set_title("zoom", fontsize=8)
        for ax in axes[2 * t : 2 * t + 2].ravel():
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "interpolate.png"), dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.6))
    for tname, rows in record["tasks"].items():
        for name, r in rows.items():
            if r["params"] == 0:
                ax.axhline(r["psnr"], ls=":", color="grey")
                continue
            ax.scatter(r["params"], r["psnr"], marker="o" if tname == "demosaick" else "s")
            ax.annotate(f"{name} ({tname})", (r["params"], r["psnr"]), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("held-out PSNR (dB)")
    ax.set_title("PSNR vs parameter count (dotted: bilinear)")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "interpolate_params.png"), dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
