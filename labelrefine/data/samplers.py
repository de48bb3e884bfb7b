"""Identity-balanced (P x K) sampling and an endless loader for fixed iterations per epoch.

Pure numpy: usable with any ``torch.utils.data.DataLoader`` (which accepts any iterable of
indices as ``sampler`` and any iterable of index lists as ``batch_sampler``) without this
module importing torch.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from .._validation import check_cameras, check_int, check_labels, check_same_length, seed_from

__all__ = ["InfiniteLoader", "PKSampler"]


def _distributed_info() -> tuple[int, int]:
    """(rank, world_size) of an initialised torch.distributed group, else (0, 1); never imports torch."""
    torch = sys.modules.get("torch")
    if torch is None:
        return 0, 1
    dist = getattr(torch, "distributed", None)
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return 0, 1
    return int(dist.get_rank()), int(dist.get_world_size())


class PKSampler:
    """P identities x K instances per batch, preferring instances from different cameras.

    Each epoch the identities are shuffled and cut into batches of ``p`` identities; each
    identity contributes ``k`` consecutive indices. Within an identity, instances are taken
    round-robin over its cameras (in random order): first one image from each camera, then a
    second one from each camera that has one left, and so on, so an identity seen by at least
    ``k`` cameras gets ``k`` images from ``k`` distinct cameras. An identity with fewer than
    ``k`` images contributes all of them, topped up by drawing with replacement.

    Parameters
    ----------
    pids : array-like of int, shape (N,)
        Identity (or pseudo label) per sample; ``-1`` (unclustered) samples are never drawn.
    cams : array-like, shape (N,)
        Camera per sample (any hashable values).
    p : int, default 16
        Identities per batch (per process).
    k : int, default 4
        Instances per identity.
    rng : int, numpy.random.Generator or None, default 0
        Base seed, the library's ``rng`` convention: an int ``>= 0`` is the seed itself; a
        Generator (or None, fresh entropy) draws one int seed once, at construction. Epoch ``e``
        then uses ``numpy.random.default_rng([seed, e])``. The seed must be the same on every
        process: under DDP pass an int (the default 0 is one).
    rank, world_size : int or None, default None
        Position of this process among ``world_size`` data-parallel processes. ``None`` takes
        them from ``torch.distributed`` when a process group is initialised, else 0 and 1.

    Raises
    ------
    ValueError
        If ``pids``/``cams`` differ in length, ``p``/``k`` are < 1, ``rank`` is not in
        ``[0, world_size)``, or there are fewer than ``p * world_size`` identities.
    TypeError
        If ``pids`` are not integers or a count is not an integer.

    Notes
    -----
    Each epoch has ``num_ids // (p * world_size)`` batches per process (the remainder of the
    shuffled identities is dropped, as with ``drop_last``). In a step, the ``world_size``
    processes draw disjoint sets of identities, so the epoch's identities are split without
    overlap between ranks. Iterating yields the flat indices (``len(self)`` of them): use it
    as ``DataLoader(dataset, batch_size=sampler.batch_size, sampler=sampler, drop_last=True)``,
    or pass :attr:`batch_sampler` as ``batch_sampler=``. Like ``DistributedSampler``, the order
    depends only on ``(seed, epoch)``: call :meth:`set_epoch` each epoch (:class:`InfiniteLoader`
    does so when it restarts the loader). Memory and time per epoch are O(N log N), vectorised.

    Examples
    --------
    >>> pids = [0, 0, 0, 1, 1, 2, 2, 2, -1]
    >>> cams = [0, 1, 1, 0, 0, 0, 1, 2, 0]
    >>> sampler = PKSampler(pids, cams, p=3, k=2, rng=0)
    >>> len(sampler), sampler.batch_size
    (6, 6)
    >>> batch = next(iter(sampler.batch_sampler))
    >>> sorted({pids[i] for i in batch})
    [0, 1, 2]
    >>> all(cams[batch[j]] != cams[batch[j + 1]] for j in range(0, 6, 2) if pids[batch[j]] != 1)
    True
    """

    def __init__(
        self,
        pids: Any,
        cams: Any,
        *,
        p: int = 16,
        k: int = 4,
        rng: int | np.random.Generator | None = 0,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        pids_arr = check_labels(pids, "pids")
        cams_arr = check_cameras(cams, "cams")
        check_same_length(pids=pids_arr, cams=cams_arr)
        self.p = check_int(p, "p", low=1)
        self.k = check_int(k, "k", low=1)
        self.seed = seed_from(rng, "rng")  # the int base seed of every epoch
        if rank is None or world_size is None:
            auto_rank, auto_world = _distributed_info()
            rank = auto_rank if rank is None else rank
            world_size = auto_world if world_size is None else world_size
        self.world_size = check_int(world_size, "world_size", low=1)
        self.rank = check_int(rank, "rank", low=0, high=self.world_size - 1)
        self.epoch = 0

        valid = np.flatnonzero(pids_arr != -1)
        # samples sorted by (identity, camera); the epoch only permutes inside these groups
        order = np.lexsort((cams_arr[valid], pids_arr[valid]))
        self._index = valid[order]
        self._pid = pids_arr[self._index]
        self._cam = cams_arr[self._index]
        n = int(self._index.shape[0])
        new_pid = np.ones(n, dtype=bool)
        new_pid[1:] = self._pid[1:] != self._pid[:-1]
        new_group = new_pid.copy()
        new_group[1:] |= self._cam[1:] != self._cam[:-1]
        self._pid_start = np.flatnonzero(new_pid)  # first sorted position of each identity
        self._pid_count = np.diff(np.append(self._pid_start, n))
        self._pid_code = np.cumsum(new_pid) - 1  # identity number 0..M-1 of each sorted sample
        self._group_code = np.cumsum(new_group) - 1  # (identity, camera) group of each sorted sample
        self._group_start = np.flatnonzero(new_group)
        self.num_ids = int(self._pid_start.shape[0])
        if self.num_ids < self.p * self.world_size:
            raise ValueError(
                f"pids must contain at least p * world_size = {self.p * self.world_size} identities "
                f"(pid != -1) to fill one batch on every process, got {self.num_ids}"
            )

    @property
    def batch_size(self) -> int:
        """Indices per batch on this process: ``p * k``."""
        return self.p * self.k

    @property
    def batches_per_epoch(self) -> int:
        """Batches per epoch on this process."""
        return self.num_ids // (self.p * self.world_size)

    def __len__(self) -> int:
        return self.batches_per_epoch * self.batch_size

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch that seeds the next iteration (same value on every process)."""
        self.epoch = check_int(epoch, "epoch", low=0)

    def epoch_batches(self, epoch: int | None = None) -> np.ndarray:
        """This process's batches for ``epoch`` (default: the current one).

        Parameters
        ----------
        epoch : int or None, default None
            Epoch to draw (``None``: the one set by :meth:`set_epoch`); does not change it.

        Returns
        -------
        numpy.ndarray of int64, shape (batches_per_epoch, p * k)
            Sample indices; row ``b`` holds ``p`` runs of ``k`` indices of one identity each.
        """
        epoch = self.epoch if epoch is None else check_int(epoch, "epoch", low=0)
        rng = np.random.default_rng([self.seed, epoch])
        n = int(self._index.shape[0])
        # identities of the epoch: shuffled, cut into (batch, rank, p); keep this rank's slice
        perm = rng.permutation(self.num_ids)
        nb = self.batches_per_epoch
        ids = perm[: nb * self.world_size * self.p].reshape(nb, self.world_size, self.p)[:, self.rank, :].ravel()
        # round-robin over cameras: rank of each sample inside its (identity, camera) group after
        # a random shuffle, then order each identity by (round, random camera order)
        in_group = np.lexsort((rng.random(n), self._group_code))
        round_ = np.empty(n, dtype=np.int64)
        round_[in_group] = np.arange(n) - self._group_start[self._group_code[in_group]]
        cam_key = rng.random(self._group_start.shape[0])[self._group_code]
        ranked = np.lexsort((cam_key, round_, self._pid_code))  # sorted positions, identity blocks kept
        # the first k of each identity (all of them plus draws with replacement when fewer than k)
        count = self._pid_count[ids][:, None]
        slot = np.broadcast_to(np.arange(self.k), (ids.shape[0], self.k))
        extra = (rng.random((ids.shape[0], self.k)) * count).astype(np.int64)
        pos = self._pid_start[ids][:, None] + np.where(slot < count, slot, extra)
        return self._index[ranked[pos]].reshape(nb, self.p * self.k)

    def __iter__(self) -> Iterator[int]:
        yield from self.epoch_batches().ravel().tolist()

    @property
    def batch_sampler(self) -> _PKBatches:
        """A view that yields this sampler's batches as lists (for ``DataLoader(batch_sampler=...)``)."""
        return _PKBatches(self)

    def __repr__(self) -> str:
        return (
            f"PKSampler(num_ids={self.num_ids}, p={self.p}, k={self.k}, rank={self.rank}, "
            f"world_size={self.world_size}, epoch={self.epoch})"
        )


