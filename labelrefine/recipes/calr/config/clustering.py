"""The schema's clustering sections: one per stage, with one sub-section per clustering method.

Stage 1 clusters each camera (``camera_clustering``), stage 2 every training image
(``clustering``); each has a ``method`` and the parameters of every method in a sub-section of
its name (``camera_clustering.agglomerative.k1``, ``clustering.dbscan.k1``).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from ...._validation import check_choice, check_int, check_probability
from ....cluster import cluster_methods
from ._base import _open_unit, _Section

__all__ = [
    "GLOBAL_METHODS",
    "AgglomerativeConfig",
    "CameraClusteringConfig",
    "CameraDbscanConfig",
    "CameraInfomapConfig",
    "ClusteringConfig",
    "DbscanConfig",
    "InfomapConfig",
]

CameraMethodName = str
"""A name of :func:`labelrefine.cluster.cluster_methods` (the built-ins and those registered with
:func:`labelrefine.cluster.register_cluster_method`)."""
GlobalMethod = Literal["infomap", "dbscan"]
"""The global clustering methods of :class:`~labelrefine.recipes.calr.InterTrainer`."""
GLOBAL_METHODS: tuple[str, ...] = typing.get_args(GlobalMethod)


def _check_jaccard(section: Any, name: str) -> None:
    """The k-reciprocal Jaccard keys ``k1`` >= 1 and ``1 <= k2 <= k1``."""
    check_int(section.k1, f"{name}.k1", low=1)
    check_int(section.k2, f"{name}.k2", low=1, high=section.k1)


@dataclass(frozen=True)
class AgglomerativeConfig(_Section):
    """Stage 1, ``camera_clustering.method="agglomerative"``: average linkage on the Jaccard distance.

    Parameters
    ----------
    images_per_cluster : int
        ``n_images // images_per_cluster`` clusters per camera.
    k1, k2 : int
        Jaccard neighbourhoods (:func:`labelrefine.jaccard_distance`).
    """

    NAME: ClassVar[str] = "camera_clustering.agglomerative"

    images_per_cluster: int = 5
    k1: int = 15
    k2: int = 4

    def _validate(self) -> None:
        self._ints(1, "images_per_cluster")
        _check_jaccard(self, self.NAME)


@dataclass(frozen=True)
class CameraDbscanConfig(_Section):
    """Stage 1, ``camera_clustering.method="dbscan"``: DBSCAN on the Jaccard distance (``eps``, ``k1``, ``k2``)."""

    NAME: ClassVar[str] = "camera_clustering.dbscan"

    eps: float = 0.6
    k1: int = 15
    k2: int = 4

    def _validate(self) -> None:
        _open_unit(self.eps, f"{self.NAME}.eps")
        _check_jaccard(self, self.NAME)


@dataclass(frozen=True)
class CameraInfomapConfig(_Section):
    """Stage 1, ``camera_clustering.method="infomap"``: Infomap on a ``k``-NN graph, edges of similarity >= min_sim."""

    NAME: ClassVar[str] = "camera_clustering.infomap"

    k: int = 15
    min_sim: float = 0.5

    def _validate(self) -> None:
        self._ints(1, "k")
        check_probability(self.min_sim, f"{self.NAME}.min_sim")


@dataclass(frozen=True)
class CameraClusteringConfig(_Section):
    """Stage 1: per-camera clustering, :func:`labelrefine.cluster_camera` on each camera.

    Parameters
    ----------
    method : str
        The per-camera method, one of :func:`labelrefine.cluster.cluster_methods`:
        ``"agglomerative"``, ``"dbscan"``, ``"infomap"`` or one registered with
        :func:`labelrefine.cluster.register_cluster_method`.
    agglomerative, dbscan, infomap : sub-sections
        The parameters of each method: :class:`AgglomerativeConfig`,
        :class:`CameraDbscanConfig`, :class:`CameraInfomapConfig`.
    """

    NAME: ClassVar[str] = "camera_clustering"

    method: CameraMethodName = "agglomerative"
    agglomerative: AgglomerativeConfig = field(default_factory=AgglomerativeConfig)
    dbscan: CameraDbscanConfig = field(default_factory=CameraDbscanConfig)
    infomap: CameraInfomapConfig = field(default_factory=CameraInfomapConfig)

    def _validate(self) -> None:
        check_choice(self.method, f"{self.NAME}.method", cluster_methods())

    def options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`labelrefine.cluster_camera` for ``method``."""
        jaccard = self.dbscan if self.method == "dbscan" else self.agglomerative
        return {
            "method": self.method,
            "images_per_cluster": self.agglomerative.images_per_cluster,
            "k1": jaccard.k1,
            "k2": jaccard.k2,
            "eps": self.dbscan.eps,
            "min_sim": self.infomap.min_sim,
            "k": self.infomap.k,
        }


@dataclass(frozen=True)
class InfomapConfig(_Section):
    """Stage 2, ``clustering.method="infomap"``.

    Parameters
    ----------
    k_includes_self : bool
        ``clustering.k`` counts the sample itself, as the authors' faiss search does (``k``
        columns, the sample first): Infomap then links each image to its ``k - 1`` nearest
        others. The ``"reference"`` pivot rule reads ``k`` columns including the sample in
        either case (the authors' score); the other rules score ``k`` other neighbours (Eq. 4).
    min_size : int
        Clusters with at most this many images become outliers (1 drops singletons; the
        authors' code drops clusters of at most 4 images).
    """

    NAME: ClassVar[str] = "clustering.infomap"

    k_includes_self: bool = False
    min_size: int = 1

    def _validate(self) -> None:
        self._ints(0, "min_size")


@dataclass(frozen=True)
class DbscanConfig(_Section):
    """Stage 2, ``clustering.method="dbscan"`` on the sparse k-reciprocal Jaccard distance (Cluster-Contrast).

    Parameters
    ----------
    eps, min_samples : float, int
        DBSCAN's radius and core size.
    k1, k2 : int
        Jaccard neighbourhoods; ``k1`` must be at most the number of training images.
    """

    NAME: ClassVar[str] = "clustering.dbscan"

    eps: float = 0.6
    min_samples: int = 4
    k1: int = 30
    k2: int = 6

    def _validate(self) -> None:
        _open_unit(self.eps, f"{self.NAME}.eps")
        self._ints(1, "min_samples")
        _check_jaccard(self, self.NAME)


@dataclass(frozen=True)
class ClusteringConfig(_Section):
    """Stage 2: global clustering of every training image, each epoch.

    Parameters
    ----------
    method : {"infomap", "dbscan"}
        ``"dbscan"`` on the sparse k-reciprocal Jaccard distance is the Cluster-Contrast baseline.
    k, min_sim : int, float
        The epoch's kNN graph: its size (pivot scores and Infomap) and the similarity threshold
        of Infomap's edges and of the ``"reference"`` pivot score. ``k`` must be at most N - 1
        (the training images other than the sample): a larger value is an error when training
        starts, never a silent clamp.
    infomap, dbscan : sub-sections
        The parameters of each method: :class:`InfomapConfig`, :class:`DbscanConfig`.
    """

    NAME: ClassVar[str] = "clustering"

    method: GlobalMethod = "infomap"
    k: int = 15
    min_sim: float = 0.5
    infomap: InfomapConfig = field(default_factory=InfomapConfig)
    dbscan: DbscanConfig = field(default_factory=DbscanConfig)

    def _validate(self) -> None:
        check_int(self.k, "clustering.k", low=2)
        check_probability(self.min_sim, "clustering.min_sim")
