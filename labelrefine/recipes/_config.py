"""Configuration of the CALR recipe: one frozen dataclass per stage, presets, YAML and ``--set`` overrides.

Resolution order (later wins): the stage's defaults, the preset, the YAML
file, the command line's dedicated flags, then ``--set key=value``. The resolved config is
written to ``RUN_DIR/config.yaml`` by the trainer.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

from .._validation import check_choice, check_int, check_probability

__all__ = [
    "DEFAULT_SOURCES",
    "PRESETS",
    "SETTINGS",
    "STAGES",
    "EvalConfig",
    "InterConfig",
    "IntraConfig",
    "Preset",
    "Setting",
    "config_from_dict",
    "config_to_dict",
    "get_preset",
    "load_yaml",
    "parse_set",
    "resolve_config",
]

STAGES: tuple[str, ...] = ("intra", "inter", "eval")
DATASET_CHOICES: tuple[str, ...] = ("market1501", "dukemtmcreid", "msmt17", "veri", "synthreid", "synthetic", "folder")
BACKBONE_CHOICES: tuple[str, ...] = ("resnet18", "resnet34", "resnet50", "resnet101", "mlp", "tiny-cnn")
SCHEDULE_CHOICES: tuple[str, ...] = ("constant", "linear", "polynomial", "exponential", "cosine")

# keys that may differ between a run and its --resume without changing the result
RUNTIME_KEYS: frozenset[str] = frozenset(
    {"data_root", "run_dir", "device", "num_workers", "num_threads", "progress", "stop_after_epoch", "test_batch_size"}
)


# ----------------------------------------------------------------------------------------------
# field checks


def _positive(value: float, name: str) -> None:
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def _non_negative(value: float, name: str) -> None:
    if not value >= 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def _check_device(value: str) -> None:
    text = value.strip().lower()
    if text in ("auto", "cpu", "cuda") or (text.startswith("cuda:") and text[5:].isdigit()):
        return
    raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {value!r}")


def _type_name(tp: Any) -> str:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    base = args[0] if args else tp
    name = {bool: "a bool", int: "an integer", float: "a number", str: "a string"}.get(base, str(base))
    return name + (" or null" if type(None) in typing.get_args(tp) else "")


def _accepts_none(tp: Any) -> bool:
    return type(None) in typing.get_args(tp)


def _base_type(tp: Any) -> Any:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if args else tp


def _convert(name: str, value: Any, tp: Any, *, parse_strings: bool) -> Any:
    """Check (and, for text from a command line or YAML file, parse) one field value."""
    base = _base_type(tp)
    if value is None:
        if _accepts_none(tp):
            return None
        raise TypeError(f"{name} must be {_type_name(tp)}, got None")
    if (
        parse_strings
        and isinstance(value, str)
        and _accepts_none(tp)
        and value.strip().lower() in ("", "none", "null", "~")
    ):
        return None
    if parse_strings and isinstance(value, str) and base is not str:
        text = value.strip()
        try:
            if base is bool:
                lowered = text.lower()
                if lowered in ("true", "yes", "on", "1"):
                    return True
                if lowered in ("false", "no", "off", "0"):
                    return False
                raise ValueError
            if base is int:
                return int(text)
            if base is float:
                return float(text)
        except ValueError:
            raise ValueError(f"{name} must be {_type_name(tp)}, got {value!r}") from None
    if base is bool:
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be {_type_name(tp)}, got {value!r}")
        return value
    if base is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be {_type_name(tp)}, got {value!r}")
        return int(value)
    if base is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be {_type_name(tp)}, got {value!r}")
        return float(value)
    if base is str:
        if isinstance(value, Path):
            return str(value)
        if not isinstance(value, str):
            raise TypeError(f"{name} must be {_type_name(tp)}, got {value!r}")
        return value
    return value


# ----------------------------------------------------------------------------------------------
# the stage configs


@dataclass(frozen=True)
class _Common:
    """Fields shared by every stage (see the stage classes for the documentation)."""

    STAGE: ClassVar[str] = ""

    # what and where
    preset: str | None = None
    dataset: str = "market1501"
    data_root: str | None = None
    run_dir: str | None = None
    # model
    backbone: str = "resnet50"
    pretrained: str | None = None
    pooling: str = "avg"
    ibn: bool = False
    mlp_hidden: int = 256
    cnn_width: int = 16
    # input pipeline
    height: int = 256
    width: int = 128
    flip_p: float = 0.5
    pad: int = 10
    erasing_p: float = 0.5
    # optimisation
    optimizer: str = "adam"
    lr: float = 3.5e-4
    weight_decay: float = 5e-4
    lr_step: int = 20
    lr_gamma: float = 0.1
    batch_size: int = 256
    num_instances: int = 16
    iters_per_epoch: int = 200
    epochs: int = 50
    temperature: float = 0.1
    momentum: float = 0.2
    memory_mode: str = "mean"
    # evaluation
    eval_every: int = 1
    test_batch_size: int = 256
    # runtime
    seed: int = 1
    deterministic: bool = False
    device: str = "auto"
    amp: bool = False
    sync_bn: bool = True
    num_workers: int = 4
    num_threads: int | None = None
    progress: bool = True
    stop_after_epoch: int | None = None
    # generated data
    data_seed: int = 0
    synth_ids: int = 200
    synth_cams: int = 6
    synth_dim: int = 64
    synth_camera_strength: float = 0.6
    synth_noise: float = 0.25
    synth_family_size: int = 3
    synthreid_ids: int = 100
    synthreid_cams: int = 6
    synthreid_height: int = 64
    synthreid_width: int = 32
    synthreid_camera_strength: float = 0.3  # camera_strength of labelrefine.data.make_synthreid

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            value = _convert(f.name, getattr(self, f.name), hints[f.name], parse_strings=False)
            object.__setattr__(self, f.name, value)
        self._validate()
        if self.run_dir is None:
            object.__setattr__(self, "run_dir", str(Path("runs") / self.dataset / self.STAGE))

    def _validate(self) -> None:
        check_choice(self.dataset, "dataset", DATASET_CHOICES)
        check_choice(self.backbone, "backbone", BACKBONE_CHOICES)
        check_choice(self.pooling, "pooling", ("avg", "gem"))
        check_choice(self.memory_mode, "memory_mode", ("mean", "hard"))
        check_choice(self.optimizer, "optimizer", ("adam", "sgd"))
        _check_device(self.device)
        if self.preset is not None:
            check_choice(self.preset, "preset", tuple(PRESETS))
        for name in ("mlp_hidden", "cnn_width", "lr_step", "batch_size", "num_instances", "iters_per_epoch"):
            check_int(getattr(self, name), name, low=1)
        for name in ("epochs", "test_batch_size", "synth_ids", "synth_dim", "synthreid_ids"):
            check_int(getattr(self, name), name, low=1)
        check_int(self.height, "height", low=8)
        check_int(self.width, "width", low=8)
        check_int(self.synth_cams, "synth_cams", low=2)
        check_int(self.synthreid_cams, "synthreid_cams", low=2)
        check_int(self.synthreid_height, "synthreid_height", low=16)
        check_int(self.synthreid_width, "synthreid_width", low=8)
        if not 0.0 <= self.synthreid_camera_strength <= 2.0:
            raise ValueError(f"synthreid_camera_strength must be in [0, 2], got {self.synthreid_camera_strength!r}")
        check_int(self.synth_family_size, "synth_family_size", low=1)
        for name in ("pad", "eval_every", "seed", "num_workers", "data_seed"):
            check_int(getattr(self, name), name, low=0)
        if self.num_threads is not None:
            check_int(self.num_threads, "num_threads", low=1)
        if self.stop_after_epoch is not None:
            check_int(self.stop_after_epoch, "stop_after_epoch", low=0)
        for name in ("flip_p", "erasing_p", "momentum"):
            check_probability(getattr(self, name), name)
        for name in ("lr", "temperature"):
            _positive(getattr(self, name), name)
        for name in ("weight_decay", "synth_camera_strength", "synth_noise"):
            _non_negative(getattr(self, name), name)
        if not 0.0 < self.lr_gamma <= 1.0:
            raise ValueError(f"lr_gamma must be in (0, 1], got {self.lr_gamma!r}")
        if self.batch_size % self.num_instances:
            raise ValueError(
                f"batch_size must be a multiple of num_instances (P identities x K instances per step), "
                f"got batch_size={self.batch_size} and num_instances={self.num_instances}"
            )
        if self.dataset == "synthetic" and self.backbone != "mlp":
            raise ValueError(
                "backbone must be 'mlp' for dataset='synthetic' (its samples are feature vectors), "
                f"got {self.backbone!r}"
            )
        if self.backbone == "mlp" and self.dataset != "synthetic":
            raise ValueError(
                f"backbone='mlp' works on feature vectors: dataset must be 'synthetic', got {self.dataset!r}"
            )

    @property
    def identities_per_step(self) -> int:
        """P, the identities (clusters) of one global batch: ``batch_size // num_instances``."""
        return self.batch_size // self.num_instances

    def replace(self, **changes: Any) -> _Common:
        """A copy with ``changes`` applied and validated (strings are parsed as on the command line)."""
        return config_from_dict(type(self), {**config_to_dict(self), **changes}, parse_strings=True)


