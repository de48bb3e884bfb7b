"""Reference CALR trainer: stage 1 (intra-camera), stage 2 (inter-camera with label refinement), eval, plots.

One command per stage; every component of the paper can be switched off for ablations, and the
same code runs a CPU demo on generated data. The trainer composes :mod:`labelrefine` (kNN graph,
Infomap / DBSCAN, per-camera clustering, ``refine``, camera-entropy weights, decay schedules,
cluster and retrieval metrics) with :mod:`labelrefine.nn` and :mod:`labelrefine.data`.

Commands
--------
``labelrefine-calr`` (or ``python -m labelrefine.recipes.calr``)::

    labelrefine-calr intra   --preset NAME --data-root DIR --run-dir DIR [--config FILE.yaml] [--set key=value ...]
    labelrefine-calr inter   --preset NAME --data-root DIR --run-dir DIR --local-labels STAGE1/local_labels.npz
                             [--no-refine] [--no-align] [--no-cacl] [--clustering dbscan] [--schedule NAME]
    labelrefine-calr eval    --run-dir DIR [--checkpoint FILE] [--rerank] [--flip]
    labelrefine-calr plot    RUN_DIR [RUN_DIR ...] [-o FILE.png]
    labelrefine-calr import-local FILES_OR_DIR --preset NAME --data-root DIR -o local_labels.npz
    labelrefine-calr presets

Common options: ``--resume`` (continue a killed run from ``RUN_DIR/checkpoint.pt``),
``--device cpu|cuda``, ``--amp`` (CUDA mixed precision), ``--deterministic``, ``--seed N``,
``--no-progress``. Every config field can be set with ``--set key=value`` or in a YAML file
(top-level keys for every stage, ``intra:`` / ``inter:`` / ``eval:`` sections for one).

Real datasets
-------------
Put ImageNet weights on disk (nothing is downloaded), e.g. torchvision's ResNet-50 state dict
saved as ``resnet50.pth``. Market-1501 (CALR Table I: mAP 85.6, rank-1 93.9, as reported in the
paper; check the paper's tables)::

    labelrefine-calr intra --preset market1501 --data-root /data --run-dir runs/market1501/intra \\
        --set pretrained=resnet50.pth
    labelrefine-calr inter --preset market1501 --data-root /data --run-dir runs/market1501/inter \\
        --local-labels runs/market1501/intra/local_labels.npz --set pretrained=resnet50.pth
    labelrefine-calr eval --run-dir runs/market1501/inter
    labelrefine-calr plot runs/market1501/inter

The same with ``--preset dukemtmcreid`` (Table I: 75.8 / 86.6), ``--preset msmt17`` (Table I:
42.5 / 71.2) and ``--preset veri`` (Table II: 41.4 / 86.6, 224 x 224 inputs). On 4 GPUs::

    torchrun --nproc_per_node 4 -m labelrefine.recipes.calr inter --preset market1501 --data-root /data \\
        --run-dir runs/market1501/inter --local-labels runs/market1501/intra/local_labels.npz

``batch_size`` (256) is the *global* batch, split over the GPUs, and ``sync_bn`` (on) computes
BatchNorm statistics over it, so the training does not change with the number of GPUs.

Ablations (paper Table III) from the same code::

    labelrefine-calr inter ... --no-refine --no-align                      # baseline (Infomap)
    labelrefine-calr inter ... --no-refine --no-align --clustering dbscan  # Cluster-Contrast
    labelrefine-calr inter ... --no-refine                                 # + alignment
    labelrefine-calr inter ... --no-align                                  # + refinement
    labelrefine-calr inter ... --schedule linear                           # Table IV decays

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

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._optional import import_optional
from ._config import (
    PRESETS,
    EvalConfig,
    InterConfig,
    IntraConfig,
    Preset,
    config_from_dict,
    get_preset,
    parse_set,
    resolve_config,
)

if TYPE_CHECKING:
    from ._data import import_authors_local_labels, load_local_labels, save_local_labels
    from ._plot import plot_runs
    from ._runtime import RunInterrupted
    from ._train import RunResult, evaluate, spawn, train_inter, train_intra

__all__ = [
    "PRESETS",
    "EvalConfig",
    "InterConfig",
    "IntraConfig",
    "Preset",
    "RunInterrupted",
    "RunResult",
    "config_from_dict",
    "evaluate",
    "get_preset",
    "import_authors_local_labels",
    "load_local_labels",
    "main",
    "plot_runs",
    "resolve_config",
    "save_local_labels",
    "spawn",
    "train_inter",
    "train_intra",
]

_LAZY = {
    "train_intra": "._train",
    "train_inter": "._train",
    "evaluate": "._train",
    "spawn": "._train",
    "RunResult": "._train",
    "RunInterrupted": "._runtime",
    "plot_runs": "._plot",
    "import_authors_local_labels": "._data",
    "load_local_labels": "._data",
    "save_local_labels": "._data",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __package__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ----------------------------------------------------------------------------------------------
# command line


def _add_common(p: argparse.ArgumentParser, *, training: bool) -> None:
    p.add_argument("--preset", choices=sorted(PRESETS), help="dataset preset (see `labelrefine-calr presets`)")
    p.add_argument("--data-root", metavar="DIR", help="folder that holds the dataset folder")
    p.add_argument("--run-dir", metavar="DIR", help="output folder (default runs/<dataset>/<stage>)")
    p.add_argument("--config", metavar="FILE.yaml", help="YAML file of config keys")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], help="set any config key (repeatable)")
    p.add_argument("--device", metavar="cpu|cuda", help="device (default: cuda if available)")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    if training:
        p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its checkpoint")
        p.add_argument("--amp", action="store_true", help="mixed precision on CUDA")
        p.add_argument("--deterministic", action="store_true", help="deterministic algorithms (exact --resume)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labelrefine-calr",
        description="Reference CALR trainer (camera-aware label refinement, arXiv 2403.16450).",
        epilog="Example (CPU, a few minutes): labelrefine-calr intra --preset synthreid --data-root data && "
        "labelrefine-calr inter --preset synthreid --data-root data",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    intra = sub.add_parser("intra", help="stage 1: intra-camera training, writes local_labels.npz")
    _add_common(intra, training=True)
    inter = sub.add_parser("inter", help="stage 2: inter-camera training with label refinement")
    _add_common(inter, training=True)
    inter.add_argument(
        "--local-labels",
        metavar="PATH",
        help="stage-1 labels: local_labels.npz, a stage-1 run folder, the authors' .npy files, or 'per-camera'",
    )
    inter.add_argument("--no-refine", action="store_true", help="no label refinement (ablation)")
    inter.add_argument("--no-align", action="store_true", help="no camera-domain loss (ablation)")
    inter.add_argument("--no-cacl", action="store_true", help="no camera-entropy cluster weights (ablation)")
    inter.add_argument("--clustering", choices=("infomap", "dbscan"), help="global clustering")
    inter.add_argument(
        "--schedule",
        choices=("constant", "linear", "polynomial", "exponential", "cosine"),
        help="decay of the discard probability p (Table IV)",
    )
    ev = sub.add_parser("eval", help="evaluate a checkpoint (mAP, CMC)")
    _add_common(ev, training=False)
    ev.add_argument("--checkpoint", metavar="FILE", help="default RUN_DIR/checkpoint.pt")
    ev.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking")
    ev.add_argument("--flip", action="store_true", help="add the embedding of the mirrored image")
    plot = sub.add_parser("plot", help="draw the paper's Fig. 6 curves of stage-2 runs")
    plot.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    plot.add_argument("-o", "--output", metavar="FILE.png", help="default RUN_DIR/plots/fig6.png")
    imp = sub.add_parser("import-local", help="convert the authors' stage-1 .npy files to local_labels.npz")
    imp.add_argument("files", nargs="+", metavar="FILE_OR_DIR")
    imp.add_argument("--preset", choices=sorted(PRESETS))
    imp.add_argument("--data-root", metavar="DIR")
    imp.add_argument("--set", metavar="KEY=VALUE", action="append", default=[])
    imp.add_argument("-o", "--output", required=True, metavar="FILE.npz")
    sub.add_parser("presets", help="list the presets and the paper's numbers they target")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for flag, key in (
        ("data_root", "data_root"),
        ("run_dir", "run_dir"),
        ("device", "device"),
        ("seed", "seed"),
        ("local_labels", "local_labels"),
        ("clustering", "clustering"),
        ("schedule", "p_schedule"),
        ("checkpoint", "checkpoint"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            out[key] = value
    for flag, key, value in (
        ("amp", "amp", True),
        ("deterministic", "deterministic", True),
        ("no_progress", "progress", False),
        ("no_refine", "refine", False),
        ("no_align", "align", False),
        ("no_cacl", "cacl", False),
        ("rerank", "rerank", True),
        ("flip", "flip", True),
    ):
        if getattr(args, flag, False):
            out[key] = value
    return out


def _saved_config(run_dir: str | Path) -> dict[str, Any] | None:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        return None
    from .._optional import import_optional

    data = import_optional("yaml").safe_load(path.read_text(encoding="utf-8")) or {}
    data.pop("stage", None)
    return data


def _build(stage: str, args: argparse.Namespace) -> Any:
    overrides = _overrides(args)
    sets = parse_set(args.set)
    config = resolve_config(stage, preset=args.preset, yaml_file=args.config, overrides=overrides, sets=sets)
    base = None
    if stage == "eval":
        base = _saved_config(config.run_dir)
    elif getattr(args, "resume", False):
        base = _saved_config(config.run_dir)
    if base is None:
        return config
    return resolve_config(stage, preset=args.preset, yaml_file=args.config, overrides=overrides, sets=sets, base=base)


def _presets_text() -> str:
    lines = []
    for preset in PRESETS.values():
        target = (
            f"{preset.paper_table}: mAP {preset.paper_map}, rank-1 {preset.paper_rank1} (as reported in the paper)"
            if preset.paper_table
            else "no paper target (CPU preset)"
        )
        lines.append(f"{preset.name:<13} {preset.description}\n{'':<13} target: {target}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``labelrefine-calr``; returns the exit status (2 for bad input).

    Examples
    --------
    >>> main(["presets"])  # doctest: +ELLIPSIS
    market1501    Market-1501, ...
    0
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    try:
        if args.command == "presets":
            print(_presets_text())
            return 0
        if args.command == "plot":
            from ._plot import plot_runs

            print(f"wrote {plot_runs(args.run_dirs, args.output)}")
            return 0
        if args.command == "import-local":
            return _import_local(args)
        config = _build(args.command, args)
        _check_run_dir(config.run_dir)
        import_optional("torch")  # names the extra to install, before _train imports torch
        if args.command == "eval":
            from ._train import evaluate

            metrics = evaluate(config)
            if metrics is not None:
                print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()))
            return 0
        from ._runtime import RunInterrupted
        from ._train import train_inter, train_intra

        try:
            result = (train_intra if args.command == "intra" else train_inter)(config, resume=args.resume)
        except RunInterrupted as stop:
            print(str(stop), file=sys.stderr)
            return 0
        except KeyboardInterrupt:
            again = [a for a in argv if a != "--resume"] + ["--resume"]
            if "--run-dir" not in argv and not any(a.startswith("--run-dir=") for a in argv):
                again += ["--run-dir", str(config.run_dir)]
            print(f"\ninterrupted; continue the run with: {shlex.join(['labelrefine-calr', *again])}", file=sys.stderr)
            return 130
        print(f"finished; results in {result.run_dir}")
        return 0
    except (ValueError, TypeError, FileNotFoundError, FileExistsError, ModuleNotFoundError) as exc:
        print(f"labelrefine-calr: error: {exc}", file=sys.stderr)
        return 2


def _check_run_dir(run_dir: Any) -> None:
    """``--run-dir`` must be a folder or not exist yet (an existing file gave a bare ``[Errno 17]``)."""
    path = Path(run_dir)
    for parent in (path, *path.parents):
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"--run-dir {str(path)!r} must be a folder, but {str(parent)!r} is a file")
        if parent.exists():
            break


def _import_local(args: argparse.Namespace) -> int:
    from ._data import build_data, import_authors_local_labels, save_local_labels

    overrides = {"data_root": args.data_root} if args.data_root else {}
    config = resolve_config("intra", preset=args.preset, overrides=overrides, sets=parse_set(args.set))
    data = build_data(config, generate=False)
    files: Any = args.files[0] if len(args.files) == 1 else args.files
    labels = import_authors_local_labels(files, data.train_keys)
    out = save_local_labels(args.output, labels, data.train_keys, data.train_cams)
    print(f"wrote {out}: {int((labels >= 0).sum())} of {labels.size} training images labelled")
    return 0


if __name__ == "__main__":
    sys.exit(main())
