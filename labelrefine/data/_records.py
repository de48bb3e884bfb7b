"""The records every dataset reader returns: :class:`Split` (paths, pids, cameras) and :class:`ReIDData`.

Pure numpy; the readers live in :mod:`labelrefine.data.datasets`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import check_labels, check_same_length, to_numpy

__all__ = ["ReIDData", "Split", "check_camera_indices"]


def check_camera_indices(cams: Any, *, per: str) -> np.ndarray:
    """1-D non-negative integer camera indices (``per`` names the item in the 1-D message)."""
    cams = to_numpy(cams, "cams")
    if cams.size == 0:
        cams = cams.astype(np.int64)
    if cams.ndim != 1:
        raise ValueError(f"cams must be 1-D (one camera per {per}), got shape {cams.shape}")
    if cams.dtype == bool or not np.issubdtype(cams.dtype, np.integer):
        raise TypeError(f"cams must hold 0-based integer camera indices, got dtype {cams.dtype}")
    if cams.size and cams.min() < 0:
        raise ValueError(f"cams must be >= 0 (0-based camera indices), got minimum {cams.min()}")
    return cams


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


@dataclass(frozen=True, eq=False)
class Split:
    """One split of a re-identification dataset: index-aligned paths, identities and cameras.

    Parameters
    ----------
    paths : array-like of str, shape (N,)
        Image paths.
    pids : array-like of int, shape (N,)
        Identity per image; ``-1`` means unknown (unlabeled crops).
    cams : array-like of int, shape (N,)
        0-based camera index per image.

    Raises
    ------
    ValueError
        If the three arrays differ in length, are not 1-D, or a camera is negative.
    TypeError
        If ``pids`` or ``cams`` are not integers.

    Notes
    -----
    The arrays are stored as read-only copies (``paths`` as a numpy unicode array), so a
    ``Split`` never aliases, nor modifies, the caller's arrays.

    Examples
    --------
    >>> s = Split(["a/0001_c1.jpg", "a/0001_c2.jpg", "a/0002_c1.jpg"], [1, 1, 2], [0, 1, 0])
    >>> len(s), s.num_pids, s.num_cams
    (3, 2, 2)
    >>> s.select([0, 2]).pids.tolist()
    [1, 2]
    """

    paths: np.ndarray
    pids: np.ndarray
    cams: np.ndarray

    def __post_init__(self) -> None:
        paths = to_numpy(self.paths, "paths")
        if paths.size == 0:
            paths = paths.astype(str)
        if paths.ndim != 1:
            raise ValueError(f"paths must be 1-D (one path per image), got shape {paths.shape}")
        if paths.dtype.kind not in "UO":
            raise TypeError(f"paths must hold strings, got dtype {paths.dtype}")
        pids = check_labels(self.pids, "pids")
        cams = check_camera_indices(self.cams, per="image")
        check_same_length(paths=paths, pids=pids, cams=cams)
        object.__setattr__(self, "paths", _readonly(np.array(paths, dtype=str)))
        object.__setattr__(self, "pids", _readonly(np.array(pids, dtype=np.int64)))
        object.__setattr__(self, "cams", _readonly(np.array(cams, dtype=np.int64)))

    def __len__(self) -> int:
        return int(self.paths.shape[0])

    def __repr__(self) -> str:
        return f"Split(n={len(self)}, num_pids={self.num_pids}, num_cams={self.num_cams})"

    @property
    def num_pids(self) -> int:
        """Number of distinct identities, not counting ``-1`` (unknown)."""
        return int(np.unique(self.pids[self.pids != -1]).shape[0])

    @property
    def num_cams(self) -> int:
        """Number of distinct cameras present in the split."""
        return int(np.unique(self.cams).shape[0])

    def select(self, index: Any) -> Split:
        """The sub-split at ``index`` (integer indices or a boolean mask)."""
        index = to_numpy(index, "index")
        return Split(self.paths[index], self.pids[index], self.cams[index])

    @classmethod
    def empty(cls) -> Split:
        """A split with no images."""
        return cls(np.array([], dtype=str), np.array([], dtype=np.int64), np.array([], dtype=np.int64))


@dataclass(frozen=True, eq=False)
class ReIDData:
    """A re-identification dataset: ``train``, ``query`` and ``gallery`` splits and a name.

    Parameters
    ----------
    train, query, gallery : Split
        The three splits (``query`` and ``gallery`` may be empty, e.g. for unlabeled crops).
    name : str
        Dataset name (the registry name for the built-in readers).

    Examples
    --------
    >>> tr = Split(["x/0001_c1.jpg"], [1], [0])
    >>> data = ReIDData(tr, Split.empty(), Split.empty(), "toy")
    >>> print(data.summary())
    toy      images  pids  cams
    train         1     1     1
    query         0     0     0
    gallery       0     0     0
    """

    train: Split
    query: Split
    gallery: Split
    name: str

    def __post_init__(self) -> None:
        for field in ("train", "query", "gallery"):
            value = getattr(self, field)
            if not isinstance(value, Split):
                raise TypeError(f"{field} must be a Split, got {type(value).__name__}")
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a str, got {type(self.name).__name__}")

    def __repr__(self) -> str:
        return f"ReIDData(name={self.name!r}, train={self.train!r}, query={self.query!r}, gallery={self.gallery!r})"

    def summary(self) -> str:
        """A small text table with the number of images, identities and cameras per split."""
        width = max(len(self.name), 7)
        lines = [f"{self.name:<{width}}  images  pids  cams"]
        for field in ("train", "query", "gallery"):
            s: Split = getattr(self, field)
            lines.append(f"{field:<{width}}  {len(s):>6}  {s.num_pids:>4}  {s.num_cams:>4}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# file-name parsing (one regex pass over all names of a folder, no per-file Python loop)
