"""Cross-camera agreement: how well each image matches its global cluster as the *other* cameras see it.

Camera bias adds to every image of a camera roughly the same offset, so it pulls look-alikes of one
camera into one global cluster. Two things undo most of it without any training:

1. *Camera-centred features*: each unit-length feature minus the mean of its camera's unit-length
   features, back to unit length. A shared offset cancels.
2. *Evidence from other cameras only*: image i of camera c in cluster G is compared with the sum of
   G's members seen by the other cameras. Members of camera c are left out, so the look-alikes that
   camera c's bias put next to i vouch for nothing.

The majority identity of G dominates that other-camera centroid, so its images agree with it more
than an intruder's do; the ``"cross-camera"`` rule of :func:`labelrefine.refine` discards the local
clusters whose agreement falls far below the cluster's own level.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp

from ._arrays import dense_codes, unique_sorted
from ._validation import check_cameras, check_features, check_labels, check_same_length

__all__ = ["DEFAULT_MAX_DEVIATION", "MEMBER_DEVIATION", "REFERENCE_QUANTILE", "agreement_outliers", "camera_agreement"]

# The cluster's own level of agreement: this quantile of its members' agreement. Above the median, so
# that a cluster whose majority identity holds fewer than half of the images still has its level set by it.
REFERENCE_QUANTILE = 0.75
"""Quantile of a global cluster's agreement values that sets the cluster's own level."""
# The smallest threshold at which the rule holds the bar (discard precision >= 0.85, precision gain
# >= +0.04, recall change >= -0.04) on both released stage-1 label sets at both camera strengths in
# benchmarks/refine_quality.py; 4.5 cuts too much recall on Market (-0.042 / -0.044), 3.0 more still.
DEFAULT_MAX_DEVIATION = 5.0
"""Default threshold of the ``"cross-camera"`` rule, in robust standard deviations."""
# An image of an outlier fragment that agrees on its own within this many robust SDs of the level is
# a member that its local cluster mixed with intruders: kept. In benchmarks/refine_quality.py this
# leaves the impurities removed unchanged and raises discard precision (0.86 -> 0.93 on impure fragments).
MEMBER_DEVIATION = 2.0
"""An image of an outlier fragment is kept when its own deviation is above ``-MEMBER_DEVIATION`` robust SDs."""
# Median absolute deviation to standard deviation, for normally distributed deviations.
_MAD_TO_SD = 1.4826
# Floor of that standard deviation: cosine differences below it are float rounding, not evidence.
MIN_SIGMA = 1e-6

# Norm below which an other-camera sum counts as cancelled out (agreement 0): unit vectors that sum to
# less than this point nowhere, and dividing by the norm would only amplify rounding.
_CANCELLED = 1e-9
# Rows per block of the per-image pass: bounds the temporaries to a few (block, D) arrays.
_BLOCK = 1 << 15


def _sum_by(codes: np.ndarray, n_codes: int, x: np.ndarray) -> np.ndarray:
    """Sums of the rows of ``x`` per code, shape (n_codes, D), in x's dtype: one sparse 0/1 product.

    The indicator takes x's dtype, so float32 features are never copied to float64 (for summing unit
    vectors float32 is ample); the product is ~10x faster here than ``np.add.reduceat``.
    """
    n = codes.shape[0]
    indicator = sp.csr_matrix((np.ones(n, dtype=x.dtype), (codes, np.arange(n))), shape=(n_codes, n))
    return np.asarray(indicator @ x)


def _camera_centred(x: np.ndarray, cam_codes: np.ndarray, n_cams: int) -> np.ndarray:
    """Unit rows minus their camera's mean unit row, back to unit length (zero rows stay zero); x's dtype."""
    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), np.finfo(x.dtype).tiny)
    means = _sum_by(cam_codes, n_cams, unit) / np.maximum(np.bincount(cam_codes, minlength=n_cams), 1)[:, None]
    unit -= means[cam_codes].astype(x.dtype)
    norms = np.linalg.norm(unit, axis=1, keepdims=True)
    return np.divide(unit, norms, out=unit, where=norms > 0)


class _Layout(NamedTuple):
    """The clustered images, their camera-centred features and dense cluster and (cluster, camera) codes."""

    rows: np.ndarray  # indices of the clustered images
    z: np.ndarray  # camera-centred features of those rows
    cluster: np.ndarray  # dense cluster code of each row
    group: np.ndarray  # dense (cluster, camera) code of each row
    group_cluster: np.ndarray  # cluster code of each group
    others: np.ndarray  # members of the row's cluster seen by other cameras


def _layout(g: np.ndarray, cam_codes: np.ndarray, x: np.ndarray) -> _Layout:
    rows = np.flatnonzero(g >= 0)
    n_cams = int(cam_codes.max(initial=0)) + 1
    cluster = dense_codes(g[rows])
    group_keys = unique_sorted(cluster * n_cams + cam_codes[rows])
    group = np.searchsorted(group_keys, cluster * n_cams + cam_codes[rows])
    z = _camera_centred(x, cam_codes, n_cams)[rows]
    others = np.bincount(cluster)[cluster] - np.bincount(group)[group] if rows.size else cluster
    return _Layout(rows, z, cluster, group, group_keys // n_cams, others)


def _agreement(layout: _Layout, n: int, counted: np.ndarray | None = None) -> np.ndarray:
    """:func:`camera_agreement` from a layout; only ``counted`` rows (all when None) enter the sums."""
    agreement = np.full(n, np.nan)
    if layout.rows.size == 0:
        return agreement
    kept = slice(None) if counted is None else counted[layout.rows]
    group_sums = _sum_by(layout.group[kept], layout.group_cluster.size, layout.z[kept])
    cluster_sums = _sum_by(layout.group_cluster, int(layout.cluster.max()) + 1, group_sums)
    for start in range(0, layout.rows.size, _BLOCK):
        block = slice(start, start + _BLOCK)
        other = cluster_sums[layout.cluster[block]] - group_sums[layout.group[block]]
        norm = np.linalg.norm(other, axis=1)
        dots = np.einsum("ij,ij->i", layout.z[block], other)
        cosine = np.where(norm > _CANCELLED, dots / np.maximum(norm, _CANCELLED), 0.0)
        agreement[layout.rows[block]] = np.where(layout.others[block] > 0, cosine, np.nan)
    return agreement


def camera_agreement(global_labels: Any, cams: Any, feats: Any) -> np.ndarray:
    """Cosine between each image and its cluster's members from the other cameras, camera bias removed.

    ``agreement(i) = cos(z_i, sum of z_j over j in G(i) with cam(j) != cam(i))``, where ``z`` are the
    camera-centred features: each L2-normalised feature minus the mean normalised feature of its
    camera, L2-normalised again (not in place). Cost O(N D) time; memory one copy of the features
    plus a sum per (cluster, camera) group.

    Parameters
    ----------
    global_labels : array-like of int, shape (N,)
        Global cluster ids; -1 = outlier.
    cams : array-like of shape (N,)
        Camera of each sample (any hashable ids).
    feats : array-like of float, shape (N, D)
        Features, any scale.

    Returns
    -------
    numpy.ndarray of float64, shape (N,)
        Agreement in [-1, 1]; NaN for global outliers and for the members of clusters that a single
        camera sees (there is no other camera to ask).

    Examples
    --------
    Person ``a`` seen by both cameras, with look-alike ``b`` merged into the cluster in camera 0:

    >>> import numpy as np
    >>> a, b, c = np.eye(3)
    >>> feats = np.array([a, a, b, c, a, a, c])
    >>> camera_agreement([0, 0, 0, 1, 0, 0, 1], [0, 0, 0, 0, 1, 1, 1], feats).round(2)
    array([ 0.87,  0.87, -0.19,  0.94,  1.  ,  1.  ,  0.94])
    """
    g = check_labels(global_labels, "global_labels")
    cam_codes = check_cameras(cams, "cams")
    n = check_same_length(global_labels=g, cams=cam_codes)
    return _agreement(_layout(g, cam_codes, check_features(feats, "feats", n=n)), n)


def agreement_outliers(
    agreement: np.ndarray, cluster: np.ndarray, fragment: np.ndarray, max_deviation: float
) -> np.ndarray:
    """Images whose local cluster agrees with its global cluster far less than the cluster's members do.

    ``deviation(i) = agreement(i) - level(G(i))`` with ``level(G)`` the :data:`REFERENCE_QUANTILE` of the
    agreement of G's members; ``sigma = max(1.4826 * median |deviation|, 1e-6)`` over all images (a
    robust standard deviation; the floor keeps float rounding from counting as evidence). A
    fragment (all images sharing a global cluster, a camera and a local cluster) is an outlier when
    its mean deviation is below ``-max_deviation * sigma``; its images are outliers except those
    whose own deviation is at least ``-MEMBER_DEVIATION * sigma`` (members that an impure local
    cluster mixed with intruders).

    Parameters
    ----------
    agreement : numpy.ndarray of float, shape (N,)
        From :func:`camera_agreement`; NaN = no evidence (never an outlier).
    cluster, fragment : numpy.ndarray of int, shape (N,)
        Dense codes ``0..`` of each image's global cluster and fragment (any value where agreement
        is NaN).
    max_deviation : float
        Threshold in robust standard deviations.

    Returns
    -------
    numpy.ndarray of bool, shape (N,)
    """
    outlier = np.zeros(agreement.shape[0], dtype=bool)
    rows = np.flatnonzero(~np.isnan(agreement))
    if rows.size == 0:
        return outlier
    values, clusters = agreement[rows], cluster[rows]
    order = np.lexsort((values, clusters))
    sorted_clusters = clusters[order]
    start = np.flatnonzero(np.r_[True, sorted_clusters[1:] != sorted_clusters[:-1]])
    size = np.diff(np.r_[start, rows.size])
    level = np.empty(int(clusters.max()) + 1)
    level[sorted_clusters[start]] = values[order][start + np.floor(REFERENCE_QUANTILE * (size - 1)).astype(np.int64)]
    deviation = values - level[clusters]
    sigma = max(_MAD_TO_SD * float(np.median(np.abs(deviation))), MIN_SIGMA)
    codes = dense_codes(fragment[rows])
    mean = np.bincount(codes, weights=deviation) / np.bincount(codes)
    outlier[rows] = (mean[codes] < -max_deviation * sigma) & (deviation < -MEMBER_DEVIATION * sigma)
    return outlier


def cross_camera_outliers(
    g: np.ndarray, cam_codes: np.ndarray, x: np.ndarray, fragment: np.ndarray, max_deviation: float
) -> tuple[np.ndarray, np.ndarray]:
    """(images with evidence, images of outlier fragments) of the ``"cross-camera"`` rule, on checked arrays.

    Two passes: the outliers of the first leave the other-camera sums of the second, so that an
    intruder of one camera does not lower the agreement of the true members of the others.
    """
    layout = _layout(g, cam_codes, x)
    cluster = np.full(g.shape[0], -1)
    cluster[layout.rows] = layout.cluster
    first = agreement_outliers(_agreement(layout, g.shape[0]), cluster, fragment, max_deviation)
    agreement = _agreement(layout, g.shape[0], counted=~first)
    return ~np.isnan(agreement), agreement_outliers(agreement, cluster, fragment, max_deviation)
