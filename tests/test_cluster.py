"""Clustering wrappers, camera-entropy weights and diagnostics against loops from the definitions."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from helpers import brute_knn
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.cluster import DBSCAN
from sklearn.metrics import adjusted_rand_score

from labelrefine.cluster import (
    camera_weights,
    cluster_per_camera,
    cluster_stats,
    dbscan_cluster,
    infomap_cluster,
    suggest_eps,
)
from labelrefine.synthetic import make_camera_biased


def loop_camera_weights(labels, cams):
    weights = []
    for cluster in sorted(set(labels) - {-1}):  # one weight per cluster, in increasing order of id
        members = [c for lab, c in zip(labels, cams, strict=True) if lab == cluster]
        shares = [members.count(c) / len(members) for c in set(members)]
        weights.append(math.log(1 + -sum(s * math.log(s) for s in shares)))
    return np.array(weights)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(-1, 6), st.sampled_from("abcd")), min_size=1, max_size=60))
def test_camera_weights_equal_loop(pairs):
    labels = [p[0] for p in pairs]
    cams = [p[1] for p in pairs]
    np.testing.assert_allclose(camera_weights(labels, cams), loop_camera_weights(labels, cams), atol=1e-12)


def test_camera_weights_hand_made():
    weights = camera_weights([0, 0, 0, 0, 1, 1], [0, 1, 2, 3, 5, 5])
    np.testing.assert_allclose(weights, [math.log(1 + math.log(4)), 0.0])


def test_camera_weights_factorise_huge_ids():
    # ids near 1e12 (and uint64 ids) must not allocate max(label) + 1 entries
    labels = np.array([10**12, 10**12, 5, 5, -1])
    weights = camera_weights(labels, [0, 1, 0, 0, 1])
    np.testing.assert_allclose(weights, [0.0, math.log(1 + math.log(2))])  # id 5 first, then 10**12
    np.testing.assert_allclose(camera_weights(labels.astype(np.uint64)[:4], [0, 1, 0, 0]), weights)


def test_cluster_stats():
    stats = cluster_stats(np.array([3, 3, 3, -1, 7, 9, 9, -1]))
    assert (stats.n_samples, stats.n_clusters, stats.n_outliers) == (8, 3, 2)
    assert stats.size_histogram == {1: 1, 2: 1, 3: 1}
    assert stats.outlier_ratio == 0.25
    assert cluster_stats([]).n_clusters == 0


def loop_kth_distance(indices, distances, rank):
    out = []
    for i in range(len(indices)):
        others = [d for j, d in zip(indices[i], distances[i], strict=True) if j != i]
        out.append(others[rank - 1])
    return np.array(out)


@pytest.mark.parametrize("rank", [1, 3])
def test_suggest_eps_from_graph_and_sparse_matrix(rank):
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(40, 5))
    graph = brute_knn(feats, 6)
    expected = np.quantile(loop_kth_distance(*graph, rank), 0.3)
    assert suggest_eps(graph, rank=rank, quantile=0.3) == pytest.approx(expected)
    n = len(feats)
    rows = np.repeat(np.arange(n), 6)
    matrix = sp.csr_matrix((graph[1].ravel() + 1e-9, (rows, graph[0].ravel())), shape=(n, n))
    assert suggest_eps(matrix, rank=rank, quantile=0.3) == pytest.approx(expected, abs=1e-6)


def test_suggest_eps_rows_without_enough_neighbours_count_as_distance_one():
    matrix = sp.csr_matrix(np.array([[0, 0.2, 0], [0.2, 0, 0], [0, 0, 0]]))
    assert suggest_eps(matrix, rank=1, quantile=1.0) == 1.0


def random_sparse_distances(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)) * 0.3 + rng.integers(0, 4, size=(n, 1))
    dense = np.minimum(np.linalg.norm(x[:, None] - x[None], axis=-1) / 2, 1.0)
    stored = np.where(dense < 1.0, dense, 0.0)
    matrix = sp.csr_matrix(stored)
    matrix.setdiag(0.0)  # explicit zeros: each point is its own neighbour
    return dense, matrix


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sparse_dbscan_equals_dense_dbscan(seed):
    dense, matrix = random_sparse_distances(120, seed)
    expected = DBSCAN(eps=0.2, min_samples=4, metric="precomputed").fit_predict(dense)
    labels = dbscan_cluster(matrix, eps=0.2, min_samples=4)
    assert adjusted_rand_score(expected, labels) == 1.0
    np.testing.assert_array_equal(labels == -1, expected == -1)


@pytest.mark.requires("infomap")
def test_infomap_recovers_separated_blobs_and_drops_small_clusters():
    rng = np.random.default_rng(0)
    centres = np.eye(8)[:4] * 10
    feats = np.concatenate([centres[i] + rng.normal(size=(15, 8)) * 0.3 for i in range(4)] + [-np.ones((1, 8))])
    truth = np.repeat([0, 1, 2, 3, -1], [15, 15, 15, 15, 1])
    labels = infomap_cluster(brute_knn(feats, 8), min_sim=0.5, rng=1)
    assert adjusted_rand_score(truth[:-1], labels[:-1]) == 1.0
    assert labels[-1] == -1  # a point with no edge is a singleton: dropped
    # whatever the seed: with seed 26 Infomap itself put the point in a module of 15
    assert all(infomap_cluster(brute_knn(feats, 8), min_sim=0.5, rng=seed)[-1] == -1 for seed in (26, 27))
    big_only = infomap_cluster(brute_knn(feats, 8), min_sim=0.5, min_size=15, rng=1)
    assert (big_only == -1).all()


@pytest.mark.requires("infomap")
def test_infomap_edges_respect_min_sim():
    feats = np.random.default_rng(1).normal(size=(30, 4))
    assert (infomap_cluster(brute_knn(feats, 5), min_sim=1.0) == -1).all()  # no edge survives


def test_cluster_per_camera_is_camera_pure_and_matches_per_camera_agglomerative():
    from sklearn.cluster import AgglomerativeClustering

    from labelrefine.neighbors import jaccard_distance

    data = make_camera_biased(n_ids=30, n_cams=3, rng=2)
    local = cluster_per_camera(data.feats, data.cams, k1=10, k2=3)
    for cam in range(3):
        members = np.flatnonzero(data.cams == cam)
        assert set(np.unique(local[members])).isdisjoint(set(np.unique(local[data.cams != cam])))
        stored = jaccard_distance(data.feats[members], k1=10, k2=3).tocoo()
        dense = np.ones(stored.shape)  # a pair not stored has distance 1
        dense[stored.row, stored.col] = stored.data
        expected = AgglomerativeClustering(
            n_clusters=len(members) // 5, metric="precomputed", linkage="average"
        ).fit_predict(dense)
        assert adjusted_rand_score(expected, local[members]) == 1.0


@pytest.mark.parametrize("method", ["dbscan", pytest.param("infomap", marks=pytest.mark.requires("infomap"))])
def test_cluster_per_camera_sparse_methods_are_camera_pure(method):
    data = make_camera_biased(n_ids=30, n_cams=3, rng=2)
    local = cluster_per_camera(data.feats, data.cams, method=method, k1=10, k2=3, k=8, rng=0)
    for label in set(local.tolist()) - {-1}:
        assert len(set(data.cams[local == label].tolist())) == 1
    assert (local >= 0).mean() > 0.5  # all -1 would be camera-pure too


def test_bad_inputs():
    _, matrix = random_sparse_distances(10, 0)
    with pytest.raises(ValueError, match=r"eps must be in \(0, 1\), got 1.5"):
        dbscan_cluster(matrix, eps=1.5)
    with pytest.raises(ValueError, match=r"jaccard must be a square \(N, N\) distance matrix .*got shape \(2, 3\)"):
        dbscan_cluster(sp.csr_matrix(np.zeros((2, 3))))
    with pytest.raises(ValueError, match="method must be one of 'agglomerative', 'dbscan', 'infomap'; got 'kmeans'"):
        cluster_per_camera(np.ones((4, 2)), [0, 0, 1, 1], method="kmeans")
    with pytest.raises(ValueError, match="cams must have length 4"):
        cluster_per_camera(np.ones((4, 2)), [0, 0, 1])
    with pytest.raises(ValueError, match=r"min_sim must be in \[0, 1\], got 2"):
        infomap_cluster(brute_knn(np.eye(4), 2), min_sim=2)
    with pytest.raises(
        ValueError, match=r"rng must be None, an int seed or a numpy.random.Generator, got -1: int seeds must be >= 0"
    ):
        infomap_cluster(brute_knn(np.eye(4), 2), rng=-1)
    with pytest.raises(ValueError, match="labels must have the same length|same length"):
        camera_weights([0, 1], [0])
    with pytest.raises(ValueError, match="rank=5 needs at least 5 neighbours"):
        suggest_eps(brute_knn(np.eye(4), 3), rank=5)


def test_infomap_survives_faiss_imported_in_the_same_process():
    pytest.importorskip("faiss")
    code = (
        "import infomap, faiss, numpy as np\n"  # this import order made SWIG iterators crash
        "from labelrefine.cluster import infomap_cluster\n"
        "x = np.repeat(np.eye(3), 4, axis=0) + 0.01 * np.random.default_rng(0).normal(size=(12, 3))\n"
        "from labelrefine.neighbors import knn\n"
        "print(len(set(infomap_cluster(knn(x, 4, backend='faiss')).tolist())))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "3"


def test_dbscan_on_jaccard_kept_within_eps_equals_dbscan_on_all_pairs():
    from labelrefine.neighbors import jaccard_distance

    data = make_camera_biased(n_ids=40, n_cams=3, rng=4)
    full = dbscan_cluster(jaccard_distance(data.feats, k1=15, k2=4), eps=0.5)
    within = dbscan_cluster(jaccard_distance(data.feats, k1=15, k2=4, max_distance=0.5), eps=0.5)
    np.testing.assert_array_equal(full, within)
    assert (full >= 0).any()


@pytest.mark.requires("infomap")
def test_infomap_and_dbscan_find_the_clusters_not_just_agree_on_noise():
    # well separated blobs: a clustering that returns all -1 (or one cluster) must fail here
    rng = np.random.default_rng(5)
    feats = np.repeat(np.eye(6) * 5, 12, axis=0) + 0.2 * rng.normal(size=(72, 6))
    truth = np.repeat(np.arange(6), 12)
    from labelrefine.neighbors import jaccard_distance, knn

    assert adjusted_rand_score(truth, infomap_cluster(knn(feats, 8), min_sim=0.5, rng=1)) == 1.0
    assert adjusted_rand_score(truth, dbscan_cluster(jaccard_distance(feats, k1=10, k2=3), eps=0.6)) == 1.0
    cams = np.tile([0, 1], 36)
    for method in ("agglomerative", "dbscan", "infomap"):
        local = cluster_per_camera(feats, cams, method=method, k1=5, k2=2, k=4, images_per_cluster=6, rng=0)
        for cam in (0, 1):
            members = cams == cam
            assert adjusted_rand_score(truth[members], local[members]) == 1.0, method


def test_dbscan_refuses_dense_and_non_distance_inputs():
    _, matrix = random_sparse_distances(10, 0)
    with pytest.raises(TypeError, match=r"jaccard must be a scipy.sparse distance matrix .* got ndarray.*toarray\(\)"):
        dbscan_cluster(matrix.toarray())
    with pytest.raises(TypeError, match=r"jaccard must be a scipy.sparse distance matrix .* got str"):
        dbscan_cluster("jaccard.npz")
    with pytest.raises(ValueError, match=r"jaccard must hold distances >= 0, got minimum -0.5"):
        dbscan_cluster(sp.csr_matrix(np.array([[0.0, -0.5], [-0.5, 0.0]])))
    with pytest.raises(ValueError, match=r"jaccard must not be empty, got shape \(0, 0\)"):
        dbscan_cluster(sp.csr_matrix((0, 0)))
    with pytest.raises(ValueError, match=r"jaccard must be a square \(N, N\) distance matrix \(not features\), got"):
        dbscan_cluster(sp.csr_matrix(np.ones((10, 4))))
    with pytest.raises(TypeError, match=r"eps must be a real number in \(0, 1\), got '0.5'"):
        dbscan_cluster(matrix, eps="0.5")


def test_dbscan_accepts_numpy_scalar_eps():
    _, matrix = random_sparse_distances(60, 1)
    np.testing.assert_array_equal(dbscan_cluster(matrix, eps=np.float32(0.2)), dbscan_cluster(matrix, eps=0.2))


def test_suggest_eps_and_infomap_refuse_empty_input():
    empty = (np.zeros((0, 3), np.int64), np.zeros((0, 3)))
    with pytest.raises(ValueError, match=r"distances must not be empty, got a kNN graph of shape \(0, 3\)"):
        suggest_eps(empty)
    with pytest.raises(ValueError, match=r"distances must not be empty, got shape \(0, 0\)"):
        suggest_eps(sp.csr_matrix((0, 0)))
    with pytest.raises(ValueError, match=r"knn must not be empty \(one row per sample\), got a graph with 0 rows"):
        infomap_cluster(empty)


def test_cluster_per_camera_names_its_own_arguments():
    feats = np.random.default_rng(0).normal(size=(12, 3))
    with pytest.raises(ValueError, match=r"^eps must be in \(0, 1\), got 2$"):
        cluster_per_camera(feats, [0] * 12, method="dbscan", eps=2)
    with pytest.raises(ValueError, match=r"^min_sim must be in \[0, 1\], got -1$"):
        cluster_per_camera(feats, [0] * 12, method="infomap", min_sim=-1)


@pytest.mark.parametrize("func", ["infomap", "jaccard", "suggest_eps"])
def test_graph_consumers_refuse_negative_distances_and_similarities(func):
    from labelrefine.neighbors import jaccard_distance

    rng = np.random.default_rng(0)
    indices, distances = brute_knn(rng.normal(size=(20, 4)), 6)
    call = {
        "infomap": lambda g: infomap_cluster(g),
        "jaccard": lambda g: jaccard_distance(knn=g, k1=5, k2=2),
        "suggest_eps": lambda g: suggest_eps(g, rank=2),
    }[func]
    name = "distances" if func == "suggest_eps" else "knn"
    with pytest.raises(
        ValueError, match=rf"{name} distances must be >= 0 \(1 - cosine similarity, in \[0, 2\]\), got minimum -0.45"
    ):
        call((indices, distances - 0.45))
    with pytest.raises(ValueError, match=rf"{name} distances must be sorted .*got row 0 .*pass 1 - similarities"):
        call((indices, 1.0 - distances))  # similarities, as a faiss inner-product index returns them
