"""Cluster memory and the ClusterNCE loss (Cluster-Contrast; CALR paper Eq. 1-3 and 6).

The memory holds one unit-norm centroid per pseudo-label cluster in a registered buffer
``features`` (num_clusters, D). By default training alternates three explicit steps per batch::

    loss = memory(feats, targets)           # ClusterNCE against all centroids
    loss.backward()                         # gradients for the encoder only
    memory.update(feats, targets)           # momentum update of the batch's centroids

``update`` must come after ``backward``: it modifies the buffer in place, and autograd needs
the buffer as it was in the forward pass. With ``update_in_backward=True`` (what
:meth:`ClusterMemory.from_cluster_contrast` builds) the update runs inside the backward pass
instead, as in Cluster-Contrast, and the loop is ``loss.backward()`` alone. Under
DistributedDataParallel the update gathers the batch from all ranks first, so every replica
holds the same memory.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_bool, check_int, check_probability, check_real
from .distributed import all_gather_tensor, is_distributed

__all__ = ["ClusterMemory", "cluster_centroids"]

_MODES = ("mean", "sample", "hard")
# forward calls in training mode without any update after which ClusterMemory warns (once)
STEPS_WITHOUT_UPDATE = 10


def _as_tensor(x: Any, name: str) -> torch.Tensor:
    """Tensors pass through; numpy arrays and lists become CPU tensors (no copy when possible)."""
    if isinstance(x, torch.Tensor):
        return x
    try:
        return torch.as_tensor(np.asarray(x))
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(f"{name} must be a tensor or array-like, got {type(x).__name__}: {exc}") from None


def _check_feats(feats: Any, name: str = "feats") -> torch.Tensor:
    feats = _as_tensor(feats, name)
    if feats.ndim != 2:
        raise ValueError(f"{name} must be 2-D (batch, num_features), got shape {tuple(feats.shape)}")
    if not feats.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {feats.dtype}")
    return feats


def _check_targets(targets: Any, n: int, name: str = "targets") -> torch.Tensor:
    targets = _as_tensor(targets, name)
    if targets.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one cluster id per sample), got shape {tuple(targets.shape)}")
    if targets.dtype == torch.bool or targets.is_floating_point() or targets.is_complex():
        raise TypeError(f"{name} must hold integers (-1 = no cluster), got dtype {targets.dtype}")
    if targets.shape[0] != n:
        raise ValueError(f"{name} must have length {n} (one per row of feats), got {targets.shape[0]}")
    return targets.long()


def _check_range(targets: torch.Tensor, num_clusters: int, name: str = "targets") -> None:
    if targets.numel() == 0:
        return
    extremes = targets.aminmax()
    lo, hi = int(extremes.min), int(extremes.max)
    if lo < -1 or hi >= num_clusters:
        raise ValueError(
            f"{name} must lie in [-1, {num_clusters - 1}] (-1 = no cluster, {num_clusters} clusters in memory), "
            f"got values in [{lo}, {hi}]"
        )


def _row_norms(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, 1) row norms clamped like ``F.normalize`` (eps 1e-12), computed in ``dtype``."""
    return torch.linalg.vector_norm(x, dim=1, keepdim=True, dtype=dtype).clamp_min_(1e-12)


def cluster_centroids(feats: Any, labels: Any) -> torch.Tensor:
    """L2-normalised mean feature of each cluster, the initialisation of :class:`ClusterMemory`.

    Parameters
    ----------
    feats : torch.Tensor or array-like, shape (N, D)
        Floating-point features (tensors keep their device and dtype; numpy arrays become CPU
        tensors). Each sample is L2-normalised before averaging, as the memory sees it.
    labels : torch.Tensor or array-like of int, shape (N,)
        Cluster ids, contiguous ``0..C-1`` (every id used at least once); ``-1`` samples are
        ignored. Make ids contiguous with :func:`labelrefine.refine.relabel`.

    Returns
    -------
    torch.Tensor, shape (C, D)
        Row ``c`` is the normalised mean of the normalised features with label ``c``; on the
        device and dtype of ``feats``. ``C = 0`` when every label is ``-1``.

    Raises
    ------
    TypeError
        If ``feats`` is not floating point or ``labels`` not integer.
    ValueError
        On wrong shapes, labels below -1, or ids that are not contiguous.

    Notes
    -----
    A thin wrapper of the core :func:`labelrefine.cluster_centroids` (computed on the CPU,
    once per epoch). Inputs are not modified.

    Examples
    --------
    >>> import torch
    >>> feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 2.0], [5.0, 5.0]])
    >>> cluster_centroids(feats, torch.tensor([0, 0, 1, -1]))
    tensor([[0.7071, 0.7071],
            [0.0000, 1.0000]])
    """
    from ..cluster import cluster_centroids as core_centroids

    feats = _check_feats(feats)
    return torch.from_numpy(core_centroids(feats, labels)).to(device=feats.device, dtype=feats.dtype)


