"""The ``labelrefine-calr`` command: parser, presets tables and the commands that run each stage."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..._optional import import_optional
from ...cli import add_command, add_version
from .config import (
    GLOBAL_METHODS,
    PRESETS,
    EvalConfig,
    InterConfig,
    IntraConfig,
    get_preset,
    parse_set,
    preset_settings,
    resolve_config,
    schedule_choices,
    settings_markdown,
)


def _add_common(p: argparse.ArgumentParser, *, training: bool) -> None:
    p.add_argument("--preset", choices=sorted(PRESETS), help="dataset preset (see `labelrefine-calr presets`)")
    p.add_argument("--data-root", metavar="DIR", help="folder that holds the dataset folder")
    p.add_argument("--run-dir", metavar="DIR", help="output folder (default runs/<dataset>/<stage>)")
    p.add_argument("--config", metavar="FILE.yaml", help="YAML file of config keys")
    p.add_argument(
        "--set", metavar="SECTION.KEY=VALUE", action="append", default=[], help="set any config key (repeatable)"
    )
    p.add_argument("--device", metavar="cpu|cuda", help="device (default: cuda if available)")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    if training:
        p.add_argument(
            "--hook", metavar="MODULE:NAME", action="append", help="add a Hook subclass or instance (repeatable)"
        )
        p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its checkpoint")
        p.add_argument("--amp", action="store_true", help="mixed precision on CUDA")
        p.add_argument("--deterministic", action="store_true", help="deterministic algorithms (exact --resume)")


def build_parser() -> argparse.ArgumentParser:
    """The ``labelrefine-calr`` argument parser (every subcommand with its help and example)."""
    parser = argparse.ArgumentParser(
        prog="labelrefine-calr",
        description="Reference CALR trainer (camera-aware label refinement, arXiv 2403.16450).",
        epilog="Example (CPU, a few minutes): labelrefine-calr intra --preset synthreid --data-root data && "
        "labelrefine-calr inter --preset synthreid --data-root data",
    )
    add_version(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    intra = add_command(
        sub,
        "intra",
        "stage 1: intra-camera training, writes local_labels.npz",
        "labelrefine-calr intra --preset synthetic --run-dir runs/synthetic/intra",
    )
    _add_common(intra, training=True)
    inter = add_command(
        sub,
        "inter",
        "stage 2: inter-camera training with label refinement",
        "labelrefine-calr inter --preset synthetic --run-dir runs/synthetic/inter --local-labels runs/synthetic/intra",
    )
    _add_common(inter, training=True)
    inter.add_argument(
        "--local-labels",
        metavar="PATH",
        help="stage-1 labels: local_labels.npz, a stage-1 run folder, the authors' .npy files, or 'per-camera'",
    )
    inter.add_argument("--no-refine", action="store_true", help="no label refinement (ablation)")
    inter.add_argument("--no-align", action="store_true", help="no camera-domain loss (ablation)")
    inter.add_argument("--no-cacl", action="store_true", help="no camera-entropy cluster weights (ablation)")
    inter.add_argument("--clustering", choices=GLOBAL_METHODS, help="global clustering (clustering.method)")
    inter.add_argument(
        "--schedule",
        choices=schedule_choices(),
        help="decay of the discard probability p (Table IV; labelrefine.schedules.register_schedule adds one)",
    )
    ev = add_command(
        sub,
        "eval",
        "evaluate a checkpoint (mAP, CMC)",
        "labelrefine-calr eval --preset synthetic --run-dir runs/synthetic/inter --flip",
    )
    _add_common(ev, training=False)
    ev.add_argument("--checkpoint", metavar="FILE", help="default RUN_DIR/checkpoint.pt")
    ev.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking")
    ev.add_argument("--flip", action="store_true", help="add the embedding of the mirrored image")
    plot = add_command(
        sub,
        "plot",
        "draw the paper's Fig. 6 curves of stage-2 runs",
        "labelrefine-calr plot runs/synthetic/inter -o fig6.png",
    )
    plot.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    plot.add_argument("-o", "--output", metavar="FILE.png", help="default RUN_DIR/plots/fig6.png")
    imp = add_command(
        sub,
        "import-local",
        "convert the authors' stage-1 .npy files to local_labels.npz",
        "labelrefine-calr import-local released/market/ --preset market1501 --data-root data -o local_labels.npz",
    )
    imp.add_argument("files", nargs="+", metavar="FILE_OR_DIR")
    imp.add_argument("--preset", choices=sorted(PRESETS))
    imp.add_argument("--data-root", metavar="DIR")
    imp.add_argument("--set", metavar="KEY=VALUE", action="append", default=[])
    imp.add_argument("-o", "--output", required=True, metavar="FILE.npz")
    presets = add_command(
        sub,
        "presets",
        "the presets, the paper's rows they target and the source of every setting",
        "labelrefine-calr presets market1501",
    )
    presets.add_argument("name", nargs="?", choices=sorted(PRESETS), metavar="NAME", help="show one preset only")
    presets.add_argument("--markdown", action="store_true", help="the table of docs/presets.md")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for flag, key in (
        ("data_root", "data.root"),
        ("run_dir", "runtime.run_dir"),
        ("device", "runtime.device"),
        ("seed", "seed"),
        ("local_labels", "refinement.local_labels"),
        ("clustering", "clustering.method"),
        ("schedule", "refinement.schedule"),
        ("checkpoint", "checkpoint"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            out[key] = value
    if getattr(args, "hook", None):
        out["runtime.hooks"] = tuple(args.hook)
    for flag, key, value in (
        ("amp", "amp", True),
        ("deterministic", "deterministic", True),
        ("no_progress", "runtime.progress", False),
        ("no_refine", "refinement.enabled", False),
        ("no_align", "alignment.enabled", False),
        ("no_cacl", "refinement.cacl", False),
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
    from ..._optional import import_optional

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


def _presets_text(name: str | None = None) -> str:
    names = [get_preset(name).name] if name else list(PRESETS)
    lines = []
    for key in names:
        preset = PRESETS[key]
        lines.append(f"{preset.name:<21} {preset.description}\n{'':<21} target: {preset.target}")
    for key in names:
        lines.append(f"\n{key}: every setting and its source")
        for stage, setting, value, source in preset_settings(key):
            lines.append(f"  {stage:<5} {setting:<29} {value:<10} {source}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``labelrefine-calr``; returns the exit status (2 for bad input).

    Bad input (a config value, a missing file or folder, a missing extra) is reported in one
    line with exit status 2; any other error, such as one from a bug during training, keeps its
    traceback.

    Examples
    --------
    >>> main(["presets", "market1501"])  # doctest: +ELLIPSIS
    market1501            Market-1501, the paper's CALR row (Table I): ...
                          target: Table I, CALR, Market1501: mAP 82.8, rank-1 92.5
    ...
    0
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    from .runtime import INPUT_ERRORS, is_user_input, user_input

    try:
        if args.command in ("presets", "plot", "import-local"):
            with user_input():
                return _tool(args)
        with user_input():
            config = _build(args.command, args)
            _check_run_dir(config.runtime.run_dir, write=args.command != "eval")
            import_optional("torch")  # names the extra to install, before _train imports torch
        if args.command == "eval":
            return _evaluate(config)
        return _train(config, args.resume, argv)
    except INPUT_ERRORS as exc:
        if not is_user_input(exc):
            raise
        print(f"labelrefine-calr: error: {exc}", file=sys.stderr)
        return 2


def _check_run_dir(run_dir: Any, *, write: bool) -> None:
    """``--run-dir`` must be a folder or not exist yet (an existing file gave a bare ``[Errno 17]``).

    With ``write``, the folder is created and a file written and removed in it, so that a folder
    that cannot be written (permissions, a read-only file system) fails here in one line rather
    than with a traceback once training starts.
    """
    path = Path(run_dir)
    for parent in (path, *path.parents):
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"--run-dir {str(path)!r} must be a folder, but {str(parent)!r} is a file")
        if parent.exists():
            break
    if write:
        import tempfile

        try:
            path.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=path):
                pass
        except OSError as exc:
            raise ValueError(
                f"--run-dir {str(path)!r} cannot be written ({exc.strerror or exc}): pass a folder you can write to"
            ) from None


def _tool(args: argparse.Namespace) -> int:
    if args.command == "presets":
        print(settings_markdown() if args.markdown else _presets_text(args.name))
        return 0
    if args.command == "plot":
        from .plot import plot_runs

        print(f"wrote {plot_runs(args.run_dirs, args.output)}")
        return 0
    return _import_local(args)


def _evaluate(config: EvalConfig) -> int:
    from .stages import evaluate

    metrics = evaluate(config)
    if metrics is not None:
        print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()))
    return 0


def _train(config: IntraConfig | InterConfig, resume: bool, argv: list[str]) -> int:
    from .runtime import RunInterrupted
    from .stages import train_inter, train_intra

    try:
        # the config's class is its stage's (resolve_config builds config_class(stage))
        if isinstance(config, IntraConfig):
            result = train_intra(config, resume=resume)
        else:
            result = train_inter(config, resume=resume)
    except RunInterrupted as stop:
        print(str(stop), file=sys.stderr)
        return 0
    except KeyboardInterrupt:
        again = [a for a in argv if a != "--resume"] + ["--resume"]
        if "--run-dir" not in argv and not any(a.startswith("--run-dir=") for a in argv):
            again += ["--run-dir", str(config.runtime.run_dir)]
        print(f"\ninterrupted; continue the run with: {shlex.join(['labelrefine-calr', *again])}", file=sys.stderr)
        return 130
    print(f"finished; results in {result.run_dir}")
    return 0


def _import_local(args: argparse.Namespace) -> int:
    from .data import build_data, import_authors_local_labels, save_local_labels

    overrides = {"data.root": args.data_root} if args.data_root else {}
    config = resolve_config("intra", preset=args.preset, overrides=overrides, sets=parse_set(args.set))
    data = build_data(config, generate=False)
    files: Any = args.files[0] if len(args.files) == 1 else args.files
    labels = import_authors_local_labels(files, data.train_keys)
    out = save_local_labels(args.output, labels, data.train_keys, data.train_cams, fingerprint=data.fingerprint)
    print(f"wrote {out}: {int((labels >= 0).sum())} of {labels.size} training images labelled")
    return 0
