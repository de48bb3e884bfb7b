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

from ._stage1 import (
    STAGE1_PROFILES,
    Stage1Profile,
    _check_fragments,
    _check_impurity,
    _group_codes,
    _stage1_profile,
    fragment_local_labels,
    merge_look_alikes,
    noisy_local_labels,
    stage1_local_labels,
    stage1_statistics,
)
from ._validation import (
    as_rng,
    check_cameras,
    check_int,
    check_probability,
    check_real,
    check_same_length,
)

__all__ = [
    "STAGE1_PROFILES",
    "Stage1Profile",
    "SyntheticReID",
    "fragment_local_labels",
    "make_camera_biased",
    "make_stage1_like",
    "merge_look_alikes",
    "noisy_local_labels",
    "simulate_features",
    "stage1_local_labels",
    "stage1_statistics",
]


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


def _check_feature_knobs(**knobs: Any) -> None:
    """Finite non-negative real knobs of the feature model."""
    for name, value in knobs.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or value == float("inf"):
            raise ValueError(f"{name} must be a finite non-negative number, got {value!r}")


def _appearance_model(
    n_ids: int,
    n_cams: int,
    dim: int,
    family_size: int,
    family_spread: float,
    camera_strength: float,
    generator: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Unit identity centres in look-alike families (identity ``i`` in family ``i // family_size``), camera offsets."""
    families = _normalise(generator.normal(size=(-(-n_ids // family_size), dim)))
    own = _normalise(generator.normal(size=(n_ids, dim)))
    family_of = np.arange(n_ids) // family_size
    appearance = _normalise(families[family_of] + family_spread * own)
    cam_offsets = camera_strength * _normalise(generator.normal(size=(n_cams, dim)))
    return appearance, cam_offsets


def _draw_features(
    appearance: np.ndarray,
    cam_offsets: np.ndarray,
    pids: np.ndarray,
    cams: np.ndarray,
    view_shift: float,
    noise: float,
    generator: np.random.Generator,
) -> np.ndarray:
    """L2-normalised float32 features: centre + camera offset + (identity, camera) view shift + image noise.

    ``pids``, ``cams`` are codes 0..I-1, 0..C-1. A zero ``view_shift`` draws no random numbers.
    """
    dim = appearance.shape[1]
    raw = appearance[pids] + cam_offsets[cams]
    if view_shift > 0:
        group, n_groups = _group_codes(pids, cams)
        raw = raw + (view_shift / np.sqrt(dim) * generator.normal(size=(n_groups, dim)))[group]
    raw = raw + noise / np.sqrt(dim) * generator.normal(size=(pids.size, dim))
    return _normalise(raw).astype(np.float32)


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
    view_shift: float = 0.0,
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
    view_shift : float, default 0.0
        Norm (about) of a per-(identity, camera) Gaussian shift: how one person looks in one
        camera, see :func:`simulate_features`. 0 draws nothing, so outputs for a seed are those
        of earlier versions.
    local_fragments : int, default 1
        Local clusters per identity-in-camera (at most one per image), see
        :func:`fragment_local_labels`. 1 = one local cluster per identity-in-camera.
    local_cluster_size : float, optional
        Instead of ``local_fragments``: split each identity-in-camera of ``n`` images into
        ``ceil(n / local_cluster_size)`` local clusters of near-equal size (the paper's setting is
        ``n_images / 5`` clusters per camera, Sec. IV-A; it says nothing of their sizes). For
        local labels shaped like the authors' released ones (singletons, a long tail, impure
        clusters) use :func:`make_stage1_like` or :func:`stage1_local_labels`.
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
    _check_feature_knobs(
        family_spread=family_spread, camera_strength=camera_strength, noise=noise, view_shift=view_shift
    )
    _check_fragments(local_fragments, local_cluster_size, "local_fragments", "local_cluster_size")
    _check_impurity(local_impurity, "local_impurity")
    check_probability(local_noise, "local_noise")
    generator = as_rng(rng)

    appearance, cam_offsets = _appearance_model(
        n_ids, n_cams, dim, family_size, family_spread, camera_strength, generator
    )
    family_of = np.arange(n_ids) // family_size

    n_seen = generator.integers(2, n_cams + 1, size=n_ids)
    seen = np.argsort(generator.random((n_ids, n_cams)), axis=1).argsort(axis=1) < n_seen[:, None]
    counts = generator.integers(low, high + 1, size=(n_ids, n_cams)) * seen
    pid_grid, cam_grid = np.meshgrid(np.arange(n_ids), np.arange(n_cams), indexing="ij")
    pids = np.repeat(pid_grid.ravel(), counts.ravel())
    cams = np.repeat(cam_grid.ravel(), counts.ravel())

    feats = _draw_features(appearance, cam_offsets, pids, cams, view_shift, noise, generator)
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


def simulate_features(
    pids: Any,
    cams: Any,
    *,
    camera_strength: float = 0.6,
    dim: int = 32,
    view_shift: float = 0.3,
    noise: float = 0.25,
    family_size: int = 3,
    family_spread: float = 1.0,
    rng: int | np.random.Generator | None = None,
) -> np.ndarray:
    """Camera-biased features for given identities and cameras (e.g. those of a real label file).

    Each feature is ``identity centre + camera offset + view shift + noise``, L2-normalised: the
    unit identity centres come in look-alike families (``normalise(family centre + family_spread
    * own)``, identities taken in order of their sorted ids, ``family_size`` to a family), every
    camera adds an offset of norm ``camera_strength``, every (identity, camera) pair a Gaussian
    shift of norm about ``view_shift`` (how one person looks in one camera), and every image
    Gaussian noise of norm about ``noise``. :func:`make_camera_biased` draws its features with
    the same code.

    Parameters
    ----------
    pids, cams : array-like of shape (N,)
        Identity and camera of each sample: any hashable values (factorised; not modified).
    camera_strength : float, default 0.6
        Norm of each camera's offset relative to the unit identity centres: the camera bias.
    dim : int, default 32
        Feature dimension.
    view_shift : float, default 0.3
        Norm (about) of the per-(identity, camera) shift.
    noise : float, default 0.25
        Norm (about) of the per-image noise.
    family_size : int, default 3
        Identities per look-alike family (family of the identity with code ``i``: ``i // family_size``).
    family_spread : float, default 1.0
        How far identities of one family are from their family's centre (0 = identical).
    rng : int, numpy.random.Generator or None
        Randomness.

    Returns
    -------
    numpy.ndarray of float32, shape (N, dim)
        Unit-norm rows.

    Raises
    ------
    ValueError
        ``pids`` and ``cams`` of different lengths, or a knob out of range (the message names it).

    Examples
    --------
    >>> import numpy as np
    >>> feats = simulate_features([7, 7, 9], ["a", "b", "a"], dim=8, rng=0)
    >>> feats.shape, feats.dtype.name, bool(np.allclose(np.linalg.norm(feats, axis=1), 1, atol=1e-6))
    ((3, 8), 'float32', True)
    """
    pid_codes = check_cameras(pids, "pids")
    cam_codes = check_cameras(cams, "cams")
    check_same_length(pids=pid_codes, cams=cam_codes)
    dim = check_int(dim, "dim", low=2)
    family_size = check_int(family_size, "family_size", low=1)
    _check_feature_knobs(
        family_spread=family_spread, camera_strength=camera_strength, noise=noise, view_shift=view_shift
    )
    generator = as_rng(rng)
    n_ids = int(pid_codes.max()) + 1 if pid_codes.size else 0
    n_cams = int(cam_codes.max()) + 1 if cam_codes.size else 0
    appearance, cam_offsets = _appearance_model(
        max(n_ids, 1), max(n_cams, 1), dim, family_size, family_spread, camera_strength, generator
    )
    return _draw_features(appearance, cam_offsets, pid_codes, cam_codes, view_shift, noise, generator)


_FEATURE_OPTIONS = ("dim", "view_shift", "noise", "family_size", "family_spread")


def make_stage1_like(
    profile: str | Stage1Profile = "market",
    *,
    camera_strength: float = 0.6,
    scale: float = 1.0,
    rng: int | np.random.Generator | None = None,
    **feature_options: Any,
) -> SyntheticReID:
    """A synthetic set with the shape and the stage-1 local labels of a released data set.

    Identities and cameras follow the profile's data set (Market-1501: 751 identities, 6
    cameras, 12,936 images; DukeMTMC-reID: 702, 8, 16,522): cameras per identity, how often each
    camera sees an identity and images per identity-in-camera are drawn from the distributions
    measured on the released files, and the image count is then made exact. Features come from
    :func:`simulate_features`, local labels from :func:`stage1_local_labels` with the
    features' look-alike families.

    Parameters
    ----------
    profile : {"market", "duke"} or Stage1Profile, default "market"
        Data set to imitate, see :data:`STAGE1_PROFILES`.
    camera_strength : float, default 0.6
        Camera bias of the features, see :func:`simulate_features`.
    scale : float, default 1.0
        Size relative to the data set: ``round(scale * n_identities)`` identities (at least 2)
        and ``round(scale * n_images)`` images (e.g. 0.2 for fast tests). Local clusters per
        camera scale with it (600 at 1.0).
    rng : int, numpy.random.Generator or None
        Randomness.
    **feature_options
        ``dim``, ``view_shift``, ``noise``, ``family_size``, ``family_spread`` of
        :func:`simulate_features`.

    Returns
    -------
    SyntheticReID
        ``families`` holds ``pid // family_size``.

    Raises
    ------
    ValueError
        Unknown profile, ``scale`` not positive.
    TypeError
        An unknown feature option.

    Examples
    --------
    >>> data = make_stage1_like("duke", scale=0.05, rng=0)
    >>> len(data), int(data.cams.max()) + 1, data.feats.shape[1]
    (826, 8, 32)
    """
    prof = _stage1_profile(profile)
    scale = check_real(scale, "scale", low=0.0, high=float("inf"), open_low=True, open_high=True)
    unknown = sorted(set(feature_options) - set(_FEATURE_OPTIONS))
    if unknown:
        raise TypeError(f"unknown feature option {unknown[0]!r}; expected one of {', '.join(_FEATURE_OPTIONS)}")
    generator = as_rng(rng)
    n_ids = max(2, round(scale * prof.n_identities))
    n_cams = prof.n_cameras
    target = max(round(scale * prof.n_images), 2 * n_ids)

    seen_pmf = np.asarray(prof.cameras_per_identity[: n_cams + 1], dtype=np.float64)
    n_seen = np.maximum(generator.choice(seen_pmf.size, size=n_ids, p=seen_pmf / seen_pmf.sum()), 1)
    weights = np.log(np.asarray(prof.camera_weights, dtype=np.float64))
    keys = weights + generator.gumbel(size=(n_ids, n_cams))
    seen = (-keys).argsort(axis=1).argsort(axis=1) < n_seen[:, None]
    pair_pid, pair_cam = np.nonzero(seen)
    size_values, size_counts = np.asarray(prof.group_sizes, dtype=np.int64).T
    sizes = generator.choice(size_values, size=pair_pid.size, p=size_counts / size_counts.sum())
    missing = target - int(sizes.sum())
    if missing > 0:  # add images to random groups
        sizes += np.bincount(generator.integers(0, sizes.size, missing), minlength=sizes.size)
    elif missing < 0:  # remove images from random groups, keeping one in each
        spare = np.repeat(np.arange(sizes.size), sizes - 1)
        taken = generator.choice(spare.size, size=min(-missing, spare.size), replace=False)
        sizes -= np.bincount(spare[taken], minlength=sizes.size)
    pids = np.repeat(pair_pid, sizes).astype(np.int64)
    cams = np.repeat(pair_cam, sizes).astype(np.int64)

    feats = simulate_features(pids, cams, camera_strength=camera_strength, rng=generator, **feature_options)
    family_size = check_int(feature_options.get("family_size", 3), "family_size", low=1)
    families = pids // family_size
    local = stage1_local_labels(pids, cams, profile=prof, families=families, rng=generator)
    return SyntheticReID(feats=feats, pids=pids, cams=cams, local_labels=local, families=families)
