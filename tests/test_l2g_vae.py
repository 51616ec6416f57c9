"""L2G-VAE: the TopoDiffVAE block, the network under every gradient mode, save/load, bad input.

References are independent of the code under test: the plain solver glrjax.l2g.l2g (an
untrained VAE block is the projection it replaces), numpy, and central finite differences.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from glrjax import Checkpointed, Implicit, Truncated, Unrolled
from glrjax.l2g import l2g, synthetic_dataset
from glrjax.l2g_vae import (
    L2GVAEParams,
    VAEParams,
    init_l2g_vae_params,
    init_vae_params,
    l2g_vae,
    l2g_vae_loss,
    load_params,
    save_params,
    vae_block,
)

N, T = 5, 4  # 10 edges, 4 layers (3 on the engine + the VAE layer)
SIZES = dict(hidden=8, features=4, latent=3, dec_hidden=12)


def _data(n=N, count=3, seed=0):
    z, w = synthetic_dataset("ER", count, n, 400, seed=seed)
    return jnp.asarray(z), jnp.asarray(w)


def _params(dtype=jnp.float64, seed=0, layers=T, n=N):
    """Parameters whose VAE is not the identity: a non-zero decoder output layer."""
    p = init_l2g_vae_params(jax.random.key(seed), n, layers, 1.0, 0.5, dtype=dtype, **SIZES)
    (w1, b1), (w2, b2) = p.vae.dec
    w2 = 0.3 * jax.random.normal(jax.random.key(seed + 100), w2.shape, dtype)
    b2 = 0.05 * jax.random.normal(jax.random.key(seed + 200), b2.shape, dtype)
    (e1, c1), (e2, c2) = p.vae.edge
    e2 = 0.2 * jax.random.normal(jax.random.key(seed + 300), e2.shape, dtype)
    vae = p.vae._replace(dec=((w1, b1), (w2, b2)), edge=((e1, c1), (e2, c2)))
    return p._replace(vae=vae)


def test_vae_shapes():
    e = N * (N - 1) // 2
    vae = init_vae_params(jax.random.key(0), N, **SIZES)
    assert vae.enc[0][0].shape == (e, 8) and vae.enc[1][0].shape == (8, 4)
    assert vae.mean[0].shape == (4, 3) and vae.logvar[0].shape == (4, 3)
    assert vae.dec[0][0].shape == (e + 3, 12) and vae.dec[1][0].shape == (12, e)
    assert vae.edge[0][0].shape == (2, 16) and vae.edge[1][0].shape == (16, 1)
    v = jnp.linspace(-1.0, 1.0, e)
    w, kl = vae_block(vae, v, target=jnp.abs(v), key=jax.random.key(1))
    assert w.shape == (e,) and kl.shape == ()
    wb, klb = jax.vmap(lambda a: vae_block(vae, a))(jnp.stack([v, -v]))
    assert wb.shape == (2, e) and klb.shape == (2,)


def test_vae_output_is_nonnegative():
    p = _params()
    rng = np.random.default_rng(0)
    v = jnp.asarray(rng.standard_normal((64, 10)))
    target = jnp.abs(jnp.asarray(rng.standard_normal((64, 10))))
    keys = jax.random.split(jax.random.key(0), 64)
    w_tr, kl = jax.vmap(lambda a, t, k: vae_block(p.vae, a, target=t, key=k))(v, target, keys)
    w_te, _ = jax.vmap(lambda a: vae_block(p.vae, a))(v)
    for w in (w_tr, w_te):
        assert bool(jnp.all(w >= 0)) and bool(jnp.any(w > 0))
    assert bool(jnp.all(kl >= 0))  # KL(q ‖ prior) >= 0
    # The decoder does change the projection (otherwise the check above proves little).
    assert float(jnp.max(jnp.abs(w_te - jnp.maximum(v, 0)))) > 1e-2


def test_untrained_network_is_the_plain_solver():
    z, _ = _data()
    p = init_l2g_vae_params(jax.random.key(0), N, T, 1.0, 0.5, dtype=jnp.float64, **SIZES)
    for zz in z:
        ref, _ = l2g(zz, 1.0, 0.5, tol=0.0, maxiter=T)  # T steps of Condat–Vũ
        np.testing.assert_allclose(l2g_vae(zz, p).w, ref, rtol=1e-12, atol=1e-12)


def test_test_time_is_deterministic_given_a_key():
    z, w = _data()
    p = _params()
    k = jax.random.key(3)
    run = jax.jit(lambda zz, kk: l2g_vae(zz, p, key=kk).w)
    a, b = run(z[0], k), run(z[0], k)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, run(z[0], jax.random.key(4)))  # the key matters
    m1, m2 = l2g_vae(z[0], p).w, l2g_vae(z[0], p).w  # no key: the prior mean, h = 0
    np.testing.assert_array_equal(m1, m2)
    # Training: the same key gives the same sample; the KL term does not depend on it.
    t1 = l2g_vae(z[0], p, target=w[0], key=k)
    t2 = l2g_vae(z[0], p, target=w[0], key=k)
    np.testing.assert_array_equal(t1.w, t2.w)
    t3 = l2g_vae(z[0], p, target=w[0], key=jax.random.key(9))
    assert float(t1.kl) == pytest.approx(float(t3.kl), rel=1e-12)
    assert float(l2g_vae(z[0], p).kl) == 0.0


def test_kl_matches_closed_form():
    p = _params()
    v = jnp.linspace(-0.5, 0.5, 10)
    target = jnp.abs(jnp.cos(jnp.arange(10.0)))
    _, kl = vae_block(p.vae, v, target=target, key=jax.random.key(0))
    vae = jax.tree_util.tree_map(np.asarray, p.vae)

    def mlp(layers, x):
        for i, (w, b) in enumerate(layers):
            x = x @ w + b
            if i < len(layers) - 1:
                x = np.tanh(x)
        return x

    d = np.tanh(mlp(vae.enc, np.asarray(target))) - np.tanh(mlp(vae.enc, np.maximum(v, 0)))
    mu = d @ vae.mean[0] + vae.mean[1]
    var = np.exp(-np.abs(d @ vae.logvar[0] + vae.logvar[1]))
    ref = np.mean(0.5 * (var + mu**2 - 1 - np.log(var)))  # KL(N(mu, var) ‖ N(0, 1)) per dim
    assert float(kl) == pytest.approx(ref, rel=1e-10)


def _directional_fd(loss, p, eps=1e-6, seed=0):
    flat, unravel = ravel_pytree(p)
    d = jnp.asarray(np.random.default_rng(seed).standard_normal(flat.shape))
    d = d / jnp.linalg.norm(d)
    fd = (loss(unravel(flat + eps * d)) - loss(unravel(flat - eps * d))) / (2 * eps)
    g = ravel_pytree(jax.grad(loss)(p))[0]
    return float(jnp.vdot(g, d)), float(fd)


@pytest.mark.parametrize(
    "mode", [Unrolled(), Checkpointed(every=2), Truncated(last=T - 1)], ids=repr
)
def test_gradient_through_the_network_matches_finite_differences(mode):
    z, w = _data()
    p = _params()
    key = jax.random.key(7)
    loss = jax.jit(lambda q: l2g_vae_loss(q, z, w, key, gradient=mode))
    ad, fd = _directional_fd(loss, p)
    assert abs(ad) > 1e-4
    assert ad == pytest.approx(fd, rel=1e-6, abs=1e-9)


def test_truncated_cuts_the_early_layers():
    z, w = _data()
    p = _params()
    key = jax.random.key(7)
    full = jax.grad(lambda q: l2g_vae_loss(q, z, w, key, gradient=Unrolled()))(p)
    cut = jax.grad(lambda q: l2g_vae_loss(q, z, w, key, gradient=Truncated(last=1)))(p)
    # Engine layers 0 and 1 are before the last kept step: zero gradient; layer 2 is kept.
    assert float(jnp.max(jnp.abs(cut.unrolled.alpha[:2]))) == 0.0
    assert float(jnp.max(jnp.abs(full.unrolled.alpha[:2]))) > 0.0
    assert float(jnp.abs(cut.unrolled.alpha[2])) > 0.0
    # The VAE layer is always differentiated by backprop.
    assert float(jnp.max(jnp.abs(cut.vae.dec[1][0]))) > 0.0


def test_implicit_gradient_matches_finite_differences_of_the_converged_network():
    z, w = _data()
    p = _params()
    key = jax.random.key(7)
    mode = Implicit(tol=1e-12, maxiter=200)
    loss = jax.jit(lambda q: l2g_vae_loss(q, z, w, key, gradient=mode, tol=1e-13, maxiter=20000))
    ad, fd = _directional_fd(loss, p, eps=1e-5)
    assert abs(ad) > 1e-4
    assert ad == pytest.approx(fd, rel=1e-4, abs=1e-8)
    # Layers before the fixed point's own layer (T - 2) get zero gradient by construction.
    g = jax.grad(loss)(p)
    assert float(jnp.max(jnp.abs(g.unrolled.beta[: T - 2]))) == 0.0
    assert float(jnp.abs(g.unrolled.beta[T - 2])) > 0.0


def test_float32_and_jit_vmap():
    z, w = _data()
    p64 = _params()
    p32 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), p64)
    f = jax.jit(jax.vmap(lambda zz, q: l2g_vae(zz, q).w, in_axes=(0, None)))
    w32 = f(z.astype(jnp.float32), p32)
    w64 = f(z, p64)
    assert w32.dtype == jnp.float32 and w64.dtype == jnp.float64
    np.testing.assert_allclose(w32, w64, rtol=1e-4, atol=1e-5)
    g = jax.grad(lambda q: l2g_vae_loss(q, z.astype(jnp.float32), w, jax.random.key(0)))(p32)
    assert all(bool(jnp.all(jnp.isfinite(a))) for a in jax.tree_util.tree_leaves(g))


def test_save_load_round_trip(tmp_path):
    z, _ = _data()
    p = _params(jnp.float32)
    path = tmp_path / "l2g_vae.npz"
    save_params(path, p)
    q = load_params(path)
    assert isinstance(q, L2GVAEParams) and isinstance(q.vae, VAEParams)
    for a, b in zip(jax.tree_util.tree_leaves(p), jax.tree_util.tree_leaves(q), strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    zz = z[0].astype(jnp.float32)
    np.testing.assert_array_equal(l2g_vae(zz, p).w, l2g_vae(zz, q).w)
    with pytest.raises(TypeError, match="L2GVAEParams"):
        save_params(path, p.vae)


def test_bad_input():
    z, w = _data()
    p = _params()
    z6, _ = _data(n=6)
    with pytest.raises(ValueError, match="built for 5 nodes"):
        l2g_vae(z6[0], p)
    with pytest.raises(ValueError, match="N\\(N-1\\)/2"):
        l2g_vae(z[0, :7], p)
    with pytest.raises(ValueError, match="target"):
        l2g_vae(z[0], p, target=-w[0], key=jax.random.key(0))
    with pytest.raises(ValueError, match="w_true"):
        l2g_vae_loss(p, z, w.at[0, 0].set(-1.0), jax.random.key(0))
    for bad in (0, np.arange(3), jnp.zeros(2)):
        with pytest.raises(TypeError, match="PRNG key"):
            l2g_vae(z[0], p, key=bad)
    with pytest.raises(TypeError, match="PRNG key"):
        l2g_vae_loss(p, z, w, 1)
    with pytest.raises(TypeError, match="L2GVAEParams"):
        l2g_vae(z[0], p.unrolled)
    with pytest.raises(ValueError, match="layers"):
        init_l2g_vae_params(jax.random.key(0), N, 1, 1.0, 0.5)
    with pytest.raises(TypeError, match="gradient"):
        l2g_vae(z[0], p, gradient="unrolled")


def test_per_edge_mlp_gradient_leaf_by_leaf_under_vmap():
    # The per-edge branch has its own backward pass (one hidden unit at a time); check each
    # of its weights, and the input, against central differences, on a batch via vmap.
    p = _params()
    v = jnp.asarray(np.random.default_rng(3).uniform(-0.2, 1.0, (3, 10)))
    vae0 = p.vae

    def loss(edge, v):
        vae = vae0._replace(edge=edge)
        w, _ = jax.vmap(lambda x: vae_block(vae, x))(v)
        return jnp.sum(jnp.sin(3.0 * w))

    g_edge, g_v = jax.jit(jax.grad(loss, argnums=(0, 1)))(vae0.edge, v)
    eps = 1e-6
    for leaf in range(4):
        flat, unravel = ravel_pytree(vae0.edge)
        sizes = [x.size for x in jax.tree.leaves(vae0.edge)]
        start = sum(sizes[:leaf])
        ad = ravel_pytree(g_edge)[0][start : start + sizes[leaf]]
        fd = []
        for i in range(start, start + sizes[leaf]):
            e = jnp.zeros_like(flat).at[i].set(eps)
            fd.append((loss(unravel(flat + e), v) - loss(unravel(flat - e), v)) / (2 * eps))
        assert float(jnp.max(jnp.abs(ad))) > 1e-3
        np.testing.assert_allclose(np.asarray(ad), np.asarray(fd), rtol=1e-6, atol=1e-9)
    i, j = 1, 4
    e = jnp.zeros_like(v).at[i, j].set(eps)
    fd = (loss(vae0.edge, v + e) - loss(vae0.edge, v - e)) / (2 * eps)
    assert float(g_v[i, j]) == pytest.approx(float(fd), rel=1e-6)


def test_forward_mode_through_the_network():
    # jax.jvp along a random parameter direction equals central differences (Unrolled).
    z, w = _data()
    p = _params()
    flat, unravel = ravel_pytree(p)
    d = jnp.asarray(np.random.default_rng(5).standard_normal(flat.shape))

    def f(q):
        return jax.vmap(lambda zz: l2g_vae(zz, q).w)(z)

    _, tangent = jax.jit(lambda q, t: jax.jvp(f, (q,), (t,)))(p, unravel(d))
    eps = 1e-6
    fd = (f(unravel(flat + eps * d)) - f(unravel(flat - eps * d))) / (2 * eps)
    assert float(jnp.max(jnp.abs(tangent))) > 1e-3
    np.testing.assert_allclose(np.asarray(tangent), np.asarray(fd), rtol=1e-6, atol=1e-8)


def test_edge_features_against_numpy():
    # (p_e / s, (P²)_e / s²) with s = Σp²/Σp, P the adjacency of p (numpy, by hand).
    from glrjax.l2g_vae import _edge_features

    n = 6
    p = np.maximum(np.random.default_rng(4).standard_normal(n * (n - 1) // 2), 0.0)
    i, j = np.triu_indices(n, 1)
    a = np.zeros((n, n))
    a[i, j] = a[j, i] = p
    s = np.sum(p * p) / np.sum(p)
    feats, scale = _edge_features(jnp.asarray(p))
    np.testing.assert_allclose(float(scale), s, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(feats[:, 0]), p / s, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(feats[:, 1]), (a @ a)[i, j] / s**2, rtol=1e-12)
    feats, scale = _edge_features(jnp.zeros(3))  # an empty estimate: scale 1, no NaN
    assert float(scale) == 1.0 and np.all(np.asarray(feats) == 0)
    # The two-step feature has its own JVP rule: both modes against finite differences.
    from jax.test_util import check_grads

    check_grads(lambda q: _edge_features(q)[0], (jnp.asarray(p),), order=1, modes=("fwd", "rev"))
