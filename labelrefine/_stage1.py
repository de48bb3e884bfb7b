"""Stage-1 local labels made from the truth: fragmented, impure, noisy, or shaped like a released label file.

The generators of :mod:`labelrefine.synthetic` that work on labels only (identities and cameras
in, per-camera labels out); :mod:`labelrefine.synthetic` re-exports every public name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._validation import (
    as_rng,
    check_cameras,
    check_int,
    check_labels,
    check_probability,
    check_same_length,
)

__all__ = [
    "STAGE1_PROFILES",
    "Stage1Profile",
    "fragment_local_labels",
    "merge_look_alikes",
    "noisy_local_labels",
    "stage1_local_labels",
    "stage1_statistics",
]


def _check_fragments(fragments: Any, cluster_size: Any, fragments_name: str, size_name: str) -> None:
    """Pieces per identity-in-camera: a count >= 1, or a cluster size >= 1 instead (not both)."""
    check_int(fragments, fragments_name, low=1)
    if cluster_size is None:
        return
    if isinstance(cluster_size, bool) or not isinstance(cluster_size, (int, float)) or not cluster_size >= 1:
        raise ValueError(f"{size_name} must be a number >= 1 (images per local cluster), got {cluster_size!r}")
    if fragments != 1:
        raise ValueError(f"give {fragments_name} or {size_name}, not both; got {fragments} and {cluster_size}")


def _check_impurity(impurity: Any, name: str) -> float:
    """A fraction of impure local clusters, in [0, 1)."""
    value = check_probability(impurity, name)
    if value >= 1.0:
        raise ValueError(f"{name} must be below 1 (a fraction of impure local clusters), got {value}")
    return value


def _group_codes(*keys: np.ndarray) -> tuple[np.ndarray, int]:
    """Dense codes 0..G-1 of the distinct rows of ``keys`` (in sorted key order), and G."""
    if keys[0].size == 0:
        return np.zeros(0, dtype=np.int64), 0
    uniques, codes = np.unique(np.stack(keys, axis=1), axis=0, return_inverse=True)
    return codes.reshape(-1).astype(np.int64), int(uniques.shape[0])


def fragment_local_labels(
    pids: np.ndarray,
    cams: np.ndarray,
    *,
    fragments: int = 1,
    cluster_size: float | None = None,
    rng: int | np.random.Generator | None = None,
) -> np.ndarray:
    """Local labels that split each identity-in-camera into several local clusters.

    Stage-1 clusterings cut one person seen by one camera into pieces (the authors' released labels
    split identities into 2-3 local clusters per camera). This is the simplest model of that: the
    images of one identity in one camera are split at random into pieces of near-equal size;
    :func:`stage1_local_labels` reproduces the released shapes. (Within one identity and camera the generated
    features are isotropic noise around one point, so a clustering's cut would be arbitrary too.)

    Parameters
    ----------
    pids, cams : numpy.ndarray of shape (N,)
        True identity and camera of each sample.
    fragments : int, default 1
        Pieces per identity-in-camera; a group of ``n < fragments`` images gets ``n``.
    cluster_size : float, optional
        Instead of ``fragments``: ``ceil(n / cluster_size)`` pieces for a group of ``n`` images.
    rng : int, numpy.random.Generator or None
        Randomness (which images share a piece).

    Returns
    -------
    numpy.ndarray of int64, shape (N,)
        Local ids, unique across cameras; no -1.

    Examples
    --------
    >>> import numpy as np
    >>> fragment_local_labels(np.zeros(4), np.zeros(4), fragments=2).tolist().count(0)
    2
    """
    _check_fragments(fragments, cluster_size, "fragments", "cluster_size")
    generator = as_rng(rng)
    pids, cams = np.asarray(pids), np.asarray(cams)
    group, n_groups = _group_codes(pids, cams)
    sizes = np.bincount(group, minlength=n_groups)
    if cluster_size is None:
        pieces = np.minimum(sizes, fragments)
    else:
        pieces = np.ceil(sizes / cluster_size).astype(np.int64)
    order = np.lexsort((generator.random(group.size), group))
    rank = np.empty(group.size, dtype=np.int64)
    rank[order] = np.arange(group.size) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    piece = rank * pieces[group] // sizes[group]
    first_id = np.cumsum(pieces) - pieces
    return (first_id[group] + piece).astype(np.int64)


def merge_look_alikes(
    local_labels: np.ndarray,
    pids: np.ndarray,
    cams: np.ndarray,
    families: np.ndarray,
    *,
    impurity: float = 0.1,
    rng: int | np.random.Generator | None = None,
) -> np.ndarray:
    """Make a fraction of local clusters impure by merging pairs of look-alikes' clusters.

    Local clusters are paired at random within each (look-alike family, camera), two clusters of
    different identities to a pair, and pairs are merged until a fraction ``impurity`` of the
    resulting local clusters holds two identities (fewer when a camera sees too few look-alikes).

    Parameters
    ----------
    local_labels : numpy.ndarray of shape (N,)
        Pure local labels (each local cluster holds one identity; -1 = not clustered).
    pids, cams, families : numpy.ndarray of shape (N,)
        True identity, camera and look-alike family of each sample.
    impurity : float in [0, 1), default 0.1
        Target fraction of impure local clusters after merging.
    rng : int, numpy.random.Generator or None
        Randomness.

    Returns
    -------
    numpy.ndarray of int64, shape (N,)
        Local labels where merged clusters share the smaller id of the two.

    Examples
    --------
    >>> import numpy as np
    >>> merged = merge_look_alikes([0, 0, 1, 1], [5, 5, 6, 6], [0, 0, 0, 0], [0, 0, 0, 0], impurity=0.99)
    >>> merged.tolist()
    [0, 0, 0, 0]
    """
    impurity = _check_impurity(impurity, "impurity")
    generator = as_rng(rng)
    labels = np.asarray(local_labels, dtype=np.int64)
    pids, cams, families = np.asarray(pids), np.asarray(cams), np.asarray(families)
    clustered = np.flatnonzero(labels >= 0)
    ids, first = np.unique(labels[clustered], return_index=True)
    if impurity == 0.0 or ids.size < 2:
        return labels.copy()
    owner = clustered[first]  # one sample of each local cluster: its identity, camera and family
    # shuffle clusters within each (family, camera) and pair neighbours 0-1, 2-3, ... of that order
    order = np.lexsort((generator.random(ids.size), cams[owner], families[owner]))
    group = _group_codes(families[owner][order], cams[owner][order])[0]
    start = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    position = np.arange(ids.size) - np.repeat(start, np.diff(np.r_[start, ids.size]))
    left = np.flatnonzero((position % 2 == 0) & (np.r_[group[1:], -1] == group))
    left = left[pids[owner][order][left] != pids[owner][order][left + 1]]  # two identities
    n_merges = min(left.size, round(impurity * ids.size / (1 + impurity)))
    left = generator.permutation(left)[:n_merges]
    new_ids = ids.copy()
    new_ids[order[left + 1]] = new_ids[order[left]] = np.minimum(ids[order[left]], ids[order[left + 1]])
    result = labels.copy()
    result[clustered] = new_ids[np.searchsorted(ids, labels[clustered])]
    return result


def noisy_local_labels(
    local_labels: np.ndarray,
    cams: np.ndarray,
    *,
    error_rate: float = 0.05,
    rng: int | np.random.Generator | None = None,
) -> np.ndarray:
    """Local labels with errors, as a good intra-camera model would give.

    A fraction ``error_rate`` of samples is corrupted: half become -1 (not clustered), half take
    the local label of a random sample of the same camera (a wrong merge).

    Examples
    --------
    >>> import numpy as np
    >>> noisy_local_labels(np.array([0, 1, 2, 2]), np.array([0, 1, 0, 0]), error_rate=0.0)
    array([0, 1, 2, 2])
    """
    error_rate = check_probability(error_rate, "error_rate")
    generator = as_rng(rng)
    labels, cams = np.asarray(local_labels, dtype=np.int64), np.asarray(cams)
    corrupt = generator.random(labels.size) < error_rate
    to_outlier = corrupt & (generator.random(labels.size) < 0.5)
    to_merge = np.flatnonzero(corrupt & ~to_outlier)
    # a random sample of the same camera: positions in the camera-sorted order
    by_camera = np.argsort(cams, kind="stable")
    start = np.searchsorted(cams[by_camera], cams[to_merge], side="left")
    stop = np.searchsorted(cams[by_camera], cams[to_merge], side="right")
    donors = by_camera[start + (generator.random(to_merge.size) * (stop - start)).astype(np.int64)]
    result = labels.copy()
    result[to_merge] = labels[donors]
    result[to_outlier] = -1
    return result


# --------------------------------------------------------------------------------------------
# Stage-1 local labels as the CALR authors' stage 1 really produces them
# --------------------------------------------------------------------------------------------


def stage1_statistics(pids: Any, cams: Any, local: Any) -> dict[str, float]:
    """Shape statistics of per-camera local labels, as measured on released stage-1 labels.

    A local cluster is a ``(camera, local label)`` pair, so ``local`` may be unique within each
    camera (as in released files) or across cameras; -1 (not clustered) is left out.

    Parameters
    ----------
    pids, cams : array-like of shape (N,)
        True identity and camera of each sample (any hashable values).
    local : array-like of int, shape (N,)
        Local labels.

    Returns
    -------
    dict of str to float
        ``clusters`` (local clusters), ``clusters_per_camera_min`` / ``_max``,
        ``singleton_cluster_share`` (share of clusters with one image), ``singleton_image_share``
        (share of clustered images alone in their cluster), ``size_median``, ``size_p90``,
        ``size_max`` (cluster sizes), ``impure_share`` (share of clusters holding two or more
        identities), ``pairwise_precision`` (share of same-cluster pairs of one identity; 1.0
        without such pairs), ``splits_mean`` / ``splits_median`` (local clusters per
        identity-in-camera).

    Examples
    --------
    >>> stats = stage1_statistics([1, 1, 2, 2, 2], [0, 0, 0, 0, 1], [0, 0, 0, 1, 0])
    >>> stats["clusters"], stats["singleton_cluster_share"], stats["impure_share"]
    (3.0, 0.6666666666666666, 0.3333333333333333)
    >>> round(stats["pairwise_precision"], 3), stats["splits_mean"]
    (0.333, 1.3333333333333333)
    """
    pid_codes = check_cameras(pids, "pids")
    cam_codes = check_cameras(cams, "cams")
    labels = check_labels(local, "local")
    check_same_length(pids=pid_codes, cams=cam_codes, local=labels)
    keep = labels >= 0
    pid_codes, cam_codes, labels = pid_codes[keep], cam_codes[keep], labels[keep]
    if labels.size == 0:
        raise ValueError("local must hold at least one clustered sample (a label >= 0), got none")
    cluster, n_clusters = _group_codes(cam_codes, labels)
    sizes = np.bincount(cluster, minlength=n_clusters)
    cluster_camera = np.zeros(n_clusters, dtype=np.int64)
    cluster_camera[cluster] = cam_codes
    per_camera = np.bincount(cluster_camera)
    per_camera = per_camera[np.bincount(cam_codes) > 0]
    cluster_pid, n_cluster_pid = _group_codes(cluster, pid_codes)
    pair_sizes = np.bincount(cluster_pid, minlength=n_cluster_pid)
    pair_cluster = np.zeros(n_cluster_pid, dtype=np.int64)
    pair_cluster[cluster_pid] = cluster
    identities = np.bincount(pair_cluster, minlength=n_clusters)
    group, n_groups = _group_codes(pid_codes, cam_codes)
    group_of_pair = np.zeros(n_cluster_pid, dtype=np.int64)
    group_of_pair[cluster_pid] = group
    splits = np.bincount(group_of_pair, minlength=n_groups)
    pairs = float((sizes * (sizes - 1)).sum())
    same = float((pair_sizes * (pair_sizes - 1)).sum())
    singletons = sizes == 1
    return {
        "clusters": float(n_clusters),
        "clusters_per_camera_min": float(per_camera.min()),
        "clusters_per_camera_max": float(per_camera.max()),
        "singleton_cluster_share": float(singletons.mean()),
        "singleton_image_share": float(singletons.sum() / labels.size),
        "size_median": float(np.median(sizes)),
        "size_p90": float(np.percentile(sizes, 90)),
        "size_max": float(sizes.max()),
        "impure_share": float((identities > 1).mean()),
        "pairwise_precision": same / pairs if pairs else 1.0,
        "splits_mean": float(splits.mean()),
        "splits_median": float(np.median(splits)),
    }


@dataclass(frozen=True)
class Stage1Profile:
    """Dataset shape, generator knobs and target statistics of one released stage-1 label file.

    The ``target_*`` numbers and the dataset shape were measured with :func:`stage1_statistics`
    on the CALR authors' released stage-1 local labels; the knobs were fitted so that
    :func:`stage1_local_labels` applied to that file's identities and cameras reproduces them.

    Attributes
    ----------
    name : str
        Profile name.
    n_identities, n_cameras, n_images : int
        Dataset shape (training split).
    cameras_per_identity : tuple of int
        Number of identities seen by ``k`` cameras, for ``k = 0, 1, ...``.
    camera_weights : tuple of int
        Number of identities each camera sees.
    group_sizes : tuple of (int, int)
        ``(n, count)``: how many identity-in-camera groups hold ``n`` images.
    images_per_cluster : float
        Images per local cluster of the file (N / clusters). Data of another size gets
        ``round(N / (n_cameras * images_per_cluster))`` clusters per camera, so the released
        files get their 600.
    outlier_rate : float
        Share of images whose neighbours in the stage-1 order are weakly linked to them
        (most become singletons).
    outlier_weight, identity_weight, family_weight : float
        Log-odds of cutting the order next to an outlier, between two identities of a
        look-alike family, and between two families (0 = inside one identity's run).
    family_size : int
        Identities per look-alike family in a camera when no families are given.
    stray_rate : float
        Share of images (never the last of their cluster) that leave their cluster for the
        cluster of the next sink image in their camera's order (a look-alike's).
    sink_rate : float
        Share of images that are sinks (collect strays: few sinks make junk clusters holding
        many identities).
    target_singleton_cluster_share, target_singleton_image_share, target_size_median, \
target_size_p90, target_size_max, target_impure_share, target_pairwise_precision, \
target_splits_mean, target_splits_median : float
        The file's :func:`stage1_statistics`.
    """

    name: str
    n_identities: int
    n_cameras: int
    n_images: int
    cameras_per_identity: tuple[int, ...]
    camera_weights: tuple[int, ...]
    group_sizes: tuple[tuple[int, int], ...]
    images_per_cluster: float
    outlier_rate: float
    outlier_weight: float
    identity_weight: float
    family_weight: float
    family_size: int
    stray_rate: float
    sink_rate: float
    target_singleton_cluster_share: float
    target_singleton_image_share: float
    target_size_median: float
    target_size_p90: float
    target_size_max: float
    target_impure_share: float
    target_pairwise_precision: float
    target_splits_mean: float
    target_splits_median: float

    def targets(self) -> dict[str, float]:
        """The target statistics, keyed as :func:`stage1_statistics` names them."""
        prefix = "target_"
        return {key[len(prefix) :]: float(value) for key, value in vars(self).items() if key.startswith(prefix)}


def _stage1_profile(profile: Any) -> Stage1Profile:
    """A profile given by name (a key of :data:`STAGE1_PROFILES`) or as a :class:`Stage1Profile`."""
    if isinstance(profile, Stage1Profile):
        return profile
    if isinstance(profile, str) and profile in STAGE1_PROFILES:
        return STAGE1_PROFILES[profile]
    names = ", ".join(map(repr, STAGE1_PROFILES))
    raise ValueError(f"profile must be one of {names} or a Stage1Profile, got {profile!r}")


def _rank_within(keys: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Position of each element inside its run of equal ``keys`` along ``order`` (``keys[order]`` sorted)."""
    sorted_keys = keys[order]
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size) - np.searchsorted(sorted_keys, sorted_keys, side="left")
    return rank


