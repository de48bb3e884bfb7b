"""Decay schedules for the discard probability p (paper Table IV).

Each schedule is a pure function ``f(epoch, total_epochs, *, start=1.0, end=0.0, ...) -> p``
with progress ``t = epoch / total_epochs`` (epochs counted from 0, so the first epoch gives
``start``), clipped to [0, 1] and returning a float in [0, 1]. :func:`get_schedule` builds one
from a name for configs and command lines.

The authors' released ``inter_camera_training.py`` has the cosine line
``0.5 * (1 + cos(pi * epoch / (3 * epochs)))`` commented out and runs with p = 1 at every epoch
(``constant``). That commented-out cosine is ``cosine(epoch, epochs, span=3.0)``: its half-period
spans three runs, so p only decays from 1 to about 0.76 by the last epoch.
The paper names the cosine decay best (Table IV) without giving its period.
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from ._validation import check_choice, check_int, check_probability, check_real

__all__ = [
    "SCHEDULES",
    "constant",
    "cosine",
    "exponential",
    "get_schedule",
    "linear",
    "polynomial",
    "register_schedule",
    "unregister_schedule",
]


def _positive(x: Any, name: str) -> float:
    return check_real(x, name, low=0.0, high=math.inf, open_low=True, open_high=True)


def _progress(epoch: int, total_epochs: int, span: float = 1.0) -> float:
    epoch = check_int(epoch, "epoch", low=0)
    total_epochs = check_int(total_epochs, "total_epochs", low=1)
    span = _positive(span, "span")
    return min(epoch / (span * total_epochs), 1.0)


def _between(start: float, end: float, fraction_left: float) -> float:
    """``end + (start - end) * fraction_left`` clipped to [0, 1] against rounding."""
    start, end = check_probability(start, "start"), check_probability(end, "end")
    return min(max(end + (start - end) * fraction_left, 0.0), 1.0)


def constant(epoch: int, total_epochs: int, *, start: float = 1.0, end: float = 0.0) -> float:
    """p = ``start`` at every epoch (``end`` is accepted for a uniform signature and ignored).

    Examples
    --------
    >>> constant(7, 50, start=0.8)
    0.8
    """
    _progress(epoch, total_epochs)
    return _between(start, end, 1.0)


def linear(epoch: int, total_epochs: int, *, start: float = 1.0, end: float = 0.0) -> float:
    """Straight line from ``start`` (t = 0) to ``end`` (t = 1).

    Examples
    --------
    >>> linear(25, 50)
    0.5
    """
    return _between(start, end, 1.0 - _progress(epoch, total_epochs))


def polynomial(epoch: int, total_epochs: int, *, start: float = 1.0, end: float = 0.0, power: float = 2.0) -> float:
    """``end + (start - end) * (1 - t) ** power``.

    Examples
    --------
    >>> polynomial(25, 50)
    0.25
    """
    power = _positive(power, "power")
    return _between(start, end, (1.0 - _progress(epoch, total_epochs)) ** power)


def exponential(epoch: int, total_epochs: int, *, start: float = 1.0, end: float = 0.0, rate: float = 5.0) -> float:
    """Exponential decay ``exp(-rate * t)`` rescaled to run exactly from ``start`` to ``end``.

    Examples
    --------
    >>> round(exponential(10, 50), 4)
    0.3636
    """
    rate = _positive(rate, "rate")
    t = _progress(epoch, total_epochs)
    floor = math.exp(-rate)
    return _between(start, end, (math.exp(-rate * t) - floor) / (1.0 - floor))


def cosine(epoch: int, total_epochs: int, *, start: float = 1.0, end: float = 0.0, span: float = 1.0) -> float:
    """Half cosine ``end + (start - end) * (1 + cos(pi * t)) / 2`` with ``t = epoch / (span * total_epochs)``.

    ``span=3.0`` reproduces the authors' code, ``0.5 * (1 + cos(pi * epoch / (3 * epochs)))``.

    Examples
    --------
    >>> cosine(25, 50)
    0.5
    >>> round(cosine(49, 50, span=3.0), 4)
    0.759
    """
    return _between(start, end, 0.5 * (1.0 + math.cos(math.pi * _progress(epoch, total_epochs, span))))


_SCHEDULES: dict[str, Callable[..., float]] = {}

SCHEDULES: Mapping[str, Callable[..., float]] = types.MappingProxyType(_SCHEDULES)
"""The schedule registry, name -> schedule (read-only; :func:`register_schedule` adds one).

:func:`get_schedule`, the recipe's ``refinement.schedule`` choices and its ``--schedule`` help
read it, so one function and one registration add a schedule everywhere.
"""


def register_schedule(name: str, schedule: Callable[..., float], *, replace: bool = False) -> None:
    """Add ``schedule`` under ``name``: a function ``f(epoch, total_epochs, *, start, end, ...) -> p``.

    Raises ``ValueError`` when ``name`` is taken (unless ``replace``), ``TypeError`` when
    ``schedule`` is not callable.

    Examples
    --------
    >>> def step(epoch, total_epochs, *, start=1.0, end=0.0):
    ...     return start if epoch < total_epochs // 2 else end
    >>> register_schedule("step", step)
    >>> get_schedule("step")(30, 50)
    0.0
    >>> unregister_schedule("step")
    """
    _register(_SCHEDULES, "schedule", name, schedule, replace)


def unregister_schedule(name: str) -> None:
    """Remove the schedule ``name`` (``ValueError`` for an unknown name)."""
    check_choice(name, "name", tuple(_SCHEDULES))
    del _SCHEDULES[name]


def _register(registry: dict[str, Any], what: str, name: str, entry: Any, replace: bool) -> None:
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string, got {name!r}")
    if not callable(entry):
        raise TypeError(f"{what} must be callable, got {entry!r}")
    if name in registry and not replace:
        raise ValueError(f"name {name!r} is already a registered {what}; pass replace=True to replace it")
    registry[name] = entry


for _schedule in (constant, linear, polynomial, exponential, cosine):
    register_schedule(_schedule.__name__, _schedule)
del _schedule


def get_schedule(name: str, **options: Any) -> Callable[[int, int], float]:
    """A schedule by name with its options bound, as ``f(epoch, total_epochs) -> p``.

    Parameters
    ----------
    name : str
        A name of :data:`SCHEDULES`: ``"constant"``, ``"linear"``, ``"polynomial"``,
        ``"exponential"``, ``"cosine"`` (paper Table IV; ``"constant"`` with ``start=1`` is its
        "none" row), or one added with :func:`register_schedule`.
    **options
        ``start``, ``end`` and the schedule's own option (``power``, ``rate``, ``span``).

    Examples
    --------
    >>> authors = get_schedule("cosine", span=3.0)
    >>> authors(0, 50)
    1.0
    """
    schedule = SCHEDULES[check_choice(name, "name", tuple(SCHEDULES))]
    bound = partial(schedule, **options)
    bound(0, 1)  # reject bad options now rather than at the first epoch
    return bound
