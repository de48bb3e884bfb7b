"""The core's shared data type, the kNN graph, and its one validator.

Every function that takes a graph checks it here (:func:`check_knn_graph`); the convention is
written in ``CONTRIBUTING.md`` (data conventions). :mod:`labelrefine.neighbors` and the package
root export both names.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._validation import check_int, describe, to_numpy

__all__ = ["KnnGraph", "check_knn_graph"]

# Float tolerance of the graph checks: 1 - cos computed in float32 strays from [0, 2] and from
# sorted order by a few ulps; anything beyond this is a caller error.
_GRAPH_TOLERANCE = 1e-4


@dataclass(frozen=True, eq=False)
class KnnGraph:
    """A kNN graph in cosine distance: what :func:`labelrefine.knn` returns and every function taking a graph accepts.

    Parameters
    ----------
    indices : numpy.ndarray of int64, shape (N, m)
        Neighbour row numbers of each sample, each row sorted by increasing distance.
    distances : numpy.ndarray of float, shape (N, m)
        ``1 - cosine similarity`` (in [0, 2]; never similarities), rows non-decreasing.
    includes_self : bool
        True when column 0 holds each sample itself (distance 0), as :func:`labelrefine.knn`
        returns it; the graph then holds ``m - 1`` neighbours per sample besides itself.
    recall : float or None, default None
        None for an exact graph. For an approximate one (``knn(..., exact=False)``), the
        estimated share of each sample's true k nearest others that the graph holds, measured
        against exact search on a random sample of rows. :meth:`neighbors` keeps it (the recall
        of a prefix of an approximate graph is about that of the whole).

    Notes
    -----
    ``k`` means the same everywhere in the library: the number of neighbours **other than the
    sample itself**, the :attr:`k` of this graph. Two parameters keep the counts of the code
    they reproduce and count the sample itself: :func:`labelrefine.jaccard_distance`'s ``k1``
    (Cluster-Contrast's) and ``k`` of ``refine(rule="reference")`` (the authors' code). One graph
    serves all of them: ``knn(feats, max(k1 - 1, k))`` (``knn(feats, 29)`` for ``k1 = 30``,
    ``k = 15``); a graph too narrow for a caller is an error that names the call to make. A plain
    ``(indices, distances)`` tuple is
    accepted wherever a graph is; a ``KnnGraph`` unpacks like one (``indices, distances =
    graph``), which eases migrating code written for tuples.

    Examples
    --------
    >>> import numpy as np
    >>> from labelrefine import knn
    >>> graph = knn(np.eye(4, dtype=np.float32) + 0.1, 2, backend="numpy")
    >>> graph.k, graph.includes_self, graph.indices.shape
    (2, True, (4, 3))
    >>> indices, distances = graph
    """

    indices: np.ndarray
    distances: np.ndarray
    includes_self: bool
    recall: float | None = None

    def __post_init__(self) -> None:
        if not self.includes_self:
            _check_no_self_column(to_numpy(self.indices, "indices"))

    @property
    def n(self) -> int:
        """Number of samples (rows)."""
        return int(self.indices.shape[0])

    @property
    def k(self) -> int:
        """Neighbours per sample other than the sample itself."""
        return int(self.indices.shape[1]) - int(self.includes_self)

    def neighbors(self, k: int | None = None) -> KnnGraph:
        """The graph without the self column, optionally cut to its ``k`` nearest neighbours."""
        k = self.k if k is None else check_int(k, "k (neighbours other than the sample itself)", low=0, high=self.k)
        start = int(self.includes_self)
        return KnnGraph(self.indices[:, start : start + k], self.distances[:, start : start + k], False, self.recall)

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter((self.indices, self.distances))

    def __len__(self) -> int:
        return 2

    def __getitem__(self, item: int) -> np.ndarray:
        return (self.indices, self.distances)[item]

    def __repr__(self) -> str:
        recall = "" if self.recall is None else f", recall={self.recall:.3f}"
        return f"KnnGraph(n={self.n}, k={self.k}, includes_self={self.includes_self}{recall})"


def _check_no_self_column(indices: np.ndarray) -> None:
    """Refuse ``includes_self=False`` for indices whose every row starts with its own sample."""
    n = indices.shape[0] if indices.ndim == 2 and indices.shape[1] else 0
    if n and bool((indices[:, 0] == np.arange(n)).all()):
        raise ValueError(
            "KnnGraph says includes_self=False but column 0 of every row is the sample itself: pass "
            "includes_self=True (as knn() returns it), or drop the column (KnnGraph(indices[:, 1:], "
            "distances[:, 1:], includes_self=False))"
        )


def _graph_hint(indices: np.ndarray, distances: np.ndarray) -> str:
    """What to pass instead when rows are sorted the wrong way: similarities, or distances farthest first."""
    if distances.shape[1] < 2 or not distances.size:
        return ""
    steps = np.diff(distances, axis=1)
    decreasing = bool((steps <= _GRAPH_TOLERANCE).all() and (steps < -_GRAPH_TOLERANCE).any())
    self_last = bool((indices[:, -1] == np.arange(indices.shape[0])).all())
    if decreasing and (self_last or float(np.abs(distances[:, -1]).max()) < 1e-3):
        return (
            "; these rows look sorted farthest first (they end at distance 0, the sample itself): reverse each "
            "row (indices[:, ::-1], distances[:, ::-1])"
        )
    if float(np.abs(distances[:, 0] - 1).max()) < 1e-3:
        return (
            "; these look like cosine similarities (rows decrease from about 1, as faiss IndexFlatIP.search "
            "returns them): pass 1 - similarities"
        )
    if decreasing:
        return (
            "; every row decreases: pass 1 - similarities if these are similarities, or reverse each row "
            "(indices[:, ::-1], distances[:, ::-1]) if these are distances sorted farthest first"
        )
    return ""


def check_knn_graph(graph: Any, name: str = "knn", *, n: int | None = None) -> KnnGraph:
    """Validate a kNN graph once for every function that takes one; return it as a :class:`KnnGraph`.

    Parameters
    ----------
    graph : KnnGraph or tuple (indices, distances)
        Indices and cosine distances, both (N, m). A tuple's ``includes_self`` is inferred:
        True when column 0 holds each row's own sample.
    name : str, default "knn"
        The caller's argument name, used in error messages.
    n : int, optional
        Required number of rows (samples).

    Returns
    -------
    KnnGraph
        Indices as int64, distances unchanged (no copy unless a dtype change requires it).

    Raises
    ------
    TypeError
        Not a graph or a pair, non-integer indices, non-float distances.
    ValueError
        Shapes that differ or are not 2-D, a wrong number of rows, indices outside ``[0, N)``,
        distances that are not finite, outside [0, 2] or not sorted in each row (with a hint
        when they look like similarities), or a ``KnnGraph`` whose self column is not the sample.
    """
    recall = None
    if isinstance(graph, KnnGraph):
        pair: tuple[Any, Any] = (graph.indices, graph.distances)
        includes_self: bool | None = bool(graph.includes_self)
        recall = graph.recall
    elif isinstance(graph, (tuple, list)) and len(graph) == 2:
        pair, includes_self = (graph[0], graph[1]), None
    else:
        raise TypeError(f"{name} must be a tuple (indices, distances) or a KnnGraph, got {describe(graph)}")
    indices = to_numpy(pair[0], f"{name} indices")
    distances = to_numpy(pair[1], f"{name} distances")
    if indices.ndim != 2:
        raise ValueError(f"{name} indices must be 2-D (N, k), got shape {indices.shape}")
    if distances.shape != indices.shape:
        raise ValueError(
            f"{name} indices and distances must have the same shape, got {indices.shape} and {distances.shape}"
        )
    if indices.dtype == bool or not np.issubdtype(indices.dtype, np.integer):
        raise TypeError(f"{name} indices must be integers, got dtype {indices.dtype}")
    if not np.issubdtype(distances.dtype, np.floating):
        raise TypeError(f"{name} distances must be floats (1 - cosine similarity), got dtype {distances.dtype}")
    n_rows = indices.shape[0]
    if n is not None and n_rows != n:
        raise ValueError(f"{name} must have {n} rows (one per sample), got {n_rows}")
    if indices.size and (indices.min() < 0 or indices.max() >= n_rows):
        raise ValueError(
            f"{name} indices must lie in [0, {n_rows}) (row numbers of the same samples), "
            f"got values in [{indices.min()}, {indices.max()}]"
        )
    _check_distances(distances, indices, name)
    self_first = bool(indices.shape[1]) and bool((indices[:, 0] == np.arange(n_rows)).all())
    if includes_self is None:
        includes_self = self_first and n_rows > 0
    elif includes_self and n_rows and not self_first:
        row = int(np.flatnonzero(indices[:, 0] != np.arange(n_rows))[0])
        raise ValueError(
            f"{name} says includes_self=True but column 0 is not the sample itself: row {row} starts with "
            f"{int(indices[row, 0])}; build it with knn() or pass includes_self=False"
        )
    return KnnGraph(indices.astype(np.int64, copy=False), distances, bool(includes_self), recall)


def _check_distances(distances: np.ndarray, indices: np.ndarray, name: str) -> None:
    """Finite cosine distances in [0, 2], sorted along each row (float rounding tolerated)."""
    if not np.isfinite(distances).all():
        raise ValueError(f"{name} distances must be finite, got NaN or infinity")
    if distances.size:
        low, high = float(distances.min()), float(distances.max())
        if low < -_GRAPH_TOLERANCE:
            raise ValueError(
                f"{name} distances must be >= 0 (1 - cosine similarity, in [0, 2]), got minimum {low:.4g}"
                + _graph_hint(indices, distances)
            )
        if high > 2.0 + _GRAPH_TOLERANCE:
            raise ValueError(
                f"{name} distances must be <= 2 (1 - cosine similarity, in [0, 2]), got maximum {high:.4g}"
                + _graph_hint(indices, distances)
            )
        unsorted = np.diff(distances, axis=1) < -_GRAPH_TOLERANCE
        if unsorted.any():
            row = int(np.flatnonzero(unsorted.any(axis=1))[0])
            raise ValueError(
                f"{name} distances must be sorted in increasing order along each row (nearest first), "
                f"got row {row} = {np.round(distances[row, :6], 4).tolist()}" + _graph_hint(indices, distances)
            )