def _look_alike_order(
    pid_codes: np.ndarray,
    cam_codes: np.ndarray,
    family_codes: np.ndarray | None,
    prof: Stage1Profile,
    generator: np.random.Generator,
) -> tuple[np.ndarray, ...]:
    """Step 1: a camera-major order of the images, identities in a random order with look-alikes adjacent.

    Returns (order, group, group_family, outlier): the images in order, each image's
    identity-in-camera group and the group's family, and the outlier images (drawn here to keep
    the order of the draws).
    """
    n = pid_codes.size
    group, n_groups = _group_codes(pid_codes, cam_codes)
    group_cam = np.zeros(n_groups, dtype=np.int64)
    group_cam[group] = cam_codes
    group_key = generator.random(n_groups)
    if family_codes is None:
        by_camera = np.lexsort((group_key, group_cam))
        group_family = _rank_within(group_cam, by_camera) // prof.family_size
        family_key = group_family.astype(np.float64)
    else:
        group_family = np.zeros(n_groups, dtype=np.int64)
        group_family[group] = family_codes
        family_key = generator.random(int(family_codes.max()) + 1)[group_family]
    group_order = np.lexsort((group_key, family_key, group_cam))
    group_rank = np.empty(n_groups, dtype=np.int64)
    group_rank[group_order] = np.arange(n_groups)
    outlier = generator.random(n) < prof.outlier_rate
    order = np.lexsort((generator.random(n), group_rank[group]))  # camera-major, as the groups
    return order, group, group_family, outlier


