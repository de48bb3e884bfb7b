"""Tests of labelrefine.neighbors: kNN backends and the sparse k-reciprocal Jaccard distance.

Every kernel is checked against a slow loop written here from the definition: brute-force
neighbours, and a dense re-implementation of the k-reciprocal encoding as Cluster-Contrast's
``compute_jaccard_distance`` defines it (forward set = first k1 columns of the rank, self
included; half sets with round(k1/2) + 1 columns; 2/3 expansion rule; softmax of minus the
squared Euclidean distance; query expansion over the k2 nearest; 1 - s / (2 - s)).
"""

from __future__ import annotations

import importlib.util
import itertools
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from labelrefine import _jaccard, _search, neighbors  # the kernels are units on purpose, checked against loops
from labelrefine.neighbors import KnnGraph, jaccard_distance, knn, knn_search

HAS_FAISS = importlib.util.find_spec("faiss") is not None
BACKENDS = ["numpy", pytest.param("faiss", marks=pytest.mark.skipif(not HAS_FAISS, reason="faiss not installed"))]


# ----------------------------------------------------------------------------------------------
# helpers and slow references
# ----------------------------------------------------------------------------------------------


def camera_clustered(seed: int, n_ids: int = 12, per_id: int = 8, n_cams: int = 3, dim: int = 16) -> np.ndarray:
    """Identity centres plus a per-camera bias plus noise (float32)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_ids, dim))
    bias = 0.6 * rng.normal(size=(n_cams, dim))
    ids = np.repeat(np.arange(n_ids), per_id)
    cams = rng.integers(n_cams, size=ids.size)
    return (centers[ids] + bias[cams] + 0.5 * rng.normal(size=(ids.size, dim))).astype(np.float32)


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_force_knn(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Loop: for each sample, all cosine distances (float64), itself first, then (distance, index)."""
    xn = unit(x)
    n = len(xn)
    indices = np.empty((n, k), dtype=np.int64)
    dists = np.empty((n, k))
    for i in range(n):
        d = np.array([1.0 - float(xn[i] @ xn[j]) for j in range(n)])
        order = sorted(range(n), key=lambda j, i=i, d=d: (j != i, d[j], j))[:k]
        indices[i] = order
        dists[i] = np.clip(d[order], 0.0, 2.0)
        dists[i, 0] = 0.0
    return indices, dists


