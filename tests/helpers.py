"""Test helpers written from the definitions: a brute-force kNN graph."""

from __future__ import annotations

import numpy as np


def brute_knn(feats: np.ndarray, n_columns: int) -> tuple[np.ndarray, np.ndarray]:
    """Cosine kNN by full sort, self first: the obvious definition, for small N."""
    x = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    dist = 1.0 - x @ x.T
    np.fill_diagonal(dist, -np.inf)  # self first even when a duplicate ties with it
    order = np.argsort(dist, axis=1, kind="stable")[:, :n_columns]
    np.fill_diagonal(dist, 0.0)
    return order, np.take_along_axis(dist, order, axis=1)
