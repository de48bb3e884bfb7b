"""The two CALR stages as configurations of :class:`Trainer`, their entry points, evaluation and local processes."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Subset

from ..._types import KnnGraph
from ...cluster import camera_weights, cluster_camera, cluster_per_camera, dbscan_cluster, infomap_cluster
from ...metrics import impurity_report
from ...neighbors import jaccard_distance, knn
from ...nn import CameraClassifier, broadcast_object, camera_domain_loss, grl_lambda, sharded_knn
from ...refine import refine, relabel
from ...schedules import get_schedule
from .config import EvalConfig, InterConfig, IntraConfig, _TrainConfig, config_class, config_from_dict, config_to_dict
from .data import build_data, load_local_labels, save_local_labels
from .hooks import BestEpochHook, Hook
from .models import TrainNet, build_encoder
from .runtime import RunInterrupted, Session, derive_seed, load_torch_file, logger, set_rng_state, user_input
from .trainer import (
    PseudoLabels,
    RunResult,
    Trainer,
    fill,
    format_losses,
    quality,
    quality_stats,
    retrieval_metrics,
)

__all__ = ["InterTrainer", "IntraTrainer", "evaluate", "spawn", "train_inter", "train_intra"]

_STAGE_CODE = {"intra": 1, "inter": 2}


def _fmt(metrics: Mapping[str, Any] | None) -> str:
    if not metrics or "mAP" not in metrics:
        return ""
    return f", mAP {100 * metrics['mAP']:.1f}% R1 {100 * metrics.get('rank1', float('nan')):.1f}%"


# ----------------------------------------------------------------------------------------------
# stage 1


class IntraTrainer(Trainer):
    """Stage 1: one encoder per camera, trained on that camera's images; writes ``local_labels.npz``.

    For each camera (in order) a copy of the initial encoder is built and trained for
    ``optim.epochs`` epochs of :meth:`Trainer.run_epoch`, whose pseudo labels cluster that
    camera's features (:func:`labelrefine.cluster_camera`). After the camera's last epoch it is
    clustered once more with the trained encoder: those are its local labels.
    """

    STAGE = "intra"
    config: IntraConfig

    def epoch_seed(self, epoch: int) -> int:
        return derive_seed(self.config.seed, _STAGE_CODE["intra"], self.camera_index, epoch)

    def describe(self, epoch: int) -> str:
        cameras, epochs = len(self.cameras), self.config.optim.epochs
        return f"camera {self.camera_index + 1}/{cameras} epoch {epoch + 1}/{epochs}"

    def record_keys(self) -> dict[str, Any]:
        return {"camera": int(self.cameras[self.camera_index])}

    def training_set(self) -> Any:
        return Subset(self.data.train_eval, self.members.tolist())

    def pseudo_label(self, feats: np.ndarray, epoch: int, graph: KnnGraph | None = None) -> PseudoLabels:
        """The camera's clusters (:meth:`cluster_camera`), as labels of the whole training set."""
        camera = self.pack(self.cluster_camera(feats), feats)
        stats = {**camera.stats, **quality_stats(self.data, self.members, camera.labels)}
        return PseudoLabels(fill(self.members, camera.labels, len(self.data.train_cams)), camera.centroids, None, stats)

    def cluster_camera(self, feats: np.ndarray) -> np.ndarray:
        """Local labels of the current camera's features (``camera_clustering`` section)."""
        return cluster_camera(feats, **self.config.camera_clustering.options(), rng=self.config.seed)

    def end_epoch(self, epoch: int, pseudo: PseudoLabels, record: dict[str, Any]) -> None:
        """After the camera's last epoch: its local labels, clustered with the trained encoder."""
        if epoch < self.config.optim.epochs - 1:
            return
        feats = self.extract(self.training_set())
        final = broadcast_object(self.pseudo_label(feats, epoch) if self.session.is_main else None)
        labels = final.labels[self.members]
        self.local[self.members] = np.where(labels >= 0, labels + self.next_id, -1)
        self.next_id += final.n_clusters
        record["final"] = dict(final.stats)

    def checkpoint_extra(self, epoch: int, step: int, pseudo: PseudoLabels) -> dict[str, Any]:
        extra = {"camera_index": self.camera_index, "local_labels": self.local, "next_id": self.next_id}
        return {"epoch": epoch, "step": step, **extra}

    def num_epochs(self) -> int:
        return int(np.unique(self.data.train_cams).size) * self.config.optim.epochs

    def setup(self) -> int:
        """The initial encoder (each camera starts from a copy of it); the local labels so far when resuming."""
        data, checkpoint, session = self.data, self.checkpoint, self.session
        self.initial = self.build_encoder()
        self.initial_state = copy.deepcopy(self.initial.state_dict())
        self.cameras = np.unique(data.train_cams)
        self.camera_index, self.members = -1, np.zeros(0, dtype=np.int64)
        self.local = np.full(len(data.train_cams), -1, dtype=np.int64)
        self.next_id, start = 0, 0
        if checkpoint is not None:
            self.local = np.asarray(checkpoint["local_labels"], dtype=np.int64).copy()
            self.next_id, start = int(checkpoint["next_id"]), int(checkpoint["step"]) + 1
            session.folder.truncate_log(int(checkpoint["step"]))
            set_rng_state(checkpoint["rng"])
            camera, epoch = divmod(start, self.config.optim.epochs)
            logger.info("resuming stage 1 at camera %d, epoch %d", camera, epoch)
        logger.info(
            "stage 1 (intra-camera) on %s: %d training images, %d cameras, world size %d, device %s",
            data.name,
            len(data.train_cams),
            self.cameras.size,
            session.world_size,
            session.device,
        )
        return start

    def start_epoch(self, step: int) -> int:
        """A new camera: its members and a fresh copy of the initial encoder (resumed: the checkpoint's)."""
        camera_index, epoch = divmod(step, self.config.optim.epochs)
        if camera_index != self.camera_index:
            self.camera_index = camera_index
            self.members = np.flatnonzero(self.data.train_cams == self.cameras[camera_index])
            encoder = self.build_encoder()
            encoder.load_state_dict(self.initial_state)
            self.build(encoder)
            if epoch > 0 and self.checkpoint is not None:  # resumed inside the camera
                self.load_states(self.checkpoint)
        return epoch

    def finish(self) -> None:
        """Write ``local_labels.npz``; a run resumed after its last camera gets the initial encoder."""
        data, session = self.data, self.session
        if session.is_main:
            save_local_labels(
                session.run_dir / "local_labels.npz",
                self.local,
                data.train_keys,
                data.train_cams,
                fingerprint=data.fingerprint,
            )
        if self.camera_index < 0:  # resumed after the last camera: the encoder of the run is the initial one
            self.build(self.initial)

    def result(self) -> RunResult:
        data, metrics = self.data, None
        if self.session.is_main and data.identities_known:
            metrics = quality(data.train_pids, self.local)
            logger.info(
                "local labels: %d clusters, pairwise precision %.3f, recall %.3f (saved to %s)",
                metrics["n_clusters"],
                metrics["pairwise_precision"],
                metrics["pairwise_recall"],
                self.session.run_dir / "local_labels.npz",
            )
        return RunResult("intra", self.session.run_dir, self.history(), self.local, metrics, self.net.encoder)


