"""The two training stages and evaluation, composed from the core and the torch adapter."""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Subset

from .._optional import import_optional
from ..cluster import camera_weights, cluster_per_camera, dbscan_cluster, infomap_cluster
from ..data import PKSampler
from ..metrics import cluster_report
from ..neighbors import jaccard_distance, knn
from ..nn import (
    CameraClassifier,
    ClusterMemory,
    all_gather_tensor,
    broadcast_object,
    camera_domain_loss,
    cluster_centroids,
    convert_batchnorm,
    extract_features,
    grl_lambda,
)
from ..refine import refine, relabel
from ..retrieval import evaluate_retrieval
from ..schedules import get_schedule
from ._config import EvalConfig, InterConfig, IntraConfig, _Common, config_class, config_from_dict, config_to_dict
from ._data import RunData, build_data, import_authors_local_labels, load_local_labels, save_local_labels
from ._models import TrainNet, build_encoder
from ._runtime import RunInterrupted, Session, derive_seed, logger, read_log, set_rng_state

__all__ = ["RunResult", "evaluate", "spawn", "train_inter", "train_intra"]

_STAGE_CODE = {"intra": 1, "inter": 2}


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


# ----------------------------------------------------------------------------------------------
# pieces shared by the stages


def _quality(pids: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    known = pids >= 0
    report = cluster_report(pids[known], labels[known])
    return {key: (round(value, 6) if isinstance(value, float) else value) for key, value in report._asdict().items()}


def _extract(session: Session, config: _Common, encoder: nn.Module, dataset: Any, *, flip: bool = False) -> Any:
    return extract_features(
        encoder,
        dataset,
        batch_size=config.test_batch_size,
        device=session.device,
        flip=flip,
        progress=session.progress(),
        num_workers=config.num_workers,
    )


def _wrap(session: Session, net: TrainNet) -> tuple[TrainNet, nn.Module]:
    """Move to the device; under DDP convert BatchNorm (``sync_bn``) and wrap. Returns (module, callable)."""
    if session.distributed and session.config.sync_bn:
        net = convert_batchnorm(net, session.device)
    net = net.to(session.device)
    if not session.distributed:
        return net, net
    device_ids = [session.device.index] if session.device.type == "cuda" else None
    return net, nn.parallel.DistributedDataParallel(net, device_ids=device_ids)


def _optimizer(config: _Common, net: TrainNet) -> tuple[torch.optim.Optimizer, Any]:
    groups = [{"params": [p for p in net.encoder.parameters() if p.requires_grad]}]
    if net.classifier is not None:
        mult = getattr(config, "cam_lr_mult", 1.0)
        groups.append({"params": [p for p in net.classifier.parameters() if p.requires_grad], "lr": config.lr * mult})
    if config.optimizer == "sgd":
        optimizer: torch.optim.Optimizer = torch.optim.SGD(
            groups, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay
        )
    else:
        optimizer = torch.optim.Adam(groups, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_step, gamma=config.lr_gamma)
    return optimizer, scheduler


def _scaler(session: Session) -> Any:
    return torch.amp.GradScaler("cuda", enabled=session.amp)


def _global_batches(labels: np.ndarray, cams: np.ndarray, config: _Common, world: int, seed: int) -> np.ndarray | None:
    """``iters_per_epoch`` global batches (rows of sample indices), the same on every process.

    Drawn with one :class:`labelrefine.data.PKSampler` for the whole global batch (rank 0 of 1),
    so the batches do not depend on the number of processes; each process then takes its slice.
    """
    n_clusters = int(labels.max()) + 1 if (labels >= 0).any() else 0
    p = min(config.identities_per_step, n_clusters)
    p -= p % world
    if p < 1:
        return None
    if p < config.identities_per_step:
        logger.warning(
            "only %d clusters: %d identities per step instead of %d", n_clusters, p, config.identities_per_step
        )
    sampler = PKSampler(labels, cams, p=p, k=config.num_instances, seed=seed, rank=0, world_size=1)
    rows, total, passes = [], 0, 0
    while total < config.iters_per_epoch:
        batch = sampler.epoch_batches(passes)
        rows.append(batch)
        total += batch.shape[0]
        passes += 1
    return np.concatenate(rows)[: config.iters_per_epoch]


def _balance_factor(memory: ClusterMemory, targets: torch.Tensor, world: int) -> torch.Tensor:
    """Scale of one process's ClusterNCE so that DDP's gradient average is that of the global batch.

    Each process's loss is ``S_r / W_r`` (its weighted sum over its weight total); DDP averages
    gradients over processes, so ``world * W_r / W_total`` turns it into ``S / W`` of the
    global batch. 1 for unit weights and equal per-process batches.
    """
    weights = memory.cluster_weights[targets.clamp_min(0)] * (targets >= 0)
    local = weights.sum().detach().reshape(1)
    total = all_gather_tensor(local).sum()
    return world * local[0] / total.clamp_min(torch.finfo(total.dtype).tiny)


def _train_epoch(
    session: Session,
    config: _Common,
    net: TrainNet,
    model: nn.Module,
    memory: ClusterMemory,
    optimizer: torch.optim.Optimizer,
    scaler: Any,
    dataset: Any,
    labels: np.ndarray,
    cams: np.ndarray,
    *,
    seed: int,
    beta: float = 0.0,
    lambda_at: Callable[[int], float] | None = None,
    desc: str = "train",
) -> dict[str, float]:
    batches = _global_batches(labels, cams, config, session.world_size, seed)
    if batches is None:
        logger.warning("%s: no cluster to train on, skipping the epoch's training", desc)
        return {}
    per_rank = batches.shape[1] // session.world_size
    local = batches[:, session.rank * per_rank : (session.rank + 1) * per_rank]
    loader = DataLoader(
        dataset,
        batch_sampler=local.tolist(),
        num_workers=config.num_workers,
        pin_memory=session.device.type == "cuda",
    )
    device = session.device
    labels_t = torch.from_numpy(labels)
    cams_t = torch.from_numpy(np.asarray(cams, dtype=np.int64))
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    tqdm = import_optional("tqdm").tqdm
    net.train()
    with tqdm(total=len(local), desc=desc, unit="it", leave=False, disable=not session.progress()) as bar:
        for it, (idx, batch) in enumerate(zip(local, loader, strict=True)):
            index = torch.from_numpy(idx)
            x = batch["img"].to(device, non_blocking=True)
            targets = labels_t[index].to(device)
            if lambda_at is not None and net.classifier is not None:
                net.classifier.set_lambda(lambda_at(it))
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=session.amp):
                emb, logits = model(x)
            loss_inter = memory(emb, targets)
            if session.distributed:
                loss_inter = loss_inter * _balance_factor(memory, targets, session.world_size)
            loss = loss_inter
            loss_domain = torch.zeros((), device=device)
            if logits is not None:  # with beta = 0 too, so that DDP sees every parameter used
                loss_domain = camera_domain_loss(logits.float(), cams_t[index].to(device))
                loss = loss + beta * loss_domain
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            memory.update(emb.detach().float(), targets)
            sums += torch.stack([loss.detach(), loss_inter.detach(), loss_domain.detach()]).double()
            bar.update(1)
    mean = (sums / len(local)).tolist()
    return {"loss": mean[0], "loss_inter": mean[1], "loss_domain": mean[2]}


