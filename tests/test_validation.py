"""The shared input checks, through the public API: the kNN graph type and its validator, rng, labels."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import brute_knn

from labelrefine import KnnGraph, infomap_cluster, knn, relabel
from labelrefine.neighbors import check_knn_graph
from labelrefine.synthetic import make_camera_biased


def small_graph(n=12, columns=5):
    return brute_knn(np.random.default_rng(0).normal(size=(n, 4)), columns)


def test_knn_graph_unpacks_like_a_tuple_and_knows_its_k():
    graph = knn(np.random.default_rng(1).normal(size=(10, 3)), 4, backend="numpy")
    indices, distances = graph
    assert graph.k == 4 and graph.includes_self and indices.shape == (10, 5)
    assert graph[0] is indices and graph[1] is distances and len(graph) == 2
    others = graph.neighbors(2)
    assert not others.includes_self and others.k == 2
    np.testing.assert_array_equal(others.indices, indices[:, 1:3])
    with pytest.raises(ValueError, match=r"k \(neighbours other than the sample itself\) must be in \[0, 4\], got 5"):
        graph.neighbors(5)


def test_check_knn_graph_infers_includes_self_of_plain_tuples():
    indices, distances = small_graph()
    assert check_knn_graph((indices, distances)).includes_self
    without = check_knn_graph((indices[:, 1:], distances[:, 1:]))
    assert not without.includes_self and without.k == 4
    again = check_knn_graph(without)
    assert again.indices is without.indices  # no copy of a valid graph


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda i, d: "graph", TypeError, r"knn must be a tuple \(indices, distances\) or a KnnGraph, got 'graph'"),
        (lambda i, d: (i, d[:, :3]), ValueError, r"knn indices and distances must have the same shape, got \(12, 5\)"),
        (lambda i, d: (i[0], d[0]), ValueError, r"knn indices must be 2-D \(N, k\), got shape \(5,\)"),
        (lambda i, d: (i + 0.0, d), TypeError, r"knn indices must be integers, got dtype float64"),
        (lambda i, d: (i, d.astype(int)), TypeError, r"knn distances must be floats .* got dtype int64"),
        (lambda i, d: (i + 1, d), ValueError, r"knn indices must lie in \[0, 12\) .* got values in \[1, 12\]"),
        (lambda i, d: (i, np.where(d > 0.5, np.nan, d)), ValueError, r"knn distances must be finite, got NaN"),
        (
            lambda i, d: (i, d - 0.45),
            ValueError,
            r"knn distances must be >= 0 \(1 - cosine similarity, in \[0, 2\]\), got minimum -0.45",
        ),
        (
            lambda i, d: (i, d * 10),
            ValueError,
            r"knn distances must be <= 2 \(1 - cosine similarity, in \[0, 2\]\), got maximum 1\d",
        ),
        (lambda i, d: (i, d[:, ::-1]), ValueError, r"knn distances must be sorted in increasing order .* got row 0"),
        (lambda i, d: (i, 1 - d), ValueError, r"look like cosine similarities .*pass 1 - similarities"),
        (
            lambda i, d: (i[:, ::-1], d[:, ::-1]),
            ValueError,
            r"got row 0 .*sorted farthest first .*reverse each row \(indices\[:, ::-1\], distances\[:, ::-1\]\)$",
        ),
        (
            lambda i, d: (i[:, :0:-1], d[:, :0:-1]),  # farthest first, without the self column
            ValueError,
            r"every row decreases: pass 1 - similarities if .* or reverse each row",
        ),
        (lambda i, d: KnnGraph(i[:, 1:], d[:, 1:], True), ValueError, r"says includes_self=True but column 0 is not"),
    ],
)
def test_check_knn_graph_errors_name_the_rule_and_the_value(make, error, match):
    indices, distances = small_graph()
    with pytest.raises(error, match=match):
        check_knn_graph(make(indices, distances), "knn")


def test_check_knn_graph_rows():
    with pytest.raises(ValueError, match=r"graph must have 11 rows \(one per sample\), got 12"):
        check_knn_graph(small_graph(), "graph", n=11)


def test_check_knn_graph_tolerates_float_rounding():
    indices, distances = small_graph()
    noisy = distances.astype(np.float32)
    noisy[:, 0] = -1e-6  # 1 - cos(x, x) in float32
    assert check_knn_graph((indices, noisy)).includes_self


@pytest.mark.parametrize("bad", [-1, np.int64(-3)])
def test_rng_errors_name_the_argument(bad):
    with pytest.raises(
        ValueError,
        match=rf"^rng must be None, an int seed or a numpy.random.Generator, got {bad}: int seeds must be >= 0$",
    ):
        make_camera_biased(n_ids=4, n_cams=2, rng=bad)


def test_rng_type_errors():
    for bad in (True, 1.5, "0"):
        with pytest.raises(TypeError, match=r"rng must be None, an int seed or a numpy.random.Generator, got"):
            make_camera_biased(n_ids=4, n_cams=2, rng=bad)


@pytest.mark.requires("infomap")
def test_int_and_generator_seeds_reproduce():
    graph = knn(make_camera_biased(n_ids=10, n_cams=2, rng=0).feats, 5, backend="numpy")
    np.testing.assert_array_equal(infomap_cluster(graph, rng=7), infomap_cluster(graph, rng=7))
    first = infomap_cluster(graph, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(first, infomap_cluster(graph, rng=np.random.default_rng(3)))


def test_uint64_labels_above_int64_are_reported_as_too_large():
    with pytest.raises(ValueError, match=r"labels must fit in int64 .* got maximum 9223372036854775808"):
        relabel(np.array([0, 2**63], dtype=np.uint64))
    assert relabel(np.array([0, 5], dtype=np.uint64)).tolist() == [0, 1]


def test_knn_accepts_bfloat16_tensors():
    torch = pytest.importorskip("torch")
    x = torch.randn(20, 8)
    graph = knn(x.to(torch.bfloat16), 3, backend="numpy")
    assert graph.indices.shape == (20, 4)
    np.testing.assert_array_equal(graph.indices[:, 0], np.arange(20))


def test_reversed_rows_do_not_get_the_similarity_hint():
    indices, distances = small_graph()
    with pytest.raises(ValueError) as info:
        check_knn_graph((indices[:, ::-1], distances[:, ::-1]))
    assert "similarities" not in str(info.value)


def test_knn_graph_without_self_refuses_rows_that_start_with_self():
    indices, distances = small_graph()
    with pytest.raises(ValueError, match=r"says includes_self=False but column 0 of every row is the sample itself"):
        KnnGraph(indices, distances, includes_self=False)
    assert KnnGraph(indices[:, 1:], distances[:, 1:], includes_self=False).k == 4


def test_knn_on_one_row_says_it_needs_two_samples():
    with pytest.raises(ValueError, match=r"^knn needs at least 2 samples .*got feats with 1 row$"):
        knn(np.ones((1, 3), dtype=np.float32), 1, backend="numpy")