def _cut_order(
    order: np.ndarray,
    group: np.ndarray,
    group_family: np.ndarray,
    outlier: np.ndarray,
    cam_codes: np.ndarray,
    n_cams: int,
    clusters: int,
    prof: Stage1Profile,
    generator: np.random.Generator,
) -> np.ndarray:
    """Step 2: cut each camera's order into exactly min(clusters, images) pieces; their labels."""
    n = order.size
    g, cam, out = group[order], cam_codes[order], outlier[order]
    fam = group_family[g]
    same_camera = cam[1:] == cam[:-1]
    weight = np.where(g[1:] == g[:-1], 0.0, np.where(fam[1:] == fam[:-1], prof.identity_weight, prof.family_weight))
    weight = np.where(out[1:] | out[:-1], np.maximum(weight, prof.outlier_weight), weight)
    key = np.where(same_camera, weight + generator.gumbel(size=weight.size), -np.inf)
    gap_camera = cam[:-1]
    by_key = np.lexsort((-key, gap_camera))
    n_cuts = np.minimum(clusters, np.bincount(cam_codes, minlength=n_cams)) - 1
    cut = ~same_camera | (_rank_within(gap_camera, by_key) < n_cuts[gap_camera])
    labels = np.empty(n, dtype=np.int64)
    labels[order] = np.r_[0, np.cumsum(cut)]
    return labels


