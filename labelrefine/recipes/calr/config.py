"""Configuration of the CALR recipe: one frozen config per stage made of frozen sections, presets, YAML and ``--set``.

A stage config (:class:`IntraConfig`, :class:`InterConfig`, :class:`EvalConfig`) holds a few
top-level fields (``seed``, ``deterministic``...) and sections: ``data``, ``augment``,
``model``, ``optim``, ``clustering``, ``refinement``, ``alignment``, ``runtime`` and
``synthetic`` (the generators of the ``synthetic`` and ``synthreid`` datasets). A key is
written ``section.key`` (``--set optim.lr=1e-4``; in YAML, a nested mapping).

Resolution order (later wins): the stage's defaults, the preset, the YAML file, the command
line's dedicated flags, then ``--set section.key=value``. The resolved config is written to
``RUN_DIR/config.yaml`` by the trainer.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import numbers
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from ..._validation import check_choice, check_int, check_probability, check_real
from ...agreement import DEFAULT_MAX_DEVIATION
from ...pivots import DEFAULT_RULE, PIVOT_RULES

__all__ = [
    "DEFAULT_SOURCES",
    "PRESETS",
    "RENAMED",
    "SETTINGS",
    "STAGES",
    "AlignmentConfig",
    "AugmentConfig",
    "ClusteringConfig",
    "DataConfig",
    "EvalConfig",
    "InterConfig",
    "IntraClusteringConfig",
    "IntraConfig",
    "ModelConfig",
    "OptimConfig",
    "Preset",
    "RefinementConfig",
    "RuntimeConfig",
    "Setting",
    "SyntheticConfig",
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
RUNTIME_KEYS: frozenset[str] = frozenset({"data.root", "stop_after_epoch"})
RUNTIME_SECTION = "runtime"


# ----------------------------------------------------------------------------------------------
# field checks


def _positive(value: float, name: str) -> None:
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def _non_negative(value: float, name: str) -> None:
    if not value >= 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def _open_unit(value: float, name: str) -> None:
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")


def _check_device(value: str) -> None:
    text = value.strip().lower()
    if text in ("auto", "cpu", "cuda") or (text.startswith("cuda:") and text[5:].isdigit()):
        return
    raise ValueError(f"runtime.device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {value!r}")


_TYPE_NAMES = {bool: "a bool", int: "an integer", float: "a number", str: "a string"}


def _convert(name: str, value: Any, tp: Any, *, parse_strings: bool) -> Any:
    """Check one field value against its annotation; with ``parse_strings`` text is read as a YAML scalar.

    Text from ``--set`` or ``replace`` is read as YAML reads a value (``yes``, ``1e-4`` and
    ``null`` included), so the command line and a YAML file accept the same spellings. A
    ``tuple[str, ...]`` field takes a list, or text of comma-separated items.
    """
    if typing.get_origin(tp) is tuple:
        return _string_tuple(name, value, parse_strings=parse_strings)
    optional = type(None) in typing.get_args(tp)
    base = next((a for a in typing.get_args(tp) if a is not type(None)), tp)
    expected = _TYPE_NAMES[base] + (" or null" if optional else "")
    error: type[Exception] = TypeError
    if parse_strings and isinstance(value, str):
        error = ValueError
        if optional and value.strip().lower() in ("", "none", "null", "~"):
            value = None
        elif base is not str:
            value = _scalar(value, base)
    if value is None and optional:
        return None
    if base is str and isinstance(value, Path):
        return str(value)
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, numbers.Integral) and not isinstance(value, bool),
        float: isinstance(value, numbers.Real) and not isinstance(value, bool),
        str: isinstance(value, str),
    }[base]
    if not ok:
        raise error(f"{name} must be {expected}, got {value!r}")
    return base(value)


def _string_tuple(name: str, value: Any, *, parse_strings: bool) -> tuple[str, ...]:
    if parse_strings and isinstance(value, str):
        value = [item.strip() for item in value.split(",") if item.strip()]
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise TypeError(f"{name} must be a list of strings, got {value!r}")
    return tuple(value)


def _scalar(text: str, base: type) -> Any:
    """``text`` read as a YAML scalar; a float field also takes ``5e-4``, which PyYAML reads as text."""
    yaml = _yaml()
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if base is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return text
    return value


def _yaml() -> Any:
    from ..._optional import import_optional

    return import_optional("yaml")


@dataclass(frozen=True)
class _Section:
    """Base of the sections: converts (type-checks) every field, then runs ``_validate``."""

    NAME: ClassVar[str] = ""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            value = _convert(f"{self.NAME}.{f.name}", getattr(self, f.name), hints[f.name], parse_strings=False)
            object.__setattr__(self, f.name, value)
        self._validate()

    def _validate(self) -> None:
        pass

    def _name(self, key: str) -> str:
        return f"{self.NAME}.{key}"

    def _ints(self, low: int, *keys: str) -> None:
        for key in keys:
            check_int(getattr(self, key), self._name(key), low=low)


# ----------------------------------------------------------------------------------------------
# the sections


@dataclass(frozen=True)
class DataConfig(_Section):
    """What to train on.

    Parameters
    ----------
    dataset : {"market1501", "dukemtmcreid", "msmt17", "veri", "synthreid", "synthetic", "folder"}
        ``"synthreid"`` is generated under ``root`` when missing; ``"synthetic"`` is
        camera-biased feature vectors from :func:`labelrefine.synthetic.make_camera_biased`
        (with ``model.backbone="mlp"``).
    root : str or None
        Folder holding the dataset folder (e.g. the parent of ``Market-1501-v15.09.15``).
    height, width : int
        Input size: 256 x 128 for persons, 224 x 224 for vehicles.
    """

    NAME: ClassVar[str] = "data"

    dataset: str = "market1501"
    root: str | None = None
    height: int = 256
    width: int = 128

    def _validate(self) -> None:
        check_choice(self.dataset, "data.dataset", DATASET_CHOICES)
        self._ints(8, "height", "width")


@dataclass(frozen=True)
class AugmentConfig(_Section):
    """Training augmentation of :func:`labelrefine.data.build_transforms`: flip, pad-and-crop, erasing."""

    NAME: ClassVar[str] = "augment"

    flip_p: float = 0.5
    pad: int = 10
    erasing_p: float = 0.5

    def _validate(self) -> None:
        check_probability(self.flip_p, "augment.flip_p")
        check_probability(self.erasing_p, "augment.erasing_p")
        self._ints(0, "pad")


@dataclass(frozen=True)
class ModelConfig(_Section):
    """The encoder.

    Parameters
    ----------
    backbone : {"resnet18", "resnet34", "resnet50", "resnet101", "mlp", "tiny-cnn"}
        ``"mlp"``: a residual MLP over feature vectors whose untrained output is its input;
        ``"tiny-cnn"``: three conv blocks, for SynthReID on a CPU.
    pretrained : str or None
        Local weights file (nothing is downloaded). The paper's numbers need ImageNet weights.
    pooling, ibn : see :func:`labelrefine.nn.build_backbone`.
    mlp_hidden, cnn_width : int
        Hidden width of the ``"mlp"`` and base width of the ``"tiny-cnn"`` backbones.
    """

    NAME: ClassVar[str] = "model"

    backbone: str = "resnet50"
    pretrained: str | None = None
    pooling: str = "avg"
    ibn: bool = False
    mlp_hidden: int = 256
    cnn_width: int = 16

    def _validate(self) -> None:
        check_choice(self.backbone, "model.backbone", BACKBONE_CHOICES)
        check_choice(self.pooling, "model.pooling", ("avg", "gem"))
        self._ints(1, "mlp_hidden", "cnn_width")


@dataclass(frozen=True)
class OptimConfig(_Section):
    """Optimiser, batches and the ClusterNCE memory.

    The defaults are stage 2's; :class:`IntraConfig` starts from its own (see its docstring).

    Parameters
    ----------
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
    """

    NAME: ClassVar[str] = "optim"

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

    def _validate(self) -> None:
        check_choice(self.optimizer, "optim.optimizer", ("adam", "sgd"))
        check_choice(self.memory_mode, "optim.memory_mode", ("mean", "sample", "hard"))
        self._ints(1, "lr_step", "batch_size", "num_instances", "iters_per_epoch", "epochs")
        check_probability(self.momentum, "optim.momentum")
        _positive(self.lr, "optim.lr")
        _positive(self.temperature, "optim.temperature")
        _non_negative(self.weight_decay, "optim.weight_decay")
        if not 0.0 < self.lr_gamma <= 1.0:
            raise ValueError(f"optim.lr_gamma must be in (0, 1], got {self.lr_gamma!r}")
        if self.batch_size % self.num_instances:
            raise ValueError(
                "optim.batch_size must be a multiple of optim.num_instances (P identities x K instances per step), "
                f"got batch_size={self.batch_size} and num_instances={self.num_instances}"
            )

    @property
    def identities_per_step(self) -> int:
        """P, the identities (clusters) of one global batch: ``batch_size // num_instances``."""
        return self.batch_size // self.num_instances


