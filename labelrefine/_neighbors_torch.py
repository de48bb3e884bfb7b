"""The torch backend of :mod:`labelrefine.neighbors`: kNN search and Jaccard blocks on the input's device.

Private module, imported only when ``backend="torch"`` is asked for (or picked by ``"auto"`` for
CUDA tensors), so that ``import labelrefine`` never imports torch. Everything here runs on the
device of the input tensor (CPU or CUDA) in bounded blocks and hands back numpy arrays of size
O(N k) (the kNN graph) or one block of the Jaccard result at a time; the public functions in
:mod:`labelrefine.neighbors` validate the arguments, order the rows and assemble the result, so
every backend shares one convention.

The Jaccard stages mirror the numpy implementation step for step (same sets, same float64
encoding weights, same storage dtype of the expanded encoding, same float32/float64 minimum
sums), with sparse sets held as sorted int64 keys ``row * N + column`` and looked up with
``torch.searchsorted`` instead of scipy sparse products.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from ._optional import import_optional
from ._progress import Progress, ranges
from ._validation import check_features

torch = import_optional("torch")

_CPU_BUDGET = 256 * 2**20  # bytes of temporaries per block on the CPU (as the numpy backend)
_CUDA_BUDGET_MAX = 4 * 2**30  # on CUDA: a quarter of the free memory, at most this
_KNN_BYTES = 12  # per (query, database) entry of a block: float32 product plus top-k workspace
_TRIPLE_BYTES = 96  # per enumerated triple of the Jaccard stages (int64 keys, positions, sort workspace)
_FLOATS = {np.dtype(np.float16): "float16", np.dtype(np.float32): "float32", np.dtype(np.float64): "float64"}


# ----------------------------------------------------------------------------------------------
# inputs and memory
# ----------------------------------------------------------------------------------------------


def is_tensor(x: Any) -> bool:
    return isinstance(x, torch.Tensor)


def as_features(x: Any, name: str, device: Any = None) -> Any:
    """2-D, non-empty, finite float tensor (float16/bfloat16/float32/float64), never copied needlessly.

    Tensors keep their device (and must be on ``device`` when it is given); other inputs are
    checked by :func:`labelrefine._validation.check_features` and put on ``device`` (CPU by default).
    """
    if isinstance(x, torch.Tensor):
        t = x.detach()
        if device is not None and t.device != torch.device(device):
            raise ValueError(f"{name} must be on the same device as the other input ({device}), got {t.device}")
        if t.ndim != 2:
            raise ValueError(f"{name} must be 2-D (n_samples, n_dims), got shape {tuple(t.shape)}")
        if t.shape[0] == 0 or t.shape[1] == 0:
            raise ValueError(f"{name} must not be empty, got shape {tuple(t.shape)}")
        if t.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
            raise TypeError(f"{name} must be float16, bfloat16, float32 or float64, got dtype {t.dtype}")
        bad = ~torch.isfinite(t).all(dim=1)
        if bool(bad.any()):
            row = int(torch.nonzero(bad)[0, 0])
            raise ValueError(f"{name} must be finite, got NaN or infinity (first in row {row})")
        return t
    t = torch.from_numpy(np.ascontiguousarray(check_features(x, name)))
    return t if device is None else t.to(device)


def budget(device: Any) -> int:
    """Bytes of temporaries one block may use: 256 MiB on the CPU, min(free / 4, 4 GiB) on CUDA."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(min(max(free // 4, 64 * 2**20), _CUDA_BUDGET_MAX))
    return _CPU_BUDGET


@contextmanager
def _exact_float32() -> Iterator[None]:
    """float32 products at full precision (no TF32/bfloat16 shortcuts) for the call, restored after."""
    old = torch.get_float32_matmul_precision()
    if old != "highest":
        torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        if old != "highest":
            torch.set_float32_matmul_precision(old)


