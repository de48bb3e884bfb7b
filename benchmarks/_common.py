"""Timing and memory helpers shared by the benchmarks (not part of the package)."""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np


def measure(fn: Callable[[], Any], repeats: int = 3) -> tuple[float, float, Any]:
    """Median wall seconds over ``repeats`` runs, and peak traced MiB of one extra run.

    Peak memory is tracemalloc's peak of allocations made during the call (numpy buffers are
    traced), so it counts what the call allocates beyond its inputs.
    """
    times = []
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return statistics.median(times), peak, result


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}"


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="small sizes only (about a minute)")
    p.add_argument("--repeats", type=int, default=3, help="timing repeats; the median is reported")
    return p


# ----------------------------------------------------------------------------------------------
# recipe ablations (ablation_synthetic.py, ablation_synthreid.py)

TABLE_III = {
    "baseline": {"refinement.enabled": "false", "alignment.enabled": "false"},
    "+ alignment": {"refinement.enabled": "false"},
    "+ refinement": {"alignment.enabled": "false"},
    "both (CALR)": {},
}
"""The paper's Table III components as ``--set`` switches of ``labelrefine-calr inter``."""

ABLATION_HEADERS = [
    "mAP (%)",
    "rank-1 (%)",
    "label precision (%)",
    "label recall (%)",
    "discarded (%)",
    "mAP ratio",
]


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (``ru_maxrss`` is in kilobytes on Linux)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def mean_std(values: list[float], scale: float = 100.0) -> str:
    """``mean ± std`` (sample standard deviation; 0 for a single value), scaled and to one decimal."""
    mean = statistics.fmean(values) * scale
    std = statistics.stdev(values) * scale if len(values) > 1 else 0.0
    return f"{mean:.1f} ± {std:.1f}"


def collect(results: dict[str, dict[str, list[float]]], name: str, last: dict[str, Any], **extra: float) -> None:
    """Append the quantities of a stage-2 run's last log record to ``results[name]``.

    Retrieval mAP and rank-1, pairwise precision and recall of the training labels after
    refinement (``quality.refined``) and the discarded fraction; ``extra`` adds columns such as
    seconds.
    """
    row = results.setdefault(name, {})
    values = {
        "mAP": last["mAP"],
        "rank1": last["rank1"],
        "precision": last["quality"]["refined"]["pairwise_precision"],
        "recall": last["quality"]["refined"]["pairwise_recall"],
        "discard": last["discard_ratio"],
        **extra,
    }
    for key, value in values.items():
        row.setdefault(key, []).append(float(value))


def ablation_cells(results: dict[str, dict[str, list[float]]], name: str, reference: str) -> list[str]:
    """The cells of :data:`ABLATION_HEADERS` for variant ``name``; mAP ratio against ``reference``."""
    r = results[name]
    ref = statistics.fmean(results[reference]["mAP"])
    return [
        mean_std(r["mAP"]),
        mean_std(r["rank1"]),
        mean_std(r["precision"]),
        mean_std(r["recall"]),
        mean_std(r["discard"]),
        f"{statistics.fmean(r['mAP']) / ref:.2f}",
    ]


def progress(message: str) -> None:
    """One line of progress on stderr, shown at once (the tables go to stdout at the end)."""
    print(message, file=sys.stderr, flush=True)