def brute_force_search(q: np.ndarray, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    qn, xn = unit(q), unit(x)
    indices = np.empty((len(qn), k), dtype=np.int64)
    dists = np.empty((len(qn), k))
    for i in range(len(qn)):
        d = np.array([1.0 - float(qn[i] @ xn[j]) for j in range(len(xn))])
        order = sorted(range(len(xn)), key=lambda j, d=d: (d[j], j))[:k]
        indices[i] = order
        dists[i] = d[order]
    return indices, dists


def assert_same_neighbours(idx, dist, ref_idx, ref_dist, full_dist, tol=1e-5):
    """Same neighbours up to ties: where the index differs, both candidates are equally far."""
    np.testing.assert_allclose(dist, ref_dist, atol=tol)
    rows, cols = np.nonzero(idx != ref_idx)
    assert np.all(np.abs(full_dist[rows, idx[rows, cols]] - full_dist[rows, ref_idx[rows, cols]]) < tol)


def cosine_distances(x: np.ndarray) -> np.ndarray:
    xn = unit(x)
    return 1.0 - xn @ xn.T


def reference_jaccard(feats, rank, k1, k2, pair_dist=None):
    """Dense loop re-implementation of Cluster-Contrast's Jaccard distance from its definition.

    ``rank`` plays the role of their ``initial_rank`` returned by a k1-neighbour search: only its
    first k1 columns exist for them, so slicing ``:k + 1`` of it gives at most k1 columns.
    Returns (distance matrix, encoding V after query expansion, minimum sums s).
    """
    xn = unit(feats) if feats is not None else None
    rank = np.asarray(rank)[:, :k1]
    n = rank.shape[0]

    def reciprocal(i, k):
        forward = rank[i, : k + 1]
        return [j for j in forward if i in rank[j, : k + 1]]

    half = int(np.around(k1 / 2))
    r_k1 = [reciprocal(i, k1) for i in range(n)]
    r_half = [reciprocal(i, half) for i in range(n)]
    v = np.zeros((n, n))
    for i in range(n):
        members = set(r_k1[i])
        for c in r_k1[i]:
            candidates = set(r_half[c])
            if len(candidates & set(r_k1[i])) > 2 / 3 * len(candidates):
                members |= candidates
        members = sorted(members)
        if pair_dist is None:
            sq = np.array([2.0 - 2.0 * float(xn[i] @ xn[j]) for j in members])
        else:
            sq = np.array([2.0 * pair_dist(i, j) for j in members])
        w = np.exp(-sq)
        v[i, members] = w / w.sum()
    if k2 != 1:
        v = np.array([v[rank[i, :k2]].mean(axis=0) for i in range(n)])
    s = np.array([np.minimum(v[i], v).sum(axis=1) for i in range(n)])
    d = 1.0 - s / (2.0 - s)
    d[d < 0] = 0.0
    return d, v, s


def to_dense(dist: sp.csr_matrix) -> np.ndarray:
    out = np.ones(dist.shape)
    coo = dist.tocoo()
    out[coo.row, coo.col] = coo.data
    return out


def stored_mask(dist: sp.csr_matrix) -> np.ndarray:
    mask = np.zeros(dist.shape, dtype=bool)
    coo = dist.tocoo()
    mask[coo.row, coo.col] = True
    return mask


def check_jaccard_against_reference(out, ref_d, ref_s, atol=1e-5):
    assert sp.isspmatrix_csr(out)
    assert out.has_sorted_indices
    np.testing.assert_allclose(to_dense(out), ref_d, atol=atol)
    mask = stored_mask(out)
    # stored exactly where the encodings overlap (s > 0); everything else is distance 1
    np.testing.assert_array_equal(mask, ref_s > 0)
    assert np.all(np.diag(mask))
    assert np.all(out.diagonal() == 0.0)


# ----------------------------------------------------------------------------------------------
# knn
# ----------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("n", "k", "block_size"), [(60, 1, None), (60, 6, None), (60, 59, 13), (1100, 4, 300)])
def test_knn_matches_brute_force_loop(backend, n, k, block_size):
    # (1100, 4) exercises the group-maximum pre-selection of the numpy backend
    x = camera_clustered(n, n_ids=n // 10, per_id=10, dim=8)[:n]
    graph = knn(x, k, backend=backend, block_size=block_size if backend == "numpy" else None)
    assert isinstance(graph, KnnGraph) and graph.includes_self and graph.k == k
    idx, dist = graph  # k neighbours besides the sample itself: k + 1 columns
    ref_idx, ref_dist = brute_force_knn(x, k + 1)
    assert idx.dtype == np.int64 and dist.dtype == np.float32 and idx.shape == (n, k + 1)
    np.testing.assert_array_equal(idx[:, 0], np.arange(n))
    assert np.all(dist[:, 0] == 0.0)
    assert np.all(np.diff(dist, axis=1) >= 0)
    assert_same_neighbours(idx, dist, ref_idx, ref_dist, cosine_distances(x))


@pytest.mark.parametrize("backend", BACKENDS)
def test_knn_search_matches_brute_force_loop(backend):
    rng = np.random.default_rng(1)
    database = rng.normal(size=(1200, 6))
    queries = rng.normal(size=(70, 6))
    idx, dist = knn_search(queries, database, 9, backend=backend)
    ref_idx, ref_dist = brute_force_search(queries, database, 9)
    full = 1.0 - unit(queries) @ unit(database).T
    assert_same_neighbours(idx, dist, ref_idx, ref_dist, full)


def test_topk_group_preselection_matches_argsort_loop():
    rng = np.random.default_rng(2)
    for m, k in [(2000, 7), (2003, 31), (1030, 16), (64, 1)]:
        s = rng.normal(size=(5, m)).astype(np.float32)
        cols = _search.topk_block(s, k)
        for r in range(5):
            assert sorted(cols[r].tolist()) == sorted(np.argsort(-s[r])[:k].tolist())


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(2, 90),
    dim=st.integers(1, 12),
    k_frac=st.floats(0.0, 1.0),
)
@pytest.mark.skipif(not HAS_FAISS, reason="faiss not installed")
def test_backends_agree(seed, n, dim, k_frac):
    x = np.random.default_rng(seed).normal(size=(n, dim))
    k = max(1, round(k_frac * (n - 1)))
    a_idx, a_dist = knn(x, k, backend="numpy")
    b_idx, b_dist = knn(x, k, backend="faiss")
    np.testing.assert_array_equal(a_idx[:, 0], np.arange(n))
    np.testing.assert_array_equal(b_idx[:, 0], np.arange(n))
    assert_same_neighbours(a_idx, a_dist, b_idx, b_dist, cosine_distances(x))


@pytest.mark.parametrize("backend", BACKENDS)
def test_self_first_among_duplicates_deterministic(backend):
    base = np.random.default_rng(3).normal(size=(10, 5))
    x = np.repeat(base, 5, axis=0)  # 5 identical copies of each vector
    for k in (3, 5, 8):  # columns, self included
        idx, dist = knn(x, k - 1, backend=backend)
        np.testing.assert_array_equal(idx[:, 0], np.arange(50))
        copies = min(k, 5)
        # other copies come next (which ones, when k < 5, depends on float rounding of the dot
        # products: identical vectors need not give bit-identical similarities), at distance ~0
        for i in range(50):
            group = set(range(5 * (i // 5), 5 * (i // 5) + 5)) - {i}
            assert set(idx[i, 1:copies].tolist()) <= group
        assert np.all(dist[:, 0] == 0.0)
        assert np.all(dist[:, :copies] < 1e-6)
        again_idx, _ = knn(x, k - 1, backend=backend)
        np.testing.assert_array_equal(idx, again_idx)


def test_self_first_when_duplicates_crowd_it_out():
    # faiss may return k copies that exclude the sample: it then replaces the farthest
    indices = np.array([[1, 2, 3], [0, 2, 1], [2, 0, 1], [0, 1, 2]])
    distances = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.1, 0.2, 0.3]], dtype=np.float32)
    idx, dist = _search.self_first(indices, distances)
    assert idx.tolist() == [[0, 1, 2], [1, 0, 2], [2, 0, 1], [3, 0, 1]]
    np.testing.assert_allclose(dist[3], [0.0, 0.1, 0.2])


@pytest.mark.parametrize("backend", BACKENDS)
def test_normalize_false_on_unit_features_and_dtypes(backend):
    x = camera_clustered(4, dim=10)
    a = knn(x, 6, backend=backend)
    b = knn(unit(x).astype(np.float32), 6, backend=backend, normalize=False)
    c = knn(x.astype(np.float64), 6, backend=backend)
    d = knn(x.astype(np.float16), 6, backend=backend)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[0], c[0])
    assert d[0].shape == (len(x), 7)
    np.testing.assert_allclose(a[1], b[1], atol=1e-6)


