"""Clustering on one kNN graph or sparse Jaccard matrix per epoch, and cluster diagnostics.

All functions return int64 labels with -1 for outliers. Costs (N samples, k neighbours):

- :func:`infomap_cluster`: O(N k) edges, Infomap near-linear in edges.
- :func:`dbscan_cluster`: scikit-learn DBSCAN on the sparse precomputed Jaccard matrix,
  O(stored pairs) memory instead of the N x N dense matrix of the Cluster-Contrast baseline.
- :func:`cluster_per_camera` with ``method="agglomerative"``: stage-1 clustering (agglomerative
  as in the paper, Jaccard distance and average linkage as in the authors' code); average
  linkage needs the dense distance matrix of each camera, O(n_c^2) memory and roughly
  O(n_c^2 log n_c) time for a camera with n_c images (about 0.5 GiB at n_c = 8,000); cameras
  above :data:`AGGLOMERATIVE_MAX` images are refused with a clear error. For larger cameras
  use ``method="dbscan"`` or ``method="infomap"``, which stay sparse.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from ._arrays import contiguous_labels
from ._optional import import_optional
from ._progress import Progress, check_progress, one_step, ranges
from ._types import KnnGraph, check_knn_graph
from ._validation import (
    as_rng,
    check_cameras,
    check_choice,
    check_features,
    check_int,
    check_labels,
    check_probability,
    check_real,
    check_same_length,
    seed_from,
)

AGGLOMERATIVE_MAX = 30_000
"""Largest camera ``method="agglomerative"`` clusters: its dense float64 matrix is then 6.7 GiB."""
CLUSTER_METHODS: tuple[str, ...] = ("agglomerative", "dbscan", "infomap")
"""The built-in ``method`` values of :func:`cluster_per_camera`; :func:`cluster_methods` adds the registered ones."""

__all__ = [
    "AGGLOMERATIVE_MAX",
    "CLUSTER_METHODS",
    "CameraOptions",
    "ClusterMethod",
    "ClusterStats",
    "camera_weights",
    "cluster_camera",
    "cluster_centroids",
    "cluster_methods",
    "cluster_per_camera",
    "cluster_stats",
    "dbscan_cluster",
    "infomap_cluster",
    "register_cluster_method",
    "suggest_eps",
    "unregister_cluster_method",
]


def _drop_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Clusters with at most ``min_size`` members become -1; the rest get contiguous ids."""
    clustered = labels >= 0
    sizes = np.bincount(labels[clustered]) if clustered.any() else np.zeros(0, dtype=np.int64)
    small = np.zeros(labels.shape, dtype=bool)
    small[clustered] = sizes[labels[clustered]] <= min_size
    return contiguous_labels(np.where(small, -1, labels))


def infomap_cluster(
    knn: KnnGraph | tuple[Any, Any],
    *,
    min_sim: float = 0.5,
    min_size: int = 1,
    rng: int | np.random.Generator | None = None,
    trials: int = 1,
    progress: Progress | None = None,
) -> np.ndarray:
    """Two-level directed Infomap on the kNN graph (the paper's inter-camera clustering).

    Every neighbour ``j`` of ``i`` (``j != i``) with cosine similarity ``1 - dist >= min_sim``
    gives a directed edge ``i -> j`` weighted by that similarity.

    Parameters
    ----------
    knn : KnnGraph or tuple (indices, distances)
        kNN graph in cosine distance from :func:`labelrefine.neighbors.knn` (validated as
        :class:`~labelrefine.neighbors.KnnGraph` describes; self entries are skipped, so a graph
        with or without them works). Every column is used: ``knn(feats, k)`` gives k edges per
        sample at most.
    min_sim : float in [0, 1], default 0.5
        Edges below this similarity are dropped. See :func:`suggest_eps` for a data-driven value.
    min_size : int, default 1
        Clusters with at most this many members become outliers (-1); 1 drops singletons.
    rng : int, numpy.random.Generator or None, default None
        Randomness of Infomap, which takes an int seed counted from 1: an int ``>= 1`` is that
        seed, 0, a Generator or None draw one with ``numpy.random.default_rng(rng)`` (None:
        a different partition order may come out on each call; pass an int to reproduce).
    trials : int, default 1
        Infomap's ``--num-trials``.
    progress : callable, optional
        ``progress(step, done, total)``, called when the ``"infomap"`` step starts and ends (see
        :func:`labelrefine.console_progress`).

    Returns
    -------
    numpy.ndarray of int64, shape (N,)
        Contiguous cluster ids ``0..K-1``, -1 for outliers.

    Examples
    --------
    >>> from labelrefine.neighbors import knn
    >>> from labelrefine.synthetic import make_camera_biased
    >>> data = make_camera_biased(n_ids=10, n_cams=2, camera_strength=0.0, rng=0)
    >>> labels = infomap_cluster(knn(data.feats, 5), min_sim=0.5, rng=1)
    >>> labels.shape == data.pids.shape
    True
    """
    graph = check_knn_graph(knn, "knn")
    min_sim = check_probability(min_sim, "min_sim")
    min_size = check_int(min_size, "min_size", low=0)
    seed = seed_from(rng, "rng", low=1)
    trials = check_int(trials, "trials", low=1)
    progress = check_progress(progress)
    if graph.n == 0:
        raise ValueError("knn must not be empty (one row per sample), got a graph with 0 rows")
    return _infomap(graph, min_sim, min_size, seed, trials, progress)


