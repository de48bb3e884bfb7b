"""The ``labelrefine`` command: ``demo``, ``refine`` and ``report``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._optional import import_optional
from ._progress import console_progress
from .io import load_array, save_array
from .pivots import DEFAULT_RULE, PIVOT_RULES

__all__ = ["add_command", "add_version", "build_parser", "format_table", "main"]

_REPORT_COLUMNS = (
    ("clusters", "n_clusters", "{:d}"),
    ("precision", "pairwise_precision", "{:.3f}"),
    ("recall", "pairwise_recall", "{:.3f}"),
    ("F", "pairwise_f", "{:.3f}"),
    ("BCubed F", "bcubed_f", "{:.3f}"),
    ("expansion", "expansion", "{:.2f}"),
    ("coverage", "coverage", "{:.3f}"),
)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table with aligned columns."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def _report_rows(named_labels: dict[str, np.ndarray], truth: np.ndarray, discarded: dict[str, int]) -> list[list[str]]:
    from .metrics import cluster_report

    rows = []
    for name, labels in named_labels.items():
        report = cluster_report(truth, labels)
        cells = [fmt.format(getattr(report, field)) for _, field, fmt in _REPORT_COLUMNS]
        rows.append([name, *cells, str(discarded.get(name, 0))])
    return rows


def _demo(args: argparse.Namespace) -> int:
    from .cluster import cluster_per_camera, infomap_cluster
    from .neighbors import knn
    from .refine import refine
    from .synthetic import make_camera_biased

    start = time.perf_counter()
    data = make_camera_biased(
        args.ids, args.cams, images_per_camera=tuple(args.images), camera_strength=args.camera_strength, rng=args.seed
    )
    progress = console_progress()  # tqdm bars on a terminal, else one line per step on stderr
    graph = knn(data.feats, args.k, progress=progress)  # one graph serves clustering and refinement
    global_labels = infomap_cluster(graph, min_sim=args.min_sim, rng=args.seed, progress=progress)
    local_labels = cluster_per_camera(data.feats, data.cams, progress=progress)
    result = refine(
        global_labels, local_labels, data.cams, data.feats, knn=graph, k=args.k, p=args.p, rule=args.rule, rng=args.seed
    )
    elapsed = time.perf_counter() - start

    print(
        f"Synthetic camera-biased set: {len(data)} images of {args.ids} identities in {args.cams} cameras "
        f"(camera strength {args.camera_strength}, seed {args.seed}).\n"
        f"Global labels: Infomap on the k={args.k} cosine kNN graph (min_sim={args.min_sim}); "
        f"local labels: per-camera Jaccard + average-linkage clustering;\n"
        f"refined: refine(p={args.p}, rule='{args.rule}') with {result.n_pivots} pivots. "
        "Pairwise precision/recall over clustered samples.\n"
    )
    named = {"global": global_labels, "local": local_labels, "refined": result.labels}
    rows = _report_rows(named, data.pids, {"refined": result.n_discarded})
    print(format_table(["labels", *(c for c, _, _ in _REPORT_COLUMNS), "discarded"], rows))
    print(f"\nRefinement discarded {result.discard_ratio:.1%} of the clustered samples; total time {elapsed:.1f} s.")
    if args.plot:
        _plot(named, rows, Path(args.plot))
        print(f"Plot saved to {args.plot}")
    return 0


def _plot(named: dict[str, np.ndarray], rows: list[list[str]], path: Path) -> None:
    """Grouped bars: one group per metric, one bar per labelling (the paper's Fig. 4 on synthetic data)."""
    matplotlib = import_optional("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = ["precision", "recall", "F", "BCubed F", "coverage"]
    columns = [c for c, _, _ in _REPORT_COLUMNS]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / len(named)
    for offset, row in enumerate(rows):
        values = [float(row[1 + columns.index(m)]) for m in metrics]
        ax.bar(np.arange(len(metrics)) + (offset - (len(named) - 1) / 2) * width, values, width, label=row[0])
    ax.set_xticks(np.arange(len(metrics)), metrics)
    ax.set_ylim(0, 1.2)  # headroom for the legend above the bars
    ax.set_ylabel("score")
    ax.set_title("Cluster quality of global, local and refined labels")
    ax.legend(loc="upper center", ncol=len(named), frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _refine(args: argparse.Namespace) -> int:
    from .refine import refine

    if args.feats is None and args.knn_indices is None:
        raise ValueError("refine needs --feats FILE or --knn-indices FILE with --knn-distances FILE")
    if (args.knn_indices is None) != (args.knn_distances is None):
        raise ValueError("--knn-indices and --knn-distances must be given together")
    global_labels = load_array(args.global_labels, "--global")
    local_labels = load_array(args.local_labels, "--local")
    cams = load_array(args.cams, "--cams")
    feats = load_array(args.feats, "--feats") if args.feats else None
    graph = None
    if args.knn_indices:
        graph = (load_array(args.knn_indices, "--knn-indices"), load_array(args.knn_distances, "--knn-distances"))
    result = refine(
        global_labels, local_labels, cams, feats, knn=graph, k=args.k, p=args.p, rule=args.rule, rng=args.seed
    )
    save_array(args.output, result.labels, "--output")
    print(f"{result!r}\nRefined labels written to {args.output}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from .metrics import cluster_report

    truth = load_array(args.true, "--true")
    pred = load_array(args.pred, "--pred")
    report = cluster_report(truth, pred, outliers=args.outliers)
    rows = [
        [field, f"{value:.4f}" if isinstance(value, float) else str(value)] for field, value in report._asdict().items()
    ]
    print(format_table(["metric", "value"], rows))
    return 0


def add_version(parser: argparse.ArgumentParser) -> None:
    """``--version``: the program name and the installed labelrefine version."""
    from . import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")


def add_command(commands: Any, name: str, summary: str, example: str, *, more: str = "") -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` starts with ``summary`` and ends with a runnable example (and ``more``)."""
    epilog = f"example:\n  {example}" + (f"\n\n{more}" if more else "")
    return commands.add_parser(
        name,
        help=summary,
        description=summary[:1].upper() + summary[1:] + ".",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``labelrefine`` argument parser (every subcommand with its help and example)."""
    parser = argparse.ArgumentParser(
        prog="labelrefine",
        description="Camera-aware pseudo-label refinement (CALR).",
        epilog=_FILES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_version(parser)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = add_command(
        commands,
        "demo",
        "refine labels on generated camera-biased data and print cluster quality",
        "labelrefine demo --ids 100 --plot demo.png",
    )
    demo.add_argument("--ids", type=int, default=200, help="identities (default 200)")
    demo.add_argument("--cams", type=int, default=6, help="cameras (default 6)")
    demo.add_argument(
        "--images",
        type=int,
        nargs=2,
        default=[4, 16],
        metavar=("LOW", "HIGH"),
        help="images of one identity in one camera, inclusive range (default 4 16)",
    )
    demo.add_argument(
        "--camera-strength",
        type=float,
        default=0.7,
        help="camera bias: norm of each camera's feature offset (default 0.7)",
    )
    demo.add_argument("--k", type=int, default=15, help="neighbours other than the image itself (default 15)")
    demo.add_argument("--min-sim", type=float, default=0.6, help="Infomap edge similarity threshold (default 0.6)")
    demo.add_argument("--p", type=float, default=1.0, help="discard probability (default 1.0)")
    demo.add_argument(
        "--rule", default=DEFAULT_RULE, help=f"refinement rule: {', '.join(PIVOT_RULES)} (default {DEFAULT_RULE})"
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--plot", metavar="FILE", help="also save the table as a bar chart (needs matplotlib)")
    demo.set_defaults(run=_demo)

    ref = add_command(
        commands,
        "refine",
        "refine global labels read from files",
        "labelrefine refine --global global.npy --local local.npy --cams cams.csv --feats feats.npy "
        "--output refined.npy",
        more=_FILES_HELP,
    )
    ref.add_argument("--global", dest="global_labels", required=True, metavar="FILE", help="global labels")
    ref.add_argument("--local", dest="local_labels", required=True, metavar="FILE", help="local labels")
    ref.add_argument("--cams", required=True, metavar="FILE", help="camera of each sample")
    ref.add_argument("--feats", metavar="FILE", help="features (N, D)")
    ref.add_argument("--knn-indices", metavar="FILE", help="precomputed kNN indices (N, m), self in column 0 or not")
    ref.add_argument("--knn-distances", metavar="FILE", help="precomputed kNN cosine distances 1 - cos (N, m)")
    ref.add_argument("--k", type=int, default=15, help="neighbours other than the image itself (default 15)")
    ref.add_argument("--p", type=float, default=1.0, help="discard probability (default 1.0)")
    ref.add_argument(
        "--rule", default=DEFAULT_RULE, help=f"refinement rule: {', '.join(PIVOT_RULES)} (default {DEFAULT_RULE})"
    )
    ref.add_argument("--seed", type=int, default=None, help="random seed for p < 1")
    ref.add_argument("--output", "-o", required=True, metavar="FILE", help="where to write the refined labels")
    ref.set_defaults(run=_refine)

    rep = add_command(
        commands,
        "report",
        "cluster quality of predicted labels against true identities",
        "labelrefine report --true pids.npy --pred refined.npy --outliers drop",
        more=_FILES_HELP,
    )
    rep.add_argument("--true", required=True, metavar="FILE", help="true identities")
    rep.add_argument("--pred", required=True, metavar="FILE", help="predicted cluster labels (-1 = outlier)")
    rep.add_argument("--outliers", default="drop", help="how -1 is scored: drop, singleton or cluster")
    rep.set_defaults(run=_report)
    return parser


_FILES_HELP = """\
FILE arguments: .npy; .npz (its only array, or FILE.npz:KEY, e.g. local_labels.npz:labels);
.pt (a tensor or a dict of tensors, FILE.pt:KEY; needs torch); .csv / .txt with one value per
line or one row per sample (values separated by commas, semicolons or whitespace), optionally
below a header line. Pickled objects are never loaded. Outputs: .npy, .csv or .txt."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``labelrefine`` command; returns the exit status.

    0 on success; 2 for a usage or input error (one line on stderr naming the argument); 141
    when the reader of the output went away (``labelrefine report ... | head``).
    """
    args = build_parser().parse_args(argv)
    try:
        status = args.run(args)
        sys.stdout.flush()  # a closed pipe shows up here, inside the handler below
        return status
    except BrokenPipeError:
        # the reader (head, less) exited: silence the final flush at interpreter exit, like cat does
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a process killed by a closed pipe
    except (ValueError, TypeError, OSError, ModuleNotFoundError) as exc:
        print(f"labelrefine {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