class _ProductUpdatedInBackward(torch.autograd.Function):
    """``q @ memory.features.T`` whose backward pass also applies the memory's momentum update.

    The gradient with respect to ``q`` uses the centroids as they were in the forward pass;
    the update comes after it, as in Cluster-Contrast's ``CM`` function.
    """

    @staticmethod
    def forward(ctx: Any, q: torch.Tensor, targets: torch.Tensor, memory: ClusterMemory) -> torch.Tensor:
        ctx.memory = memory
        ctx.save_for_backward(q.detach(), targets)
        return q @ memory.features.to(q.dtype).T

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        q, targets = ctx.saved_tensors
        memory: ClusterMemory = ctx.memory
        grad_q = grad @ memory.features.to(grad.dtype) if ctx.needs_input_grad[0] else None
        memory._apply_update(q, targets)
        return grad_q, None, None


class ClusterMemory(nn.Module):
    """Momentum memory of cluster centroids with the ClusterNCE loss (Cluster-Contrast).

    Parameters
    ----------
    num_features : int
        Embedding dimension D.
    num_clusters : int
        Number of clusters C; :meth:`reset` may change it (one memory per epoch is not needed).
    temperature : float, default 0.05
        Softmax temperature tau > 0.
    momentum : float, default 0.2
        Update momentum m in [0, 1]: ``u <- normalise(m * u + (1 - m) * q)``.
    mode : {"mean", "sample", "hard"}, default "mean"
        How a cluster with samples in the batch is updated (see Notes). ``"sample"`` and
        ``"hard"`` are Cluster-Contrast's default and ``--use-hard`` rules.
    update_in_backward : bool, default False
        False: call :meth:`update` after ``loss.backward()``. True: the update runs inside the
        backward pass of the loss, as in Cluster-Contrast, and :meth:`update` is refused (it
        would apply the batch twice). See Notes for when to choose which.

    Attributes
    ----------
    features : torch.Tensor, shape (C, D)
        Buffer of unit-norm centroids (zeros until :meth:`reset`). Saved in ``state_dict``,
        moved by ``.to()``; never receives gradients.
    cluster_weights : torch.Tensor, shape (C,)
        Buffer of per-cluster loss weights (ones by default), e.g. the camera-entropy (CaCL)
        weights ``log(1 + H)`` of the core.

    Warns
    -----
    UserWarning
        Once per memory: when :meth:`forward` first runs while every centroid is zero (neither
        :meth:`reset` nor an assignment to ``features`` set them), and when a memory in
        training mode has run :meth:`forward` with gradients ``STEPS_WITHOUT_UPDATE`` (10)
        times in a row without any update (the centroids would stay frozen).

    Notes
    -----
    **Loss** (:meth:`forward`). ``q = normalise(feats)`` (not in place), ``logits = q @ features.T /
    tau`` computed in at least float32 (autocast is disabled for this product), per-sample
    ``ce_i = cross_entropy(logits_i, target_i)`` and
    ``loss = sum_i w[t_i] * ce_i / sum_i w[t_i]`` over samples with ``target != -1``
    (a plain mean with the default unit weights). If no sample has a target, or the weights
    of the batch's clusters sum to zero, the loss is a zero that still depends on ``feats``
    (so ``backward`` works).

    **Update**, for each cluster c present in the batch (targets ``-1`` ignored), with the
    batch's samples normalised first:

    * ``"mean"``: ``q_c`` = the mean of c's samples in the batch, one step
      ``u_c <- normalise(m u_c + (1 - m) q_c)``. It does not depend on the order of the batch.
    * ``"sample"``: one step ``u_c <- normalise(m u_c + (1 - m) x)`` per sample x of c, in
      batch order: Cluster-Contrast's default rule. It agrees with ``"mean"`` when each
      cluster appears at most once in the batch.
    * ``"hard"``: ``q_c`` = c's sample in the batch least similar to the current ``u_c``
      (ties: the first in batch order), one step, as Cluster-Contrast's hard variant.

    All are vectorised over clusters (``index_add_`` / ``scatter_reduce``); ``"sample"``
    takes one vectorised step per position within a cluster (as many as the largest
    cluster's count in the batch, e.g. the instances per identity of a PK sampler), never a
    Python loop over the samples. Features that are not finite are refused, so a NaN cannot
    enter the memory. Under an initialised process group the update first gathers ``feats``
    and ``targets`` from all ranks (in rank order), so every replica applies the same update;
    all ranks must run it.

    **Explicit update or update in backward.** The update in backward is the one-line swap
    for a Cluster-Contrast script (:meth:`from_cluster_contrast`) and cannot be forgotten.
    The explicit :meth:`update` suits loops that do something between ``backward`` and the
    update: gradient accumulation over several forward passes, a backward that may be
    skipped (AMP overflow still updates; a skipped ``backward`` does not), several losses
    over one forward, or an update with other features than the ones in the loss (e.g. a
    momentum encoder's). A backward run twice (``retain_graph=True``) updates twice.

    Examples
    --------
    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> feats = torch.randn(6, 4)
    >>> labels = torch.tensor([0, 0, 1, 1, 2, -1])
    >>> memory = ClusterMemory(4, 3)
    >>> memory.reset(cluster_centroids(feats, labels))
    >>> batch = torch.randn(4, 4, requires_grad=True)
    >>> loss = memory(batch, torch.tensor([0, 1, 2, 2]))
    >>> loss.backward()
    >>> memory.update(batch, torch.tensor([0, 1, 2, 2]))
    >>> torch.allclose(memory.features.norm(dim=1), torch.ones(3))
    True

    The same step as Cluster-Contrast takes it, updated in ``backward``:

    >>> memory = ClusterMemory.from_cluster_contrast(4, 3, temp=0.05, momentum=0.2)
    >>> memory.features = cluster_centroids(feats, labels)
    >>> before = memory.features.clone()
    >>> memory(batch, torch.tensor([0, 1, 2, 2])).backward()
    >>> bool((memory.features != before).any())
    True
    """

    features: torch.Tensor
    cluster_weights: torch.Tensor

    def __init__(
        self,
        num_features: int,
        num_clusters: int,
        *,
        temperature: float = 0.05,
        momentum: float = 0.2,
        mode: str = "mean",
        update_in_backward: bool = False,
    ) -> None:
        super().__init__()
        for name, value in (("num_features", num_features), ("num_clusters", num_clusters)):
            check_int(value, name, low=1)
        temperature = check_real(temperature, "temperature", low=0.0, high=math.inf, open_low=True, open_high=True)
        momentum = check_probability(momentum, "momentum")
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {', '.join(map(repr, _MODES))}; got {mode!r}")
        self.num_features = int(num_features)
        self.temperature = float(temperature)
        self.momentum = float(momentum)
        self.mode = mode
        self.update_in_backward = check_bool(update_in_backward, "update_in_backward")
        self.register_buffer("features", torch.zeros(int(num_clusters), self.num_features))
        self.register_buffer("cluster_weights", torch.ones(int(num_clusters)))
        self._steps_without_update = 0
        self._warned_frozen = False
        self._centroids_checked = False

    @classmethod
    def from_cluster_contrast(
        cls,
        num_features: int,
        num_samples: int,
        temp: float = 0.05,
        momentum: float = 0.2,
        use_hard: bool = False,
    ) -> ClusterMemory:
        """A memory built and trained like Cluster-Contrast's ``ClusterMemory``, under its argument names.

        Cluster-Contrast's ``ClusterMemory(num_features, num_samples, temp, momentum, use_hard)``
        becomes ``ClusterMemory.from_cluster_contrast(...)`` with the same arguments; the loop
        around it (``memory.features = ...``, ``loss = memory(f_out, labels)``,
        ``loss.backward()``) stays as it is.

        Parameters
        ----------
        num_features : int
            Embedding dimension.
        num_samples : int
            Number of clusters (Cluster-Contrast's name for it).
        temp : float, default 0.05
            Softmax temperature (``temperature``).
        momentum : float, default 0.2
            Update momentum.
        use_hard : bool, default False
            ``mode="hard"`` when True, else ``mode="sample"`` (one step per sample in batch
            order, Cluster-Contrast's default).

        Returns
        -------
        ClusterMemory
            With ``update_in_backward=True``: the centroids are updated inside
            ``loss.backward()``, no :meth:`update` call.
        """
        mode = "hard" if check_bool(use_hard, "use_hard") else "sample"
        return cls(num_features, num_samples, temperature=temp, momentum=momentum, mode=mode, update_in_backward=True)

    @property
    def num_clusters(self) -> int:
        """Number of centroids currently held."""
        return self.features.shape[0]

    def extra_repr(self) -> str:
        return (
            f"num_features={self.num_features}, num_clusters={self.num_clusters}, "
            f"temperature={self.temperature}, momentum={self.momentum}, mode={self.mode!r}, "
            f"update_in_backward={self.update_in_backward}"
        )

    # ------------------------------------------------------------------ state
    def _check_weights(self, weights: Any, num: int) -> torch.Tensor:
        w = _as_tensor(weights, "weights")
        if w.ndim != 1 or w.shape[0] != num:
            raise ValueError(f"weights must have shape ({num},) (one per cluster), got {tuple(w.shape)}")
        if not (w.is_floating_point() or w.dtype in (torch.int8, torch.int16, torch.int32, torch.int64)):
            raise TypeError(f"weights must be real numbers, got dtype {w.dtype}")
        w = w.detach().to(self.cluster_weights.dtype)
        if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
            raise ValueError(f"weights must be finite and >= 0, got minimum {float(w.min())}")
        return w

    @torch.no_grad()
    def reset(self, centroids: Any, *, weights: Any = None) -> None:
        """Replace the memory with ``centroids`` (normalised), e.g. from :func:`cluster_centroids`.

        Parameters
        ----------
        centroids : torch.Tensor or array-like, shape (C, D)
            New centroids; C may differ from the current number of clusters. Copied into the
            memory's device and dtype; rows are L2-normalised (the input is not modified).
        weights : torch.Tensor or array-like, shape (C,), optional
            Per-cluster loss weights (>= 0). ``None`` resets them to ones.

        Raises
        ------
        ValueError
            If ``centroids`` is not (C, D) with C >= 1 and D = ``num_features``, or the weights
            have the wrong shape or negative / non-finite values.
        TypeError
            If ``centroids`` is not floating point.
        """
        c = _check_feats(centroids, "centroids")
        if c.shape[0] < 1 or c.shape[1] != self.num_features:
            raise ValueError(f"centroids must have shape (C, {self.num_features}) with C >= 1, got {tuple(c.shape)}")
        new = F.normalize(c.detach().to(device=self.features.device, dtype=self.features.dtype), dim=1)
        w = torch.ones(c.shape[0]) if weights is None else self._check_weights(weights, c.shape[0])
        w = w.to(device=self.cluster_weights.device, dtype=self.cluster_weights.dtype)
        if new.shape == self.features.shape:
            self.features.copy_(new)
            self.cluster_weights.copy_(w)
        else:  # a new number of clusters: replace the buffers (same device and dtype)
            self.features = new.contiguous()
            self.cluster_weights = w.contiguous()
        self._centroids_checked = True

    @torch.no_grad()
    def set_weights(self, weights: Any) -> None:
        """Set the per-cluster loss weights (e.g. CaCL weights after the warm-up).

        Parameters
        ----------
        weights : torch.Tensor or array-like, shape (num_clusters,)
            Finite weights >= 0; ``None`` restores unit weights.

        Raises
        ------
        ValueError
            On a wrong shape or negative / non-finite values.
        """
        if weights is None:
            self.cluster_weights.fill_(1.0)
            return
        self.cluster_weights.copy_(self._check_weights(weights, self.num_clusters))

    # ------------------------------------------------------------------ loss
    def _check_device(self, feats: torch.Tensor) -> None:
        if feats.device != self.features.device:
            raise ValueError(
                f"feats are on {feats.device} but the memory is on {self.features.device}; "
                "move the memory with memory.to(feats.device)"
            )

    def forward(self, feats: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """ClusterNCE loss of a batch against all centroids (see the class Notes).

        Parameters
        ----------
        feats : torch.Tensor, shape (B, D)
            Batch embeddings (normalised here, not in place); gradients flow to them.
        targets : torch.Tensor of int, shape (B,)
            Cluster id of each sample in ``0..C-1``; ``-1`` samples are ignored.

        Returns
        -------
        torch.Tensor
            Scalar loss in at least float32, on ``feats``' device. With
            ``update_in_backward=True``, its ``backward()`` also updates the centroids.

        Raises
        ------
        ValueError
            On wrong shapes, targets outside ``[-1, C-1]`` or a device mismatch.
        TypeError
            If ``feats`` is not floating point or ``targets`` not integer.
        """
        feats, targets = self._checked_batch(feats, targets)
        self._warn_misuse(feats)
        dtype = torch.promote_types(torch.promote_types(feats.dtype, self.features.dtype), torch.float32)
        with torch.autocast(device_type=feats.device.type, enabled=False):
            q = F.normalize(feats.to(dtype), dim=1)
            if self.update_in_backward:
                logits = _ProductUpdatedInBackward.apply(q, targets, self) / self.temperature
            else:
                logits = q @ self.features.to(dtype).T / self.temperature
            valid = targets >= 0
            ce = F.cross_entropy(logits, targets.clamp_min(0), reduction="none")
            w = self.cluster_weights.to(dtype)[targets.clamp_min(0)] * valid.to(dtype)
            total = w.sum()
            return (w * ce).sum() / total.clamp_min(torch.finfo(dtype).tiny)

    def _warn_misuse(self, feats: torch.Tensor) -> None:
        """The two once-per-memory warnings: centroids never set, and centroids frozen (no update)."""
        if not self._centroids_checked:
            self._centroids_checked = True
            if not bool(self.features.any()):
                warnings.warn(
                    "ClusterMemory.forward ran before the centroids were set (all zero): call "
                    "memory.reset(cluster_centroids(feats, labels)) or assign memory.features first",
                    UserWarning,
                    stacklevel=3,
                )
        if not (self.training and feats.requires_grad and torch.is_grad_enabled()):
            return
        self._steps_without_update += 1
        if self._steps_without_update >= STEPS_WITHOUT_UPDATE and not self._warned_frozen:
            self._warned_frozen = True
            warnings.warn(
                f"ClusterMemory.forward ran {self._steps_without_update} training steps without any update, so "
                "the centroids are frozen: call memory.update(feats.detach(), targets) after loss.backward(), "
                "or build the memory with update_in_backward=True (ClusterMemory.from_cluster_contrast does)",
                UserWarning,
                stacklevel=3,
            )

    def _checked_batch(self, feats: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The checks shared by forward and update; targets moved to the features' device."""
        feats = _check_feats(feats)
        self._check_device(feats)
        targets = _check_targets(targets, feats.shape[0]).to(feats.device)
        _check_range(targets, self.num_clusters)
        if feats.shape[1] != self.num_features:
            raise ValueError(f"feats must have {self.num_features} columns, got {feats.shape[1]}")
        return feats, targets

    # ------------------------------------------------------------------ update
    @torch.no_grad()
    def update(self, feats: torch.Tensor, targets: torch.Tensor) -> None:
        """Momentum update of the centroids of the clusters in the batch (see the class Notes).

        Call it after ``loss.backward()``. Under an initialised process group it gathers
        the batch from all ranks first (every rank must call it).

        Parameters
        ----------
        feats : torch.Tensor, shape (B, D)
            The batch embeddings used in :meth:`forward` (detached and normalised here).
        targets : torch.Tensor of int, shape (B,)
            Cluster ids in ``0..C-1``; ``-1`` samples are ignored.

        Raises
        ------
        ValueError
            On wrong shapes, targets outside ``[-1, C-1]``, a device mismatch or features that
            are not finite.
        TypeError
            If ``feats`` is not floating point or ``targets`` not integer.
        RuntimeError
            If the memory updates inside backward (``update_in_backward=True``).
        """
        if self.update_in_backward:
            raise RuntimeError(
                "this ClusterMemory updates its centroids inside loss.backward() (update_in_backward=True); "
                "calling update() too would apply the batch twice"
            )
        self._apply_update(*self._checked_batch(feats, targets))

    @torch.no_grad()
    def _apply_update(self, feats: torch.Tensor, targets: torch.Tensor) -> None:
        """The update of checked ``feats`` / ``targets`` (from :meth:`update` or the backward pass)."""
        if not bool(torch.isfinite(feats).all()):
            row = int(torch.nonzero(~torch.isfinite(feats).all(dim=1))[0, 0])
            raise ValueError(f"feats must be finite to update the memory, got NaN or infinity (first in row {row})")
        self._steps_without_update = 0
        if is_distributed():
            feats = all_gather_tensor(feats.detach())
            targets = all_gather_tensor(targets)
        feats = feats.detach()
        keep = targets >= 0
        if not bool(keep.all()):
            feats, targets = feats[keep], targets[keep]
        if targets.numel() == 0:
            return
        dtype = self.features.dtype
        # normalised samples, one (B, D) temporary in the memory's dtype
        x = (feats / _row_norms(feats, torch.promote_types(feats.dtype, dtype))).to(dtype)
        ids, inverse, counts = torch.unique(targets, return_inverse=True, return_counts=True)
        if ids.shape[0] == targets.shape[0]:  # one sample per cluster: q = x for every mode
            self._step(targets, x)
        elif self.mode == "sample":
            self._sample_steps(targets, x, inverse, counts)
        elif self.mode == "mean":  # sums, then means
            q = torch.zeros((ids.shape[0], x.shape[1]), dtype=dtype, device=x.device).index_add_(0, inverse, x)
            self._step(ids, q.div_(counts.to(dtype).unsqueeze(1)))
        else:  # "hard": least similar sample to the current centroid, first in batch order on ties
            sim = self.features[targets].mul_(x).sum(dim=1)
            lowest = torch.full((ids.shape[0],), math.inf, dtype=sim.dtype, device=sim.device)
            lowest = lowest.scatter_reduce(0, inverse, sim, reduce="amin", include_self=True)
            position = torch.arange(targets.shape[0], device=targets.device)
            position = torch.where(sim == lowest[inverse], position, targets.shape[0])
            first = torch.full((ids.shape[0],), targets.shape[0], dtype=position.dtype, device=targets.device)
            first = first.scatter_reduce(0, inverse, position, reduce="amin", include_self=True)
            self._step(ids, x[first])

    def _sample_steps(
        self, targets: torch.Tensor, x: torch.Tensor, inverse: torch.Tensor, counts: torch.Tensor
    ) -> None:
        """Cluster-Contrast's rule: one step per sample in batch order, vectorised over clusters.

        Step r updates, at once, every cluster with the r-th of its samples (in batch order):
        distinct rows, so the clusters' sequences advance independently and each in order.
        """
        order = torch.sort(inverse, stable=True).indices  # samples grouped by cluster, batch order within
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(inverse.shape[0], device=inverse.device) - starts[inverse[order]]  # position in cluster
        for r in range(int(counts.max())):
            chosen = order[rank == r]
            self._step(targets[chosen], x[chosen])

    def _step(self, rows: torch.Tensor, q: torch.Tensor) -> None:
        """``u <- normalise(m u + (1 - m) q)`` for distinct ``rows`` of the memory."""
        u = self.features[rows]  # a copy, updated in place and written back
        u.lerp_(q, 1.0 - self.momentum)  # m * u + (1 - m) * q
        u.div_(_row_norms(u, self.features.dtype))
        self.features.index_copy_(0, rows, u)