def _infomap(
    graph: KnnGraph, min_sim: float, min_size: int, seed: int, trials: int = 1, progress: Progress | None = None
) -> np.ndarray:
    """:func:`infomap_cluster` on a checked, non-empty graph with an int seed >= 1."""
    indices, distances = graph
    n = indices.shape[0]
    infomap = import_optional("infomap")  # after the argument checks: their errors need no Infomap
    rows = np.broadcast_to(np.arange(n)[:, None], indices.shape)
    similarity = 1.0 - distances
    keep = (similarity >= min_sim) & (indices != rows)
    sources, targets, weights = rows[keep], indices[keep], similarity[keep].astype(np.float64)

    labels = np.full(n, -1, dtype=np.int64)
    if sources.size == 0:  # no edge, no cluster
        return labels
    im = infomap.Infomap(f"--two-level --directed --silent --num-trials {trials}", seed=seed)
    # one (E, 3) array handed to Infomap's C++ reader: add_edge_index loops over edges in Python
    im.add_links(np.column_stack([sources, targets, weights]))
    with one_step(progress, "infomap"):
        result = im.run()
    # Read the modules from Infomap's .clu output rather than result.modules(): that walks SWIG
    # iterators, which crash when faiss (also SWIG) was imported in the same process.
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "modules.clu")
        result.write_clu(path)
        node_module = np.loadtxt(path, comments="#", usecols=(0, 1), dtype=np.int64, ndmin=2)
    labels[node_module[:, 0]] = node_module[:, 1]
    # Infomap can put a node without any edge in some module (seen with seed 26): no edge, no cluster
    linked = np.zeros(n, dtype=bool)
    linked[sources] = linked[targets] = True
    labels[~linked] = -1
    return _drop_small(labels, min_size)


def _check_eps(eps: Any) -> float:
    """DBSCAN's radius: in (0, 1) so that the pairs not stored (distance 1) are never neighbours."""
    return check_real(eps, "eps", low=0.0, high=1.0, open_low=True, open_high=True)


