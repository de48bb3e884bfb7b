"""Feature extraction: a model over a dataset -> one numpy row per sample, in dataset order.

Dataset contract: ``dataset[i]`` returns the image tensor itself, a tuple/list whose first
element is the image tensor (``(img, pid, cam, ...)``), or a dict holding the image under
``"img"`` or ``"image"`` (otherwise its first value). Other fields are ignored. Images of a
batch must have the same shape so that the default collation can stack them (or give a
DataLoader with its own ``collate_fn`` that keeps the same structure).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset, SequentialSampler, Subset

from .._optional import import_optional
from .._validation import check_int
from .distributed import gather_tensor, get_rank, get_world_size, is_main_process

__all__ = ["extract_features"]

_DEFAULT_BATCH_SIZE = 128


def _images(batch: Any) -> torch.Tensor:
    """The image tensor of a collated batch (see the module docstring)."""
    images: Any
    if isinstance(batch, torch.Tensor):
        images = batch
    elif isinstance(batch, Mapping):
        key = "img" if "img" in batch else "image" if "image" in batch else next(iter(batch), None)
        images = batch[key] if key is not None else None
    elif isinstance(batch, Sequence) and not isinstance(batch, str) and len(batch) > 0:
        images = batch[0]
    else:
        images = None
    if not isinstance(images, torch.Tensor):
        raise TypeError(
            "dataset items must be an image tensor, a tuple whose first element is the image tensor, or a dict "
            f"with the image under 'img' or 'image'; the collated batch gave {type(images).__name__}"
        )
    return images


def _model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return torch.device("cpu"), torch.float32


def _unwrap_loader(
    dataset: Dataset | DataLoader, batch_size: int | None, num_workers: int | None
) -> tuple[Any, int | None, int | None, dict[str, Any]]:
    """The dataset under a DataLoader and the loader settings to reuse (the explicit arguments win)."""
    if not isinstance(dataset, DataLoader):
        return dataset, batch_size, num_workers, {}
    if not isinstance(dataset.sampler, SequentialSampler) or dataset.batch_sampler is None:
        raise ValueError(
            "dataset must be a DataLoader with a sequential sampler (shuffle=False, automatic batching) so "
            f"rows follow the dataset order, got sampler {type(dataset.sampler).__name__}"
        )
    loader_options = {
        "collate_fn": dataset.collate_fn,
        "pin_memory": dataset.pin_memory,
    }
    batch_size = dataset.batch_size if batch_size is None else batch_size
    num_workers = dataset.num_workers if num_workers is None else num_workers
    return dataset.dataset, batch_size, num_workers, loader_options


def _check_map_style(dataset: Any) -> None:
    if isinstance(dataset, IterableDataset) or not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
        raise TypeError(
            f"dataset must be a map-style torch Dataset (with __getitem__ and __len__) or a DataLoader over one, "
            f"got {type(dataset).__name__}"
        )


def _embed_batch(model: nn.Module, images: torch.Tensor, flip: bool, normalize: bool) -> torch.Tensor:
    """float32 embeddings of one batch on the CPU (flip sum, then optional L2 normalisation)."""
    out = model(images)
    if flip:
        out = out + model(images.flip(-1))
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != images.shape[0]:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"model must return (batch, features) embeddings, got {shape}")
    out = out.float()
    return (F.normalize(out, dim=1) if normalize else out).cpu()


def _embed_loader(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    dtype: torch.dtype,
    *,
    flip: bool,
    normalize: bool,
    progress: bool,
) -> list[torch.Tensor]:
    """Embeddings of every batch of ``loader`` in eval mode; the model's train/eval mode is restored."""
    bar = None
    if progress and is_main_process():
        tqdm = import_optional("tqdm").tqdm
        bar = tqdm(total=len(loader), desc="extract features", unit="batch", leave=False)
    was_training = model.training
    model.eval()
    chunks: list[torch.Tensor] = []
    try:
        with torch.no_grad():
            for batch in loader:
                images = _images(batch).to(device=device, dtype=dtype, non_blocking=True)
                chunks.append(_embed_batch(model, images, flip, normalize))
                if bar is not None:
                    bar.update(1)
    finally:
        model.train(was_training)
        if bar is not None:
            bar.close()
    return chunks


