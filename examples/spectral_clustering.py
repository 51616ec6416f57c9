"""Spectral clustering of RBF similarity graphs (seed 002's exercise): moons and circles.

The points of scikit-learn's ``make_moons`` and ``make_circles`` become the nodes of an
:class:`glrjax.EdgeGraph` with RBF weights w_ij = exp(−γ‖x_i − x_j‖²) (all pairs, or a
symmetrised k-nearest-neighbour graph with ``--neighbors``). Three clusterings are compared
by their adjusted Rand index (ARI) against the true labels:

- k-means on the raw 2-D points (``glrjax.spectral.kmeans``) — fails: the clusters are not
  convex;
- ``glrjax.spectral_clustering``: the leading eigenvectors of D^{-1/2} W D^{-1/2} by LOBPCG
  (matrix-free), rows normalised, then k-means in JAX;
- scikit-learn's ``SpectralClustering(affinity="precomputed")`` on the same W, the peer.

The same function clusters any glrjax graph: last, a :class:`glrjax.GridGraph` of scikit-learn's
``china.jpg`` sample image (grayscale, average-pooled) with intensity weights
(``GridGraph.gaussian``) is segmented into 4 regions, and its LOBPCG embedding is checked
against a dense ``eigh`` (largest principal angle between the two subspaces).

Prints a rich table (ARI, time, eigen-residuals) and saves spectral_clustering.png (the
three labelings per data set, and the segmentation) and spectral_clustering.json to ``--out``.

    python examples/spectral_clustering.py [--smoke] [--out examples/out] [--n 1000]
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
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from scipy.linalg import subspace_angles  # noqa: E402
from sklearn.cluster import SpectralClustering  # noqa: E402
from sklearn.datasets import load_sample_image, make_circles, make_moons  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402

import glrjax  # noqa: E402
from glrjax import spectral  # noqa: E402

GAMMA = 30.0  # RBF scale for both data sets (their coordinates are O(1))


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny, fast run (CI)")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out"))
    p.add_argument("--n", type=int, default=None, help="points per data set (1000; smoke 150)")
    p.add_argument("--gamma", type=float, default=GAMMA, help="RBF scale γ")
    p.add_argument("--neighbors", type=int, default=None, help="k-NN graph instead of all pairs")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    args.smoke = args.smoke or os.environ.get("GLRJAX_SMOKE", "") not in ("", "0")
    args.n = args.n or (150 if args.smoke else 1000)
    return args


def datasets(n: int, seed: int):
    return {
        "moons": make_moons(n, noise=0.06, random_state=seed),
        "circles": make_circles(n, noise=0.05, factor=0.5, random_state=seed),
    }


def dense_affinity(graph) -> np.ndarray:
    n = graph.num_nodes
    w = np.zeros((n, n))
    src, dst, wt = (np.asarray(a) for a in (graph.src, graph.dst, graph.weights))
    w[src, dst] = wt
    w[dst, src] = wt
    return w


def timed(fn):
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn())
    return out, time.perf_counter() - t0


def run(name, x, y, args, key):
    rows, labelings = [], {}
    graph = spectral.rbf_graph(jnp.asarray(x, jnp.float32), args.gamma, args.neighbors)
    k_raw, k_spec = jax.random.split(key)

    def raw_kmeans():
        return spectral.kmeans(jnp.asarray(x, jnp.float32), 2, k_raw)

    timed(raw_kmeans)  # the first call compiles; the second is the one timed
    (raw, _, _), t_raw = timed(raw_kmeans)
    labelings["k-means on points"] = np.asarray(raw)
    rows.append({"method": "k-means on points (glrjax)", "time_s": t_raw})

    def ours():
        return glrjax.spectral_clustering(graph, 2, k_spec)

    timed(ours)
    (labels, _, info), t_ours = timed(ours)
    labelings["glrjax spectral_clustering"] = np.asarray(labels)
    rows.append(
        {
            "method": "glrjax spectral_clustering",
            "time_s": t_ours,
            "residual": float(jnp.max(info.residuals)),
            "lobpcg_iters": int(info.iterations),
            "converged": bool(info.converged),
        }
    )

    affinity = dense_affinity(graph)
    peer = SpectralClustering(2, affinity="precomputed", random_state=args.seed)
    sk, t_sk = timed(lambda: peer.fit_predict(affinity))
    labelings["scikit-learn SpectralClustering"] = sk
    rows.append({"method": "scikit-learn SpectralClustering", "time_s": t_sk})

    for row, lab in zip(rows, labelings.values(), strict=True):
        row["data"] = name
        row["ari"] = float(adjusted_rand_score(y, lab))
        row["edges"] = int(graph.src.shape[0])
    rows[1]["ari_vs_sklearn"] = float(adjusted_rand_score(sk, labelings[list(labelings)[1]]))
    return rows, labelings


def segment(args, key):
    """4-region spectral segmentation of a pooled grayscale sample image (a GridGraph)."""
    pool = 16 if args.smoke else 8
    rgb = load_sample_image("china.jpg").astype(np.float32).mean(axis=2) / 255.0
    h, w = (rgb.shape[0] // pool) * pool, (rgb.shape[1] // pool) * pool
    img = rgb[:h, :w].reshape(h // pool, pool, w // pool, pool).mean(axis=(1, 3))
    graph = glrjax.GridGraph.gaussian(jnp.asarray(img), radius=2, sigma=0.08)

    def ours():
        return glrjax.spectral_clustering(graph, 4, key)

    timed(ours)
    (labels, _, info), t = timed(ours)
    u, _ = spectral.spectral_embedding(graph, 4, jax.random.split(key)[0])
    ud, _ = spectral.spectral_embedding(graph, 4, eigensolver=spectral.Dense())
    angle = float(
        np.max(subspace_angles(np.asarray(u).reshape(-1, 4), np.asarray(ud).reshape(-1, 4)))
    )
    row = {
        "image": f"china.jpg pooled {pool}x: {img.shape[0]}x{img.shape[1]}",
        "nodes": int(img.size),
        "time_s": t,
        "residual": float(jnp.max(info.residuals)),
        "eigenvalues": [float(v) for v in info.eigenvalues],
        "lobpcg_iters": int(info.iterations),
        "converged": bool(info.converged),
        "max_angle_vs_dense_eigh": angle,
    }
    return row, img, np.asarray(labels), np.asarray(u[..., 1])


def main():
    args = parse()
    os.makedirs(args.out, exist_ok=True)
    key = jax.random.key(args.seed)
    all_rows, figs = [], {}
    for i, (name, (x, y)) in enumerate(datasets(args.n, args.seed).items()):
        rows, labelings = run(name, x, y, args, jax.random.fold_in(key, i))
        all_rows += rows
        figs[name] = (x, labelings)

    seg_row, img, seg_labels, fiedler = segment(args, jax.random.fold_in(key, 99))

    table = Table(title=f"Spectral clustering, n={args.n} per data set, γ={args.gamma}")
    for c in ["data", "method", "edges", "ARI", "ARI vs sklearn", "time (s)", "max residual"]:
        table.add_column(c, justify="right")
    for r in all_rows:
        table.add_row(
            r["data"],
            r["method"],
            str(r["edges"]),
            f"{r['ari']:.3f}",
            f"{r['ari_vs_sklearn']:.3f}" if "ari_vs_sklearn" in r else "-",
            f"{r['time_s']:.3f}",
            f"{r['residual']:.1e}" if "residual" in r else "-",
        )
    console = Console(width=140)
    console.print(table)
    seg = Table(title="Segmentation of a GridGraph (k = 4)")
    for c in ["image", "nodes", "LOBPCG iters", "max residual", "angle vs eigh", "time (s)"]:
        seg.add_column(c, justify="right")
    seg.add_row(
        seg_row["image"],
        str(seg_row["nodes"]),
        str(seg_row["lobpcg_iters"]),
        f"{seg_row['residual']:.1e}",
        f"{seg_row['max_angle_vs_dense_eigh']:.1e}",
        f"{seg_row['time_s']:.3f}",
    )
    console.print(seg)

    fig, axes = plt.subplots(3, 3, figsize=(12, 11))
    for row_axes, (name, (x, labelings)) in zip(axes[:2], figs.items(), strict=True):
        for ax, (method, lab) in zip(row_axes, labelings.items(), strict=True):
            ari = next(
                r["ari"] for r in all_rows if r["data"] == name and r["method"][:6] == method[:6]
            )
            ax.scatter(x[:, 0], x[:, 1], c=lab, s=6, cmap="coolwarm")
            ax.set_title(f"{name}: {method}\nARI {ari:.3f}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    for ax, (title, im, cmap) in zip(
        axes[2],
        [
            ("image (GridGraph nodes)", img, "gray"),
            ("spectral_clustering, k = 4", seg_labels, "tab10"),
            ("2nd eigenvector", fiedler, "coolwarm"),
        ],
        strict=True,
    ):
        ax.imshow(im, cmap=cmap, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    png = os.path.join(args.out, "spectral_clustering.png")
    fig.savefig(png, dpi=110)
    plt.close(fig)
    record = {
        "n": args.n,
        "gamma": args.gamma,
        "neighbors": args.neighbors,
        "device": str(jax.devices()[0]),
        "rows": all_rows,
        "segmentation": seg_row,
    }
    with open(os.path.join(args.out, "spectral_clustering.json"), "w") as fh:
        json.dump(record, fh, indent=2)
    print(f"wrote {png}")


if __name__ == "__main__":
    main()
