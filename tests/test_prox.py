"""Proximal operators against closed forms, brute-force minimisation and Moreau's identity."""

import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from jax.test_util import check_grads

from glrjax import prox

FLOATS = st.floats(
    -5.0, 5.0, allow_nan=False, allow_subnormal=False, width=64
)  # XLA flushes subnormals


def rand(shape, seed=0, scale=2.0):
    return scale * np.random.default_rng(seed).standard_normal(shape)


# ----------------------------------------------------------------------------- closed forms
def np_l1(x, lam, t):
    return np.sign(x) * np.maximum(np.abs(x) - t * lam, 0.0)


def np_group_columns(m, lam, t):
    out = np.zeros_like(m)
    for j in range(m.shape[1]):
        norm = np.linalg.norm(m[:, j])
        if norm > t * lam:
            out[:, j] = m[:, j] * (1 - t * lam / norm)
    return out


@pytest.mark.parametrize("t", [1.0, 0.3])
def test_closed_forms(t):
    x = rand((5, 7), seed=1)
    lam = 0.8
    np.testing.assert_allclose(prox.l1(jnp.asarray(x), lam, t), np_l1(x, lam, t), rtol=1e-14)
    np.testing.assert_allclose(
        prox.group_l21(jnp.asarray(x), lam * 3, t), np_group_columns(x, lam * 3, t), rtol=1e-14
    )
    thr = np.sqrt(2 * t * lam)
    np.testing.assert_array_equal(prox.l0(jnp.asarray(x), lam, t), np.where(np.abs(x) > thr, x, 0))
    np.testing.assert_array_equal(prox.nonneg(jnp.asarray(x)), np.maximum(x, 0))
    np.testing.assert_allclose(
        prox.nonneg_l1(jnp.asarray(x), lam, t), np.maximum(x - t * lam, 0), rtol=1e-14
    )
    xp = np.maximum(x, 0)
    np.testing.assert_array_equal(prox.nonneg_l0(jnp.asarray(x), lam, t), np.where(xp > thr, xp, 0))
    np.testing.assert_array_equal(prox.box(jnp.asarray(x), (-1.0, 0.5), t), np.clip(x, -1.0, 0.5))


def test_group_axis_and_per_group_weights():
    x = rand((4, 6), seed=2)
    lam = np.array([0.0, 1.0, 2.0, 3.0, 0.5, 100.0])
    out = np.asarray(prox.group_l21(jnp.asarray(x), jnp.asarray(lam), 0.7))
    for j in range(6):
        np.testing.assert_allclose(
            out[:, j], np_group_columns(x[:, j : j + 1], lam[j], 0.7)[:, 0], rtol=1e-14
        )
    np.testing.assert_array_equal(out[:, 0], x[:, 0])  # a zero weight leaves the group as is
    assert np.all(out[:, 5] == 0)
    # axis=1: the groups are rows; the same as columns of the transpose.
    rows = prox.group_l21(jnp.asarray(x.T), jnp.asarray(lam), 0.7, axis=1)
    np.testing.assert_allclose(rows, out.T, rtol=1e-14)
    # A 3-D array with groups spanning axes (0, 1): one group per slice x[:, :, k].
    y = rand((3, 2, 4), seed=3)
    got = prox.group_l21(jnp.asarray(y), 1.5, 1.0, axis=(0, 1))
    for k in range(4):
        np.testing.assert_allclose(
            np.asarray(got[:, :, k]).ravel(),
            np_group_columns(y[:, :, k].reshape(-1, 1), 1.5, 1.0)[:, 0],
            rtol=1e-14,
        )


