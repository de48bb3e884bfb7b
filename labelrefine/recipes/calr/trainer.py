"""The trainer both CALR stages are configurations of: it owns the loop; steps to override, hooks to observe and steer.

The loop of :meth:`Trainer.fit` (the base class runs it; a stage only configures it)::

    build_data(), check_data()
    setup()                       build the parts, restore a checkpoint: the first epoch to run
    before_train hooks
    for each epoch of the run (num_epochs(); stage 1: cameras x epochs):
        start_epoch(step)         stage 1: a fresh encoder for a new camera
        before_epoch hooks
        features = extract(training_set())                  every rank
        pseudo   = pseudo_label(features, epoch)            rank 0, broadcast: PseudoLabels
        memory.reset(pseudo.centroids, pseudo.weights)
        train_epoch(epoch, pseudo): for each batch
            train_step(epoch, it, batch): forward(batch) -> outputs,
                losses(batch, outputs) -> {name: tensor}, weighted by loss_weights(epoch), summed, backward
            after_step hooks
        end_epoch(epoch, pseudo, record)
        after_epoch hooks         built in: LR schedule, evaluation, logging, best epoch, checkpoint
        stop: request_stop() from a hook, or stop_after_epoch (RunInterrupted)
    finish()                      stage 1: write local_labels.npz
    result(), after_train hooks

``build_data``, ``build_encoder``, ``build_classifier``, ``build_memory``, ``build_optimizer``
and ``build_hooks`` make the parts. A subclass replaces a step by overriding its method; a
:class:`Hook` observes the run (logging, metrics files) or steers it
(:meth:`Trainer.request_stop`, a learning-rate change).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

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
from ...nn import CameraClassifier, ClusterMemory, all_gather_tensor, broadcast_object, convert_batchnorm
from ...nn import extract_features as _extract_features
from ...refine import relabel
from ...retrieval import evaluate_retrieval
from .config import OptimConfig, RuntimeConfig, _TrainConfig
from .data import RunData
from .data import build_data as _build_data
from .hooks import CheckpointHook, EvaluationHook, Hook, LoggingHook, LRScheduleHook, load_hook, sort_hooks
from .models import TrainNet, build_encoder
from .runtime import RunInterrupted, Session, logger, read_log, set_rng_state, user_input

__all__ = ["Hook", "PseudoLabels", "RunResult", "Trainer"]


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
    """A clustering-based contrastive trainer that owns its loop; :class:`IntraTrainer` and
    :class:`InterTrainer` are its two CALR configurations.

    The loop (see the module docstring) runs the epochs, resume and stop. A subclass chooses the
    steps (``pseudo_label``, ``forward``, ``losses``...), the losses and the hooks; it does not
    write a loop.

    Parameters
    ----------
    config : IntraConfig or InterConfig
        The stage's resolved config. The hooks named in ``config.runtime.hooks`` (import paths,
        see ``labelrefine.recipes.calr.hooks.load_hook``) are added to ``hooks``.
    hooks : iterable of Hook, optional
        The user's hooks, added to the built-in ones.
    resume : bool, default False
        Continue the run in ``config.runtime.run_dir`` from its checkpoint.
    default_hooks : bool, default True
        Start ``hooks`` with :meth:`build_hooks` (LR schedule, evaluation, logging, checkpoint);
        ``False`` runs only the hooks given and those of the config.

    Attributes
    ----------
    hooks : list of Hook
        Every hook of the run, built-in ones first; edit the list before :meth:`fit` to remove or
        replace one. They run in the order of their ``priority`` (module ``labelrefine.recipes.calr.hooks``).
    session : Session
        Device, process group, run folder (``session.folder``), set while :meth:`fit` runs.
    data : RunData
        The datasets and per-sample arrays (:meth:`build_data`).
    net : TrainNet
        Encoder and optional camera classifier; ``model`` is the same network, wrapped in
        DistributedDataParallel when several processes train.
    memory, optimizer, scheduler, scaler :
        The cluster memory, the optimiser, its learning-rate schedule and the AMP gradient scaler.
    epoch, epoch_step : int
        The epoch being trained: its number in its phase and its index over the run (the
        ``step`` of its log record).
    pseudo : PseudoLabels
        The pseudo labels of the epoch being trained.
    labels : numpy.ndarray or None
        The pseudo labels of the last epoch trained.
    metrics : dict or None
        The last evaluation (set by :class:`~labelrefine.recipes.calr.EvaluationHook`).
    """

    STAGE: ClassVar[str] = ""

    def __init__(
        self,
        config: _TrainConfig,
        *,
        hooks: Iterable[Hook] = (),
        resume: bool = False,
        default_hooks: bool = True,
    ) -> None:
        self.config = config
        self.resume = resume
        with user_input():  # a bad import path is the user's input: one line on the command line
            named = [load_hook(path) for path in config.runtime.hooks]
        self.hooks: list[Hook] = [*(self.build_hooks() if default_hooks else []), *hooks, *named]
        self.session: Session
        self.data: RunData
        self.checkpoint: dict[str, Any] | None = None
        self.labels: np.ndarray | None = None
        self.metrics: dict[str, Any] | None = None
        self.pseudo: PseudoLabels
        self.epoch, self.epoch_step, self.epoch_started = 0, 0, 0.0
        self._stop = False
        self._ordered: list[Hook] = []

    # ------------------------------------------------------------------ build steps
    def build_hooks(self) -> list[Hook]:
        """The built-in hooks: learning-rate schedule, evaluation, logging, checkpoint (see ``calr.hooks``)."""
        return [LRScheduleHook(), EvaluationHook(), LoggingHook(), CheckpointHook()]

    def build_data(self) -> RunData:
        """The datasets and per-sample arrays of the run (``labelrefine.recipes.calr.data.build_data``)."""
        return _build_data(self.config)

    def build_encoder(self) -> nn.Module:
        """The encoder: maps a batch of inputs ``batch["img"]`` to embeddings (B, D)."""
        return build_encoder(self.config.model, self.data.input_dim)

    def build_classifier(self, dim: int) -> CameraClassifier | None:
        """A head on the ``dim``-wide embedding (``None`` here; :class:`InterTrainer`: the camera classifier)."""
        return None

    def build_memory(self, dim: int) -> ClusterMemory:
        """The cluster memory (reset to the centroids every epoch)."""
        o = self.config.optim
        return ClusterMemory(dim, 1, temperature=o.temperature, momentum=o.momentum, mode=o.memory_mode)

    def param_groups(self, net: TrainNet) -> list[dict[str, Any]]:
        """The optimiser's parameter groups: the encoder, and the classifier if there is one (at ``optim.lr``)."""
        groups: list[dict[str, Any]] = [{"params": [p for p in net.encoder.parameters() if p.requires_grad]}]
        if net.classifier is not None:
            groups.append({"params": [p for p in net.classifier.parameters() if p.requires_grad]})
        return groups

    def build_optimizer(self, net: TrainNet) -> tuple[torch.optim.Optimizer, Any]:
        """Optimiser over :meth:`param_groups` and its step schedule."""
        o = self.config.optim
        groups = self.param_groups(net)
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

    # ------------------------------------------------------------------ pseudo labels
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

    def make_pseudo_labels(self, epoch: int) -> PseudoLabels:
        """Features of :meth:`training_set`, :meth:`search`, :meth:`pseudo_label` on rank 0, broadcast."""
        feats = self.extract(self.training_set())
        graph = self.search(feats)  # a collective: every rank takes part
        pseudo = None
        if self.session.is_main:  # a trainer without search() keeps pseudo_label(feats, epoch)
            pseudo = self.pseudo_label(feats, epoch) if graph is None else self.pseudo_label(feats, epoch, graph)
        return broadcast_object(pseudo)

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

    # ------------------------------------------------------------------ training steps
    def batches(self, labels: np.ndarray, epoch: int) -> np.ndarray | None:
        """The epoch's global batches (``global_batches``), the same on every process."""
        cams, world = self.data.train_cams, self.session.world_size
        return global_batches(labels, cams, self.config.optim, world, self.epoch_seed(epoch))

    def train_epoch(self, epoch: int, pseudo: PseudoLabels) -> dict[str, float]:
        """``iters_per_epoch`` calls of :meth:`train_step`; the mean of every loss over the epoch.

        The batch a step receives holds ``img`` (on the device), ``targets`` (the pseudo labels),
        ``cams`` and ``index`` (the samples' positions in the training set).
        """
        session, device = self.session, self.session.device
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
        sums: dict[str, torch.Tensor] = {}
        tqdm = import_optional("tqdm").tqdm
        self.net.train()
        with tqdm(total=len(local), desc=self.describe(epoch), leave=False, disable=not session.progress()) as bar:
            for it, (idx, loaded) in enumerate(zip(local, loader, strict=True)):
                index = torch.from_numpy(idx)
                batch = {
                    "img": loaded["img"].to(device, non_blocking=True),
                    "targets": labels_t[index].to(device),
                    "cams": cams_t[index].to(device),
                    "index": index,
                }
                losses = self.train_step(epoch, it, batch)
                for key, value in losses.items():  # summed on the device: no synchronisation per step
                    sums[key] = sums.get(key, torch.zeros((), dtype=torch.float64, device=device)) + value.double()
                self.call_hooks("after_step", epoch, it, losses)
                bar.update(1)
        return {key: float(total / len(local)) for key, total in sums.items()}

    def forward(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """The network on ``batch["img"]`` (autocast with AMP): ``embeddings``, with a classifier ``camera_logits``."""
        session = self.session
        with torch.autocast(device_type=session.device.type, dtype=torch.float16, enabled=session.amp):
            emb, logits = self.model(batch["img"])
        outputs = {"embeddings": emb}
        if logits is not None:
            outputs["camera_logits"] = logits
        return outputs

    def losses(self, batch: Mapping[str, Any], outputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The loss terms of a step, by name; each is logged, and their weighted sum is the ``loss`` trained.

        Here ``loss_inter``: ClusterNCE of the embeddings against the cluster memory (balanced
        over processes under DistributedDataParallel). A subclass adds a term with
        ``out = super().losses(batch, outputs); out["loss_mine"] = ...; return out``.
        """
        targets = batch["targets"]
        loss_inter = self.memory(outputs["embeddings"], targets)
        if self.session.distributed:
            loss_inter = loss_inter * self._balance_factor(targets)
        return {"loss_inter": loss_inter}

    def loss_weights(self, epoch: int) -> Mapping[str, float]:
        """Weights of the terms of :meth:`losses` in ``epoch``'s sum (a term not named here weighs 1)."""
        return {}

    def train_step(self, epoch: int, it: int, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """One optimisation step; returns the detached ``loss`` (the weighted sum) and every term of :meth:`losses`."""
        outputs = self.forward(batch)
        terms = self.losses(batch, outputs)
        if not terms or "loss" in terms:
            raise ValueError(
                "losses() must return at least one term and no key 'loss' (the trainer's weighted sum), "
                f"got {sorted(terms)}"
            )
        weights = self.loss_weights(epoch)
        loss: torch.Tensor | None = None
        for key, value in terms.items():
            weight = weights.get(key, 1.0)
            term = value if weight == 1.0 else weight * value  # a weight 0 keeps the term in the graph (DDP)
            loss = term if loss is None else loss + term
        assert loss is not None
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.memory.update(outputs["embeddings"].detach().float(), batch["targets"])
        return {"loss": loss.detach(), **{key: value.detach() for key, value in terms.items()}}

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
        """Whether to evaluate after ``epoch`` (read by :class:`~labelrefine.recipes.calr.EvaluationHook`)."""
        return False

    # ------------------------------------------------------------------ the loop
    def call_hooks(self, point: str, *args: Any) -> None:
        """Call ``point`` (``"before_epoch"``...) of every hook, in the order of their priority."""
        for hook in self._ordered:
            getattr(hook, point)(self, *args)

    def request_stop(self) -> None:
        """End the run after the current epoch (its checkpoint is written; ``fit`` returns normally)."""
        self._stop = True

    def describe(self, epoch: int) -> str:
        """The epoch's name in progress bars and warnings."""
        return f"epoch {epoch + 1}/{self.config.optim.epochs}"

    def num_epochs(self) -> int:
        """Epochs of the whole run (``optim.epochs``; stage 1: cameras x epochs), counted by ``step``."""
        return self.config.optim.epochs

    def setup(self) -> int:
        """Before the loop: :meth:`build`, then :meth:`restore`; returns the first ``step`` to run."""
        self.build()
        return self.restore()

    def restore(self) -> int:
        """Continue from the checkpoint (parts, log, random state); the first ``step`` to run (0 without one)."""
        checkpoint = self.checkpoint
        if checkpoint is None:
            return 0
        self.load_states(checkpoint)
        step = int(checkpoint["step"])
        self.session.folder.truncate_log(step)
        set_rng_state(checkpoint["rng"])
        logger.info("resuming %s at epoch %d", self.STAGE, step + 1)
        return step + 1

    def start_epoch(self, step: int) -> int:
        """Prepare the run's epoch ``step``; returns its number in its phase (here ``step`` itself)."""
        return step

    def run_epoch(self, epoch: int, step: int) -> dict[str, Any]:
        """One epoch (see the module docstring); returns its log record."""
        self.epoch, self.epoch_step, self.epoch_started = epoch, step, time.time()
        self.call_hooks("before_epoch", epoch)
        self.pseudo = pseudo = self.make_pseudo_labels(epoch)
        losses: dict[str, float] = {}
        if pseudo.n_clusters:
            weights = None if pseudo.weights is None else torch.from_numpy(pseudo.weights)
            self.memory.reset(torch.from_numpy(pseudo.centroids), weights=weights)
            losses = self.train_epoch(epoch, pseudo)
        else:
            logger.warning("%s: every sample is an outlier, no training this epoch", self.describe(epoch))
        lr = self.optimizer.param_groups[0]["lr"]
        record = {"stage": self.STAGE, "step": step, **self.record_keys(), "epoch": epoch, "lr": lr}
        record.update({**pseudo.stats, **losses})
        self.labels = pseudo.labels
        self.end_epoch(epoch, pseudo, record)
        self.call_hooks("after_epoch", epoch, record)
        return record

    def record_keys(self) -> dict[str, Any]:
        """Keys that identify the epoch in its log record besides ``step`` and ``epoch``."""
        return {}

    def end_epoch(self, epoch: int, pseudo: PseudoLabels, record: dict[str, Any]) -> None:
        """Called after training, before the after_epoch hooks (may add keys to the record)."""

    def log_epoch(self, epoch: int, record: Mapping[str, Any]) -> None:
        """The epoch's line in ``train.log`` (written by :class:`~labelrefine.recipes.calr.LoggingHook`)."""
        logger.info(
            "%s: %d clusters, %s, %.1f s",
            self.describe(epoch),
            record["n_clusters"],
            format_losses(record),
            record.get("seconds", float("nan")),
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

    def save_checkpoint(self) -> None:
        """Write ``checkpoint.pt`` of the current epoch (:class:`~labelrefine.recipes.calr.CheckpointHook`)."""
        extra = self.checkpoint_extra(self.epoch, self.epoch_step, self.pseudo)
        self.session.folder.save_checkpoint({**self.states(), **extra})

    def should_stop(self, step: int, last: bool) -> bool:
        """After an epoch's hooks: end the run (a hook's request), or raise at ``stop_after_epoch``."""
        if self.config.stop_after_epoch is not None and step == self.config.stop_after_epoch and not last:
            raise RunInterrupted(str(self.session.run_dir), step)
        return self._stop

    def train(self) -> None:
        """The loop: :meth:`setup`, before_train hooks, :meth:`run_epoch` until done or stopped, :meth:`finish`."""
        start = self.setup()
        self.call_hooks("before_train")
        total = self.num_epochs()
        for step in range(start, total):
            epoch = self.start_epoch(step)
            self.run_epoch(epoch, step)
            if self.should_stop(step, last=step == total - 1):
                return
        self.finish()

    def finish(self) -> None:
        """After the last epoch (not after a stop): the stage's outputs (stage 1: ``local_labels.npz``)."""

    def fit(self) -> RunResult:
        """Run the stage: prepare the run folder and data, :meth:`train`, :meth:`result`; returns the result."""
        self._ordered = sort_hooks(self.hooks)
        self._stop = False
        with contextlib.ExitStack() as stack:
            with user_input():
                self.session = session = stack.enter_context(Session(self.config, resume=self.resume))
                self.checkpoint = session.folder.prepare(session.environment())
                self.data = self.build_data()
                self.check_data()
            session.seed_everything()
            self.train()
            session.barrier()
            self.net.encoder.eval()
            result = self.result()
            self.call_hooks("after_train", result)
            return result

    def check_data(self) -> None:
        """Check the settings against the data before anything trains."""

    def result(self) -> RunResult:
        """What :meth:`fit` returns, after the loop and a barrier: the labels and metrics of the last epoch."""
        return RunResult(self.STAGE, self.session.run_dir, self.history(), self.labels, self.metrics, self.net.encoder)

    def history(self) -> list[dict[str, Any]]:
        """The run's log records (rank 0; an empty list elsewhere)."""
        return read_log(self.session.run_dir) if self.session.is_main else []


def format_losses(record: Mapping[str, Any]) -> str:
    """The losses of a log record for ``train.log``: ``loss 1.234 (loss_inter 1.200, loss_domain 0.340)``."""
    if "loss" not in record:
        return "no training"
    terms = ", ".join(f"{key} {value:.3f}" for key, value in record.items() if key.startswith("loss_"))
    return f"loss {record['loss']:.3f}" + (f" ({terms})" if terms else "")


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
