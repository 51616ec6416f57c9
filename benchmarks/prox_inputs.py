"""Measure which input kinds every ``glrjax.prox`` function takes: prox × input kind → result.

Each cell calls the function (float64 disabled, as in a default JAX install, and any warning
turned into an error) and records ``ok <dtype>`` or the exception's type and message. Writes
``benchmarks/results/prox_inputs.json`` and prints the table as Markdown (the table in the
report is this output, not typed by hand).

    python benchmarks/prox_inputs.py
"""

from __future__ import annotations

import os
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import write  # noqa: E402

from glrjax import prox  # noqa: E402

LIST = [[1.5, -0.2], [-2.0, 0.4]]
KINDS = {
    "python scalar": lambda: -1.3,
    "list": lambda: LIST,
    "numpy f32": lambda: np.asarray(LIST, np.float32),
    "numpy f64": lambda: np.asarray(LIST, np.float64),
    "jax array": lambda: jnp.asarray(LIST),
    "pytree": lambda: {"w": jnp.asarray(LIST), "b": np.asarray([0.3, -1.7]), "c": 2.5},
    "string": lambda: "1.0",
    "complex": lambda: np.asarray(LIST, np.complex64),
    "int array": lambda: np.asarray([[1, -2]]),
    "pytree, lam unlike x": lambda: ({"w": jnp.asarray(LIST)}, {"b": 0.5}),
}
OPS = {
    "l1": (prox.l1, 0.5),
    "l0": (prox.l0, 0.5),
    "nonneg": (prox.nonneg, None),
    "nonneg_l1": (prox.nonneg_l1, 0.5),
    "nonneg_l0": (prox.nonneg_l0, 0.5),
    "box": (prox.box, (0.0, 1.0)),
    "group_l21": (prox.group_l21, 0.5),
    "group_l21 WholeTree": (
        lambda x, lam, t=1.0: prox.group_l21(x, lam, t, axis=prox.WholeTree()),
        0.5,
    ),
    "l1_value": (lambda x, lam, t=1.0: prox.l1_value(x, lam), 0.5),
    "group_l21_value": (lambda x, lam, t=1.0: prox.group_l21_value(x, lam), 0.5),
    "nonneg_value": (lambda x, lam, t=1.0: prox.nonneg_value(x), None),
    "box_value": (lambda x, b, t=1.0: prox.box_value(x, b), (0.0, 1.0)),
}


def cell(op, hyper, kind: str) -> str:
    x = KINDS[kind]()
    if kind == "pytree, lam unlike x":
        if hyper is None:
            return "n/a (no lam)"
        x, wrong = x
        hyper = (wrong, 1.0) if isinstance(hyper, tuple) else wrong
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = jax.block_until_ready(op(x, hyper, 0.9))
    except Exception as err:  # noqa: BLE001 - the table records what happens
        return f"{type(err).__name__}: {str(err).splitlines()[0][:90]}"
    dtypes = sorted({str(v.dtype) for v in jax.tree_util.tree_leaves(out)})
    return "ok " + "/".join(dtypes)


def main() -> None:
    jax.config.update("jax_enable_x64", False)
    table = {name: {k: cell(op, hyper, k) for k in KINDS} for name, (op, hyper) in OPS.items()}
    kinds = list(KINDS)
    rows = [
        {
            "prox": name,
            **{k: v if v.startswith(("ok", "n/a")) else v.split(":")[0] for k, v in r.items()},
        }
        for name, r in table.items()
    ]
    write("prox_inputs", {"x64": False, "warnings": "error", "rows": rows, "messages": table})
    print("| prox | " + " | ".join(kinds) + " |")
    print("|---" * (len(kinds) + 1) + "|")
    for row in rows:
        print(f"| {row['prox']} | " + " | ".join(row[k] for k in kinds) + " |")
    print("\nerror messages (first line):")
    for name, row in table.items():
        for kind, v in row.items():
            if not v.startswith(("ok", "n/a")):
                print(f"  {name} × {kind}: {v}")


if __name__ == "__main__":
    main()
