"""Datasets, SynthReID, samplers and transforms for re-identification training (torch adapter).

Importing this package does not import torch: the readers, SynthReID, the samplers and the
loader helpers are numpy-only; :func:`build_transforms` imports torchvision when called, and
:class:`ImageDataset` / :class:`ArrayDataset` (torch ``Dataset`` s) load torch on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._optional import has_module
from .datasets import (
    DATASETS,
    IMAGE_EXTENSIONS,
    ReIDData,
    Split,
    load_dataset,
    read_dukemtmcreid,
    read_folder,
    read_market1501,
    read_msmt17,
    read_synthreid,
    read_veri,
    register_dataset,
    unregister_dataset,
)
from .samplers import InfiniteLoader, PKSampler
from .synthreid import SynthReIDArrays, make_synthreid, synthreid_arrays
from .transforms import IMAGENET_MEAN, IMAGENET_STD, build_transforms

if TYPE_CHECKING:
    from .torch_datasets import ArrayDataset as ArrayDataset
    from .torch_datasets import ImageDataset as ImageDataset

__all__ = [
    "DATASETS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_EXTENSIONS",
    "InfiniteLoader",
    "PKSampler",
    "ReIDData",
    "Split",
    "SynthReIDArrays",
    "build_transforms",
    "load_dataset",
    "make_synthreid",
    "read_dukemtmcreid",
    "read_folder",
    "read_market1501",
    "read_msmt17",
    "read_synthreid",
    "read_veri",
    "register_dataset",
    "synthreid_arrays",
    "unregister_dataset",
]

_TORCH_NAMES = ("ArrayDataset", "ImageDataset")
if has_module("torch"):  # keep ``from labelrefine.data import *`` working without torch
    __all__ += list(_TORCH_NAMES)


def __getattr__(name: str) -> Any:
    if name in _TORCH_NAMES:
        from . import torch_datasets

        return getattr(torch_datasets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
