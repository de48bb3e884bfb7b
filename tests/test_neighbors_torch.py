"""The torch backend of labelrefine.neighbors on CPU tensors, against the numpy backend and loops.

The numpy backend is itself tested against loops written from the definitions in
``tests/test_neighbors.py``; here the torch backend must give the same neighbours (indices equal
except where two candidates are equally far, distances to 1e-5) and the same Jaccard values (to
1e-5, same stored pattern) for every input dtype, several k and block sizes (also blocks
smaller than N). The same comparisons on CUDA tensors are in ``tests/test_cuda.py``.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import labelrefine  # noqa: E402
from labelrefine import neighbors  # noqa: E402
from labelrefine.cluster import dbscan_cluster, infomap_cluster  # noqa: E402
from labelrefine.neighbors import jaccard_distance, knn, knn_search  # noqa: E402
from labelrefine.refine import refine  # noqa: E402

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: the inputs are tiny, and idle OpenMP threads cost more than they give."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def entangled(seed: int, n: int = 160, dim: int = 16, per_id: int = 6) -> np.ndarray:
    """Identities + camera bias + heavy noise: overlapping neighbourhoods, few exact ties (float32)."""
    rng = np.random.default_rng(seed)
    ids = np.arange(n) // per_id
    centers = rng.normal(size=(ids.max() + 1, dim))
    bias = 0.6 * rng.normal(size=(3, dim))
    return (centers[ids] + bias[rng.integers(3, size=n)] + 0.8 * rng.normal(size=(n, dim))).astype(np.float32)


def exact_distances(q: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Dense float64 cosine distances (small inputs only), the definition."""
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    return 1.0 - qn @ xn.T


def assert_same_neighbours(got, ref, full: np.ndarray, tol: float = 1e-5) -> None:
    """Distances equal to ``tol``; where an index differs, both candidates are equally far (a tie)."""
    (idx, dist), (ref_idx, ref_dist) = got, ref
    assert idx.dtype == np.int64 and dist.dtype == np.float32 and idx.shape == ref_idx.shape
    np.testing.assert_allclose(dist, ref_dist, atol=tol)
    rows, cols = np.nonzero(idx != ref_idx)
    assert np.all(np.abs(full[rows, idx[rows, cols]] - full[rows, ref_idx[rows, cols]]) < tol)
    assert rows.size <= 0.01 * idx.size  # ties are rare on these inputs
    assert all(len(set(r)) == len(r) for r in idx.tolist())


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("k", "block_size"), [(1, None), (7, None), (7, 1), (12, 37), (159, 64)])
def test_knn_torch_matches_numpy_backend(dtype, k, block_size):
    t = torch.from_numpy(entangled(0)).to(dtype)
    before = t.clone()
    got = knn(t, k, backend="torch", block_size=block_size)
    ref = knn(t, k, backend="numpy")  # the same rounded values, as numpy sees them
    x = t.float().numpy()
    full = exact_distances(x, x)
    np.fill_diagonal(full, -1.0)  # the sample itself comes first
    assert_same_neighbours(got, ref, full, tol=1e-5)
    np.testing.assert_array_equal(got[0][:, 0], np.arange(len(x)))
    assert torch.equal(t, before)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("k", "block_size"), [(1, 3), (9, None), (50, 1000)])
def test_knn_search_torch_matches_numpy_backend(dtype, k, block_size):
    x = entangled(1, n=120)
    q = entangled(2, n=50)
    tq, tx = torch.from_numpy(q).to(dtype), torch.from_numpy(x).to(dtype)
    got = knn_search(tq, tx, k, backend="torch", block_size=block_size)
    ref = knn_search(tq, tx, k, backend="numpy")
    assert_same_neighbours(got, ref, exact_distances(tq.double().numpy(), tx.double().numpy()))
    # a numpy query against a tensor database goes to the tensor's device
    same = knn_search(q, torch.from_numpy(x), k, backend="torch")
    assert_same_neighbours(same, knn_search(q, x, k, backend="numpy"), exact_distances(q, x))


def test_knn_search_torch_queries_is_database_and_normalize_false():
    x = entangled(3)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    t = torch.from_numpy(xn)
    full = exact_distances(xn, xn)
    assert_same_neighbours(knn_search(t, t, 5, backend="torch"), knn_search(xn, xn, 5, backend="numpy"), full)
    got = knn_search(t, t, 5, backend="torch", normalize=False)
    assert_same_neighbours(got, knn_search(xn, xn, 5, backend="numpy", normalize=False), full)


