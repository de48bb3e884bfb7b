"""Small helpers over :mod:`torch.distributed` that also work in a single process.

Every helper behaves as the identity (or returns the single-process answer) when
``torch.distributed`` is not available or not initialised, so library code calls them
unconditionally. Collectives run on the device of the tensor for the NCCL backend and on the
CPU for every other backend (gloo does not gather CUDA tensors); results come back on the
input's device and dtype. The helpers are not differentiable: they are for buffers, labels and
extracted features, never for tensors that need gradients.
"""

from __future__ import annotations

from typing import Any, TypeVar

import torch
import torch.distributed as dist

from .._progress import Progress
from .._types import KnnGraph
from .._validation import check_int

__all__ = [
    "all_gather_tensor",
    "broadcast_object",
    "gather_tensor",
    "get_rank",
    "get_world_size",
    "is_distributed",
    "is_main_process",
    "sharded_knn",
]

T = TypeVar("T")


def is_distributed() -> bool:
    """Whether ``torch.distributed`` is available, initialised and has more than one process.

    Returns
    -------
    bool
        ``True`` only inside an initialised process group of size > 1.

    Examples
    --------
    >>> is_distributed()
    False
    """
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    """This process's rank in the default process group, 0 when not distributed.

    Returns
    -------
    int
        The global rank, or 0 outside an initialised process group.

    Examples
    --------
    >>> get_rank()
    0
    """
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    """Number of processes in the default process group, 1 when not distributed.

    Returns
    -------
    int
        The world size, or 1 outside an initialised process group.

    Examples
    --------
    >>> get_world_size()
    1
    """
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    """Whether this process is rank 0 (always true in a single process).

    Returns
    -------
    bool
        ``get_rank() == 0``.

    Examples
    --------
    >>> is_main_process()
    True
    """
    return get_rank() == 0


def _check_tensor(t: Any, name: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.ndim == 0:
        raise ValueError(f"{name} must have at least one dimension (gathered along dim 0), got a 0-d tensor")
    return t


def _comm_device(t: torch.Tensor) -> torch.device:
    """Device on which collectives run: the tensor's for NCCL, the CPU otherwise."""
    return t.device if dist.get_backend() == "nccl" else torch.device("cpu")


def _padded(t: torch.Tensor) -> tuple[torch.Tensor, list[int], int]:
    """Move ``t`` to the communication device, pad dim 0 to the largest size over ranks."""
    device = _comm_device(t)
    local = t.detach().to(device).contiguous()
    size = torch.tensor([local.shape[0]], dtype=torch.int64, device=device)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, size)
    counts = [int(s.item()) for s in sizes]
    longest = max(counts)
    if local.shape[0] < longest:
        pad = local.new_zeros((longest - local.shape[0], *local.shape[1:]))
        local = torch.cat([local, pad], dim=0)
    return local, counts, longest


def all_gather_tensor(t: torch.Tensor) -> torch.Tensor:
    """Concatenate ``t`` from all ranks along dim 0, in rank order, on every rank.

    Ranks may hold different numbers of rows: each is padded to the largest count before
    the collective and the padding is removed afterwards. Trailing dimensions and the dtype
    must agree across ranks.

    Parameters
    ----------
    t : torch.Tensor
        Local tensor of shape (n_rank, ...).

    Returns
    -------
    torch.Tensor
        Shape (sum of n_rank over ranks, ...), on ``t``'s device and dtype, detached. Outside
        a process group of size > 1 this is ``t.detach()`` itself.

    Raises
    ------
    TypeError
        If ``t`` is not a tensor.
    ValueError
        If ``t`` is 0-d.

    Notes
    -----
    Every rank must call this function (it is a collective). Not differentiable.

    Examples
    --------
    >>> import torch
    >>> all_gather_tensor(torch.arange(3)).tolist()  # single process: unchanged
    [0, 1, 2]
    """
    t = _check_tensor(t, "t")
    if not is_distributed():
        return t.detach()
    local, counts, _ = _padded(t)
    parts = [torch.empty_like(local) for _ in counts]
    dist.all_gather(parts, local)
    out = torch.cat([p[:c] for p, c in zip(parts, counts, strict=True)], dim=0)
    return out.to(t.device)