def test_values_match_their_definitions():
    x = rand((3, 4), seed=4)
    x[:, 1] = 0
    assert np.isclose(prox.l1_value(jnp.asarray(x), 0.5), 0.5 * np.abs(x).sum())
    assert np.isclose(
        prox.group_l21_value(jnp.asarray(x), 0.5), 0.5 * np.linalg.norm(x, axis=0).sum()
    )
    assert np.isclose(prox.l0_value(jnp.asarray(x), 0.5), 0.5 * 9)
    assert float(prox.nonneg_value(jnp.asarray(x))) == np.inf
    assert float(prox.nonneg_value(jnp.abs(jnp.asarray(x)))) == 0.0
    assert np.isclose(prox.nonneg_l1_value(jnp.abs(jnp.asarray(x)), 2.0), 2 * np.abs(x).sum())
    assert float(prox.nonneg_l0_value(jnp.abs(jnp.asarray(x)), 1.0)) == 9.0
    assert float(prox.box_value(jnp.asarray(x), (-10.0, 10.0))) == 0.0
    assert float(prox.box_value(jnp.asarray(x), (0.0, 10.0))) == np.inf


# ----------------------------------------------------------------------------- brute force
def prox_objective(value, u, x, t):
    return t * value(u) + 0.5 * np.sum((u - x) ** 2)


def brute_convex(value, x, t, bounds=None):
    """Minimise t·g(u) + ½‖u − x‖² with scipy from several starts; best value wins."""
    f = lambda u: prox_objective(value, u.reshape(x.shape), x, t)  # noqa: E731
    best = None
    for start in [x.ravel(), np.zeros(x.size), 0.5 * x.ravel()]:
        if bounds is None:
            res = scipy.optimize.minimize(
                f, start, method="Powell", options=dict(xtol=1e-12, ftol=1e-15, maxiter=100000)
            )
        else:
            res = scipy.optimize.minimize(
                f, start, method="L-BFGS-B", bounds=bounds, options=dict(ftol=1e-15, gtol=1e-12)
            )
        if best is None or res.fun < best.fun:
            best = res
    return best.x.reshape(x.shape), best.fun