def test_knn_torch_zero_rows_and_lists():
    x = entangled(4, n=40)
    x[5] = 0.0  # zero rows stay zero (distance 1 to everything) instead of NaN
    ref = knn(x, 6, backend="numpy")
    got = knn(x.tolist(), 6, backend="torch")
    np.testing.assert_allclose(got[1], ref[1], atol=1e-5)
    assert np.isfinite(got[1]).all() and np.allclose(got[1][5, 1:], 1.0) and got[0][5, 0] == 5


@pytest.mark.parametrize("inputs", ["feats", "graph", "feats+graph"])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"k2": 1},
        {"dtype": np.float16},
        {"dtype": np.float64},
        {"max_distance": 0.6},
        {"block_size": 23},
        {"k1": 2, "k2": 2},
    ],
    ids=lambda o: ",".join(f"{k}={getattr(v, '__name__', v)}" for k, v in o.items()) or "default",
)
def test_jaccard_torch_equals_numpy(inputs, options):
    with_feats, with_graph = "feats" in inputs, "graph" in inputs
    x = entangled(5, n=120)
    options = {"k1": 12, "k2": 4, **options}
    graph = knn(x, 16, backend="numpy") if with_graph else None
    ref = jaccard_distance(x if with_feats else None, knn=graph, backend="numpy", **options)
    t = torch.from_numpy(x)
    got = jaccard_distance(t if with_feats else None, knn=graph, backend="torch", **options)
    assert got.format == "csr" and got.dtype == ref.dtype and got.shape == ref.shape
    np.testing.assert_array_equal(got.indptr, ref.indptr)
    np.testing.assert_array_equal(got.indices, ref.indices)
    np.testing.assert_allclose(got.data, ref.data, atol=1e-5, rtol=0)
    assert ref.nnz > 3 * len(x)  # not a trivial pattern


def test_jaccard_torch_graph_as_tensors_and_half_features():
    x = entangled(6, n=100)
    graph = knn(x, 12, backend="numpy")
    ref = jaccard_distance(x, knn=graph, k1=10, k2=3, backend="numpy")
    tgraph = (torch.from_numpy(graph[0]), torch.from_numpy(graph[1]))
    got = jaccard_distance(torch.from_numpy(x), knn=tgraph, k1=10, k2=3, backend="torch")
    np.testing.assert_array_equal(got.indices, ref.indices)
    np.testing.assert_allclose(got.data, ref.data, atol=1e-5)
    for dtype in (torch.float16, torch.bfloat16):
        t = torch.from_numpy(x).to(dtype)
        half_graph = knn(t, 12, backend="numpy")
        ref = jaccard_distance(t, knn=half_graph, k1=10, k2=3, backend="numpy")
        got = jaccard_distance(t, knn=half_graph, k1=10, k2=3, backend="torch")
        np.testing.assert_array_equal(got.indices, ref.indices)
        np.testing.assert_allclose(got.data, ref.data, atol=1e-5)


def test_clustering_and_refine_take_the_torch_graph_as_it_is():
    pytest.importorskip("infomap")
    rng = np.random.default_rng(7)
    x = entangled(7, n=150)
    cams = rng.integers(3, size=len(x))
    local = np.arange(len(x)) // 3
    t = torch.from_numpy(x)
    graph_t = knn(t, 16, backend="torch")
    graph_n = knn(x, 16, backend="numpy")
    np.testing.assert_array_equal(graph_t[0], graph_n[0])  # no ties on these features
    labels_t = infomap_cluster(graph_t, min_sim=0.3, rng=1)
    np.testing.assert_array_equal(labels_t, infomap_cluster(graph_n, min_sim=0.3, rng=1))
    res_t = refine(labels_t, local, cams, t, knn=graph_t, k=15, rng=0)
    res_n = refine(labels_t, local, cams, x, knn=graph_n, k=15, rng=0)
    np.testing.assert_array_equal(res_t.labels, res_n.labels)
    jac_t = jaccard_distance(t, knn=graph_t, k1=16, k2=4, backend="torch", max_distance=0.6)
    db_t = dbscan_cluster(jac_t, eps=0.6, min_samples=3)
    jac_n = jaccard_distance(x, knn=graph_n, k1=16, k2=4, backend="numpy", max_distance=0.6)
    np.testing.assert_array_equal(db_t, dbscan_cluster(jac_n, eps=0.6, min_samples=3))
    assert (db_t >= 0).any() and (labels_t >= 0).any()


