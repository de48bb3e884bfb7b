"""Sparse k-reciprocal Jaccard distance kernels of :func:`labelrefine.neighbors.jaccard_distance` (numpy/scipy).

They take a checked kNN graph (self first) and build the encoding, the query expansion and
the blocked minimum sums; :func:`labelrefine.neighbors.jaccard_distance` checks the inputs.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp

from ._progress import Progress, ranges


def _rows_to_csr(ranks: np.ndarray, n: int) -> sp.csr_matrix:
    """Binary (int32) N x N matrix with row i holding the entries of ranks[i] (distinct per row)."""
    k = ranks.shape[1]
    indptr = np.arange(0, ranks.shape[0] * k + 1, k, dtype=np.int64)
    mat = sp.csr_matrix((np.ones(ranks.size, dtype=np.int32), ranks.ravel(), indptr), shape=(ranks.shape[0], n))
    mat.sort_indices()
    return mat


def reciprocal(ranks: np.ndarray, n_cols: int) -> sp.csr_matrix:
    """R[i, j] = 1 iff j is among the first n_cols entries of row i and i among those of row j."""
    forward = _rows_to_csr(ranks[:, :n_cols], ranks.shape[0])
    both = forward.multiply(forward.T).tocsr()
    both.sort_indices()
    return both


def _row_ids(indptr: np.ndarray, start: int = 0) -> np.ndarray:
    return np.repeat(np.arange(start, start + indptr.size - 1), np.diff(indptr))


class PairDistance:
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


def encoding(ranks: np.ndarray, k1: int, pair_distance: PairDistance, rows_per_block: int) -> sp.csr_matrix:
    """The k-reciprocal encoding V (before query expansion) as an N x N float64 CSR matrix.

    Row i holds, over the expanded k-reciprocal set E(i), the softmax of minus the squared
    Euclidean distance of normalised features (2 - 2 cos).
    """
    n = ranks.shape[0]
    half = int(np.around(k1 / 2))
    k1_sets = reciprocal(ranks, k1)  # R(i, k1): forward set = first k1 columns (self included)
    half_sets = reciprocal(ranks, half + 1)  # R(c, round(k1/2)): first round(k1/2) + 1 columns
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


def query_expansion(v: sp.csr_matrix, ranks: np.ndarray, k2: int, rows_per_block: int, dtype: np.dtype):
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


class MinSums:
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


def assemble_symmetric(blocks, n_upper: np.ndarray, n_lower: np.ndarray, dtype: np.dtype) -> sp.csr_matrix:
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


def assemble_kept(kept: list, n: int, dtype: np.dtype) -> sp.csr_matrix:
    """:func:`assemble_symmetric` of a list of finished upper-triangle blocks, emptied as it is copied."""
    n_upper = np.concatenate([np.diff(p) for _, _, p, _, _ in kept])
    n_lower = np.zeros(n, dtype=np.int64)
    for block in kept:
        n_lower += np.bincount(block[3], minlength=n)
    kept.reverse()
    blocks = (kept.pop() for _ in range(len(kept)))  # frees each block once it is copied
    return assemble_symmetric(blocks, n_upper, n_lower, dtype)


def to_jaccard(sums: np.ndarray) -> np.ndarray:
    """1 - s / (2 - s), negatives clipped to 0, in place."""
    np.divide(sums, 2.0 - sums, out=sums)
    np.subtract(1.0, sums, out=sums)
    np.maximum(sums, 0.0, out=sums)
    return sums


def thresholded(blocks, max_distance: float):
    """Upper-triangle distance blocks keeping only entries <= max_distance."""
    for start, stop, indptr, indices, values in blocks:
        keep = to_jaccard(values) <= max_distance
        kept = np.zeros(keep.size + 1, dtype=np.int64)
        np.cumsum(keep, out=kept[1:])
        yield start, stop, kept[indptr], indices[keep], values[keep]
