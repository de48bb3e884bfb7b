"""The trainer both CALR stages are configurations of: named steps to override, hooks to observe and steer.

One epoch of a clustering-based contrastive trainer (Cluster-Contrast, CALR)::

    before_epoch hooks
    features  = extract(train split)                        every rank
    pseudo    = pseudo_label(features, epoch)               rank 0, broadcast: PseudoLabels
    memory.reset(pseudo.centroids, pseudo.weights)
    losses    = train_epoch(epoch, pseudo)                  after_step hooks at every step
    metrics   = evaluate() when due
    after_epoch hooks (with the epoch's record), checkpoint

``build_encoder``, ``build_classifier``, ``build_memory`` and ``build_optimizer`` make the
parts. A subclass replaces a step by overriding its method; a :class:`Hook` observes the run
(logging, metrics files) or steers it (:meth:`Trainer.request_stop`, a learning-rate change).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..._optional import import_optional
from ..._progress import Progress, console_progress
from ..._types import KnnGraph
from ...cluster import cluster_centroids
from ...data import PKSampler
from ...metrics import cluster_report
from ...nn import (
    CameraClassifier,
    ClusterMemory,
    all_gather_tensor,
    broadcast_object,
    camera_domain_loss,
    convert_batchnorm,
)
from ...nn import extract_features as _extract_features
from ...refine import relabel
from ...retrieval import evaluate_retrieval
from .config import AlignmentConfig, OptimConfig, RuntimeConfig, _TrainConfig
from .data import RunData, build_data
from .models import TrainNet, build_encoder
from .runtime import RunInterrupted, Session, logger, read_log, user_input

__all__ = ["Hook", "PseudoLabels", "RunResult", "Trainer"]


@runtime_checkable
class _AlignedConfig(Protocol):
    """A training config with a camera-domain loss section (:class:`InterConfig`)."""

    @property
    def alignment(self) -> AlignmentConfig: ...


@dataclass(frozen=True, eq=False)
class PseudoLabels:
    """The pseudo labels of one epoch: what :meth:`Trainer.pseudo_label` returns.

    Attributes
    ----------
    labels : numpy.ndarray of int64, shape (N,)
        One label per training sample: contiguous cluster ids ``0..C-1``, -1 for samples that
        do not train this epoch.
    centroids : numpy.ndarray, shape (C, D)
        The normalised mean feature of each cluster (:func:`labelrefine.cluster_centroids`),
        the memory's start.
    weights : numpy.ndarray of shape (C,) or None
        Per-cluster loss weights (CaCL), ``None`` for uniform weights.
    stats : mapping
        Numbers written to the epoch's log record (``n_clusters``, cluster quality...).
    """

    labels: np.ndarray
    centroids: np.ndarray
    weights: np.ndarray | None = None
    stats: Mapping[str, Any] = field(default_factory=dict)

    @property
    def n_clusters(self) -> int:
        """C, the number of clusters."""
        return int(self.centroids.shape[0])


class Hook:
    """Base of the trainer's hooks; override the methods you need (each does nothing here).

    A hook receives the trainer, so it can read its parts (``trainer.optimizer``,
    ``trainer.net``, ``trainer.config``...), change them (a learning rate) or call
    :meth:`Trainer.request_stop`. Hooks run on every process; write files on
    ``trainer.session.is_main`` only.
    """

    def before_epoch(self, trainer: Trainer, epoch: int) -> None:
        """Before the epoch's features are extracted."""

    def after_step(self, trainer: Trainer, epoch: int, it: int, losses: Mapping[str, torch.Tensor]) -> None:
        """After optimisation step ``it`` of the epoch; ``losses`` are detached scalar tensors."""

    def after_epoch(self, trainer: Trainer, epoch: int, record: Mapping[str, Any]) -> None:
        """After the epoch is trained, evaluated and logged, before its checkpoint."""