def _reset_memory(memory: ClusterMemory, payload: dict[str, Any]) -> None:
    weights = payload.get("weights")
    memory.reset(torch.from_numpy(payload["centroids"]), weights=None if weights is None else torch.from_numpy(weights))


def _evaluate(
    session: Session, config: _Common, encoder: nn.Module, data: RunData, *, flip: bool = False, rerank: bool = False
) -> dict[str, Any] | None:
    if not data.can_evaluate:
        return None
    query = _extract(session, config, encoder, data.query, flip=flip)
    gallery = _extract(session, config, encoder, data.gallery, flip=flip)
    if not session.is_main:
        return None
    result = evaluate_retrieval(
        query, gallery, data.query_pids, data.gallery_pids, data.query_cams, data.gallery_cams, rerank=rerank
    )
    out: dict[str, Any] = {"mAP": result.mAP}
    for k in (1, 5, 10):
        if k <= result.cmc.shape[0]:
            out[f"rank{k}"] = result.rank(k)
    out["mINP"] = result.mINP
    out["n_valid_queries"] = result.n_valid_queries
    return out


def _resume_common(
    session: Session, checkpoint: dict[str, Any], net: TrainNet, optimizer: Any, scheduler: Any, scaler: Any
) -> None:
    net.encoder.load_state_dict(checkpoint["encoder"])
    if net.classifier is not None and checkpoint.get("classifier") is not None:
        net.classifier.load_state_dict(checkpoint["classifier"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    if checkpoint.get("scaler"):
        scaler.load_state_dict(checkpoint["scaler"])


def _states(net: TrainNet, optimizer: Any, scheduler: Any, scaler: Any, memory: ClusterMemory) -> dict[str, Any]:
    return {
        "encoder": net.encoder.state_dict(),
        "classifier": None if net.classifier is None else net.classifier.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "memory": {k: v.detach().cpu() for k, v in memory.state_dict().items()},
    }


def _fmt(metrics: dict[str, Any] | None) -> str:
    if not metrics:
        return ""
    return f", mAP {100 * metrics['mAP']:.1f}% R1 {100 * metrics.get('rank1', float('nan')):.1f}%"


# ----------------------------------------------------------------------------------------------
# stage 1


def train_intra(config: IntraConfig, *, resume: bool = False) -> RunResult:
    """Stage 1: train one encoder per camera on that camera's images; write ``local_labels.npz``.

    For each camera (in order), a copy of the initial encoder is trained for ``epochs``
    epochs; each epoch clusters the camera's features (core :func:`labelrefine.cluster_per_camera`
    on that camera only), resets a :class:`labelrefine.nn.ClusterMemory` to the cluster
    centroids and trains ``iters_per_epoch`` ClusterNCE steps. After the last epoch the camera
    is clustered once more with the trained encoder: those are its local labels.

    Parameters
    ----------
    config : IntraConfig
        The resolved configuration.
    resume : bool, default False
        Continue the run in ``config.run_dir`` from its checkpoint (saved after every epoch of
        every camera).

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
    ...     "run_dir": tempfile.mkdtemp(), "synth_ids": "40", "synth_cams": "3", "epochs": "1",
    ...     "iters_per_epoch": "2", "progress": "false"})
    >>> result = train_intra(cfg)
    >>> len(result.history), bool((result.labels >= -1).all())  # 3 cameras x 1 epoch
    (3, True)
    >>> sorted(p.name for p in result.run_dir.iterdir())
    ['checkpoint.pt', 'config.yaml', 'env.json', 'local_labels.npz', 'log.jsonl', 'train.log']
    """
    if not isinstance(config, IntraConfig):
        raise TypeError(f"config must be an IntraConfig, got {type(config).__name__}")
    with Session(config, resume=resume) as session:
        checkpoint = session.prepare_run_dir()
        data = build_data(config)
        session.seed_everything()
        initial = build_encoder(config, data.input_dim)
        initial_state = copy.deepcopy(initial.state_dict())
        cameras = np.unique(data.train_cams)
        n = data.train_cams.shape[0]
        local = np.full(n, -1, dtype=np.int64)
        next_id, start_cam, start_epoch = 0, 0, 0
        if checkpoint is not None:
            local = np.asarray(checkpoint["local_labels"], dtype=np.int64).copy()
            next_id = int(checkpoint["next_id"])
            start_cam, start_epoch = int(checkpoint["camera_index"]), int(checkpoint["epoch"]) + 1
            if start_epoch >= config.epochs:
                start_cam, start_epoch = start_cam + 1, 0
            session.truncate_log(int(checkpoint["step"]))
            set_rng_state(checkpoint["rng"])
            logger.info("resuming stage 1 at camera %d, epoch %d", start_cam, start_epoch)
        logger.info(
            "stage 1 (intra-camera) on %s: %d training images, %d cameras, world size %d, device %s",
            data.name,
            n,
            cameras.size,
            session.world_size,
            session.device,
        )
        encoder = initial
        for ci in range(start_cam, cameras.size):
            members = np.flatnonzero(data.train_cams == cameras[ci])
            encoder = build_encoder(config, data.input_dim)
            encoder.load_state_dict(initial_state)
            net, model = _wrap(session, TrainNet(encoder))
            memory = ClusterMemory(
                _embedding_dim(encoder, data, session, config),
                1,
                temperature=config.temperature,
                momentum=config.momentum,
                mode=config.memory_mode,
            ).to(session.device)
            optimizer, scheduler = _optimizer(config, net)
            scaler = _scaler(session)
            if checkpoint is not None and ci == int(checkpoint["camera_index"]) and start_epoch > 0:
                _resume_common(session, checkpoint, net, optimizer, scheduler, scaler)
            subset = Subset(data.train_eval, members.tolist())
            for epoch in range(start_epoch, config.epochs):
                step = ci * config.epochs + epoch
                tic = time.time()
                payload = _cluster_camera(session, config, net.encoder, subset, data, members)
                labels = np.full(n, -1, dtype=np.int64)
                labels[members] = payload["labels"]
                _reset_memory(memory, payload)
                losses = _train_epoch(
                    session,
                    config,
                    net,
                    model,
                    memory,
                    optimizer,
                    scaler,
                    data.train_aug,
                    labels,
                    data.train_cams,
                    seed=derive_seed(config.seed, _STAGE_CODE["intra"], ci, epoch),
                    desc=f"camera {ci + 1}/{cameras.size} epoch {epoch + 1}/{config.epochs}",
                )
                lr = optimizer.param_groups[0]["lr"]
                scheduler.step()
                record = {
                    "stage": "intra",
                    "step": step,
                    "camera": int(cameras[ci]),
                    "epoch": epoch,
                    "lr": lr,
                    **payload["stats"],
                    **losses,
                }
                if epoch == config.epochs - 1:
                    final = _cluster_camera(session, config, net.encoder, subset, data, members)
                    local[members] = np.where(final["labels"] >= 0, final["labels"] + next_id, -1)
                    next_id += int(final["labels"].max()) + 1 if (final["labels"] >= 0).any() else 0
                    record["final"] = final["stats"]
                record["seconds"] = round(time.time() - tic, 3)
                session.append_log(record)
                logger.info(
                    "camera %d/%d epoch %d/%d: %d clusters, loss %.3f, %.1f s",
                    ci + 1,
                    cameras.size,
                    epoch + 1,
                    config.epochs,
                    payload["stats"]["n_clusters"],
                    losses.get("loss", float("nan")),
                    record["seconds"],
                )
                state = _states(net, optimizer, scheduler, scaler, memory)
                session.save_checkpoint(
                    {
                        **state,
                        "camera_index": ci,
                        "epoch": epoch,
                        "step": step,
                        "local_labels": local,
                        "next_id": next_id,
                    }
                )
                if config.stop_after_epoch is not None and step == config.stop_after_epoch:
                    raise RunInterrupted(str(session.run_dir), step)
            start_epoch = 0
        metrics = None
        if session.is_main:
            save_local_labels(session.run_dir / "local_labels.npz", local, data.train_keys, data.train_cams)
            if data.identities_known:
                metrics = _quality(data.train_pids, local)
                logger.info(
                    "local labels: %d clusters, pairwise precision %.3f, recall %.3f (saved to %s)",
                    metrics["n_clusters"],
                    metrics["pairwise_precision"],
                    metrics["pairwise_recall"],
                    session.run_dir / "local_labels.npz",
                )
        session.barrier()
        encoder.eval()
        return RunResult(
            "intra", session.run_dir, read_log(session.run_dir) if session.is_main else [], local, metrics, encoder
        )


def _embedding_dim(encoder: nn.Module, data: RunData, session: Session, config: _Common) -> int:
    dim = getattr(encoder, "num_features", None)
    if dim:
        return int(dim)
    encoder.eval()
    with torch.no_grad():
        return int(encoder(data.train_eval[0]["img"].unsqueeze(0)).shape[1])


def _cluster_camera(
    session: Session, config: IntraConfig, encoder: nn.Module, subset: Subset, data: RunData, members: np.ndarray
) -> dict[str, Any]:
    """Extract one camera's features and cluster them on rank 0; the result on every rank."""
    feats = _extract(session, config, encoder, subset)
    payload = None
    if session.is_main:
        labels = relabel(
            cluster_per_camera(
                feats,
                np.zeros(feats.shape[0], dtype=np.int64),
                method=config.intra_method,
                images_per_cluster=config.images_per_cluster,
                k1=config.k1,
                k2=config.k2,
                eps=config.eps,
                min_sim=config.min_sim,
                k=config.k,
            )
        )
        stats: dict[str, Any] = {
            "n_clusters": int(labels.max()) + 1 if (labels >= 0).any() else 0,
            "n_outliers": int((labels < 0).sum()),
        }
        if data.identities_known:
            stats["quality"] = _quality(data.train_pids[members], labels)
        centroids = cluster_centroids(torch.from_numpy(feats), torch.from_numpy(labels)).numpy()
        payload = {"labels": labels, "centroids": centroids, "stats": stats}
    return broadcast_object(payload)


# ----------------------------------------------------------------------------------------------
# stage 2


def _local_labels(session: Session, config: InterConfig, data: RunData, encoder: nn.Module) -> np.ndarray | None:
    """The stage-1 labels aligned with the training set (rank 0 reads, every rank receives)."""
    if not config.refine:
        return None
    source = config.local_labels
    labels = None
    if source == "per-camera":
        feats = _extract(session, config, encoder, data.train_eval)
        if session.is_main:
            labels = cluster_per_camera(feats, data.train_cams, method="agglomerative")
            save_local_labels(session.run_dir / "local_labels.npz", labels, data.train_keys, data.train_cams)
            logger.info("local labels: per-camera clustering of the initial features (no stage-1 training)")
        return broadcast_object(labels)
    if session.is_main:
        if source is None:
            tried = [session.run_dir / "local_labels.npz", session.run_dir.parent / "intra" / "local_labels.npz"]
            found = next((p for p in tried if p.is_file()), None)
            if found is None:
                raise FileNotFoundError(
                    "refine=True needs stage-1 local labels; none found at "
                    + " or ".join(repr(str(p)) for p in tried)
                    + ": run `labelrefine-calr intra` first, pass --local-labels FILE (local_labels.npz, a stage-1 "
                    "run folder or the authors' .npy files), --local-labels per-camera, or --no-refine"
                )
            source = str(found)
        path = Path(source)
        if path.suffix == ".npy" or (
            path.is_dir() and not (path / "local_labels.npz").is_file() and any(path.rglob("*.npy"))
        ):
            labels = import_authors_local_labels(path, data.train_keys)
        else:
            labels = load_local_labels(path, data.train_keys)
        logger.info("local labels from %s: %d local clusters", source, len(np.unique(labels[labels >= 0])))
    return broadcast_object(labels)


def _check_graph_size(config: InterConfig, n: int) -> None:
    """``k`` (and ``k1`` for DBSCAN) must fit the N training images: an error, never a silent clamp."""
    if config.k > n - 1:
        raise ValueError(
            f"k must be at most N - 1 = {n - 1} (the training images other than the sample itself), got k={config.k}"
        )
    if config.clustering == "dbscan" and config.k1 > n:
        raise ValueError(
            f"k1 must be at most N = {n} (the training images) for clustering='dbscan', got k1={config.k1}"
        )


def _pseudo_labels(
    config: InterConfig, feats: np.ndarray, local: np.ndarray | None, data: RunData, epoch: int
) -> dict[str, Any]:
    """One kNN graph -> Infomap or DBSCAN -> refine -> contiguous labels, weights, centroids, stats."""
    k = config.k  # checked against N by _check_graph_size when the stage starts
    columns = max(k + 1, config.k1 if config.clustering == "dbscan" else 0)
    graph = knn(feats, columns)
    if config.clustering == "infomap":
        # k columns with the sample itself (the authors' search) or the sample and k others
        width = k if config.k_includes_self else k + 1
        global_labels = infomap_cluster(
            (graph[0][:, :width], graph[1][:, :width]), min_sim=config.min_sim, min_size=config.min_size
        )
    else:
        # pairs farther than eps never matter to DBSCAN: storing only those within it bounds memory
        jaccard = jaccard_distance(feats, knn=graph, k1=config.k1, k2=config.k2, max_distance=config.eps)
        global_labels = dbscan_cluster(jaccard, eps=config.eps, min_samples=config.min_samples)
    stats: dict[str, Any] = {"n_clusters_global": len(np.unique(global_labels[global_labels >= 0]))}
    refined = global_labels
    p = 0.0
    if config.refine and local is not None:
        p = get_schedule(config.p_schedule, **config.schedule_options())(epoch, config.epochs)
        result = refine(
            global_labels,
            local,
            data.train_cams,
            knn=graph,
            k=k,
            p=p,
            rule=config.pivots,
            min_sim=config.min_sim,
            rng=derive_seed(config.seed, _STAGE_CODE["inter"], epoch),
        )
        refined = np.asarray(result.labels)
        stats.update(n_pivots=result.n_pivots, n_discarded=result.n_discarded, discard_ratio=result.discard_ratio)
    else:
        stats.update(n_pivots=0, n_discarded=0, discard_ratio=0.0)
    labels = relabel(refined)
    n_clusters = int(labels.max()) + 1 if (labels >= 0).any() else 0
    stats.update(
        p=p, n_clusters=n_clusters, n_outliers=int((labels < 0).sum()), outlier_ratio=float((labels < 0).mean())
    )
    cacl = config.cacl and epoch >= config.cacl_warmup and n_clusters > 0
    weights = camera_weights(labels, data.train_cams) if cacl else None
    stats["cacl"] = bool(cacl)
    if data.identities_known:
        quality = {"global": _quality(data.train_pids, global_labels), "refined": _quality(data.train_pids, labels)}
        if local is not None:
            quality["local"] = _quality(data.train_pids, local)
        stats["quality"] = quality
    centroids = None
    if n_clusters:
        centroids = cluster_centroids(torch.from_numpy(feats), torch.from_numpy(labels)).numpy()
    return {"labels": labels, "weights": weights, "centroids": centroids, "stats": stats}


def train_inter(config: InterConfig, *, resume: bool = False) -> RunResult:
    """Stage 2: inter-camera training with camera-aware label refinement (the paper's training).

    Every epoch: extract the training features; one kNN graph; Infomap (or DBSCAN on the
    Jaccard distance); :func:`labelrefine.refine` of the global labels with the stage-1 local
    labels, p from the decay schedule; camera-entropy weights after the warm-up; memory reset
    to the centroids; ``iters_per_epoch`` steps of ClusterNCE + ``beta`` x camera-domain loss
    through gradient reversal; evaluation; checkpoint. Clustering and refinement run on rank 0
    and the labels are broadcast.

    Parameters
    ----------
    config : InterConfig
        The resolved configuration (``refine=False, align=False, cacl=False`` with
        ``clustering="dbscan"`` is the Cluster-Contrast baseline).
    resume : bool, default False
        Continue the run in ``config.run_dir`` from its checkpoint. With ``deterministic=True``
        the result equals that of an uninterrupted run.

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
    ...     "run_dir": tempfile.mkdtemp(), "synth_ids": "40", "synth_cams": "3", "epochs": "2",
    ...     "iters_per_epoch": "2", "local_labels": "per-camera", "progress": "false"})
    >>> result = train_inter(cfg)
    >>> [record["epoch"] for record in result.history], 0.0 <= result.metrics["mAP"] <= 1.0
    ([0, 1], True)
    >>> sorted(result.history[-1]["quality"])
    ['global', 'local', 'refined']
    """
    if not isinstance(config, InterConfig):
        raise TypeError(f"config must be an InterConfig, got {type(config).__name__}")
    with Session(config, resume=resume) as session:
        checkpoint = session.prepare_run_dir()
        data = build_data(config)
        _check_graph_size(config, len(data.train_pids))
        session.seed_everything()
        encoder = build_encoder(config, data.input_dim)
        align = config.align and data.num_cams >= 2
        if config.align and not align:
            logger.warning("align=True needs at least two cameras; the domain loss is off")
        dim = _embedding_dim(encoder, data, session, config)
        classifier = (
            CameraClassifier(dim, data.num_cams, hidden=config.cam_hidden, lambd=config.grl_lambda) if align else None
        )
        net, model = _wrap(session, TrainNet(encoder, classifier))
        memory = ClusterMemory(
            dim, 1, temperature=config.temperature, momentum=config.momentum, mode=config.memory_mode
        ).to(session.device)
        optimizer, scheduler = _optimizer(config, net)
        scaler = _scaler(session)
        start_epoch, local = 0, None
        if checkpoint is not None:
            _resume_common(session, checkpoint, net, optimizer, scheduler, scaler)
            start_epoch = int(checkpoint["epoch"]) + 1
            local = checkpoint.get("local_labels")
            session.truncate_log(int(checkpoint["epoch"]))
            logger.info("resuming stage 2 at epoch %d", start_epoch)
        if local is None:
            local = _local_labels(session, config, data, net.encoder) if checkpoint is None else None
        logger.info(
            "stage 2 (inter-camera) on %s: %d training images, %d cameras; refine=%s align=%s cacl=%s clustering=%s; "
            "world size %d, global batch %d (%d per device), device %s",
            data.name,
            len(data.train_pids),
            data.num_cams,
            config.refine,
            align,
            config.cacl,
            config.clustering,
            session.world_size,
            config.batch_size,
            session.per_device_batch,
            session.device,
        )
        if checkpoint is not None:
            set_rng_state(checkpoint["rng"])
        total_iters = config.epochs * config.iters_per_epoch
        labels, metrics = None, None
        best_map = -1.0  # report_epoch="best": the highest test-set mAP so far, resumed runs included
        if config.report_epoch == "best" and checkpoint is not None and session.is_main:
            best_map = max((r["mAP"] for r in read_log(session.run_dir) if "mAP" in r), default=-1.0)
        for epoch in range(start_epoch, config.epochs):
            tic = time.time()
            feats = _extract(session, config, net.encoder, data.train_eval)
            payload = _pseudo_labels(config, feats, local, data, epoch) if session.is_main else None
            payload = broadcast_object(payload)
            labels = payload["labels"]
            losses: dict[str, float] = {}
            align_now = align and (config.align_epochs is None or epoch < config.align_epochs)
            if payload["centroids"] is not None:
                _reset_memory(memory, payload)
                lambda_at = None
                if align and config.grl_schedule == "dann":

                    def lambda_at(it: int, _e: int = epoch) -> float:
                        return config.grl_lambda * grl_lambda((_e * config.iters_per_epoch + it) / total_iters)

                losses = _train_epoch(
                    session,
                    config,
                    net,
                    model,
                    memory,
                    optimizer,
                    scaler,
                    data.train_aug,
                    labels,
                    data.train_cams,
                    seed=derive_seed(config.seed, _STAGE_CODE["inter"], epoch),
                    beta=config.beta if align_now else 0.0,
                    lambda_at=lambda_at,
                    desc=f"epoch {epoch + 1}/{config.epochs}",
                )
            else:
                logger.warning("epoch %d: every sample is an outlier, no training this epoch", epoch)
            lr = optimizer.param_groups[0]["lr"]
            scheduler.step()
            last = epoch == config.epochs - 1
            due = config.eval_every > 0 and (epoch + 1) % config.eval_every == 0
            evaluated = _evaluate(session, config, net.encoder, data) if (due or last) else None
            metrics = evaluated or metrics
            if evaluated and config.report_epoch == "best" and evaluated["mAP"] > best_map:
                best_map = evaluated["mAP"]
                torch.save({"encoder": net.encoder.state_dict(), "epoch": epoch}, session.run_dir / "best.pt")
            record = {"stage": "inter", "step": epoch, "epoch": epoch, "lr": lr, **payload["stats"], **losses}
            if evaluated:
                record.update(evaluated)
            record["seconds"] = round(time.time() - tic, 3)
            session.append_log(record)
            stats = payload["stats"]
            logger.info(
                "epoch %d/%d: %d clusters (%.1f%% outliers), p=%.3f discarded %.1f%%, loss %.3f%s, %.1f s",
                epoch + 1,
                config.epochs,
                stats["n_clusters"],
                100 * stats["outlier_ratio"],
                stats["p"],
                100 * stats["discard_ratio"],
                losses.get("loss", float("nan")),
                _fmt(evaluated),
                record["seconds"],
            )
            state = _states(net, optimizer, scheduler, scaler, memory)
            session.save_checkpoint({**state, "epoch": epoch, "step": epoch, "labels": labels, "local_labels": local})
            if config.stop_after_epoch is not None and epoch == config.stop_after_epoch and not last:
                raise RunInterrupted(str(session.run_dir), epoch)
        session.barrier()
        net.encoder.eval()
        history = read_log(session.run_dir) if session.is_main else []
        if config.report_epoch == "best" and metrics is not None:
            best = max((r for r in history if "mAP" in r), key=lambda r: r["mAP"])  # the first on ties
            metrics = {key: best[key] for key in metrics} | {"epoch": best["epoch"]}
            logger.info("best epoch (test-set mAP): %d%s, saved to best.pt", best["epoch"] + 1, _fmt(metrics))
        return RunResult("inter", session.run_dir, history, labels, metrics, net.encoder)


# ----------------------------------------------------------------------------------------------
# evaluation and local multi-process runs


def evaluate(config: EvalConfig) -> dict[str, Any] | None:
    """Evaluate a checkpoint on the query / gallery splits; write ``RUN_DIR/eval.json``.

    Parameters
    ----------
    config : EvalConfig
        Model settings (as trained) and ``checkpoint`` (default ``RUN_DIR/checkpoint.pt``).

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
    >>> sets = {"run_dir": tempfile.mkdtemp(), "synth_ids": "40", "synth_cams": "3", "progress": "false"}
    >>> training = {"epochs": "1", "iters_per_epoch": "2", "refine": "false"}
    >>> trained = train_inter(resolve_config("inter", preset="synthetic", sets={**sets, **training}))
    >>> metrics = evaluate(resolve_config("eval", preset="synthetic", sets=sets))
    >>> abs(metrics["mAP"] - trained.metrics["mAP"]) < 1e-6
    True
    """
    if not isinstance(config, EvalConfig):
        raise TypeError(f"config must be an EvalConfig, got {type(config).__name__}")
    with Session(config) as session:
        path = Path(config.checkpoint) if config.checkpoint else session.run_dir / "checkpoint.pt"
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {str(path)!r}")
        data = build_data(config)
        if not data.can_evaluate:
            raise ValueError(f"dataset {config.dataset!r} has no query and gallery split to evaluate on")
        encoder = build_encoder(config, data.input_dim)
        state = torch.load(path, map_location="cpu", weights_only=False)
        if isinstance(state, dict) and "camera_index" in state:
            warnings.warn(
                f"checkpoint {str(path)!r} is a stage-1 (intra) checkpoint: it holds the encoder of one camera only "
                f"(camera index {state['camera_index']}, the last one trained), not a model of all cameras; "
                "evaluate a stage-2 (inter) run for cross-camera retrieval",
                UserWarning,
                stacklevel=2,
            )
        encoder.load_state_dict(state["encoder"] if "encoder" in state else state)
        encoder.to(session.device)
        metrics = _evaluate(session, config, encoder, data, flip=config.flip, rerank=config.rerank)
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


def spawn(stage: str, config: _Common, nprocs: int, *, resume: bool = False, backend: str = "gloo") -> None:
    """Run a training stage in ``nprocs`` local processes (DistributedDataParallel without ``torchrun``).

    Meant for CPU runs and tests (gloo); on GPUs prefer ``torchrun --nproc_per_node N -m
    labelrefine.recipes.calr ...``. ``config.batch_size`` stays the global batch. A
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
    >>> cfg = resolve_config("inter", preset="synthetic", sets={"batch_size": "32", "num_instances": "4"})
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