def _check_sparse_distances(matrix: Any, name: str) -> sp.csr_matrix:
    """A non-empty square sparse matrix of finite distances >= 0 (the convention of :func:`jaccard_distance`)."""
    if not sp.issparse(matrix):
        hint = ""
        if hasattr(matrix, "shape") and len(getattr(matrix, "shape", ())) == 2:
            hint = (
                "; a dense array is refused because J.toarray() turns the pairs not stored (distance 1) into "
                "distance 0: pass the sparse matrix itself, or for a full dense distance matrix D use "
                "sklearn.cluster.DBSCAN(metric='precomputed') on D"
            )
        raise TypeError(
            f"{name} must be a scipy.sparse distance matrix as jaccard_distance returns it, got {type(matrix).__name__}"
            + hint
        )
    csr = sp.csr_matrix(matrix)
    if csr.ndim != 2 or csr.shape[0] != csr.shape[1]:
        raise ValueError(f"{name} must be a square (N, N) distance matrix (not features), got shape {csr.shape}")
    if csr.shape[0] == 0:
        raise ValueError(f"{name} must not be empty, got shape {csr.shape}")
    if csr.dtype == bool or not (np.issubdtype(csr.dtype, np.floating) or np.issubdtype(csr.dtype, np.integer)):
        raise TypeError(f"{name} must hold real distances, got dtype {csr.dtype}")
    if not np.isfinite(csr.data).all():
        raise ValueError(f"{name} must be finite, got NaN or infinity")
    if csr.data.size and csr.data.min() < 0:
        raise ValueError(f"{name} must hold distances >= 0, got minimum {csr.data.min():.4g}")
    return csr


def dbscan_cluster(
    jaccard: Any,
    *,
    eps: float = 0.6,
    min_samples: int = 4,
    n_jobs: int | None = None,
    progress: Progress | None = None,
) -> np.ndarray:
    """scikit-learn DBSCAN on a sparse precomputed distance matrix (the Cluster-Contrast baseline).

    Parameters
    ----------
    jaccard : scipy.sparse matrix of shape (N, N)
        Distances from :func:`labelrefine.neighbors.jaccard_distance`: stored entries are the
        pairs closer than 1 (explicit zeros included), every pair not stored has distance 1.
        Dense arrays are refused: ``jaccard.toarray()`` would turn the pairs not stored into
        distance 0 and merge everything into one cluster.
    eps : float in (0, 1), default 0.6
        DBSCAN radius. It must be below 1 so that pairs not stored (distance 1) are never
        neighbours; the labels then equal DBSCAN on the dense matrix.
    min_samples : int, default 4
        DBSCAN's core-point threshold (the point itself included).
    n_jobs : int, optional
        Passed to scikit-learn.
    progress : callable, optional
        ``progress(step, done, total)``, called when the ``"dbscan"`` step starts and ends (see
        :func:`labelrefine.console_progress`).

    Returns
    -------
    numpy.ndarray of int64, shape (N,)
        Cluster ids ``0..K-1`` and -1 for noise.

    Raises
    ------
    TypeError
        A dense array or another non-sparse object, a non-numeric matrix, a non-real ``eps``.
    ValueError
        A non-square or empty matrix, negative or non-finite distances, ``eps`` outside (0, 1).
    """
    eps = _check_eps(eps)
    min_samples = check_int(min_samples, "min_samples", low=1)
    matrix = _check_sparse_distances(jaccard, "jaccard")
    progress = check_progress(progress)
    return _dbscan(matrix, eps, min_samples, n_jobs, progress)


def _dbscan(
    matrix: sp.csr_matrix, eps: float, min_samples: int, n_jobs: int | None = None, progress: Progress | None = None
) -> np.ndarray:
    """:func:`dbscan_cluster` on a checked sparse distance matrix."""
    from sklearn.cluster import DBSCAN

    model = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed", n_jobs=n_jobs)
    with one_step(progress, "dbscan"):
        return model.fit_predict(matrix).astype(np.int64)