@dataclass(frozen=True)
class IntraConfig(_Common):
    """Stage 1, intra-camera training: one encoder per camera, trained on that camera's images.

    Defaults follow the paper where it states a value (Sec. IV-A: ResNet-50 with global
    average pooling, 256 x 128 inputs, Adam with weight decay 5e-4, temperature 0.1, memory
    momentum 0.2, 20 epochs, agglomerative clustering with ``n_images / 5`` clusters per
    camera), and the authors' released intra-camera script where it is silent (lr 3.5e-4
    with a x0.1 step every 20 epochs, batch 64 = 16 clusters x 4 instances, 100 iterations
    per epoch, Jaccard ``k1 = 15``, ``k2 = 4``, average linkage). ``labelrefine-calr presets``
    lists the source of every setting.

    Parameters
    ----------
    preset : str or None
        Name of the preset the config was built from (recorded only).
    dataset : {"market1501", "dukemtmcreid", "msmt17", "veri", "synthreid", "synthetic", "folder"}
        ``"synthreid"`` is generated under ``data_root`` when missing; ``"synthetic"`` is
        camera-biased feature vectors from :func:`labelrefine.synthetic.make_camera_biased`
        (with ``backbone="mlp"``).
    data_root : str or None
        Folder holding the dataset folder (e.g. the parent of ``Market-1501-v15.09.15``).
    run_dir : str or None
        Output folder; default ``runs/<dataset>/<stage>``.
    backbone : {"resnet18", "resnet34", "resnet50", "resnet101", "mlp", "tiny-cnn"}
        Encoder. ``"mlp"``: a residual MLP over feature vectors whose untrained output is its
        input; ``"tiny-cnn"``: three conv blocks, for SynthReID on a CPU.
    pretrained : str or None
        Local weights file (nothing is downloaded). The paper's numbers need ImageNet weights.
    pooling, ibn : see :func:`labelrefine.nn.build_backbone`.
    height, width : int
        Input size: 256 x 128 for persons, 224 x 224 for vehicles.
    flip_p, pad, erasing_p : augmentation of :func:`labelrefine.data.build_transforms`.
    optimizer : {"adam", "sgd"}
        Adam (the paper) or SGD with momentum 0.9.
    lr, weight_decay, lr_step, lr_gamma : learning rate, weight decay and the step schedule (per epoch).
    batch_size : int
        The **global** batch (all processes together), ``P x K`` with ``K = num_instances``.
        It is split evenly over the processes, so the optimisation does not depend on the
        number of GPUs (see ``sync_bn``).
    iters_per_epoch, epochs : int
        Training length; stage 1 trains ``epochs`` epochs for every camera.
    temperature, momentum, memory_mode : :class:`labelrefine.nn.ClusterMemory` settings.
    eval_every : int
        Stage 2: evaluate retrieval every this many epochs (and after the last); 0 = only after
        the last. Stage 1 logs cluster quality every epoch when identities are known.
    seed, deterministic : int, bool
        Seed of everything; ``deterministic`` turns on ``torch.use_deterministic_algorithms``
        (needed for bit-identical ``--resume``).
    device : {"auto", "cpu", "cuda", "cuda:N"}
        Under ``torchrun`` each process uses ``cuda:LOCAL_RANK``.
    num_workers, num_threads : int
        DataLoader workers; torch CPU threads of the process (``None``: torch's default; 1 is
        fastest for the tiny CPU models, whose operations are too small to split).
    amp : bool
        Mixed precision (float16 autocast + gradient scaling) on CUDA; ignored on a CPU.
    sync_bn : bool
        Under DistributedDataParallel, BatchNorm statistics over the global batch (SyncBatchNorm
        on CUDA, an equivalent all-reduce on CPU/gloo). Without it each GPU normalises with the
        statistics of its own ``batch_size / world_size`` images, which changes the training
        when the number of GPUs changes.
    stop_after_epoch : int or None
        Test hook: stop (raising :class:`RunInterrupted`) after checkpointing this epoch, to
        simulate a killed run.
    intra_method : {"agglomerative", "dbscan", "infomap"}
        Per-camera clustering (core :func:`labelrefine.cluster_per_camera`).
    images_per_cluster, k1, k2, eps, min_sim, k : its parameters.
    """

    STAGE: ClassVar[str] = "intra"

    epochs: int = 20
    batch_size: int = 64
    num_instances: int = 4
    iters_per_epoch: int = 100
    intra_method: str = "agglomerative"
    images_per_cluster: int = 5
    k1: int = 15
    k2: int = 4
    eps: float = 0.6
    min_sim: float = 0.5
    k: int = 15

    def _validate(self) -> None:
        super()._validate()
        check_choice(self.intra_method, "intra_method", ("agglomerative", "dbscan", "infomap"))
        check_int(self.images_per_cluster, "images_per_cluster", low=1)
        check_int(self.k1, "k1", low=1)
        check_int(self.k2, "k2", low=1, high=self.k1)
        check_int(self.k, "k", low=1)
        check_probability(self.min_sim, "min_sim")
        if not 0.0 < self.eps < 1.0:
            raise ValueError(f"eps must be in (0, 1), got {self.eps!r}")