def brute_l1(x, lam, t):
    """The lasso prox as a smooth bound-constrained problem: u = p − n, p, n ≥ 0."""
    k = x.size

    def f(z):
        p, n = z[:k], z[k:]
        r = p - n - x.ravel()
        return t * lam * np.sum(p + n) + 0.5 * r @ r, np.concatenate([t * lam + r, t * lam - r])

    res = scipy.optimize.minimize(
        f,
        np.zeros(2 * k),
        jac=True,
        method="L-BFGS-B",
        bounds=[(0, None)] * (2 * k),
        options=dict(ftol=1e-16, gtol=1e-12),
    )
    return (res.x[:k] - res.x[k:]).reshape(x.shape)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_l1_and_nonneg_l1_against_brute_force(seed):
    x = rand(6, seed=seed)
    lam, t = 0.7, 0.9
    np.testing.assert_allclose(prox.l1(jnp.asarray(x), lam, t), brute_l1(x, lam, t), atol=1e-7)
    u, fmin = brute_convex(
        lambda u: lam * np.abs(u).sum(), x, t, bounds=[(0, None)] * x.size
    )  # the nonnegative lasso is smooth on its domain
    ours = np.asarray(prox.nonneg_l1(jnp.asarray(x), lam, t))
    np.testing.assert_allclose(ours, u, atol=1e-6)
    assert prox_objective(lambda u: lam * np.abs(u).sum(), ours, x, t) <= fmin + 1e-12


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_group_l21_against_brute_force(seed):
    x = rand((3, 2), seed=seed, scale=1.0)
    lam, t = 0.8, 1.1  # some columns (norms ~ 1) are zeroed, some kept
    value = lambda u: lam * np.linalg.norm(u, axis=0).sum()  # noqa: E731
    u, fmin = brute_convex(value, x, t)
    ours = np.asarray(prox.group_l21(jnp.asarray(x), lam, t))
    assert prox_objective(value, ours, x, t) <= fmin + 1e-12
    np.testing.assert_allclose(ours, u, atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_projections_against_brute_force(seed):
    x = rand(5, seed=seed)
    zero = lambda u: 0.0  # noqa: E731
    u, _ = brute_convex(zero, x, 1.0, bounds=[(0, None)] * 5)
    np.testing.assert_allclose(prox.nonneg(jnp.asarray(x)), u, atol=1e-7)
    u, _ = brute_convex(zero, x, 1.0, bounds=[(-0.5, 1.0)] * 5)
    np.testing.assert_allclose(prox.box(jnp.asarray(x), (-0.5, 1.0)), u, atol=1e-7)


def brute_l0(x, lam, t, nonneg=False):
    """Enumerate every support S: u = x on S (max(x, 0) if nonneg), 0 elsewhere."""
    best = np.inf
    for mask in itertools.product([0, 1], repeat=x.size):
        u = np.where(np.array(mask, bool), np.maximum(x, 0) if nonneg else x, 0.0)
        best = min(best, prox_objective(lambda u: lam * np.count_nonzero(u), u, x, t))
    return best


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_l0_and_nonneg_l0_against_enumeration(seed):
    x = rand(6, seed=seed, scale=1.5)
    lam, t = 0.6, 1.3
    value = lambda u: lam * np.count_nonzero(u)  # noqa: E731
    for op, nonneg in [(prox.l0, False), (prox.nonneg_l0, True)]:
        ours = np.asarray(op(jnp.asarray(x), lam, t))
        assert np.isclose(prox_objective(value, ours, x, t), brute_l0(x, lam, t, nonneg))
        if nonneg:
            assert np.all(ours >= 0)


# ----------------------------------------------------------------------------- Moreau
@given(arrays(np.float64, (4, 3), elements=FLOATS), st.floats(0.0, 3.0), st.floats(0.1, 2.0))
def test_moreau_decomposition(x, lam, t):
    """x = prox_{tg}(x) + t·prox_{g*/t}(x/t); g* is the indicator of the dual-norm ball."""
    xj = jnp.asarray(x)
    # ℓ1: g* = indicator of the ℓ∞ ball of radius λ, whose projection is a clip.
    dual = t * np.clip(x / t, -lam, lam)
    np.testing.assert_allclose(np.asarray(prox.l1(xj, lam, t)) + dual, x, atol=1e-12)
    # group ℓ2,1: g* = indicator of {‖v_:j‖ ≤ λ for all j}: project each column on the ball.
    v = x / t
    norms = np.linalg.norm(v, axis=0)
    proj = v * np.minimum(1.0, lam / np.where(norms > 0, norms, 1.0))
    np.testing.assert_allclose(np.asarray(prox.group_l21(xj, lam, t)) + t * proj, x, atol=1e-12)
    # nonneg: the polar cone of the orthant is the nonpositive orthant.
    np.testing.assert_allclose(np.asarray(prox.nonneg(xj)) + np.minimum(x, 0), x, atol=0)


# ----------------------------------------------------------------------------- gradients
def test_group_l21_gradient_is_finite_at_zero_groups_unlike_jaxopt():
    x = jnp.asarray(rand((3, 4), seed=5)).at[:, 1].set(0.0)

    def ours(x, lam):
        return jnp.sum(jnp.sin(prox.group_l21(x, lam, 0.5)))

    gx, glam = jax.grad(ours, argnums=(0, 1))(x, 0.3)
    assert np.all(np.isfinite(gx)) and np.isfinite(glam)
    np.testing.assert_array_equal(gx[:, 1], 0.0)  # inside the threshold: locally constant 0
    jac = jax.jacfwd(lambda x: prox.group_l21(x, 0.3, 0.5))(x)
    assert np.all(np.isfinite(jac))
    # λ = 0 at a zero group: the prox is the identity, and so is its Jacobian.
    jac0 = jax.jacrev(lambda x: prox.group_l21(x, 0.0, 1.0))(x)
    np.testing.assert_array_equal(jac0.reshape(12, 12), np.eye(12))
    # jaxopt's prox_group_lasso (one group) returns NaN gradients at zero.
    from jaxopt.prox import prox_group_lasso

    g = jax.grad(lambda v: jnp.sum(prox_group_lasso(v, 0.3, 0.5)))(jnp.zeros(3))
    assert np.all(np.isnan(g))
    g = jax.grad(lambda v: jnp.sum(prox.group_l21(v, 0.3, 0.5)))(jnp.zeros(3))
    np.testing.assert_array_equal(g, 0.0)


@pytest.mark.parametrize(
    "op,hyper",
    [
        (prox.l1, 0.4),
        (prox.group_l21, 0.4),
        (prox.nonneg_l1, 0.4),
        (prox.l0, 0.4),
        (prox.nonneg_l0, 0.4),
        (prox.nonneg, None),
    ],
)
def test_gradients_match_finite_differences_at_generic_points(op, hyper):
    x = jnp.asarray(rand((3, 4), seed=6))
    check_grads(lambda x: op(x, hyper, 0.8), (x,), order=1, modes=("fwd", "rev"), eps=1e-6)
    if op in (prox.l1, prox.group_l21, prox.nonneg_l1):  # λ moves the output continuously
        check_grads(lambda h: op(x, h, 0.8), (hyper,), order=1, modes=("rev",), eps=1e-6)
    for lam in [0.0, 0.4]:  # finite everywhere, also at zero and at λ = 0
        for z in [x, jnp.zeros_like(x)]:
            if hyper is None:
                continue
            g = jax.grad(lambda h, z=z: jnp.sum(op(z, h, 0.8) ** 2))(lam)
            assert np.isfinite(g)


def test_float32_stays_float32_and_jit_vmap_work():
    x = jnp.asarray(rand((3, 4), seed=7), jnp.float32)
    for op, hyper in [
        (prox.l1, 0.5),
        (prox.group_l21, 0.5),
        (prox.l0, 0.5),
        (prox.nonneg, None),
        (prox.nonneg_l1, 0.5),
        (prox.nonneg_l0, 0.5),
        (prox.box, (0.0, 1.0)),
    ]:
        assert jax.jit(op)(x, hyper, 1.0).dtype == jnp.float32
    lams = jnp.asarray([0.1, 1.0, 10.0], jnp.float32)
    out = jax.vmap(prox.group_l21, in_axes=(None, 0))(x, lams)
    assert out.shape == (3, 3, 4) and out.dtype == jnp.float32
    np.testing.assert_allclose(out[1], prox.group_l21(x, 1.0), rtol=1e-6)


# ----------------------------------------------------------------------------- input kinds
class Params(NamedTuple):
    w: object
    b: object


# (op, hyper, numpy reference on one float64 array, and whether the op is separable)
NP_REFS = {
    "l1": (prox.l1, 0.7, lambda x: np_l1(x, 0.7, 0.9)),
    "l0": (prox.l0, 0.7, lambda x: np.where(x * x > 2 * 0.9 * 0.7, x, 0.0)),
    "nonneg": (prox.nonneg, None, lambda x: np.maximum(x, 0.0)),
    "nonneg_l1": (prox.nonneg_l1, 0.7, lambda x: np.maximum(x - 0.9 * 0.7, 0.0)),
    "nonneg_l0": (
        prox.nonneg_l0,
        0.7,
        lambda x: np.where(np.maximum(x, 0) ** 2 > 2 * 0.9 * 0.7, np.maximum(x, 0), 0.0),
    ),
    "box": (prox.box, (-0.5, 1.0), lambda x: np.clip(x, -0.5, 1.0)),
    "group_l21": (
        prox.group_l21,
        0.7,
        lambda x: np_group_columns(np.atleast_2d(x.T).T, 0.7, 0.9).reshape(x.shape),
    ),
}
X_LIST = [[1.5, -0.2, 0.9], [-2.0, 0.4, 0.1]]


@pytest.mark.parametrize("name", sorted(NP_REFS))
@pytest.mark.parametrize("kind", ["scalar", "int", "list", "np32", "np64", "jax"])
def test_every_prox_takes_array_likes(name, kind):
    op, hyper, ref = NP_REFS[name]
    x = {
        "scalar": -1.3,
        "int": -2,
        "list": X_LIST,
        "np32": np.asarray(X_LIST, np.float32),
        "np64": np.asarray(X_LIST, np.float64),
        "jax": jnp.asarray(X_LIST),
    }[kind]
    out = op(x, hyper, 0.9)
    assert isinstance(out, jax.Array)
    assert out.dtype == (jnp.float32 if kind == "np32" else jnp.float64)
    x64 = np.asarray(x, np.float64)
    np.testing.assert_allclose(out, ref(x64), rtol=1e-6 if kind == "np32" else 1e-14, atol=1e-6)


def tree_x():
    return {
        "w": jnp.asarray(X_LIST),
        "p": Params(w=np.asarray([0.3, -1.7]), b=2.5),
        "l": [np.asarray([[0.2], [-3.0]], np.float32), [0.5, -0.1]],
    }


@pytest.mark.parametrize("name", sorted(NP_REFS))
def test_every_prox_maps_over_a_pytree_leaf_by_leaf(name):
    op, hyper, ref = NP_REFS[name]
    x = tree_x()
    out = op(x, hyper, 0.9)
    # A list of numbers is one array leaf; dicts, NamedTuples and lists of arrays are nodes.
    want_def = jax.tree_util.tree_structure({"w": 0, "p": Params(w=0, b=0), "l": [0, 0]})
    assert jax.tree_util.tree_structure(out) == want_def
    assert out["l"][0].dtype == jnp.float32  # each leaf keeps its own dtype
    got = jax.tree_util.tree_leaves(out)
    want = [
        np.asarray(X_LIST),
        np.asarray([0.3, -1.7]),
        np.asarray(2.5),
        np.asarray([[0.2], [-3.0]]),
        np.asarray([0.5, -0.1]),
    ]
    order = jax.tree_util.tree_leaves(
        {"w": 0, "p": Params(w=1, b=2), "l": [3, 4]}
    )  # flattening order of the dict
    for i, g in zip(order, got, strict=True):
        np.testing.assert_allclose(g, ref(want[i]), rtol=1e-6, atol=1e-6)


def test_values_take_array_likes_and_sum_over_pytrees():
    x = tree_x()
    allx = np.concatenate(
        [np.ravel(np.asarray(v, np.float64)) for v in jax.tree_util.tree_leaves(x)]
    )
    assert np.isclose(prox.l1_value(x, 0.5), 0.5 * np.abs(allx).sum(), rtol=1e-6)
    assert np.isclose(prox.l0_value(x, 0.5), 0.5 * np.count_nonzero(allx))
    assert float(prox.nonneg_value(x)) == np.inf
    assert float(prox.nonneg_value(jax.tree_util.tree_map(jnp.abs, x))) == 0.0
    assert float(prox.box_value(x, (-10.0, 10.0))) == 0.0
    assert float(prox.box_value(x, (-1.0, 10.0))) == np.inf
    assert np.isclose(prox.l1_value(-1.5, 2.0), 3.0) and np.isclose(prox.l1_value([1, -2], 1), 3)
    leaves = [np.asarray(X_LIST), np.asarray([0.3, -1.7]), 2.5, [[0.2], [-3.0]], [0.5, -0.1]]
    gv = sum(np.linalg.norm(np.asarray(v), axis=0 if np.ndim(v) else None).sum() for v in leaves)
    assert np.isclose(prox.group_l21_value(x, 0.5), 0.5 * gv, rtol=1e-6)
    whole = prox.group_l21_value(x, 0.5, axis=prox.WholeTree())
    assert np.isclose(whole, 0.5 * np.linalg.norm(allx), rtol=1e-6)


def test_per_leaf_hyperparameters_and_bounds():
    x = {"a": jnp.asarray([-2.0, 0.5, 3.0]), "b": jnp.asarray([[1.0, -4.0]])}
    out = prox.l1(x, {"a": 1.0, "b": jnp.asarray([0.5, 2.0])})
    np.testing.assert_allclose(out["a"], np_l1(np.asarray(x["a"]), 1.0, 1.0))
    np.testing.assert_allclose(out["b"], [[0.5, -2.0]])
    # A list of numbers beside a list-shaped x is a per-leaf pytree, not a shared array.
    a, b = x["a"], x["b"]
    out = prox.l1([a, b], [1.0, 0.5])
    np.testing.assert_allclose(out[0], np_l1(np.asarray(a), 1.0, 1.0))
    np.testing.assert_allclose(out[1], np_l1(np.asarray(b), 0.5, 1.0))
    # A numpy array is shared by every leaf (broadcast to each).
    out = prox.l1([b, 2 * b], np.asarray([0.5, 2.0]))
    np.testing.assert_allclose(out[1], [[1.5, -6.0]])
    out = prox.box(x, ({"a": 0.0, "b": -1.0}, 1.0))
    np.testing.assert_allclose(out["a"], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(out["b"], [[1.0, -1.0]])
    out = prox.box(x, (None, 0.0))  # None: unbounded on that side
    np.testing.assert_allclose(out["b"], [[0.0, -4.0]])
    out = prox.group_l21(x, {"a": 0.0, "b": jnp.asarray([0.5, 5.0])})
    np.testing.assert_allclose(out["a"], x["a"])
    np.testing.assert_allclose(out["b"], [[0.5, 0.0]])


def brute_group(x, lam, t):
    """One group over all entries: minimise tλ‖u‖ + ½‖u − x‖² with scipy (Powell)."""
    value = lambda u: lam * np.linalg.norm(u)  # noqa: E731
    return brute_convex(value, x, t)


@pytest.mark.parametrize("lam", [0.5, 3.0, 10.0])
def test_whole_tree_group_against_brute_force(lam):
    x = {"w": rand((2, 2), seed=8, scale=1.0), "b": rand(2, seed=9, scale=1.0)}
    flat = np.concatenate([x["b"], x["w"].ravel()])  # the dict's flattening order
    u, fmin = brute_group(flat, lam, 0.8)
    out = prox.group_l21(x, lam, 0.8, axis=prox.WholeTree())
    ours = np.concatenate([np.asarray(out["b"]), np.asarray(out["w"]).ravel()])
    value = lambda u: lam * np.linalg.norm(u)  # noqa: E731
    assert prox_objective(value, ours, flat, 0.8) <= fmin + 1e-12
    np.testing.assert_allclose(ours, u, atol=1e-5)
    # For one array, WholeTree is axis=None: the whole array is one group.
    np.testing.assert_allclose(
        prox.group_l21(flat, lam, 0.8, axis=prox.WholeTree()),
        prox.group_l21(flat, lam, 0.8, axis=None),
        rtol=1e-14,
    )


def test_float64_numpy_with_x64_disabled_converts_without_warning():
    import warnings

    with jax.enable_x64(False), warnings.catch_warnings():
        warnings.simplefilter("error")
        x64 = np.asarray(X_LIST, np.float64)
        for name, (op, hyper, ref) in NP_REFS.items():
            out = op(x64, hyper, 0.9)
            assert out.dtype == jnp.float32, name
            np.testing.assert_allclose(out, ref(x64), rtol=1e-5, atol=1e-6)
        assert prox.l1(-1.0, np.float64(0.5)).dtype == jnp.float32
        assert prox.l1_value(x64, np.float64(0.5)).dtype == jnp.float32
        assert prox.box({"a": x64}, (np.float64(0.0), 1.0))["a"].dtype == jnp.float32


def test_jit_vmap_grad_on_pytrees():
    x = {"w": jnp.asarray(rand((3, 2), seed=10)), "b": jnp.asarray(rand(2, seed=11))}
    for op, hyper in [(prox.l1, 0.4), (prox.group_l21, 0.4)]:
        eager = op(x, hyper, 0.8)
        jitted = jax.jit(op)(x, hyper, 0.8)
        for k in x:
            np.testing.assert_allclose(jitted[k], eager[k], rtol=1e-14)
        lams = jnp.asarray([0.1, 0.4, 2.0])
        batched = jax.vmap(op, in_axes=(None, 0, None))(x, lams, 0.8)
        np.testing.assert_allclose(batched["w"][1], eager["w"], rtol=1e-14)

        def loss(x, lam, op=op):
            return sum(jnp.sum(jnp.sin(v)) for v in jax.tree_util.tree_leaves(op(x, lam, 0.8)))

        check_grads(jax.jit(loss), (x, hyper), order=1, modes=("rev",), eps=1e-6)
    # Whole-tree grouping: gradients match finite differences, and are finite at a zero tree.
    whole = lambda x, lam: prox.group_l21(x, lam, 0.8, axis=prox.WholeTree())  # noqa: E731
    check_grads(jax.jit(whole), (x, 0.4), order=1, modes=("fwd", "rev"), eps=1e-6)
    zero = jax.tree_util.tree_map(jnp.zeros_like, x)
    for fn in [whole, lambda x, lam: prox.group_l21(x, lam, 0.8)]:
        g = jax.grad(
            lambda x, lam, fn=fn: sum(jnp.sum(v) for v in jax.tree_util.tree_leaves(fn(x, lam))),
            argnums=(0, 1),
        )(zero, 0.4)
        assert all(np.all(np.isfinite(v)) for v in jax.tree_util.tree_leaves(g))
        np.testing.assert_array_equal(g[0]["w"], 0.0)
    g = jax.grad(lambda x: prox.group_l21_value(x, 0.4, axis=prox.WholeTree()))(zero)
    np.testing.assert_array_equal(g["w"], 0.0)


def test_list_of_arrays_is_a_pytree_and_list_of_numbers_an_array():
    a = jnp.asarray([[3.0, 0.0], [4.0, 0.0]])
    out = prox.group_l21([a, a], 2.5)  # a pytree of two leaves, each with its own columns
    assert isinstance(out, list) and len(out) == 2
    np.testing.assert_allclose(out[1], [[1.5, 0.0], [2.0, 0.0]])
    np.testing.assert_allclose(prox.group_l21([[3.0, 0.0], [4.0, 0.0]], 2.5), out[0])


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: prox.l1("abc", 1.0), TypeError, "x is a str"),
        (lambda: prox.l1(np.array([1.0, "a"], object), 1.0), TypeError, "object array"),
        (lambda: prox.l1(jnp.ones(2, jnp.complex64), 1.0), TypeError, "complex"),
        (lambda: prox.nonneg(1 + 2j), TypeError, "complex"),
        (lambda: prox.l1(jnp.arange(3), 1.0), TypeError, "int"),
        (lambda: prox.l1({"a": jnp.ones(2), "b": "s"}, 1.0), TypeError, "x['b']"),
        (lambda: prox.l1([[1.0, 2.0], [3.0]], 1.0), TypeError, "ragged"),
        (lambda: prox.l1({"a": jnp.ones(2)}, {"b": 1.0}), ValueError, "structure"),
        (lambda: prox.l1([jnp.ones(2), jnp.ones(3)], [1.0]), ValueError, "structure"),
        (lambda: prox.box({"a": jnp.ones(2)}, ({"b": 0.0}, 1.0)), ValueError, "bounds[0]"),
        (lambda: prox.box(jnp.ones(2), 1.0), TypeError, "bounds"),
        (lambda: prox.l1(jnp.ones(2), "a"), TypeError, "lam"),
        (lambda: prox.l1(jnp.ones(2), 1j), TypeError, "lam"),
        (lambda: prox.l1({"a": jnp.ones(2)}, {"a": -1.0}), ValueError, "lam"),
        (lambda: prox.l1(jnp.ones(2)), TypeError, "lam"),
        (lambda: prox.nonneg_l0(jnp.ones(2), None), TypeError, "lam"),
        (lambda: prox.l1(jnp.ones(2), 1.0, "t"), TypeError, "t"),
        (lambda: prox.group_l21(jnp.ones(2), 1.0, axis=prox.WholeTree), TypeError, "WholeTree()"),
        (lambda: prox.group_l21(jnp.ones(2), 1.0, axis="rows"), TypeError, "axis"),
        (
            lambda: prox.group_l21({"a": jnp.ones(2)}, jnp.ones(2), axis=prox.WholeTree()),
            ValueError,
            "one scalar",
        ),
        (lambda: prox.l1_value({"a": jnp.ones(2)}, {"b": 1.0}), ValueError, "structure"),
        (lambda: prox.box_value("x", (0.0, 1.0)), TypeError, "x is a str"),
    ],
)
def test_what_prox_cannot_take_raises_a_clear_error(call, error, match):
    with pytest.raises(error, match=None) as info:
        call()
    assert match in str(info.value), str(info.value)
