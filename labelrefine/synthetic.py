"""Camera-biased synthetic Re-ID features with ground truth, for tests, benchmarks and the demo.

Each identity has a unit-norm appearance vector; identities come in families of look-alikes
(people in similar clothes) that share most of their vector. Every camera adds its own offset,
so after L2 normalisation the images of one camera are pulled together: clustering all cameras
at once merges look-alikes seen by the same camera and splits identities by camera, as in the
paper's Fig. 1, while the order of distances *within* a camera still follows identity, so
per-camera clustering separates look-alikes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._validation import as_rng, check_int, check_probability

__all__ = ["SyntheticReID", "fragment_local_labels", "make_camera_biased", "merge_look_alikes", "noisy_local_labels"]


@dataclass(frozen=True)
class SyntheticReID:
    """A synthetic camera-biased set (index-aligned arrays of length N).

    Attributes
    ----------
    feats : numpy.ndarray of float32, shape (N, dim)
        L2-normalised features.
    pids : numpy.ndarray of int64
        True identity of each sample.
    cams : numpy.ndarray of int64
        Camera of each sample.
    local_labels : numpy.ndarray of int64
        Per-camera labels made from the truth: fragmented (:func:`fragment_local_labels`),
        impure (:func:`merge_look_alikes`), then noisy (:func:`noisy_local_labels`).
    families : numpy.ndarray of int64
        Look-alike family of each sample's identity (identities of one family share most of
        their appearance).
    """

    feats: np.ndarray
    pids: np.ndarray
    cams: np.ndarray
    local_labels: np.ndarray
    families: np.ndarray

    def __len__(self) -> int:
        return int(self.pids.shape[0])


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def make_camera_biased(
    n_ids: int = 200,
    n_cams: int = 6,
    *,
    dim: int = 32,
    images_per_camera: tuple[int, int] = (3, 7),
    family_size: int = 3,
    family_spread: float = 1.0,
    camera_strength: float = 0.6,
    noise: float = 0.25,
    local_fragments: int = 1,
    local_cluster_size: float | None = None,
    local_impurity: float = 0.0,
    local_noise: float = 0.05,
    rng: int | np.random.Generator | None = 0,
) -> SyntheticReID:
    """Generate camera-biased features with ground-truth identities, cameras and local labels.

    Parameters
    ----------
    n_ids : int, default 200
        Number of identities.
    n_cams : int, default 6
        Number of cameras; each identity is seen by a random subset of 2 to ``n_cams`` of them.
    dim : int, default 32
        Feature dimension.
    images_per_camera : (int, int), default (3, 7)
        Inclusive range of images of one identity in one camera that sees it.
    family_size : int, default 3
        Identities per look-alike family.
    family_spread : float, default 1.0
        How far identities of one family are from their family's centre (0 = identical).
    camera_strength : float, default 0.6
        Norm of each camera's offset, relative to the unit-norm appearance vectors: the camera
        bias. Around 0.6 and above, clustering all cameras together merges look-alikes seen by
        one camera.
    noise : float, default 0.25
        Standard deviation of the per-image noise (over all dimensions together).
    local_fragments : int, default 1
        Local clusters per identity-in-camera (at most one per image), see
        :func:`fragment_local_labels`. 1 = one local cluster per identity-in-camera.
    local_cluster_size : float, optional
        Instead of ``local_fragments``: split each identity-in-camera of ``n`` images into
        ``ceil(n / local_cluster_size)`` local clusters. ``local_cluster_size=5`` with a few
        dozen images per identity-in-camera mimics the paper's stage 1 (agglomerative
        clustering with ``n_images / 5`` clusters per camera, which yields local clusters of 2 to
        6 images, so one person in one camera spans several of them).
    local_impurity : float in [0, 1), default 0.0
        Fraction of the local clusters that hold two look-alike identities of the same camera,
        see :func:`merge_look_alikes`.
    local_noise : float in [0, 1], default 0.05
        Error rate of the local labels, see :func:`noisy_local_labels`.
    rng : int, numpy.random.Generator or None, default 0
        Randomness.

    Returns
    -------
    SyntheticReID

    Examples
    --------
    >>> data = make_camera_biased(n_ids=10, n_cams=3, rng=1)
    >>> data.feats.shape[1], int(data.pids.max()) + 1, sorted(set(data.cams.tolist()))
    (32, 10, [0, 1, 2])
    """
    n_ids = check_int(n_ids, "n_ids", low=1)
    n_cams = check_int(n_cams, "n_cams", low=2)
    dim = check_int(dim, "dim", low=2)
    family_size = check_int(family_size, "family_size", low=1)
    if not isinstance(images_per_camera, (tuple, list)) or len(images_per_camera) != 2:
        raise TypeError(f"images_per_camera must be a pair (low, high) of integers, got {images_per_camera!r}")
    low, high = (check_int(v, "images_per_camera", low=1) for v in images_per_camera)
    if low > high:
        raise ValueError(f"images_per_camera must be (low, high) with low <= high, got {images_per_camera}")
    for name, value in (("family_spread", family_spread), ("camera_strength", camera_strength), ("noise", noise)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or value == float("inf"):
            raise ValueError(f"{name} must be a finite non-negative number, got {value!r}")
    _check_fragments(local_fragments, local_cluster_size, "local_fragments", "local_cluster_size")
    _check_impurity(local_impurity, "local_impurity")
    check_probability(local_noise, "local_noise")
    generator = as_rng(rng)

    families = _normalise(generator.normal(size=(-(-n_ids // family_size), dim)))
    own = _normalise(generator.normal(size=(n_ids, dim)))
    family_of = np.arange(n_ids) // family_size
    appearance = _normalise(families[family_of] + family_spread * own)
    cam_offsets = camera_strength * _normalise(generator.normal(size=(n_cams, dim)))

    n_seen = generator.integers(2, n_cams + 1, size=n_ids)
    seen = np.argsort(generator.random((n_ids, n_cams)), axis=1).argsort(axis=1) < n_seen[:, None]
    counts = generator.integers(low, high + 1, size=(n_ids, n_cams)) * seen
    pid_grid, cam_grid = np.meshgrid(np.arange(n_ids), np.arange(n_cams), indexing="ij")
    pids = np.repeat(pid_grid.ravel(), counts.ravel())
    cams = np.repeat(cam_grid.ravel(), counts.ravel())

    raw = appearance[pids] + cam_offsets[cams] + noise / np.sqrt(dim) * generator.normal(size=(pids.size, dim))
    feats = _normalise(raw).astype(np.float32)
    local = fragment_local_labels(pids, cams, fragments=local_fragments, cluster_size=local_cluster_size, rng=generator)
    local = merge_look_alikes(local, pids, cams, family_of[pids], impurity=local_impurity, rng=generator)
    local = noisy_local_labels(local, cams, error_rate=local_noise, rng=generator)
    return SyntheticReID(
        feats=feats,
        pids=pids.astype(np.int64),
        cams=cams.astype(np.int64),
        local_labels=local,
        families=family_of[pids].astype(np.int64),
    )


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

    Stage-1 clusterings cut one person seen by one camera into pieces: agglomerative clustering
    with ``n_images / 5`` clusters per camera (the paper's setting) gives local clusters of 2 to 6
    images. This reproduces that from the truth: the images of one identity in one camera are split
    at random into pieces of near-equal size. (Within one identity and camera the generated
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