@dataclass(frozen=True)
class InterConfig(_Common):
    """Stage 2, inter-camera training with camera-aware label refinement (CALR).

    Each epoch: extract features, one kNN graph (``k`` neighbours), Infomap (``min_sim``) or
    DBSCAN on the Jaccard distance, :func:`labelrefine.refine` with the discard probability of
    the ``p_schedule``, camera-entropy (CaCL) cluster weights after ``cacl_warmup`` epochs, a
    memory reset, then ``iters_per_epoch`` steps of ClusterNCE + ``beta`` x camera-domain loss
    through gradient reversal. Defaults follow the paper where it states a value (50 epochs,
    Infomap, ``top_15`` neighbours in Eq. 4, beta = 1.0 from Table V, cosine decay of p from
    Table IV) and otherwise the authors' released code (Infomap's ``min_sim = 0.5``, batch
    256 = 16 clusters x 16 instances, 200 iterations per epoch, the cosine period of their
    commented-out line ``span = 3.0``, the domain loss in the first 3 epochs) or our choice
    (a CaCL warm-up of 10 epochs; the paper names no warm-up, the authors' code uses 5).
    ``labelrefine-calr presets`` lists the source of every setting of every preset.

    It has all fields of :class:`IntraConfig` up to ``stop_after_epoch``, with stage-2
    defaults, and the following.

    Parameters
    ----------
    clustering : {"infomap", "dbscan"}
        ``"dbscan"`` on the sparse k-reciprocal Jaccard distance is the Cluster-Contrast baseline.
    k, min_sim : int, float
        kNN graph size (pivot scores and Infomap) and Infomap's edge threshold. ``k`` must be
        at most N - 1 (the training images other than the sample): a larger value is an error
        when training starts, never a silent clamp.
    k_includes_self : bool
        ``k`` counts the sample itself, as the authors' faiss search does (``k`` columns, the
        sample first): Infomap then links each image to its ``k - 1`` nearest others. The
        ``"reference"`` pivot rule reads ``k`` columns including the sample in either case (the
        authors' score); the other rules score ``k`` other neighbours (Eq. 4).
    min_size : int
        Infomap clusters with at most this many images become outliers (1 drops singletons;
        the authors' code drops clusters of at most 4 images).
    eps, min_samples, k1, k2 : DBSCAN and Jaccard parameters (``clustering="dbscan"``).
    refine : bool
        Refine the global labels with the local ones (``--no-refine`` turns it off).
    pivots : {"camera", "cluster", "reference"}
        Pivot rule of :func:`labelrefine.refine`.
    p_schedule, p_start, p_end, p_span, p_power, p_rate :
        Decay of the discard probability, :func:`labelrefine.schedules.get_schedule`
        (``span`` for cosine, ``power`` for polynomial, ``rate`` for exponential;
        ``"constant"`` with ``p_start=1`` is the paper's "no decay").
    align : bool
        Camera-domain loss through gradient reversal (``--no-align`` turns it off).
    beta : float
        Weight of the domain loss.
    grl_lambda, grl_schedule : reversal strength, constant or the DANN ramp
        (:func:`labelrefine.nn.grl_lambda` over training progress) times ``grl_lambda``.
    align_epochs : int or None
        Apply the domain loss in the first ``align_epochs`` epochs only. Default 3, as the
        authors' released code does; ``None`` applies it every epoch, as the paper's loss reads
        (on the synthetic data, where alignment succeeds within an epoch, adversarial training
        that goes on afterwards degrades the features).
    cam_hidden : int
        Hidden width of the camera classifier.
    cam_lr_mult : float
        Learning rate of the camera classifier relative to ``lr`` (a faster classifier keeps the
        adversarial game near its equilibrium).
    cacl, cacl_warmup : camera-entropy weights ``log(1 + H)`` from epoch ``cacl_warmup`` on.
    report_epoch : {"last", "best"}
        Which evaluation the run reports (``RunResult.metrics`` and the last log line):
        ``"last"``, or ``"best"``, the epoch with the highest **test-set** mAP, as the authors'
        script reports (that is model selection on the test set). With ``"best"`` the
        encoder of that epoch is also saved to ``RUN_DIR/best.pt``.
    local_labels : str or None
        Stage-1 output: a ``local_labels.npz``, a stage-1 run folder, the authors' per-camera
        ``.npy`` files (a file or a folder of them), or ``"per-camera"`` to cluster each camera
        of the initial features once instead of training stage 1. ``None`` looks for
        ``RUN_DIR/local_labels.npz``, then ``RUN_DIR/../intra/local_labels.npz``.
    """

    STAGE: ClassVar[str] = "inter"

    clustering: str = "infomap"
    k: int = 15
    k_includes_self: bool = False
    min_sim: float = 0.5
    min_size: int = 1
    eps: float = 0.6
    min_samples: int = 4
    k1: int = 30
    k2: int = 6
    refine: bool = True
    pivots: str = "camera"
    p_schedule: str = "cosine"
    p_start: float = 1.0
    p_end: float = 0.0
    p_span: float = 3.0
    p_power: float = 2.0
    p_rate: float = 5.0
    align: bool = True
    beta: float = 1.0
    grl_lambda: float = 1.0
    grl_schedule: str = "constant"
    align_epochs: int | None = 3
    cam_hidden: int = 256
    cam_lr_mult: float = 1.0
    cacl: bool = True
    cacl_warmup: int = 10
    report_epoch: str = "last"
    local_labels: str | None = None

    def _validate(self) -> None:
        super()._validate()
        check_choice(self.clustering, "clustering", ("infomap", "dbscan"))
        check_choice(self.pivots, "pivots", ("camera", "cluster", "reference"))
        check_choice(self.p_schedule, "p_schedule", SCHEDULE_CHOICES)
        check_choice(self.grl_schedule, "grl_schedule", ("constant", "dann"))
        check_int(self.k, "k", low=2)
        check_int(self.min_samples, "min_samples", low=1)
        check_int(self.k1, "k1", low=1)
        check_int(self.k2, "k2", low=1, high=self.k1)
        check_int(self.cam_hidden, "cam_hidden", low=1)
        check_int(self.cacl_warmup, "cacl_warmup", low=0)
        check_int(self.min_size, "min_size", low=0)
        check_choice(self.report_epoch, "report_epoch", ("last", "best"))
        if self.align_epochs is not None:
            check_int(self.align_epochs, "align_epochs", low=0)
        for name in ("min_sim", "p_start", "p_end"):
            check_probability(getattr(self, name), name)
        if not 0.0 < self.eps < 1.0:
            raise ValueError(f"eps must be in (0, 1), got {self.eps!r}")
        for name in ("p_span", "p_power", "p_rate"):
            _positive(getattr(self, name), name)
        _non_negative(self.beta, "beta")
        _positive(self.cam_lr_mult, "cam_lr_mult")
        if not math.isfinite(self.grl_lambda):
            raise ValueError(f"grl_lambda must be finite, got {self.grl_lambda!r}")

    def schedule_options(self) -> dict[str, float]:
        """Options of :func:`labelrefine.schedules.get_schedule` for ``p_schedule``."""
        options = {"start": self.p_start, "end": self.p_end}
        extra = {"cosine": ("span", self.p_span), "polynomial": ("power", self.p_power)}
        extra["exponential"] = ("rate", self.p_rate)
        if self.p_schedule in extra:
            key, value = extra[self.p_schedule]
            options[key] = value
        return options


