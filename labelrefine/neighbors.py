"""k-nearest-neighbour graphs in cosine geometry and the sparse k-reciprocal Jaccard distance.

Two kernels that every later stage of the pipeline builds on:

- :func:`knn` / :func:`knn_search`: exact k-nearest neighbours under cosine distance
  (``1 - cosine similarity``), with a faiss backend (CPU, or GPU when faiss-gpu sees one), a
  blocked numpy/BLAS backend that gives the same neighbours without faiss, and a blocked torch
  backend that runs on the device of the input tensor (CPU or CUDA).
- :func:`jaccard_distance`: the k-reciprocal encoding and Jaccard distance of Zhong et al.
  (CVPR 2017, "Re-ranking person re-identification with k-reciprocal encoding") with the exact
  conventions of the clustering code used by Cluster-Contrast and SpCL, returned as a sparse
  matrix in memory O(N k1 k2) instead of the dense N x N array of the original code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp

from ._ann import ann_defaults, check_ann_params, estimate_recall, hnsw_index, search_hnsw
from ._jaccard import (
    MinSums,
    PairDistance,
    assemble_kept,
    assemble_symmetric,
    encoding,
    query_expansion,
    thresholded,
    to_jaccard,
)
from ._optional import has_module, import_optional
from ._progress import Progress, check_progress, one_step
from ._search import BLOCK_BYTES, faiss_gpu, parse_device, search, self_first, sort_rows, to_distances, unit_rows
from ._types import KnnGraph, check_knn_graph
from ._validation import (
    as_rng,
    check_bool,
    check_choice,
    check_features,
    check_int,
    check_probability,
)

__all__ = ["EXACT_MAX_N", "KnnGraph", "ann_defaults", "check_knn_graph", "jaccard_distance", "knn", "knn_search"]

_BACKENDS = ("auto", "faiss", "numpy", "torch")
_RECALL_TOLERANCE = 1e-5  # a neighbour within this distance of the true k-th nearest counts as found
_FLOAT32 = np.dtype(np.float32)
EXACT_MAX_N = 50_000
"""``exact=None`` searches exactly up to this many database rows, approximately above (faiss, CPU).

Measured crossover on this library's benchmark machine: see ``docs/scale.md``."""


# ----------------------------------------------------------------------------------------------
# kNN search
# ----------------------------------------------------------------------------------------------


def _is_cuda_tensor(x: Any) -> bool:
    """A torch tensor on a CUDA device (duck-typed: torch is not imported)."""
    return hasattr(x, "detach") and getattr(x, "is_cuda", False) is True


def _resolve_backend(backend: Any, *inputs: Any) -> str:
    backend = check_choice(backend, "backend", _BACKENDS)
    if backend == "auto":
        if any(_is_cuda_tensor(x) for x in inputs):
            return "torch"
        return "faiss" if has_module("faiss") else "numpy"
    return backend


def _plan(backend: Any, exact: Any, device: Any, *inputs: Any) -> tuple[str, bool | None]:
    """The backend to use and whether the search is approximate (None: decide from the size)."""
    resolved = _resolve_backend(backend, *inputs)
    if exact is None:
        return resolved, None
    if check_bool(exact, "exact"):
        return resolved, False
    if backend in ("numpy", "torch"):
        raise ValueError(f"exact=False needs faiss (backend='auto' or 'faiss'), got backend={backend!r}")
    gpu = parse_device(device)
    if gpu is not None and gpu >= 0:
        raise ValueError(f"exact=False runs faiss HNSW on the CPU: device must be None or 'cpu', got {device!r}")
    import_optional("faiss")  # ModuleNotFoundError naming the extra
    return "faiss", True


def _auto_ann(backend: str, device: Any, m: int) -> bool:
    """``exact=None``: approximate above ``EXACT_MAX_N`` database rows when faiss searches on the CPU."""
    if backend != "faiss" or m <= EXACT_MAX_N:
        return False
    gpu = parse_device(device)
    if gpu is None:
        faiss = import_optional("faiss")
        return faiss_gpu(faiss, 1, None) is None
    return gpu < 0


def _torch_backend():
    """The torch backend module (imports torch; ModuleNotFoundError naming the extra without it)."""
    from . import _neighbors_torch

    return _neighbors_torch


def _check_torch_device(device: Any) -> None:
    if device is not None:
        raise ValueError(
            f"device must be None with backend='torch' (it runs on the device of the input tensor), got {device!r}"
        )


