"""Spectral clustering against dense numpy references and scikit-learn's SpectralClustering."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from sklearn.cluster import KMeans, SpectralClustering
from sklearn.datasets import make_blobs, make_moons
from sklearn.metrics import adjusted_rand_score

import glrjax
from glrjax import spectral


def dense_affinity(graph):
    """W from the dense Laplacian D − W (glrjax.to_dense), as numpy."""
    lap = np.asarray(glrjax.to_dense(graph))
    return np.diag(np.diag(lap)) - lap


def dense_normalized_adjacency(graph):
    w = dense_affinity(graph)
    s = 1.0 / np.sqrt(w.sum(1))
    return s[:, None] * w * s[None, :]


def blobs_graph(n=60, k=3, seed=0, gamma=2.0):
    x, y = make_blobs(n, centers=k, cluster_std=0.6, random_state=seed)
    return spectral.rbf_graph(jnp.asarray(x), gamma), y


def test_operators_match_dense_matrices_on_edge_and_grid_graphs():
    rng = np.random.default_rng(0)
    g, _ = blobs_graph(20)
    grid = glrjax.GridGraph.window(4, 5, radius=1, weights=rng.uniform(0.1, 2.0, (4, 4, 5)))
    for graph in [g, grid]:
        a = dense_normalized_adjacency(graph)
        shape = graph.node_shape
        x = rng.standard_normal((3,) + shape)  # a block of three signals
        got = np.asarray(spectral.normalized_adjacency_matvec(graph, jnp.asarray(x)))
        want = (a @ x.reshape(3, -1).T).T.reshape(x.shape)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
        got = np.asarray(spectral.normalized_laplacian_matvec(graph, jnp.asarray(x)))
        np.testing.assert_allclose(got, x - want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("eigensolver", [spectral.Lobpcg(), spectral.Dense()])
def test_embedding_spans_the_leading_eigenvectors_of_numpy_eigh(eigensolver):
    g, _ = blobs_graph(60, k=3)
    vals, vecs = np.linalg.eigh(dense_normalized_adjacency(g))
    u, info = spectral.spectral_embedding(g, 3, jax.random.key(1), eigensolver=eigensolver)
    assert bool(info.converged) and np.all(np.asarray(info.residuals) <= 1e-8)
    np.testing.assert_allclose(info.eigenvalues, vals[::-1][:3], atol=1e-10)
    angles = scipy.linalg.subspace_angles(np.asarray(u), vecs[:, ::-1][:, :3])
    assert np.max(angles) < 1e-6, angles
    np.testing.assert_allclose(np.asarray(u).T @ np.asarray(u), np.eye(3), atol=1e-10)
    # The residuals in info are the true ones of the returned vectors.
    a = dense_normalized_adjacency(g)
    r = np.linalg.norm(a @ np.asarray(u) - np.asarray(u) * np.asarray(info.eigenvalues), axis=0)
    np.testing.assert_allclose(info.residuals, r, atol=1e-12)


def test_grid_graph_embedding_has_node_shape():
    rng = np.random.default_rng(2)
    grid = glrjax.GridGraph.window(8, 8, radius=1, weights=rng.uniform(0.5, 1.0, (4, 8, 8)))
    u, info = spectral.spectral_embedding(grid, 2)
    assert u.shape == (8, 8, 2) and bool(info.converged)
    vals, vecs = np.linalg.eigh(dense_normalized_adjacency(grid))
    angles = scipy.linalg.subspace_angles(np.asarray(u).reshape(64, 2), vecs[:, ::-1][:, :2])
    assert np.max(angles) < 1e-6


def test_labels_agree_with_scikit_learn_spectral_clustering():
    x, y = make_moons(120, noise=0.06, random_state=0)
    g = spectral.rbf_graph(jnp.asarray(x), 30.0)
    labels, emb, info = glrjax.spectral_clustering(g, 2, jax.random.key(0))
    sk = SpectralClustering(2, affinity="precomputed", random_state=0).fit_predict(
        dense_affinity(g)
    )
    assert labels.dtype == jnp.int32 and emb.shape == (120, 2)
    assert adjusted_rand_score(sk, np.asarray(labels)) >= 0.95
    assert adjusted_rand_score(y, np.asarray(labels)) >= adjusted_rand_score(y, sk) - 1e-12
    # scikit-learn's own embedding scaling (D^-1/2 U) gives the same partition here.
    labels_rw, _, _ = glrjax.spectral_clustering(
        g, 2, jax.random.key(0), scaling=spectral.RandomWalk()
    )
    assert adjusted_rand_score(sk, np.asarray(labels_rw)) >= 0.95


def test_kmeans_matches_scikit_learn_inertia():
    x, _ = make_blobs(150, centers=4, cluster_std=1.5, random_state=3)
    labels, centers, inertia = spectral.kmeans(jnp.asarray(x), 4, jax.random.key(0))
    sk = KMeans(4, n_init=10, random_state=0).fit(x)
    assert float(inertia) <= sk.inertia_ * (1 + 1e-6)
    # The inertia reported is that of the returned labels and centers.
    c = np.asarray(centers)
    want = np.sum((x - c[np.asarray(labels)]) ** 2)
    np.testing.assert_allclose(float(inertia), want, rtol=1e-10)
    assert adjusted_rand_score(sk.labels_, np.asarray(labels)) > 0.95


def test_isolated_nodes_raise_eagerly_and_get_label_minus_one_under_jit():
    g, _ = blobs_graph(30)
    w = g.weights.at[(g.src == 0) | (g.dst == 0)].set(0.0)  # node 0 loses all its edges
    lonely = glrjax.EdgeGraph(g.src, g.dst, w, g.num_nodes)
    with pytest.raises(ValueError, match="isolated"):
        glrjax.spectral_clustering(lonely, 3, jax.random.key(0))
    run = jax.jit(lambda graph, key: glrjax.spectral_clustering(graph, 3, key))
    labels, emb, info = run(lonely, jax.random.key(0))
    assert int(labels[0]) == -1 and int(info.isolated) == 1
    assert np.all(np.asarray(labels[1:]) >= 0)
    np.testing.assert_array_equal(emb[0], 0.0)


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda g: glrjax.spectral_clustering(g, 0, jax.random.key(0)), ValueError, "k=0"),
        (lambda g: glrjax.spectral_clustering(g, 31, jax.random.key(0)), ValueError, "k=31"),
        (lambda g: glrjax.spectral_clustering(g, 2.0, jax.random.key(0)), TypeError, "k=2.0"),
        (
            lambda g: glrjax.spectral_clustering(
                glrjax.EdgeGraph(g.src, g.dst, g.weights.at[3].set(-0.5), g.num_nodes),
                2,
                jax.random.key(0),
            ),
            ValueError,
            "negative",
        ),
        (lambda g: glrjax.spectral_clustering(np.eye(3), 2, jax.random.key(0)), TypeError, "graph"),
        (
            lambda g: spectral.spectral_embedding(g, 6, eigensolver=spectral.Lobpcg()),
            ValueError,
            "Dense()",
        ),
        (
            lambda g: spectral.spectral_embedding(g, 2, eigensolver=spectral.Dense),
            TypeError,
            "eigensolver",
        ),
        (
            lambda g: glrjax.spectral_clustering(g, 2, jax.random.key(0), scaling="rows"),
            TypeError,
            "scaling",
        ),
        (lambda g: spectral.kmeans(jnp.ones(5), 2, jax.random.key(0)), ValueError, "(N, d)"),
    ],
)
def test_bad_input_raises_a_clear_error(call, error, match):
    g, _ = blobs_graph(30)
    with pytest.raises(error) as info:
        call(g)
    assert match in str(info.value), str(info.value)
