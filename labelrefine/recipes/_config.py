"""Configuration of the CALR recipe: one frozen dataclass per stage, presets, YAML and ``--set`` overrides.

Resolution order (later wins): the stage's defaults (the paper's settings), the preset, the YAML
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
    "PRESETS",
    "STAGES",
    "EvalConfig",
    "InterConfig",
    "IntraConfig",
    "Preset",
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
    pooling: str = "gem"
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
    temperature: float = 0.05
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

    Defaults are the paper's (ResNet-50, 256 x 128 inputs, Adam lr 3.5e-4 with weight decay
    5e-4, step decay x0.1 every 20 epochs, temperature 0.05, memory momentum 0.2, 20 epochs) and,
    where the paper is silent, those of the authors' released intra-camera script (batch 64 =
    16 clusters x 4 instances, 100 iterations per epoch, Jaccard k1 = 15, k2 = 4, average-linkage
    agglomerative clustering with ``n_images / 5`` clusters, GeM pooling).

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
    through gradient reversal. Defaults are the paper's: 50 epochs, k = 15, min_sim = 0.5,
    beta = 1.0, the authors' cosine decay of p (``span = 3.0``), batch 256 = 16 clusters x 16
    instances, 200 iterations per epoch, a CaCL warm-up of 10 epochs (our default; the paper
    warms up but we state the number here).

    It has all fields of :class:`IntraConfig` up to ``stop_after_epoch``, with stage-2
    defaults, and the following.

    Parameters
    ----------
    clustering : {"infomap", "dbscan"}
        ``"dbscan"`` on the sparse k-reciprocal Jaccard distance is the Cluster-Contrast baseline.
    k, min_sim : int, float
        kNN graph size (pivot scores and Infomap) and Infomap's edge threshold.
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
    local_labels : str or None
        Stage-1 output: a ``local_labels.npz``, a stage-1 run folder, the authors' per-camera
        ``.npy`` files (a file or a folder of them), or ``"per-camera"`` to cluster each camera
        of the initial features once instead of training stage 1. ``None`` looks for
        ``RUN_DIR/local_labels.npz``, then ``RUN_DIR/../intra/local_labels.npz``.
    """

    STAGE: ClassVar[str] = "inter"

    clustering: str = "infomap"
    k: int = 15
    min_sim: float = 0.5
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
        Sum the embeddings of each image and its mirror image.
    """

    STAGE: ClassVar[str] = "eval"

    checkpoint: str | None = None
    rerank: bool = False
    flip: bool = False


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


@dataclass(frozen=True)
class Preset:
    """Settings of one dataset and the paper's result they target.

    Attributes
    ----------
    name : str
        Preset name (``--preset``).
    description : str
        One line.
    paper_table : str or None
        The table of the CALR paper (arXiv 2403.16450) whose numbers the preset targets.
    paper_map, paper_rank1 : float or None
        mAP and rank-1 (%) of CALR in that table, as reported in the paper (check the paper's
        tables); ``None`` for the CPU presets.
    overrides : mapping
        Keys applied to every stage's config (``dataset``, input size...).
    stage_overrides : mapping
        Per-stage keys, ``{"intra": {...}, "inter": {...}}``.
    commands : str
        The commands that train and evaluate it.
    """

    name: str
    description: str
    paper_table: str | None
    paper_map: float | None
    paper_rank1: float | None
    overrides: Mapping[str, Any]
    stage_overrides: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    commands: str = ""

    def values(self, stage: str) -> dict[str, Any]:
        """The keys this preset sets for ``stage``, filtered to that stage's fields."""
        known = {f.name for f in fields(config_class(stage))}
        merged = {"preset": self.name, **self.overrides, **self.stage_overrides.get(stage, {})}
        return {key: value for key, value in merged.items() if key in known}


def _commands(name: str, extra: str = "", *, weights: bool = True) -> str:
    root = "--data-root /path/to/datasets"
    pretrained = " --set pretrained=/path/to/resnet50-imagenet.pth" if weights else ""
    base = f"runs/{name}"
    return "\n".join(
        [
            f"labelrefine-calr intra --preset {name} {root} --run-dir {base}/intra{pretrained}{extra}",
            f"labelrefine-calr inter --preset {name} {root} --run-dir {base}/inter "
            f"--local-labels {base}/intra/local_labels.npz{pretrained}{extra}",
            f"labelrefine-calr eval --run-dir {base}/inter",
            f"labelrefine-calr plot {base}/inter",
        ]
    )


_PAPER = "as reported in the paper; check the paper's tables"

PRESETS: dict[str, Preset] = {
    "market1501": Preset(
        "market1501",
        f"Market-1501, purely unsupervised, ResNet-50 256x128 (CALR Table I: mAP 85.6, R1 93.9, {_PAPER})",
        "Table I",
        85.6,
        93.9,
        types.MappingProxyType({"dataset": "market1501", "height": 256, "width": 128}),
        commands=_commands("market1501"),
    ),
    "dukemtmcreid": Preset(
        "dukemtmcreid",
        f"DukeMTMC-reID, purely unsupervised, ResNet-50 256x128 (CALR Table I: mAP 75.8, R1 86.6, {_PAPER})",
        "Table I",
        75.8,
        86.6,
        types.MappingProxyType({"dataset": "dukemtmcreid", "height": 256, "width": 128}),
        commands=_commands("dukemtmcreid"),
    ),
    "msmt17": Preset(
        "msmt17",
        f"MSMT17, purely unsupervised, ResNet-50 256x128 (CALR Table I: mAP 42.5, R1 71.2, {_PAPER})",
        "Table I",
        42.5,
        71.2,
        types.MappingProxyType({"dataset": "msmt17", "height": 256, "width": 128}),
        commands=_commands("msmt17"),
    ),
    "veri": Preset(
        "veri",
        f"VeRi-776 vehicles, ResNet-50 224x224 (CALR Table II: mAP 41.4, R1 86.6, {_PAPER})",
        "Table II",
        41.4,
        86.6,
        types.MappingProxyType({"dataset": "veri", "height": 224, "width": 224}),
        commands=_commands("veri"),
    ),
    "synthreid": Preset(
        "synthreid",
        "SynthReID generated images with a tiny CNN: the whole recipe on a laptop CPU in a few minutes",
        None,
        None,
        None,
        types.MappingProxyType(
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
                "lr_step": 10,
            }
        ),
        types.MappingProxyType(
            {
                "intra": {
                    "epochs": 3,
                    "iters_per_epoch": 10,
                    "batch_size": 32,
                    "num_instances": 4,
                    "images_per_cluster": 2,
                },
                "inter": {"epochs": 8, "iters_per_epoch": 20, "batch_size": 64, "num_instances": 4, "cacl_warmup": 2},
            }
        ),
        commands=_commands("synthreid", weights=False).replace("/path/to/datasets", "data"),
    ),
    "synthetic": Preset(
        "synthetic",
        "Camera-biased synthetic feature vectors with a small MLP: seconds per run, for tests and ablations",
        None,
        None,
        None,
        types.MappingProxyType(
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
            }
        ),
        types.MappingProxyType(
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
            }
        ),
        commands=_commands("synthetic", weights=False).replace(" --data-root /path/to/datasets", ""),
    ),
}


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
