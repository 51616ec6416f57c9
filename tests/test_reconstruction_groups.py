"""Group-ℓ2,1 reconstruction with general column groups (issue 19): against brute-force
minimisation (scipy), the optimality conditions, the column case, and direct convolutions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

import glrjax

METHODS = ["pgd", "fista", "altmin"]
STATIC = ("method", "bias", "groups", "maxiter", "altmin_iterations", "gradient")
solve = jax.jit(glrjax.linear_reconstruction, static_argnames=STATIC)
GROUPS = ((0, 3, 5), (1,), (2, 4), (6, 7, 8, 9))  # uneven, interleaved, one singleton


def small_problem(d=10, h=4, seed=0, bias=False):
    """Full-rank correlations of n samples (unique solution); y = W x + noise, the inputs
    of the last group of GROUPS (6..9) barely used, so that some group is zeroed."""
    rng = np.random.default_rng(seed)
    n = 300
    x = rng.standard_normal((n, d)) * rng.uniform(0.5, 1.5, d)
    if bias:
        x[:, -1] = 1.0
    w = rng.standard_normal((d, h))
    w[6:10] *= 0.05
    y = x @ w + 0.3 * rng.standard_normal((n, h))
    return x.T @ x / n, y.T @ x / n


def segments(groups, d):
    seg = np.empty(d, int)
    for g, idx in enumerate(groups):
        seg[list(idx)] = g
    return seg


def np_objective(m, rxx, ryx, lam, groups, bias=False):
    m = np.asarray(m, np.float64)
    pen = sum(np.linalg.norm(m[:, list(g)]) for g in groups)
    return 0.5 * np.sum((m @ rxx) * m) - np.sum(ryx * m) + lam * pen


def brute_force(rxx, ryx, lam, groups, eps=1e-12):
    """scipy's L-BFGS-B on f(M) + λ Σ_g (√(‖M_:g‖² + ε²) − ε), ε = 1e-12 (smooth, within
    ~ε of the problem), from the least-squares solution. Columns in no group (a bias) are
    unpenalized."""
    h, d = ryx.shape

    def fun_grad(z):
        m = z.reshape(h, d)
        g = m @ rxx - ryx
        f = 0.5 * np.sum((m @ rxx) * m) - np.sum(ryx * m)
        for idx in groups:
            idx = list(idx)
            s = np.sqrt(np.sum(m[:, idx] ** 2) + eps**2)
            f += lam * (s - eps)
            g[:, idx] += lam * m[:, idx] / s
        return f, g.ravel()

    m0 = np.linalg.solve(rxx, ryx.T).T
    res = scipy.optimize.minimize(
        fun_grad,
        m0.ravel(),
        jac=True,
        method="L-BFGS-B",
        options=dict(maxiter=20000, ftol=1e-16, gtol=1e-12, maxcor=50),
    )
    return res.x.reshape(h, d)


def check_optimality(m, rxx, ryx, lam, groups, penalized, tol):
    """The first-order conditions of the convex problem (numpy, independent of glrjax):
    G_:g + λ M_:g/‖M_:g‖ = 0 on nonzero groups, ‖G_:g‖ ≤ λ on zero groups, G = M Rxx − Ryx;
    unpenalized groups (the bias) have G_:g = 0."""
    m = np.asarray(m, np.float64)
    grad = m @ rxx - ryx
    scale = np.abs(ryx).max()
    for g, idx in enumerate(groups):
        mg, gg = m[:, list(idx)], grad[:, list(idx)]
        norm = np.linalg.norm(mg)
        if not penalized[g]:
            assert np.linalg.norm(gg) <= tol * scale, g
        elif norm > 0:
            assert np.linalg.norm(gg + lam * mg / norm) <= tol * scale, g
        else:
            assert np.linalg.norm(gg) <= lam * (1 + 1e-9), g


# ----------------------------------------------------------------------------- the prox
def test_group_prox_is_the_brute_force_minimiser():
    """prox_{tλΣ‖·‖}(X): scipy on ½‖U − X‖² + tλ Σ_g ‖U_:g‖, one group at a time."""
    from glrjax.reconstruction import _partition

    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 10)) * np.array([1, 0.1, 1, 1, 0.1, 1, 2, 2, 2, 2])
    part = _partition(GROUPS, 10, False)
    lam_w, t = np.array([0.7, 0.3, 1.5, 0.2]), 0.8
    u = np.asarray(part(jnp.asarray(x), jnp.asarray(lam_w), t))
    # ½‖U − X‖² = ½tr(U I Uᵀ) − tr(X Uᵀ) + const: the reconstruction problem with Rxx = I
    # (brute_force uses one λ for all groups: rescale each group's columns instead).
    ref = np.empty_like(x)
    for g, idx in enumerate(GROUPS):
        sub = brute_force(np.eye(len(idx)), x[:, list(idx)], t * lam_w[g], [range(len(idx))])
        ref[:, list(idx)] = sub
    np.testing.assert_allclose(u, ref, atol=1e-7)
    assert np.linalg.norm(u[:, [1]]) == 0.0  # the small singleton is zeroed exactly


# ----------------------------------------------------------------------------- solutions
@pytest.mark.parametrize("method", METHODS)
def test_groups_match_brute_force_and_the_optimality_conditions(method):
    rxx, ryx = small_problem()
    lam = 0.3
    m, info = solve(rxx, ryx, lam, method=method, groups=GROUPS, tol=1e-12, maxiter=20000)
    assert bool(info.converged)
    norms = [np.linalg.norm(np.asarray(m)[:, list(g)]) for g in GROUPS]
    assert norms[3] == 0.0 and min(norms[:3]) > 0  # one group zeroed exactly, others kept
    check_optimality(m, rxx, ryx, lam, GROUPS, [True] * 4, 1e-7)
    # The smoothed brute force stops ~1e-8 (relative) above the optimum, M within ~1e-3:
    # the optimality conditions above are the tight check, the brute force the loose one.
    ref = brute_force(rxx, ryx, lam, GROUPS)
    f, f_ref = np_objective(m, rxx, ryx, lam, GROUPS), np_objective(ref, rxx, ryx, lam, GROUPS)
    assert f_ref - 1e-7 * abs(f_ref) <= f <= f_ref + 1e-12 * abs(f_ref)
    np.testing.assert_allclose(m, ref, atol=3e-3)
    f_jax = glrjax.reconstruction_objective(m, rxx, ryx, lam, groups=GROUPS)
    np.testing.assert_allclose(f_jax, f, rtol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_groups_with_a_bias_column(method):
    rxx, ryx = small_problem(d=11, bias=True)
    lam = 0.15
    m, info = solve(
        rxx, ryx, lam, method=method, bias=True, groups=GROUPS, tol=1e-12, maxiter=20000
    )
    assert bool(info.converged)
    assert np.linalg.norm(np.asarray(m)[:, -1]) > 0
    check_optimality(m, rxx, ryx, lam, GROUPS + ((10,),), [True] * 4 + [False], 1e-7)
    keep = glrjax.support(m, bias=True, groups=GROUPS)
    assert keep.tolist() == [n > 0 for n in np.linalg.norm(np.asarray(m), axis=0)[:-1]] + [True]


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("method", METHODS)
def test_singleton_groups_are_the_column_case(method, bias):
    rxx, ryx = small_problem(seed=1, bias=bias)
    d = rxx.shape[0] - int(bias)
    singletons = tuple((j,) for j in range(d))[::-1]  # any order of the groups
    kw = dict(method=method, bias=bias, tol=1e-12, maxiter=5000)
    m_cols, _ = solve(rxx, ryx, 0.2, **kw)
    m_groups, _ = solve(rxx, ryx, 0.2, groups=singletons, **kw)
    np.testing.assert_allclose(m_groups, m_cols, atol=1e-10)
    lm = glrjax.lambda_max(rxx, ryx, bias=bias)
    np.testing.assert_allclose(glrjax.lambda_max(rxx, ryx, bias=bias, groups=singletons), lm)


@pytest.mark.parametrize("bias", [False, True])
def test_lambda_max_with_groups_is_where_the_solution_becomes_empty(bias):
    rxx, ryx = small_problem(d=11 if bias else 10, seed=3, bias=bias)
    lm = float(glrjax.lambda_max(rxx, ryx, bias=bias, groups=GROUPS))
    kw = dict(bias=bias, groups=GROUPS, tol=1e-12, maxiter=5000)
    above, _ = solve(rxx, ryx, 1.001 * lm, **kw)
    below, _ = solve(rxx, ryx, 0.98 * lm, **kw)
    n_in = 10
    assert not np.any(np.asarray(above)[:, :n_in])
    assert np.any(np.asarray(below)[:, :n_in])


def test_lambda_path_and_debias_with_groups():
    rxx, ryx = small_problem(seed=4)
    lams = jnp.array([0.6, 0.3, 0.15, 0.05])
    ms, info = glrjax.lambda_path(rxx, ryx, lams, groups=GROUPS, tol=1e-11, maxiter=5000)
    assert bool(np.all(info.converged))
    for lam, m in zip(lams, ms, strict=True):
        ref, _ = solve(rxx, ryx, lam, groups=GROUPS, tol=1e-11, maxiter=5000)
        np.testing.assert_allclose(m, ref, atol=1e-7)
    keep = glrjax.support(ms[0], groups=GROUPS)
    kept = np.flatnonzero(np.asarray(keep))
    assert 0 < kept.size < 10
    m_ls = np.asarray(glrjax.debias(rxx, ryx, keep))
    ref = np.zeros_like(ryx)
    ref[:, kept] = np.linalg.solve(rxx[np.ix_(kept, kept)], ryx[:, kept].T).T
    np.testing.assert_allclose(m_ls, ref, atol=1e-10)


CASES = [
    ("altmin", glrjax.Implicit(tol=1e-12)),
    ("fista", glrjax.Implicit(tol=1e-12)),
    ("altmin", glrjax.Unrolled()),
    ("pgd", glrjax.Checkpointed(every=20)),
    ("altmin", glrjax.Truncated(last=60)),
]


@pytest.mark.parametrize(
    "method,mode", CASES, ids=[f"{m}-{type(g).__name__.lower()}" for m, g in CASES]
)
def test_gradients_with_groups(method, mode):
    """d/dλ and d/dRyx of a linear functional of M: central differences of tight solves."""
    rxx, ryx = small_problem(seed=2)
    lam = 0.15
    c = np.random.default_rng(3).standard_normal(ryx.shape)

    def tight(lam, ryx):
        m, _ = solve(rxx, ryx, lam, method="fista", groups=GROUPS, tol=1e-15, maxiter=50000)
        return float(np.sum(c * np.asarray(m)))

    def loss(lam, ryx):
        m, _ = solve(
            rxx, ryx, lam, method=method, groups=GROUPS, tol=1e-13, maxiter=600, gradient=mode
        )
        return jnp.sum(jnp.asarray(c) * m)

    g_lam, g_ryx = jax.jit(jax.grad(loss, argnums=(0, 1)))(lam, jnp.asarray(ryx))
    h = 1e-6
    fd_lam = (tight(lam + h, ryx) - tight(lam - h, ryx)) / (2 * h)
    e = np.zeros_like(ryx)
    e[1, 2] = h
    fd_ryx = (tight(lam, ryx + e) - tight(lam, ryx - e)) / (2 * h)
    rtol = 1e-2 if isinstance(mode, glrjax.Truncated) else 1e-5
    np.testing.assert_allclose(g_lam, fd_lam, rtol=rtol)
    np.testing.assert_allclose(g_ryx[1, 2], fd_ryx, rtol=rtol, atol=1e-8)


def test_float32_and_vmap_over_lambda():
    rxx, ryx = small_problem(seed=5)
    f32 = jax.jit(
        jax.vmap(
            lambda lam: glrjax.linear_reconstruction(
                jnp.asarray(rxx, jnp.float32),
                jnp.asarray(ryx, jnp.float32),
                lam,
                groups=GROUPS,
                tol=1e-6,
            )[0]
        )
    )
    lams = jnp.array([0.1, 0.3], jnp.float32)
    ms = f32(lams)
    assert ms.dtype == jnp.float32
    for lam, m in zip(lams, ms, strict=True):
        ref, _ = solve(rxx, ryx, float(lam), groups=GROUPS, tol=1e-12)
        np.testing.assert_allclose(m, ref, atol=2e-4)


# ----------------------------------------------------------------------------- convolutions
def conv(x, k, b):
    y = jax.lax.conv_general_dilated(
        x,
        k,
        (1, 1),
        "VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision=jax.lax.Precision.HIGHEST,
    )
    return y + b


def test_conv_patches_correlations_equal_a_direct_computation():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 6, 5, 2))  # NHWC, 7 images
    k = rng.standard_normal((3, 2, 2, 4))  # HWIO: 3×2 kernel, 2 → 4 channels
    w = k.transpose(3, 2, 0, 1).reshape(4, -1)  # (O, C·kh·kw), columns (c, u, v)

    def fn(xb):
        p = glrjax.conv_patches(xb, (3, 2))
        return p, p @ jnp.asarray(w).T

    rxx, ryx = glrjax.correlations(fn, jnp.asarray(x), batch_size=3, bias=True)
    # Direct: loop over images and output positions, read the patch entry by entry.
    rows = []
    for i in range(7):
        for r in range(6 - 3 + 1):
            for s in range(5 - 2 + 1):
                rows.append(
                    [x[i, r + u, s + v, c] for c in range(2) for u in range(3) for v in range(2)]
                    + [1.0]
                )
    p = np.array(rows)
    np.testing.assert_allclose(rxx, p.T @ p / len(p), atol=1e-12)
    np.testing.assert_allclose(ryx, (p[:, :-1] @ w.T).T @ p / len(p), atol=1e-12)
    # ... and the patches times W are the convolution.
    y = conv(jnp.asarray(x), jnp.asarray(k), 0.0)
    np.testing.assert_allclose(fn(jnp.asarray(x))[1], np.asarray(y).reshape(7, -1, 4), atol=1e-12)


def conv_then_linear(seed=0):
    """A conv (2 → 3 channels, 3×3) → ReLU → flatten (channel-major, 3 × 2×2) → linear 12 → 4,
    the linear layer's inputs in groups of one conv channel (4 columns each)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((400, 4, 4, 2))
    k = rng.standard_normal((3, 3, 2, 3))
    b = rng.standard_normal(3) * 0.3
    w = rng.standard_normal((4, 12))
    w[:, 4:8] *= 0.02  # channel 1 is almost unused by the linear layer
    c = rng.standard_normal(4)

    def features(xb):
        a = jax.nn.relu(conv(xb, jnp.asarray(k), jnp.asarray(b)))  # (n, 2, 2, 3)
        return a.transpose(0, 3, 1, 2).reshape(len(xb), -1)  # channel-major: groups of 4

    groups = np.arange(12).reshape(3, 4)
    return x, k, b, w, c, features, groups


