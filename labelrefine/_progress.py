"""The library's one progress mechanism: a ``progress=`` callback that long steps call.

A progress callback is any callable ``progress(step, done, total)``: ``step`` names the step
("knn search", "jaccard", "infomap", ...), ``done`` and ``total`` count its units of work
(rows, blocks, cameras). A step calls it once with ``done=0`` when it starts, after each unit
of work, and last with ``done == total``. The core never prints: it only calls the callback a
caller passes. :func:`console_progress` is a ready callback for command-line tools and the
recipe (tqdm bars where installed, one line per step otherwise).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ._optional import has_module

__all__ = ["Progress", "check_progress", "console_progress", "one_step", "ranges"]

Progress = Callable[[str, int, int], None]


def check_progress(progress: Any, name: str = "progress") -> Progress | None:
    """None or a callable ``progress(step, done, total)``."""
    if progress is not None and not callable(progress):
        raise TypeError(f"{name} must be None or a callable progress(step, done, total), got {progress!r}")
    return progress


def console_progress(*, bars: bool | None = None, write: Callable[[str], None] | None = None) -> Progress:
    """A progress callback that shows each step: a tqdm bar, or one line when the step ends.

    Parameters
    ----------
    bars : bool, optional
        Draw tqdm bars on stderr. Default: when tqdm is installed and stderr is a terminal.
    write : callable, optional
        Where the one-line-per-step reports go when there are no bars (a logger's ``info``, for
        example). Default: a line on stderr.

    Returns
    -------
    callable
        ``progress(step, done, total)`` to pass as ``progress=`` to the library's functions.

    Examples
    --------
    >>> from labelrefine import console_progress, knn
    >>> import numpy as np
    >>> lines = []
    >>> graph = knn(np.eye(5, dtype=np.float32), 2, progress=console_progress(bars=False, write=lines.append))
    >>> lines[0].startswith("knn search: 5/5 in ")
    True
    """
    if bars is None:
        bars = has_module("tqdm") and sys.stderr.isatty()
    return _BarProgress() if bars else _LineProgress(write or _stderr_line)


def _stderr_line(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class _LineProgress:
    """One line per finished step: its name, the units done and the seconds it took."""

    def __init__(self, write: Callable[[str], None]):
        self.write = write
        self.started: dict[str, float] = {}

    def __call__(self, step: str, done: int, total: int) -> None:
        start = self.started.setdefault(step, time.perf_counter())
        if done >= total:
            del self.started[step]
            self.write(f"{step}: {done}/{total} in {time.perf_counter() - start:.1f} s")


class _BarProgress:
    """One tqdm bar per running step, closed when the step ends."""

    def __init__(self) -> None:
        self.bars: dict[str, Any] = {}

    def __call__(self, step: str, done: int, total: int) -> None:
        bar = self.bars.get(step)
        if bar is None:
            from tqdm import tqdm

            bar = self.bars[step] = tqdm(total=total, desc=step, leave=False, file=sys.stderr)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
            del self.bars[step]


def ranges(progress: Progress | None, step: str, total: int, size: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` blocks of ``range(total)``, reporting each finished block to ``progress``."""
    if progress is not None:
        progress(step, 0, total)
    for start in range(0, total, size):  # loop over blocks
        stop = min(start + size, total)
        yield start, stop
        if progress is not None:
            progress(step, stop, total)


@contextmanager
def one_step(progress: Progress | None, step: str) -> Iterator[None]:
    """Report a step that cannot be divided (a call into another library) as 0/1, then 1/1."""
    if progress is not None:
        progress(step, 0, 1)
    yield
    if progress is not None:
        progress(step, 1, 1)
