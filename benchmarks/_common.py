"""Timing and memory helpers shared by the benchmarks (not part of the package)."""

from __future__ import annotations

import argparse
import platform
import statistics
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