def test_channel_groups_of_a_conv_then_linear_pair_match_the_reference():
    x, k, b, w, c, features, groups = conv_then_linear()

    def fn(xb):
        a = features(xb)
        return a, a @ jnp.asarray(w).T + jnp.asarray(c)

    rxx, ryx = glrjax.correlations(fn, jnp.asarray(x), batch_size=128, bias=True)
    rxx, ryx = np.asarray(rxx), np.asarray(ryx)
    lam = 0.5
    m, info = solve(
        rxx, ryx, lam, bias=True, groups=tuple(map(tuple, groups)), tol=1e-12, maxiter=20000
    )
    assert bool(info.converged)
    gl = [tuple(g) for g in groups] + [(12,)]
    check_optimality(m, rxx, ryx, lam, gl, [True] * 3 + [False], 1e-7)
    ref = brute_force(rxx, ryx, lam, [tuple(g) for g in groups])  # the bias: in no group
    f = np_objective(m, rxx, ryx, lam, groups)
    f_ref = np_objective(ref, rxx, ryx, lam, groups)
    assert f_ref - 1e-7 * abs(f_ref) <= f <= f_ref + 1e-12 * abs(f_ref)
    np.testing.assert_allclose(m, ref, atol=3e-3)
    keep = np.asarray(glrjax.support(m, bias=True, groups=tuple(map(tuple, groups))))
    assert keep[:12].tolist() == [True] * 4 + [False] * 4 + [True] * 4  # channel 1 removed