def test_knn_accepts_lists_and_torch_tensors():
    x = camera_clustered(5)
    expected = knn(x, 4, backend="numpy")
    from_list = knn(x.tolist(), 4, backend="numpy")
    np.testing.assert_array_equal(expected[0], from_list[0])
    torch = pytest.importorskip("torch")
    from_tensor = knn(torch.from_numpy(x), 4, backend="numpy")
    np.testing.assert_array_equal(expected[0], from_tensor[0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_knn_does_not_modify_input(backend):
    x = camera_clustered(6)
    x.flags.writeable = False  # any write attempt would raise
    before = x.copy()
    knn(x, 5, backend=backend)
    knn_search(x[:5], x, 3, backend=backend)
    jaccard_distance(x, k1=6, k2=2, backend=backend)
    np.testing.assert_array_equal(x, before)


def test_auto_backend_without_faiss(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # makes `import faiss` fail
    assert neighbors._resolve_backend("auto") == "numpy"
    x = camera_clustered(7)
    idx, _ = knn(x, 4)
    np.testing.assert_array_equal(idx, knn(x, 4, backend="numpy")[0])
    with pytest.raises(ModuleNotFoundError, match=r"labelrefine\[faiss\]"):
        knn(x, 4, backend="faiss")


@pytest.mark.skipif(not HAS_FAISS, reason="faiss not installed")
def test_faiss_cpu_device_and_missing_gpu():
    x = camera_clustered(8)
    np.testing.assert_array_equal(knn(x, 4, backend="faiss", device="cpu")[0], knn(x, 4, backend="numpy")[0])
    import faiss

    if faiss.get_num_gpus() == 0:
        with pytest.raises(ValueError, match=r"device=0 needs faiss with GPU support"):
            knn(x, 4, backend="faiss", device="cuda")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"k": 96}, ValueError, r"k \(neighbours other than the sample itself\) must be in \[1, 95\], got 96"),
        ({"k": 0}, ValueError, r"k \(neighbours other than the sample itself\) must be in \[1, 95\], got 0"),
        ({"k": 2.5}, TypeError, r"k \(neighbours other than the sample itself\) must be an integer, got 2.5"),
        ({"k": 3, "backend": "annoy"}, ValueError, r"backend must be one of 'auto', 'faiss', 'numpy', 'torch'; got 'a"),
        ({"k": 3, "device": "tpu"}, ValueError, r"device must be None, 'cpu', 'cuda', 'cuda:N' .* got 'tpu'"),
        ({"k": 3, "device": -2}, ValueError, r"device must be None, .* got -2"),
        ({"k": 3, "backend": "numpy", "device": "cuda:0"}, ValueError, r"device='cuda:0' needs backend='faiss'"),
        ({"k": 3, "backend": "numpy", "block_size": 0}, ValueError, r"block_size must be in \[1, inf\], got 0"),
    ],
)
def test_knn_argument_errors(kwargs, error, match):
    x = camera_clustered(9)
    with pytest.raises(error, match=match):
        knn(x, **kwargs)