def unit_rows(t: Any, normalize: bool) -> Any:
    """Contiguous float32 rows, L2-normalised when asked (in float64 for float64 input, else float32)."""
    work = t.to(torch.float64) if t.dtype == torch.float64 else t.to(torch.float32)
    if normalize:
        norms = torch.linalg.vector_norm(work, dim=1, keepdim=True)
        work = work / torch.where(norms == 0, torch.ones_like(norms), norms)  # zero rows stay zero
    return work.to(torch.float32).contiguous()


# ----------------------------------------------------------------------------------------------
# kNN search
# ----------------------------------------------------------------------------------------------


def search(
    q: Any, x: Any, k: int, block_size: int | None, progress: Progress | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k inner products of each row of ``q`` among the rows of ``x`` (float32, same device).

    One (block, M) product block at a time; returns numpy ``(indices int64, sims float32)`` of
    shape (Q, k), rows in no particular order (the caller sorts them).
    """
    n_q, m = q.shape[0], x.shape[0]
    if block_size is None:
        block_size = max(1, budget(q.device) // (_KNN_BYTES * m))
    out_idx = torch.empty((n_q, k), dtype=torch.int64, device=q.device)
    out_sim = torch.empty((n_q, k), dtype=torch.float32, device=q.device)
    xt = x.T
    with torch.no_grad(), _exact_float32():
        for start, stop in ranges(progress, "knn search", n_q, block_size):  # loop over row blocks
            sims = q[start:stop] @ xt
            vals, cols = torch.topk(sims, k, dim=1, largest=True, sorted=False)
            out_sim[start:stop] = vals
            out_idx[start:stop] = cols
            del sims, vals, cols
    return out_idx.cpu().numpy(), out_sim.cpu().numpy()


# ----------------------------------------------------------------------------------------------
# k-reciprocal encoding and Jaccard distance
# ----------------------------------------------------------------------------------------------


def _indptr(rows: Any, n: int) -> Any:
    """CSR row pointer of entries with (sorted) row ids ``rows``."""
    out = torch.zeros(n + 1, dtype=torch.int64, device=rows.device)
    torch.cumsum(torch.bincount(rows, minlength=n), 0, out=out[1:])
    return out


def _expand(indptr: Any, rows: Any) -> tuple[Any, Any]:
    """Positions of the entries of CSR rows ``rows`` (concatenated) and the index of their row in ``rows``."""
    counts = indptr[rows + 1] - indptr[rows]
    owner = torch.repeat_interleave(torch.arange(rows.numel(), device=rows.device), counts)
    first = torch.cumsum(counts, 0) - counts
    pos = torch.arange(owner.numel(), device=rows.device) - first[owner] + indptr[rows][owner]
    return pos, owner


def _member(sorted_keys: Any, keys: Any) -> tuple[Any, Any]:
    """Whether each key is in ``sorted_keys``, and its position there (clamped when absent)."""
    if sorted_keys.numel() == 0:
        return torch.zeros_like(keys, dtype=torch.bool), torch.zeros_like(keys)
    pos = torch.searchsorted(sorted_keys, keys).clamp_(max=sorted_keys.numel() - 1)
    return sorted_keys[pos] == keys, pos


def _reciprocal(ranks: Any, n_cols: int) -> Any:
    """Sorted keys i * N + j with j among the first n_cols of row i and i among those of row j."""
    n = ranks.shape[0]
    fw = torch.sort(ranks[:, :n_cols], dim=1).values  # short sorts per row: the keys come out sorted
    rows = torch.arange(n, device=ranks.device).repeat_interleave(fw.shape[1])
    cols = fw.reshape(-1)
    keys = rows * n + cols
    found, _ = _member(keys, cols * n + rows)
    return keys[found]


class PairDistance:
    """Cosine distance 1 - cos(x_i, x_j) of pairs, from the graph when stored (mirror of the numpy one)."""

    def __init__(self, indices: Any, distances: Any, x: Any | None):
        n, k = indices.shape
        rows = torch.arange(n, device=indices.device).repeat_interleave(k)
        keys = rows * n + indices.reshape(-1)
        self.keys, order = torch.sort(keys)
        self.values = distances.reshape(-1).to(torch.float64)[order]
        self.row_max = distances.max(dim=1).values.to(torch.float64)
        self.n = n
        self.x = x
        if x is not None:
            norms = torch.linalg.vector_norm(x.to(torch.float64), dim=1)
            self.inv_norms = 1.0 / torch.where(norms == 0, torch.ones_like(norms), norms)

    def __call__(self, rows: Any, cols: Any) -> Any:
        found, pos = _member(self.keys, rows * self.n + cols)
        out = self.values[pos]
        miss = torch.nonzero(~found).reshape(-1)
        if miss.numel():
            found_t, pos_t = _member(self.keys, cols[miss] * self.n + rows[miss])
            out[miss[found_t]] = self.values[pos_t[found_t]]
            miss = miss[~found_t]
        if miss.numel() and self.x is not None:
            chunk = max(1, 2**22 // self.x.shape[1])
            for start in range(0, miss.numel(), chunk):  # loop over chunks of pairs
                sel = miss[start : start + chunk]
                r, c = rows[sel], cols[sel]
                dots = (self.x[r].to(torch.float64) * self.x[c].to(torch.float64)).sum(dim=1)
                out[sel] = torch.clamp(1.0 - dots * self.inv_norms[r] * self.inv_norms[c], 0.0, 2.0)
        elif miss.numel():
            out[miss] = torch.maximum(self.row_max[rows[miss]], self.row_max[cols[miss]])
        return out


def _encoding(ranks: Any, k1: int, pair_distance: PairDistance, rows_per_block: int) -> tuple[Any, Any, Any]:
    """CSR arrays (indptr, indices, float64 data) of the k-reciprocal encoding V (see the numpy one)."""
    n = ranks.shape[0]
    dev = ranks.device
    half = int(np.around(k1 / 2))
    k1_keys = _reciprocal(ranks, k1)
    half_keys = _reciprocal(ranks, half + 1)
    k1_ptr, k1_cols = _indptr(k1_keys // n, n), k1_keys % n
    half_ptr, half_cols = _indptr(half_keys // n, n), half_keys % n
    threshold = 2 / 3 * (half_ptr[1:] - half_ptr[:-1]).to(torch.float64)  # the reference rule's float
    parts_keys, parts_w = [], []
    for start in range(0, n, rows_per_block):  # loop over row blocks
        stop = min(start + rows_per_block, n)
        lo, hi = int(k1_ptr[start]), int(k1_ptr[stop])
        sizes = k1_ptr[start + 1 : stop + 1] - k1_ptr[start:stop]
        i = torch.repeat_interleave(torch.arange(start, stop, device=dev), sizes)
        c = k1_cols[lo:hi]
        # overlap of candidate c: members m of R(c, k1/2) that are also in R(i, k1)
        pos, owner = _expand(half_ptr, c)
        inside, _ = _member(k1_keys, i[owner] * n + half_cols[pos])
        overlap = torch.bincount(owner[inside], minlength=c.numel())
        good = torch.nonzero(overlap.to(torch.float64) > threshold[c]).reshape(-1)
        pos, owner = _expand(half_ptr, c[good])
        keys = torch.cat([i * n + c, i[good][owner] * n + half_cols[pos]])
        keys = torch.unique(keys, sorted=True)
        rows, cols = keys // n, keys % n
        weights = torch.exp(-2.0 * pair_distance(rows, cols))  # exp(-(2 - 2 cos))
        sums = torch.zeros(stop - start, dtype=torch.float64, device=dev).index_add_(0, rows - start, weights)
        parts_keys.append(keys)
        parts_w.append(weights / sums[rows - start])
    keys = torch.cat(parts_keys)
    return _indptr(keys // n, n), keys % n, torch.cat(parts_w)


def _cast(x: Any, dtype: Any) -> Any:
    """float64 -> ``dtype`` rounded once to nearest, as numpy's ``astype`` does.

    torch converts float64 to float16 through float32, which rounds twice and then differs from
    numpy by one unit in the last place now and then. Rounding to float32 *to odd* (truncate,
    then set the last bit when inexact) first makes the second rounding exact.
    """
    if dtype != torch.float16:
        return x.to(dtype)
    f = x.to(torch.float32)
    wide = f.to(torch.float64)
    toward_zero = torch.where(wide.abs() > x.abs(), torch.nextafter(f, torch.zeros_like(f)), f)
    odd = torch.where(wide != x, toward_zero.view(torch.int32) | 1, toward_zero.view(torch.int32))
    return odd.view(torch.float32).to(torch.float16)


def _query_expansion(v: tuple[Any, Any, Any], ranks: Any, k2: int, max_triples: int, block_size: int | None, dtype):
    """CSR arrays of V_qe[i] = mean of V over ranks[i, :k2], data stored in ``dtype``."""
    v_ptr, v_cols, v_data = v
    n = ranks.shape[0]
    tdtype = getattr(torch, _FLOATS[np.dtype(dtype)])
    if k2 == 1:
        return v_ptr, v_cols, _cast(v_data, tdtype)
    src = torch.sort(ranks[:, :k2], dim=1).values  # scipy's product sums the k2 rows in index order
    per_row = (v_ptr[src + 1] - v_ptr[src]).sum(dim=1)
    parts_keys, parts_data = [], []
    for start, stop in _bounds(per_row, max_triples, block_size):  # loop over row blocks
        r = src[start:stop].reshape(-1)
        pos, owner = _expand(v_ptr, r)
        i = owner // k2 + start
        keys, inverse = torch.unique(i * n + v_cols[pos], sorted=True, return_inverse=True)
        sums = torch.zeros(keys.numel(), dtype=torch.float64, device=ranks.device).index_add_(0, inverse, v_data[pos])
        parts_keys.append(keys)
        parts_data.append(_cast(sums / k2, tdtype))
    keys = torch.cat(parts_keys)
    return _indptr(keys // n, n), keys % n, torch.cat(parts_data)


def _bounds(per_row: Any, max_items: int, rows: int | None) -> list[tuple[int, int]]:
    """Row blocks holding ``rows`` rows each, or at most ``max_items`` items (at least one row)."""
    n = per_row.numel()
    if rows is not None:
        return [(s, min(s + rows, n)) for s in range(0, n, rows)]
    emitted = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(per_row.cpu().numpy(), out=emitted[1:])
    out, start = [], 0
    while start < n:  # loop over row blocks
        stop = int(np.searchsorted(emitted, emitted[start] + max_items, side="right")) - 1
        stop = min(max(stop, start + 1), n)
        out.append((start, stop))
        start = stop
    return out


def _min_sum_blocks(w: tuple[Any, Any, Any], n: int, acc: Any, max_triples: int, block_size: int | None, max_distance):
    """Yield numpy upper-triangle blocks ``(start, stop, indptr, indices, distances)`` (see the numpy ``_MinSums``).

    For every stored W[i, l] the rows j > i stored in column l are enumerated through the
    column-major order of W; the (i, j, min) triples of a row block are summed per pair with
    ``torch.unique`` and ``index_add_``, turned into distances ``1 - s / (2 - s)`` (clipped at 0)
    and, with ``max_distance``, thresholded on the device before the block is copied back.
    """
    indptr, indices, data = w
    dev = indices.device
    keep = data != 0  # an entry that underflowed (float16) is absent, as in the dense original
    if not bool(keep.all()):
        cum = torch.zeros(keep.numel() + 1, dtype=torch.int64, device=dev)
        torch.cumsum(keep, 0, out=cum[1:])
        indptr, indices, data = cum[indptr], indices[keep], data[keep]
    nnz = indices.numel()
    rows_e = torch.repeat_interleave(torch.arange(n, device=dev), indptr[1:] - indptr[:-1])
    order = torch.sort(indices * n + rows_e).indices  # column-major order of the entries
    csc_rows = rows_e[order]
    csc_data = data[order]
    csc_pos = torch.empty(nnz, dtype=torch.int64, device=dev)
    csc_pos[order] = torch.arange(nnz, device=dev)
    del order
    csc_end = torch.cumsum(torch.bincount(indices, minlength=n), 0)
    counts = csc_end[indices] - csc_pos - 1  # rows j > i below entry (i, l) in column l
    del csc_end
    per_entry = torch.zeros(nnz + 1, dtype=torch.int64, device=dev)
    torch.cumsum(counts, 0, out=per_entry[1:])
    per_row = per_entry[indptr[1:]] - per_entry[indptr[:-1]]
    del per_entry
    for start, stop in _bounds(per_row, max_triples, block_size):  # loop over row blocks
        lo, hi = int(indptr[start]), int(indptr[stop])
        cnt = counts[lo:hi]
        total = int(cnt.sum())
        owner = torch.repeat_interleave(torch.arange(hi - lo, device=dev), cnt)
        first = torch.cumsum(cnt, 0) - cnt
        pos = torch.arange(total, device=dev) - first[owner] + csc_pos[lo:hi][owner] + 1
        mins = torch.minimum(data[lo:hi][owner], csc_data[pos]).to(acc)
        keys = rows_e[lo:hi][owner] * n + csc_rows[pos]
        del pos, first
        keys, inverse = torch.unique(keys, sorted=True, return_inverse=True)
        sums = torch.zeros(keys.numel(), dtype=acc, device=dev).index_add_(0, inverse, mins)
        del inverse, mins, owner
        sums = torch.clamp_(1.0 - sums / (2.0 - sums), min=0.0)
        if max_distance is not None:
            kept = sums <= max_distance
            keys, sums = keys[kept], sums[kept]
        rows = keys // n - start
        ptr = np.zeros(stop - start + 1, dtype=np.int64)
        np.cumsum(torch.bincount(rows, minlength=stop - start).cpu().numpy(), out=ptr[1:])
        cols = (keys % n).to(torch.int32 if n < 2**31 else torch.int64)
        yield start, stop, ptr, cols.cpu().numpy(), sums.cpu().numpy()
        del keys, sums, rows, cols


def jaccard_blocks(
    x: Any | None,
    indices: np.ndarray,
    distances: np.ndarray,
    device: Any,
    *,
    k1: int,
    k2: int,
    dtype: np.dtype,
    block_size: int | None,
    max_distance: float | None,
) -> list[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]]:
    """Upper-triangle blocks of the sparse k-reciprocal Jaccard distance, computed on ``device``.

    ``x``: the features as a tensor on ``device`` (or None); ``indices``/``distances``: the
    validated kNN graph (numpy, each row sorted, sample first, distinct entries). The caller
    assembles the symmetric CSR result from the blocks (numpy, on the CPU: each block is copied
    back as soon as it is computed, so the device holds one block of triples at a time).
    """
    dev = torch.device(device)
    with torch.no_grad(), _exact_float32():
        graph_idx = torch.from_numpy(np.ascontiguousarray(indices, dtype=np.int64)).to(dev)
        graph_dist = torch.from_numpy(np.ascontiguousarray(distances)).to(dev)
        n = graph_idx.shape[0]
        ranks = graph_idx[:, :k1].contiguous()
        half = int(np.around(k1 / 2))
        max_triples = max(1, budget(dev) // _TRIPLE_BYTES)
        rows_enc = block_size or max(1, max_triples // (k1 * (half + 1)))
        v = _encoding(ranks, k1, PairDistance(graph_idx, graph_dist, x), rows_enc)
        del graph_idx, graph_dist
        w = _query_expansion(v, ranks, k2, max_triples, block_size, dtype)
        del v
        acc = torch.float64 if np.dtype(dtype) == np.float64 else torch.float32
        return list(_min_sum_blocks(w, n, acc, max_triples, block_size, max_distance))
