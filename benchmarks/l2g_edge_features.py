"""How far a per-edge map of the Unrolling network's output can go, with and without the
two-step path feature of L2G-VAE's per-edge MLP (``glrjax.l2g_vae._edge_features``).

For each family at 20 nodes, on ``benchmarks/l2g.py``'s data and its Unrolling network
(``run_setting``: the same seeds, the same training), a lookup table is fitted on the *training*
graphs: the mean of w*_e / s over the training edges in each bin of the features, with
s = Σp²/Σp. Test GMSE of the table's prediction against the Unrolling network's own:

- ``p``: a function of p_e / s alone (what a per-edge MLP on the weight can learn);
- ``p, c``: a function of (p_e / s, c_e / s²), c = (P²)_e the two-step path weight.

No neural network is involved: this bounds what the per-edge branch can add and tells
whether the second feature carries information. ::

    python benchmarks/l2g_edge_features.py [--smoke]   # writes results/l2g_edge_features.json
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import l2g as base  # benchmarks/l2g.py: data, Unrolling network and training
import numpy as np
from _common import table, write

from glrjax.l2g import gmse, l2g_unrolled
from glrjax.l2g_vae import _edge_features

BINS = 6 if base.SMOKE else 16


def unrolling(family, n):
    """(train, test) pairs (Unrolling output, w*) of ``l2g.py``'s Unrolling network."""
    seed = base.SEEDS[family] + n
    (z_tr, w_tr), _, (z_te, w_te) = base.datasets(family, n, seed)
    p = base.run_setting(family, n, seed)["_models"][0]
    run = jax.jit(jax.vmap(lambda zz: l2g_unrolled(zz, p)))
    return (np.asarray(run(z_tr)), np.asarray(w_tr)), (np.asarray(run(z_te)), np.asarray(w_te))


def features(w_hat):
    f, s = jax.vmap(_edge_features)(jnp.asarray(w_hat))
    return np.asarray(f), np.asarray(s)[:, None]


def lookup(train, test, cols):
    """Bin-mean of w*/s over the training edges with p > 0; predict s·table on test."""
    (p_tr, w_tr), (p_te, _) = train, test
    (f_tr, s_tr), (f_te, s_te) = features(p_tr), features(p_te)
    on = p_tr > 0
    edges = [np.quantile(f_tr[..., c][on], np.linspace(0, 1, BINS + 1)) for c in cols]

    def index(f, mask):
        idx = [
            np.clip(np.searchsorted(e, f[..., c][mask]) - 1, 0, BINS - 1)
            for e, c in zip(edges, cols, strict=True)
        ]
        return np.ravel_multi_index(idx, (BINS,) * len(cols))

    cells = BINS ** len(cols)
    sums = np.bincount(index(f_tr, on), (w_tr / s_tr)[on], minlength=cells)
    count = np.bincount(index(f_tr, on), minlength=cells)
    table_ = np.where(count > 0, sums / np.maximum(count, 1), 0.0)
    out = np.zeros_like(p_te)
    on_te = p_te > 0
    out[on_te] = table_[index(f_te, on_te)] * np.broadcast_to(s_te, p_te.shape)[on_te]
    return out


def main():
    jax.config.update("jax_enable_x64", True)  # as l2g.py's main(): the same networks
    rows = []
    for family in base.FAMILIES:
        train, test = unrolling(family, 20)
        ref = float(np.mean(gmse(test[0], test[1])))
        row = {"family": family, "N": 20, "unrolling_gmse": ref}
        for name, cols in (("p", [0]), ("p_c", [0, 1])):
            g = float(np.mean(gmse(lookup(train, test, cols), test[1])))
            row[f"gmse_{name}"], row[f"ratio_{name}"] = g, g / ref
        rows.append(row)
    table(rows, ["family", "N", "unrolling_gmse", "gmse_p", "ratio_p", "gmse_p_c", "ratio_p_c"],
          "Per-edge lookup tables on the Unrolling output (test GMSE)")  # fmt: skip
    write("l2g_edge_features", {"bins": BINS, "steps": 2 * base.STEPS, "rows": rows})


if __name__ == "__main__":
    main()