def suggest_eps(distances: Any, *, rank: int = 4, quantile: float = 0.5) -> float:
    """A DBSCAN ``eps`` (or ``1 - min_sim`` for Infomap) from the data: the k-distance heuristic.

    Takes each sample's distance to its ``rank``-th nearest other sample and returns the
    ``quantile`` of those distances: about that fraction of samples then has ``rank``
    neighbours within ``eps`` (they are core points for ``min_samples = rank + 1``).

    Parameters
    ----------
    distances : KnnGraph, tuple (indices, distances) or scipy.sparse matrix
        A kNN graph from :func:`labelrefine.neighbors.knn` (validated as
        :class:`~labelrefine.neighbors.KnnGraph` describes), or a sparse Jaccard matrix (pairs
        not stored have distance 1).
    rank : int, default 4
        Which neighbour (1 = nearest other sample).
    quantile : float in [0, 1], default 0.5
        Quantile over samples.

    Returns
    -------
    float
        Suggested ``eps``; use ``min_sim = 1 - eps`` for :func:`infomap_cluster`.

    Examples
    --------
    >>> import numpy as np
    >>> graph = (np.array([[0, 1], [1, 0], [2, 1]]), np.array([[0.0, 0.2], [0.0, 0.2], [0.0, 0.4]]))
    >>> suggest_eps(graph, rank=1, quantile=1.0)
    0.4
    """
    rank = check_int(rank, "rank", low=1)
    quantile = check_probability(quantile, "quantile")
    if sp.issparse(distances):
        matrix = _check_sparse_distances(distances, "distances")
        n = matrix.shape[0]
        coo = matrix.tocoo()
        off_diagonal = coo.row != coo.col
        rows, values = coo.row[off_diagonal], coo.data[off_diagonal]
        order = np.lexsort((values, rows))
        rows, values = rows[order], np.append(values[order], 1.0)  # sentinel: rows too short get distance 1
        starts = np.searchsorted(rows, np.arange(n))
        counts = np.bincount(rows, minlength=n)
        kth = np.where(counts >= rank, values[np.minimum(starts + rank - 1, values.size - 1)], 1.0)
    else:
        indices, dist = check_knn_graph(distances, "distances")
        if indices.size == 0:
            raise ValueError(f"distances must not be empty, got a kNN graph of shape {indices.shape}")
        not_self = indices != np.arange(indices.shape[0])[:, None]
        if not_self.sum(axis=1).min() < rank:
            raise ValueError(f"rank={rank} needs at least {rank} neighbours other than self per row in the kNN graph")
        position = np.argmax(np.cumsum(not_self, axis=1) >= rank, axis=1)
        kth = dist[np.arange(indices.shape[0]), position]
    return float(np.quantile(kth, quantile))


def cluster_per_camera(
    feats: Any,
    cams: Any,
    *,
    method: str = "agglomerative",
    images_per_cluster: int = 5,
    k1: int = 30,
    k2: int = 6,
    eps: float = 0.6,
    min_sim: float = 0.5,
    k: int = 15,
    linkage: Literal["average", "complete", "single"] = "average",
    rng: int | np.random.Generator | None = None,
    progress: Progress | None = None,
) -> np.ndarray:
    """Stage-1 clustering: each camera's images clustered on their own.

    The paper (Sec. IV-A) clusters each camera with agglomerative clustering into
    ``n_images / 5`` clusters and names no distance or linkage; the k-reciprocal Jaccard
    distance with average linkage is what the authors' released code uses.

    Parameters
    ----------
    feats : array-like of shape (N, D)
        Features (L2-normalised internally, not in place).
    cams : array-like of shape (N,)
        Camera of each sample.
    method : str, default "agglomerative"
        One of :func:`cluster_methods` (the built-in :data:`CLUSTER_METHODS`, or a method added
        with :func:`register_cluster_method`). ``"agglomerative"``: Jaccard distance (``k1``,
        ``k2``) + agglomerative clustering with ``linkage`` and
        ``n_clusters = max(1, n_c // images_per_cluster)`` (``n_c / 5`` in the paper); dense per
        camera, see the module notes for its cost. ``"dbscan"``: DBSCAN on the sparse Jaccard
        matrix with ``eps``. ``"infomap"``: Infomap on a kNN graph with ``k`` and ``min_sim``.
        The last two stay O(n_c k) in memory for large cameras.
    images_per_cluster : int, default 5
        Expected images per identity in one camera (agglomerative only).
    k1, k2 : int
        Jaccard parameters, shrunk to the camera's size when it is small.
    eps, min_sim, k :
        Parameters of the ``"dbscan"`` and ``"infomap"`` methods; ``k`` counts neighbours other
        than the sample itself (shrunk to ``n_c - 1`` for small cameras).
    linkage : {"average", "complete", "single"}, default "average"
        Agglomerative linkage.
    rng : int, numpy.random.Generator or None, default None
        Randomness of ``method="infomap"`` (see :func:`infomap_cluster`); the other methods are
        deterministic.
    progress : callable, optional
        ``progress(step, done, total)``: the ``"per-camera clustering"`` step counts cameras
        (see :func:`labelrefine.console_progress`).

    Returns
    -------
    numpy.ndarray of int64, shape (N,)
        Local labels, -1 for outliers. Ids are unique across all cameras (a stronger form of
        "unique within each camera"), so the array is also a valid set of global clusters.

    Examples
    --------
    >>> from labelrefine.synthetic import make_camera_biased
    >>> data = make_camera_biased(n_ids=20, n_cams=3, rng=0)
    >>> local = cluster_per_camera(data.feats, data.cams, k1=10, k2=3)
    >>> bool(all(len(set(data.cams[local == c])) == 1 for c in set(local.tolist()) - {-1}))
    True
    """
    x = check_features(feats)
    cam_codes = check_cameras(cams, "cams", n=x.shape[0])
    # rng is passed on as given, so that each camera is clustered as cluster_camera(..., rng=rng) would
    entry, options = _camera_options(method, images_per_cluster, k1, k2, eps, min_sim, k, linkage, rng, x)
    progress = check_progress(progress)
    if entry.check_size is not None:
        entry.check_size(int(np.bincount(cam_codes).max()))
    labels = np.full(x.shape[0], -1, dtype=np.int64)
    next_id = 0
    n_cams = int(cam_codes.max()) + 1
    for cam, _ in ranges(progress, "per-camera clustering", n_cams, 1):  # loop over cameras: few, each vectorised
        members = np.flatnonzero(cam_codes == cam)
        local = _cluster_one(x[members], entry, options)
        labels[members] = np.where(local >= 0, local + next_id, -1)
        next_id += int(local.max()) + 1 if (local >= 0).any() else 0
    return labels


