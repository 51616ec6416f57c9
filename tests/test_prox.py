"""Proximal operators against closed forms, brute-force minimisation and Moreau's identity."""

import itertools

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
