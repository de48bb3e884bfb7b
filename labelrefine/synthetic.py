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

import numpy as np

from ._validation import as_rng, check_int, check_probability

__all__ = ["SyntheticReID", "make_camera_biased", "noisy_local_labels"]


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
        Per-camera labels from a noisy copy of the truth (see :func:`noisy_local_labels`).
    """

    feats: np.ndarray
    pids: np.ndarray
    cams: np.ndarray
    local_labels: np.ndarray

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
    local_noise: float = 0.05,
    seed: int | np.random.Generator | None = 0,
) -> SyntheticReID:
    """Generate camera-biased features with ground-truth identities and cameras.

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
        Norm of each camera's offset, relative to the unit-norm appearance vectors.
    noise : float, default 0.25
        Standard deviation of the per-image noise (over all dimensions together).
    local_noise : float in [0, 1], default 0.05
        Error rate of the local labels, see :func:`noisy_local_labels`.
    seed : int, numpy.random.Generator or None, default 0
        Randomness.

    Returns
    -------
    SyntheticReID

    Examples
    --------
    >>> data = make_camera_biased(n_ids=10, n_cams=3, seed=1)
    >>> data.feats.shape[1], int(data.pids.max()) + 1, sorted(set(data.cams.tolist()))
    (32, 10, [0, 1, 2])
    """
    n_ids = check_int(n_ids, "n_ids", low=1)
    n_cams = check_int(n_cams, "n_cams", low=2)
    dim = check_int(dim, "dim", low=2)
    family_size = check_int(family_size, "family_size", low=1)
    low, high = (check_int(v, "images_per_camera", low=1) for v in images_per_camera)
    if low > high:
        raise ValueError(f"images_per_camera must be (low, high) with low <= high, got {images_per_camera}")
    for name, value in (("family_spread", family_spread), ("camera_strength", camera_strength), ("noise", noise)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    rng = as_rng(seed)

    families = _normalise(rng.normal(size=(-(-n_ids // family_size), dim)))
    own = _normalise(rng.normal(size=(n_ids, dim)))
    appearance = _normalise(families[np.arange(n_ids) // family_size] + family_spread * own)
    cam_offsets = camera_strength * _normalise(rng.normal(size=(n_cams, dim)))

    n_seen = rng.integers(2, n_cams + 1, size=n_ids)
    seen = np.argsort(rng.random((n_ids, n_cams)), axis=1).argsort(axis=1) < n_seen[:, None]
    counts = rng.integers(low, high + 1, size=(n_ids, n_cams)) * seen
    pid_grid, cam_grid = np.meshgrid(np.arange(n_ids), np.arange(n_cams), indexing="ij")
    pids = np.repeat(pid_grid.ravel(), counts.ravel())
    cams = np.repeat(cam_grid.ravel(), counts.ravel())

    raw = appearance[pids] + cam_offsets[cams] + noise / np.sqrt(dim) * rng.normal(size=(pids.size, dim))
    feats = _normalise(raw).astype(np.float32)
    local = noisy_local_labels(pids, cams, error_rate=local_noise, rng=rng)
    return SyntheticReID(feats=feats, pids=pids.astype(np.int64), cams=cams.astype(np.int64), local_labels=local)


def noisy_local_labels(
    pids: np.ndarray,
    cams: np.ndarray,
    *,
    error_rate: float = 0.05,
    rng: int | np.random.Generator | None = None,
) -> np.ndarray:
    """Local labels from the truth with errors, as a good intra-camera model would give.

    Each (identity, camera) pair gets its own local id (unique across cameras). A fraction
    ``error_rate`` of samples is corrupted: half become -1 (not clustered), half take the
    local label of a random sample of the same camera (a wrong merge).

    Examples
    --------
    >>> import numpy as np
    >>> noisy_local_labels(np.array([0, 0, 1, 1]), np.array([0, 1, 0, 0]), error_rate=0.0)
    array([0, 1, 2, 2])
    """
    error_rate = check_probability(error_rate, "error_rate")
    generator = as_rng(rng)
    pids, cams = np.asarray(pids), np.asarray(cams)
    labels = np.unique(np.stack([pids, cams], axis=1), axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)
    corrupt = generator.random(pids.size) < error_rate
    to_outlier = corrupt & (generator.random(pids.size) < 0.5)
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
