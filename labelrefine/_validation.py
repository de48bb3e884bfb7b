"""Input checks shared by the core: every public function normalises its arguments here.

Each checker takes the argument's public name so that errors say which argument broke which
rule and what was received. Nothing here modifies its input: arrays are converted with
``np.asarray`` (a view when possible) and copied only when a dtype change requires it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "KnnGraph",
    "as_rng",
    "check_bool",
    "check_cameras",
    "check_choice",
    "check_features",
    "check_int",
    "check_knn_graph",
    "check_labels",
    "check_probability",
    "check_real",
    "check_same_length",
    "seed_from",
    "to_numpy",
]


def _describe(x: Any) -> str:
    """Short description of a received value for error messages."""
    if isinstance(x, np.ndarray):
        return f"array of shape {x.shape} and dtype {x.dtype}"
    text = repr(x)
    return text if len(text) <= 60 else text[:57] + "..."


def to_numpy(x: Any, name: str) -> np.ndarray:
    """Convert arrays, lists and (CPU or CUDA) torch tensors to numpy without importing torch."""
    if x is None:
        raise TypeError(f"{name} must be an array, got None")
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, duck-typed
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16":  # numpy has no bfloat16: widen (exactly) to float32
            x = x.float()
        x = x.numpy()
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be array-like, got {_describe(x)}: {exc}") from None
    if arr.dtype == object and arr.ndim > 0 and arr.size and isinstance(arr.flat[0], np.ndarray):
        raise ValueError(f"{name} must be a rectangular array, got ragged nested sequences")
    return arr


def _whole_numbers(arr: np.ndarray, name: str) -> np.ndarray:
    """A float array holding only whole numbers (e.g. labels saved as float64) as int64; others refused."""
    fractional = ~np.isfinite(arr) | (arr != np.round(arr)) | (np.abs(arr) > 2.0**53)
    if fractional.any():
        i = int(np.flatnonzero(fractional)[0])
        raise TypeError(
            f"{name} must hold integers (-1 = no cluster), got dtype {arr.dtype} with the non-integer value "
            f"{arr[i].item()!r} at index {i}"
        )
    return arr.astype(np.int64)


def check_labels(x: Any, name: str, *, n: int | None = None) -> np.ndarray:
    """1-D integer labels, -1 for "no cluster"; returned as int64 (a copy only if needed).

    Float arrays are accepted when every value is a whole number (labels saved as float64, as
    some released stage-1 labels are); a fractional, NaN or infinite value is refused.
    """
    arr = to_numpy(x, name)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one label per sample), got shape {arr.shape}")
    if arr.dtype.kind == "f":
        arr = _whole_numbers(arr, name)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integers (-1 = no cluster), got dtype {arr.dtype}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} must have length {n} (one per sample), got {arr.shape[0]}")
    if arr.size and arr.min() < -1:
        raise ValueError(f"{name} must be >= -1 (-1 = no cluster), got minimum {arr.min()}")
    if arr.size and arr.dtype.kind == "u" and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} must fit in int64 (ids up to {np.iinfo(np.int64).max}), got maximum {arr.max()}")
    return arr.astype(np.int64, copy=False)


def check_cameras(x: Any, name: str = "cams", *, n: int | None = None) -> np.ndarray:
    """Factorise any per-sample hashable camera ids into int64 codes 0..C-1."""
    arr = to_numpy(x, name)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per sample), got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} must have length {n} (one per sample), got {arr.shape[0]}")
    if arr.dtype.kind == "f" and arr.size and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must not contain NaN or infinity")
    try:
        _, codes = np.unique(arr, return_inverse=True)
    except TypeError:
        # mixed types (e.g. ints and strings) cannot be sorted: factorise by first appearance
        lookup: dict[Any, int] = {}
        codes = np.fromiter((lookup.setdefault(c, len(lookup)) for c in arr.tolist()), np.int64, arr.size)
    return codes.reshape(-1).astype(np.int64, copy=False)


def check_features(x: Any, name: str = "feats", *, n: int | None = None) -> np.ndarray:
    """2-D finite float features (float16 is promoted to float32); never copied otherwise."""
    arr = to_numpy(x, name)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_dims), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    if arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    if arr.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be float32 or float64, got dtype {arr.dtype}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} must have {n} rows (one per sample), got {arr.shape[0]}")
    if not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise ValueError(f"{name} must be finite, got NaN or infinity (first in row {bad})")
    return arr


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
        raise TypeError(f"{name} must be a tuple (indices, distances) or a KnnGraph, got {_describe(graph)}")
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


def check_real(x: Any, name: str, *, low: float, high: float, open_low: bool = False, open_high: bool = False) -> float:
    """A real number (Python or numpy scalar) between ``low`` and ``high``, each end closed unless open."""
    left, right = "(" if open_low else "[", ")" if open_high else "]"
    interval = f"{left}{low:g}, {high:g}{right}"
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"{name} must be a real number in {interval}, got {_describe(x)}")
    value = float(x)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite real number in {interval}, got {x}")
    below = value <= low if open_low else value < low
    above = value >= high if open_high else value > high
    if below or above:
        raise ValueError(f"{name} must be in {interval}, got {x}")
    return value


def check_bool(x: Any, name: str) -> bool:
    """A bool (Python or numpy); 0/1 and strings are refused."""
    if not isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {_describe(x)}")
    return bool(x)


def check_probability(p: Any, name: str = "p") -> float:
    """A real number in [0, 1]."""
    return check_real(p, name, low=0.0, high=1.0)


def check_int(x: Any, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """An integer with ``low <= x <= high`` (bounds optional, inclusive)."""
    if isinstance(x, bool) or not isinstance(x, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {_describe(x)}")
    x = int(x)
    if (low is not None and x < low) or (high is not None and x > high):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {x}")
    return x


def check_choice(x: Any, name: str, choices: tuple[str, ...]) -> str:
    """One of a fixed set of option strings."""
    if x not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {_describe(x)}")
    return x


def check_same_length(**arrays: np.ndarray) -> int:
    """All arrays have the same first dimension; returns it."""
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{k}={v}" for k, v in lengths.items())
        raise ValueError(f"arguments must have the same length (one entry per sample), got {described}")
    return next(iter(lengths.values()))


def as_rng(rng: Any, name: str = "rng") -> np.random.Generator:
    """The library's one randomness convention: ``numpy.random.default_rng(rng)``.

    Parameters
    ----------
    rng : None, int >= 0, numpy.random.SeedSequence or numpy.random.Generator
        None: fresh entropy; an int: a reproducible seed; a Generator is used as is (shared).
    name : str, default "rng"
        The caller's argument name, used in error messages.
    """
    if isinstance(rng, bool) or (
        rng is not None and not isinstance(rng, (numbers.Integral, np.random.Generator, np.random.SeedSequence))
    ):
        raise TypeError(f"{name} must be None, an int seed or a numpy.random.Generator, got {_describe(rng)}")
    if isinstance(rng, numbers.Integral):
        if int(rng) < 0:
            raise ValueError(
                f"{name} must be None, an int seed or a numpy.random.Generator, got {int(rng)}: int seeds must be >= 0"
            )
        return np.random.default_rng(int(rng))
    return np.random.default_rng(rng)


def seed_from(rng: Any, name: str = "rng", *, low: int = 0, high: int = 2**31 - 1) -> int:
    """An int seed in ``[low, high]`` for libraries that take only ints (torch, Infomap).

    An int ``rng`` is used as is when it lies in the range (so ``rng=3`` means seed 3); a
    Generator or None draws one with :func:`as_rng` (a Generator advances by one draw).
    """
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool) and low <= int(rng) <= high:
        return int(rng)
    return int(as_rng(rng, name).integers(low, high, endpoint=True))
