"""The standard re-identification image transforms, built from torchvision (imported lazily)."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

from .._optional import import_optional
from .._validation import check_choice, check_int, check_probability

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "build_transforms"]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def _check_triple(x: Any, name: str, *, positive: bool) -> list[float]:
    if (
        not isinstance(x, Sequence)
        or isinstance(x, str)
        or len(x) != 3
        or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in x)
    ):
        raise TypeError(f"{name} must be a sequence of 3 numbers (one per RGB channel), got {x!r}")
    if positive and min(x) <= 0:
        raise ValueError(f"{name} must be > 0 for every channel, got {tuple(x)}")
    return [float(v) for v in x]


def build_transforms(
    height: int = 256,
    width: int = 128,
    *,
    train: bool = True,
    flip_p: float = 0.5,
    pad: int = 10,
    erasing_p: float = 0.5,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    interpolation: str = "bicubic",
) -> Any:
    """Build the usual re-identification train or test transform (torchvision v1 API).

    Parameters
    ----------
    height, width : int, default 256, 128
        Output size (256 x 128 for persons; 224 x 224 is common for vehicles).
    train : bool, default True
        Training transform (with augmentation) or test transform (resize and normalise).
    flip_p : float, default 0.5
        Probability of a horizontal flip (train only; 0 leaves it out).
    pad : int, default 10
        Zero padding before a random crop back to ``height x width`` (train only; 0 leaves
        both out).
    erasing_p : float, default 0.5
        Probability of random erasing (train only; 0 leaves it out). Applied after
        normalisation with value 0, i.e. the erased box takes the mean colour.
    mean, std : sequence of 3 floats, default ImageNet statistics
        Per-channel normalisation.
    interpolation : {"bicubic", "bilinear", "nearest"}, default "bicubic"
        Resize interpolation (bicubic as in Cluster-Contrast and CALR).

    Returns
    -------
    torchvision.transforms.Compose
        Train: ``Resize``, ``RandomHorizontalFlip``, ``Pad``, ``RandomCrop``, ``ToTensor``,
        ``Normalize``, ``RandomErasing``. Test: ``Resize``, ``ToTensor``, ``Normalize``.
        It maps an RGB ``PIL.Image`` to a float tensor (3, height, width).

    Raises
    ------
    ModuleNotFoundError
        If torchvision is not installed (``pip install "labelrefine[torch]"``).
    TypeError, ValueError
        If an argument has the wrong type or range.

    Notes
    -----
    Random parts draw from torch's global generator, like every torchvision transform; seed
    DataLoader workers through the DataLoader's ``generator`` / ``worker_init_fn``.

    Examples
    --------
    >>> from PIL import Image
    >>> t = build_transforms(64, 32, train=False)
    >>> t(Image.new("RGB", (50, 120))).shape
    torch.Size([3, 64, 32])
    """
    height = check_int(height, "height", low=1)
    width = check_int(width, "width", low=1)
    if not isinstance(train, bool):
        raise TypeError(f"train must be a bool, got {type(train).__name__}")
    flip_p = check_probability(flip_p, "flip_p")
    pad = check_int(pad, "pad", low=0)
    erasing_p = check_probability(erasing_p, "erasing_p")
    mean_l = _check_triple(mean, "mean", positive=False)
    std_l = _check_triple(std, "std", positive=True)
    interpolation = check_choice(interpolation, "interpolation", ("bicubic", "bilinear", "nearest"))

    T = import_optional("torchvision.transforms")
    mode = getattr(T.InterpolationMode, interpolation.upper())
    steps: list[Any] = [T.Resize((height, width), interpolation=mode)]
    if train:
        if flip_p > 0:
            steps.append(T.RandomHorizontalFlip(p=flip_p))
        if pad > 0:
            steps += [T.Pad(pad), T.RandomCrop((height, width))]
    steps += [T.ToTensor(), T.Normalize(mean=mean_l, std=std_l)]
    if train and erasing_p > 0:
        steps.append(T.RandomErasing(p=erasing_p, value=0))
    return T.Compose(steps)
