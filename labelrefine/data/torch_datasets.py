"""torch ``Dataset`` s over image files and in-memory arrays.

This module imports torch at module level; ``labelrefine.data`` loads it only when
``ImageDataset`` or ``ArrayDataset`` is first accessed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from .._optional import import_optional
from .._validation import check_labels, check_same_length, to_numpy
from ._records import Split, check_camera_indices

if TYPE_CHECKING:
    import torch
    import torch.utils.data
else:
    torch = import_optional("torch")

__all__ = ["ArrayDataset", "ImageDataset"]


def _check_transform(transform: Any) -> Callable[[Any], Any] | None:
    if transform is not None and not callable(transform):
        raise TypeError(f"transform must be callable or None, got {type(transform).__name__}")
    return transform


class ImageDataset(torch.utils.data.Dataset):
    """Images read from files, with their identity, camera and index.

    Parameters
    ----------
    paths : array-like of str, shape (N,)
        Image files.
    pids : array-like of int, shape (N,)
        Identity or pseudo label per image (``-1`` allowed).
    cams : array-like of int, shape (N,)
        0-based camera per image.
    transform : callable or None, default None
        Applied to the RGB ``PIL.Image`` (e.g. :func:`labelrefine.data.build_transforms`).

    Raises
    ------
    TypeError, ValueError
        As :class:`labelrefine.data.Split` for the arrays; ``TypeError`` if ``transform`` is
        not callable.

    Notes
    -----
    ``dataset[i]`` is a dict ``{"img": transform(image), "pid": int, "cam": int, "index": i}``;
    the image is opened with PIL and converted to RGB. Without a transform ``"img"`` is the
    ``PIL.Image`` (fine for inspection; a DataLoader needs a transform that returns tensors).
    The default collate function turns a batch into a dict of tensors. Pseudo labels change
    every epoch in unsupervised training: build a new dataset with them as ``pids``, or look
    them up with ``"index"``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> path = str(pathlib.Path(tempfile.mkdtemp()) / "0001_c1s1_000001_01.png")
    >>> Image.new("RGB", (32, 64), (255, 0, 0)).save(path)
    >>> ds = ImageDataset([path], [1], [0])
    >>> item = ds[0]
    >>> item["img"].size, item["pid"], item["cam"], item["index"]
    ((32, 64), 1, 0, 0)
    """

    def __init__(self, paths: Any, pids: Any, cams: Any, transform: Callable[[Any], Any] | None = None) -> None:
        self.split = Split(paths, pids, cams)
        self.transform = _check_transform(transform)

    @classmethod
    def from_split(cls, split: Split, transform: Callable[[Any], Any] | None = None) -> ImageDataset:
        """The dataset of a :class:`labelrefine.data.Split` (e.g. ``load_dataset(...).train``)."""
        if not isinstance(split, Split):
            raise TypeError(f"split must be a labelrefine.data.Split, got {type(split).__name__}")
        return cls(split.paths, split.pids, split.cams, transform)

    @property
    def paths(self) -> np.ndarray:
        """Image paths (read-only)."""
        return self.split.paths

    @property
    def pids(self) -> np.ndarray:
        """Identities (read-only)."""
        return self.split.pids

    @property
    def cams(self) -> np.ndarray:
        """Cameras (read-only)."""
        return self.split.cams

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = int(index)
        Image = import_optional("PIL.Image")
        with Image.open(self.split.paths[index]) as f:
            img = f.convert("RGB")
        if self.transform is not None:
            img = self.transform(img)
        return {"img": img, "pid": int(self.split.pids[index]), "cam": int(self.split.cams[index]), "index": index}


class ArrayDataset(torch.utils.data.Dataset):
    """In-memory images (uint8, N x H x W x 3) or feature vectors, with identity and camera.

    Parameters
    ----------
    data : array-like or torch.Tensor, shape (N, ...)
        uint8 RGB images (N, H, W, 3), or any numeric array (e.g. features (N, D)).
    pids : array-like of int, shape (N,), optional
        Identity or pseudo label per sample; default all ``-1``.
    cams : array-like of int, shape (N,), optional
        0-based camera per sample; default all 0.
    transform : callable or None, default None
        For uint8 images: applied to the ``PIL.Image`` of the sample. For other data:
        applied to the sample's tensor.

    Raises
    ------
    TypeError, ValueError
        If the lengths differ, ``data`` is empty or not numeric, ``pids``/``cams`` are not
        integers >= -1 / >= 0, or ``transform`` is not callable.

    Notes
    -----
    ``dataset[i]`` is a dict ``{"img": ..., "pid": int, "cam": int, "index": i}`` like
    :class:`ImageDataset`. Without a transform, uint8 images become float tensors
    (3, H, W) in [0, 1] (as ``ToTensor``), other data a tensor copy of the row (float64 rows
    become float32). ``data`` is referenced, never modified.

    Examples
    --------
    >>> import numpy as np
    >>> ds = ArrayDataset(np.zeros((2, 8, 4, 3), np.uint8), pids=[3, 4], cams=[0, 1])
    >>> item = ds[1]
    >>> tuple(item["img"].shape), item["pid"], item["cam"], item["index"]
    ((3, 8, 4), 4, 1, 1)
    >>> ArrayDataset(np.ones((5, 16)))[0]["img"].dtype
    torch.float32
    """

    def __init__(
        self,
        data: Any,
        pids: Any = None,
        cams: Any = None,
        transform: Callable[[Any], Any] | None = None,
    ) -> None:
        arr = to_numpy(data, "data")
        if arr.ndim < 1 or arr.shape[0] == 0:
            raise ValueError(f"data must have at least one sample along axis 0, got shape {arr.shape}")
        if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.number)):
            raise TypeError(f"data must be numeric (uint8 images or float features), got dtype {arr.dtype}")
        n = arr.shape[0]
        pids_arr = np.full(n, -1, np.int64) if pids is None else check_labels(pids, "pids")
        if cams is None:
            cams_arr = np.zeros(n, np.int64)
        else:
            cams_arr = check_camera_indices(cams, per="sample")
        check_same_length(data=arr, pids=pids_arr, cams=cams_arr)
        self.data = arr
        self.pids = pids_arr.astype(np.int64)  # copies: later changes by the caller do not leak in
        self.cams = cams_arr.astype(np.int64)
        self.transform = _check_transform(transform)
        self._is_image = arr.dtype == np.uint8 and arr.ndim == 4 and arr.shape[-1] == 3

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = int(index)
        row = self.data[index]
        if self._is_image:
            if self.transform is not None:
                img = self.transform(import_optional("PIL.Image").fromarray(np.ascontiguousarray(row)))
            else:
                img = torch.tensor(row).permute(2, 0, 1).float().div_(255.0)
        else:
            img = torch.tensor(row, dtype=torch.float32 if row.dtype == np.float64 else None)
            if self.transform is not None:
                img = self.transform(img)
        return {"img": img, "pid": int(self.pids[index]), "cam": int(self.cams[index]), "index": index}