def cluster_camera(
    feats: Any,
    *,
    method: str = "agglomerative",
    images_per_cluster: int = 5,
    k1: int = 30,
    k2: int = 6,
    eps: float = 0.6,
    min_sim: float = 0.5,
    k: int = 15,
    linkage: Literal["average", "complete", "single"] = "average",
    rng: int | np.random.Generator | None = None,
) -> np.ndarray:
    """The per-camera step of :func:`cluster_per_camera`: cluster the images of one camera.

    Parameters
    ----------
    feats : array-like of shape (n_c, D)
        Features of one camera's images (L2-normalised internally, not in place).
    method, images_per_cluster, k1, k2, eps, min_sim, k, linkage, rng :
        As in :func:`cluster_per_camera` (``k1``, ``k2`` and ``k`` shrink to a small camera).

    Returns
    -------
    numpy.ndarray of int64, shape (n_c,)
        Labels ``0..C-1`` (not necessarily contiguous after DBSCAN or Infomap), -1 for outliers.

    Examples
    --------
    >>> from labelrefine.synthetic import make_camera_biased
    >>> data = make_camera_biased(n_ids=20, n_cams=3, rng=0)
    >>> one = data.feats[data.cams == 0]
    >>> labels = cluster_camera(one, images_per_cluster=2, k1=10, k2=3)
    >>> labels.shape == (one.shape[0],), int(labels.max()) + 1 == one.shape[0] // 2
    (True, True)
    """
    x = check_features(feats)
    entry, options = _camera_options(method, images_per_cluster, k1, k2, eps, min_sim, k, linkage, rng, x)
    if entry.check_size is not None:
        entry.check_size(x.shape[0])
    return _cluster_one(x, entry, options)


@dataclass(frozen=True)
class CameraOptions:
    """The checked options of one per-camera clustering call, as a clustering method receives them.

    Attributes
    ----------
    images_per_cluster, k1, k2, eps, min_sim, k, linkage, rng :
        As :func:`cluster_per_camera` takes them (``k1``, ``k2`` and ``k`` not yet shrunk to the camera).
    backend : str
        The kNN backend chosen once for the call (``"faiss"`` or ``"numpy"``), for
        ``labelrefine.neighbors.knn(..., backend=options.backend)``.
    """

    images_per_cluster: int
    k1: int
    k2: int
    eps: float
    min_sim: float
    k: int
    linkage: str
    rng: int | np.random.Generator | None
    backend: str