def test_bfloat16_tensors_work_with_the_numpy_path():
    t = torch.from_numpy(entangled(8, n=50)).to(torch.bfloat16)
    idx, dist = knn(t, 5, backend="numpy")
    assert idx.shape == (50, 6) and dist.dtype == np.float32
    assert jaccard_distance(t, k1=6, k2=2, backend="numpy").shape == (50, 50)


def test_auto_picks_torch_for_cuda_tensors_only(monkeypatch):
    class FakeCuda:  # duck-typed like a CUDA tensor; resolving the backend must not touch its data
        is_cuda = True

        def detach(self):
            raise AssertionError("not called")

    assert neighbors._resolve_backend("auto", FakeCuda()) == "torch"
    assert neighbors._resolve_backend("auto", np.zeros((2, 2)), FakeCuda()) == "torch"
    cpu = torch.zeros(2, 2)
    assert neighbors._resolve_backend("auto", cpu) in ("faiss", "numpy")
    assert neighbors._resolve_backend("numpy", FakeCuda()) == "numpy"


def test_torch_backend_without_torch_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    monkeypatch.delitem(sys.modules, "labelrefine._neighbors_torch", raising=False)
    monkeypatch.delattr(labelrefine, "_neighbors_torch", raising=False)
    with pytest.raises(ModuleNotFoundError, match=r"labelrefine\[torch\]"):
        knn(entangled(9, n=20), 3, backend="torch")


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda t: knn(t, 3, backend="cuda"), ValueError, r"backend must be one of .*'torch'; got 'cuda'"),
        (lambda t: knn(t, 3, backend="torch", block_size=0), ValueError, r"block_size must be in \[1, inf\], got 0"),
        (lambda t: knn(t, 3, backend="torch", block_size=-4), ValueError, r"block_size must be in \[1, inf\], got -4"),
        (lambda t: knn(t, 3, backend="torch", block_size=2.0), TypeError, r"block_size must be an integer, got 2.0"),
        (lambda t: knn(t, 31, backend="torch"), ValueError, r"k \(neighbours .*\) must be in \[1, 29\], got 31"),
        (lambda t: knn(t, 3, backend="torch", device="cuda"), ValueError, r"device must be None with backend='torch'"),
        (lambda t: knn(t[:, :, None], 3, backend="torch"), ValueError, r"feats must be 2-D .* got shape \(30, 4, 1\)"),
        (lambda t: knn(t[:0], 1, backend="torch"), ValueError, r"feats must not be empty, got shape \(0, 4\)"),
        (lambda t: knn(t.int(), 3, backend="torch"), TypeError, r"feats must be float16, bfloat16, .* torch.int32"),
        (lambda t: knn(_with_nan(t), 3, backend="torch"), ValueError, r"feats must be finite, .* row 4"),
        (lambda t: knn_search(t[:, :2], t, 3, backend="torch"), ValueError, r"same number of columns, got 2 and 4"),
        (lambda t: knn_search(t, t, 3, backend="torch", block_size=0), ValueError, r"block_size must be .* got 0"),
        (lambda t: knn_search(_with_nan(t), t, 3, backend="torch"), ValueError, r"queries must be finite"),
        (lambda t: jaccard_distance(t, backend="torch", block_size=0), ValueError, r"block_size must be .* got 0"),
        (lambda t: jaccard_distance(t, k1=40, backend="torch"), ValueError, r"k1 must be in \[1, 30\], got 40"),
        (lambda t: jaccard_distance(t, backend="tensor"), ValueError, r"backend must be one of .*; got 'tensor'"),
    ],
)
def test_torch_backend_argument_errors(call, error, match):
    t = torch.from_numpy(entangled(10, n=30, dim=4))
    with pytest.raises(error, match=match):
        call(t)


def _with_nan(t):
    t = t.clone()
    t[4, 1] = float("nan")
    return t


def test_float16_storage_rounds_once_like_numpy():
    from labelrefine import _neighbors_torch

    rng = np.random.default_rng(11)
    v = rng.random(200_000) * np.logspace(-9, 0, 200_000)  # encoding-like values, subnormals included
    got = _neighbors_torch._cast(torch.from_numpy(v), torch.float16).numpy()
    np.testing.assert_array_equal(got, v.astype(np.float16))
    np.testing.assert_array_equal(_neighbors_torch._cast(torch.from_numpy(v), torch.float32).numpy(), v.astype("f4"))