@dataclass(frozen=True)
class EvalConfig(_Common):
    """Evaluation of a trained run: retrieval mAP / CMC on the query and gallery splits.

    The model settings are read from the run's ``config.yaml``; ``checkpoint`` defaults to
    ``RUN_DIR/checkpoint.pt``.

    Parameters
    ----------
    checkpoint : str or None
        A checkpoint written by the recipe (its ``encoder`` state is loaded).
    rerank : bool
        k-reciprocal re-ranking (:func:`labelrefine.evaluate_retrieval`).
    flip : bool
        Sum the embeddings of each image and its mirror image (images only: with
        ``backbone="mlp"`` the samples are feature vectors, and ``flip=True`` is an error).
    """

    STAGE: ClassVar[str] = "eval"

    checkpoint: str | None = None
    rerank: bool = False
    flip: bool = False

    def _validate(self) -> None:
        super()._validate()
        if self.flip and self.backbone == "mlp":
            raise ValueError(
                f"flip=True mirrors images left to right, but backbone='mlp' (dataset={self.dataset!r}) embeds "
                "feature vectors, which flipping would reverse: evaluate without --flip"
            )


_CLASSES: dict[str, type[_Common]] = {"intra": IntraConfig, "inter": InterConfig, "eval": EvalConfig}


def config_class(stage: str) -> type[_Common]:
    """The config dataclass of ``stage`` (``"intra"``, ``"inter"`` or ``"eval"``)."""
    return _CLASSES[check_choice(stage, "stage", STAGES)]


def config_to_dict(config: _Common) -> dict[str, Any]:
    """The config as a plain dict (field order), as written to ``config.yaml``."""
    return {f.name: getattr(config, f.name) for f in fields(config)}


def _unknown_key(key: str, known: list[str], where: str) -> ValueError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ValueError(f"unknown config key {key!r} {where}{hint}")


def config_from_dict(cls: type[_Common], values: Mapping[str, Any], *, parse_strings: bool = False) -> Any:
    """Build ``cls`` from a mapping; unknown keys raise ``ValueError`` naming the closest field.

    With ``parse_strings`` text values are parsed for non-string fields (``"1e-4"`` for a float,
    ``"no"`` for a bool, ``"null"`` for an optional field), as for YAML files and ``--set``.
    """
    hints = typing.get_type_hints(cls)
    known = [f.name for f in fields(cls)]
    converted = {}
    for key, value in values.items():
        if key not in hints or key == "STAGE":
            raise _unknown_key(key, known, f"for stage {cls.STAGE!r}")
        converted[key] = _convert(key, value, hints[key], parse_strings=parse_strings)
    return cls(**converted)


# ----------------------------------------------------------------------------------------------
# presets


# ----------------------------------------------------------------------------------------------
# where every setting comes from

# A number or choice attributed to the paper (CALR, Li et al.) is quoted from it with its
# section, table and row; where the paper is silent the source is the authors' released code
# (github.com/leeBooMla/CALR, commit 919e36ce: inter_camera_training.py, intra_camera_training.py,
# their README) or our own choice with its reason. See CONTRIBUTING.md.

_RVP = "as documented in docs/reference-vs-paper.md"


@dataclass(frozen=True)
class Setting:
    """One recipe setting, what the paper says about it and what the authors' released code uses.

    Attributes
    ----------
    key : str
        The config field.
    stages : tuple of str
        The stages whose config has it (``"intra"``, ``"inter"``).
    paper : str
        What the paper states, with its section, equation or table; "silent" where it says nothing.
    authors : str
        What the authors' released code uses, and where.
    """

    key: str
    stages: tuple[str, ...]
    paper: str
    authors: str


