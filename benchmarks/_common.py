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


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def synthreid_runs(
    seeds: list[int], variants: dict[str, dict[str, str]], root: Any, sets: dict[str, str]
) -> tuple[dict[str, dict[str, list[float]]], dict[str, list[float]], dict[str, list[list[dict[str, Any]]]]]:
    """Both recipe stages on SynthReID images with the ``synthreid`` preset, for every seed and variant.

    For each seed (data seed = training seed) the dataset is generated and stage 1 runs once; then
    stage 2 runs for every variant (``{name: --set switches}``) with the same local labels. Returns
    the last-record quantities of :func:`collect` per variant (with wall and CPU seconds), the
    stage-1 times and label quality, and every stage-2 run's history per variant.
    """
    import logging

    from labelrefine.recipes.calr import resolve_config, train_inter, train_intra

    logging.getLogger("labelrefine.recipes.calr").disabled = True
    results: dict[str, dict[str, list[float]]] = {}
    histories: dict[str, list[list[dict[str, Any]]]] = {name: [] for name in variants}
    stage1: dict[str, list[float]] = {"wall": [], "cpu": [], "precision": [], "recall": []}
    for seed in seeds:
        common = {"runtime.progress": "false", "seed": str(seed), "synthetic.seed": str(seed), **sets}
        common["data.root"] = str(root / f"data-{seed}")
        intra_dir = root / f"intra-{seed}"
        config = resolve_config("intra", preset="synthreid", sets={**common, "runtime.run_dir": str(intra_dir)})
        progress(f"seed {seed}: stage 1 ...")
        result, wall, cpu = _timed(lambda c=config: train_intra(c))
        stage1["wall"].append(wall)
        stage1["cpu"].append(cpu)
        stage1["precision"].append(result.metrics["pairwise_precision"])
        stage1["recall"].append(result.metrics["pairwise_recall"])
        progress(f"seed {seed}: stage 1 {wall:.0f} s wall, {cpu:.0f} s CPU")
        for name, switches in variants.items():
            run_dir = root / "".join(c if c.isalnum() else "_" for c in f"{name}-{seed}")
            cfg = resolve_config(
                "inter",
                preset="synthreid",
                sets={**common, "runtime.run_dir": str(run_dir), "refinement.local_labels": str(intra_dir), **switches},
            )
            result, wall, cpu = _timed(lambda c=cfg: train_inter(c))
            histories[name].append(result.history)
            last = result.history[-1]
            collect(results, name, last, wall=wall, cpu=cpu)
            progress(
                f"seed {seed} {name}: mAP {100 * last['mAP']:.1f} rank-1 {100 * last['rank1']:.1f}, "
                f"{wall:.0f} s wall, {cpu:.0f} s CPU"
            )
    return results, stage1, histories


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
