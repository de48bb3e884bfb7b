"""Public building blocks of the trainer: the per-camera clustering step and numpy cluster centroids."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelrefine import cluster_camera, cluster_centroids, cluster_per_camera
from labelrefine.synthetic import make_camera_biased


def loop_centroids(feats, labels):
    """Normalised mean of the normalised rows of each label 0..max, written as a loop."""
    out = []
    for c in range(max(labels) + 1):
        rows = [row / np.linalg.norm(row) for row, lab in zip(feats, labels, strict=True) if lab == c]
        mean = np.sum(rows, axis=0) / len(rows)
        out.append(mean / np.linalg.norm(mean))
    return np.array(out).reshape(-1, feats.shape[1])


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 25), st.integers(1, 4), st.integers(0, 2**31 - 1))
def test_centroids_match_loop(n, n_clusters, seed):
    rng = np.random.default_rng(seed)
    feats = rng.normal(size=(n, 3)) + 0.1
    labels = np.concatenate([np.arange(min(n, n_clusters)), rng.integers(-1, min(n, n_clusters), n)])[:n]
    out = cluster_centroids(feats, labels)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, loop_centroids(feats, labels), atol=1e-12)


def test_centroids_keep_float32_and_inputs_and_handle_all_outliers():
    feats = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    labels = np.array([0, 1, 0, 1, -1, 1])
    f0, l0 = feats.copy(), labels.copy()
    assert cluster_centroids(feats, labels).dtype == np.float32
    np.testing.assert_array_equal(feats, f0)
    np.testing.assert_array_equal(labels, l0)
    assert cluster_centroids(feats, np.full(6, -1)).shape == (0, 4)


@pytest.mark.parametrize(
    ("labels", "error", "match"),
    [
        ([0, 2, 2], ValueError, r"labels must be contiguous cluster ids 0..C-1 \(C = 3\); ids \[1\] are unused"),
        ([0, -2, 0], ValueError, r"labels must be >= -1.*got minimum -2"),
        ([0.0, 1.5, 0.0], TypeError, r"labels must hold integers.*float64 with the non-integer value 1.5 at index 1"),
        ([0, 1], ValueError, r"labels must have length 3 \(one per sample\), got 2"),
    ],
)
def test_centroids_reject_bad_labels(labels, error, match):
    with pytest.raises(error, match=match):
        cluster_centroids(np.ones((3, 2)), labels)


@pytest.mark.parametrize(
    "method", ["agglomerative", "dbscan", pytest.param("infomap", marks=pytest.mark.requires("infomap"))]
)
def test_cluster_camera_is_the_step_of_cluster_per_camera(method):
    data = make_camera_biased(n_ids=30, n_cams=3, rng=2)
    local = cluster_per_camera(data.feats, data.cams, method=method, k1=10, k2=3, k=8, rng=3)
    for cam in range(3):
        members = data.cams == cam
        one = cluster_camera(data.feats[members], method=method, k1=10, k2=3, k=8, rng=3)
        offset = local[members][one >= 0].min() - one[one >= 0].min() if (one >= 0).any() else 0
        np.testing.assert_array_equal(local[members], np.where(one >= 0, one + offset, -1))


def test_cluster_camera_makes_n_over_images_per_cluster_clusters_and_checks_its_arguments():
    feats = make_camera_biased(n_ids=10, n_cams=2, rng=0).feats[:20]
    assert int(cluster_camera(feats, images_per_cluster=4).max()) + 1 == 5
    np.testing.assert_array_equal(cluster_camera(feats[:1]), [0])
    with pytest.raises(ValueError, match=r"images_per_cluster must be in \[1, inf\], got 0"):
        cluster_camera(feats, images_per_cluster=0)
    with pytest.raises(ValueError, match="method must be one of 'agglomerative', 'dbscan', 'infomap'; got 'kmeans'"):
        cluster_camera(feats, method="kmeans")


def test_a_registered_clustering_method_is_what_cluster_per_camera_dispatches_on():
    from labelrefine.cluster import CLUSTER_METHODS, cluster_methods, register_cluster_method, unregister_cluster_method

    calls = []

    @register_cluster_method("halves", check_size=lambda n_c: calls.append(("size", n_c)))
    def halves(feats, options):
        calls.append((feats.shape[0], options.backend))
        return (np.arange(feats.shape[0]) >= feats.shape[0] // 2).astype(np.int64)

    try:
        assert cluster_methods() == (*CLUSTER_METHODS, "halves")
        feats = np.random.default_rng(0).normal(size=(10, 4))
        labels = cluster_per_camera(feats, [0] * 6 + [1] * 4, method="halves")
        assert labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 3, 3]
        backend = calls[1][1]
        assert calls == [("size", 6), (6, backend), (4, backend)] and backend in ("faiss", "numpy")
    finally:
        unregister_cluster_method("halves")
    with pytest.raises(ValueError, match="method must be one of 'agglomerative', 'dbscan', 'infomap'; got 'halves'"):
        cluster_camera(np.eye(3), method="halves")