def train_intra(config: IntraConfig, *, resume: bool = False, hooks: Iterable[Hook] = ()) -> RunResult:
    """Stage 1: train one encoder per camera on that camera's images; write ``local_labels.npz``.

    Runs :class:`IntraTrainer`: for each camera (in order), a copy of the initial encoder is
    trained for ``optim.epochs`` epochs; each epoch clusters the camera's features (core
    :func:`labelrefine.cluster_camera`), resets a :class:`labelrefine.nn.ClusterMemory` to the
    cluster centroids and trains ``optim.iters_per_epoch`` ClusterNCE steps. After the last
    epoch the camera is clustered once more with the trained encoder: those are its local labels.

    Parameters
    ----------
    config : IntraConfig
        The resolved configuration.
    resume : bool, default False
        Continue the run in ``config.runtime.run_dir`` from its checkpoint (saved after every
        epoch of every camera).
    hooks : iterable of Hook, optional
        Observers of the run (:class:`Hook`).

    Returns
    -------
    RunResult
        ``labels`` are the local labels aligned with the training set (unique across cameras,
        -1 unclustered), also written with the image keys and cameras to
        ``RUN_DIR/local_labels.npz``.

    Raises
    ------
    FileExistsError
        ``run_dir`` holds a run and ``resume`` is False.
    RunInterrupted
        After ``stop_after_epoch`` (counted over all cameras: camera index x epochs + epoch).

    Examples
    --------
    >>> import tempfile
    >>> from labelrefine.recipes.calr import resolve_config, train_intra
    >>> cfg = resolve_config("intra", preset="synthetic", sets={
    ...     "runtime.run_dir": tempfile.mkdtemp(), "synthetic.ids": "40", "synthetic.cams": "3",
    ...     "optim.epochs": "1", "optim.iters_per_epoch": "2", "runtime.progress": "false"})
    >>> result = train_intra(cfg)
    >>> len(result.history), bool((result.labels >= -1).all())  # 3 cameras x 1 epoch
    (3, True)
    >>> sorted(p.name for p in result.run_dir.iterdir())
    ['checkpoint.pt', 'config.yaml', 'env.json', 'local_labels.npz', 'log.jsonl', 'train.log']
    """
    if not isinstance(config, IntraConfig):
        raise TypeError(f"config must be an IntraConfig, got {type(config).__name__}")
    return IntraTrainer(config, resume=resume, hooks=hooks).fit()