_BOTH = ("intra", "inter")
_INTRA = ("intra",)
_INTER = ("inter",)

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "backbone",
        _BOTH,
        "ResNet-50 pre-trained on ImageNet (Sec. IV-A)",
        "`-a resnet50` (README; default of inter_camera_training.py)",
    ),
    Setting(
        "ibn",
        _BOTH,
        "IBN-ResNet50 for the CALR(IBN) and CALR(IBN+GeMPool) rows (Table I caption)",
        "`-a resnet_ibn50a` for IBN (README; default of intra_camera_training.py)",
    ),
    Setting(
        "pooling",
        _BOTH,
        "global average pooling, then BN and L2 (Sec. IV-A); GeM for the IBN+GeMPool rows (Table I caption)",
        "`--pooling-type gem` (both scripts)",
    ),
    Setting("height", _BOTH, "256 x 128 for persons, 224 x 224 for VeRi-776 (Sec. IV-A)", "the same (README)"),
    Setting("width", _BOTH, "256 x 128 for persons, 224 x 224 for VeRi-776 (Sec. IV-A)", "the same (README)"),
    Setting("flip_p", _BOTH, "silent", "`RandomHorizontalFlip(p=0.5)` (get_train_loader)"),
    Setting("pad", _BOTH, "silent", "`Pad(10)` then `RandomCrop` (get_train_loader)"),
    Setting("erasing_p", _BOTH, "silent", "`RandomErasing(probability=0.5)` (get_train_loader)"),
    Setting("optimizer", _BOTH, "Adam (Sec. IV-A)", "Adam"),
    Setting("lr", _BOTH, "silent", "`--lr 0.00035`"),
    Setting("weight_decay", _BOTH, "5e-4 (Sec. IV-A)", "`--weight-decay 5e-4`"),
    Setting("lr_step", _BOTH, "silent", "`StepLR`, `--step-size 20`"),
    Setting("lr_gamma", _BOTH, "silent", "`StepLR(..., gamma=0.1)`"),
    Setting("batch_size", _INTRA, "silent", "`-b 64` (intra_camera_training.py; README example: `-b 256`)"),
    Setting("batch_size", _INTER, "silent", "`-b 256`"),
    Setting("num_instances", _INTRA, "silent", "`--num-instances 4`"),
    Setting("num_instances", _INTER, "silent", "`--num-instances 16`"),
    Setting("iters_per_epoch", _INTRA, "silent", "`--iters 100`"),
    Setting(
        "iters_per_epoch",
        _INTER,
        "silent",
        "README: `--iters 200` for Market-1501, `--iters 400` for the other datasets",
    ),
    Setting(
        "epochs",
        _INTRA,
        "20 epochs of intra-camera training (Sec. IV-A)",
        "`--epochs 25` (script default; README example: `--epochs 20`)",
    ),
    Setting("epochs", _INTER, "50 epochs of inter-camera training (Sec. IV-A)", "`--epochs 50`"),
    Setting("temperature", _BOTH, "tau = 0.1 (Sec. IV-A)", "`--temp 0.05` (both scripts)"),
    Setting("momentum", _BOTH, "m = 0.2 (Sec. IV-A, Eq. 2)", "`--momentum 0.1` (both scripts)"),
    Setting(
        "memory_mode",
        _BOTH,
        "Eq. 2, one update per query",
        "Cluster-Contrast's memory: one update per sample in batch order (`--use-hard` off)",
    ),
    Setting(
        "intra_method",
        _INTRA,
        "agglomerative hierarchical clustering [68] (Sec. IV-A); no distance or linkage named",
        f"agglomerative clustering of the Jaccard distance, average linkage, {_RVP}",
    ),
    Setting("images_per_cluster", _INTRA, "num_images / 5 clusters per camera (Sec. IV-A)", "the same"),
    Setting("k1", _INTRA, "silent (no distance named)", "Jaccard `--k1 15`"),
    Setting("k2", _INTRA, "silent (no distance named)", "Jaccard `--k2 4`"),
    Setting("clustering", _INTER, "Infomap [63] (Sec. III-A, IV-A)", "Infomap (`cluster_by_infomap`)"),
    Setting(
        "k",
        _INTER,
        "top_15(i), the 15 closest neighbours of i, in the pivot score (Eq. 4); Infomap's graph: silent",
        "`--k1 15`: a faiss search of 15 columns, the sample included, for Infomap and the score",
    ),
    Setting(
        "k_includes_self", _INTER, "no: the 15 closest neighbours of i (Eq. 4)", "yes (15 columns with the sample)"
    ),
    Setting("min_sim", _INTER, "silent", "`--eps 0.5`, passed to Infomap as `min_sim`"),
    Setting("min_size", _INTER, "silent", "`--k2 4`: Infomap clusters of at most 4 images become outliers"),
    Setting("eps", _INTER, "silent (DBSCAN is not used)", "not used (the released run clusters with Infomap)"),
    Setting("min_samples", _INTER, "silent (DBSCAN is not used)", "not used (the released run clusters with Infomap)"),
    Setting("k1", _INTER, "silent (DBSCAN is not used)", "`--D_k1 30` (unused by the Infomap run)"),
    Setting("k2", _INTER, "silent (DBSCAN is not used)", "`--D_k2 6` (unused by the Infomap run)"),
    Setting("refine", _INTER, "label refinement with local clusters, Eq. 5 (Sec. III-C)", "on"),
    Setting(
        "pivots",
        _INTER,
        "every sample whose score is above the mean score is a pivot (Sec. III-C)",
        f"one pivot per cluster, its last above-mean member (`node_flag=1`), {_RVP}",
    ),
    Setting(
        "p_schedule",
        _INTER,
        "cosine decay of p is best (Table IV)",
        "p = 1 at every epoch (`decay = 1`; the cosine line is commented out)",
    ),
    Setting("p_start", _INTER, "Eq. 5 is stated for p = 1 (Sec. III-C)", "1"),
    Setting("p_end", _INTER, "silent", "p stays 1"),
    Setting(
        "p_span",
        _INTER,
        "silent (no period of the cosine given)",
        "3 in the commented-out line `0.5*(1+cos(pi*epoch/(3*epochs)))`",
    ),
    Setting("p_power", _INTER, "silent (Table IV names a polynomial decay, no power)", "not used"),
    Setting("p_rate", _INTER, "silent (Table IV names an exponential decay, no rate)", "not used"),
    Setting("align", _INTER, "camera domain alignment, Eq. 7-9 (Sec. III-C, III-D)", "on"),
    Setting(
        "beta",
        _INTER,
        "beta = 1.0 gives the highest mAP (Table V, Sec. IV-D)",
        f"no beta: the domain loss is added with weight 1, {_RVP}",
    ),
    Setting("grl_lambda", _INTER, "lambda, no value given (Eq. 7)", f"lambda = 1, {_RVP}"),
    Setting("grl_schedule", _INTER, "silent", "constant"),
    Setting(
        "align_epochs",
        _INTER,
        "no limit: Eq. 9 is the objective of the inter-camera training (Sec. III-D)",
        f"the first 3 epochs (`if epoch < 3` in calr/trainers.py), {_RVP}",
    ),
    Setting(
        "cam_hidden",
        _INTER,
        "silent (a domain classifier D)",
        f"three layers of width 100 with dropout, {_RVP}",
    ),
    Setting("cam_lr_mult", _INTER, "silent", "one Adam and one learning rate for all parameters"),
    Setting("cacl", _INTER, "w_i follows [62] (Eq. 6)", "`log(1 + H)` cluster weights"),
    Setting("cacl_warmup", _INTER, "silent (no warm-up named)", "uniform weights for epochs 0-4 (`if epoch < 5`)"),
    Setting(
        "report_epoch",
        _INTER,
        "silent",
        "the epoch of the best test-set mAP (`model_best.pth.tar`)",
    ),
)

_OUR_MEMORY = "our choice: one vectorised step towards each cluster's batch mean (docs/reference-vs-paper.md)"

