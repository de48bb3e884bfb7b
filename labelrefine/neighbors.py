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

import numbers
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp

from ._optional import has_module, import_optional
from ._progress import Progress, check_progress, one_step, ranges
from ._validation import (
    KnnGraph,
    as_rng,
    check_bool,
    check_choice,
    check_features,
    check_int,
    check_knn_graph,
    check_probability,
)

__all__ = ["EXACT_MAX_N", "KnnGraph", "ann_defaults", "jaccard_distance", "knn", "knn_search"]

_BACKENDS = ("auto", "faiss", "numpy", "torch")
_BLOCK_BYTES = 256 * 2**20  # temporaries of one block stay under about this many bytes
_GROUP = 16  # numpy top-k: columns per group of the group-maximum pre-selection
_FAISS_GPU_MAX_K = 2048  # largest k faiss GPU flat search supports
_QUERY_BLOCK = 16384  # faiss: query (and added) rows per call, the unit of progress reports
_RECALL_TOLERANCE = 1e-5  # a neighbour within this distance of the true k-th nearest counts as found
EXACT_MAX_N = 50_000
"""``exact=None`` searches exactly up to this many database rows, approximately above (faiss, CPU).

Measured crossover on this library's benchmark machine: see ``docs/scale.md``."""


# ----------------------------------------------------------------------------------------------
# kNN search
# ----------------------------------------------------------------------------------------------