ClusterMethod = Callable[[np.ndarray, CameraOptions], np.ndarray]
"""``method(feats, options) -> labels`` for the images of one camera (at least 2), -1 for outliers."""


@dataclass(frozen=True)
class _Method:
    cluster: ClusterMethod
    check_size: Callable[[int], None] | None


_METHODS: dict[str, _Method] = {}


def register_cluster_method(
    name: str, *, check_size: Callable[[int], None] | None = None
) -> Callable[[ClusterMethod], ClusterMethod]:
    """Decorator that makes ``cluster_per_camera(..., method=name)`` call the decorated ``method(feats, options)``.

    Parameters
    ----------
    name : str
        The method's name; a name already registered is refused (:func:`unregister_cluster_method` first).
    check_size : callable, optional
        ``check_size(n_images)``, called with the largest camera before any camera is clustered;
        it raises ``ValueError`` for a camera the method cannot take.

    Examples
    --------
    >>> import numpy as np
    >>> @register_cluster_method("one-cluster")
    ... def one_cluster(feats, options):
    ...     return np.zeros(feats.shape[0], dtype=np.int64)
    >>> cluster_camera(np.eye(3), method="one-cluster").tolist()
    [0, 0, 0]
    >>> unregister_cluster_method("one-cluster")
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string, got {name!r}")
    if name in _METHODS:
        raise ValueError(f"name must be a new clustering method, got {name!r}, which is registered already")

    def register(method: ClusterMethod) -> ClusterMethod:
        _METHODS[name] = _Method(method, check_size)
        return method

    return register


def unregister_cluster_method(name: str) -> None:
    """Remove a method added with :func:`register_cluster_method` (the built-in methods cannot be removed)."""
    if name in CLUSTER_METHODS or name not in _METHODS:
        raise ValueError(f"name must be a method added with register_cluster_method, got {name!r}")
    del _METHODS[name]


def cluster_methods() -> tuple[str, ...]:
    """Every ``method`` that :func:`cluster_per_camera` accepts now: :data:`CLUSTER_METHODS` and the registered ones."""
    return tuple(_METHODS)


def _camera_options(
    method: Any,
    images_per_cluster: Any,
    k1: Any,
    k2: Any,
    eps: Any,
    min_sim: Any,
    k: Any,
    linkage: Any,
    rng: Any,
    x: np.ndarray,
) -> tuple[_Method, CameraOptions]:
    """The registered method and its checked options; the kNN backend is chosen here, once per call."""
    from .neighbors import _resolve_backend

    entry = _METHODS[check_choice(method, "method", cluster_methods())]
    check_choice(linkage, "linkage", ("average", "complete", "single"))
    k1 = check_int(k1, "k1", low=1)
    as_rng(rng)  # checked here; each method normalises it
    options = CameraOptions(
        images_per_cluster=check_int(images_per_cluster, "images_per_cluster", low=1),
        k1=k1,
        k2=check_int(k2, "k2", low=1, high=k1),
        eps=_check_eps(eps),
        min_sim=check_probability(min_sim, "min_sim"),
        k=check_int(k, "k", low=1),
        linkage=linkage,
        rng=rng,
        backend=_resolve_backend("auto", x),
    )
    return entry, options


def _cluster_one(x: np.ndarray, entry: _Method, options: CameraOptions) -> np.ndarray:
    """One camera's labels: a single image is its own cluster, more go to the method."""
    if x.shape[0] == 1:
        return np.zeros(1, dtype=np.int64)
    return entry.cluster(x, options)


def _check_dense(n_c: int) -> None:
    """Refuse agglomerative clustering of a camera whose dense distance matrix would not fit."""
    if n_c > AGGLOMERATIVE_MAX:
        raise ValueError(
            f"method='agglomerative' needs a dense {n_c} x {n_c} distance matrix for a camera with {n_c} images "
            f"({n_c * n_c * 8 / 2**30:.0f} GiB); it is limited to cameras of at most {AGGLOMERATIVE_MAX} images: "
            "use method='dbscan' or method='infomap', which stay sparse"
        )