def test_removing_zero_channels_leaves_the_outputs_unchanged():
    """Collapse: drop conv filter 1 (and its bias) and the linear layer's columns 4..7,
    which are zero: the network's outputs are the same."""
    x, k, b, w, c, features, groups = conv_then_linear()
    w = w.copy()
    w[:, groups[1]] = 0.0
    full = features(jnp.asarray(x)) @ w.T + c
    keep = [0, 2]
    k2, b2 = k[..., keep], b[keep]
    a = jax.nn.relu(conv(jnp.asarray(x), jnp.asarray(k2), jnp.asarray(b2)))
    a = a.transpose(0, 3, 1, 2).reshape(len(x), -1)
    small = a @ w[:, groups[keep].ravel()].T + c
    np.testing.assert_allclose(small, full, atol=1e-12)


# ----------------------------------------------------------------------------- bad input
BAD_GROUPS = [
    (
        ((0, 1), (1, 2, 3, 4, 5)),
        ValueError,
        "overlap: column 1 is in groups\\[0\\] and groups\\[1\\]",
    ),
    (((0, 1), (2, 3)), ValueError, "do not cover"),
    (((0, 1, 2), (), (3, 4, 5)), ValueError, "groups\\[1\\] is empty"),
    (((0, 1, 2), (3, 4, 6)), ValueError, "outside"),
    (((0, 0, 1), (2, 3, 4, 5)), ValueError, "overlap"),
    (((0.0, 1.0), (2, 3, 4, 5)), TypeError, "integer"),
    ("abc", TypeError, "sequence"),
    (3, TypeError, "sequence"),
]


