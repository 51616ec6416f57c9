"""The bad-input table: every public function × an invalid argument → a clear error.

Data only (no pytest), so the docs build can render it (docs/hooks.py runs each call and
shows the actual message). ``tests/test_bad_inputs.py`` checks every row: the error type
and that the message names the argument.
"""

from __future__ import annotations

import jax.numpy as jnp

import glrjax
from glrjax import prox


def _grid():
    return glrjax.GridGraph.window(4, 4, radius=1)


def _mv(x, a):
    return a @ x


def _lsq(x, a):
    return x - a


# (function, argument, what is wrong, call, error type, text the message must contain)
ROWS = [
    ("cg", "b", "integer dtype", lambda: glrjax.cg(_mv, jnp.arange(3), jnp.eye(3)), TypeError, "b"),
    (
        "cg",
        "A",
        "non-square operator",
        lambda: glrjax.cg(_mv, jnp.ones(3), jnp.ones((2, 3))),
        ValueError,
        "square",
    ),
    (
        "cg",
        "maxiter",
        "maxiter < 1",
        lambda: glrjax.cg(_mv, jnp.ones(3), jnp.eye(3), maxiter=0),
        ValueError,
        "maxiter",
    ),
    (
        "cg",
        "tol",
        "negative",
        lambda: glrjax.cg(_mv, jnp.ones(3), jnp.eye(3), tol=-1.0),
        ValueError,
        "tol",
    ),
    (
        "cg",
        "x0",
        "wrong shape",
        lambda: glrjax.cg(_mv, jnp.ones(3), jnp.eye(3), x0=jnp.ones(2)),
        ValueError,
        "x0",
    ),
    (
        "cg",
        "alpha",
        "schedule not (maxiter,)",
        lambda: glrjax.cg(_mv, jnp.ones(3), jnp.eye(3), maxiter=5, alpha=jnp.ones(3)),
        ValueError,
        "alpha",
    ),
    (
        "cg",
        "gradient",
        "not a gradient mode",
        lambda: glrjax.cg(_mv, jnp.ones(3), jnp.eye(3), gradient="implicit"),
        TypeError,
        "gradient",
    ),
    (
        "cg",
        "gradient",
        "a class, not an instance",
        lambda: glrjax.cg(_mv, jnp.ones(3), jnp.eye(3), gradient=glrjax.Unrolled),
        TypeError,
        "instance",
    ),
    (
        "Checkpointed",
        "every",
        "every < 1",
        lambda: glrjax.Checkpointed(every=0),
        ValueError,
        "every",
    ),
    ("Truncated", "last", "not an int", lambda: glrjax.Truncated(last=2.5), TypeError, "last"),
    (
        "Implicit",
        "solver",
        "unknown solver",
        lambda: glrjax.Implicit(solver="bicgstab"),
        ValueError,
        "solver",
    ),
    (
        "Implicit",
        "on_failure",
        "unknown policy",
        lambda: glrjax.Implicit(on_failure="raise"),
        ValueError,
        "on_failure",
    ),
    (
        "GridGraph",
        "weights",
        "shape not (..., K, H, W)",
        lambda: glrjax.GridGraph(jnp.ones((3, 4, 4)), glrjax.window_offsets(1), 4, 4),
        ValueError,
        "weights",
    ),
    (
        "GridGraph.window",
        "radius",
        "radius < 1",
        lambda: glrjax.GridGraph.window(4, 4, radius=0),
        ValueError,
        "radius",
    ),
    (
        "EdgeGraph",
        "src",
        "index out of range",
        lambda: glrjax.EdgeGraph(jnp.array([0, 5]), jnp.array([1, 2]), jnp.ones(2), 3),
        ValueError,
        "src",
    ),
    (
        "EdgeGraph",
        "src",
        "float indices",
        lambda: glrjax.EdgeGraph(jnp.array([0.0]), jnp.array([1]), jnp.ones(1), 2),
        TypeError,
        "src",
    ),
    (
        "GridGraph.gaussian",
        "sigma",
        "zero",
        lambda: glrjax.GridGraph.gaussian(jnp.zeros((4, 4)), 1, sigma=0.0),
        ValueError,
        "sigma",
    ),
    (
        "GridGraph.gaussian",
        "sigma",
        "negative",
        lambda: glrjax.GridGraph.gaussian(jnp.zeros((4, 4)), 1, sigma=-0.1),
        ValueError,
        "sigma",
    ),
    (
        "knn_graph",
        "k",
        "more neighbours than other points",
        lambda: glrjax.knn_graph(jnp.zeros((4, 2)), 4),
        ValueError,
        "k=4",
    ),
    (
        "knn_graph",
        "points",
        "not (N, C)",
        lambda: glrjax.knn_graph(jnp.zeros(4), 2),
        ValueError,
        "points",
    ),
    (
        "laplacian_matvec",
        "x",
        "signal does not match the graph",
        lambda: glrjax.laplacian_matvec(_grid(), jnp.ones((3, 3))),
        ValueError,
        "x",
    ),
    (
        "glr_filter",
        "mu",
        "negative",
        lambda: glrjax.glr_filter(jnp.ones((4, 4)), _grid(), -1.0),
        ValueError,
        "mu",
    ),
    (
        "glr_filter",
        "y",
        "does not match the graph",
        lambda: glrjax.glr_filter(jnp.ones((3, 4)), _grid(), 1.0),
        ValueError,
        "y",
    ),
    (
        "glr_filter",
        "y",
        "integer dtype",
        lambda: glrjax.glr_filter(jnp.ones((4, 4), jnp.int32), _grid(), 1.0),
        TypeError,
        "y",
    ),
    (
        "glr_filter",
        "graph",
        "not a graph",
        lambda: glrjax.glr_filter(jnp.ones((4, 4)), jnp.eye(16), 1.0),
        TypeError,
        "graph",
    ),
    (
        "gtv_denoise",
        "mu",
        "negative",
        lambda: glrjax.gtv_denoise(jnp.ones((4, 4)), _grid(), -1.0),
        ValueError,
        "mu",
    ),
    ("prox.l1", "lam", "negative", lambda: prox.l1(jnp.ones(3), -1.0), ValueError, "lam"),
    (
        "prox.group_l21",
        "x",
        "integer dtype",
        lambda: prox.group_l21(jnp.ones((2, 2), jnp.int32), 1.0),
        TypeError,
        "x",
    ),
    (
        "prox.box",
        "bounds",
        "lower > upper",
        lambda: prox.box(jnp.ones(3), (1.0, 0.0)),
        ValueError,
        "bounds",
    ),
    (
        "pgd",
        "maxiter",
        "maxiter < 1",
        lambda: glrjax.pgd(_lsq, prox.l1, jnp.ones(3), jnp.ones(3), 1.0, maxiter=0),
        ValueError,
        "maxiter",
    ),
    (
        "fista",
        "step",
        "negative",
        lambda: glrjax.fista(_lsq, prox.l1, jnp.ones(3), jnp.ones(3), 1.0, step=-1.0),
        ValueError,
        "step",
    ),
    (
        "fista",
        "q",
        "negative",
        lambda: glrjax.fista(_lsq, prox.l1, jnp.ones(3), jnp.ones(3), 1.0, q=-1.0),
        ValueError,
        "q",
    ),
    (
        "fista",
        "prox",
        "not a function",
        lambda: glrjax.fista(_lsq, 3, jnp.ones(3), jnp.ones(3), 1.0),
        TypeError,
        "prox",
    ),
    (
        "primal_dual",
        "tau",
        "negative",
        lambda: glrjax.primal_dual(lambda x, a: x, jnp.ones(3), None, tau=-1.0),
        ValueError,
        "tau",
    ),
    (
        "primal_dual",
        "tau, sigma",
        "break the step condition",
        lambda: glrjax.primal_dual(
            lambda x, a: x, jnp.ones(3), None, tau=2.0, sigma=2.0, norm_K=1.0
        ),
        ValueError,
        "tau",
    ),
    (
        "linear_reconstruction",
        "lam",
        "negative",
        lambda: glrjax.linear_reconstruction(jnp.eye(3), jnp.ones((2, 3)), -1.0),
        ValueError,
        "lam",
    ),
    (
        "linear_reconstruction",
        "Ryx",
        "columns do not match Rxx",
        lambda: glrjax.linear_reconstruction(jnp.eye(3), jnp.ones((2, 4)), 1.0),
        ValueError,
        "Ryx",
    ),
    (
        "linear_reconstruction",
        "Rxx",
        "not symmetric",
        lambda: glrjax.linear_reconstruction(jnp.triu(jnp.ones((3, 3))), jnp.ones((2, 3)), 1.0),
        ValueError,
        "Rxx",
    ),
    (
        "linear_reconstruction",
        "method",
        "unknown method",
        lambda: glrjax.linear_reconstruction(jnp.eye(3), jnp.ones((2, 3)), 1.0, method="newton"),
        ValueError,
        "method",
    ),
    (
        "debias",
        "keep",
        "wrong length",
        lambda: glrjax.debias(jnp.eye(3), jnp.ones((2, 3)), jnp.ones(4, bool)),
        ValueError,
        "keep",
    ),
    (
        "lambda_path",
        "lams",
        "negative",
        lambda: glrjax.lambda_path(jnp.eye(3), jnp.ones((2, 3)), jnp.array([-1.0])),
        ValueError,
        "lams",
    ),
    (
        "correlations",
        "batch_size",
        "batch_size < 1",
        lambda: glrjax.correlations(lambda x: x, jnp.ones((10, 3)), batch_size=0),
        ValueError,
        "batch_size",
    ),
    ("l2g", "alpha", "negative", lambda: glrjax.l2g(jnp.ones(6), -1.0, 1.0), ValueError, "alpha"),
    ("l2g", "beta", "negative", lambda: glrjax.l2g(jnp.ones(6), 1.0, -1.0), ValueError, "beta"),
    (
        "l2g",
        "z",
        "not N(N−1)/2 entries",
        lambda: glrjax.l2g(jnp.ones(5), 1.0, 1.0),
        ValueError,
        "z",
    ),
    (
        "shard_batch",
        "in_axes",
        "not the leading axis",
        lambda: glrjax.shard_batch(lambda x: x, in_axes=1)(jnp.ones((2, 2))),
        ValueError,
        "in_axes",
    ),
    (
        "curse.spd_problem",
        "kappa",
        "kappa <= 1",
        lambda: glrjax.curse.spd_problem(kappa=0.5),
        ValueError,
        "kappa",
    ),
]
