"""The schema of the CALR recipe's config: one frozen config per stage made of frozen sections.

A stage config (:class:`IntraConfig`, :class:`InterConfig`, :class:`EvalConfig`) holds a few
top-level fields (``seed``, ``deterministic``...) and sections: ``data``, ``augment``,
``model``, ``optim``, ``camera_clustering`` (stage 1), ``clustering`` (stage 2), ``refinement``,
``alignment``, ``runtime`` and ``synthetic`` (the generators of the ``synthetic`` and
``synthreid`` datasets). Each clustering section has one sub-section per method
(``clustering.dbscan.k1``). A key is written ``section.key`` (``--set optim.lr=1e-4``; in
YAML, a nested mapping).

Choice fields are typed: a fixed set of values is a ``Literal`` checked against its values;
a choice that can be extended (datasets, backbones, schedules) is a ``str`` checked against
its registry (:data:`labelrefine.data.DATASETS`,
:data:`labelrefine.recipes.calr.backbones.BACKBONES`, :data:`labelrefine.schedules.SCHEDULES`)
when the config is built, so a registered entry is a valid choice.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Literal

from ...._validation import check_choice, check_int, check_probability, check_real
from ....agreement import DEFAULT_MAX_DEVIATION
from ....data import DATASETS
from ....pivots import DEFAULT_RULE, pivot_rules
from ....schedules import SCHEDULES
from ..backbones import BACKBONES
from ._base import (
    _check_device,
    _convert,
    _flatten,
    _is_section,
    _non_negative,
    _positive,
    _Section,
    config_keys,
    config_to_dict,
)
from .clustering import GLOBAL_METHODS, CameraClusteringConfig, ClusteringConfig

__all__ = [
    "GLOBAL_METHODS",
    "STAGES",
    "AlignmentConfig",
    "AugmentConfig",
    "CameraClusteringConfig",
    "ClusteringConfig",
    "DataConfig",
    "EvalConfig",
    "InterConfig",
    "IntraConfig",
    "ModelConfig",
    "OptimConfig",
    "RefinementConfig",
    "RuntimeConfig",
    "SyntheticConfig",
    "backbone_choices",
    "config_class",
    "dataset_choices",
    "schedule_choices",
]

StageName = Literal["intra", "inter", "eval"]
STAGES: tuple[str, ...] = typing.get_args(StageName)


DatasetName = str
"""A name of :func:`dataset_choices`: the readers of :data:`labelrefine.data.DATASETS` and ``"synthetic"``."""
BackboneName = str
"""A name of :data:`labelrefine.recipes.calr.backbones.BACKBONES`."""
ScheduleName = str
"""A name of :data:`labelrefine.schedules.SCHEDULES`."""


# keys that may differ between a run and its --resume without changing the result
RUNTIME_KEYS: frozenset[str] = frozenset({"data.root", "stop_after_epoch"})
RUNTIME_SECTION = "runtime"


def dataset_choices() -> tuple[str, ...]:
    """``data.dataset`` names: the registered readers (:func:`labelrefine.data.register_dataset`) and ``"synthetic"``.

    ``"synthetic"`` is built by the recipe (camera-biased feature vectors, no files to read).
    """
    return (*DATASETS, "synthetic")


def backbone_choices() -> tuple[str, ...]:
    """``model.backbone`` names (:func:`labelrefine.recipes.calr.backbones.register_backbone` adds one)."""
    return tuple(BACKBONES)


def schedule_choices() -> tuple[str, ...]:
    """``refinement.schedule`` names (:func:`labelrefine.schedules.register_schedule` adds one)."""
    return tuple(SCHEDULES)


# ----------------------------------------------------------------------------------------------
# the sections


@dataclass(frozen=True)
class DataConfig(_Section):
    """What to train on.

    Parameters
    ----------
    dataset : str
        A name of :func:`dataset_choices`: ``"market1501"``, ``"dukemtmcreid"``, ``"msmt17"``,
        ``"veri"``, ``"synthreid"``, ``"folder"``, a reader added with
        :func:`labelrefine.data.register_dataset`, or ``"synthetic"``.
        ``"synthreid"`` is generated under ``root`` when missing; ``"synthetic"`` is
        camera-biased feature vectors from :func:`labelrefine.synthetic.make_camera_biased`
        (with ``model.backbone="mlp"``).
    root : str or None
        Folder holding the dataset folder (e.g. the parent of ``Market-1501-v15.09.15``).
    height, width : int
        Input size: 256 x 128 for persons, 224 x 224 for vehicles.
    """

    NAME: ClassVar[str] = "data"

    dataset: DatasetName = "market1501"
    root: str | None = None
    height: int = 256
    width: int = 128

    def _validate(self) -> None:
        check_choice(self.dataset, "data.dataset", dataset_choices())
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
    backbone : str
        A name of :data:`labelrefine.recipes.calr.backbones.BACKBONES`: ``"resnet18"``,
        ``"resnet34"``, ``"resnet50"``, ``"resnet101"``, ``"mlp"``, ``"tiny-cnn"``, or one added
        with :func:`~labelrefine.recipes.calr.backbones.register_backbone`.
        ``"mlp"``: a residual MLP over feature vectors whose untrained output is its input;
        ``"tiny-cnn"``: three conv blocks, for SynthReID on a CPU.
    pretrained : str or None
        Local weights file (nothing is downloaded). The paper's numbers need ImageNet weights.
    pooling, ibn : see :func:`labelrefine.nn.build_backbone`.
    mlp_hidden, cnn_width : int
        Hidden width of the ``"mlp"`` and base width of the ``"tiny-cnn"`` backbones.
    """

    NAME: ClassVar[str] = "model"

    backbone: BackboneName = "resnet50"
    pretrained: str | None = None
    pooling: Literal["avg", "gem"] = "avg"
    ibn: bool = False
    mlp_hidden: int = 256
    cnn_width: int = 16

    def _validate(self) -> None:
        check_choice(self.backbone, "model.backbone", backbone_choices())
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

    optimizer: Literal["adam", "sgd"] = "adam"
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
    memory_mode: Literal["mean", "sample", "hard"] = "mean"

    def _validate(self) -> None:
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