class _PKBatches:
    """Batches of a :class:`PKSampler` as lists; ``set_epoch``/``epoch`` act on the sampler."""

    def __init__(self, sampler: PKSampler) -> None:
        self.sampler = sampler

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.sampler.epoch_batches().tolist()

    def __len__(self) -> int:
        return self.sampler.batches_per_epoch

    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)


def _epoch_owner(loader: Any) -> Any:
    """The object of ``loader`` whose ``set_epoch`` reshuffles it (a sampler), or None."""
    candidates = [loader, getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)]
    candidates.append(getattr(candidates[2], "sampler", None))
    for obj in candidates:
        epoch = getattr(obj, "epoch", None)
        if obj is not None and callable(getattr(obj, "set_epoch", None)) and isinstance(epoch, int):
            return obj
    return None


class InfiniteLoader:
    """Endless iterator over a finite loader, for a fixed number of iterations per epoch.

    Parameters
    ----------
    loader : iterable
        Anything re-iterable: a ``torch.utils.data.DataLoader``, a list of batches...
    advance_epoch : bool, default True
        When the loader is exhausted and restarted, increment the epoch of its sampler (the
        first of ``loader``, ``loader.sampler``, ``loader.batch_sampler`` and
        ``loader.batch_sampler.sampler`` that has ``set_epoch`` and an integer ``epoch``,
        e.g. :class:`PKSampler` or ``DistributedSampler``), so passes differ.

    Attributes
    ----------
    passes : int
        Number of completed passes over ``loader``.

    Raises
    ------
    ValueError
        From ``next`` if a fresh pass over ``loader`` yields nothing.

    Notes
    -----
    Re-ID trainers (Cluster-Contrast, CALR) run a fixed number of iterations per epoch
    whatever the number of pseudo-labelled identities: ``batch = next(it)`` in a
    ``for _ in range(iters)`` loop. The underlying iterator persists across those epochs.

    Examples
    --------
    >>> it = InfiniteLoader([1, 2, 3])
    >>> [next(it) for _ in range(7)], it.passes
    ([1, 2, 3, 1, 2, 3, 1], 2)
    """

    def __init__(self, loader: Iterable[Any], *, advance_epoch: bool = True) -> None:
        if not hasattr(loader, "__iter__"):
            raise TypeError(f"loader must be iterable, got {type(loader).__name__}")
        if isinstance(loader, Iterator):
            raise TypeError(
                f"loader must be re-iterable (a DataLoader or a list), got a one-shot iterator {type(loader).__name__}"
            )
        self.loader = loader
        self.advance_epoch = bool(advance_epoch)
        self.passes = 0
        self._it: Iterator[Any] | None = None

    def __iter__(self) -> InfiniteLoader:
        return self

    def __next__(self) -> Any:
        if self._it is None:
            self._it = iter(self.loader)
        try:
            return next(self._it)
        except StopIteration:
            pass
        self.passes += 1
        owner = _epoch_owner(self.loader) if self.advance_epoch else None
        if owner is not None:
            owner.set_epoch(owner.epoch + 1)
        self._it = iter(self.loader)
        try:
            return next(self._it)
        except StopIteration:
            raise ValueError(
                f"loader must yield at least one batch per pass, got an empty {type(self.loader).__name__}"
            ) from None