# sources of the stage defaults ("stage.key" before "key")
DEFAULT_SOURCES: Mapping[str, str] = types.MappingProxyType(
    {
        "backbone": "paper, Sec. IV-A (ResNet-50)",
        "ibn": "paper, Sec. IV-A (ResNet-50)",
        "pooling": "paper, Sec. IV-A (global average pooling)",
        "height": "paper, Sec. IV-A (256 x 128 for persons)",
        "width": "paper, Sec. IV-A (256 x 128 for persons)",
        "flip_p": "authors' code, get_train_loader (paper silent)",
        "pad": "authors' code, get_train_loader (paper silent)",
        "erasing_p": "authors' code, get_train_loader (paper silent)",
        "optimizer": "paper, Sec. IV-A (Adam)",
        "lr": "authors' code, --lr (paper silent)",
        "weight_decay": "paper, Sec. IV-A",
        "lr_step": "authors' code, --step-size (paper silent)",
        "lr_gamma": "authors' code, StepLR gamma (paper silent)",
        "intra.batch_size": "authors' code, intra_camera_training.py -b (paper silent)",
        "inter.batch_size": "authors' code, inter_camera_training.py -b (paper silent)",
        "intra.num_instances": "authors' code, intra_camera_training.py --num-instances (paper silent)",
        "inter.num_instances": "authors' code, inter_camera_training.py --num-instances (paper silent)",
        "intra.iters_per_epoch": "authors' code, intra_camera_training.py --iters (paper silent)",
        "inter.iters_per_epoch": "authors' code, README: --iters 200 for Market-1501 (paper silent)",
        "intra.epochs": "paper, Sec. IV-A",
        "inter.epochs": "paper, Sec. IV-A",
        "temperature": "paper, Sec. IV-A",
        "momentum": "paper, Sec. IV-A",
        "memory_mode": _OUR_MEMORY,
        "intra_method": "paper, Sec. IV-A (agglomerative hierarchical clustering)",
        "images_per_cluster": "paper, Sec. IV-A (num_images / 5 clusters per camera)",
        "intra.k1": "authors' code, intra_camera_training.py --k1 (paper names no distance)",
        "intra.k2": "authors' code, intra_camera_training.py --k2 (paper names no distance)",
        "clustering": "paper, Sec. IV-A (Infomap)",
        "k": "paper, Eq. 4 (top_15)",
        "k_includes_self": "paper, Eq. 4 (the 15 closest neighbours of i)",
        "min_sim": "authors' code, --eps passed as min_sim (paper silent)",
        "min_size": "our choice: drop singletons only (paper silent; the authors' code drops clusters of <= 4)",
        "eps": "our choice: used only with clustering='dbscan' (paper silent)",
        "min_samples": "our choice: used only with clustering='dbscan' (paper silent)",
        "inter.k1": "authors' code, --D_k1 (used only with clustering='dbscan')",
        "inter.k2": "authors' code, --D_k2 (used only with clustering='dbscan')",
        "refine": "paper, Sec. III-C",
        "pivots": "our choice: the library's default pivot rule (see refine); the paper: Sec. III-C",
        "p_schedule": "paper, Table IV (cosine, the best row)",
        "p_start": "paper, Sec. III-C (Eq. 5 stated for p = 1)",
        "p_end": "our choice: decay towards 0 (paper silent)",
        "p_span": "authors' code, the commented-out cosine line (paper gives no period)",
        "p_power": "our choice: used only with p_schedule='polynomial' (paper gives no power)",
        "p_rate": "our choice: used only with p_schedule='exponential' (paper gives no rate)",
        "align": "paper, Sec. III-C",
        "beta": "paper, Table V (highest mAP)",
        "grl_lambda": f"authors' code, {_RVP} (paper gives no value)",
        "grl_schedule": "authors' code, constant lambda (paper silent)",
        "align_epochs": f"authors' code, calr/trainers.py, {_RVP}",
        "cam_hidden": "our choice: a two-layer classifier (paper silent; the authors' three-layer one is not offered)",
        "cam_lr_mult": "authors' code, one learning rate for all parameters (paper silent)",
        "cacl": "paper, Eq. 6 (w_i follows [62])",
        "cacl_warmup": "our choice: 10 epochs (paper names no warm-up; the authors' code uses 5)",
        "report_epoch": "our choice: the last epoch, no model selection on the test set (paper silent)",
    }
)


@dataclass(frozen=True)
class Preset:
    """Settings of one dataset and the row of the paper they target.

    Attributes
    ----------
    name : str
        Preset name (``--preset``).
    description : str
        One line.
    paper_table : str or None
        The table of the CALR paper whose row the preset targets.
    paper_map, paper_rank1 : float or None
        mAP and rank-1 (%) of that row, quoted from the paper; ``None`` where the preset
        targets no row.
    overrides : mapping
        Keys applied to every stage's config (``dataset``, input size...).
    stage_overrides : mapping
        Per-stage keys, ``{"intra": {...}, "inter": {...}}``.
    commands : str
        The commands that train and evaluate it.
    paper_row : str or None
        The row, as the table names it (``"CALR"``, ``"CALR(IBN+GeMPool)"``).
    family : {"paper", "authors", "cpu"}
        A row of the paper, the authors' released configuration, or a CPU preset.
    sources : mapping
        Where the preset's own values come from (``"key"`` or ``"stage.key"`` to a text that
        starts with ``paper``, ``authors' code`` or ``our choice``); the keys it does not set
        keep the source of the stage default (:data:`DEFAULT_SOURCES`).
    """

    name: str
    description: str
    paper_table: str | None
    paper_map: float | None
    paper_rank1: float | None
    overrides: Mapping[str, Any]
    stage_overrides: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    commands: str = ""
    paper_row: str | None = None
    family: str = "cpu"
    sources: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def values(self, stage: str) -> dict[str, Any]:
        """The keys this preset sets for ``stage``, filtered to that stage's fields."""
        known = {f.name for f in fields(config_class(stage))}
        merged = {"preset": self.name, **self.overrides, **self.stage_overrides.get(stage, {})}
        return {key: value for key, value in merged.items() if key in known}

    def source(self, stage: str, key: str) -> str | None:
        """Where the value of ``key`` in ``stage`` comes from (``None`` for a key without one)."""
        for table in (self.sources, DEFAULT_SOURCES):
            for name in (f"{stage}.{key}", key):
                if name in table:
                    return table[name]
        return None

    @property
    def target(self) -> str:
        """The targeted row and its numbers, e.g. ``"Table I, CALR, Market1501: mAP 82.8, rank-1 92.5"``."""
        if self.paper_table is None:
            return "none (no row of the paper)"
        column = _PAPER_COLUMNS[self.overrides["dataset"]]
        return f"{self.paper_table}, {self.paper_row}, {column}: mAP {self.paper_map}, rank-1 {self.paper_rank1}"


# the column names of Tables I and II
_PAPER_COLUMNS = {"market1501": "Market1501", "dukemtmcreid": "DukeMTMC-ReID", "msmt17": "MSMT17", "veri": "Veri776"}
_DATASET_NAMES = {
    "market1501": "Market-1501",
    "dukemtmcreid": "DukeMTMC-reID",
    "msmt17": "MSMT17",
    "veri": "VeRi-776",
}