def _empty_rows(
    model: nn.Module, dataset: Any, loader_options: dict[str, Any], device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """A (0, D) array for an empty shard (more ranks than samples): D learnt from one sample."""
    was_training = model.training
    with torch.no_grad():
        model.eval()
        probe = next(iter(DataLoader(Subset(dataset, [0]), batch_size=1, **loader_options)))
        dim = model(_images(probe).to(device=device, dtype=dtype)).shape[1]
        model.train(was_training)
    return torch.empty((0, dim), dtype=torch.float32)


def extract_features(
    model: nn.Module,
    dataset: Dataset | DataLoader,
    *,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
    flip: bool = False,
    normalize: bool = True,
    progress: bool = True,
    num_workers: int | None = None,
) -> np.ndarray | None:
    """Embed every sample of ``dataset`` with ``model``; rows follow the dataset order.

    Parameters
    ----------
    model : nn.Module
        Maps an image batch (B, C, H, W) to embeddings (B, D). A DistributedDataParallel
        wrapper is unwrapped (its ``module`` is used, so ranks need not run in lockstep).
        Run in eval mode under ``torch.no_grad()``; its previous train/eval mode is restored.
    dataset : Dataset or DataLoader
        A map-style dataset following the module's contract, or a DataLoader over one whose
        sampler is sequential (no shuffling); its ``batch_size``, ``num_workers``,
        ``collate_fn`` and ``pin_memory`` are reused.
    batch_size : int, optional
        Images per forward pass (default: the DataLoader's, else 128).
    device : str or torch.device, optional
        Where images are sent; default: the device of the model's first parameter. Images
        are cast to the dtype of the model's parameters. Nothing is moved to a GPU unless the
        model is there (or ``device`` says so).
    flip : bool, default False
        Also embed the horizontally flipped images and use the sum of both embeddings.
    normalize : bool, default True
        L2-normalise each row (after the flip sum). :class:`~labelrefine.nn.ReIDNet` in eval
        mode already returns unit rows; with ``flip`` the sum is renormalised.
    progress : bool, default True
        Show a tqdm progress bar (only on the main process).
    num_workers : int, optional
        DataLoader workers (default: the DataLoader's, else 0).

    Returns
    -------
    numpy.ndarray or None
        float32 array (N, D), row i for ``dataset[i]``. Under an initialised process group
        each rank embeds a contiguous shard of the indices and rank 0 receives all rows in
        order; rank 0 returns the (N, D) array and every other rank returns ``None``.

    Raises
    ------
    TypeError
        If ``model`` is not a module, ``dataset`` is iterable-style, or items do not follow
        the contract.
    ValueError
        If the dataset is empty, the DataLoader shuffles, the model's output is not 2-D,
        or ``batch_size`` / ``num_workers`` are invalid.

    Notes
    -----
    Every rank must call this function under DDP (the final gather is a collective). Shards
    are ``[r * N // W, (r + 1) * N // W)`` for rank r of W.

    Examples
    --------
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> data = TensorDataset(torch.randn(10, 3, 8, 4), torch.arange(10))
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(96, 5))
    >>> extract_features(net, data, batch_size=4, progress=False).shape
    (10, 5)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    data, batch_size, num_workers, loader_options = _unwrap_loader(dataset, batch_size, num_workers)
    _check_map_style(data)
    batch_size = _DEFAULT_BATCH_SIZE if batch_size is None else batch_size
    num_workers = 0 if num_workers is None else num_workers
    batch_size = check_int(batch_size, "batch_size", low=1)
    num_workers = check_int(num_workers, "num_workers", low=0)
    n = len(data)
    if n == 0:
        raise ValueError("dataset must not be empty, got 0 samples")

    if isinstance(model, nn.parallel.DistributedDataParallel):
        model = model.module
    model_device, model_dtype = _model_device_dtype(model)
    device = model_device if device is None else torch.device(device)

    rank, world = get_rank(), get_world_size()
    lo, hi = rank * n // world, (rank + 1) * n // world
    shard = data if world == 1 else Subset(data, range(lo, hi))
    loader = DataLoader(
        shard, batch_size=int(batch_size), shuffle=False, num_workers=int(num_workers), **loader_options
    )
    chunks = _embed_loader(model, loader, device, model_dtype, flip=flip, normalize=normalize, progress=progress)
    local = torch.cat(chunks) if chunks else _empty_rows(model, data, loader_options, device, model_dtype)
    if world > 1:  # NCCL gathers on the model's device, other backends on the CPU
        gathered = gather_tensor(local.to(device), dst=0)
        return None if gathered is None else gathered.cpu().numpy()
    return local.numpy()
