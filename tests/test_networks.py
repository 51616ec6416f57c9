"""uGLR/uGTV networks: the normalised graph, shapes, parameter count, compilation, FD gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import glrjax
from glrjax.networks import (
    UGLRConfig,
    UGTVConfig,
    bilinear_interpolate,
    normalized_graph,
    num_params,
    uglr,
    uglr_init,
    ugtv,
    ugtv_init,
)

_GRAPH = jax.jit(normalized_graph, static_argnums=2)


@settings(max_examples=15)
@given(
    radius=st.sampled_from([1, 2]),
    scale=st.floats(0.01, 300.0),
    seed=st.integers(0, 2**16),
)
# Learned features reach distances far above 1e4 (uGLR training: features in [-562, -3]);
# an off-grid sentinel distance of 1e4 then took border pixels' whole affinity.
@example(radius=1, scale=300.0, seed=0)
def test_normalized_graph_is_symmetrised_softmax_with_psd_laplacian(radius, scale, seed):
    # fixed shapes (one compilation per radius); random features, metric and scale
    h, w, c = 4, 5, 2
    rng = np.random.default_rng(seed)
    f = scale * rng.standard_normal((c, h, w))
    q = rng.standard_normal((c, c))
    g = _GRAPH(jnp.asarray(f), jnp.asarray(q), radius)
    # Independent numpy construction: u_ij = exp(-|Q^T(f_i - f_j)|^2) on the window,
    # a_ij = u_ij / sum_j u_ij, w_ij = (a_ij + a_ji) / 2.
    n = h * w
    proj = np.einsum("chw,cm->hwm", f, q).reshape(n, -1)
    rows, cols = np.divmod(np.arange(n), w)
    near = (np.abs(rows[:, None] - rows[None]) <= radius) & (
        np.abs(cols[:, None] - cols[None]) <= radius
    )
    np.fill_diagonal(near, False)
    logits = np.where(near, -((proj[:, None] - proj[None]) ** 2).sum(-1), -np.inf)
    u = np.exp(logits - logits.max(1, keepdims=True))  # the softmax over i's neighbours
    a = u / u.sum(1, keepdims=True)
    wref = 0.5 * (a + a.T)
    lap_ref = np.diag(wref.sum(1)) - wref
    lap = np.asarray(glrjax.to_dense(g))
    np.testing.assert_allclose(lap, lap_ref, atol=1e-12)
    assert np.diag(lap).min() >= 0.5 - 1e-12  # each pixel's own affinities sum to 1
    np.testing.assert_allclose(lap, lap.T, atol=0)
    assert np.linalg.eigvalsh(lap).min() >= -1e-12
    ones = glrjax.laplacian_matvec(g, jnp.ones((h, w)))
    assert float(jnp.abs(ones).max()) <= 1e-12


def _problem(c=1, h=5, w=5, batch=2, seed=0, dtype=jnp.float64):
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, w)
    clean = np.stack([np.sin(3 * t[None] + (b + 1) * t[:, None] * 2) for b in range(batch)])
    clean = np.repeat(clean[:, None], c, axis=1) + 0.05 * rng.standard_normal((batch, c, h, w))
    mask = np.zeros((batch, c, h, w), bool)
    mask[..., ::2, ::2] = True
    mask[..., 1::2, 1::2] = rng.random(mask[..., 1::2, 1::2].shape) < 0.5
    return jnp.asarray(clean, dtype), jnp.asarray(mask)


def test_shapes_dtypes_and_parameter_count():
    cfg = UGLRConfig(layers=2, channels=3, features=2, hidden=5, depth=3, maxiter=2)
    p = uglr_init(jax.random.key(0), cfg)
    per_layer = (9 * 3 * 5 + 5) + (9 * 5 * 5 + 5) + (9 * 5 * 2 + 2) + 2 * 2 + 1
    assert num_params(p) == 2 * per_layer
    y, mask = _problem(c=3, dtype=jnp.float32)
    x, info = uglr(p, y, mask, cfg)
    assert x.shape == y.shape and x.dtype == jnp.float32
    assert info.iterations.shape == (2, 2, 3)  # layers × batch × channels
    x64, _ = uglr(p, y.astype(jnp.float64), mask, cfg)
    assert x64.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(x64), np.asarray(x), atol=1e-4)
    tv_cfg = UGTVConfig(layers=2, channels=3, features=2, hidden=5, depth=3, maxiter=2)
    xt, _ = ugtv(ugtv_init(jax.random.key(0), tv_cfg), y, mask, tv_cfg)
    assert xt.shape == y.shape and xt.dtype == jnp.float32


def test_no_recompilation_when_parameters_change():
    cfg = UGLRConfig(layers=2, channels=1, hidden=4, maxiter=3)
    y, mask = _problem(dtype=jnp.float32)
    f = jax.jit(lambda p, y: uglr(p, y, mask, cfg)[0])
    p1 = uglr_init(jax.random.key(0), cfg)
    p2 = jax.tree_util.tree_map(lambda a: a * 1.1, p1)._replace(
        log_mu=jnp.log(jnp.array([2.0, 0.1], jnp.float32))
    )
    x1, x2 = f(p1, y), f(p2, y)
    assert f._cache_size() == 1
    assert not np.allclose(np.asarray(x1), np.asarray(x2))


def test_bilinear_is_exact_on_linear_images():
    yy, xx = np.meshgrid(np.arange(7.0), np.arange(9.0), indexing="ij")
    img = 0.3 * yy - 0.2 * xx + 1.0
    m = np.zeros((7, 9), bool)
    m[::2, ::2] = True  # the 2x pixel-filling pattern
    out = np.asarray(bilinear_interpolate(jnp.asarray(img), jnp.asarray(m)))
    np.testing.assert_allclose(out[:-1, :-1], img[:-1, :-1], atol=1e-12)  # interior & top/left


MODES = [
    glrjax.Unrolled(),
    glrjax.Checkpointed(every=7),
    glrjax.Truncated(last=30),  # >= the steps taken: exact
    glrjax.Implicit(tol=1e-12, maxiter=500),
]


def _directional(loss, theta, seed, eps=1e-6):
    """(∇ℓ·v, central difference of ℓ along v) for a random direction v over theta's leaves."""
    leaves, tree = jax.tree_util.tree_flatten(theta)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    v = jax.tree_util.tree_unflatten(
        tree, [jax.random.normal(k, l.shape, l.dtype) for k, l in zip(keys, leaves, strict=True)]
    )
    g = jax.grad(loss)(theta)
    dot = sum(
        float(jnp.vdot(a, b))
        for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(v), strict=True)
    )
    f = jax.jit(loss)
    plus = jax.tree_util.tree_map(lambda a, b: a + eps * b, theta, v)
    minus = jax.tree_util.tree_map(lambda a, b: a - eps * b, theta, v)
    return dot, (float(f(plus)) - float(f(minus))) / (2 * eps)