@pytest.mark.parametrize(
    ("feats", "error", "match"),
    [
        (np.zeros((0, 4), np.float32), ValueError, r"feats must not be empty, got shape \(0, 4\)"),
        (np.zeros(5, np.float32), ValueError, r"feats must be 2-D \(n_samples, n_dims\), got shape \(5,\)"),
        (np.array([[0.0, 1.0], [np.nan, 1.0]]), ValueError, r"feats must be finite, got NaN .* row 1"),
        (np.zeros((3, 2), np.int64), TypeError, r"feats must be float32 or float64, got dtype int64"),
    ],
)
def test_knn_feature_errors(feats, error, match):
    with pytest.raises(error, match=match):
        knn(feats, 1)


def test_knn_search_errors():
    x = camera_clustered(10)
    with pytest.raises(ValueError, match=r"queries and database must have the same number of columns, got 3 and 16"):
        knn_search(x[:, :3], x, 2)
    with pytest.raises(ValueError, match=r"k \(neighbours per query\) must be in \[1, 96\], got 200"):
        knn_search(x[:4], x, 200)
    with pytest.raises(ValueError, match=r"queries must be finite"):
        knn_search(np.full((2, 16), np.inf), x, 2)


# ----------------------------------------------------------------------------------------------
# Jaccard distance: kernels against loops
# ----------------------------------------------------------------------------------------------


def test_reciprocal_sets_match_loop():
    x = camera_clustered(11)
    rank, _ = brute_force_knn(x, 20)
    for k in (1, 4, 11, 20):
        got = _jaccard.reciprocal(rank, k)
        expected = np.zeros((len(x), len(x)), dtype=int)
        for i in range(len(x)):
            for j in rank[i, :k]:
                if i in rank[j, :k]:
                    expected[i, j] = 1
        np.testing.assert_array_equal(got.toarray(), expected)


