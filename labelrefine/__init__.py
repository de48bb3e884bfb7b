"""labelrefine: camera-aware pseudo-label refinement (CALR) for unsupervised re-identification.

The core works on numpy arrays and imports only numpy, scipy and scikit-learn; names are
loaded on first use so that ``import labelrefine`` stays fast. The torch adapter lives in
:mod:`labelrefine.nn` and :mod:`labelrefine.data`, imported explicitly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# The function refine shares its name with the module labelrefine.refine. Importing it eagerly binds
# the package attribute to the function for good; loaded lazily, a later `import labelrefine.refine`
# would rebind it to the module. The module needs only numpy, so this costs little.
from .refine import RefineResult, refine, refine_with_pivots, relabel

_EXPORTS = {
    "PIVOT_RULES": "pivots",
    "pivot_rules": "pivots",
    "register_pivot_rule": "pivots",
    "CLUSTER_METHODS": "cluster",
    "cluster_methods": "cluster",
    "register_cluster_method": "cluster",
    "pivot_scores": "pivots",
    "select_pivots": "pivots",
    "KnnGraph": "neighbors",
    "knn": "neighbors",
    "jaccard_distance": "neighbors",
    "knn_search": "neighbors",
    "infomap_cluster": "cluster",
    "dbscan_cluster": "cluster",
    "cluster_per_camera": "cluster",
    "cluster_camera": "cluster",
    "cluster_centroids": "cluster",
    "camera_weights": "cluster",
    "cluster_stats": "cluster",
    "suggest_eps": "cluster",
    "console_progress": "_progress",
    "cluster_report": "metrics",
    "ClusterReport": "metrics",
    "impurity_report": "metrics",
    "ImpurityReport": "metrics",
    "camera_agreement": "agreement",
    "PrecisionRecallF": "metrics",
    "pairwise_scores": "metrics",
    "bcubed_scores": "metrics",
    "expansion": "metrics",
    "nmi": "metrics",
    "Protocol": "retrieval",
    "RetrievalResult": "retrieval",
    "evaluate_retrieval": "retrieval",
    "get_schedule": "schedules",
    "make_camera_biased": "synthetic",
}

__all__ = [
    "CLUSTER_METHODS",
    "PIVOT_RULES",
    "ClusterReport",
    "ImpurityReport",
    "KnnGraph",
    "PrecisionRecallF",
    "Protocol",
    "RefineResult",
    "RetrievalResult",
    "__version__",
    "bcubed_scores",
    "camera_agreement",
    "camera_weights",
    "cluster_camera",
    "cluster_centroids",
    "cluster_methods",
    "cluster_per_camera",
    "cluster_report",
    "cluster_stats",
    "console_progress",
    "dbscan_cluster",
    "evaluate_retrieval",
    "expansion",
    "get_schedule",
    "impurity_report",
    "infomap_cluster",
    "jaccard_distance",
    "knn",
    "knn_search",
    "make_camera_biased",
    "nmi",
    "pairwise_scores",
    "pivot_rules",
    "pivot_scores",
    "refine",
    "refine_with_pivots",
    "register_cluster_method",
    "register_pivot_rule",
    "relabel",
    "select_pivots",
    "suggest_eps",
]

if TYPE_CHECKING:
    from ._progress import console_progress
    from .agreement import camera_agreement
    from .cluster import (
        CLUSTER_METHODS,
        camera_weights,
        cluster_camera,
        cluster_centroids,
        cluster_methods,
        cluster_per_camera,
        cluster_stats,
        dbscan_cluster,
        infomap_cluster,
        register_cluster_method,
        suggest_eps,
    )
    from .metrics import (
        ClusterReport,
        ImpurityReport,
        PrecisionRecallF,
        bcubed_scores,
        cluster_report,
        expansion,
        impurity_report,
        nmi,
        pairwise_scores,
    )
    from .neighbors import KnnGraph, jaccard_distance, knn, knn_search
    from .pivots import PIVOT_RULES, pivot_rules, pivot_scores, register_pivot_rule, select_pivots
    from .retrieval import Protocol, RetrievalResult, evaluate_retrieval
    from .schedules import get_schedule
    from .synthetic import make_camera_biased


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'labelrefine' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