def _move_strays(
    labels: np.ndarray,
    order: np.ndarray,
    cam: np.ndarray,
    n_cams: int,
    prof: Stage1Profile,
    generator: np.random.Generator,
) -> np.ndarray:
    """Step 3: strays join the cluster of the next sink image of their camera's order (a look-alike's).

    ``cam`` is the camera of each position of ``order``. The last image of a cluster stays, so
    the count stays exact.
    """
    n = labels.size
    by_cluster = np.lexsort((generator.random(n), labels))
    may_stray = _rank_within(labels, by_cluster) > 0
    draw = generator.random(n)
    stray = may_stray[order] & (draw[order] < prof.stray_rate)
    sink = np.flatnonzero(~stray & (draw[order] >= 1.0 - prof.sink_rate))  # positions in the order
    strays = np.flatnonzero(stray)
    camera_sinks = np.bincount(cam[sink], minlength=n_cams)
    strays = strays[camera_sinks[cam[strays]] > 0]
    following = np.searchsorted(sink, strays)
    first_of_camera = np.searchsorted(cam[sink], cam[strays])
    wrap = (following == sink.size) | (cam[sink[np.minimum(following, sink.size - 1)]] != cam[strays])
    donors = sink[np.where(wrap, first_of_camera, following)]
    result = labels.copy()
    result[order[strays]] = labels[order[donors]]
    return result