@pytest.mark.parametrize("k1", [1, 2, 5, 7, 20])
def test_encoding_matches_loop(k1):
    x = camera_clustered(12)
    rank, dist = brute_force_knn(x, k1)
    pair = _jaccard.PairDistance(rank, dist, unit(x).astype(np.float32))
    v = _jaccard.encoding(rank, k1, pair, rows_per_block=17).toarray()
    _, ref_v, _ = reference_jaccard(x, rank, k1, 1)
    np.testing.assert_allclose(v, ref_v, atol=1e-6)
    np.testing.assert_array_equal(v > 0, ref_v > 0)


def test_query_expansion_matches_loop():
    rng = np.random.default_rng(13)
    n = 40
    v = sp.random(n, n, density=0.1, random_state=14, format="csr")
    ranks = np.array([rng.permutation(n)[:6] for _ in range(n)])
    for k2 in (1, 2, 6):
        indptr, indices, data = _jaccard.query_expansion(v, ranks, k2, rows_per_block=7, dtype=np.dtype("f8"))
        got = sp.csr_matrix((data, indices, indptr), shape=(n, n)).toarray()
        dense = v.toarray()
        expected = dense if k2 == 1 else np.array([dense[ranks[i, :k2]].mean(axis=0) for i in range(n)])
        np.testing.assert_allclose(got, expected, atol=1e-12)


def _stack_blocks(blocks, n):
    blocks = list(blocks)
    assert [b[0] for b in blocks] == sorted(b[0] for b in blocks) and blocks[-1][1] == n
    parts = [sp.csr_matrix((d, idx, ptr), shape=(stop - start, n)) for start, stop, ptr, idx, d in blocks]
    return sp.vstack(parts, format="csr")


def _upper_blocks(upper, cuts):
    return [
        (a, b, (upper.indptr[a : b + 1] - upper.indptr[a]).astype(np.int64), upper[a:b].indices, upper[a:b].data)
        for a, b in itertools.pairwise(cuts)
    ]


@pytest.mark.parametrize(("max_pairs", "rows"), [(10**9, None), (5, None), (1, None), (10**9, 3)])
@pytest.mark.parametrize("dtype", ["f8", "f2"])
def test_min_sums_match_loop(max_pairs, rows, dtype):
    n = 30
    w = sp.random(n, n, density=0.15, random_state=15, format="csr", dtype=np.float64)
    w.sort_indices()
    data = w.data.astype(dtype)  # raw arrays: scipy.sparse has no float16 matrices
    data[::7] = 0  # explicit zeros (e.g. float16 underflow) are absent entries
    sums = _jaccard.MinSums(
        w.indptr.astype(np.int64), w.indices.astype(np.int64), data, n, np.dtype("f8"), max_pairs, rows
    )
    upper = _stack_blocks(sums.blocks(), n)
    dense = sp.csr_matrix((data.astype(np.float64), w.indices, w.indptr), shape=(n, n)).toarray()
    expected = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            expected[i, j] = sum(min(dense[i, c], dense[j, c]) for c in range(n) if dense[i, c] and dense[j, c])
    np.testing.assert_allclose(upper.toarray(), expected, atol=1e-12)
    np.testing.assert_array_equal(stored_mask(upper), expected > 0)
    assert upper.has_sorted_indices
    per_row, per_col = sums.pattern_counts()
    np.testing.assert_array_equal(per_row, (expected > 0).sum(axis=1))
    np.testing.assert_array_equal(per_col, (expected > 0).sum(axis=0))


def _counts(upper):
    return np.diff(upper.indptr).astype(np.int64), np.bincount(upper.indices, minlength=upper.shape[0])