@pytest.mark.parametrize("mode", MODES, ids=lambda m: type(m).__name__)
def test_uglr_gradients_match_finite_differences(mode):
    cfg = UGLRConfig(layers=2, channels=1, hidden=3, features=2, maxiter=30, tol=1e-12)
    y, mask = _problem(batch=1)
    target = y + 0.1
    p = uglr_init(jax.random.key(1), cfg, jnp.float64)

    def loss(theta):
        params, yy = theta
        x, _ = uglr(params, yy, mask, cfg, gradient=mode)
        return jnp.sum((x - target) ** 2)

    dot, fd = _directional(loss, (p, y), seed=2)
    assert abs(dot - fd) <= 1e-5 * max(1.0, abs(fd)), (dot, fd)


@pytest.mark.parametrize("mode", MODES[:2], ids=lambda m: type(m).__name__)
def test_learned_cg_steps_get_finite_difference_gradients(mode):
    cfg = UGLRConfig(layers=2, channels=1, hidden=3, features=2, maxiter=6, tol=0.0)
    cfg = cfg._replace(learn_cg=True)
    y, mask = _problem(batch=1)
    p = uglr_init(jax.random.key(1), cfg, jnp.float64)
    assert (
        num_params(p)
        == num_params(uglr_init(jax.random.key(1), cfg._replace(learn_cg=False))) + 2 * 2 * 6
    )

    def loss(steps):
        x, _ = uglr(p._replace(log_alpha=steps[0], log_beta=steps[1]), y, mask, cfg, gradient=mode)
        return jnp.sum((x - y - 0.1) ** 2)

    dot, fd = _directional(loss, (p.log_alpha, p.log_beta), seed=5)
    assert abs(dot - fd) <= 1e-6 * max(1.0, abs(fd)), (dot, fd)
    assert abs(fd) > 1e-3  # the steps matter: a zero gradient would not pass


