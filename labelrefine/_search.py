"""Exact kNN search kernels of :mod:`labelrefine.neighbors`: numpy (blocked BLAS) and faiss flat search.

They take checked float32 unit rows and return (indices, similarities) sorted per row; the
public functions in :mod:`labelrefine.neighbors` check the inputs and choose the backend.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ._optional import import_optional
from ._progress import Progress, one_step, ranges

BLOCK_BYTES = 256 * 2**20  # temporaries of one block stay under about this many bytes
_GROUP = 16  # numpy top-k: columns per group of the group-maximum pre-selection
_FAISS_GPU_MAX_K = 2048  # largest k faiss GPU flat search supports
QUERY_BLOCK = 16384  # faiss: query (and added) rows per call, the unit of progress reports


def _row_norms(x: np.ndarray) -> np.ndarray:
    """L2 norm of each row, computed in blocks (no temporary as large as ``x``)."""
    step = max(1, 2**24 // max(1, x.shape[1]))
    return np.concatenate([np.linalg.norm(x[i : i + step], axis=1) for i in range(0, x.shape[0], step)])


def unit_rows(x: np.ndarray, normalize: bool) -> np.ndarray:
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


def parse_device(device: Any) -> int | None:
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


def sort_rows(indices: np.ndarray, sims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort each row by decreasing similarity, ties by increasing index (deterministic)."""
    order = np.lexsort((indices, -sims), axis=-1)
    return np.take_along_axis(indices, order, axis=1), np.take_along_axis(sims, order, axis=1)


def topk_block(s: np.ndarray, k: int) -> np.ndarray:
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


def search_numpy(
    q: np.ndarray, x: np.ndarray, k: int, block_size: int | None, progress: Progress | None
) -> tuple[np.ndarray, np.ndarray]:
    m = x.shape[0]
    if block_size is None:
        # similarity block (4 bytes) plus argpartition's int64 output (8 bytes) per entry
        block_size = max(1, BLOCK_BYTES // (12 * m))
    out_idx = np.empty((q.shape[0], k), dtype=np.int64)
    out_sim = np.empty((q.shape[0], k), dtype=np.float32)
    for start, stop in ranges(progress, "knn search", q.shape[0], block_size):  # loop over row blocks
        s = q[start:stop] @ x.T
        cols = topk_block(s, k)
        out_idx[start:stop] = cols
        out_sim[start:stop] = np.take_along_axis(s, cols, axis=1)
    return out_idx, out_sim


def faiss_gpu(faiss: Any, k: int, gpu: int | None) -> int | None:
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


def search_faiss(
    q: np.ndarray, x: np.ndarray, k: int, gpu: int | None, progress: Progress | None
) -> tuple[np.ndarray, np.ndarray]:
    faiss = import_optional("faiss")
    gpu = faiss_gpu(faiss, k, gpu)
    if gpu is not None:
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), gpu, faiss.IndexFlatIP(x.shape[1]))
        index.add(x)
        with one_step(progress, "knn search"):
            sims, indices = index.search(q, k)
    else:  # brute force without an index: no second copy of the database
        sims = np.empty((q.shape[0], k), dtype=np.float32)
        indices = np.empty((q.shape[0], k), dtype=np.int64)
        for start, stop in ranges(progress, "knn search", q.shape[0], QUERY_BLOCK):  # loop over query blocks
            sims[start:stop], indices[start:stop] = faiss.knn(q[start:stop], x, k, metric=faiss.METRIC_INNER_PRODUCT)
    return indices.astype(np.int64, copy=False), sims.astype(np.float32, copy=False)


def search(
    q: np.ndarray, x: np.ndarray, k: int, backend: str, block_size: int | None, device: Any, progress: Progress | None
) -> tuple[np.ndarray, np.ndarray]:
    gpu = parse_device(device)
    if backend == "numpy":
        if gpu is not None and gpu >= 0:
            raise ValueError(f"device={device!r} needs backend='faiss' (the numpy backend runs on the CPU)")
        indices, sims = search_numpy(q, x, k, block_size, progress)
    else:
        indices, sims = search_faiss(q, x, k, gpu, progress)
    return sort_rows(indices, sims)


def to_distances(sims: np.ndarray) -> np.ndarray:
    return np.clip(1.0 - sims, 0.0, 2.0).astype(np.float32, copy=False)


def self_first(
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