@pytest.mark.parametrize("cuts", [[0, 4], [0, 1, 2, 3, 4], [0, 2, 4]])
def test_symmetric_assembly_keeps_explicit_zeros(cuts):
    upper = sp.csr_matrix((np.array([0.0, 0.5, 0.0]), np.array([1, 3, 2]), np.array([0, 2, 3, 3, 3])), shape=(4, 4))
    full = _jaccard.assemble_symmetric(_upper_blocks(upper, cuts), *_counts(upper), np.dtype("f4"))
    assert full.has_sorted_indices and full.dtype == np.float32
    expected_pairs = {(0, 1), (1, 0), (0, 3), (3, 0), (1, 2), (2, 1), (0, 0), (1, 1), (2, 2), (3, 3)}
    coo = full.tocoo()
    assert set(zip(coo.row.tolist(), coo.col.tolist(), strict=True)) == expected_pairs
    assert full.nnz == len(expected_pairs)
    assert full[0, 3] == 0.5 and full[3, 0] == 0.5 and full[1, 2] == 0.0


def test_symmetric_assembly_matches_dense_sum():
    n = 40
    upper = sp.triu(sp.random(n, n, density=0.2, random_state=16), k=1, format="csr")
    upper.sort_indices()
    full = _jaccard.assemble_symmetric(_upper_blocks(upper, [0, 7, 8, 25, 40]), *_counts(upper), np.dtype("f8"))
    dense = upper.toarray()
    np.testing.assert_array_equal(full.toarray(), dense + dense.T)
    np.testing.assert_array_equal(stored_mask(full), (dense + dense.T != 0) | np.eye(n, dtype=bool))
    assert full.has_sorted_indices
    with pytest.raises(RuntimeError, match="internal error"):
        wrong = np.diff(upper.indptr).astype(np.int64) + 1
        _jaccard.assemble_symmetric(_upper_blocks(upper, [0, 40]), wrong, _counts(upper)[1], np.dtype("f8"))


# ----------------------------------------------------------------------------------------------
# Jaccard distance: end to end against the dense reference
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seed", "n_ids", "per_id", "k1", "k2"),
    [(20, 10, 6, 5, 1), (21, 15, 10, 20, 6), (22, 20, 10, 30, 6), (23, 8, 12, 7, 3), (24, 6, 10, 1, 1)],
)
def test_jaccard_from_features_matches_dense_reference(seed, n_ids, per_id, k1, k2):
    x = camera_clustered(seed, n_ids=n_ids, per_id=per_id, n_cams=4, dim=24)
    rank, _ = brute_force_knn(x, k1)
    ref_d, _, ref_s = reference_jaccard(x, rank, k1, k2)
    out = jaccard_distance(x, k1=k1, k2=k2, backend="numpy")
    assert out.dtype == np.float32 and out.shape == (len(x), len(x))
    check_jaccard_against_reference(out, ref_d, ref_s)


@st.composite
def jaccard_cases(draw):
    seed = draw(st.integers(0, 10_000))
    n_ids = draw(st.integers(2, 12))
    per_id = draw(st.integers(2, 10))
    n = n_ids * per_id
    k1 = draw(st.integers(1, min(n, 30)))
    k2 = draw(st.integers(1, k1))
    n_cams = draw(st.integers(1, 4))
    return seed, n_ids, per_id, n_cams, k1, k2


@settings(max_examples=30, deadline=None)
@given(case=jaccard_cases())
def test_jaccard_with_graph_matches_dense_reference(case):
    seed, n_ids, per_id, n_cams, k1, k2 = case
    x = camera_clustered(seed, n_ids=n_ids, per_id=per_id, n_cams=n_cams, dim=12)
    rank, dist = brute_force_knn(x, min(len(x), k1 + 3))  # a wider graph than needed
    ref_d, _, ref_s = reference_jaccard(x, rank, k1, k2)
    out = jaccard_distance(x, knn=(rank, dist), k1=k1, k2=k2)
    check_jaccard_against_reference(out, ref_d, ref_s)
    assert abs(out - out.T).max() == 0.0
    assert out.data.min() >= 0.0 and out.data.max() <= 1.0