def stage1_local_labels(
    pids: Any,
    cams: Any,
    *,
    profile: str | Stage1Profile = "market",
    families: Any = None,
    clusters_per_camera: int | None = None,
    rng: int | np.random.Generator | None = None,
) -> np.ndarray:
    """Per-camera local labels shaped like those a real CALR stage 1 produces.

    The CALR authors' released stage-1 labels are not clean fragments of identities: every
    camera has the same number of local clusters (600), over half of them singletons, a median
    cluster of one image with a long tail to about 30, identities split into two or three local
    clusters per camera, and 15-29 % of clusters holding two or more identities. This draws
    labels with those statistics (a profile's ``target_*``) from the truth, per camera:

    1. the camera's identities are put in a random order in which look-alikes are adjacent
       (same family when ``families`` is given, otherwise random families of
       ``profile.family_size`` identities of the camera), each identity's images one run;
    2. the order is cut into exactly ``clusters_per_camera`` pieces, choosing the cuts at random
       without replacement with odds ``exp(weight)``: weight 0 inside an identity's run,
       ``identity_weight`` between two look-alikes, ``family_weight`` between families and
       ``outlier_weight`` next to an outlier image (a share ``outlier_rate`` of the images).
       Small cameras must cut almost everywhere (many singletons); large ones cut only the
       likeliest places (larger, impure clusters), as in the released files;
    3. a share ``stray_rate`` of the images, never the last one of their cluster, join the
       cluster of a random look-alike image of their camera (so the count stays exact).

    Parameters
    ----------
    pids, cams : array-like of shape (N,)
        True identity and camera of each sample (any hashable values; not modified).
    profile : {"market", "duke"} or Stage1Profile, default "market"
        Knobs of the released file to imitate, see :data:`STAGE1_PROFILES`.
    families : array-like of shape (N,), optional
        Look-alike family of each sample's identity (e.g. ``SyntheticReID.families``):
        impurities merge identities of one family first.
    clusters_per_camera : int, optional
        Local clusters per camera (a camera with fewer images gets one per image). Default:
        ``round(N / (n_cameras * profile.images_per_cluster))``, which is 600 on the released
        files' own identities and cameras and scales with the data's size otherwise.
    rng : int, numpy.random.Generator or None
        Randomness.

    Returns
    -------
    numpy.ndarray of int64, shape (N,)
        Local ids 0..L-1, unique across cameras; no -1.

    Raises
    ------
    ValueError
        Unknown profile, arrays of different lengths, ``clusters_per_camera`` below 1.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> pids, cams = rng.integers(0, 40, 500), rng.integers(0, 2, 500)
    >>> local = stage1_local_labels(pids, cams, profile="duke", clusters_per_camera=60, rng=1)
    >>> stage1_statistics(pids, cams, local)["clusters_per_camera_max"]
    60.0
    """
    prof = _stage1_profile(profile)
    pid_codes = check_cameras(pids, "pids")
    cam_codes = check_cameras(cams, "cams")
    if families is None:
        check_same_length(pids=pid_codes, cams=cam_codes)
        family_codes = None
    else:
        family_codes = check_cameras(families, "families")
        check_same_length(pids=pid_codes, cams=cam_codes, families=family_codes)
    generator = as_rng(rng)
    n = pid_codes.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    n_cams = int(cam_codes.max()) + 1
    if clusters_per_camera is None:
        clusters = max(1, round(n / (n_cams * prof.images_per_cluster)))
    else:
        clusters = check_int(clusters_per_camera, "clusters_per_camera", low=1)
    order, group, group_family, outlier = _look_alike_order(pid_codes, cam_codes, family_codes, prof, generator)
    labels = _cut_order(order, group, group_family, outlier, cam_codes, n_cams, clusters, prof, generator)
    return _move_strays(labels, order, cam_codes[order], n_cams, prof, generator)