# ----------------------------------------------------------------------------------------------
# stage 2


class InterTrainer(Trainer):
    """Stage 2: inter-camera training with camera-aware label refinement (the paper's training).

    Its pseudo-label step is :meth:`cluster` (one kNN graph, Infomap or DBSCAN on the Jaccard
    distance), :meth:`refine` (:func:`labelrefine.refine` with the stage-1 local labels and p
    from the decay schedule) and :meth:`weights` (camera-entropy weights after the
    ``refinement.cacl_warmup`` epochs of warm-up: a warm-up from the authors' code, which uses 5;
    the paper names none);
    each is a method to override. With ``alignment.enabled`` a camera classifier behind
    gradient reversal adds ``alignment.beta`` x the camera-domain loss.

    Attributes
    ----------
    local : numpy.ndarray or None
        The stage-1 local labels aligned with the training set (``None`` without refinement).
    labels : numpy.ndarray or None
        The pseudo labels of the last epoch trained.
    """

    STAGE = "inter"
    config: InterConfig
    local: np.ndarray | None
    labels: np.ndarray | None
    metrics: dict[str, Any] | None

    def epoch_seed(self, epoch: int) -> int:
        return derive_seed(self.config.seed, _STAGE_CODE["inter"], epoch)

    def check_data(self) -> None:
        """``clustering.k`` (and ``k1`` for DBSCAN) must fit the N training images: an error, never a clamp."""
        c, n = self.config.clustering, len(self.data.train_pids)
        if c.k > n - 1:
            raise ValueError(
                f"clustering.k must be at most N - 1 = {n - 1} (the training images other than the sample "
                f"itself), got k={c.k}"
            )
        if c.method == "dbscan" and c.dbscan.k1 > n:
            raise ValueError(
                f"clustering.dbscan.k1 must be at most N = {n} (the training images) for clustering.method='dbscan', "
                f"got k1={c.dbscan.k1}"
            )

    def build_classifier(self, dim: int) -> CameraClassifier | None:
        """A :class:`labelrefine.nn.CameraClassifier` with alignment on and two cameras or more."""
        a = self.config.alignment
        if not a.enabled:
            return None
        if self.data.num_cams < 2:
            logger.warning("alignment.enabled needs at least two cameras; the domain loss is off")
            return None
        return CameraClassifier(dim, self.data.num_cams, hidden=a.cam_hidden, lambd=a.grl_lambda)

    def param_groups(self, net: TrainNet) -> list[dict[str, Any]]:
        """The encoder at ``optim.lr``, the camera classifier at ``alignment.cam_lr_mult`` x ``optim.lr``."""
        groups = super().param_groups(net)
        if net.classifier is not None:
            groups[-1]["lr"] = self.config.optim.lr * self.config.alignment.cam_lr_mult
        return groups

    def build_hooks(self) -> list[Hook]:
        """The built-in hooks, and :class:`~labelrefine.recipes.calr.BestEpochHook` (``report_epoch="best"``)."""
        hooks = super().build_hooks()
        if self.config.report_epoch == "best":
            hooks.append(BestEpochHook())
        return hooks

    def domain_weight(self, epoch: int) -> float:
        """β, the weight of the camera-domain loss in ``epoch`` (0 after ``alignment.epochs``)."""
        a = self.config.alignment
        return a.beta if a.epochs is None or epoch < a.epochs else 0.0

    def reversal_strength(self, epoch: int, it: int) -> float | None:
        """Gradient-reversal strength at step ``it`` (``None``: leave the classifier's as it is)."""
        a, o = self.config.alignment, self.config.optim
        if a.grl_schedule != "dann":
            return None
        return a.grl_lambda * grl_lambda((epoch * o.iters_per_epoch + it) / (o.epochs * o.iters_per_epoch))

    def train_step(self, epoch: int, it: int, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """:meth:`Trainer.train_step` with the gradient-reversal strength of ``reversal_strength`` set first."""
        strength = self.reversal_strength(epoch, it)
        if strength is not None and self.net.classifier is not None:
            self.net.classifier.set_lambda(strength)
        return super().train_step(epoch, it, batch)

    def losses(self, batch: Mapping[str, Any], outputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """ClusterNCE (``loss_inter``) and the camera-domain loss (``loss_domain``, 0 without a classifier)."""
        losses = super().losses(batch, outputs)
        logits = outputs.get("camera_logits")
        if logits is None:
            losses["loss_domain"] = torch.zeros((), device=batch["targets"].device)
        else:  # with beta = 0 too, so that DDP sees every parameter used
            losses["loss_domain"] = camera_domain_loss(logits.float(), batch["cams"])
        return losses

    def loss_weights(self, epoch: int) -> Mapping[str, float]:
        """``loss_domain`` weighs :meth:`domain_weight` (β); without a classifier it is left out of the sum."""
        return {"loss_domain": self.domain_weight(epoch) if self.net.classifier is not None else 0.0}

    def evaluate_due(self, epoch: int) -> bool:
        every = self.config.eval_every
        return epoch == self.config.optim.epochs - 1 or (every > 0 and (epoch + 1) % every == 0)

    def search(self, feats: np.ndarray) -> KnnGraph | None:
        """Under several processes, every rank searches a slice of the rows (:func:`labelrefine.nn.sharded_knn`)."""
        if not self.session.distributed:
            return None
        feats = broadcast_object(feats)  # extraction leaves the features on rank 0 only
        return sharded_knn(feats, self.graph_width(), progress=self.progress())

    def graph_width(self) -> int:
        """Neighbours of the epoch's graph: ``k``, or ``k1 - 1`` for the Jaccard distance when wider."""
        c = self.config.clustering
        return max(c.k, c.dbscan.k1 - 1 if c.method == "dbscan" else 0)

    def pseudo_label(self, feats: np.ndarray, epoch: int, graph: KnnGraph | None = None) -> PseudoLabels:
        """:meth:`cluster`, :meth:`refine`, :meth:`weights`; the cluster quality when identities are known."""
        global_labels, graph = self.cluster(feats, graph)
        refined, stats = self.refine(global_labels, feats, graph, epoch)
        labels = relabel(refined)
        weights = self.weights(labels, epoch)
        stats.update(outlier_ratio=float((labels < 0).mean()), cacl=weights is not None, knn_recall=graph.recall)
        if self.data.identities_known:
            pids = self.data.train_pids
            stats["quality"] = {"global": quality(pids, global_labels), "refined": quality(pids, labels)}
            stats["impurity"] = impurity_report(pids, global_labels, refined)._asdict()
            if self.local is not None:
                stats["quality"]["local"] = quality(pids, self.local)
        return self.pack(
            labels, feats, weights, n_clusters_global=len(np.unique(global_labels[global_labels >= 0])), **stats
        )

    def cluster(self, feats: np.ndarray, graph: KnnGraph | None = None) -> tuple[np.ndarray, KnnGraph]:
        """Global labels of the training features and the kNN graph (reused by :meth:`refine`).

        The graph is searched here unless :meth:`search` gave one (approximate above
        ``labelrefine.neighbors.EXACT_MAX_N`` images; its recall is logged each epoch).
        """
        c = self.config.clustering
        progress = self.progress()
        if graph is None:
            graph = knn(feats, self.graph_width(), rng=self.config.seed, progress=progress)
        if c.method == "infomap":
            # k columns with the sample itself (the authors' search) or the sample and k others
            width = c.k if c.infomap.k_includes_self else c.k + 1
            columns = (graph.indices[:, :width], graph.distances[:, :width])
            labels = infomap_cluster(  # seed 1 every epoch
                columns, min_sim=c.min_sim, min_size=c.infomap.min_size, rng=1, progress=progress
            )
            return labels, graph
        # pairs farther than eps never matter to DBSCAN: storing only those within it bounds memory
        d = c.dbscan
        jaccard = jaccard_distance(feats, knn=graph, k1=d.k1, k2=d.k2, max_distance=d.eps, progress=progress)
        return dbscan_cluster(jaccard, eps=d.eps, min_samples=d.min_samples, progress=progress), graph

    def refine(
        self, labels: np.ndarray, feats: np.ndarray, graph: Any, epoch: int
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Camera-aware refinement of the global labels with the local ones; (labels, log statistics)."""
        r = self.config.refinement
        if not r.enabled or self.local is None:
            return labels, {
                "n_pivots": 0,
                "n_discarded": 0,
                "discard_ratio": 0.0,
                "refined_group_ratio": 0.0,
                "fragments_per_group": 0.0,
                "p": 0.0,
            }
        p = get_schedule(r.schedule, **r.schedule_options())(epoch, self.config.optim.epochs)
        result = refine(
            labels,
            self.local,
            self.data.train_cams,
            feats,
            knn=graph,
            k=self.config.clustering.k,
            p=p,
            rule=r.rule,
            max_deviation=r.max_deviation,
            min_sim=self.config.clustering.min_sim,
            rng=self.epoch_seed(epoch),
        )
        stats = {
            "n_pivots": result.n_pivots,
            "n_discarded": result.n_discarded,
            "discard_ratio": result.discard_ratio,
            # many local clusters per group with few groups refined: refinement is cutting true members
            "refined_group_ratio": result.refined_group_ratio,
            "fragments_per_group": result.fragments_per_group,
        }
        return np.asarray(result.labels), {**stats, "p": p}

    def weights(self, labels: np.ndarray, epoch: int) -> np.ndarray | None:
        """Camera-entropy (CaCL) weights of the clusters from ``refinement.cacl_warmup`` on; ``None`` before."""
        r = self.config.refinement
        if not r.cacl or epoch < r.cacl_warmup or not (labels >= 0).any():
            return None
        return camera_weights(labels, self.data.train_cams)

    def read_local_labels(self) -> np.ndarray | None:
        """The stage-1 labels aligned with the training set (rank 0 reads, every rank receives)."""
        session, data, source = self.session, self.data, self.config.refinement.local_labels
        labels = None
        if source == "per-camera":
            feats = self.extract(data.train_eval)
            if session.is_main:
                labels = cluster_per_camera(
                    feats, data.train_cams, method="agglomerative", rng=self.config.seed, progress=self.progress()
                )
                save_local_labels(
                    session.run_dir / "local_labels.npz",
                    labels,
                    data.train_keys,
                    data.train_cams,
                    fingerprint=data.fingerprint,
                )
                logger.info("local labels: per-camera clustering of the initial features (no stage-1 training)")
            return broadcast_object(labels)
        if session.is_main:
            if source is None:
                tried = [session.run_dir / "local_labels.npz", session.run_dir.parent / "intra" / "local_labels.npz"]
                found = next((p for p in tried if p.is_file()), None)
                if found is None:
                    raise FileNotFoundError(
                        "refinement.enabled=True needs stage-1 local labels; none found at "
                        + " or ".join(repr(str(p)) for p in tried)
                        + ": run `labelrefine-calr intra` first, pass --local-labels FILE (local_labels.npz, a stage-1 "
                        "run folder or the authors' .npy files), --local-labels per-camera, or --no-refine"
                    )
                source = str(found)
            labels = load_local_labels(source, data.train_keys, fingerprint=data.fingerprint)
            logger.info("local labels from %s: %d local clusters", source, len(np.unique(labels[labels >= 0])))
        return broadcast_object(labels)

    def checkpoint_extra(self, epoch: int, step: int, pseudo: PseudoLabels) -> dict[str, Any]:
        return {"epoch": epoch, "step": step, "labels": pseudo.labels, "local_labels": self.local}

    def log_epoch(self, epoch: int, record: Mapping[str, Any]) -> None:
        nan = float("nan")
        quality = record.get("quality", {})
        precision = ""
        if "global" in quality:
            before, after = quality["global"]["pairwise_precision"], quality["refined"]["pairwise_precision"]
            impurity = record["impurity"]
            precision = (
                f" precision {before:.3f} -> {after:.3f} (impurities removed {impurity['impurities_removed']:.0%},"
                f" discard precision {impurity['discard_precision']:.2f}, {impurity['true_members_cut']} true members"
                " cut),"
            )
        if record.get("knn_recall") is not None:
            precision += f" kNN recall {record['knn_recall']:.3f},"
        logger.info(
            "%s: %d clusters (%.1f%% outliers), p=%.3f discarded %.1f%% "
            "(%.0f%% of cluster-camera groups refined, %.1f local clusters per group),%s %s%s, %.1f s",
            self.describe(epoch),
            record["n_clusters"],
            100 * record.get("outlier_ratio", nan),
            record.get("p", nan),
            100 * record.get("discard_ratio", nan),
            100 * record.get("refined_group_ratio", nan),
            record.get("fragments_per_group", nan),
            precision,
            format_losses(record),
            _fmt(record),
            record.get("seconds", nan),
        )

    def setup(self) -> int:
        """:meth:`Trainer.setup`, then the stage-1 labels (from the checkpoint when resuming)."""
        config, session = self.config, self.session
        start = super().setup()
        self.local = None
        if self.checkpoint is not None:
            self.local = self.checkpoint.get("local_labels")
        elif config.refinement.enabled:
            with user_input():
                self.local = self.read_local_labels()
        logger.info(
            "stage 2 (inter-camera) on %s: %d training images, %d cameras; refinement=%s alignment=%s cacl=%s "
            "clustering=%s; world size %d, global batch %d (%d per device), device %s",
            self.data.name,
            len(self.data.train_pids),
            self.data.num_cams,
            config.refinement.enabled,
            self.net.classifier is not None,
            config.refinement.cacl,
            config.clustering.method,
            session.world_size,
            config.optim.batch_size,
            config.optim.batch_size // session.world_size,
            session.device,
        )
        return start

    def result(self) -> RunResult:
        history, metrics = self.history(), self.metrics
        if self.config.report_epoch == "best" and metrics is not None:
            best = max((r for r in history if "mAP" in r), key=lambda r: r["mAP"])  # the first on ties
            metrics = {key: best[key] for key in metrics} | {"epoch": best["epoch"]}
            logger.info("best epoch (test-set mAP): %d%s, saved to best.pt", best["epoch"] + 1, _fmt(metrics))
        return RunResult("inter", self.session.run_dir, history, self.labels, metrics, self.net.encoder)


def train_inter(config: InterConfig, *, resume: bool = False, hooks: Iterable[Hook] = ()) -> RunResult:
    """Stage 2: inter-camera training with camera-aware label refinement (the paper's training).

    Runs :class:`InterTrainer`. Every epoch: extract the training features; one kNN graph;
    Infomap (or DBSCAN on the Jaccard distance); :func:`labelrefine.refine` of the global labels
    with the stage-1 local labels (rule ``refinement.rule``), p from the decay schedule;
    camera-entropy weights after ``refinement.cacl_warmup`` epochs (a warm-up that the paper
    does not name: the authors' code uses 5, the default is 10); memory reset to the
    centroids; ``optim.iters_per_epoch`` steps of ClusterNCE + ``alignment.beta`` x
    camera-domain loss through gradient reversal; evaluation; checkpoint. Clustering and
    refinement run on rank 0 and the labels are broadcast.

    Parameters
    ----------
    config : InterConfig
        The resolved configuration (``refinement.enabled=False, alignment.enabled=False,
        refinement.cacl=False`` with ``clustering.method="dbscan"`` is the Cluster-Contrast baseline).
    resume : bool, default False
        Continue the run in ``config.runtime.run_dir`` from its checkpoint. With
        ``deterministic=True`` the result equals that of an uninterrupted run.
    hooks : iterable of Hook, optional
        Observers of the run (:class:`Hook`).

    Returns
    -------
    RunResult

    Raises
    ------
    FileExistsError
        ``run_dir`` holds a run and ``resume`` is False.
    FileNotFoundError
        Missing dataset folder or stage-1 labels.
    RunInterrupted
        After ``stop_after_epoch``.

    Examples
    --------
    >>> import tempfile
    >>> from labelrefine.recipes.calr import resolve_config, train_inter
    >>> cfg = resolve_config("inter", preset="synthetic", sets={
    ...     "runtime.run_dir": tempfile.mkdtemp(), "synthetic.ids": "40", "synthetic.cams": "3",
    ...     "optim.epochs": "2", "optim.iters_per_epoch": "2", "refinement.local_labels": "per-camera",
    ...     "runtime.progress": "false"})
    >>> result = train_inter(cfg)
    >>> [record["epoch"] for record in result.history], 0.0 <= result.metrics["mAP"] <= 1.0
    ([0, 1], True)
    >>> sorted(result.history[-1]["quality"])
    ['global', 'local', 'refined']
    """
    if not isinstance(config, InterConfig):
        raise TypeError(f"config must be an InterConfig, got {type(config).__name__}")
    return InterTrainer(config, resume=resume, hooks=hooks).fit()


# ----------------------------------------------------------------------------------------------
# evaluation and local multi-process runs


def evaluate(config: EvalConfig) -> dict[str, Any] | None:
    """Evaluate a checkpoint on the query / gallery splits; write ``RUN_DIR/eval.json``.

    Parameters
    ----------
    config : EvalConfig
        Data and model settings (as trained) and ``checkpoint`` (default ``RUN_DIR/checkpoint.pt``).

    Returns
    -------
    dict or None
        ``mAP``, ``rank1``, ``rank5``, ``rank10``, ``mINP`` on rank 0; ``None`` elsewhere.

    Raises
    ------
    FileNotFoundError
        No checkpoint, or the dataset folder is missing.
    ValueError
        The dataset has no query / gallery split.

    Examples
    --------
    >>> import tempfile
    >>> from labelrefine.recipes.calr import EvalConfig, resolve_config, train_inter
    >>> sets = {"runtime.run_dir": tempfile.mkdtemp(), "synthetic.ids": "40", "synthetic.cams": "3",
    ...         "runtime.progress": "false"}
    >>> training = {"optim.epochs": "1", "optim.iters_per_epoch": "2", "refinement.enabled": "false"}
    >>> trained = train_inter(resolve_config("inter", preset="synthetic", sets={**sets, **training}))
    >>> metrics = evaluate(resolve_config("eval", preset="synthetic", sets=sets))
    >>> abs(metrics["mAP"] - trained.metrics["mAP"]) < 1e-6
    True
    """
    if not isinstance(config, EvalConfig):
        raise TypeError(f"config must be an EvalConfig, got {type(config).__name__}")
    with contextlib.ExitStack() as stack:
        with user_input():
            session = stack.enter_context(Session(config))
            path = Path(config.checkpoint) if config.checkpoint else session.run_dir / "checkpoint.pt"
            if not path.is_file():
                raise FileNotFoundError(f"checkpoint not found: {str(path)!r}")
            data = build_data(config)
            if not data.can_evaluate:
                raise ValueError(f"data.dataset {config.data.dataset!r} has no query and gallery split to evaluate on")
            encoder = build_encoder(config.model, data.input_dim)
            state = load_torch_file(path, "checkpoint", weights_only=False)
            encoder.load_state_dict(state["encoder"] if "encoder" in state else state)
        if isinstance(state, dict) and "camera_index" in state:
            warnings.warn(
                f"checkpoint {str(path)!r} is a stage-1 (intra) checkpoint: it holds the encoder of one camera only "
                f"(camera index {state['camera_index']}, the last one trained), not a model of all cameras; "
                "evaluate a stage-2 (inter) run for cross-camera retrieval",
                UserWarning,
                stacklevel=2,
            )
        encoder.to(session.device)
        metrics = retrieval_metrics(session, config.runtime, encoder, data, flip=config.flip, rerank=config.rerank)
        if session.is_main and metrics is not None:
            out = {
                "checkpoint": str(path),
                "epoch": state.get("epoch"),
                "rerank": config.rerank,
                "flip": config.flip,
                **metrics,
            }
            (session.run_dir / "eval.json").write_text(json.dumps(out, indent=1), encoding="utf-8")
            logger.info(
                "evaluation of %s: mAP %.1f%%, rank-1 %.1f%%",
                path,
                100 * metrics["mAP"],
                100 * metrics.get("rank1", float("nan")),
            )
        return metrics


def _spawn_worker(
    rank: int, world: int, init_file: str, backend: str, stage: str, values: dict[str, Any], resume: bool, threads: int
) -> None:
    torch.set_num_threads(threads)
    dist.init_process_group(backend, init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        config = config_from_dict(config_class(stage), values)
        try:
            (train_intra if stage == "intra" else train_inter)(config, resume=resume)
        except RunInterrupted:
            pass
    finally:
        dist.destroy_process_group()


def spawn(stage: str, config: _TrainConfig, nprocs: int, *, resume: bool = False, backend: str = "gloo") -> None:
    """Run a training stage in ``nprocs`` local processes (DistributedDataParallel without ``torchrun``).

    Meant for CPU runs and tests (gloo); on GPUs prefer ``torchrun --nproc_per_node N -m
    labelrefine.recipes.calr ...``. ``optim.batch_size`` stays the global batch. A
    ``stop_after_epoch`` stop ends the processes quietly.

    Parameters
    ----------
    stage : {"intra", "inter"}
        Which stage.
    config : IntraConfig or InterConfig
        Its config.
    nprocs : int
        Number of processes (>= 1).
    resume : bool, default False
        Passed to the stage.
    backend : str, default "gloo"
        ``torch.distributed`` backend.

    Raises
    ------
    ValueError
        An unknown stage or a bad ``nprocs``.

    Examples
    --------
    >>> from labelrefine.recipes.calr import resolve_config
    >>> cfg = resolve_config("inter", preset="synthetic", sets={"optim.batch_size": "32"})
    >>> spawn("inter", cfg, 2)  # doctest: +SKIP
    """
    if stage not in ("intra", "inter"):
        raise ValueError(f"stage must be 'intra' or 'inter', got {stage!r}")
    if isinstance(nprocs, bool) or not isinstance(nprocs, int) or nprocs < 1:
        raise ValueError(f"nprocs must be a positive integer, got {nprocs!r}")
    folder = tempfile.mkdtemp(prefix="labelrefine-ddp-")
    threads = max(1, (os.cpu_count() or 1) // nprocs)
    try:
        torch.multiprocessing.spawn(
            _spawn_worker,
            args=(nprocs, os.path.join(folder, "init"), backend, stage, config_to_dict(config), resume, threads),
            nprocs=nprocs,
            join=True,
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