@settings(max_examples=30, deadline=None)
@given(case=jaccard_cases(), perm_seed=st.integers(0, 1000))
def test_jaccard_permutation_equivariant(case, perm_seed):
    seed, n_ids, per_id, n_cams, k1, k2 = case
    x = camera_clustered(seed, n_ids=n_ids, per_id=per_id, n_cams=n_cams, dim=12)
    n = len(x)
    rank, dist = brute_force_knn(x, k1)
    perm = np.random.default_rng(perm_seed).permutation(n)
    inverse = np.argsort(perm)
    out = jaccard_distance(x, knn=(rank, dist), k1=k1, k2=k2)
    out_perm = jaccard_distance(x[perm], knn=(inverse[rank[perm]], dist[perm]), k1=k1, k2=k2)
    np.testing.assert_allclose(to_dense(out_perm), to_dense(out)[np.ix_(perm, perm)], atol=1e-6)
    np.testing.assert_array_equal(stored_mask(out_perm), stored_mask(out)[np.ix_(perm, perm)])


def test_jaccard_graph_only_full_width_is_exact():
    x = camera_clustered(25, n_ids=8, per_id=8)
    graph = knn(x, len(x) - 1)  # every pair's distance is in the graph
    rank, _ = brute_force_knn(x, 20)
    ref_d, _, ref_s = reference_jaccard(x, rank, 20, 6)
    check_jaccard_against_reference(jaccard_distance(knn=graph, k1=20, k2=6), ref_d, ref_s)


def test_jaccard_graph_only_narrow_uses_documented_fallback():
    x = camera_clustered(26, n_ids=12, per_id=8)
    k1 = 12
    rank, dist = brute_force_knn(x, k1)
    lookup = {(i, int(j)): dist[i, c] for i in range(len(x)) for c, j in enumerate(rank[i])}
    row_max = dist.max(axis=1)

    def pair_dist(i, j):
        if (i, j) in lookup:
            return lookup[(i, j)]
        if (j, i) in lookup:
            return lookup[(j, i)]
        return max(row_max[i], row_max[j])

    ref_d, _, ref_s = reference_jaccard(None, rank, k1, 4, pair_dist=pair_dist)
    out = jaccard_distance(knn=(rank, dist), k1=k1, k2=4)
    check_jaccard_against_reference(out, ref_d, ref_s)


def test_jaccard_features_plus_graph_equals_features_only():
    x = camera_clustered(27, n_ids=15, per_id=8)
    graph = knn(x, 10)
    a = jaccard_distance(x, k1=10, k2=4)
    b = jaccard_distance(x, knn=graph, k1=10, k2=4)
    wider = jaccard_distance(x, knn=knn(x, 25), k1=10, k2=4)
    np.testing.assert_allclose(to_dense(a), to_dense(b), atol=1e-6)
    np.testing.assert_allclose(to_dense(a), to_dense(wider), atol=1e-6)
    np.testing.assert_array_equal(stored_mask(a), stored_mask(wider))


def test_jaccard_dtypes_and_blocks():
    x = camera_clustered(28, n_ids=20, per_id=8)
    ref = jaccard_distance(x, k1=15, k2=5)
    blocked = jaccard_distance(x, k1=15, k2=5, block_size=7)
    np.testing.assert_array_equal(to_dense(ref), to_dense(blocked))
    np.testing.assert_array_equal(stored_mask(ref), stored_mask(blocked))
    f64 = jaccard_distance(x, k1=15, k2=5, dtype=np.float64)
    f16 = jaccard_distance(x, k1=15, k2=5, dtype="float16")
    assert f64.dtype == np.float64 and f16.dtype == np.float32
    np.testing.assert_allclose(to_dense(f64), to_dense(ref), atol=1e-5)
    np.testing.assert_allclose(to_dense(f16), to_dense(ref), atol=5e-3)


@pytest.mark.parametrize("max_distance", [0.0, 0.3, 0.6, 0.95, 1.0])
def test_jaccard_max_distance_keeps_exactly_the_close_pairs(max_distance):
    x = camera_clustered(32, n_ids=15, per_id=8)
    full = jaccard_distance(x, k1=12, k2=4)
    cut = jaccard_distance(x, k1=12, k2=4, max_distance=max_distance, block_size=9)
    dense = to_dense(full)
    keep = stored_mask(full) & (dense <= max_distance)
    np.testing.assert_array_equal(stored_mask(cut), keep | np.eye(len(x), dtype=bool))
    np.testing.assert_array_equal(to_dense(cut)[keep], dense[keep])
    assert cut.has_sorted_indices


