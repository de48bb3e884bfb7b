"""Array helpers shared by the core kernels."""

from __future__ import annotations

import numpy as np

__all__ = ["contiguous_labels", "dense_codes", "is_member", "unique_sorted"]


def unique_sorted(values: np.ndarray) -> np.ndarray:
    """``np.unique(values)`` for a 1-D array, by one sort.

    numpy >= 2.3 answers a plain ``np.unique`` through a hash table, which on this project's
    machines is 10-70x slower than sorting for 1e6 integers (3.3 s against 0.05 s when most
    values are distinct), so the hot paths call this instead.
    """
    ordered = np.sort(values)
    if ordered.size == 0:
        return ordered
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]


def is_member(values: np.ndarray, members: np.ndarray) -> np.ndarray:
    """``np.isin(values, members)`` by a sort and a binary search (see :func:`unique_sorted`)."""
    keys = unique_sorted(members)
    if keys.size == 0:
        return np.zeros(values.shape, dtype=bool)
    position = np.minimum(np.searchsorted(keys, values), keys.size - 1)
    return keys[position] == values


def dense_codes(values: np.ndarray) -> np.ndarray:
    """Codes ``0..K-1`` of a 1-D array's values in sorted order (``np.unique(..., return_inverse=True)[1]``).

    One argsort and a scatter: a binary search of every value (``searchsorted``) is 5x slower at 1e6.
    """
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    codes = np.empty(values.shape[0], dtype=np.int64)
    codes[order] = np.cumsum(np.r_[False, ordered[1:] != ordered[:-1]])
    return codes


def contiguous_labels(labels: np.ndarray) -> np.ndarray:
    """Checked int64 labels with their cluster ids mapped to ``0..K-1`` in increasing order; -1 stays -1.

    The kernel of :func:`labelrefine.relabel`, for callers whose labels are already checked.
    """
    out = np.full(labels.shape, -1, dtype=np.int64)
    clustered = labels >= 0
    out[clustered] = dense_codes(labels[clustered])
    return out