def gather_tensor(t: torch.Tensor, dst: int = 0) -> torch.Tensor | None:
    """Concatenate ``t`` from all ranks along dim 0, in rank order, on rank ``dst`` only.

    Like :func:`all_gather_tensor` but only ``dst`` receives (and allocates) the result.

    Parameters
    ----------
    t : torch.Tensor
        Local tensor of shape (n_rank, ...); ranks may differ in n_rank.
    dst : int, default 0
        Rank that receives the result.

    Returns
    -------
    torch.Tensor or None
        On rank ``dst``: shape (sum of n_rank, ...), on ``t``'s device and dtype. On every
        other rank: ``None``. Outside a process group of size > 1: ``t.detach()``.

    Raises
    ------
    TypeError
        If ``t`` is not a tensor.
    ValueError
        If ``t`` is 0-d or ``dst`` is not a valid rank.

    Notes
    -----
    Every rank must call this function (it is a collective). Not differentiable.

    Examples
    --------
    >>> import torch
    >>> gather_tensor(torch.ones(2, 3)).shape
    torch.Size([2, 3])
    """
    t = _check_tensor(t, "t")
    world = get_world_size()
    dst = check_int(dst, "dst (a rank)", low=0, high=world - 1)
    if not is_distributed():
        return t.detach()
    local, counts, _ = _padded(t)
    receive = dist.get_rank() == dst
    parts = [torch.empty_like(local) for _ in counts] if receive else None
    dist.gather(local, parts, dst=dst)
    if parts is None:  # not the receiving rank
        return None
    return torch.cat([p[:c] for p, c in zip(parts, counts, strict=True)], dim=0).to(t.device)


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Send a picklable Python object from rank ``src`` to every rank.

    Typical use: cluster on rank 0, then ``labels = broadcast_object(labels)`` so every rank
    trains on the same pseudo labels.

    Parameters
    ----------
    obj : object
        The object on rank ``src``; ignored on the other ranks (pass ``None`` there).
    src : int, default 0
        The sending rank.

    Returns
    -------
    object
        ``src``'s object on every rank (the object itself outside a process group).

    Raises
    ------
    ValueError
        If ``src`` is not a valid rank.

    Notes
    -----
    Uses :func:`torch.distributed.broadcast_object_list` (pickle): only broadcast objects you
    created. Every rank must call this function.

    Examples
    --------
    >>> broadcast_object({"epoch": 3})
    {'epoch': 3}
    """
    world = get_world_size()
    src = check_int(src, "src (a rank)", low=0, high=world - 1)
    if not is_distributed():
        return obj
    box = [obj if dist.get_rank() == src else None]
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    dist.broadcast_object_list(box, src=src, device=device)
    return box[0]


def sharded_knn(
    feats: Any,
    k: int,
    *,
    backend: str = "auto",
    block_size: int | None = None,
    normalize: bool = True,
    progress: Progress | None = None,
) -> KnnGraph | None:
    """Exact kNN graph with the query rows split over the processes, gathered on rank 0.

    Every rank holds all the features (as the recipe's feature extraction gives them); rank r
    searches its contiguous slice of the rows against all of them with
    :func:`labelrefine.knn_search` (on its own GPU with ``backend="torch"`` and CUDA features,
    so W GPUs share the O(N² D) work), and rank 0 gathers the rows into the same graph as
    :func:`labelrefine.knn` gives in one process.

    Parameters
    ----------
    feats : array-like or torch.Tensor of shape (N, D)
        The same features on every rank (a CUDA tensor keeps the search on that rank's GPU).
    k : int
        Neighbours per sample other than the sample itself, ``1 <= k < N``.
    backend, block_size, normalize :
        As in :func:`labelrefine.knn` (exact search).
    progress : callable, optional
        ``progress(step, done, total)`` for this rank's ``"knn search"`` (pass it on rank 0 only
        to show one bar).

    Returns
    -------
    KnnGraph or None
        On rank 0: the graph (``indices[i, 0] == i``, rows sorted, ``recall=None``); on the
        other ranks: ``None``. Outside a process group of size > 1: ``labelrefine.knn(feats, k)``
        with the same options.

    Notes
    -----
    A collective: every rank must call it with the same ``k`` and features of the same shape.
    Each rank's rows are searched exactly as in one process, so the gathered graph equals the
    one-process graph (up to the order of exactly tied neighbours).

    Examples
    --------
    >>> import numpy as np
    >>> feats = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    >>> sharded_knn(feats, 3, backend="numpy")  # one process: knn itself
    KnnGraph(n=50, k=3, includes_self=True)
    """
    from .._search import self_first
    from ..neighbors import knn, knn_search

    if not is_distributed():
        return knn(feats, k, backend=backend, block_size=block_size, normalize=normalize, exact=True, progress=progress)
    n = int(feats.shape[0])
    k = check_int(k, "k (neighbours other than the sample itself)", low=1, high=n - 1)
    world, rank = get_world_size(), get_rank()
    start, stop = rank * n // world, (rank + 1) * n // world
    indices, distances = knn_search(
        feats[start:stop],
        feats,
        k + 1,
        backend=backend,
        block_size=block_size,
        normalize=normalize,
        exact=True,
        progress=progress,
    )
    all_indices = gather_tensor(torch.from_numpy(indices))
    all_distances = gather_tensor(torch.from_numpy(distances))
    if all_indices is None or all_distances is None:  # not rank 0
        return None
    return KnnGraph(*self_first(all_indices.numpy(), all_distances.numpy()), includes_self=True)