@pytest.mark.parametrize("groups,error,match", BAD_GROUPS)
def test_bad_groups_raise_clear_errors(groups, error, match):
    for fn in (
        lambda: glrjax.linear_reconstruction(np.eye(6), np.ones((2, 6)), 0.1, groups=groups),
        lambda: glrjax.lambda_max(np.eye(6), np.ones((2, 6)), groups=groups),
        lambda: glrjax.support(np.ones((2, 6)), groups=groups),
    ):
        with pytest.raises(error, match=match):
            fn()


def test_groups_with_bias_exclude_the_bias_column():
    with pytest.raises(ValueError, match="bias column excluded"):
        glrjax.linear_reconstruction(
            np.eye(6), np.ones((2, 6)), 0.1, bias=True, groups=((0, 1, 2), (3, 4, 5))
        )


def test_nan_in_the_correlations_is_reported_as_nan():
    rxx = np.eye(4)
    rxx[1, 1] = np.nan
    with pytest.raises(ValueError, match="Rxx has 1 NaN or infinite"):
        glrjax.linear_reconstruction(rxx, np.ones((2, 4)), 0.1)
    with pytest.raises(ValueError, match="Ryx has 1 NaN"):
        glrjax.linear_reconstruction(np.eye(4), np.array([[1.0, np.inf, 0, 0], [0, 0, 0, 0]]), 0.1)