def _check_graph_keys(section: IntraClusteringConfig | ClusteringConfig) -> None:
    """The Jaccard (``k1``, ``k2``), DBSCAN (``eps``) and Infomap (``min_sim``) keys both clustering sections share."""
    check_int(section.k1, "clustering.k1", low=1)
    check_int(section.k2, "clustering.k2", low=1, high=section.k1)
    check_probability(section.min_sim, "clustering.min_sim")
    _open_unit(section.eps, "clustering.eps")


@dataclass(frozen=True)
class IntraClusteringConfig(_Section):
    """Stage 1: per-camera clustering, :func:`labelrefine.cluster_camera` on each camera.

    Parameters
    ----------
    method : {"agglomerative", "dbscan", "infomap"}
        The per-camera method.
    images_per_cluster, k1, k2, eps, min_sim, k : its parameters.
    """

    NAME: ClassVar[str] = "clustering"

    method: str = "agglomerative"
    images_per_cluster: int = 5
    k1: int = 15
    k2: int = 4
    eps: float = 0.6
    min_sim: float = 0.5
    k: int = 15

    def _validate(self) -> None:
        check_choice(self.method, "clustering.method", ("agglomerative", "dbscan", "infomap"))
        self._ints(1, "images_per_cluster", "k")
        _check_graph_keys(self)


@dataclass(frozen=True)
class ClusteringConfig(_Section):
    """Stage 2: global clustering of every training image, each epoch.

    Parameters
    ----------
    method : {"infomap", "dbscan"}
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
    eps, min_samples, k1, k2 : DBSCAN and Jaccard parameters (``method="dbscan"``).
    """

    NAME: ClassVar[str] = "clustering"

    method: str = "infomap"
    k: int = 15
    k_includes_self: bool = False
    min_sim: float = 0.5
    min_size: int = 1
    eps: float = 0.6
    min_samples: int = 4
    k1: int = 30
    k2: int = 6

    def _validate(self) -> None:
        check_choice(self.method, "clustering.method", ("infomap", "dbscan"))
        check_int(self.k, "clustering.k", low=2)
        self._ints(1, "min_samples")
        self._ints(0, "min_size")
        _check_graph_keys(self)


@dataclass(frozen=True)
class RefinementConfig(_Section):
    """Stage 2: camera-aware label refinement and camera-entropy cluster weights.

    Parameters
    ----------
    enabled : bool
        Refine the global labels with the local ones (``--no-refine`` turns it off).
    rule : str
        Refinement rule of :func:`labelrefine.refine` (one of :data:`labelrefine.pivots.PIVOT_RULES`),
        default the library's measured default (``labelrefine.pivots.DEFAULT_RULE``). The paper
        presets set ``"algorithm1"`` (the paper's text), the ``-authors`` presets ``"reference"``.
    max_deviation : float
        Threshold of the ``"cross-camera"`` rule, in robust standard deviations (see
        :func:`labelrefine.refine`).
    schedule, p_start, p_end, p_span, p_power, p_rate :
        Decay of the discard probability p, :func:`labelrefine.schedules.get_schedule`
        (``span`` for cosine, ``power`` for polynomial, ``rate`` for exponential;
        ``"constant"`` with ``p_start=1`` is the paper's "no decay").
    cacl, cacl_warmup : camera-entropy weights ``log(1 + H)`` from epoch ``cacl_warmup`` on.
    local_labels : str or None
        Stage-1 output: a ``local_labels.npz``, a stage-1 run folder, the authors' per-camera
        ``.npy`` files (a file or a folder of them), or ``"per-camera"`` to cluster each camera
        of the initial features once instead of training stage 1. ``None`` looks for
        ``RUN_DIR/local_labels.npz``, then ``RUN_DIR/../intra/local_labels.npz``.
    """

    NAME: ClassVar[str] = "refinement"

    enabled: bool = True
    rule: str = DEFAULT_RULE
    max_deviation: float = DEFAULT_MAX_DEVIATION
    schedule: str = "cosine"
    p_start: float = 1.0
    p_end: float = 0.0
    p_span: float = 3.0
    p_power: float = 2.0
    p_rate: float = 5.0
    cacl: bool = True
    cacl_warmup: int = 10
    local_labels: str | None = None

    def _validate(self) -> None:
        check_choice(self.rule, "refinement.rule", PIVOT_RULES)
        check_choice(self.schedule, "refinement.schedule", SCHEDULE_CHOICES)
        check_probability(self.p_start, "refinement.p_start")
        check_probability(self.p_end, "refinement.p_end")
        for key in ("max_deviation", "p_span", "p_power", "p_rate"):
            _positive(getattr(self, key), self._name(key))
        self._ints(0, "cacl_warmup")

    def schedule_options(self) -> dict[str, float]:
        """Options of :func:`labelrefine.schedules.get_schedule` for ``schedule``."""
        options = {"start": self.p_start, "end": self.p_end}
        extra = {"cosine": ("span", self.p_span), "polynomial": ("power", self.p_power)}
        extra["exponential"] = ("rate", self.p_rate)
        if self.schedule in extra:
            key, value = extra[self.schedule]
            options[key] = value
        return options


@dataclass(frozen=True)
class AlignmentConfig(_Section):
    """Stage 2: camera-domain loss through gradient reversal.

    Parameters
    ----------
    enabled : bool
        ``--no-align`` turns it off.
    beta : float
        Weight of the domain loss.
    grl_lambda, grl_schedule : reversal strength, constant or the DANN ramp
        (:func:`labelrefine.nn.grl_lambda` over training progress) times ``grl_lambda``.
    epochs : int or None
        Apply the domain loss in the first ``epochs`` epochs only. Default 3, as the authors'
        released code does; ``None`` applies it every epoch, as the paper's loss reads (on the
        synthetic data, where alignment succeeds within an epoch, adversarial training that
        goes on afterwards degrades the features).
    cam_hidden : int
        Hidden width of the camera classifier.
    cam_lr_mult : float
        Learning rate of the camera classifier relative to ``optim.lr`` (a faster classifier
        keeps the adversarial game near its equilibrium).
    """

    NAME: ClassVar[str] = "alignment"

    enabled: bool = True
    beta: float = 1.0
    grl_lambda: float = 1.0
    grl_schedule: str = "constant"
    epochs: int | None = 3
    cam_hidden: int = 256
    cam_lr_mult: float = 1.0

    def _validate(self) -> None:
        check_choice(self.grl_schedule, "alignment.grl_schedule", ("constant", "dann"))
        self._ints(1, "cam_hidden")
        if self.epochs is not None:
            self._ints(0, "epochs")
        _non_negative(self.beta, "alignment.beta")
        _positive(self.cam_lr_mult, "alignment.cam_lr_mult")
        if not math.isfinite(self.grl_lambda):
            raise ValueError(f"alignment.grl_lambda must be finite, got {self.grl_lambda!r}")


