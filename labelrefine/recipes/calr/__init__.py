"""Reference CALR trainer: stage 1 (intra-camera), stage 2 (inter-camera with label refinement), eval, plots.

One command per stage; every component of the paper can be switched off for ablations, and the
same code runs a CPU demo on generated data. The trainer composes :mod:`labelrefine` (kNN graph,
Infomap / DBSCAN, per-camera clustering, ``refine``, camera-entropy weights, decay schedules,
cluster and retrieval metrics) with :mod:`labelrefine.nn` and :mod:`labelrefine.data`.

Commands
--------
``labelrefine-calr`` (or ``python -m labelrefine.recipes.calr``)::

    labelrefine-calr intra   --preset NAME --data-root DIR --run-dir DIR [--config FILE.yaml] [--set SECTION.KEY=V ...]
    labelrefine-calr inter   --preset NAME --data-root DIR --run-dir DIR --local-labels STAGE1/local_labels.npz
                             [--no-refine] [--no-align] [--no-cacl] [--clustering dbscan] [--schedule NAME]
    labelrefine-calr eval    --run-dir DIR [--checkpoint FILE] [--rerank] [--flip]
    labelrefine-calr plot    RUN_DIR [RUN_DIR ...] [-o FILE.png]
    labelrefine-calr import-local FILES_OR_DIR --preset NAME --data-root DIR -o local_labels.npz
    labelrefine-calr presets [NAME] [--markdown]

Common options: ``--resume`` (continue a killed run from ``RUN_DIR/checkpoint.pt``),
``--device cpu|cuda``, ``--amp`` (CUDA mixed precision), ``--deterministic``, ``--seed N``,
``--no-progress``. Every config key can be set with ``--set section.key=value`` or in a YAML file
(``--set optim.lr=1e-4``; in YAML nested sections ``optim: {lr: 1e-4}``, at the top level for
every stage, under ``intra:`` / ``inter:`` / ``eval:`` for one). The trainer is a class with
named steps and hooks (:class:`Trainer`, :class:`IntraTrainer`, :class:`InterTrainer`,
:class:`Hook`): see the docs page "Use the CALR pieces in your own trainer". ``--hook
package.module:Name`` (repeatable) adds a user's hook to the run.

Real datasets
-------------
Put ImageNet weights on disk (nothing is downloaded), e.g. torchvision's ResNet-50 state dict
saved as ``resnet50.pth``. Market-1501, the CALR row of Table I (ResNet-50, global average
pooling; mAP 82.8, rank-1 92.5)::

    labelrefine-calr intra --preset market1501 --data-root /data --run-dir runs/market1501/intra \\
        --set model.pretrained=resnet50.pth
    labelrefine-calr inter --preset market1501 --data-root /data --run-dir runs/market1501/inter \\
        --local-labels runs/market1501/intra/local_labels.npz --set model.pretrained=resnet50.pth
    labelrefine-calr eval --run-dir runs/market1501/inter
    labelrefine-calr plot runs/market1501/inter

The same with ``--preset dukemtmcreid``, ``--preset msmt17`` and ``--preset veri`` (224 x 224
inputs); ``--preset <dataset>-ibn-gem`` targets the CALR(IBN+GeMPool) row with IBN-ResNet-50
weights, and ``--preset <dataset>-authors`` runs the authors' released configuration.
``labelrefine-calr presets`` lists each target and the source of every setting. On 4 GPUs::

    torchrun --nproc_per_node 4 -m labelrefine.recipes.calr inter --preset market1501 --data-root /data \\
        --run-dir runs/market1501/inter --local-labels runs/market1501/intra/local_labels.npz

``optim.batch_size`` (256) is the *global* batch, split over the GPUs, and ``sync_bn`` (on) computes
BatchNorm statistics over it, so the training does not change with the number of GPUs.

Ablations (Tables III, IV and V use the ``-ibn-gem`` presets; docs/presets.md has every row
with the paper's numbers)::

    labelrefine-calr inter ... --no-refine --no-align                      # Table III baseline
    labelrefine-calr inter ... --no-refine                                 # Table III, CA only
    labelrefine-calr inter ... --no-align                                  # Table III, LR only
    labelrefine-calr inter ... --schedule linear                           # Table IV decays
    labelrefine-calr inter ... --set alignment.beta=0.6                    # Table V
    labelrefine-calr inter ... --no-refine --no-align --clustering dbscan  # Cluster-Contrast

Authors' stage-1 results (``(path, label, camera)`` arrays, one ``.npy`` per camera) are used
with ``--local-labels DIR_OF_NPY`` or converted with ``labelrefine-calr import-local``.

On a CPU
--------
SynthReID images with a tiny CNN, a few minutes::

    labelrefine-calr intra --preset synthreid --data-root data --run-dir runs/synthreid/intra
    labelrefine-calr inter --preset synthreid --data-root data --run-dir runs/synthreid/inter
    labelrefine-calr plot runs/synthreid/inter

The ``synthetic`` preset (camera-biased feature vectors and an MLP) runs in seconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import (
    PRESETS,
    AlignmentConfig,
    AugmentConfig,
    CameraClusteringConfig,
    ClusteringConfig,
    DataConfig,
    EvalConfig,
    InterConfig,
    IntraClusteringConfig,
    IntraConfig,
    ModelConfig,
    OptimConfig,
    Preset,
    RefinementConfig,
    RuntimeConfig,
    SyntheticConfig,
    config_from_dict,
    get_preset,
    preset_settings,
    resolve_config,
    settings_markdown,
)

if TYPE_CHECKING:
    from .cli import main
    from .data import import_authors_local_labels, load_local_labels, save_local_labels
    from .hooks import BestEpochHook, CheckpointHook, EvaluationHook, Hook, LoggingHook, LRScheduleHook
    from .plot import plot_runs
    from .runtime import RunInterrupted
    from .stages import InterTrainer, IntraTrainer, evaluate, spawn, train_inter, train_intra
    from .trainer import PseudoLabels, RunResult, Trainer

__all__ = [
    "PRESETS",
    "AlignmentConfig",
    "AugmentConfig",
    "BestEpochHook",
    "CameraClusteringConfig",
    "CheckpointHook",
    "ClusteringConfig",
    "DataConfig",
    "EvalConfig",
    "EvaluationHook",
    "Hook",
    "InterConfig",
    "InterTrainer",
    "IntraClusteringConfig",
    "IntraConfig",
    "IntraTrainer",
    "LRScheduleHook",
    "LoggingHook",
    "ModelConfig",
    "OptimConfig",
    "Preset",
    "PseudoLabels",
    "RefinementConfig",
    "RunInterrupted",
    "RunResult",
    "RuntimeConfig",
    "SyntheticConfig",
    "Trainer",
    "config_from_dict",
    "evaluate",
    "get_preset",
    "import_authors_local_labels",
    "load_local_labels",
    "main",
    "plot_runs",
    "preset_settings",
    "resolve_config",
    "save_local_labels",
    "settings_markdown",
    "spawn",
    "train_inter",
    "train_intra",
]

_LAZY = {
    "train_intra": ".stages",
    "train_inter": ".stages",
    "evaluate": ".stages",
    "spawn": ".stages",
    "RunResult": ".trainer",
    "Trainer": ".trainer",
    "Hook": ".hooks",
    "LRScheduleHook": ".hooks",
    "EvaluationHook": ".hooks",
    "LoggingHook": ".hooks",
    "BestEpochHook": ".hooks",
    "CheckpointHook": ".hooks",
    "PseudoLabels": ".trainer",
    "IntraTrainer": ".stages",
    "InterTrainer": ".stages",
    "RunInterrupted": ".runtime",
    "plot_runs": ".plot",
    "import_authors_local_labels": ".data",
    "load_local_labels": ".data",
    "save_local_labels": ".data",
    "main": ".cli",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __package__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