# (table, CALR row, its mAP and rank-1, IBN+GeM row, its mAP and rank-1): Table I and II of the paper
_PAPER_ROWS: dict[str, tuple[str, tuple[str, float, float], tuple[str, float, float]]] = {
    "market1501": ("Table I", ("CALR", 82.8, 92.5), ("CALR(IBN+GeMPool)", 84.5, 93.6)),
    "dukemtmcreid": ("Table I", ("CALR", 71.5, 82.7), ("CALR(IBN+GeMPool)", 74.2, 86.0)),
    "msmt17": ("Table I", ("CALR", 44.2, 73.0), ("CALR(IBN+GeMPool)", 50.4, 78.1)),
    "veri": ("Table II", ("CALR", 42.9, 88.7), ("CALR(IBN+GEM)", 44.8, 91.6)),
}


def _commands(name: str, extra: str = "", *, weights: str | None = "resnet50.pth", best: bool = False) -> str:
    root = "--data-root /path/to/datasets"
    pretrained = f" --set pretrained=/path/to/{weights}" if weights else ""
    base = f"runs/{name}"
    evaluate = f"labelrefine-calr eval --run-dir {base}/inter"
    return "\n".join(
        [
            f"labelrefine-calr intra --preset {name} {root} --run-dir {base}/intra{pretrained}{extra}",
            f"labelrefine-calr inter --preset {name} {root} --run-dir {base}/inter "
            f"--local-labels {base}/intra/local_labels.npz{pretrained}{extra}",
            evaluate + (f" --checkpoint {base}/inter/best.pt" if best else ""),
            f"labelrefine-calr plot {base}/inter",
        ]
    )


def _dataset_values(dataset: str, family: str) -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
    """(overrides, sources, stage-2 overrides) that every preset of a real dataset shares."""
    overrides: dict[str, Any] = {"dataset": dataset}
    sources: dict[str, str] = {}
    inter: dict[str, Any] = {}
    if dataset == "veri":
        overrides.update(height=224, width=224)
        size = "paper, Sec. IV-A" if family == "paper" else "authors' code, README"
        sources.update(height=f"{size} (224 x 224 for VeRi-776)", width=f"{size} (224 x 224 for VeRi-776)")
    if dataset != "market1501":
        inter["iters_per_epoch"] = 400
        sources["inter.iters_per_epoch"] = "authors' code, README: --iters 400 for datasets other than Market-1501"
    return overrides, sources, inter


def _paper_preset(dataset: str, ibn_gem: bool) -> Preset:
    table, calr_row, ibn_row = _PAPER_ROWS[dataset]
    row, mAP, rank1 = ibn_row if ibn_gem else calr_row
    overrides, sources, inter = _dataset_values(dataset, "paper")
    # the pivot rule is not set: the paper presets follow the library's default rule (refine's)
    inter.update(align_epochs=None, cacl_warmup=5)
    sources.update(
        align_epochs="paper, Sec. III-D (Eq. 9, no epoch limit)",
        cacl_warmup="authors' code, `if epoch < 5` (paper names no warm-up)",
    )
    if ibn_gem:
        overrides.update(ibn=True, pooling="gem")
        sources.update(
            ibn=f"paper, {table} row {row} (IBN-ResNet50)",
            pooling=f"paper, {table} row {row} (GeM pooling)",
        )
        model = "IBN-ResNet-50, GeM pooling"
    else:
        model = "ResNet-50, global average pooling"
    name = f"{dataset}-ibn-gem" if ibn_gem else dataset
    return Preset(
        name,
        f"{_DATASET_NAMES[dataset]}, the paper's {row} row ({table}): {model}, tau and m of Sec. IV-A",
        table,
        mAP,
        rank1,
        types.MappingProxyType(overrides),
        types.MappingProxyType({"inter": inter}),
        commands=_commands(name, weights="resnet50_ibn_a.pth" if ibn_gem else "resnet50.pth"),
        paper_row=row,
        family="paper",
        sources=types.MappingProxyType(sources),
    )


def _authors_preset(dataset: str) -> Preset:
    overrides, sources, inter = _dataset_values(dataset, "authors")
    overrides.update(backbone="resnet50", ibn=False, pooling="gem", temperature=0.05, momentum=0.1)
    inter.update(
        pivots="reference",
        p_schedule="constant",
        p_start=1.0,
        k_includes_self=True,
        min_size=4,
        align_epochs=3,
        cacl_warmup=5,
        report_epoch="best",
    )
    authors = {
        "backbone": "authors' code, README: -a resnet50",
        "ibn": "authors' code, README: -a resnet50",
        "pooling": "authors' code, --pooling-type gem",
        "temperature": "authors' code, --temp",
        "momentum": "authors' code, --momentum",
        "intra.epochs": "authors' code, intra_camera_training.py --epochs (README example: 20)",
        "pivots": "authors' code, cluster_by_infomap(node_flag=1)",
        "p_schedule": "authors' code, decay = 1",
        "p_start": "authors' code, decay = 1",
        "k_includes_self": "authors' code, faiss kNN of 15 columns with the sample",
        "min_size": "authors' code, --k2 4 passed to cluster_by_infomap",
        "align_epochs": f"authors' code, calr/trainers.py `if epoch < 3`, {_RVP}",
        "cacl_warmup": "authors' code, `if epoch < 5`",
        "report_epoch": "authors' code, reports model_best.pth.tar (best test-set mAP)",
        "beta": f"authors' code, domain loss added with weight 1, {_RVP}",
    }
    # values the paper and the authors' code share: named after the code in this family
    for key in ("optimizer", "weight_decay", "inter.epochs", "intra_method", "images_per_cluster", "clustering"):
        authors.setdefault(key, "authors' code, the same as the paper")
    for key in ("k", "refine", "align", "cacl"):
        authors.setdefault(key, "authors' code, the same as the paper")
    authors.setdefault("height", "authors' code, README (256 x 128 for persons)")
    authors.setdefault("width", "authors' code, README (256 x 128 for persons)")
    authors.update(sources)
    name = f"{dataset}-authors"
    return Preset(
        name,
        f"{_DATASET_NAMES[dataset]}, the authors' released configuration (ResNet-50, GeM, their tau and momentum, "
        "p = 1, their pivots); no row of the paper states it",
        None,
        None,
        None,
        types.MappingProxyType(overrides),
        types.MappingProxyType({"intra": {"epochs": 25}, "inter": inter}),
        commands=_commands(name, best=True),
        family="authors",
        sources=types.MappingProxyType(authors),
    )


_CPU = "our choice: sized for a CPU run on generated data"