@dataclass(frozen=True)
class RuntimeConfig(_Section):
    """Where and how a run executes; these keys may change between a run and its ``--resume``.

    Parameters
    ----------
    run_dir : str or None
        Output folder; default ``runs/<dataset>/<stage>``.
    device : {"auto", "cpu", "cuda", "cuda:N"}
        Under ``torchrun`` each process uses ``cuda:LOCAL_RANK``.
    num_workers, num_threads : int
        DataLoader workers; torch CPU threads of the process (``None``: torch's default; 1 is
        fastest for the tiny CPU models, whose operations are too small to split).
    progress : bool
        Progress bars (rank 0, on a terminal).
    test_batch_size : int
        Batch size of feature extraction.
    hooks : tuple of str
        Hooks added to the trainer, as import paths ``"package.module:Name"`` of a
        :class:`Hook` subclass (instantiated without arguments) or of a hook instance. In YAML a
        list; on the command line ``--hook PATH`` (repeatable) or ``--set runtime.hooks=A,B``.
    """

    NAME: ClassVar[str] = "runtime"

    run_dir: str | None = None
    device: str = "auto"
    num_workers: int = 4
    num_threads: int | None = None
    progress: bool = True
    test_batch_size: int = 256
    hooks: tuple[str, ...] = ()

    def _validate(self) -> None:
        _check_device(self.device)
        for path in self.hooks:
            if path.count(":") != 1 or not all(path.split(":")):
                raise ValueError(f"runtime.hooks entries must be import paths 'package.module:Name', got {path!r}")
        self._ints(0, "num_workers")
        self._ints(1, "test_batch_size")
        if self.num_threads is not None:
            self._ints(1, "num_threads")


@dataclass(frozen=True)
class SyntheticConfig(_Section):
    """The generators of the ``synthetic`` (feature vectors) and ``synthreid`` (images) datasets.

    Parameters
    ----------
    seed : int
        Seed of both generators.
    ids, cams, dim, camera_strength, noise, family_size :
        :func:`labelrefine.synthetic.make_camera_biased` (``dataset="synthetic"``).
    reid_ids, reid_cams, reid_height, reid_width, reid_camera_strength :
        :func:`labelrefine.data.make_synthreid` (``dataset="synthreid"``; ``reid_camera_strength``
        is its ``camera_strength``, in [0, 2]).
    """

    NAME: ClassVar[str] = "synthetic"

    seed: int = 0
    ids: int = 200
    cams: int = 6
    dim: int = 64
    camera_strength: float = 0.6
    noise: float = 0.25
    family_size: int = 3
    reid_ids: int = 100
    reid_cams: int = 6
    reid_height: int = 64
    reid_width: int = 32
    reid_camera_strength: float = 0.3

    def _validate(self) -> None:
        self._ints(0, "seed")
        self._ints(1, "ids", "dim", "reid_ids", "family_size")
        self._ints(2, "cams", "reid_cams")
        self._ints(16, "reid_height")
        self._ints(8, "reid_width")
        _non_negative(self.camera_strength, "synthetic.camera_strength")
        _non_negative(self.noise, "synthetic.noise")
        check_real(self.reid_camera_strength, "synthetic.reid_camera_strength", low=0.0, high=2.0)


# ----------------------------------------------------------------------------------------------
# the stage configs


@dataclass(frozen=True)
class _Config:
    """Base of the stage configs: top-level fields and sections, type-checked and validated."""

    STAGE: ClassVar[str] = ""

    preset: str | None = None
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(hints[f.name], type) and issubclass(hints[f.name], _Section):
                if not isinstance(value, hints[f.name]):
                    raise TypeError(f"{f.name} must be a {hints[f.name].__name__}, got {type(value).__name__}")
                continue
            object.__setattr__(self, f.name, _convert(f.name, value, hints[f.name], parse_strings=False))
        self._validate()
        if self.runtime.run_dir is None:
            run_dir = str(Path("runs") / self.data.dataset / self.STAGE)
            object.__setattr__(self, "runtime", dataclasses.replace(self.runtime, run_dir=run_dir))

    def _validate(self) -> None:
        if self.preset is not None:
            check_choice(self.preset, "preset", tuple(PRESETS))
        vectors, mlp = self.data.dataset == "synthetic", self.model.backbone == "mlp"
        if vectors and not mlp:
            raise ValueError(
                "model.backbone must be 'mlp' for data.dataset='synthetic' (its samples are feature vectors), "
                f"got {self.model.backbone!r}"
            )
        if mlp and not vectors:
            raise ValueError(
                f"model.backbone='mlp' works on feature vectors: data.dataset must be 'synthetic', "
                f"got {self.data.dataset!r}"
            )

    def get(self, key: str) -> Any:
        """The value of ``key``: ``"section.key"`` or a top-level field (``"optim.lr"``, ``"seed"``)."""
        if key not in config_keys(type(self)):
            raise _unknown_key(key, config_keys(type(self)), f"for stage {self.STAGE!r}")
        value: Any = self
        for part in key.split("."):
            value = getattr(value, part)
        return value

    @property
    def run_dir(self) -> str:
        """``runtime.run_dir`` (never ``None`` once built)."""
        return str(self.runtime.run_dir)

    def replace(self, **changes: Any) -> Any:
        """A validated copy with ``changes``: top-level keys, or sections as mappings of their keys.

        Text values are parsed as on the command line. Example:
        ``config.replace(seed=2, optim={"lr": "1e-4"})``.
        """
        return config_from_dict(type(self), {**_flatten(config_to_dict(self)), **_flatten(changes)}, parse_strings=True)


@dataclass(frozen=True)
class _TrainConfig(_Config):
    """Fields of both training stages."""

    seed: int = 1
    deterministic: bool = False
    amp: bool = False
    sync_bn: bool = True
    stop_after_epoch: int | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def _validate(self) -> None:
        super()._validate()
        check_int(self.seed, "seed", low=0)
        if self.stop_after_epoch is not None:
            check_int(self.stop_after_epoch, "stop_after_epoch", low=0)


