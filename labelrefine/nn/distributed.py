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

from .._validation import check_int

__all__ = [
    "all_gather_tensor",
    "broadcast_object",
    "gather_tensor",
    "get_rank",
    "get_world_size",
    "is_distributed",
    "is_main_process",
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