def _cpu_sources(overrides: Mapping[str, Any], stage_overrides: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    keys = {s.key for s in SETTINGS}
    out = {key: _CPU for key in overrides if key in keys}
    for stage, values in stage_overrides.items():
        out.update({f"{stage}.{key}": _CPU for key in values if key in keys})
    return out


def _cpu_preset(name: str, description: str, overrides: dict[str, Any], stage_overrides: dict[str, Any]) -> Preset:
    commands = _commands(name, weights=None).replace("/path/to/datasets", "data")
    if name == "synthetic":
        commands = commands.replace(" --data-root data", "")
    return Preset(
        name,
        description,
        None,
        None,
        None,
        types.MappingProxyType(overrides),
        types.MappingProxyType(stage_overrides),
        commands=commands,
        sources=types.MappingProxyType(_cpu_sources(overrides, stage_overrides)),
    )


PRESETS: dict[str, Preset] = {}
for _dataset in _PAPER_ROWS:
    for _preset in (_paper_preset(_dataset, False), _paper_preset(_dataset, True), _authors_preset(_dataset)):
        PRESETS[_preset.name] = _preset
PRESETS["synthreid"] = _cpu_preset(
    "synthreid",
    "SynthReID generated images with a tiny CNN from random weights: both stages on a laptop CPU in a few "
    "minutes, CALR above the baseline (benchmarks/ablation_synthreid.py)",
    {
        "dataset": "synthreid",
        "backbone": "tiny-cnn",
        "height": 64,
        "width": 32,
        "pad": 4,
        "device": "auto",
        "num_workers": 0,
        "num_threads": 1,
        "test_batch_size": 128,
        "eval_every": 1,
        "lr": 1e-3,
        "lr_step": 12,
        "temperature": 0.05,
        "synthreid_ids": 120,
        "synthreid_camera_strength": 0.25,
    },
    {
        "intra": {"epochs": 5, "iters_per_epoch": 20, "batch_size": 32, "num_instances": 4, "images_per_cluster": 3},
        "inter": {"epochs": 16, "iters_per_epoch": 30, "batch_size": 64, "num_instances": 4, "cacl_warmup": 2},
    },
)
PRESETS["synthetic"] = _cpu_preset(
    "synthetic",
    "Camera-biased synthetic feature vectors with a small MLP: seconds per run, for tests and ablations",
    {
        "dataset": "synthetic",
        "backbone": "mlp",
        "lr": 1e-3,
        "lr_step": 100,
        "num_workers": 0,
        "num_threads": 1,
        "synth_camera_strength": 0.8,
        "synth_noise": 0.5,
        "test_batch_size": 1024,
        "flip_p": 0.0,
        "erasing_p": 0.0,
        "pad": 0,
        "momentum": 0.2,
        "temperature": 0.05,
    },
    {
        "intra": {"epochs": 3, "iters_per_epoch": 10, "batch_size": 32, "num_instances": 4},
        "inter": {
            "epochs": 6,
            "iters_per_epoch": 20,
            "batch_size": 64,
            "num_instances": 4,
            "cacl_warmup": 2,
            "align_epochs": 1,
        },
    },
)
del _dataset, _preset


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (see :data:`PRESETS`)."""
    return PRESETS[check_choice(name, "preset", tuple(PRESETS))]


# ----------------------------------------------------------------------------------------------
# YAML and --set


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file: a mapping of keys, optionally with ``intra:``/``inter:``/``eval:`` sections."""
    yaml = _yaml()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {str(path)!r}")
    with path.open(encoding="utf-8") as handle:
        try:
            data = yaml.safe_load(handle)
        except yaml.YAMLError as exc:
            raise ValueError(f"config file {str(path)!r} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {str(path)!r} must hold a mapping of keys, got {type(data).__name__}")
    return data


def _yaml() -> Any:
    from .._optional import import_optional

    return import_optional("yaml")


def yaml_values(data: Mapping[str, Any], stage: str, source: str = "config file") -> dict[str, Any]:
    """The keys of a YAML mapping that apply to ``stage``.

    Top-level keys apply to every stage that has them (a key no stage has is an error, with
    the closest name); a section named after a stage applies to that stage only.
    """
    all_known = sorted({f.name for cls in _CLASSES.values() for f in fields(cls)})
    own = {f.name for f in fields(config_class(stage))}
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in STAGES:
            if not isinstance(value, dict):
                raise ValueError(f"{source}: section {key!r} must be a mapping of keys, got {value!r}")
            if key == stage:
                for inner in value:
                    if inner not in own:
                        raise _unknown_key(str(inner), sorted(own), f"in section {key!r} of the {source}")
                out.update(value)
            continue
        if key not in all_known:
            raise _unknown_key(str(key), all_known, f"in the {source}")
        if key in own:
            out[key] = value
    out.pop("STAGE", None)
    return out


def parse_set(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Parse ``--set key=value`` items into a dict of strings (parsed later by field type)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = value
    return out


def resolve_config(
    stage: str,
    *,
    preset: str | None = None,
    yaml_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    sets: Mapping[str, str] | None = None,
    base: Mapping[str, Any] | None = None,
) -> Any:
    """Build a stage config: defaults < ``base`` < preset < YAML file < ``overrides`` < ``sets``.

    Parameters
    ----------
    stage : {"intra", "inter", "eval"}
        Which config to build.
    preset : str, optional
        A key of :data:`PRESETS`.
    yaml_file : path, optional
        A YAML file (see :func:`yaml_values`).
    overrides : mapping, optional
        Values from dedicated command-line flags (typed or text).
    sets : mapping, optional
        ``--set`` values (text, parsed by field type).
    base : mapping, optional
        Starting values, e.g. a saved ``config.yaml`` (eval reads the trained run's).

    Returns
    -------
    IntraConfig, InterConfig or EvalConfig

    Raises
    ------
    ValueError, TypeError
        An unknown key (with the closest field name), a value of the wrong type or out of range.
    FileNotFoundError
        A missing YAML file.

    Examples
    --------
    >>> cfg = resolve_config("inter", preset="veri", sets={"beta": "0.5"})
    >>> cfg.height, cfg.width, cfg.beta, cfg.epochs
    (224, 224, 0.5, 50)
    """
    cls = config_class(stage)
    own = {f.name for f in fields(cls)}
    values: dict[str, Any] = {}
    if base:
        values.update({key: value for key, value in base.items() if key in own})
    if preset is not None:
        values.update(get_preset(preset).values(stage))
    if yaml_file is not None:
        values.update(yaml_values(load_yaml(yaml_file), stage, f"config file {str(yaml_file)!r}"))
    for source in (overrides or {}, sets or {}):
        for key in source:
            if key not in own:
                raise _unknown_key(key, sorted(own), f"for stage {stage!r}")
        values.update(source)
    return config_from_dict(cls, values, parse_strings=True)
