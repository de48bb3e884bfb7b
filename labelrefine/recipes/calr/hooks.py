"""The trainer's hooks: the base class, the built-in hooks, and hooks named by import path.

A :class:`~labelrefine.recipes.calr.Trainer` calls its hooks at five points::

    before_train(trainer)                                 parts built, checkpoint restored
        before_epoch(trainer, epoch)                      before the epoch's features
        after_step(trainer, epoch, it, losses)            after each optimisation step
        after_epoch(trainer, epoch, record)               after the epoch is trained
    after_train(trainer, result)                          before fit() returns

At each point the hooks run in the order of their ``priority`` (lower first; equal priorities
keep the order of ``trainer.hooks``). What the recipe does after an epoch is itself a list of
built-in hooks, the trainer's :meth:`~labelrefine.recipes.calr.Trainer.build_hooks`:

=======================  ========  ===============================================================
hook                     priority  after_epoch
=======================  ========  ===============================================================
:class:`LRScheduleHook`  10        ``trainer.scheduler.step()``
:class:`EvaluationHook`  20        mAP / CMC when ``trainer.evaluate_due(epoch)``, into the record
:class:`LoggingHook`     30        ``seconds``; the record to ``log.jsonl``, a line to ``train.log``
:class:`BestEpochHook`   40        stage 2, ``report_epoch="best"``: ``best.pt``
a user's hook            50        (the default ``priority`` of :class:`Hook`)
:class:`CheckpointHook`  90        ``checkpoint.pt`` (last, so that it holds what the hooks changed)
=======================  ========  ===============================================================

Remove one from ``trainer.hooks`` (or override ``build_hooks``) to switch it off, or put your
own in its place.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import torch

    from .trainer import RunResult, Trainer

__all__ = [
    "BestEpochHook",
    "CheckpointHook",
    "EvaluationHook",
    "Hook",
    "LRScheduleHook",
    "LoggingHook",
    "load_hook",
    "sort_hooks",
]


class Hook:
    """Base of the trainer's hooks; override the methods you need (each does nothing here).

    A hook receives the trainer, so it can read its parts (``trainer.optimizer``,
    ``trainer.net``, ``trainer.config``...), change them (a learning rate) or call
    :meth:`Trainer.request_stop`. Hooks run on every process; write files on
    ``trainer.session.is_main`` only.

    Attributes
    ----------
    priority : int, default 50
        Hooks run in increasing priority at every hook point; the built-in ones use 10 to 40 and
        90 (see the module's table), so a user's hook sees the epoch's record evaluated and
        logged, and the checkpoint comes after it.
    """

    priority: ClassVar[int] = 50

    def before_train(self, trainer: Trainer) -> None:
        """Once, after the parts are built and a checkpoint is restored, before the first epoch."""

    def before_epoch(self, trainer: Trainer, epoch: int) -> None:
        """Before the epoch's features are extracted."""

    def after_step(self, trainer: Trainer, epoch: int, it: int, losses: Mapping[str, torch.Tensor]) -> None:
        """After optimisation step ``it`` of the epoch; ``losses`` are detached scalar tensors (``loss``: their sum)."""

    def after_epoch(self, trainer: Trainer, epoch: int, record: dict[str, Any]) -> None:
        """After the epoch is trained; ``record`` is its log record, which a hook may add keys to."""

    def after_train(self, trainer: Trainer, result: RunResult) -> None:
        """Once, with what :meth:`Trainer.fit` is about to return (not after a ``stop_after_epoch`` stop)."""


class LRScheduleHook(Hook):
    """Steps the learning-rate schedule (``trainer.scheduler``) once per epoch."""

    priority = 10

    def after_epoch(self, trainer: Trainer, epoch: int, record: dict[str, Any]) -> None:
        trainer.scheduler.step()


class EvaluationHook(Hook):
    """Retrieval metrics (``trainer.evaluate()``) when ``trainer.evaluate_due(epoch)``, into the record.

    The metrics are also kept as ``trainer.metrics`` (the result's ``metrics``).
    """

    priority = 20

    def after_epoch(self, trainer: Trainer, epoch: int, record: dict[str, Any]) -> None:
        if not trainer.evaluate_due(epoch):
            return
        metrics = trainer.evaluate()  # every rank extracts; rank 0 gets the metrics
        if metrics is not None:
            record.update(metrics)
            trainer.metrics = dict(metrics)


class LoggingHook(Hook):
    """The epoch's ``seconds``, its record appended to ``log.jsonl`` and its line in ``train.log`` (``log_epoch``)."""

    priority = 30

    def after_epoch(self, trainer: Trainer, epoch: int, record: dict[str, Any]) -> None:
        record["seconds"] = round(time.time() - trainer.epoch_started, 3)
        trainer.session.folder.append_log(record)
        trainer.log_epoch(epoch, record)


class BestEpochHook(Hook):
    """Saves the encoder of the epoch with the highest test-set mAP to ``best.pt`` (``report_epoch="best"``).

    The best mAP so far is read from the run's log when training starts, so that a resumed run
    keeps the best epoch of its first part.
    """

    priority = 40

    def __init__(self) -> None:
        self.best_map = -1.0

    def before_train(self, trainer: Trainer) -> None:
        self.best_map = max((r["mAP"] for r in trainer.history() if "mAP" in r), default=-1.0)

    def after_epoch(self, trainer: Trainer, epoch: int, record: dict[str, Any]) -> None:
        if "mAP" in record and record["mAP"] > self.best_map:
            import torch

            self.best_map = record["mAP"]
            state = {"encoder": trainer.net.encoder.state_dict(), "epoch": epoch}
            torch.save(state, trainer.session.run_dir / "best.pt")


class CheckpointHook(Hook):
    """Writes ``checkpoint.pt`` after every epoch (``trainer.save_checkpoint()``); ``--resume`` starts from it."""

    priority = 90

    def after_epoch(self, trainer: Trainer, epoch: int, record: dict[str, Any]) -> None:
        trainer.save_checkpoint()


def sort_hooks(hooks: Iterable[Hook]) -> list[Hook]:
    """``hooks`` in the order they run: by ``priority``, ties in the order given."""
    hooks = list(hooks)
    for hook in hooks:
        if not isinstance(hook, Hook):
            raise TypeError(f"hooks must be Hook instances, got {type(hook).__name__}: {hook!r}")
    return sorted(hooks, key=lambda hook: hook.priority)


def load_hook(path: str) -> Hook:
    """The hook named by an import path ``"package.module:Name"`` (``runtime.hooks``, ``--hook``).

    ``Name`` (dotted for a nested attribute) is a :class:`Hook` subclass, instantiated without
    arguments, or a :class:`Hook` instance, used as it is.

    Raises
    ------
    ValueError
        The path is malformed, its module cannot be imported, it has no such attribute, or the
        attribute is no hook; the message names the path.
    """
    module_name, sep, attribute = str(path).partition(":")
    if not sep or not module_name or not attribute or ":" in attribute:
        raise ValueError(f"runtime.hooks entries must be import paths 'package.module:Name', got {path!r}")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"runtime.hooks: cannot import module {module_name!r} of hook {path!r}: {exc}") from None
    for name in attribute.split("."):
        if not hasattr(target, name):
            raise ValueError(f"runtime.hooks: {path!r} names nothing: {module_name!r} has no attribute {attribute!r}")
        target = getattr(target, name)
    if isinstance(target, type) and issubclass(target, Hook):
        try:
            return target()
        except TypeError as exc:
            raise ValueError(
                f"runtime.hooks: the hook class {path!r} must be instantiable without arguments: {exc}"
            ) from None
    if isinstance(target, Hook):
        return target
    raise ValueError(
        f"runtime.hooks: {path!r} must name a Hook subclass or a Hook instance, got {type(target).__name__} {target!r}"
    )