@dataclass(frozen=True)
class IntraConfig(_TrainConfig):
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
    seed, deterministic : int, bool
        Seed of everything; ``deterministic`` turns on ``torch.use_deterministic_algorithms``
        (needed for bit-identical ``--resume``).
    amp : bool
        Mixed precision (float16 autocast + gradient scaling) on CUDA; ignored on a CPU.
    sync_bn : bool
        Under DistributedDataParallel, BatchNorm statistics over the global batch (SyncBatchNorm
        on CUDA, :class:`labelrefine.nn.GlobalBatchNorm` on CPU/gloo). Without it each GPU
        normalises with the statistics of its own ``batch_size / world_size`` images, which
        changes the training when the number of GPUs changes.
    stop_after_epoch : int or None
        Test hook: stop (raising :class:`RunInterrupted`) after checkpointing this epoch (stage 1
        counts over all cameras: camera index x epochs + epoch), to simulate a killed run.
    data, augment, model, optim, runtime, synthetic : sections
        :class:`DataConfig`, :class:`AugmentConfig`, :class:`ModelConfig`,
        :class:`OptimConfig` (stage-1 defaults: 20 epochs, batch 64, 4 instances, 100
        iterations), :class:`RuntimeConfig`, :class:`SyntheticConfig`.
    clustering : IntraClusteringConfig
        Per-camera clustering.
    """

    STAGE: ClassVar[str] = "intra"

    optim: OptimConfig = field(
        default_factory=functools.partial(OptimConfig, epochs=20, batch_size=64, num_instances=4, iters_per_epoch=100)
    )
    clustering: IntraClusteringConfig = field(default_factory=IntraClusteringConfig)


@dataclass(frozen=True)
class InterConfig(_TrainConfig):
    """Stage 2, inter-camera training with camera-aware label refinement (CALR).

    Each epoch: extract features, one kNN graph (``clustering.k`` neighbours), Infomap or
    DBSCAN on the Jaccard distance, :func:`labelrefine.refine` with the discard probability of
    the ``refinement.schedule``, camera-entropy (CaCL) cluster weights after
    ``refinement.cacl_warmup`` epochs, a memory reset, then ``optim.iters_per_epoch`` steps of
    ClusterNCE + ``alignment.beta`` x camera-domain loss through gradient reversal. Defaults
    follow the paper where it states a value (50 epochs, Infomap, ``top_15`` neighbours in
    Eq. 4, beta = 1.0 from Table V, cosine decay of p from Table IV) and otherwise the
    authors' released code (Infomap's ``min_sim = 0.5``, batch 256 = 16 clusters x 16
    instances, 200 iterations per epoch, the cosine period of their commented-out line
    ``span = 3.0``, the domain loss in the first 3 epochs) or our choice (a CaCL warm-up of 10
    epochs; the paper names no warm-up, the authors' code uses 5). ``labelrefine-calr
    presets`` lists the source of every setting of every preset.

    It has the top-level fields and sections of :class:`IntraConfig` (stage-2 defaults), and
    the following.

    Parameters
    ----------
    eval_every : int
        Evaluate retrieval every this many epochs (and after the last); 0 = only after the last.
    report_epoch : {"last", "best"}
        Which evaluation the run reports (``RunResult.metrics`` and the last log line):
        ``"last"``, or ``"best"``, the epoch with the highest **test-set** mAP, as the authors'
        script reports (that is model selection on the test set). With ``"best"`` the
        encoder of that epoch is also saved to ``RUN_DIR/best.pt``.
    clustering : ClusteringConfig
        Global clustering.
    refinement : RefinementConfig
        Label refinement and CaCL weights.
    alignment : AlignmentConfig
        Camera-domain loss.
    """

    STAGE: ClassVar[str] = "inter"

    eval_every: int = 1
    report_epoch: str = "last"
    clustering: ClusteringConfig = field(default_factory=ClusteringConfig)
    refinement: RefinementConfig = field(default_factory=RefinementConfig)
    alignment: AlignmentConfig = field(default_factory=AlignmentConfig)

    def _validate(self) -> None:
        super()._validate()
        check_int(self.eval_every, "eval_every", low=0)
        check_choice(self.report_epoch, "report_epoch", ("last", "best"))


@dataclass(frozen=True)
class EvalConfig(_Config):
    """Evaluation of a trained run: retrieval mAP / CMC on the query and gallery splits.

    The data, model and generator settings are read from the run's ``config.yaml``;
    ``checkpoint`` defaults to ``RUN_DIR/checkpoint.pt``.

    Parameters
    ----------
    preset : str or None
        Name of the preset the config was built from (recorded only).
    checkpoint : str or None
        A checkpoint written by the recipe (its ``encoder`` state is loaded).
    rerank : bool
        k-reciprocal re-ranking (:func:`labelrefine.evaluate_retrieval`).
    flip : bool
        Sum the embeddings of each image and its mirror image (images only: with
        ``model.backbone="mlp"`` the samples are feature vectors, and ``flip=True`` is an error).
    data, model, runtime, synthetic : sections
        As in :class:`IntraConfig`.
    """

    STAGE: ClassVar[str] = "eval"

    checkpoint: str | None = None
    rerank: bool = False
    flip: bool = False

    def _validate(self) -> None:
        super()._validate()
        if self.flip and self.model.backbone == "mlp":
            raise ValueError(
                f"flip=True mirrors images left to right, but model.backbone='mlp' (data.dataset="
                f"{self.data.dataset!r}) embeds feature vectors, which flipping would reverse: evaluate without --flip"
            )


_CLASSES: dict[str, type[_Config]] = {"intra": IntraConfig, "inter": InterConfig, "eval": EvalConfig}


def config_class(stage: str) -> type[_Config]:
    """The config class of ``stage`` (``"intra"``, ``"inter"`` or ``"eval"``)."""
    return _CLASSES[check_choice(stage, "stage", STAGES)]


def _sections(cls: type[_Config]) -> dict[str, Callable[[], _Section]]:
    """The sections of a stage config: field name -> the section's default factory."""
    factories: dict[str, Callable[[], _Section]] = {}
    for f in fields(cls):
        if f.default_factory is not dataclasses.MISSING:
            factories[f.name] = f.default_factory
    return factories


def config_keys(cls: type[_Config]) -> list[str]:
    """Every key of a stage config, ``section.key`` for section keys, in field order."""
    keys = []
    for f in fields(cls):
        if f.default_factory is dataclasses.MISSING:
            keys.append(f.name)
        else:
            keys += [f"{f.name}.{inner.name}" for inner in fields(f.default_factory())]
    return keys


def config_to_dict(config: _Config) -> dict[str, Any]:
    """The config as a nested dict (sections as mappings, tuples as lists), as written to ``config.yaml``."""
    return {
        f.name: dataclasses.asdict(value, dict_factory=_yaml_dict)
        if isinstance(value := getattr(config, f.name), _Section)
        else value
        for f in fields(config)
    }


def _yaml_dict(items: list[tuple[str, Any]]) -> dict[str, Any]:
    """A section's fields with tuples as lists, which ``yaml.safe_dump`` writes."""
    return {key: list(value) if isinstance(value, tuple) else value for key, value in items}


def _flatten(values: Mapping[str, Any]) -> dict[str, Any]:
    """``{"optim": {"lr": 1}}`` and ``{"optim.lr": 1}`` both become ``{"optim.lr": 1}``."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            out.update({f"{key}.{inner}": v for inner, v in value.items()})
        else:
            out[str(key)] = value
    return out


# RENAMED: every key of the flat config of earlier versions and its ``section.key`` (named by "did you mean").
RENAMED: Mapping[str, str] = types.MappingProxyType(
    {
        "dataset": "data.dataset",
        "data_root": "data.root",
        "height": "data.height",
        "width": "data.width",
        "flip_p": "augment.flip_p",
        "pad": "augment.pad",
        "erasing_p": "augment.erasing_p",
        **{key: f"model.{key}" for key in ("backbone", "pretrained", "pooling", "ibn", "mlp_hidden", "cnn_width")},
        **{key: f"optim.{key}" for key in ("optimizer", "lr", "weight_decay", "lr_step", "lr_gamma", "batch_size")},
        **{key: f"optim.{key}" for key in ("num_instances", "iters_per_epoch", "epochs", "temperature")},
        **{key: f"optim.{key}" for key in ("momentum", "memory_mode")},
        **{key: f"runtime.{key}" for key in ("run_dir", "device", "num_workers", "num_threads", "progress")},
        "test_batch_size": "runtime.test_batch_size",
        "data_seed": "synthetic.seed",
        **{f"synth_{key}": f"synthetic.{key}" for key in ("ids", "cams", "dim", "camera_strength", "noise")},
        "synth_family_size": "synthetic.family_size",
        **{f"synthreid_{key}": f"synthetic.reid_{key}" for key in ("ids", "cams", "height", "width")},
        "intra_method": "clustering.method",
        "clustering": "clustering.method",
        **{key: f"clustering.{key}" for key in ("images_per_cluster", "k1", "k2", "eps", "min_sim", "k")},
        **{key: f"clustering.{key}" for key in ("k_includes_self", "min_size", "min_samples")},
        "refine": "refinement.enabled",
        "pivots": "refinement.rule",
        "p_schedule": "refinement.schedule",
        **{key: f"refinement.{key}" for key in ("p_start", "p_end", "p_span", "p_power", "p_rate")},
        **{key: f"refinement.{key}" for key in ("cacl", "cacl_warmup", "local_labels")},
        "align": "alignment.enabled",
        "align_epochs": "alignment.epochs",
        **{key: f"alignment.{key}" for key in ("beta", "grl_lambda", "grl_schedule", "cam_hidden", "cam_lr_mult")},
    }
)


def _abbreviates(short: str, long: str) -> bool:
    """Whether ``short`` abbreviates ``long``: same first letter, its letters in order in ``long`` (lr)."""
    rest = iter(long)
    return short[:1] == long[:1] and all(char in rest for char in short)


def _closest_key(key: str, known: list[str]) -> str | None:
    """The known key a mistyped or renamed ``key`` most likely means.

    In order: its new name (:data:`RENAMED`); a near-identical key (a typo, difflib ratio >= 0.8);
    a key of the same section whose name abbreviates it or that it abbreviates (``optim.lr`` for
    ``optim.learning_rate``), the closest of them; the closest key; the closest key name alone.
    """
    if RENAMED.get(key) in known:
        return RENAMED[key]
    typo = difflib.get_close_matches(key, known, n=1, cutoff=0.8)
    if typo:
        return typo[0]
    section, _, leaf = key.rpartition(".")
    related = [
        name
        for name in known
        if name.rpartition(".")[0] == section
        and (_abbreviates(name.rpartition(".")[2], leaf) or _abbreviates(leaf, name.rpartition(".")[2]))
    ]
    close = difflib.get_close_matches(key, related, n=1, cutoff=0.0) or difflib.get_close_matches(key, known, n=1)
    if close:
        return close[0]
    leaves = {name.rpartition(".")[2]: name for name in reversed(known)}
    return next((leaves[name] for name in difflib.get_close_matches(key, list(leaves), n=1)), None)


def _unknown_key(key: str, known: list[str], where: str) -> ValueError:
    """The error of an unknown key, naming its new place (:data:`RENAMED`) or the closest key or key name."""
    close = _closest_key(key, known)
    hint = f"; did you mean {close!r}?" if close else ""
    return ValueError(f"unknown config key {key!r} {where}{hint}")


def config_from_dict(cls: type[_Config], values: Mapping[str, Any], *, parse_strings: bool = False) -> Any:
    """Build ``cls`` from a mapping of ``section.key`` (or nested section mappings) and top-level keys.

    Unknown keys raise ``ValueError`` naming the closest key (or the new name of a key of the
    flat config). With ``parse_strings`` text values are read as YAML scalars for non-string
    fields (``"1e-4"`` for a float, ``"no"`` for a bool, ``"null"`` for an optional field), as
    for YAML files and ``--set``.
    """
    known = config_keys(cls)
    sections = _sections(cls)
    hints = typing.get_type_hints(cls)
    top: dict[str, Any] = {}
    inner: dict[str, dict[str, Any]] = {name: {} for name in sections}
    for key, value in _flatten(values).items():
        if key not in known:
            raise _unknown_key(key, known, f"for stage {cls.STAGE!r}")
        section, _, name = key.partition(".")
        if name:
            section_hints = typing.get_type_hints(hints[section])
            inner[section][name] = _convert(key, value, section_hints[name], parse_strings=parse_strings)
        else:
            top[key] = _convert(key, value, hints[key], parse_strings=parse_strings)
    for name, factory in sections.items():
        top[name] = dataclasses.replace(factory(), **inner[name])
    return cls(**top)


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
        The config key: ``section.key``, or a top-level field such as ``report_epoch``.
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
        "model.backbone",
        _BOTH,
        "ResNet-50 pre-trained on ImageNet (Sec. IV-A)",
        "`-a resnet50` (README; default of inter_camera_training.py)",
    ),
    Setting(
        "model.ibn",
        _BOTH,
        "IBN-ResNet50 for the CALR(IBN) and CALR(IBN+GeMPool) rows (Table I caption)",
        "`-a resnet_ibn50a` for IBN (README; default of intra_camera_training.py)",
    ),
    Setting(
        "model.pooling",
        _BOTH,
        "global average pooling, then BN and L2 (Sec. IV-A); GeM for the IBN+GeMPool rows (Table I caption)",
        "`--pooling-type gem` (both scripts)",
    ),
    Setting("data.height", _BOTH, "256 x 128 for persons, 224 x 224 for VeRi-776 (Sec. IV-A)", "the same (README)"),
    Setting("data.width", _BOTH, "256 x 128 for persons, 224 x 224 for VeRi-776 (Sec. IV-A)", "the same (README)"),
    Setting("augment.flip_p", _BOTH, "silent", "`RandomHorizontalFlip(p=0.5)` (get_train_loader)"),
    Setting("augment.pad", _BOTH, "silent", "`Pad(10)` then `RandomCrop` (get_train_loader)"),
    Setting("augment.erasing_p", _BOTH, "silent", "`RandomErasing(probability=0.5)` (get_train_loader)"),
    Setting("optim.optimizer", _BOTH, "Adam (Sec. IV-A)", "Adam"),
    Setting("optim.lr", _BOTH, "silent", "`--lr 0.00035`"),
    Setting("optim.weight_decay", _BOTH, "5e-4 (Sec. IV-A)", "`--weight-decay 5e-4`"),
    Setting("optim.lr_step", _BOTH, "silent", "`StepLR`, `--step-size 20`"),
    Setting("optim.lr_gamma", _BOTH, "silent", "`StepLR(..., gamma=0.1)`"),
    Setting("optim.batch_size", _INTRA, "silent", "`-b 64` (intra_camera_training.py; README example: `-b 256`)"),
    Setting("optim.batch_size", _INTER, "silent", "`-b 256`"),
    Setting("optim.num_instances", _INTRA, "silent", "`--num-instances 4`"),
    Setting("optim.num_instances", _INTER, "silent", "`--num-instances 16`"),
    Setting("optim.iters_per_epoch", _INTRA, "silent", "`--iters 100`"),
    Setting(
        "optim.iters_per_epoch",
        _INTER,
        "silent",
        "README: `--iters 200` for Market-1501, `--iters 400` for the other datasets",
    ),
    Setting(
        "optim.epochs",
        _INTRA,
        "20 epochs of intra-camera training (Sec. IV-A)",
        "`--epochs 25` (script default; README example: `--epochs 20`)",
    ),
    Setting("optim.epochs", _INTER, "50 epochs of inter-camera training (Sec. IV-A)", "`--epochs 50`"),
    Setting("optim.temperature", _BOTH, "tau = 0.1 (Sec. IV-A)", "`--temp 0.05` (both scripts)"),
    Setting("optim.momentum", _BOTH, "m = 0.2 (Sec. IV-A, Eq. 2)", "`--momentum 0.1` (both scripts)"),
    Setting(
        "optim.memory_mode",
        _BOTH,
        "Eq. 2, one update per query",
        "Cluster-Contrast's memory: one update per sample in batch order (`--use-hard` off)",
    ),
    Setting(
        "clustering.method",
        _INTRA,
        "agglomerative hierarchical clustering [68] (Sec. IV-A); no distance or linkage named",
        f"agglomerative clustering of the Jaccard distance, average linkage, {_RVP}",
    ),
    Setting("clustering.images_per_cluster", _INTRA, "num_images / 5 clusters per camera (Sec. IV-A)", "the same"),
    Setting("clustering.k1", _INTRA, "silent (no distance named)", "Jaccard `--k1 15`"),
    Setting("clustering.k2", _INTRA, "silent (no distance named)", "Jaccard `--k2 4`"),
    Setting("clustering.method", _INTER, "Infomap [63] (Sec. III-A, IV-A)", "Infomap (`cluster_by_infomap`)"),
    Setting(
        "clustering.k",
        _INTER,
        "top_15(i), the 15 closest neighbours of i, in the pivot score (Eq. 4); Infomap's graph: silent",
        "`--k1 15`: a faiss search of 15 columns, the sample included, for Infomap and the score",
    ),
    Setting(
        "clustering.k_includes_self",
        _INTER,
        "no: the 15 closest neighbours of i (Eq. 4)",
        "yes (15 columns with the sample)",
    ),
    Setting("clustering.min_sim", _INTER, "silent", "`--eps 0.5`, passed to Infomap as `min_sim`"),
    Setting("clustering.min_size", _INTER, "silent", "`--k2 4`: Infomap clusters of at most 4 images become outliers"),
    Setting(
        "clustering.eps", _INTER, "silent (DBSCAN is not used)", "not used (the released run clusters with Infomap)"
    ),
    Setting(
        "clustering.min_samples",
        _INTER,
        "silent (DBSCAN is not used)",
        "not used (the released run clusters with Infomap)",
    ),
    Setting("clustering.k1", _INTER, "silent (DBSCAN is not used)", "`--D_k1 30` (unused by the Infomap run)"),
    Setting("clustering.k2", _INTER, "silent (DBSCAN is not used)", "`--D_k2 6` (unused by the Infomap run)"),
    Setting("refinement.enabled", _INTER, "label refinement with local clusters, Eq. 5 (Sec. III-C)", "on"),
    Setting(
        "refinement.rule",
        _INTER,
        "every sample whose score is above the mean score is a pivot (Sec. III-C)",
        f"one pivot per cluster, its last above-mean member (`node_flag=1`), {_RVP}",
    ),
    Setting(
        "refinement.schedule",
        _INTER,
        "cosine decay of p is best (Table IV)",
        "p = 1 at every epoch (`decay = 1`; the cosine line is commented out)",
    ),
    Setting("refinement.p_start", _INTER, "Eq. 5 is stated for p = 1 (Sec. III-C)", "1"),
    Setting("refinement.p_end", _INTER, "silent", "p stays 1"),
    Setting(
        "refinement.p_span",
        _INTER,
        "silent (no period of the cosine given)",
        "3 in the commented-out line `0.5*(1+cos(pi*epoch/(3*epochs)))`",
    ),
    Setting("refinement.p_power", _INTER, "silent (Table IV names a polynomial decay, no power)", "not used"),
    Setting("refinement.p_rate", _INTER, "silent (Table IV names an exponential decay, no rate)", "not used"),
    Setting("alignment.enabled", _INTER, "camera domain alignment, Eq. 7-9 (Sec. III-C, III-D)", "on"),
    Setting(
        "alignment.beta",
        _INTER,
        "beta = 1.0 gives the highest mAP (Table V, Sec. IV-D)",
        f"no beta: the domain loss is added with weight 1, {_RVP}",
    ),
    Setting("alignment.grl_lambda", _INTER, "lambda, no value given (Eq. 7)", f"lambda = 1, {_RVP}"),
    Setting("alignment.grl_schedule", _INTER, "silent", "constant"),
    Setting(
        "alignment.epochs",
        _INTER,
        "no limit: Eq. 9 is the objective of the inter-camera training (Sec. III-D)",
        f"the first 3 epochs (`if epoch < 3` in calr/trainers.py), {_RVP}",
    ),
    Setting(
        "alignment.cam_hidden",
        _INTER,
        "silent (a domain classifier D)",
        f"three layers of width 100 with dropout, {_RVP}",
    ),
    Setting("alignment.cam_lr_mult", _INTER, "silent", "one Adam and one learning rate for all parameters"),
    Setting("refinement.cacl", _INTER, "w_i follows [62] (Eq. 6)", "`log(1 + H)` cluster weights"),
    Setting(
        "refinement.cacl_warmup", _INTER, "silent (no warm-up named)", "uniform weights for epochs 0-4 (`if epoch < 5`)"
    ),
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
        "model.backbone": "paper, Sec. IV-A (ResNet-50)",
        "model.ibn": "paper, Sec. IV-A (ResNet-50)",
        "model.pooling": "paper, Sec. IV-A (global average pooling)",
        "data.height": "paper, Sec. IV-A (256 x 128 for persons)",
        "data.width": "paper, Sec. IV-A (256 x 128 for persons)",
        "augment.flip_p": "authors' code, get_train_loader (paper silent)",
        "augment.pad": "authors' code, get_train_loader (paper silent)",
        "augment.erasing_p": "authors' code, get_train_loader (paper silent)",
        "optim.optimizer": "paper, Sec. IV-A (Adam)",
        "optim.lr": "authors' code, --lr (paper silent)",
        "optim.weight_decay": "paper, Sec. IV-A",
        "optim.lr_step": "authors' code, --step-size (paper silent)",
        "optim.lr_gamma": "authors' code, StepLR gamma (paper silent)",
        "intra.optim.batch_size": "authors' code, intra_camera_training.py -b (paper silent)",
        "inter.optim.batch_size": "authors' code, inter_camera_training.py -b (paper silent)",
        "intra.optim.num_instances": "authors' code, intra_camera_training.py --num-instances (paper silent)",
        "inter.optim.num_instances": "authors' code, inter_camera_training.py --num-instances (paper silent)",
        "intra.optim.iters_per_epoch": "authors' code, intra_camera_training.py --iters (paper silent)",
        "inter.optim.iters_per_epoch": "authors' code, README: --iters 200 for Market-1501 (paper silent)",
        "intra.optim.epochs": "paper, Sec. IV-A",
        "inter.optim.epochs": "paper, Sec. IV-A",
        "optim.temperature": "paper, Sec. IV-A",
        "optim.momentum": "paper, Sec. IV-A",
        "optim.memory_mode": _OUR_MEMORY,
        "intra.clustering.method": "paper, Sec. IV-A (agglomerative hierarchical clustering)",
        "clustering.images_per_cluster": "paper, Sec. IV-A (num_images / 5 clusters per camera)",
        "intra.clustering.k1": "authors' code, intra_camera_training.py --k1 (paper names no distance)",
        "intra.clustering.k2": "authors' code, intra_camera_training.py --k2 (paper names no distance)",
        "inter.clustering.method": "paper, Sec. IV-A (Infomap)",
        "clustering.k": "paper, Eq. 4 (top_15)",
        "clustering.k_includes_self": "paper, Eq. 4 (the 15 closest neighbours of i)",
        "clustering.min_sim": "authors' code, --eps passed as min_sim (paper silent)",
        "clustering.min_size": (
            "our choice: drop singletons only (paper silent; the authors' code drops clusters of <= 4)"
        ),
        "clustering.eps": "our choice: used only with clustering.method='dbscan' (paper silent)",
        "clustering.min_samples": "our choice: used only with clustering.method='dbscan' (paper silent)",
        "inter.clustering.k1": "authors' code, --D_k1 (used only with clustering.method='dbscan')",
        "inter.clustering.k2": "authors' code, --D_k2 (used only with clustering.method='dbscan')",
        "refinement.enabled": "paper, Sec. III-C",
        "refinement.rule": "our choice: the library's measured default (benchmarks/refine_quality.py); "
        "the paper's text is the 'algorithm1' rule",
        "refinement.max_deviation": "our choice: measured in benchmarks/refine_quality.py (paper silent)",
        "refinement.schedule": "paper, Table IV (cosine, the best row)",
        "refinement.p_start": "paper, Sec. III-C (Eq. 5 stated for p = 1)",
        "refinement.p_end": "our choice: decay towards 0 (paper silent)",
        "refinement.p_span": "authors' code, the commented-out cosine line (paper gives no period)",
        "refinement.p_power": "our choice: used only with refinement.schedule='polynomial' (paper gives no power)",
        "refinement.p_rate": "our choice: used only with refinement.schedule='exponential' (paper gives no rate)",
        "alignment.enabled": "paper, Sec. III-C",
        "alignment.beta": "paper, Table V (highest mAP)",
        "alignment.grl_lambda": f"authors' code, {_RVP} (paper gives no value)",
        "alignment.grl_schedule": "authors' code, constant lambda (paper silent)",
        "alignment.epochs": f"authors' code, calr/trainers.py, {_RVP}",
        "alignment.cam_hidden": (
            "our choice: a two-layer classifier (paper silent; the authors' three-layer one is not offered)"
        ),
        "alignment.cam_lr_mult": "authors' code, one learning rate for all parameters (paper silent)",
        "refinement.cacl": "paper, Eq. 6 (w_i follows [62])",
        "refinement.cacl_warmup": "our choice: 10 epochs (paper names no warm-up; the authors' code uses 5)",
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
        ``section.key`` (or top-level key) to value, applied to every stage that has the key.
    stage_overrides : mapping
        Per-stage keys, ``{"intra": {...}, "inter": {...}}``.
    paper_row : str or None
        The row, as the table names it (``"CALR"``, ``"CALR(IBN+GeMPool)"``).
    family : {"paper", "authors", "cpu"}
        A row of the paper, the authors' released configuration, or a CPU preset.
    sources : mapping
        Where the preset's own values come from (``"key"`` or ``"stage.key"`` to a text that
        starts with ``paper``, ``authors' code`` or ``our choice``); the keys it does not set
        keep the source of the stage default (``DEFAULT_SOURCES``).
    """

    name: str
    description: str
    paper_table: str | None
    paper_map: float | None
    paper_rank1: float | None
    overrides: Mapping[str, Any]
    stage_overrides: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    paper_row: str | None = None
    family: str = "cpu"
    sources: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def values(self, stage: str) -> dict[str, Any]:
        """The keys this preset sets for ``stage``, filtered to that stage's keys."""
        known = set(config_keys(config_class(stage)))
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
        column = _PAPER_COLUMNS[self.overrides["data.dataset"]]
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


def _dataset_values(dataset: str, family: str) -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
    """(overrides, sources, stage-2 overrides) that every preset of a real dataset shares."""
    overrides: dict[str, Any] = {"data.dataset": dataset}
    sources: dict[str, str] = {}
    inter: dict[str, Any] = {}
    if dataset == "veri":
        overrides.update({"data.height": 224, "data.width": 224})
        size = "paper, Sec. IV-A" if family == "paper" else "authors' code, README"
        sources.update({key: f"{size} (224 x 224 for VeRi-776)" for key in ("data.height", "data.width")})
    if dataset != "market1501":
        inter["optim.iters_per_epoch"] = 400
        sources["inter.optim.iters_per_epoch"] = (
            "authors' code, README: --iters 400 for datasets other than Market-1501"
        )
    return overrides, sources, inter


def _paper_preset(dataset: str, ibn_gem: bool) -> Preset:
    table, calr_row, ibn_row = _PAPER_ROWS[dataset]
    row, mAP, rank1 = ibn_row if ibn_gem else calr_row
    overrides, sources, inter = _dataset_values(dataset, "paper")
    inter.update({"alignment.epochs": None, "refinement.cacl_warmup": 5, "refinement.rule": "algorithm1"})
    sources.update(
        {
            "alignment.epochs": "paper, Sec. III-D (Eq. 9, no epoch limit)",
            "refinement.cacl_warmup": "authors' code, `if epoch < 5` (paper names no warm-up)",
            "inter.refinement.rule": "paper, Sec. III-C and Algorithm 1 (Eq. 5 once per pivot), one reading: "
            "every pivot of a (cluster, camera) group must vouch (docs: reference-vs-paper)",
        }
    )
    if ibn_gem:
        overrides.update({"model.ibn": True, "model.pooling": "gem"})
        sources.update(
            {
                "model.ibn": f"paper, {table} row {row} (IBN-ResNet50)",
                "model.pooling": f"paper, {table} row {row} (GeM pooling)",
            }
        )
        model = "IBN-ResNet-50, GeM pooling"
    else:
        model = "ResNet-50, global average pooling"
    return Preset(
        f"{dataset}-ibn-gem" if ibn_gem else dataset,
        f"{_DATASET_NAMES[dataset]}, the paper's {row} row ({table}): {model}, tau and m of Sec. IV-A",
        table,
        mAP,
        rank1,
        types.MappingProxyType(overrides),
        types.MappingProxyType({"inter": inter}),
        paper_row=row,
        family="paper",
        sources=types.MappingProxyType(sources),
    )


def _authors_preset(dataset: str) -> Preset:
    overrides, sources, inter = _dataset_values(dataset, "authors")
    overrides.update(
        {
            "model.backbone": "resnet50",
            "model.ibn": False,
            "model.pooling": "gem",
            "optim.temperature": 0.05,
            "optim.momentum": 0.1,
        }
    )
    inter.update(
        {
            "refinement.rule": "reference",
            "refinement.schedule": "constant",
            "refinement.p_start": 1.0,
            "clustering.k_includes_self": True,
            "clustering.min_size": 4,
            "alignment.epochs": 3,
            "refinement.cacl_warmup": 5,
            "report_epoch": "best",
        }
    )
    authors = {
        "model.backbone": "authors' code, README: -a resnet50",
        "model.ibn": "authors' code, README: -a resnet50",
        "model.pooling": "authors' code, --pooling-type gem",
        "optim.temperature": "authors' code, --temp",
        "optim.momentum": "authors' code, --momentum",
        "intra.optim.epochs": "authors' code, intra_camera_training.py --epochs (README example: 20)",
        "refinement.rule": "authors' code, cluster_by_infomap(node_flag=1)",
        "refinement.schedule": "authors' code, decay = 1",
        "refinement.p_start": "authors' code, decay = 1",
        "clustering.k_includes_self": "authors' code, faiss kNN of 15 columns with the sample",
        "clustering.min_size": "authors' code, --k2 4 passed to cluster_by_infomap",
        "alignment.epochs": f"authors' code, calr/trainers.py `if epoch < 3`, {_RVP}",
        "refinement.cacl_warmup": "authors' code, `if epoch < 5`",
        "report_epoch": "authors' code, reports model_best.pth.tar (best test-set mAP)",
        "alignment.beta": f"authors' code, domain loss added with weight 1, {_RVP}",
    }
    # values the paper and the authors' code share: named after the code in this family
    for key in ("optim.optimizer", "optim.weight_decay", "inter.optim.epochs", "clustering.method"):
        authors.setdefault(key, "authors' code, the same as the paper")
    for key in ("clustering.images_per_cluster", "clustering.k", "refinement.enabled", "alignment.enabled"):
        authors.setdefault(key, "authors' code, the same as the paper")
    authors.setdefault("refinement.cacl", "authors' code, the same as the paper")
    authors.setdefault("data.height", "authors' code, README (256 x 128 for persons)")
    authors.setdefault("data.width", "authors' code, README (256 x 128 for persons)")
    authors.update(sources)
    return Preset(
        f"{dataset}-authors",
        f"{_DATASET_NAMES[dataset]}, the authors' released configuration (ResNet-50, GeM, their tau and momentum, "
        "p = 1, their pivots); no row of the paper states it",
        None,
        None,
        None,
        types.MappingProxyType(overrides),
        types.MappingProxyType({"intra": {"optim.epochs": 25}, "inter": inter}),
        family="authors",
        sources=types.MappingProxyType(authors),
    )


_CPU = "our choice: sized for a CPU run on generated data"


def _cpu_preset(
    name: str,
    description: str,
    overrides: dict[str, Any],
    stage_overrides: dict[str, Any],
    reasons: dict[str, str] | None = None,
) -> Preset:
    """A preset of generated data; its settings' source is ``_CPU`` unless ``reasons`` names another."""
    keys = {s.key for s in SETTINGS}
    sources = {key: _CPU for key in overrides if key in keys}
    for stage, values in stage_overrides.items():
        sources.update({f"{stage}.{key}": _CPU for key in values if key in keys})
    sources.update(reasons or {})
    return Preset(
        name,
        description,
        None,
        None,
        None,
        types.MappingProxyType(overrides),
        types.MappingProxyType(stage_overrides),
        sources=types.MappingProxyType(sources),
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
        "data.dataset": "synthreid",
        "model.backbone": "tiny-cnn",
        "data.height": 64,
        "data.width": 32,
        "augment.pad": 4,
        "runtime.device": "auto",
        "runtime.num_workers": 0,
        "runtime.num_threads": 1,
        "runtime.test_batch_size": 128,
        "eval_every": 1,
        "optim.lr": 1e-3,
        "optim.lr_step": 12,
        "optim.temperature": 0.05,
        "synthetic.reid_ids": 120,
        "synthetic.reid_camera_strength": 0.25,
    },
    {
        "intra": {
            "optim.epochs": 5,
            "optim.iters_per_epoch": 20,
            "optim.batch_size": 32,
            "optim.num_instances": 4,
            "clustering.images_per_cluster": 3,
        },
        "inter": {
            "optim.epochs": 16,
            "optim.iters_per_epoch": 30,
            "optim.batch_size": 64,
            "optim.num_instances": 4,
            "refinement.cacl_warmup": 2,
            "refinement.rule": "camera",
        },
    },
    {
        "inter.refinement.rule": "our choice: the rule of the measured ablation (benchmarks/ablation_synthreid.py); "
        "its stage 1 gives impure local clusters (precision about 0.7) of look-alikes",
    },
)
PRESETS["synthetic"] = _cpu_preset(
    "synthetic",
    "Camera-biased synthetic feature vectors with a small MLP: seconds per run, for tests and ablations",
    {
        "data.dataset": "synthetic",
        "model.backbone": "mlp",
        "optim.lr": 1e-3,
        "optim.lr_step": 100,
        "runtime.num_workers": 0,
        "runtime.num_threads": 1,
        "synthetic.camera_strength": 0.8,
        "synthetic.noise": 0.5,
        "runtime.test_batch_size": 1024,
        "augment.flip_p": 0.0,
        "augment.erasing_p": 0.0,
        "augment.pad": 0,
        "optim.momentum": 0.2,
        "optim.temperature": 0.05,
    },
    {
        "intra": {"optim.epochs": 3, "optim.iters_per_epoch": 10, "optim.batch_size": 32, "optim.num_instances": 4},
        "inter": {
            "optim.epochs": 6,
            "optim.iters_per_epoch": 20,
            "optim.batch_size": 64,
            "optim.num_instances": 4,
            "refinement.cacl_warmup": 2,
            "alignment.epochs": 1,
            "refinement.rule": "camera",
        },
    },
    {
        "inter.refinement.rule": "our choice: this preset's stage 1 gives 1 to 2 local clusters per person and "
        "camera with noisy features, where one pivot per group is the most precise and linking keeps look-alikes "
        "(docs/benchmarks.md, ablations)",
    },
)
del _dataset, _preset


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (see :data:`PRESETS`)."""
    return PRESETS[check_choice(name, "preset", tuple(PRESETS))]


# ----------------------------------------------------------------------------------------------
# YAML and --set


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file: keys and sections, optionally inside ``intra:``/``inter:``/``eval:``."""
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