@dataclass(frozen=True)
class RefinementConfig(_Section):
    """Stage 2: camera-aware label refinement and camera-entropy cluster weights.

    Parameters
    ----------
    enabled : bool
        Refine the global labels with the local ones (``--no-refine`` turns it off).
    rule : str
        Refinement rule of :func:`labelrefine.refine`: one of :func:`labelrefine.pivots.pivot_rules`
        (the built-in :data:`labelrefine.pivots.PIVOT_RULES` and those registered with
        :func:`labelrefine.pivots.register_pivot_rule`),
        default the library's measured default (``labelrefine.pivots.DEFAULT_RULE``). The paper
        presets set ``"algorithm1"`` (the paper's text), the ``-authors`` presets ``"reference"``.
    max_deviation : float
        Threshold of the ``"cross-camera"`` rule, in robust standard deviations (see
        :func:`labelrefine.refine`).
    schedule, p_start, p_end, p_span, p_power, p_rate :
        Decay of the discard probability p, :func:`labelrefine.schedules.get_schedule` (a name
        of :data:`labelrefine.schedules.SCHEDULES`; a registered schedule gets ``start`` and ``end``)
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
    schedule: ScheduleName = "cosine"
    p_start: float = 1.0
    p_end: float = 0.0
    p_span: float = 3.0
    p_power: float = 2.0
    p_rate: float = 5.0
    cacl: bool = True
    cacl_warmup: int = 10
    local_labels: str | None = None

    def _validate(self) -> None:
        check_choice(self.rule, "refinement.rule", pivot_rules())
        check_choice(self.schedule, "refinement.schedule", schedule_choices())
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
    grl_schedule: Literal["constant", "dann"] = "constant"
    epochs: int | None = 3
    cam_hidden: int = 256
    cam_lr_mult: float = 1.0

    def _validate(self) -> None:
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


_C = typing.TypeVar("_C", bound="_Config")


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
            if _is_section(hints[f.name]):
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
            from .catalogue import PRESETS

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
            from .loading import _unknown_key

            raise _unknown_key(key, config_keys(type(self)), f"for stage {self.STAGE!r}", self.STAGE)
        value: Any = self
        for part in key.split("."):
            value = getattr(value, part)
        return value

    @property
    def run_dir(self) -> str:
        """``runtime.run_dir`` (never ``None`` once built)."""
        return str(self.runtime.run_dir)

    def replace(self: _C, **changes: Any) -> _C:
        """A validated copy with ``changes``: top-level keys, or sections as mappings of their keys.

        Values may be typed or text, parsed as on the command line. Example:
        ``config.replace(seed=2, optim={"lr": "1e-4"})``.
        """
        from .loading import config_from_dict

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
    camera_clustering : CameraClusteringConfig
        Per-camera clustering (the section was called ``clustering`` before; old keys name the new one).
    """

    STAGE: ClassVar[str] = "intra"

    optim: OptimConfig = field(
        default_factory=functools.partial(OptimConfig, epochs=20, batch_size=64, num_instances=4, iters_per_epoch=100)
    )
    camera_clustering: CameraClusteringConfig = field(default_factory=CameraClusteringConfig)


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
    report_epoch: Literal["last", "best"] = "last"
    clustering: ClusteringConfig = field(default_factory=ClusteringConfig)
    refinement: RefinementConfig = field(default_factory=RefinementConfig)
    alignment: AlignmentConfig = field(default_factory=AlignmentConfig)

    def _validate(self) -> None:
        super()._validate()
        check_int(self.eval_every, "eval_every", low=0)


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

StageConfig = IntraConfig | InterConfig | EvalConfig


@typing.overload
def config_class(stage: Literal["intra"]) -> type[IntraConfig]: ...
@typing.overload
def config_class(stage: Literal["inter"]) -> type[InterConfig]: ...
@typing.overload
def config_class(stage: Literal["eval"]) -> type[EvalConfig]: ...
@typing.overload
def config_class(stage: str) -> type[Any]: ...  # a plain str: the class is known when it runs
def config_class(stage: str) -> type[_Config]:
    """The config class of ``stage`` (``"intra"``, ``"inter"`` or ``"eval"``)."""
    return _CLASSES[check_choice(stage, "stage", STAGES)]