def test_jaccard_does_not_modify_graph():
    x = camera_clustered(29)
    idx, dist = knn(x, 10)
    idx.flags.writeable = False
    dist.flags.writeable = False
    before = idx.copy(), dist.copy()
    jaccard_distance(knn=(idx, dist), k1=10, k2=3)
    jaccard_distance(x, knn=(idx, dist), k1=10, k2=3)
    np.testing.assert_array_equal(idx, before[0])
    np.testing.assert_array_equal(dist, before[1])


def _graph(n=96, k=10):
    return knn(camera_clustered(30), k)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((), {}, TypeError, r"jaccard_distance needs feats or knn \(a kNN graph\), got neither"),
        ((camera_clustered(31),), {"k1": 97}, ValueError, r"k1 must be in \[1, 96\], got 97"),
        ((camera_clustered(31),), {"k1": 0}, ValueError, r"k1 must be in \[1, 96\], got 0"),
        ((camera_clustered(31),), {"k1": 5.0}, TypeError, r"k1 must be an integer, got 5.0"),
        ((camera_clustered(31),), {"k1": 5, "k2": 6}, ValueError, r"k2 must be <= k1 .* got k2=6 > k1=5"),
        ((camera_clustered(31),), {"k2": 0}, ValueError, r"k2 must be in \[1, inf\], got 0"),
        ((camera_clustered(31),), {"dtype": np.int32}, TypeError, r"dtype must be float16, float32 or float64"),
        ((camera_clustered(31),), {"dtype": "banana"}, TypeError, r"dtype must be float16, .* got 'banana'"),
        ((camera_clustered(31),), {"block_size": -1}, ValueError, r"block_size must be in \[1, inf\], got -1"),
        ((camera_clustered(31),), {"backend": "gpu"}, ValueError, r"backend must be one of .* got 'gpu'"),
        ((camera_clustered(31),), {"max_distance": 1.5}, ValueError, r"max_distance must be in \[0, 1\], got 1.5"),
        ((camera_clustered(31),), {"max_distance": "0.5"}, TypeError, r"max_distance must be a real number"),
        (
            (),
            {"knn": _graph(), "k1": 12},
            ValueError,
            r"knn must hold at least k1 - 1 = 11 neighbours besides each sample \(k1=12 counts the sample itself\), "
            r"got 10: compute it with knn\(feats, 11\)",
        ),
        ((), {"knn": "graph"}, TypeError, r"knn must be a tuple \(indices, distances\) or a KnnGraph, got 'graph'"),
        ((camera_clustered(31)[:50],), {"knn": _graph()}, ValueError, r"knn must have 50 rows .* got 96"),
        ((np.zeros((0, 3)),), {}, ValueError, r"feats must not be empty, got shape \(0, 3\)"),
        ((np.ones(4),), {}, ValueError, r"feats must be 2-D \(n_samples, n_dims\), got shape \(4,\)"),
        ((np.array([[1.0, np.nan]]),), {"k1": 1, "k2": 1}, ValueError, r"feats must be finite, got NaN"),
    ],
)
def test_jaccard_errors(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        jaccard_distance(*args, **kwargs)


def test_jaccard_rejects_repeated_graph_indices():
    idx, dist = _graph()
    idx = idx.copy()
    idx[4, 3] = idx[4, 1]
    with pytest.raises(
        ValueError, match=r"knn indices must be distinct within each row, got sample \d+ twice in row 4"
    ):
        jaccard_distance(knn=(idx, dist), k1=10, k2=3)


def test_jaccard_rejects_empty_graph():
    with pytest.raises(ValueError, match=r"knn must not be empty, got a graph with 0 rows"):
        jaccard_distance(knn=(np.zeros((0, 3), np.int64), np.zeros((0, 3))), k1=1, k2=1)