def yaml_values(data: Mapping[str, Any], stage: str, source: str = "config file") -> dict[str, Any]:
    """The keys of a YAML mapping that apply to ``stage``, as ``section.key``.

    Sections are nested mappings (``optim: {lr: 1e-4}``) or dotted keys (``optim.lr: 1e-4``).
    Keys outside a stage section apply to every stage that has them (a key no stage has is an
    error, with the closest name); a section named after a stage applies to that stage only.
    """
    all_known = sorted({key for cls in _CLASSES.values() for key in config_keys(cls)})
    own = set(config_keys(config_class(stage)))
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in STAGES:
            if not isinstance(value, dict):
                raise ValueError(f"{source}: section {key!r} must be a mapping of keys, got {value!r}")
            if key == stage:
                for inner, inner_value in _flatten(value).items():
                    if inner not in own:
                        raise _unknown_key(inner, sorted(own), f"in section {key!r} of the {source}")
                    out[inner] = inner_value
            continue
        for inner, inner_value in _flatten({key: value}).items():
            if inner not in all_known:
                raise _unknown_key(inner, all_known, f"in the {source}")
            if inner in own:
                out[inner] = inner_value
    return out


def parse_set(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Parse ``--set section.key=value`` items into a dict of strings (parsed later by field type)."""
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
        A YAML file (see ``yaml_values``).
    overrides : mapping, optional
        Values from dedicated command-line flags (typed or text), ``section.key`` to value.
    sets : mapping, optional
        ``--set`` values (text, parsed by field type), ``section.key`` to text.
    base : mapping, optional
        Starting values, e.g. a saved ``config.yaml`` (eval reads the trained run's); keys the
        stage does not have are skipped.

    Returns
    -------
    IntraConfig, InterConfig or EvalConfig

    Raises
    ------
    ValueError, TypeError
        An unknown key (with the closest key, or the new name of a key of the flat config of
        earlier versions), a value of the wrong type or out of range.
    FileNotFoundError
        A missing YAML file.

    Examples
    --------
    >>> cfg = resolve_config("inter", preset="veri", sets={"alignment.beta": "0.5"})
    >>> cfg.data.height, cfg.data.width, cfg.alignment.beta, cfg.optim.epochs
    (224, 224, 0.5, 50)
    """
    cls = config_class(stage)
    own = set(config_keys(cls))
    values: dict[str, Any] = {}
    if base:
        flat = [key for key, value in base.items() if key in RENAMED and not isinstance(value, Mapping)]
        if flat:
            raise ValueError(
                f"base (a run's config.yaml) holds keys of the flat config of earlier versions: {flat[0]!r} is "
                f"now {RENAMED[flat[0]]!r}; write it with sections (RENAMED in labelrefine.recipes.calr.config maps "
                "every key)"
            )
        values.update({key: value for key, value in _flatten(base).items() if key in own})
    if preset is not None:
        values.update(get_preset(preset).values(stage))
    if yaml_file is not None:
        values.update(yaml_values(load_yaml(yaml_file), stage, f"config file {str(yaml_file)!r}"))
    for source in (overrides or {}, sets or {}):
        for key, value in _flatten(source).items():
            if key not in own:
                raise _unknown_key(key, sorted(own), f"for stage {stage!r}")
            values[key] = value
    return config_from_dict(cls, values, parse_strings=True)