# Dataset shapes and target statistics measured on the authors' released stage-1 labels of
# Market-1501 / DukeMTMC-reID (github:leeBooMla/CALR, "local results/<dataset>/cam<k>/
# pseudo_label.npy", MIT licence) with stage1_statistics; the knobs were fitted to reproduce
# the targets from each file's own identities and cameras.
STAGE1_PROFILES: dict[str, Stage1Profile] = {
    "market": Stage1Profile(
        name="market",
        n_identities=751,
        n_cameras=6,
        n_images=12936,
        cameras_per_identity=(0, 0, 50, 105, 214, 301, 81),
        camera_weights=(652, 541, 694, 241, 576, 558),
        group_sizes=(
            (1, 411),
            (2, 736),
            (3, 640),
            (4, 496),
            (5, 350),
            (6, 218),
            (7, 130),
            (8, 62),
            (9, 67),
            (10, 36),
            (11, 26),
            (12, 24),
            (13, 18),
            (14, 10),
            (15, 5),
            (16, 5),
            (17, 7),
            (18, 5),
            (19, 1),
            (20, 2),
            (21, 1),
            (22, 1),
            (23, 1),
            (24, 4),
            (25, 2),
            (28, 1),
            (30, 1),
            (37, 1),
            (44, 1),
        ),
        images_per_cluster=12936 / 3600,
        outlier_rate=0.126,
        outlier_weight=8.953,
        identity_weight=5.0,
        family_weight=2.083,
        family_size=11,
        stray_rate=0.301,
        sink_rate=0.061,
        target_singleton_cluster_share=0.587,
        target_singleton_image_share=0.163,
        target_size_median=1.0,
        target_size_p90=9.0,
        target_size_max=34.0,
        target_impure_share=0.295,
        target_pairwise_precision=0.357,
        target_splits_mean=2.17,
        target_splits_median=2.0,
    ),
    "duke": Stage1Profile(
        name="duke",
        n_identities=702,
        n_cameras=8,
        n_images=16522,
        cameras_per_identity=(0, 0, 192, 242, 255, 12, 1),
        camera_weights=(404, 378, 201, 165, 218, 348, 217, 265),
        group_sizes=(
            (2, 51),
            (3, 44),
            (4, 127),
            (5, 360),
            (6, 457),
            (7, 519),
            (8, 343),
            (9, 141),
            (10, 43),
            (11, 19),
            (12, 15),
            (13, 14),
            (14, 4),
            (15, 6),
            (16, 5),
            (18, 2),
            (19, 1),
            (20, 6),
            (21, 2),
            (22, 6),
            (23, 1),
            (24, 2),
            (27, 1),
            (30, 1),
            (31, 1),
            (32, 1),
            (36, 3),
            (38, 2),
            (39, 1),
            (41, 1),
            (42, 2),
            (44, 1),
            (47, 1),
            (52, 1),
            (58, 1),
            (59, 1),
            (64, 2),
            (68, 2),
            (76, 1),
            (80, 1),
            (117, 1),
            (140, 1),
            (227, 1),
            (313, 1),
        ),
        images_per_cluster=16522 / 4800,
        outlier_rate=0.203,
        outlier_weight=6.95,
        identity_weight=3.26,
        family_weight=9.08,
        family_size=6,
        stray_rate=0.019,
        sink_rate=0.02,
        target_singleton_cluster_share=0.539,
        target_singleton_image_share=0.157,
        target_size_median=1.0,
        target_size_p90=8.0,
        target_size_max=29.0,
        target_impure_share=0.154,
        target_pairwise_precision=0.718,
        target_splits_mean=3.05,
        target_splits_median=2.0,
    ),
}
"""The built-in stage-1 profiles, ``"market"`` and ``"duke"``, measured on the authors' released labels."""