@dataclass(frozen=True, eq=False)
class RunResult:
    """What a training stage returns (on every process; ``history`` and ``metrics`` on rank 0).

    Attributes
    ----------
    stage : str
        ``"intra"`` or ``"inter"``.
    run_dir : pathlib.Path
        The run folder.
    history : list of dict
        The records of ``log.jsonl`` (every epoch of the run, resumed ones included).
    labels : numpy.ndarray or None
        Stage 1: the local labels (also in ``local_labels.npz``). Stage 2: the pseudo labels of
        the last epoch (refined, contiguous ids, -1 unused).
    metrics : dict or None
        Stage 2: the last retrieval evaluation (``mAP``, ``rank1``...), or with
        ``report_epoch="best"`` the one of the epoch with the highest test-set mAP (and its
        ``epoch``); stage 1: the cluster quality of the local labels when identities are known.
    encoder : torch.nn.Module
        The trained encoder (stage 2; the last camera's for stage 1), in eval mode.
    """

    stage: str
    run_dir: Path
    history: list[dict[str, Any]]
    labels: np.ndarray | None
    metrics: dict[str, Any] | None
    encoder: nn.Module


def quality(pids: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Cluster quality of ``labels`` against the known identities (rounded for the log)."""
    known = pids >= 0
    report = cluster_report(pids[known], labels[known])
    return {key: (round(value, 6) if isinstance(value, float) else value) for key, value in report._asdict().items()}


class Trainer:
    """A clustering-based contrastive trainer with named steps and hooks; :class:`IntraTrainer` and
    :class:`InterTrainer` are its two CALR configurations.

    Parameters
    ----------
    config : IntraConfig or InterConfig
        The stage's resolved config.
    hooks : iterable of Hook, optional
        Called in order at each hook point.
    resume : bool, default False
        Continue the run in ``config.runtime.run_dir`` from its checkpoint.

    Attributes
    ----------
    session : Session
        Device, process group, run folder (set while :meth:`fit` runs).
    data : RunData
        The datasets and per-sample arrays.
    net : TrainNet
        Encoder and optional camera classifier; ``model`` is the same network, wrapped in
        DistributedDataParallel when several processes train.
    memory, optimizer, scheduler, scaler :
        The cluster memory, the optimiser, its learning-rate schedule and the AMP gradient scaler.
    """

    STAGE: ClassVar[str] = ""

    def __init__(self, config: _TrainConfig, *, hooks: Iterable[Hook] = (), resume: bool = False) -> None:
        self.config = config
        self.hooks = list(hooks)
        self.resume = resume
        self.session: Session
        self.data: RunData
        self.checkpoint: dict[str, Any] | None = None
        self._stop = False

    # ------------------------------------------------------------------ build steps
    def build_encoder(self) -> nn.Module:
        """The encoder: maps a batch of inputs ``batch["img"]`` to embeddings (B, D)."""
        return build_encoder(self.config.model, self.data.input_dim)

    def build_classifier(self, dim: int) -> CameraClassifier | None:
        """The camera classifier on the ``dim``-wide embedding (``None``: no domain loss)."""
        return None

    def build_memory(self, dim: int) -> ClusterMemory:
        """The cluster memory (reset to the centroids every epoch)."""
        o = self.config.optim
        return ClusterMemory(dim, 1, temperature=o.temperature, momentum=o.momentum, mode=o.memory_mode)

    def build_optimizer(self, net: TrainNet) -> tuple[torch.optim.Optimizer, Any]:
        """Optimiser over the encoder (and the classifier, at ``cam_lr_mult`` x lr) and its step schedule."""
        o = self.config.optim
        groups: list[dict[str, Any]] = [{"params": [p for p in net.encoder.parameters() if p.requires_grad]}]
        if net.classifier is not None:
            config = self.config
            if not isinstance(config, _AlignedConfig):
                raise TypeError(
                    f"a camera classifier trains at alignment.cam_lr_mult x optim.lr, but the "
                    f"{type(config).__name__} has no alignment section"
                )
            lr = o.lr * config.alignment.cam_lr_mult
            groups.append({"params": [p for p in net.classifier.parameters() if p.requires_grad], "lr": lr})
        if o.optimizer == "sgd":
            optimizer: torch.optim.Optimizer = torch.optim.SGD(
                groups, lr=o.lr, momentum=0.9, weight_decay=o.weight_decay
            )
        else:
            optimizer = torch.optim.Adam(groups, lr=o.lr, weight_decay=o.weight_decay)
        return optimizer, torch.optim.lr_scheduler.StepLR(optimizer, step_size=o.lr_step, gamma=o.lr_gamma)

    def build(self, encoder: nn.Module | None = None) -> None:
        """Make the parts: encoder (``build_encoder`` unless given), classifier, memory, optimiser."""
        session = self.session
        encoder = self.build_encoder() if encoder is None else encoder
        dim = self.embedding_dim(encoder)
        net = TrainNet(encoder, self.build_classifier(dim))
        if session.distributed and self.config.sync_bn:
            converted = convert_batchnorm(net, session.device)
            if not isinstance(converted, TrainNet):  # never: a root that is no BatchNorm layer comes back
                raise TypeError(f"convert_batchnorm returned a {type(converted).__name__}, not the TrainNet")
            net = converted
        self.net = net.to(session.device)
        self.model: nn.Module = self.net
        if session.distributed:
            device_ids = [session.device.index] if session.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.net, device_ids=device_ids)
        self.memory = self.build_memory(dim).to(session.device)
        self.optimizer, self.scheduler = self.build_optimizer(self.net)
        self.scaler = torch.amp.GradScaler("cuda", enabled=session.amp)

    def embedding_dim(self, encoder: nn.Module) -> int:
        """D: the encoder's ``num_features``, or the width of its output on one training sample."""
        dim = getattr(encoder, "num_features", None)
        if dim:
            return int(dim)
        encoder.eval()
        with torch.no_grad():
            return int(encoder(self.data.train_eval[0]["img"].unsqueeze(0)).shape[1])

    # ------------------------------------------------------------------ epoch steps
    def extract(self, dataset: Any) -> np.ndarray:
        """Embeddings of ``dataset`` with the current encoder (every rank gets all of them)."""
        return extract(self.session, self.config.runtime, self.net.encoder, dataset)

    def search(self, feats: np.ndarray) -> KnnGraph | None:
        """The epoch's kNN graph when every process takes part in the search (all ranks call it).

        ``None`` (the default) leaves the search to :meth:`pseudo_label` on rank 0; a trainer
        that returns a graph on rank 0 (:func:`labelrefine.nn.sharded_knn` under ``torchrun``)
        gets it there as ``graph``.
        """
        return None

    def pseudo_label(self, feats: np.ndarray, epoch: int, graph: KnnGraph | None = None) -> PseudoLabels:
        """The epoch's pseudo labels from the training features (runs on rank 0 only)."""
        raise NotImplementedError

    def progress(self) -> Progress | None:
        """The callback the library's long steps report to: tqdm bars or one log line per step (rank 0)."""
        session = getattr(self, "session", None)  # a trainer used without fit() has none
        if session is None or not session.is_main:
            return None
        return console_progress(bars=session.progress(), write=logger.info)

    def pack(self, labels: Any, feats: np.ndarray, weights: np.ndarray | None = None, **stats: Any) -> PseudoLabels:
        """:class:`PseudoLabels` from any labelling: contiguous ids, centroids, cluster counts in ``stats``."""
        labels = relabel(labels)
        n_clusters = int(labels.max()) + 1 if (labels >= 0).any() else 0
        stats = {"n_clusters": n_clusters, "n_outliers": int((labels < 0).sum()), **stats}
        centroids = cluster_centroids(feats, labels) if n_clusters else np.zeros((0, feats.shape[1]), feats.dtype)
        return PseudoLabels(labels, centroids, weights, stats)

    def training_set(self) -> Any:
        """The dataset whose features :meth:`pseudo_label` receives (the training split, test transform)."""
        return self.data.train_eval

    def epoch_seed(self, epoch: int) -> int:
        """Seed of the epoch's batches (and of a random refinement)."""
        raise NotImplementedError

    def domain_weight(self, epoch: int) -> float:
        """Weight of the camera-domain loss in ``epoch`` (used when a classifier exists)."""
        return 0.0

    def reversal_strength(self, epoch: int, it: int) -> float | None:
        """Gradient-reversal strength at step ``it`` (``None``: leave the classifier's as it is)."""
        return None

    def batches(self, labels: np.ndarray, epoch: int) -> np.ndarray | None:
        """The epoch's global batches (``global_batches``), the same on every process."""
        cams, world = self.data.train_cams, self.session.world_size
        return global_batches(labels, cams, self.config.optim, world, self.epoch_seed(epoch))

    def train_epoch(self, epoch: int, pseudo: PseudoLabels) -> dict[str, float]:
        """``iters_per_epoch`` steps of ClusterNCE (+ the weighted camera-domain loss); mean losses."""
        session, net, device = self.session, self.net, self.session.device
        batches = self.batches(pseudo.labels, epoch)
        if batches is None:
            logger.warning("%s: no cluster to train on, skipping the epoch's training", self.describe(epoch))
            return {}
        per_rank = batches.shape[1] // session.world_size
        local = batches[:, session.rank * per_rank : (session.rank + 1) * per_rank]
        loader = DataLoader(
            self.data.train_aug,
            batch_sampler=local.tolist(),
            num_workers=self.config.runtime.num_workers,
            pin_memory=device.type == "cuda",
        )
        labels_t = torch.from_numpy(pseudo.labels)
        cams_t = torch.from_numpy(np.asarray(self.data.train_cams, dtype=np.int64))
        beta, sums = self.domain_weight(epoch), torch.zeros(3, dtype=torch.float64, device=device)
        tqdm = import_optional("tqdm").tqdm
        net.train()
        with tqdm(total=len(local), desc=self.describe(epoch), leave=False, disable=not session.progress()) as bar:
            for it, (idx, batch) in enumerate(zip(local, loader, strict=True)):
                index = torch.from_numpy(idx)
                targets = labels_t[index].to(device)
                strength = self.reversal_strength(epoch, it)
                if strength is not None and net.classifier is not None:
                    net.classifier.set_lambda(strength)
                losses = self.step(batch["img"].to(device, non_blocking=True), targets, cams_t[index].to(device), beta)
                sums += torch.stack(list(losses.values())).double()
                for hook in self.hooks:
                    hook.after_step(self, epoch, it, losses)
                bar.update(1)
        mean = (sums / len(local)).tolist()
        return {"loss": mean[0], "loss_inter": mean[1], "loss_domain": mean[2]}

    def step(self, x: torch.Tensor, targets: torch.Tensor, cams: torch.Tensor, beta: float) -> dict[str, torch.Tensor]:
        """One optimisation step; returns the detached ``loss``, ``loss_inter`` and ``loss_domain``."""
        session = self.session
        with torch.autocast(device_type=session.device.type, dtype=torch.float16, enabled=session.amp):
            emb, logits = self.model(x)
        loss_inter = self.memory(emb, targets)
        if session.distributed:
            loss_inter = loss_inter * self._balance_factor(targets)
        loss, loss_domain = loss_inter, torch.zeros((), device=x.device)
        if logits is not None:  # with beta = 0 too, so that DDP sees every parameter used
            loss_domain = camera_domain_loss(logits.float(), cams)
            loss = loss + beta * loss_domain
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.memory.update(emb.detach().float(), targets)
        return {"loss": loss.detach(), "loss_inter": loss_inter.detach(), "loss_domain": loss_domain.detach()}

    def _balance_factor(self, targets: torch.Tensor) -> torch.Tensor:
        """Scale of one process's ClusterNCE so that DDP's gradient average is that of the global batch.

        Each process's loss is ``S_r / W_r`` (its weighted sum over its weight total); DDP averages
        gradients over processes, so ``world * W_r / W_total`` turns it into ``S / W`` of the
        global batch. 1 for unit weights and equal per-process batches.
        """
        weights = self.memory.cluster_weights[targets.clamp_min(0)] * (targets >= 0)
        local = weights.sum().detach().reshape(1)
        total = all_gather_tensor(local).sum()
        return self.session.world_size * local[0] / total.clamp_min(torch.finfo(total.dtype).tiny)

    def evaluate(self) -> dict[str, Any] | None:
        """Retrieval mAP, CMC and mINP on the query / gallery splits (rank 0; ``None`` elsewhere)."""
        return retrieval_metrics(self.session, self.config.runtime, self.net.encoder, self.data)

    def evaluate_due(self, epoch: int) -> bool:
        """Whether to evaluate after ``epoch``."""
        return False

    # ------------------------------------------------------------------ the loop
    def request_stop(self) -> None:
        """End the run after the current epoch (its checkpoint is written; ``fit`` returns normally)."""
        self._stop = True

    def describe(self, epoch: int) -> str:
        """The epoch's name in progress bars and warnings."""
        return f"epoch {epoch + 1}/{self.config.optim.epochs}"

    def run_epoch(self, epoch: int, step: int) -> dict[str, Any]:
        """One epoch (see the module docstring); returns its log record."""
        tic = time.time()
        for hook in self.hooks:
            hook.before_epoch(self, epoch)
        feats = self.extract(self.training_set())
        graph = self.search(feats)  # a collective: every rank takes part
        pseudo = None
        if self.session.is_main:  # a trainer without search() keeps pseudo_label(feats, epoch)
            pseudo = self.pseudo_label(feats, epoch) if graph is None else self.pseudo_label(feats, epoch, graph)
        pseudo = broadcast_object(pseudo)
        losses: dict[str, float] = {}
        if pseudo.n_clusters:
            weights = None if pseudo.weights is None else torch.from_numpy(pseudo.weights)
            self.memory.reset(torch.from_numpy(pseudo.centroids), weights=weights)
            losses = self.train_epoch(epoch, pseudo)
        else:
            logger.warning("%s: every sample is an outlier, no training this epoch", self.describe(epoch))
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        metrics = self.evaluate() if self.evaluate_due(epoch) else None
        record = {"stage": self.STAGE, "step": step, **self.record_keys(), "epoch": epoch, "lr": lr}
        record.update({**pseudo.stats, **losses, **(metrics or {})})
        self.end_epoch(epoch, pseudo, record)
        record["seconds"] = round(time.time() - tic, 3)
        self.session.append_log(record)
        self.log_epoch(epoch, record)
        for hook in self.hooks:
            hook.after_epoch(self, epoch, record)
        self.session.save_checkpoint({**self.states(), **self.checkpoint_extra(epoch, step, pseudo)})
        return record

    def record_keys(self) -> dict[str, Any]:
        """Keys that identify the epoch in its log record besides ``step`` and ``epoch``."""
        return {}

    def end_epoch(self, epoch: int, pseudo: PseudoLabels, record: dict[str, Any]) -> None:
        """Called after training and evaluation, before the record is logged (may add keys to it)."""

    def log_epoch(self, epoch: int, record: Mapping[str, Any]) -> None:
        """The epoch's line in ``train.log``."""
        loss = record.get("loss", float("nan"))
        logger.info(
            "%s: %d clusters, loss %.3f, %.1f s", self.describe(epoch), record["n_clusters"], loss, record["seconds"]
        )

    def states(self) -> dict[str, Any]:
        """The state dicts of the parts, for the checkpoint."""
        net = self.net
        return {
            "encoder": net.encoder.state_dict(),
            "classifier": None if net.classifier is None else net.classifier.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "memory": {k: v.detach().cpu() for k, v in self.memory.state_dict().items()},
        }

    def load_states(self, checkpoint: Mapping[str, Any]) -> None:
        """Restore the parts from a checkpoint written by :meth:`states`."""
        self.net.encoder.load_state_dict(checkpoint["encoder"])
        if self.net.classifier is not None and checkpoint.get("classifier") is not None:
            self.net.classifier.load_state_dict(checkpoint["classifier"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        if checkpoint.get("scaler"):
            self.scaler.load_state_dict(checkpoint["scaler"])

    def checkpoint_extra(self, epoch: int, step: int, pseudo: PseudoLabels) -> dict[str, Any]:
        """What the checkpoint holds besides :meth:`states` to resume after ``step``."""
        return {"epoch": epoch, "step": step}

    def should_stop(self, step: int, last: bool) -> bool:
        """After a checkpoint: end the run (a hook's request), or raise at ``stop_after_epoch``."""
        if self.config.stop_after_epoch is not None and step == self.config.stop_after_epoch and not last:
            raise RunInterrupted(str(self.session.run_dir), step)
        return self._stop

    def fit(self) -> RunResult:
        """Run the stage: prepare the run folder and data, then :meth:`train`; returns its result."""
        with contextlib.ExitStack() as stack:
            with user_input():
                self.session = session = stack.enter_context(Session(self.config, resume=self.resume))
                self.checkpoint = session.prepare_run_dir()
                self.data = build_data(self.config)
                self.check_data()
            session.seed_everything()
            self.train()
            session.barrier()
            self.net.encoder.eval()
            return self.result()

    def check_data(self) -> None:
        """Check the settings against the data before anything trains."""

    def train(self) -> None:
        """The stage's loop: :meth:`build`, then :meth:`run_epoch` over the epochs (and, in stage 1, cameras)."""
        raise NotImplementedError

    def result(self) -> RunResult:
        """What :meth:`fit` returns, after the loop and a barrier."""
        raise NotImplementedError

    def history(self) -> list[dict[str, Any]]:
        """The run's log records (rank 0; an empty list elsewhere)."""
        return read_log(self.session.run_dir) if self.session.is_main else []


def global_batches(
    labels: np.ndarray, cams: np.ndarray, optim: OptimConfig, world: int, seed: int
) -> np.ndarray | None:
    """``optim.iters_per_epoch`` global batches (rows of sample indices); ``None`` without a cluster.

    Drawn with one :class:`labelrefine.data.PKSampler` for the whole global batch (rank 0 of 1),
    so the batches do not depend on the number of processes; each process then takes its slice.
    P shrinks to the clusters available, rounded down to a multiple of ``world``.
    """
    n_clusters = int(labels.max()) + 1 if (labels >= 0).any() else 0
    p = min(optim.identities_per_step, n_clusters)
    p -= p % world
    if p < 1:
        return None
    if p < optim.identities_per_step:
        logger.warning(
            "only %d clusters: %d identities per step instead of %d", n_clusters, p, optim.identities_per_step
        )
    sampler = PKSampler(labels, cams, p=p, k=optim.num_instances, rng=seed, rank=0, world_size=1)
    rows, total, passes = [], 0, 0
    while total < optim.iters_per_epoch:
        batch = sampler.epoch_batches(passes)
        rows.append(batch)
        total += batch.shape[0]
        passes += 1
    return np.concatenate(rows)[: optim.iters_per_epoch]


def fill(members: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """A length-``n`` int64 array with ``values`` at ``members`` and -1 elsewhere."""
    out = np.full(n, -1, dtype=np.int64)
    out[members] = values
    return out


def quality_stats(data: RunData, members: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """``{"quality": ...}`` of ``labels`` (of the samples ``members``) when identities are known, else ``{}``."""
    return {"quality": quality(data.train_pids[members], labels)} if data.identities_known else {}


def extract(session: Session, runtime: RuntimeConfig, encoder: nn.Module, dataset: Any, *, flip: bool = False) -> Any:
    """Embeddings of ``dataset`` (every rank gets all of them)."""
    return _extract_features(
        encoder,
        dataset,
        batch_size=runtime.test_batch_size,
        device=session.device,
        flip=flip,
        progress=session.progress(),
        num_workers=runtime.num_workers,
    )


def retrieval_metrics(
    session: Session,
    runtime: RuntimeConfig,
    encoder: nn.Module,
    data: RunData,
    *,
    flip: bool = False,
    rerank: bool = False,
) -> dict[str, Any] | None:
    """mAP, rank-1/5/10, mINP on the query / gallery splits (rank 0; ``None`` elsewhere or without splits)."""
    if not data.can_evaluate:
        return None
    query = extract(session, runtime, encoder, data.query, flip=flip)
    gallery = extract(session, runtime, encoder, data.gallery, flip=flip)
    if not session.is_main:
        return None
    result = evaluate_retrieval(
        data.query_pids,
        data.gallery_pids,
        query_cams=data.query_cams,
        gallery_cams=data.gallery_cams,
        query_feats=query,
        gallery_feats=gallery,
        rerank=rerank,
        progress=console_progress(bars=session.progress(), write=logger.info),
    )
    out: dict[str, Any] = {"mAP": result.mAP}
    out.update({f"rank{k}": result.rank(k) for k in (1, 5, 10) if k <= result.cmc.shape[0]})
    out.update(mINP=result.mINP, n_valid_queries=result.n_valid_queries)
    return out
