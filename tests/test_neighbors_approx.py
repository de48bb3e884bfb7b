"""Approximate kNN (faiss HNSW), the graph's recall estimate, and the progress callback.

The recall that ``knn(..., exact=False)`` reports is checked against the recall measured here
from a brute-force graph; the graph contract (self first, sorted rows, distances in [0, 2]) is
checked on approximate graphs built with a deliberately weak index, so that some neighbours are
missed.
"""

from __future__ import annotations

import itertools
import sys

import numpy as np
import pytest

from labelrefine import _search, cluster, console_progress, neighbors  # _search: the kernel is the unit on purpose
from labelrefine.neighbors import check_knn_graph, knn, knn_search

pytestmark = pytest.mark.requires("faiss")

WEAK = {"M": 4, "ef_construction": 8, "ef_search": 11}  # misses neighbours on purpose


def clustered(n: int = 3000, dim: int = 32, seed: int = 0) -> np.ndarray:
    """Clustered float32 features, not unit length."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n // 10, dim))
    return (centers[rng.integers(n // 10, size=n)] + 0.5 * rng.normal(size=(n, dim))).astype(np.float32)


def measured_recall(approx, exact) -> float:
    """Share of the true k nearest others of every row found (ties count as found), from the definition."""
    hits = 0
    for row in range(exact.n):  # plain loop over rows
        kth = exact.distances[row, -1]
        hits += sum(d <= kth + 1e-5 for d in approx.distances[row, 1:])
    return hits / (exact.n * exact.k)


def test_approximate_graph_keeps_the_graph_contract():
    x = clustered()
    graph = knn(x, 10, exact=False, ann_params=WEAK, rng=0)
    n = x.shape[0]
    assert graph.indices.shape == graph.distances.shape == (n, 11)
    assert graph.indices.dtype == np.int64 and graph.distances.dtype == np.float32
    assert (graph.indices[:, 0] == np.arange(n)).all() and (graph.distances[:, 0] == 0).all()
    assert (graph.indices[:, 1:] != np.arange(n)[:, None]).all()  # the sample appears once
    assert (graph.indices >= 0).all() and (np.diff(graph.distances, axis=1) >= 0).all()
    assert graph.distances.min() >= 0 and graph.distances.max() <= 2
    assert all(len(set(row)) == 11 for row in graph.indices.tolist())
    assert check_knn_graph(graph).recall == graph.recall
    assert graph.neighbors(5).recall == graph.recall


@pytest.mark.slow
def test_reported_recall_is_the_measured_recall():
    x = clustered()
    exact = knn(x, 10, backend="numpy")
    everyone = knn(x, 10, exact=False, ann_params={**WEAK, "recall_sample": x.shape[0]}, rng=0)
    truth = measured_recall(everyone, exact)
    assert 0.5 < truth < 0.99  # a weak index: the estimate has something to estimate
    assert everyone.recall == pytest.approx(truth, abs=1e-9)  # sampling every row: the exact value
    sampled = knn(x, 10, exact=False, ann_params={**WEAK, "recall_sample": 500}, rng=1)
    assert sampled.recall == pytest.approx(measured_recall(sampled, exact), abs=0.03)


@pytest.mark.slow
def test_default_index_finds_the_true_neighbours():
    x = clustered()
    approx = knn(x, 10, exact=False, rng=0)
    assert approx.recall > 0.95
    assert measured_recall(approx, knn(x, 10, backend="numpy")) > 0.95


def test_a_row_whose_search_missed_the_sample_keeps_its_k_nearest_found():
    # row 0's search returned 3 others and not sample 0; row 1's returned itself second
    indices = np.array([[5, 3, 4], [2, 1, 7]])
    distances = np.array([[0.1, 0.2, 0.3], [0.0, 0.0, 0.4]], dtype=np.float32)
    out_idx, out_dist = _search.self_first(indices, distances)
    assert out_idx.tolist() == [[0, 5, 3], [1, 2, 7]]
    np.testing.assert_allclose(out_dist, [[0.0, 0.1, 0.2], [0.0, 0.0, 0.4]])


def test_exact_true_is_the_exact_search_and_the_default_below_exact_max_n():
    x = clustered(n=500)
    default, exact, reference = knn(x, 8), knn(x, 8, exact=True), knn(x, 8, backend="numpy")
    for graph in (default, exact):
        assert graph.recall is None
        np.testing.assert_array_equal(graph.indices, reference.indices)
        np.testing.assert_allclose(graph.distances, reference.distances, atol=1e-6)


def test_above_exact_max_n_the_default_search_is_approximate(monkeypatch):
    monkeypatch.setattr(neighbors, "EXACT_MAX_N", 100)
    x = clustered(n=500)
    assert knn(x, 8, rng=0).recall is not None
    assert knn(x, 8, backend="numpy").recall is None  # numpy stays exact
    assert knn(x, 8, exact=True).recall is None


def test_knn_search_approximate_queries_against_a_database():
    x = clustered()
    queries = x[:200] + 0.01
    approx_idx, approx_dist = knn_search(queries, x, 5, exact=False)
    exact_dist = knn_search(queries, x, 5, backend="numpy")[1]
    assert approx_idx.shape == (200, 5) and (np.diff(approx_dist, axis=1) >= 0).all()
    assert (approx_dist[:, -1] <= exact_dist[:, -1] + 1e-5).mean() > 0.95


def test_inputs_are_not_modified_and_unit_float32_is_not_copied():
    x = clustered()
    before = x.copy()
    knn(x, 5, exact=False, rng=0)
    np.testing.assert_array_equal(x, before)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert _search.unit_rows(unit, True) is unit
    copy = _search.unit_rows(x, True)
    assert copy is not x and copy.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(copy, axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(_search.unit_rows(x.astype(np.float64), True), copy, atol=1e-7)


def test_without_faiss_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # `import faiss` now fails
    x = clustered(n=100)
    with pytest.raises(ModuleNotFoundError, match=r'pip install "labelrefine\[faiss\]"'):
        knn(x, 5, exact=False)
    with pytest.raises(ModuleNotFoundError, match=r"labelrefine\[faiss\]"):
        knn_search(x, x, 5, exact=False)
    assert knn(x, 5).recall is None  # the exact default falls back to numpy


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"exact": "no"}, TypeError, "exact must be a bool"),
        ({"exact": False, "backend": "numpy"}, ValueError, "exact=False needs faiss"),
        ({"exact": False, "device": "cuda"}, ValueError, "device must be None or 'cpu'"),
        ({"exact": False, "ann_params": {"nprobe": 3}}, ValueError, "ann_params keys must be among"),
        ({"exact": False, "ann_params": {"ef_search": 3}}, ValueError, r"ann_params\['ef_search'\] must be in \[6"),
        ({"exact": False, "ann_params": [("M", 8)]}, TypeError, "ann_params must be a dict"),
        ({"progress": "yes"}, TypeError, "progress must be None or a callable"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        knn(clustered(n=100), 5, **kwargs)


def test_progress_reports_every_step_from_start_to_end():
    calls = []
    knn(clustered(n=300), 5, exact=False, rng=0, progress=lambda *a: calls.append(a))
    steps = [step for step, _, _ in calls]
    assert steps[0] == "knn index" and steps[-1] == "knn recall"
    for step in set(steps):
        mine = [(done, total) for s, done, total in calls if s == step]
        assert mine[0][0] == 0 and mine[-1][0] == mine[-1][1]  # starts at 0, ends at total
        assert all(a[0] <= b[0] for a, b in itertools.pairwise(mine))


def test_console_progress_writes_one_line_per_step():
    lines: list[str] = []
    progress = console_progress(bars=False, write=lines.append)
    knn(clustered(n=300), 5, backend="numpy", progress=progress)
    labels = cluster.cluster_per_camera(clustered(n=300), np.arange(300) % 3, method="dbscan", progress=progress)
    assert labels.shape == (300,)
    assert [line.split(":")[0] for line in lines] == ["knn search", "per-camera clustering"]
    assert lines[1].startswith("per-camera clustering: 3/3 in ")


def test_agglomerative_refuses_a_camera_too_large_for_its_dense_matrix(monkeypatch):
    monkeypatch.setattr(cluster, "AGGLOMERATIVE_MAX", 50)
    x = clustered(n=120)
    with pytest.raises(ValueError, match="dense 60 x 60 distance matrix.*method='dbscan'"):
        cluster.cluster_per_camera(x, np.arange(120) % 2)
    assert cluster.cluster_per_camera(x, np.arange(120) % 3).shape == (120,)  # 40 per camera: fine


def test_rows_the_index_left_short_are_searched_exactly(monkeypatch):
    build = neighbors.hnsw_index

    class Short:
        """An index whose beam returns -1 (no result) in the last column of every third query."""

        def __init__(self, *args):
            self.index = build(*args)
            self.storage = self.index.storage

        def search(self, q, k):
            sims, found = self.index.search(q, k)
            found[::3, -1], sims[::3, -1] = -1, -np.inf
            return sims, found

    monkeypatch.setattr(neighbors, "hnsw_index", lambda *args: Short(*args))
    x = clustered(n=600)
    graph = knn(x, 6, exact=False, rng=0)
    assert (graph.indices >= 0).all() and graph.distances.max() <= 2
    np.testing.assert_array_equal(graph.indices[::3], knn(x, 6, backend="numpy").indices[::3])


def test_evaluation_reports_its_query_blocks():
    from labelrefine import evaluate_retrieval

    rng = np.random.default_rng(0)
    calls = []
    evaluate_retrieval(
        rng.integers(5, size=30),
        rng.integers(5, size=40),
        query_feats=rng.normal(size=(30, 4)),
        gallery_feats=rng.normal(size=(40, 4)),
        block_size=8,
        progress=lambda *a: calls.append(a),
    )
    assert calls == [("evaluation", done, 30) for done in (0, 8, 16, 24, 30)]
