"""Approximate kNN search of :mod:`labelrefine.neighbors`: a faiss HNSW index and its measured recall."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ._optional import import_optional
from ._progress import Progress, ranges
from ._search import QUERY_BLOCK, self_first, sort_rows, to_distances, unit_rows
from ._validation import as_rng, check_int

_RECALL_TOLERANCE = 1e-5  # a neighbour within this distance of the true k-th nearest counts as found


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


def check_ann_params(params: Any, n: int, dim: int, k: int) -> dict[str, int]:
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


def hnsw_index(x: np.ndarray, normalize: bool, params: dict[str, int], progress: Progress | None) -> Any:
    """A faiss HNSW inner-product index over the unit rows of ``x``, added block by block.

    Only one block of normalised rows exists at a time besides the index's own float32 copy.
    """
    faiss = import_optional("faiss")
    index = faiss.IndexHNSWFlat(x.shape[1], params["M"], faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = params["ef_construction"]
    index.hnsw.efSearch = params["ef_search"]
    for start, stop in ranges(progress, "knn index", x.shape[0], QUERY_BLOCK):  # loop over row blocks
        index.add(unit_rows(x[start:stop], normalize))
    return index


def search_hnsw(
    index: Any, q: np.ndarray, k: int, normalize: bool, progress: Progress | None
) -> tuple[np.ndarray, np.ndarray]:
    """Approximate top-k of each query; rows the beam left short (-1) are searched exactly."""
    sims = np.empty((q.shape[0], k), dtype=np.float32)
    indices = np.empty((q.shape[0], k), dtype=np.int64)
    for start, stop in ranges(progress, "knn search", q.shape[0], QUERY_BLOCK):  # loop over query blocks
        sims[start:stop], indices[start:stop] = index.search(unit_rows(q[start:stop], normalize), k)
    short = np.flatnonzero((indices < 0).any(axis=1))
    if short.size:
        sims[short], indices[short] = index.storage.search(unit_rows(q[short], normalize), k)
    return sort_rows(indices, sims)


def estimate_recall(
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
    sims, found = index.storage.search(unit_rows(x[rows], normalize), k + 1)
    found, sims = sort_rows(found.astype(np.int64), sims)
    kth = self_first(found, to_distances(sims), rows)[1][:, -1:]  # true k-th nearest other
    hits = distances[rows, 1:] <= kth + _RECALL_TOLERANCE
    return float(hits.mean())