def _torch_features(*named: tuple[Any, str]) -> list[Any]:
    """Check features for the torch backend: tensors, all on the device of the first tensor given."""
    nt = _torch_backend()
    device = next((x.device for x, _ in named if nt.is_tensor(x)), None)
    return [nt.as_features(x, name, device) for x, name in named]


def _search_torch(
    q: Any, x: Any, k: int, block_size: int | None, normalize: bool, same: bool, progress: Progress | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Torch-backend search on the device of ``x``; numpy (indices, sims) with rows sorted as ``_search``."""
    nt = _torch_backend()
    xn = nt.unit_rows(x, normalize)
    qn = xn if same else nt.unit_rows(q, normalize)
    indices, sims = nt.search(qn, xn, k, block_size, progress)
    return sort_rows(indices, sims)


def _check_block_size(block_size: Any) -> int | None:
    return None if block_size is None else check_int(block_size, "block_size", low=1)


def knn_search(
    queries: Any,
    database: Any,
    k: int,
    *,
    backend: str = "auto",
    block_size: int | None = None,
    normalize: bool = True,
    device: Any = None,
    exact: bool | None = None,
    ann_params: Mapping[str, int] | None = None,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """k nearest database rows of each query under cosine distance, exact or approximate.

    Parameters
    ----------
    queries : array-like of shape (Q, D)
        Query features (float32/float64; numpy arrays, lists or torch tensors; float16 and
        bfloat16 tensors are computed in float32).
    database : array-like of shape (M, D)
        Database features, same number of columns as ``queries``.
    k : int
        Neighbours per query, ``1 <= k <= M``.
    backend : {"auto", "faiss", "numpy", "torch"}, default "auto"
        ``"faiss"``: an exact ``IndexFlatIP`` searched with the public ``Index.search`` (on a GPU
        when faiss-gpu sees one, see ``device``). ``"numpy"``: blocked BLAS products. ``"torch"``:
        blocked float32 matrix products and ``torch.topk`` on the device of the input tensor(s)
        (CPU or CUDA; other inputs join that device), only the (Q, k) result is copied back;
        needs the ``torch`` extra. ``"auto"``: torch when an input is a CUDA tensor, else faiss
        when it is installed, else numpy. All give the same neighbours (ties aside).
    block_size : int, optional
        numpy and torch backends: query rows per block. Default: as many as keep the (block, M)
        similarity block and its selection indices under about 256 MiB (torch on CUDA: under a
        quarter of the device's free memory, at most 4 GiB).
    normalize : bool, default True
        L2-normalise both inputs (into new arrays; the inputs are never modified). Pass False only
        for features that already have unit length.
    device : None, "cpu", "cuda", "cuda:N" or int, default None
        faiss backend only. None: GPU 0 when faiss reports a GPU (and ``k <= 2048``), else CPU.
        Must be None with ``backend="torch"``, which runs where the tensor is.

    Returns
    -------
    indices : numpy.ndarray of int64, shape (Q, k)
        Database row numbers, each row sorted by increasing distance (ties by increasing index).
    distances : numpy.ndarray of float32, shape (Q, k)
        ``1 - cosine similarity``, clipped to [0, 2].

    Raises
    ------
    ValueError
        Empty, non-2-D or non-finite features, different numbers of columns, ``k`` outside
        ``[1, M]``, an unknown backend or device, ``block_size < 1``, tensors on two devices.
    TypeError
        Non-float features or a non-integer ``k``.

    Notes
    -----
    Time O(Q M D) (one matrix product, done by BLAS or faiss, which use all cores and release the
    GIL) plus O(Q M) for the top-k selection. Extra memory: float32 normalised copies of both
    inputs, the outputs, and one similarity block (numpy backend, about 256 MiB by default).
    The torch backend computes its products at full float32 precision (TF32 is switched off for
    the call and the previous ``torch.get_float32_matmul_precision`` restored after).

    Examples
    --------
    >>> import numpy as np
    >>> from labelrefine.neighbors import knn_search
    >>> database = np.eye(4, dtype=np.float32)
    >>> queries = np.array([[1.0, 0.1, 0.0, 0.0]], dtype=np.float32)
    >>> indices, distances = knn_search(queries, database, 2, backend="numpy")
    >>> indices.tolist()
    [[0, 1]]
    >>> [round(float(d), 3) for d in distances[0]]
    [0.005, 0.9]
    """
    backend, approx = _plan(backend, exact, device, queries, database)
    block_size = _check_block_size(block_size)
    progress = check_progress(progress)
    if backend == "torch":
        _check_torch_device(device)
        x, q = _torch_features((database, "database"), (queries, "queries"))
    else:
        q = check_features(queries, "queries")
        x = check_features(database, "database")
    if q.shape[1] != x.shape[1]:
        raise ValueError(
            f"queries and database must have the same number of columns, got {q.shape[1]} and {x.shape[1]}"
        )
    k = check_int(k, "k (neighbours per query)", low=1, high=x.shape[0])
    normalize = bool(normalize)
    if backend == "torch":
        indices, sims = _search_torch(q, x, k, block_size, normalize, queries is database, progress)
    elif approx if approx is not None else _auto_ann(backend, device, x.shape[0]):
        index = hnsw_index(x, normalize, check_ann_params(ann_params, x.shape[0], x.shape[1], k), progress)
        indices, sims = search_hnsw(index, q, k, normalize, progress)
    else:
        xn = unit_rows(x, normalize)
        qn = xn if queries is database else unit_rows(q, normalize)
        indices, sims = search(qn, xn, k, backend, block_size, device, progress)
    return indices, to_distances(sims)


def _with_self(graph: KnnGraph) -> tuple[np.ndarray, np.ndarray]:
    """``(indices, distances)`` with each sample at column 0 (distance 0), prepended when missing."""
    if graph.includes_self:
        return graph.indices, graph.distances
    rows = np.arange(graph.n, dtype=np.int64)[:, None]
    zeros = np.zeros((graph.n, 1), dtype=graph.distances.dtype)
    return np.hstack([rows, graph.indices]), np.hstack([zeros, graph.distances])


def _knn_graph(
    xn: np.ndarray, k: int, backend: str, block_size: int | None, device: Any, progress: Progress | None = None
) -> tuple[np.ndarray, np.ndarray]:
    indices, sims = search(xn, xn, k, backend, block_size, device, progress)
    return self_first(indices, to_distances(sims))


def knn(
    feats: Any,
    k: int,
    *,
    backend: str = "auto",
    block_size: int | None = None,
    normalize: bool = True,
    device: Any = None,
    exact: bool | None = None,
    ann_params: Mapping[str, int] | None = None,
    rng: int | np.random.Generator | None = None,
    progress: Progress | None = None,
) -> KnnGraph:
    """kNN graph of the samples in cosine geometry: each sample, then its k nearest others.

    Parameters
    ----------
    feats : array-like of shape (N, D)
        Features (float32/float64; numpy arrays, lists or torch tensors; float16 and bfloat16
        tensors are computed in float32).
    k : int
        Neighbours per sample **other than the sample itself**, ``1 <= k < N`` (the meaning of
        ``k`` across the library): column 0 is the sample, columns 1..k its k nearest others.
    backend : {"auto", "faiss", "numpy", "torch"}, default "auto"
        See :func:`knn_search`; all backends return the same neighbours (ties aside).
        ``"auto"`` picks ``"torch"`` for a CUDA tensor, so features coming out of a model on the
        GPU stay there until the (N, k) graph comes back; then faiss when installed, else numpy.
    block_size : int, optional
        numpy and torch backends: rows per block (default: blocks of about 256 MiB; torch on
        CUDA: a quarter of the free device memory, at most 4 GiB).
    normalize : bool, default True
        L2-normalise the features (into a new array; ``feats`` is never modified). Pass False
        only for features that already have unit length.
    device : None, "cpu", "cuda", "cuda:N" or int, default None
        faiss backend only; see :func:`knn_search`. The torch backend runs on ``feats``'s device.

    Returns
    -------
    KnnGraph
        ``indices`` (int64, shape (N, k + 1)) with ``indices[i, 0] == i`` and the other columns
        sorted by increasing distance, ties by increasing index; ``distances`` (float32, same
        shape), ``1 - cosine similarity`` clipped to [0, 2] with ``distances[:, 0] == 0``;
        ``includes_self=True``. It unpacks like a tuple: ``indices, distances = knn(feats, k)``.

    Raises
    ------
    ValueError
        Empty, non-2-D or non-finite features, ``k`` outside ``[1, N - 1]``, an unknown backend
        or device, ``block_size < 1``.
    TypeError
        Non-float features or a non-integer ``k``.

    Notes
    -----
    The sample is put first even when duplicates tie with it (or beat it by a rounding error);
    if k or more duplicates would push it out, it replaces the farthest. Other neighbours whose
    computed similarities are exactly equal are ordered by increasing index. This is the graph
    convention of the whole library (CONTRIBUTING.md, data conventions).

    Time O(N² D) for the matrix product (BLAS or faiss, all cores) plus O(N²) for the top-k
    selection; memory: a float32 normalised copy of ``feats`` (faiss keeps a second one in its
    index), the (N, k) outputs and one similarity block of about 256 MiB (numpy backend).

    Examples
    --------
    >>> import numpy as np
    >>> from labelrefine.neighbors import knn
    >>> feats = np.random.default_rng(0).normal(size=(100, 16)).astype(np.float32)
    >>> graph = knn(feats, 5, backend="numpy")
    >>> graph
    KnnGraph(n=100, k=5, includes_self=True)
    >>> indices, distances = graph
    >>> indices.shape, distances.dtype
    ((100, 6), dtype('float32'))
    >>> bool((indices[:, 0] == np.arange(100)).all()), float(distances[:, 0].max())
    (True, 0.0)
    >>> bool((np.diff(distances, axis=1) >= 0).all())
    True
    """
    backend, approx = _plan(backend, exact, device, feats)
    block_size = _check_block_size(block_size)
    progress = check_progress(progress)
    if backend == "torch":
        _check_torch_device(device)
        (x,) = _torch_features((feats, "feats"))
    else:
        x = check_features(feats, "feats")
    if x.shape[0] < 2:
        raise ValueError(f"knn needs at least 2 samples (neighbours are other samples), got feats with {len(x)} row")
    k = check_int(k, "k (neighbours other than the sample itself)", low=1, high=x.shape[0] - 1)
    params = check_ann_params(ann_params, x.shape[0], x.shape[1], k + 1)
    as_rng(rng)  # checked before any index is built
    return _knn(
        x,
        k,
        backend,
        approx,
        params,
        block_size=block_size,
        normalize=bool(normalize),
        device=device,
        rng=rng,
        progress=progress,
    )


def _knn(
    x: Any,
    k: int,
    backend: str,
    approx: bool | None = None,
    params: dict[str, int] | None = None,
    *,
    block_size: int | None = None,
    normalize: bool = True,
    device: Any = None,
    rng: Any = None,
    progress: Progress | None = None,
) -> KnnGraph:
    """:func:`knn` on checked features (tensors for ``backend="torch"``) with a resolved backend.

    ``approx=None`` decides from the size (:data:`EXACT_MAX_N`); ``params=None`` are :func:`ann_defaults`.
    """
    if backend == "torch":
        indices, sims = _search_torch(x, x, k + 1, block_size, normalize, True, progress)
        return KnnGraph(*self_first(indices, to_distances(sims)), includes_self=True)
    if approx if approx is not None else _auto_ann(backend, device, x.shape[0]):
        params = ann_defaults(x.shape[0], x.shape[1], k + 1) if params is None else params
        index = hnsw_index(x, normalize, params, progress)
        indices, sims = search_hnsw(index, x, k + 1, normalize, progress)
        indices, distances = self_first(indices, to_distances(sims))
        with one_step(progress, "knn recall"):
            recall = estimate_recall(index, x, (indices, distances), normalize, params["recall_sample"], rng)
        return KnnGraph(indices, distances, includes_self=True, recall=recall)
    indices, distances = _knn_graph(unit_rows(x, normalize), k + 1, backend, block_size, device, progress)
    return KnnGraph(indices, distances, includes_self=True)


# ----------------------------------------------------------------------------------------------
# k-reciprocal encoding and Jaccard distance
# ----------------------------------------------------------------------------------------------


def _check_dtype(dtype: Any) -> np.dtype:
    try:
        resolved = np.dtype(dtype) if dtype is not None else None
    except TypeError:
        resolved = None
    if resolved is None or resolved.type not in (np.float16, np.float32, np.float64):
        raise TypeError(f"dtype must be float16, float32 or float64, got {dtype!r}")
    return resolved


def _check_distinct_rows(ranks: np.ndarray) -> None:
    srt = np.sort(ranks, axis=1)
    dup = srt[:, 1:] == srt[:, :-1]
    if dup.any():
        row = int(np.flatnonzero(dup.any(axis=1))[0])
        col = int(np.flatnonzero(dup[row])[0])
        raise ValueError(
            f"knn indices must be distinct within each row, got sample {int(srt[row, col])} twice in row {row}"
        )


def jaccard_distance(
    feats: Any = None,
    *,
    knn: KnnGraph | tuple[Any, Any] | None = None,
    k1: int = 30,
    k2: int = 6,
    dtype: Any = np.float32,
    block_size: int | None = None,
    backend: str = "auto",
    max_distance: float | None = None,
    progress: Progress | None = None,
) -> sp.csr_matrix:
    """Sparse k-reciprocal Jaccard distance (Zhong et al., CVPR 2017), as Cluster-Contrast computes it.

    Parameters
    ----------
    feats : array-like of shape (N, D), optional
        Features, cosine geometry (normalised inside without copying them, except for the kNN
        search when no graph is given). Give ``feats``, ``knn`` or both.
    knn : KnnGraph or tuple (indices, distances), optional
        A precomputed :class:`KnnGraph` (cosine distances) holding at least ``k1 - 1``
        neighbours besides each sample, e.g. ``knn(feats, k1 - 1)`` or wider, so one graph per
        epoch serves clustering, pivots and this distance; a graph without the self column gets
        it added. Without ``feats`` the few distances the encoding needs that are not in the
        graph are approximated (see Notes); pass ``feats`` too for exact numbers.
    k1 : int, default 30
        Size of the forward neighbour set, **the sample itself included**, ``1 <= k1 <= N``: the
        k-reciprocal parameter of Cluster-Contrast (its ``k1=30`` means 29 other samples), kept so
        that its configurations carry over. It is not the library's ``k`` (neighbours other than
        the sample, see :class:`KnnGraph`).
    k2 : int, default 6
        Query expansion averages the encodings of the ``k2`` nearest samples (itself included),
        ``1 <= k2 <= k1``.
    dtype : {numpy.float32, numpy.float64, numpy.float16}, default numpy.float32
        Storage of the expanded encoding (the largest intermediate). float16 halves it, like
        Cluster-Contrast's ``use_float16``; the result is float32 then, because scipy.sparse has
        no float16 matrices (float64 gives a float64 result).
    block_size : int, optional
        Rows per block in every stage (and of the internal kNN search). Default: blocks sized to
        keep each stage's temporaries under about 256 MiB.
    backend : {"auto", "faiss", "numpy", "torch"}, default "auto"
        ``"torch"``: every stage (the kNN search when no graph is given, the reciprocal sets,
        the encoding, query expansion and the minimum sums) runs in torch on the device of
        ``feats`` (or of the graph's tensors when only ``knn`` is given), one block at a time;
        each block of the result is copied back and the same CSR matrix assembled on the CPU.
        Equal to the numpy path to about 1e-6 (sums in another order); needs the ``torch``
        extra. ``"auto"`` picks it when ``feats`` (or, without ``feats``, the graph) is a CUDA
        tensor. Otherwise the backend of the internal :func:`knn` search when no graph is given
        (faiss when installed, else numpy); the rest runs in numpy/scipy.
    max_distance : float in [0, 1], optional
        Store only pairs with distance <= ``max_distance`` (others read as 1). Default: every
        pair below 1. The result can be large (see Notes); a density-based clustering with
        radius ``eps`` only needs ``max_distance=eps``, which bounds memory on large N.
    progress : callable, optional
        ``progress(step, done, total)`` (see :func:`labelrefine.console_progress`): the internal
        ``"knn search"`` when no graph is given, ``"jaccard encoding"``, then the blocks of the
        minimum sums, ``"jaccard pattern"`` (without ``max_distance``) and ``"jaccard"``.

    Returns
    -------
    scipy.sparse.csr_matrix of shape (N, N)
        Symmetric distances in [0, 1]. Stored: every pair whose expanded encodings overlap (the
        only pairs whose distance can be below 1; with ``max_distance``, those within it) and the
        diagonal (explicit 0); **a pair that is not stored has distance 1**. Column indices are
        sorted in each row. Stored zeros are meaningful (identical neighbourhoods): do not call
        ``eliminate_zeros`` on the result.

    Raises
    ------
    ValueError
        No input, empty, non-2-D or non-finite features, ``k1`` outside ``[1, N]``, ``k2 > k1``,
        a graph with fewer than ``k1`` columns, repeated indices within a graph row, or rows of
        ``feats`` and ``knn`` that differ in number.
    TypeError
        Non-float features, non-integer ``k1``/``k2``, an unsupported ``dtype``, a non-real
        ``max_distance``.

    Notes
    -----
    Definitions, following Cluster-Contrast's ``compute_jaccard_distance`` (the numbers users
    get from ``clustercontrast/utils/faiss_rerank.py`` with ``k1``, ``k2`` on normalised features,
    which is how it is called there), with rank[i] the kNN row of i (i first):

    - forward set: the first ``k1`` entries of rank[i], **the sample itself included** (not
      k1 + 1); ``R(i, k1)`` = forward members j whose own forward set contains i.
    - ``R(i, k1/2)`` likewise with the first ``int(round(k1 / 2)) + 1`` entries (numpy rounding,
      halves to even).
    - expansion: ``E(i) = R(i, k1)`` united with every ``R(c, k1/2)``, c in R(i, k1), for which
      ``|R(c, k1/2) ∩ R(i, k1)| > 2/3 |R(c, k1/2)|``.
    - encoding: ``V[i, j] = softmax_j(-||x_i - x_j||²)`` over j in E(i), with
      ``||x_i - x_j||² = 2 - 2 cos``; 0 elsewhere.
    - query expansion (when ``k2 > 1``): ``V_qe[i] = mean(V[rank[i, :k2]])``, self included.
    - ``d(i, j) = 1 - s / (2 - s)`` with ``s = sum_l min(V_qe[i, l], V_qe[j, l])``, negatives
      clipped to 0; the diagonal is stored as exactly 0 (the formula gives 0 up to rounding).

    Only the first ``k1`` columns of ``knn`` define neighbourhoods; extra columns only supply
    more stored distances. Encoding weights need ``cos(x_i, x_j)`` for j in E(i); pairs found in
    the graph (row i or row j) use the graph value, others are computed from ``feats``. Without
    ``feats``, a pair stored in neither row gets ``max(d_i, d_j)``, the largest graph distances of
    rows i and j (a lower bound of the true distance), so results then deviate slightly from
    Cluster-Contrast's unless the graph is wide enough to hold every expanded pair. Neighbours
    that tie in distance may be ordered differently than faiss orders them.

    Cost: besides the kNN search (see :func:`knn`), time O(N k1² + N k2 |E| + P), P being the
    number of (i, l, j) overlap triples (half the sum over columns of V_qe of the squared column
    count), all vectorised numpy/scipy (sparse products, no sorting of the triples). Memory:
    O(N k1 k2) for V_qe (about 30 bytes per stored entry while the minimum sums are formed),
    blocked temporaries of about 256 MiB, and the result, 8 bytes per stored pair (4 for the
    float32 value, 4 for the column). The result is allocated once: a pattern-only pass over the
    triples counts the stored pairs first (about a third of the total time), then the values are
    written into it block by block. The number of stored pairs is the size of the two-step
    neighbourhood of the encodings: typically a few hundred to a few thousand per sample with
    k1=30, k2=6 (it grows with how entangled the clusters are), against N per sample for the
    dense original, which also needs several N x N arrays.

    Examples
    --------
    >>> import numpy as np
    >>> from labelrefine.neighbors import jaccard_distance
    >>> rng = np.random.default_rng(0)
    >>> centers = rng.normal(size=(10, 32))
    >>> feats = np.repeat(centers, 8, axis=0) + 0.3 * rng.normal(size=(80, 32))
    >>> dist = jaccard_distance(feats, k1=10, k2=3, backend="numpy")
    >>> dist.shape, dist.format
    ((80, 80), 'csr')
    >>> bool(abs(dist - dist.T).max() < 1e-6), float(dist.diagonal().max())
    (True, 0.0)
    >>> dense = np.ones(dist.shape)  # pairs not stored have distance 1
    >>> coo = dist.tocoo()
    >>> dense[coo.row, coo.col] = coo.data
    >>> same = np.equal.outer(np.arange(80) // 8, np.arange(80) // 8)
    >>> bool(dense[same].mean() < 0.5 < dense[~same].mean())
    True
    """
    if feats is None and knn is None:
        raise TypeError("jaccard_distance needs feats or knn (a kNN graph), got neither")
    graph_head = knn[0] if isinstance(knn, (tuple, list)) and len(knn) == 2 else None
    backend = _resolve_backend(backend, feats if feats is not None else graph_head)
    x: Any = None
    graph: tuple[np.ndarray, np.ndarray] | None = None
    if feats is not None:
        x = _torch_features((feats, "feats"))[0] if backend == "torch" else check_features(feats, "feats")
    if knn is not None:
        graph = _with_self(check_knn_graph(knn, "knn", n=None if x is None else x.shape[0]))
        if graph[0].shape[0] == 0:
            raise ValueError("knn must not be empty, got a graph with 0 rows")
    n = x.shape[0] if graph is None else graph[0].shape[0]
    k1 = check_int(k1, "k1", low=1, high=n)
    k2 = check_int(k2, "k2", low=1)
    if k2 > k1:
        raise ValueError(
            f"k2 must be <= k1 (query expansion averages the k2 nearest of the k1 neighbours), got k2={k2} > k1={k1}"
        )
    dtype = _check_dtype(dtype)
    block_size = _check_block_size(block_size)
    if max_distance is not None:
        max_distance = check_probability(max_distance, "max_distance")
    progress = check_progress(progress)
    if graph is not None:
        if graph[0].shape[1] < k1:
            raise ValueError(
                f"knn must hold at least k1 - 1 = {k1 - 1} neighbours besides each sample (k1={k1} counts the "
                f"sample itself), got {graph[0].shape[1] - 1}: compute it with knn(feats, {k1 - 1}) or wider"
            )
        _check_distinct_rows(graph[0])
    device = None
    if backend == "torch":
        device = x.device if x is not None else getattr(graph_head, "device", "cpu")
    return _jaccard(x, graph, k1, k2, backend, dtype, block_size, max_distance, device, progress)


def _jaccard(
    x: Any,
    graph: tuple[np.ndarray, np.ndarray] | None,
    k1: int,
    k2: int,
    backend: str,
    dtype: np.dtype = _FLOAT32,
    block_size: int | None = None,
    max_distance: float | None = None,
    device: Any = None,
    progress: Progress | None = None,
) -> sp.csr_matrix:
    """:func:`jaccard_distance` on checked inputs with a resolved backend.

    ``graph``: a checked (indices, distances) pair with the self column, at least ``k1`` wide and
    distinct per row, or None to search it in ``x``; ``device``: where the torch backend runs.
    """
    if graph is not None:
        indices, distances = graph
    elif backend == "torch":
        indices, sims = _search_torch(x, x, k1, block_size, True, True, progress)
        indices, distances = self_first(indices, to_distances(sims))
    else:
        indices, distances = _knn_graph(unit_rows(x, True), k1, backend, block_size, None, progress)
    n = indices.shape[0]
    acc = np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)
    if backend == "torch":
        with one_step(progress, "jaccard"):
            kept = _torch_backend().jaccard_blocks(
                x,
                indices,
                distances,
                device,
                k1=k1,
                k2=k2,
                dtype=dtype,
                block_size=block_size,
                max_distance=max_distance,
            )
        return assemble_kept(kept, n, acc)
    ranks = indices[:, :k1]

    half = int(np.around(k1 / 2))
    pair_distance = PairDistance(indices, distances, x)
    rows_enc = block_size or max(1, 2**22 // (k1 * (half + 1)))
    with one_step(progress, "jaccard encoding"):
        v = encoding(ranks, k1, pair_distance, rows_enc)
        del pair_distance
        rows_qe = block_size or max(1, 2**22 // max(1, k2 * v.nnz // n))
        w_indptr, w_indices, w_data = query_expansion(v, ranks, k2, rows_qe, dtype)
        del v
    sums = MinSums(w_indptr, w_indices, w_data, n, acc, BLOCK_BYTES // 128, block_size)
    del w_indptr, w_indices, w_data
    if max_distance is None:
        # a pattern-only pass sizes the result, which the value pass then fills block by block
        n_upper, n_lower = sums.pattern_counts(progress)
        blocks = ((a, b, p, i, to_jaccard(d)) for a, b, p, i, d in sums.blocks(progress))
    else:
        kept = list(thresholded(sums.blocks(progress), max_distance))
        del sums
        return assemble_kept(kept, n, acc)
    return assemble_symmetric(blocks, n_upper, n_lower, acc)
