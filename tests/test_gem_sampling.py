"""sample_gmrf against the dense covariance (numpy), and GEM recovering a k-NN GMRF from it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import glrjax
from glrjax import gem
from glrjax.graph.knn import knn_edges


def _random_weights(graph, rng):
    w = np.asarray(graph.weights)
    return graph.with_weights(jnp.asarray(np.where(w > 0, rng.uniform(0.5, 1.5, w.shape), 0.0)))


@pytest.mark.parametrize("kind", ["grid", "edges"])
def test_sample_covariance_matches_the_dense_inverse(kind):
    rng = np.random.default_rng(0)
    if kind == "grid":
        g = glrjax.GridGraph.window(3, 3, radius=1, dtype=jnp.float64)
    else:
        src, dst = knn_edges(rng.uniform(size=(8, 2)), 2)
        g = glrjax.EdgeGraph(jnp.asarray(src), jnp.asarray(dst), jnp.ones(src.size), 8)
    g = _random_weights(g, rng)
    delta, num = 0.5, 100_000
    x, info = gem.sample_gmrf(g, delta, num, jax.random.key(1))
    assert x.shape == (num,) + g.node_shape and x.dtype == jnp.float64
    assert bool(info.converged.all())
    n = int(np.prod(g.node_shape))
    ref = np.linalg.inv(np.asarray(glrjax.to_dense(g)) + delta * np.eye(n))
    cov = np.cov(np.asarray(x).reshape(num, n).T)
    # standard error of a sample covariance entry: sqrt((S_ii S_jj + S_ij²)/num)
    se = np.sqrt((np.outer(np.diag(ref), np.diag(ref)) + ref**2) / num)
    assert np.all(np.abs(cov - ref) < 5 * se), np.max(np.abs(cov - ref) / se)
    np.testing.assert_allclose(np.asarray(x).mean(0), 0.0, atol=5 * np.sqrt(ref.max() / num))


def test_float32_jit_and_same_key_same_samples():
    g = glrjax.GridGraph.window(4, 4, radius=1)
    x, info = jax.jit(gem.sample_gmrf, static_argnums=2)(g, 0.5, 4, jax.random.key(0))
    assert x.dtype == jnp.float32 and bool(info.converged.all())
    x2, _ = gem.sample_gmrf(g, 0.5, 4, jax.random.key(0))
    np.testing.assert_allclose(x, x2, rtol=1e-5, atol=1e-6)
    x3, _ = gem.sample_gmrf(g, 0.5, 4, jax.random.key(1))
    assert not np.allclose(x, x3)


def test_gem_fit_recovers_a_knn_gmrf_sampled_by_sample_gmrf():
    # The scale benchmark's problem at N = 300: truth = half of the 4-NN candidate edges.
    rng = np.random.default_rng(3)
    n = 300
    src, dst = knn_edges(rng.uniform(size=(n, 2)), 4)
    keep = rng.uniform(size=src.size) < 0.5
    w = np.where(keep, rng.uniform(0.5, 1.5, src.size), 0.0)
    truth = glrjax.EdgeGraph(jnp.asarray(src), jnp.asarray(dst), jnp.asarray(w), n)
    x, _ = gem.sample_gmrf(truth, 0.5, 200, jax.random.key(0))
    y = x + 0.1 * jax.random.normal(jax.random.key(1), x.shape)
    g0 = truth.with_weights(jnp.ones(src.size))
    g, hist = gem.gem_fit(
        y,
        g0,
        sigma=0.1,
        delta=0.5,
        gamma=0.1,
        iterations=5,
        steps=10,
        estimator=gem.Coloured(distance=2),
    )
    est = np.asarray(g.weights) > 0
    f1 = 2 * np.sum(est & keep) / (est.sum() + keep.sum())
    assert f1 >= 0.85, f1
    assert np.all(np.diff(np.asarray(hist.edges)) <= 0)
    assert hist.info.converged.shape == (5,) and bool(np.all(hist.info.converged))
    assert np.all(np.asarray(hist.info.residual) <= 1e-6)


def test_bad_input():
    g = glrjax.GridGraph.window(3, 3, radius=1)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="delta"):
        gem.sample_gmrf(g, 0.0, 2, key)
    with pytest.raises(ValueError, match="num"):
        gem.sample_gmrf(g, 0.5, 0, key)
    with pytest.raises(TypeError, match="PRNG key"):
        gem.sample_gmrf(g, 0.5, 2, 0)
    with pytest.raises(ValueError, match="negative edge weights"):
        gem.sample_gmrf(g.with_weights(-g.weights), 0.5, 2, key)