@settings(max_examples=10, deadline=None)
@given(mu=st.floats(1e-3, 1e3), scale=st.floats(0.0, 5.0), seed=st.integers(0, 2**16))
def test_jacobi_preconditioned_spectrum_lies_in_the_learned_steps_interval(mu, scale, seed):
    """The claim behind learn_cg's Chebyshev init: D^{-1/2}(HᵀH + μL)D^{-1/2} ⊂ [0, 2).

    (0 where a graph component holds no observed pixel: the weights of distant features
    underflow.)"""
    rng = np.random.default_rng(seed)
    f = jnp.asarray(scale * rng.standard_normal((2, 6, 6)))
    g = _GRAPH(f, jnp.eye(2, dtype=f.dtype), 1)
    eye = np.eye(36).reshape(36, 6, 6)
    lap = np.stack([np.ravel(glrjax.laplacian_matvec(g, jnp.asarray(e))) for e in eye], axis=1)
    m = (rng.random(36) < 0.3).astype(float)
    m[0] = 1.0
    a = np.diag(m) + mu * lap
    d = np.sqrt(np.diag(a))
    ev = np.linalg.eigvalsh(a / np.outer(d, d))
    assert ev[0] > -1e-12 and ev[-1] < 2


def test_learned_cg_steps_at_init_stay_near_cg_and_refuse_implicit():
    cfg = UGLRConfig(layers=2, channels=1, hidden=3, maxiter=30, tol=0.0)
    y, mask = _problem(h=12, w=12)
    learned = cfg._replace(learn_cg=True)
    x_cg, _ = uglr(uglr_init(jax.random.key(0), cfg, jnp.float64), y, mask, cfg)
    p = uglr_init(jax.random.key(0), learned, jnp.float64)
    x, info = uglr(p, y, mask, learned)
    # Chebyshev on [0.05, 2] for 30 steps: residual factor 1/T_30(2.05/1.95) ~ 1e-4
    assert float(jnp.max(info.residual)) < 1e-3
    np.testing.assert_allclose(np.asarray(x), np.asarray(x_cg), atol=1e-3)
    with pytest.raises(ValueError, match="learn_cg=True with gradient=Implicit"):
        uglr(p, y, mask, learned, gradient=glrjax.Implicit())
    with pytest.raises(ValueError, match="learn_cg=False but params have learned"):
        uglr(p, y, mask, cfg)
    with pytest.raises(TypeError, match="learn_cg"):
        uglr_init(jax.random.key(0), cfg._replace(learn_cg=1))


def test_ugtv_unrolled_gradient_matches_finite_differences():
    cfg = UGTVConfig(layers=2, channels=1, hidden=3, features=2, maxiter=8)
    y, mask = _problem(batch=1)
    p = ugtv_init(jax.random.key(3), cfg, jnp.float64)

    def loss(theta):
        params, yy = theta
        x, _ = ugtv(params, yy, mask, cfg)
        return jnp.sum((x - y - 0.1) ** 2)

    dot, fd = _directional(loss, (p, y), seed=4)
    assert abs(dot - fd) <= 1e-5 * max(1.0, abs(fd)), (dot, fd)


def test_bad_inputs_name_the_argument():
    cfg = UGLRConfig(layers=1, channels=1, hidden=2, maxiter=2)
    p = uglr_init(jax.random.key(0), cfg)
    y, mask = _problem(dtype=jnp.float32)
    with pytest.raises(TypeError, match="mask has dtype"):
        uglr(p, y, mask.astype(jnp.float32), cfg)
    with pytest.raises(ValueError, match="mask has shape"):
        uglr(p, y, mask[..., :-1], cfg)
    with pytest.raises(ValueError, match="config.channels"):
        uglr(p, jnp.concatenate([y, y], axis=1), jnp.concatenate([mask, mask], axis=1), cfg)
    with pytest.raises(ValueError, match="config.layers=0"):
        uglr_init(jax.random.key(0), cfg._replace(layers=0))
    with pytest.raises(ValueError, match="no observed pixel"):
        uglr(p, y, jnp.zeros_like(mask), cfg)


@pytest.mark.slow  # 60 CG steps x 2 layers compiled under Implicit: the slowest case here
def test_uglr_compare_case_matches_its_dense_reference_when_converged():
    from glrjax.compare import measure, uglr_case

    case = uglr_case(size=6, layers=2, batch=1, dtype=jnp.float64)
    row = measure(case, glrjax.Implicit(tol=1e-12, maxiter=500), maxiter=60, repeats=1)
    assert row["converged"] and row["grad_error"] < 1e-7, row