def _row_norms(x: np.ndarray) -> np.ndarray:
    """L2 norm of each row, computed in blocks (no temporary as large as ``x``)."""
    step = max(1, 2**24 // max(1, x.shape[1]))
    return np.concatenate([np.linalg.norm(x[i : i + step], axis=1) for i in range(0, x.shape[0], step)])


def _unit_rows(x: np.ndarray, normalize: bool) -> np.ndarray:
    """C-contiguous float32 rows, L2-normalised when asked: at most one float32 copy of ``x``.

    Unit-length float32 rows (every norm within 1e-6 of 1) are used as they are, without a copy;
    other inputs are normalised block by block into one new float32 array. ``x`` is never modified.
    """
    if not normalize:
        return np.ascontiguousarray(x, dtype=np.float32)
    norms = _row_norms(x)
    if x.dtype == np.float32 and x.flags.c_contiguous and bool(np.all(np.abs(norms - 1) <= 1e-6)):
        return x
    norms[norms == 0] = 1.0  # all-zero rows stay zero instead of becoming NaN
    out = np.empty(x.shape, dtype=np.float32)
    step = max(1, 2**24 // max(1, x.shape[1]))
    for start in range(0, x.shape[0], step):  # loop over row blocks: temporaries stay small
        out[start : start + step] = x[start : start + step] / norms[start : start + step, None]
    return out


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
    gpu = _parse_device(device)
    if gpu is not None and gpu >= 0:
        raise ValueError(f"exact=False runs faiss HNSW on the CPU: device must be None or 'cpu', got {device!r}")
    import_optional("faiss")  # ModuleNotFoundError naming the extra
    return "faiss", True


def _auto_ann(backend: str, device: Any, m: int) -> bool:
    """``exact=None``: approximate above ``EXACT_MAX_N`` database rows when faiss searches on the CPU."""
    if backend != "faiss" or m <= EXACT_MAX_N:
        return False
    gpu = _parse_device(device)
    if gpu is None:
        faiss = import_optional("faiss")
        return _faiss_gpu(faiss, 1, None) is None
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
    return _sort_rows(indices, sims)


def _parse_device(device: Any) -> int | None:
    """None: automatic; -1: CPU; n >= 0: GPU number n."""
    if device is None:
        return None
    if isinstance(device, numbers.Integral) and not isinstance(device, bool):
        if int(device) >= 0:
            return int(device)
    else:
        text = str(device).strip().lower()  # also accepts torch.device("cuda:1")
        if text == "cpu":
            return -1
        if text in ("cuda", "gpu"):
            return 0
        for prefix in ("cuda:", "gpu:"):
            if text.startswith(prefix) and text[len(prefix) :].isdigit():
                return int(text[len(prefix) :])
    raise ValueError(f"device must be None, 'cpu', 'cuda', 'cuda:N' or a GPU number N >= 0, got {device!r}")


def _sort_rows(indices: np.ndarray, sims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort each row by decreasing similarity, ties by increasing index (deterministic)."""
    order = np.lexsort((indices, -sims), axis=-1)
    return np.take_along_axis(indices, order, axis=1), np.take_along_axis(sims, order, axis=1)


def _topk_block(s: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k largest entries of each row of ``s`` (unordered)."""
    b, m = s.shape
    if k >= m:
        return np.broadcast_to(np.arange(m), (b, m)).copy()
    n_groups = m // _GROUP
    if n_groups < 4 * k:
        return np.argpartition(s, m - k, axis=1)[:, m - k :]
    # Group-maximum pre-selection: split the first _GROUP * n_groups columns into n_groups groups
    # {g, g + n_groups, g + 2 n_groups, ...}. Every one of the k largest entries lies in a group
    # whose maximum is >= the k-th largest value, and at most k groups have such a maximum, so the
    # k groups with the largest maxima (plus the leftover tail columns) contain the top k.
    gmax = s[:, :n_groups].copy()
    for g in range(1, _GROUP):  # loop over the 16 group members, each step a vectorised maximum
        np.maximum(gmax, s[:, g * n_groups : (g + 1) * n_groups], out=gmax)
    top_groups = np.argpartition(gmax, n_groups - k, axis=1)[:, n_groups - k :]
    cols = (top_groups[:, None, :] + n_groups * np.arange(_GROUP)[None, :, None]).reshape(b, -1)
    tail = np.arange(_GROUP * n_groups, m)
    if tail.size:
        cols = np.concatenate([cols, np.broadcast_to(tail, (b, tail.size))], axis=1)
    vals = np.take_along_axis(s, cols, axis=1)
    keep = np.argpartition(vals, vals.shape[1] - k, axis=1)[:, vals.shape[1] - k :]
    return np.take_along_axis(cols, keep, axis=1)


def _search_numpy(
    q: np.ndarray, x: np.ndarray, k: int, block_size: int | None, progress: Progress | None
) -> tuple[np.ndarray, np.ndarray]:
    m = x.shape[0]
    if block_size is None:
        # similarity block (4 bytes) plus argpartition's int64 output (8 bytes) per entry
        block_size = max(1, _BLOCK_BYTES // (12 * m))
    out_idx = np.empty((q.shape[0], k), dtype=np.int64)
    out_sim = np.empty((q.shape[0], k), dtype=np.float32)
    for start, stop in ranges(progress, "knn search", q.shape[0], block_size):  # loop over row blocks
        s = q[start:stop] @ x.T
        cols = _topk_block(s, k)
        out_idx[start:stop] = cols
        out_sim[start:stop] = np.take_along_axis(s, cols, axis=1)
    return out_idx, out_sim


def _faiss_gpu(faiss: Any, k: int, gpu: int | None) -> int | None:
    """The GPU faiss should search on (None: the CPU), checking an explicit ``device``."""
    n_gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if gpu is not None and gpu >= 0:
        if gpu >= n_gpus or not hasattr(faiss, "StandardGpuResources"):
            raise ValueError(
                f"device={gpu} needs faiss with GPU support and at least {gpu + 1} GPU(s); faiss sees {n_gpus}"
            )
        if k > _FAISS_GPU_MAX_K:
            raise ValueError(f"k must be <= {_FAISS_GPU_MAX_K} for faiss GPU search, got {k}; use device='cpu'")
        return gpu
    use_gpu = gpu is None and n_gpus > 0 and k <= _FAISS_GPU_MAX_K and hasattr(faiss, "StandardGpuResources")
    return 0 if use_gpu else None


def _search_faiss(
    q: np.ndarray, x: np.ndarray, k: int, gpu: int | None, progress: Progress | None
) -> tuple[np.ndarray, np.ndarray]:
    faiss = import_optional("faiss")
    gpu = _faiss_gpu(faiss, k, gpu)
    if gpu is not None:
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), gpu, faiss.IndexFlatIP(x.shape[1]))
        index.add(x)
        with one_step(progress, "knn search"):
            sims, indices = index.search(q, k)
    else:  # brute force without an index: no second copy of the database
        sims = np.empty((q.shape[0], k), dtype=np.float32)
        indices = np.empty((q.shape[0], k), dtype=np.int64)
        for start, stop in ranges(progress, "knn search", q.shape[0], _QUERY_BLOCK):  # loop over query blocks
            sims[start:stop], indices[start:stop] = faiss.knn(q[start:stop], x, k, metric=faiss.METRIC_INNER_PRODUCT)
    return indices.astype(np.int64, copy=False), sims.astype(np.float32, copy=False)


def _search(
    q: np.ndarray, x: np.ndarray, k: int, backend: str, block_size: int | None, device: Any, progress: Progress | None
) -> tuple[np.ndarray, np.ndarray]:
    gpu = _parse_device(device)
    if backend == "numpy":
        if gpu is not None and gpu >= 0:
            raise ValueError(f"device={device!r} needs backend='faiss' (the numpy backend runs on the CPU)")
        indices, sims = _search_numpy(q, x, k, block_size, progress)
    else:
        indices, sims = _search_faiss(q, x, k, gpu, progress)
    return _sort_rows(indices, sims)


# ----------------------------------------------------------------------------------------------
# approximate search (faiss HNSW)
# ----------------------------------------------------------------------------------------------

_ANN_KEYS = ("M", "ef_construction", "ef_search", "recall_sample")


def ann_defaults(n: int, dim: int, k: int) -> dict[str, int]:
    """The HNSW parameters that ``knn(..., exact=False)`` uses for N samples of D dimensions.

    Parameters
    ----------
    n, dim : int
        Database rows and feature dimensions.
    k : int
        Neighbours searched per query (for :func:`knn`, ``k + 1``: the sample itself too).

    Returns
    -------
    dict
        ``M``: links per node of the HNSW graph (16, or 32 from D = 512 on, where neighbourhoods
        need more links); ``ef_construction``: 40 (faiss's default); ``ef_search``: the search
        beam, ``max(2 k, 32 + 16 log10(N / 1e5))`` (wider for larger N); ``recall_sample``: 1000
        rows for ``KnnGraph.recall``. Measured on this library's benchmark data in
        ``docs/scale.md``. Override any of them with ``knn(..., ann_params={...})``.

    Examples
    --------
    >>> ann_defaults(300_000, 256, 16)
    {'M': 16, 'ef_construction': 40, 'ef_search': 40, 'recall_sample': 1000}
    """
    beam = 32 + 16 * max(0.0, float(np.log10(max(n, 1) / 1e5)))
    return {
        "M": 16 if dim < 512 else 32,
        "ef_construction": 40,
        "ef_search": max(2 * k, round(beam)),
        "recall_sample": 1000,
    }


def _check_ann_params(params: Any, n: int, dim: int, k: int) -> dict[str, int]:
    """The defaults of :func:`ann_defaults` updated with the caller's (checked) ``ann_params``."""
    out = ann_defaults(n, dim, k)
    if params is None:
        return out
    if not isinstance(params, Mapping):
        raise TypeError(f"ann_params must be a dict with keys among {', '.join(_ANN_KEYS)}, got {params!r}")
    for key, value in params.items():
        if key not in _ANN_KEYS:
            raise ValueError(f"ann_params keys must be among {', '.join(_ANN_KEYS)}, got {key!r}")
        out[key] = check_int(value, f"ann_params[{key!r}]", low=k if key == "ef_search" else 1)
    return out


def _hnsw_index(x: np.ndarray, normalize: bool, params: dict[str, int], progress: Progress | None) -> Any:
    """A faiss HNSW inner-product index over the unit rows of ``x``, added block by block.

    Only one block of normalised rows exists at a time besides the index's own float32 copy.
    """
    faiss = import_optional("faiss")
    index = faiss.IndexHNSWFlat(x.shape[1], params["M"], faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = params["ef_construction"]
    index.hnsw.efSearch = params["ef_search"]
    for start, stop in ranges(progress, "knn index", x.shape[0], _QUERY_BLOCK):  # loop over row blocks
        index.add(_unit_rows(x[start:stop], normalize))
    return index


def _search_hnsw(
    index: Any, q: np.ndarray, k: int, normalize: bool, progress: Progress | None
) -> tuple[np.ndarray, np.ndarray]:
    """Approximate top-k of each query; rows the beam left short (-1) are searched exactly."""
    sims = np.empty((q.shape[0], k), dtype=np.float32)
    indices = np.empty((q.shape[0], k), dtype=np.int64)
    for start, stop in ranges(progress, "knn search", q.shape[0], _QUERY_BLOCK):  # loop over query blocks
        sims[start:stop], indices[start:stop] = index.search(_unit_rows(q[start:stop], normalize), k)
    short = np.flatnonzero((indices < 0).any(axis=1))
    if short.size:
        sims[short], indices[short] = index.storage.search(_unit_rows(q[short], normalize), k)
    return _sort_rows(indices, sims)


def _estimate_recall(
    index: Any, x: np.ndarray, graph: tuple[np.ndarray, np.ndarray], normalize: bool, sample: int, rng: Any
) -> float:
    """Share of the true k nearest others of sampled rows that the approximate graph holds.

    Exact neighbours come from a flat search of the index's stored rows; an approximate
    neighbour counts as found when its distance is within the true k-th nearest other distance
    (so ties count once, whichever tied sample was returned).
    """
    indices, distances = graph
    n, k = indices.shape[0], indices.shape[1] - 1
    rows = np.sort(as_rng(rng).choice(n, size=min(sample, n), replace=False))
    sims, found = index.storage.search(_unit_rows(x[rows], normalize), k + 1)
    found, sims = _sort_rows(found.astype(np.int64), sims)
    kth = _self_first(found, _to_distances(sims), rows)[1][:, -1:]  # true k-th nearest other
    hits = distances[rows, 1:] <= kth + _RECALL_TOLERANCE
    return float(hits.mean())


def _check_block_size(block_size: Any) -> int | None:
    return None if block_size is None else check_int(block_size, "block_size", low=1)


def _to_distances(sims: np.ndarray) -> np.ndarray:
    return np.clip(1.0 - sims, 0.0, 2.0).astype(np.float32, copy=False)


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
        index = _hnsw_index(x, normalize, _check_ann_params(ann_params, x.shape[0], x.shape[1], k), progress)
        indices, sims = _search_hnsw(index, q, k, normalize, progress)
    else:
        xn = _unit_rows(x, normalize)
        qn = xn if queries is database else _unit_rows(q, normalize)
        indices, sims = _search(qn, xn, k, backend, block_size, device, progress)
    return indices, _to_distances(sims)


def _self_first(
    indices: np.ndarray, distances: np.ndarray, rows: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Put sample ``rows[i]`` (default i) at column 0 of row i with distance 0; keep the others' order, drop the last.

    Rows whose search missed the sample itself (an approximate search can) lose their last
    neighbour instead, so every row keeps the sample and its k nearest others found.
    """
    n, k = indices.shape
    rows = np.arange(n) if rows is None else rows
    order = np.argsort(indices == rows[:, None], axis=1, kind="stable")[:, : k - 1]  # non-self first
    out_idx = np.empty_like(indices)
    out_dist = np.empty_like(distances)
    out_idx[:, 0] = rows
    out_dist[:, 0] = 0.0
    out_idx[:, 1:] = np.take_along_axis(indices, order, axis=1)
    out_dist[:, 1:] = np.take_along_axis(distances, order, axis=1)
    return out_idx, out_dist


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
    indices, sims = _search(xn, xn, k, backend, block_size, device, progress)
    return _self_first(indices, _to_distances(sims))


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
    normalize = bool(normalize)
    if backend == "torch":
        indices, sims = _search_torch(x, x, k + 1, block_size, normalize, True, progress)
        indices, distances = _self_first(indices, _to_distances(sims))
    elif approx if approx is not None else _auto_ann(backend, device, x.shape[0]):
        params = _check_ann_params(ann_params, x.shape[0], x.shape[1], k + 1)
        as_rng(rng)  # checked before the index is built
        index = _hnsw_index(x, normalize, params, progress)
        indices, sims = _search_hnsw(index, x, k + 1, normalize, progress)
        indices, distances = _self_first(indices, _to_distances(sims))
        with one_step(progress, "knn recall"):
            recall = _estimate_recall(index, x, (indices, distances), normalize, params["recall_sample"], rng)
        return KnnGraph(indices, distances, includes_self=True, recall=recall)
    else:
        indices, distances = _knn_graph(_unit_rows(x, normalize), k + 1, backend, block_size, device, progress)
    return KnnGraph(indices, distances, includes_self=True)


# ----------------------------------------------------------------------------------------------
# k-reciprocal encoding and Jaccard distance
# ----------------------------------------------------------------------------------------------


def _rows_to_csr(ranks: np.ndarray, n: int) -> sp.csr_matrix:
    """Binary (int32) N x N matrix with row i holding the entries of ranks[i] (distinct per row)."""
    k = ranks.shape[1]
    indptr = np.arange(0, ranks.shape[0] * k + 1, k, dtype=np.int64)
    mat = sp.csr_matrix((np.ones(ranks.size, dtype=np.int32), ranks.ravel(), indptr), shape=(ranks.shape[0], n))
    mat.sort_indices()
    return mat


def _reciprocal(ranks: np.ndarray, n_cols: int) -> sp.csr_matrix:
    """R[i, j] = 1 iff j is among the first n_cols entries of row i and i among those of row j."""
    forward = _rows_to_csr(ranks[:, :n_cols], ranks.shape[0])
    both = forward.multiply(forward.T).tocsr()
    both.sort_indices()
    return both


def _row_ids(indptr: np.ndarray, start: int = 0) -> np.ndarray:
    return np.repeat(np.arange(start, start + indptr.size - 1), np.diff(indptr))


class _PairDistance:
    """Cosine distance 1 - cos(x_i, x_j) of arbitrary pairs, read from the kNN graph when stored.

    Pairs missing from both rows of the graph are computed from the features when they are
    known (no normalised copy is made: dot products are divided by the norms), else replaced by
    max(d_i, d_j), d_i being the largest distance in row i (a lower bound of the true distance,
    as j is not among i's graph neighbours).
    """

    def __init__(self, indices: np.ndarray, distances: np.ndarray, x: np.ndarray | None):
        n = indices.shape[0]
        graph = sp.csr_matrix(
            (distances.astype(np.float64).ravel(), indices.ravel(), np.arange(0, indices.size + 1, indices.shape[1])),
            shape=(n, n),
        )
        graph.sum_duplicates()  # sorts the columns of each row (rows hold distinct indices)
        self.n = n
        self.keys = _row_ids(graph.indptr) * n + graph.indices
        self.values = graph.data
        self.row_max = distances.max(axis=1).astype(np.float64)
        self.x = x
        if x is not None:
            norms = np.linalg.norm(x, axis=1).astype(np.float64)
            norms[norms == 0] = 1.0
            self.inv_norms = 1.0 / norms

    def _lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pos = np.minimum(np.searchsorted(self.keys, keys), self.keys.size - 1)
        found = self.keys[pos] == keys
        return found, self.values[pos]

    def __call__(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        found, out = self._lookup(rows * self.n + cols)
        miss = np.flatnonzero(~found)
        if miss.size:
            found_t, values_t = self._lookup(cols[miss] * self.n + rows[miss])
            out[miss[found_t]] = values_t[found_t]
            miss = miss[~found_t]
        if miss.size and self.x is not None:
            chunk = max(1, 2**22 // self.x.shape[1])  # gathered rows of one chunk: ~32 MiB
            for start in range(0, miss.size, chunk):  # loop over chunks of pairs
                sel = miss[start : start + chunk]
                r, c = rows[sel], cols[sel]
                dots = np.einsum("ij,ij->i", self.x[r], self.x[c], dtype=np.float64)
                out[sel] = np.clip(1.0 - dots * self.inv_norms[r] * self.inv_norms[c], 0.0, 2.0)
        elif miss.size:
            out[miss] = np.maximum(self.row_max[rows[miss]], self.row_max[cols[miss]])
        return out


def _encoding(ranks: np.ndarray, k1: int, pair_distance: _PairDistance, rows_per_block: int) -> sp.csr_matrix:
    """The k-reciprocal encoding V (before query expansion) as an N x N float64 CSR matrix.

    Row i holds, over the expanded k-reciprocal set E(i), the softmax of minus the squared
    Euclidean distance of normalised features (2 - 2 cos).
    """
    n = ranks.shape[0]
    half = int(np.around(k1 / 2))
    k1_sets = _reciprocal(ranks, k1)  # R(i, k1): forward set = first k1 columns (self included)
    half_sets = _reciprocal(ranks, half + 1)  # R(c, round(k1/2)): first round(k1/2) + 1 columns
    half_size = np.diff(half_sets.indptr)
    threshold = 2 / 3 * half_size  # same float expression as the reference rule
    indptr = [np.zeros(1, dtype=np.int64)]
    indices, data = [], []
    for start in range(0, n, rows_per_block):  # loop over row blocks
        stop = min(start + rows_per_block, n)
        block = k1_sets[start:stop]
        # overlap[i, c] = |R(c, k1/2) ∩ R(i, k1)| for candidates c in R(i, k1) (both sets symmetric)
        overlap = (block @ half_sets).multiply(block).tocsr()
        overlap.sort_indices()
        good = overlap.data > threshold[overlap.indices]
        good_indptr = np.concatenate([[0], np.cumsum(good)])[overlap.indptr]
        chosen = sp.csr_matrix(
            (np.ones(int(good.sum()), dtype=np.int32), overlap.indices[good], good_indptr), shape=block.shape
        )
        expanded = (block + chosen @ half_sets).tocsr()
        expanded.sort_indices()
        rows = _row_ids(expanded.indptr, start)
        cols = expanded.indices.astype(np.int64)
        weights = np.exp(-2.0 * pair_distance(rows, cols))  # exp(-(2 - 2 cos))
        sums = np.bincount(rows - start, weights=weights, minlength=stop - start)
        weights /= sums[rows - start]
        indptr.append(expanded.indptr[1:].astype(np.int64) + indptr[-1][-1])
        indices.append(cols)
        data.append(weights)
    return sp.csr_matrix((np.concatenate(data), np.concatenate(indices), np.concatenate(indptr)), shape=(n, n))


def _query_expansion(v: sp.csr_matrix, ranks: np.ndarray, k2: int, rows_per_block: int, dtype: np.dtype):
    """Raw CSR arrays (indptr, indices, data in ``dtype``) of V_qe[i] = mean of V over ranks[i, :k2]."""
    n = v.shape[0]
    if k2 == 1:
        return v.indptr.astype(np.int64), v.indices.astype(np.int64), v.data.astype(dtype)
    average = _rows_to_csr(ranks[:, :k2], n).astype(np.float64)
    indptr = [np.zeros(1, dtype=np.int64)]
    indices, data = [], []
    for start in range(0, n, rows_per_block):  # loop over row blocks
        block = (average[start : start + rows_per_block] @ v).tocsr()
        block.sort_indices()
        indptr.append(block.indptr[1:].astype(np.int64) + indptr[-1][-1])
        indices.append(block.indices.astype(np.int64))
        data.append((block.data / k2).astype(dtype))
    return np.concatenate(indptr), np.concatenate(indices), np.concatenate(data)


class _MinSums:
    """Blocked S[i, j] = sum_l min(W[i, l], W[j, l]) for j > i, over rows of W that overlap.

    For every stored W[i, l] the rows j > i stored in column l are enumerated through the CSC
    form of W and emitted as (i, j, min) triples; triples are summed per pair by a sparse
    product (scipy's SMMP: a dense accumulator per row, no sorting of the triples). Row blocks
    emit at most ``max_pairs`` triples each (or hold ``rows`` rows when given), so the
    temporaries are bounded; the plan itself costs about 16 bytes per stored entry of W.
    """

    def __init__(self, indptr, indices, data, n: int, acc: np.dtype, max_pairs: int, rows: int | None):
        keep = data != 0  # an entry that underflowed (float16) is absent, as in the dense original
        if not keep.all():
            indptr = np.concatenate([[0], np.cumsum(keep)])[indptr]
            indices, data = indices[keep], data[keep]
        nnz = indices.size
        self.n, self.acc, self.indptr, self.data = n, acc, indptr, data
        self.dt = np.int32 if max(nnz, n) < 2**31 else np.int64
        order = sp.csr_matrix((np.arange(nnz, dtype=np.int64), indices, indptr), shape=(n, n)).tocsc()
        self.csc_rows = order.indices
        self.csc_data = data[order.data]
        csc_end = order.indptr[1:].astype(self.dt)
        self.csc_pos = np.empty(nnz, dtype=self.dt)
        self.csc_pos[order.data] = np.arange(nnz, dtype=self.dt)
        del order
        self.counts = csc_end[indices] - self.csc_pos - 1  # rows j > i below entry (i, l) in column l
        del csc_end
        emitted = np.zeros(nnz + 1, dtype=np.int64)
        np.cumsum(self.counts, out=emitted[1:])
        row_emitted = emitted[indptr]  # triples emitted before each row
        del emitted
        self.bounds = []
        start = 0
        while start < n:  # loop over row blocks
            if rows is not None:
                stop = min(start + rows, n)
            else:
                stop = int(np.searchsorted(row_emitted, row_emitted[start] + max_pairs, side="right")) - 1
                stop = min(max(stop, start + 1), n)
            self.bounds.append((start, stop, int(row_emitted[stop] - row_emitted[start])))
            start = stop
        self.row_emitted = row_emitted

    def _product(self, start: int, stop: int, total: int, values: bool) -> sp.csr_matrix:
        """(stop - start) x n block of summed triples (unsorted columns); ``values=False``: pattern only."""
        lo, hi = self.indptr[start], self.indptr[stop]
        cnt = self.counts[lo:hi]
        bt = np.int32 if max(total, self.n) < 2**31 and self.dt == np.int32 else np.int64
        offsets = np.cumsum(cnt, dtype=bt) - cnt  # first triple of each entry within the block
        pos = np.arange(total, dtype=bt) + np.repeat((self.csc_pos[lo:hi] + 1 - offsets).astype(bt), cnt)
        del offsets
        j = self.csc_rows[pos]
        if values:
            mins = np.minimum(np.repeat(self.data[lo:hi], cnt), self.csc_data[pos]).astype(self.acc, copy=False)
            ones = np.ones(total, dtype=self.acc)
        else:
            mins = ones = np.ones(total, dtype=bool)
        del pos
        row_ptr = (self.row_emitted[start : stop + 1] - self.row_emitted[start]).astype(bt)
        triples = sp.csr_matrix((mins, np.arange(total, dtype=bt), row_ptr), shape=(stop - start, total))
        targets = sp.csr_matrix((ones, j, np.arange(total + 1, dtype=bt)), shape=(total, self.n))
        return triples @ targets

    def _bounds(self, progress: Progress | None, step: str) -> Iterator[tuple[int, int, int]]:
        """The row blocks, each reported to ``progress`` once done."""
        for first, last in ranges(progress, step, len(self.bounds), 1):  # loop over row blocks
            yield from self.bounds[first:last]

    def pattern_counts(self, progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Stored pairs per row of the upper triangle, and per column (= lower triangle rows)."""
        per_row = np.zeros(self.n, dtype=np.int64)
        per_col = np.zeros(self.n, dtype=np.int64)
        for start, stop, total in self._bounds(progress, "jaccard pattern"):  # loop over row blocks
            block = self._product(start, stop, total, values=False)
            per_row[start:stop] = np.diff(block.indptr)
            per_col += np.bincount(block.indices, minlength=self.n)
        return per_row, per_col

    def blocks(self, progress: Progress | None = None):
        """Yield ``(start, stop, indptr, indices, sums)`` upper-triangle row blocks, columns sorted."""
        for start, stop, total in self._bounds(progress, "jaccard"):  # loop over row blocks
            block = self._product(start, stop, total, values=True)
            block.sort_indices()
            yield start, stop, block.indptr.astype(np.int64), block.indices, block.data


def _assemble_symmetric(blocks, n_upper: np.ndarray, n_lower: np.ndarray, dtype: np.dtype) -> sp.csr_matrix:
    """CSR matrix U + U.T + explicit zero diagonal, filled from U's upper-triangle row blocks.

    ``blocks`` yields ``(start, stop, indptr, indices, values)`` in increasing row order with
    sorted columns; ``n_upper``/``n_lower`` are U's stored entries per row and per column. The
    result is allocated once and filled block by block, so the peak memory is about the result
    plus one block. Every stored value is kept, zeros included.
    """
    n = n_upper.size
    out_indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(n_lower + n_upper + 1, out=out_indptr[1:])
    nnz = int(out_indptr[-1])
    index_dtype = np.int32 if max(n, nnz) < 2**31 else np.int64
    out_indices = np.empty(nnz, dtype=index_dtype)
    out_data = np.empty(nnz, dtype=dtype)
    diagonal = out_indptr[:-1] + n_lower  # each row: lower part, diagonal, upper part
    out_indices[diagonal] = np.arange(n)
    out_data[diagonal] = 0.0
    upper_start = diagonal + 1
    cursor = out_indptr[:-1].copy()  # next free slot of each row's lower part
    for start, stop, indptr, indices, values in blocks:  # loop over row blocks, increasing rows
        per_row = np.diff(indptr)
        if not np.array_equal(per_row, n_upper[start:stop]):
            raise RuntimeError("internal error: Jaccard blocks disagree with their counts")
        m = indices.size
        pos = np.arange(m, dtype=np.int64) + np.repeat(upper_start[start:stop] - indptr[:-1], per_row)
        out_indices[pos] = indices
        out_data[pos] = values
        # the same entries transposed: (i, j) lands in row j after the entries of earlier rows i
        transposed = sp.csr_matrix((values, indices, indptr), shape=(stop - start, n)).tocsc()
        per_col = np.diff(transposed.indptr).astype(np.int64)
        pos = np.arange(m, dtype=np.int64) + np.repeat(cursor - transposed.indptr[:-1], per_col)
        out_indices[pos] = transposed.indices + start
        out_data[pos] = transposed.data
        cursor += per_col
        del pos, transposed, indptr, indices, values
    if not np.array_equal(cursor, diagonal):
        raise RuntimeError("internal error: Jaccard blocks disagree with their counts")
    return sp.csr_matrix((out_data, out_indices, out_indptr.astype(index_dtype)), shape=(n, n))


def _assemble_kept(kept: list, n: int, dtype: np.dtype) -> sp.csr_matrix:
    """:func:`_assemble_symmetric` of a list of finished upper-triangle blocks, emptied as it is copied."""
    n_upper = np.concatenate([np.diff(p) for _, _, p, _, _ in kept])
    n_lower = np.zeros(n, dtype=np.int64)
    for block in kept:
        n_lower += np.bincount(block[3], minlength=n)
    kept.reverse()
    blocks = (kept.pop() for _ in range(len(kept)))  # frees each block once it is copied
    return _assemble_symmetric(blocks, n_upper, n_lower, dtype)


def _to_jaccard(sums: np.ndarray) -> np.ndarray:
    """1 - s / (2 - s), negatives clipped to 0, in place."""
    np.divide(sums, 2.0 - sums, out=sums)
    np.subtract(1.0, sums, out=sums)
    np.maximum(sums, 0.0, out=sums)
    return sums


def _thresholded(blocks, max_distance: float):
    """Upper-triangle distance blocks keeping only entries <= max_distance."""
    for start, stop, indptr, indices, values in blocks:
        keep = _to_jaccard(values) <= max_distance
        kept = np.zeros(keep.size + 1, dtype=np.int64)
        np.cumsum(keep, out=kept[1:])
        yield start, stop, kept[indptr], indices[keep], values[keep]


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
    x = None
    n = None
    if feats is not None:
        x = _torch_features((feats, "feats"))[0] if backend == "torch" else check_features(feats, "feats")
        n = x.shape[0]
    if knn is not None:
        indices, distances = _with_self(check_knn_graph(knn, "knn", n=n))
        n = indices.shape[0]
        if n == 0:
            raise ValueError("knn must not be empty, got a graph with 0 rows")
    assert n is not None  # checked above: feats or knn
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
    if knn is None and backend == "torch":
        indices, sims = _search_torch(x, x, k1, block_size, True, True, progress)
        indices, distances = _self_first(indices, _to_distances(sims))
    elif knn is None:
        assert x is not None  # checked above: feats or knn
        indices, distances = _knn_graph(_unit_rows(x, True), k1, backend, block_size, None, progress)
    else:
        if indices.shape[1] < k1:
            raise ValueError(
                f"knn must hold at least k1 - 1 = {k1 - 1} neighbours besides each sample (k1={k1} counts the "
                f"sample itself), got {indices.shape[1] - 1}: compute it with knn(feats, {k1 - 1}) or wider"
            )
        _check_distinct_rows(indices)
    acc = np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)
    if backend == "torch":
        if x is not None:
            device = x.device
        else:
            device = graph_head.device if graph_head is not None and _torch_backend().is_tensor(graph_head) else "cpu"
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
        return _assemble_kept(kept, n, acc)
    ranks = indices[:, :k1]

    half = int(np.around(k1 / 2))
    pair_distance = _PairDistance(indices, distances, x)
    rows_enc = block_size or max(1, 2**22 // (k1 * (half + 1)))
    with one_step(progress, "jaccard encoding"):
        v = _encoding(ranks, k1, pair_distance, rows_enc)
        del pair_distance
        rows_qe = block_size or max(1, 2**22 // max(1, k2 * v.nnz // n))
        w_indptr, w_indices, w_data = _query_expansion(v, ranks, k2, rows_qe, dtype)
        del v
    sums = _MinSums(w_indptr, w_indices, w_data, n, acc, _BLOCK_BYTES // 128, block_size)
    del w_indptr, w_indices, w_data
    if max_distance is None:
        # a pattern-only pass sizes the result, which the value pass then fills block by block
        n_upper, n_lower = sums.pattern_counts(progress)
        blocks = ((a, b, p, i, _to_jaccard(d)) for a, b, p, i, d in sums.blocks(progress))
    else:
        kept = list(_thresholded(sums.blocks(progress), max_distance))
        del sums
        return _assemble_kept(kept, n, acc)
    return _assemble_symmetric(blocks, n_upper, n_lower, acc)
