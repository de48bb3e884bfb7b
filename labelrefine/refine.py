"""Camera-aware label refinement (paper Eq. 5) and label helpers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._validation import as_rng, check_cameras, check_choice, check_labels, check_probability, check_same_length
from .pivots import PIVOT_RULES, PivotRule, pivot_scores, select_pivots

__all__ = ["RefineResult", "refine", "relabel"]


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


@dataclass(frozen=True, repr=False)
class RefineResult:
    """Outcome of :func:`refine`.

    Attributes
    ----------
    labels : numpy.ndarray of int64, shape (N,)
        Refined labels: the input global labels with discarded samples set to -1. Cluster ids
        are the ones given (use :func:`relabel` for contiguous ids).
    discarded : numpy.ndarray of bool, shape (N,)
        Samples that this call moved to -1 (global outliers are not counted).
    pivots : numpy.ndarray of int64
        Sorted indices of the pivots that were selected (including those whose local label is
        -1, which refine nothing).
    scores : numpy.ndarray of float64, shape (N,)
        Pivot scores (paper Eq. 4) used for the selection.
    p : float
        Discard probability that was applied.
    """

    labels: np.ndarray
    discarded: np.ndarray
    pivots: np.ndarray
    scores: np.ndarray
    p: float

    @property
    def n_samples(self) -> int:
        """Number of samples N."""
        return int(self.labels.shape[0])

    @property
    def n_discarded(self) -> int:
        """Number of samples moved to -1 by this refinement."""
        return int(self.discarded.sum())

    @property
    def n_pivots(self) -> int:
        """Number of pivots selected."""
        return int(self.pivots.shape[0])

    @property
    def n_outliers(self) -> int:
        """Number of samples labelled -1 after refinement (global outliers plus discarded)."""
        return int((self.labels < 0).sum())

    @property
    def discard_ratio(self) -> float:
        """Discarded samples as a fraction of the samples that had a global cluster."""
        clustered = self.n_discarded + int((self.labels >= 0).sum())
        return self.n_discarded / clustered if clustered else 0.0

    def __repr__(self) -> str:
        return (
            f"RefineResult(n_samples={self.n_samples}, n_pivots={self.n_pivots}, n_discarded={self.n_discarded}, "
            f"discard_ratio={self.discard_ratio:.4f}, p={self.p})"
        )


def relabel(labels: Any) -> np.ndarray:
    """Map cluster ids to contiguous ``0..K-1`` in increasing order of the original ids; -1 stays -1.

    Examples
    --------
    >>> relabel([7, -1, 3, 7, 10])
    array([ 1, -1,  0,  1,  2])
    """
    labels = check_labels(labels, "labels")
    out = np.full(labels.shape, -1, dtype=np.int64)
    clustered = labels >= 0
    out[clustered] = np.unique(labels[clustered], return_inverse=True)[1].reshape(-1)
    return out


def refine(
    global_labels: Any,
    local_labels: Any,
    cams: Any,
    feats: Any = None,
    *,
    knn: tuple[Any, Any] | None = None,
    k: int = 15,
    p: float = 1.0,
    pivots: PivotRule = "camera",
    min_sim: float = 0.5,
    rng: int | np.random.Generator | None = None,
) -> RefineResult:
    """Refine global pseudo labels with camera-local ones (CALR, paper Eq. 4-5).

    For each pivot ``i`` of camera ``c`` in global cluster ``G``, every member of ``G`` from
    camera ``c`` that is not in ``i``'s local cluster (local label -1 included) becomes -1,
    each independently with probability ``p``. Members from other cameras are untouched.

    Parameters
    ----------
    global_labels : array-like of int, shape (N,)
        Global (inter-camera) cluster ids; -1 = outlier, left as it is.
    local_labels : array-like of int, shape (N,)
        Local (intra-camera) cluster ids, meaningful within a camera only: the same integer in
        two cameras names two different clusters. -1 = not clustered locally.
    cams : array-like of shape (N,)
        Camera of each sample (ints, strings, any hashable).
    feats : array-like of shape (N, D), optional
        Features, used to build the kNN graph (cosine, L2-normalised internally). Give either
        ``feats`` or ``knn``.
    knn : tuple (indices, distances), optional
        Precomputed kNN graph in cosine distance, as returned by
        :func:`labelrefine.neighbors.knn`, so that one graph per epoch serves clustering and
        refinement. It needs ``k`` neighbours per row other than the sample itself (``k + 1``
        columns when the sample is included, as ``knn`` includes it).
    k : int, default 15
        Neighbours in the pivot score, ``2 <= k < N``.
    p : float in [0, 1], default 1.0
        Discard probability (decay it over epochs with :mod:`labelrefine.schedules`). ``p = 0``
        returns the labels unchanged; ``p = 1`` is deterministic.
    pivots : {"camera", "cluster", "reference"}, default "camera"
        Pivot rule, see :func:`select_pivots`. ``"camera"`` refines every (cluster, camera)
        group with an eligible member; ``"cluster"`` one camera group per cluster;
        ``"reference"`` reproduces the authors' released code (its scores, its pivot choice).
    min_sim : float, default 0.5
        Similarity cut-off of the ``"reference"`` score; ignored by the other rules.
    rng : int, numpy.random.Generator or None
        Source of the discard draws (one uniform draw per candidate, in sample order).

    Returns
    -------
    RefineResult
        Refined labels, discarded mask, pivots, scores and ``p``.

    Raises
    ------
    ValueError, TypeError
        On mismatched lengths, non-integer or 2-D labels, NaN features, ``p`` outside
        [0, 1], ``k`` out of range, an unknown pivot rule, or both/neither of ``feats``/``knn``.

    Examples
    --------
    >>> import numpy as np
    >>> from labelrefine import refine
    >>> from labelrefine.synthetic import make_camera_biased
    >>> data = make_camera_biased(n_ids=20, n_cams=3, seed=0)
    >>> result = refine(data.pids, data.local_labels, data.cams, data.feats, k=5)
    >>> bool((result.labels[~result.discarded] == data.pids[~result.discarded]).all())
    True
    """
    g = check_labels(global_labels, "global_labels")
    local = check_labels(local_labels, "local_labels")
    cam_codes = check_cameras(cams, "cams")
    n = check_same_length(global_labels=g, local_labels=local, cams=cam_codes)
    p = check_probability(p, "p")
    rule = check_choice(pivots, "pivots", PIVOT_RULES)
    generator = as_rng(rng)

    scores = pivot_scores(feats, knn=knn, k=k, rule="reference" if rule == "reference" else "paper", min_sim=min_sim)
    if scores.shape[0] != n:
        source = "knn" if feats is None else "feats"
        raise ValueError(f"{source} must have {n} rows (one per sample), got {scores.shape[0]}")
    chosen = select_pivots(scores, g, cam_codes, rule=rule)

    # Each clustered sample finds the pivot of its group: (cluster, camera) for "camera", its cluster otherwise.
    clustered = g >= 0
    cluster = relabel(g)
    n_cams = int(cam_codes.max()) + 1 if n else 1
    key = cluster * n_cams + cam_codes if rule == "camera" else cluster
    group = np.full(n, -1, dtype=np.int64)
    group[clustered] = np.unique(key[clustered], return_inverse=True)[1].reshape(-1)
    pivot_of_group = np.full(int(group.max()) + 2, -1, dtype=np.int64)  # last slot: group -1 has no pivot
    pivot_of_group[group[chosen]] = chosen
    pivot_of = pivot_of_group[group]
    has_pivot = pivot_of >= 0
    candidate = has_pivot & (cam_codes == cam_codes[pivot_of]) & (local[pivot_of] >= 0) & (local != local[pivot_of])
    discarded = candidate.copy()
    if p < 1.0:
        idx = np.flatnonzero(candidate)
        discarded[idx] = generator.random(idx.size) < p if p > 0.0 else False
    labels = np.where(discarded, -1, g)
    return RefineResult(
        labels=_frozen(labels),
        discarded=_frozen(discarded),
        pivots=_frozen(chosen),
        scores=_frozen(scores),
        p=p,
    )