@register_cluster_method("agglomerative", check_size=_check_dense)
def _agglomerative_camera(x: np.ndarray, options: CameraOptions) -> np.ndarray:
    """Jaccard distance and agglomerative clustering into ``n_c // images_per_cluster`` clusters."""
    from .neighbors import _jaccard

    k1 = min(options.k1, x.shape[0] - 1)
    jaccard = _jaccard(x, None, k1, min(options.k2, k1), options.backend)
    return _agglomerative(jaccard, max(1, x.shape[0] // options.images_per_cluster), options.linkage)


@register_cluster_method("dbscan")
def _dbscan_camera(x: np.ndarray, options: CameraOptions) -> np.ndarray:
    """DBSCAN on the sparse Jaccard distance (pairs farther than ``eps`` never matter to it)."""
    from .neighbors import _jaccard

    k1 = min(options.k1, x.shape[0] - 1)
    jaccard = _jaccard(x, None, k1, min(options.k2, k1), options.backend, max_distance=options.eps)
    return _dbscan(jaccard, options.eps, 4)


@register_cluster_method("infomap")
def _infomap_camera(x: np.ndarray, options: CameraOptions) -> np.ndarray:
    """Infomap on the camera's kNN graph (``k`` shrunk to the camera)."""
    from .neighbors import _knn

    graph = _knn(x, min(options.k, x.shape[0] - 1), options.backend)
    return _infomap(graph, options.min_sim, 1, seed_from(options.rng, "rng", low=1))


def _agglomerative(distances: sp.spmatrix, n_clusters: int, linkage: str) -> np.ndarray:
    from sklearn.cluster import AgglomerativeClustering

    dense = np.ones(distances.shape)  # sparse convention: a pair not stored has distance 1
    stored = distances.tocoo()
    dense[stored.row, stored.col] = stored.data
    np.fill_diagonal(dense, 0.0)
    if n_clusters >= dense.shape[0]:
        return np.arange(dense.shape[0], dtype=np.int64)
    model = AgglomerativeClustering(n_clusters=n_clusters, metric="precomputed", linkage=linkage)
    return model.fit_predict(dense).astype(np.int64)


def camera_weights(labels: Any, cams: Any) -> np.ndarray:
    """Camera-entropy weight ``log(1 + H)`` of each cluster (CaCL, paper Eq. 6).

    ``H`` is the entropy (natural log) of the camera distribution inside the cluster: 0 for a
    single-camera cluster, ``log(C)`` when its images spread evenly over C cameras.

    Parameters
    ----------
    labels : array-like of int, shape (N,)
        Cluster ids, -1 ignored. Any ids (they are factorised, so ids like 10**12 cost nothing).
    cams : array-like of shape (N,)
        Camera of each sample.

    Returns
    -------
    numpy.ndarray of float64, shape (K,)
        One weight per cluster, in increasing order of cluster id (``np.unique(labels[labels >= 0])``):
        for contiguous ids ``0..K-1`` (:func:`~labelrefine.relabel`), position ``j`` is
        cluster ``j``.

    Examples
    --------
    >>> camera_weights([0, 0, 1, 1, -1], [1, 2, 1, 1, 3]).round(4)
    array([0.5266, 0.    ])
    >>> camera_weights([7, 7, 10**12], ["a", "b", "a"]).round(4)  # ids 7 and 10**12
    array([0.5266, 0.    ])
    """
    labels = check_labels(labels, "labels")
    cam_codes = check_cameras(cams, "cams")
    check_same_length(labels=labels, cams=cam_codes)
    clustered = labels >= 0
    ids, cluster_codes = np.unique(labels[clustered], return_inverse=True)
    n_clusters = ids.size
    counts = sp.coo_matrix(
        (np.ones(cluster_codes.size), (cluster_codes.reshape(-1), cam_codes[clustered])),
        shape=(n_clusters, int(cam_codes.max()) + 1 if cam_codes.size else 0),
    ).tocsr()
    counts.sum_duplicates()
    sizes = np.asarray(counts.sum(axis=1)).ravel()
    row_of_entry = np.repeat(np.arange(n_clusters), np.diff(counts.indptr))
    share = counts.data / sizes[row_of_entry]
    entropy = np.bincount(row_of_entry, weights=-share * np.log(share), minlength=n_clusters)
    return np.log1p(entropy)


@dataclass(frozen=True)
class ClusterStats:
    """Summary of a labelling: see :func:`cluster_stats`."""

    n_samples: int
    n_clusters: int
    n_outliers: int
    size_histogram: dict[int, int]

    @property
    def outlier_ratio(self) -> float:
        """Outliers as a fraction of all samples."""
        return self.n_outliers / self.n_samples if self.n_samples else 0.0

    def __str__(self) -> str:
        sizes = ", ".join(f"{size}: {count}" for size, count in self.size_histogram.items())
        return (
            f"{self.n_clusters} clusters, {self.n_outliers} outliers of {self.n_samples} samples "
            f"({self.outlier_ratio:.1%}); clusters by size {{{sizes}}}"
        )


def cluster_stats(labels: Any) -> ClusterStats:
    """Number of clusters, outliers and the histogram of cluster sizes.

    Examples
    --------
    >>> print(cluster_stats([0, 0, 1, -1, 5, 5, 5]))
    3 clusters, 1 outliers of 7 samples (14.3%); clusters by size {1: 1, 2: 1, 3: 1}
    """
    labels = check_labels(labels, "labels")
    clustered = labels[labels >= 0]
    sizes = np.unique(clustered, return_counts=True)[1]
    size_values, size_counts = np.unique(sizes, return_counts=True)
    return ClusterStats(
        n_samples=int(labels.size),
        n_clusters=int(sizes.size),
        n_outliers=int(labels.size - clustered.size),
        size_histogram=dict(zip(size_values.tolist(), size_counts.tolist(), strict=True)),
    )


def cluster_centroids(feats: Any, labels: Any) -> np.ndarray:
    """L2-normalised mean of the L2-normalised features of each cluster (a cluster memory's start).

    Parameters
    ----------
    feats : array-like of shape (N, D)
        Floating-point features (float16 is computed in float32).
    labels : array-like of int, shape (N,)
        Cluster ids, contiguous ``0..C-1`` (every id used at least once); ``-1`` samples are
        ignored. Make ids contiguous with :func:`labelrefine.relabel`.

    Returns
    -------
    numpy.ndarray of shape (C, D)
        Row ``c`` is the normalised mean of the normalised features with label ``c``, in the
        dtype of ``feats``; ``C = 0`` when every label is ``-1``.

    Raises
    ------
    TypeError
        ``feats`` not floating point or ``labels`` not integer.
    ValueError
        Wrong shapes, labels below -1, or ids that are not contiguous.

    Notes
    -----
    One sparse (C x N) by (N x D) product; memory O(N D). Inputs are not modified.

    Examples
    --------
    >>> import numpy as np
    >>> feats = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 2.0], [5.0, 5.0]])
    >>> cluster_centroids(feats, [0, 0, 1, -1]).round(4)
    array([[0.7071, 0.7071],
           [0.    , 1.    ]])
    """
    x = check_features(feats)
    lab = check_labels(labels, "labels", n=x.shape[0])
    keep = np.flatnonzero(lab >= 0)
    num = int(lab[keep].max()) + 1 if keep.size else 0
    counts = np.bincount(lab[keep], minlength=num)
    if num and (counts == 0).any():
        missing = np.flatnonzero(counts == 0)[:5].tolist()
        raise ValueError(
            f"labels must be contiguous cluster ids 0..C-1 (C = {num}); ids {missing} are unused. "
            "Make them contiguous with labelrefine.relabel(labels)"
        )
    unit = x[keep] / np.maximum(np.linalg.norm(x[keep], axis=1, keepdims=True), 1e-12).astype(x.dtype)
    members = sp.csr_matrix((np.ones(keep.size, dtype=x.dtype), (lab[keep], np.arange(keep.size))), (num, keep.size))
    sums = np.asarray(members @ unit)
    return sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12).astype(x.dtype)
