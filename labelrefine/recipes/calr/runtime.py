"""Run-time plumbing of the recipe, the process side: devices, process group, determinism, logging, RNG state.

:class:`Session` is one stage run in one process; the files of the run (config, log, checkpoints)
are its :class:`~labelrefine.recipes.calr.run_folder.RunFolder` (``session.folder``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..._optional import import_optional
from .config import _Config, _TrainConfig
from .run_folder import RunFolder, read_log, rng_state

LOGGER_NAME = "labelrefine.recipes.calr"
logger = logging.getLogger(LOGGER_NAME)

__all__ = [
    "INPUT_ERRORS",
    "LOGGER_NAME",
    "RunFolder",
    "RunInterrupted",
    "Session",
    "derive_seed",
    "is_user_input",
    "load_torch_file",
    "read_log",
    "rng_state",
    "set_rng_state",
    "user_input",
]

# the exception types of bad input (config values, files, folders, a missing extra)
INPUT_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    TypeError,
    FileNotFoundError,
    FileExistsError,
    ModuleNotFoundError,
)


@contextlib.contextmanager
def user_input() -> Iterator[None]:
    """Mark an :data:`INPUT_ERRORS` exception raised inside as caused by the user's input.

    The command line reports a marked error in one line (exit status 2); any other exception,
    such as a ``ValueError`` from a bug deep in training, keeps its traceback.
    """
    try:
        yield
    except INPUT_ERRORS as exc:
        # a mark on this instance (exception types declare no such attribute), read by is_user_input
        exc.user_input = True  # type: ignore[attr-defined]
        raise


def is_user_input(exc: BaseException) -> bool:
    """Whether ``exc`` was raised inside :func:`user_input`."""
    return bool(getattr(exc, "user_input", False))


class RunInterrupted(RuntimeError):
    """Raised when ``stop_after_epoch`` stops a run (a simulated kill); continue it with ``resume=True``."""

    def __init__(self, run_dir: str, epoch: int) -> None:
        super().__init__(
            f"run stopped after epoch {epoch} (stop_after_epoch); continue it with --resume --run-dir {run_dir}"
        )
        self.run_dir = run_dir
        self.epoch = epoch


def load_torch_file(path: str | Path, what: str, *, weights_only: bool) -> Any:
    """``torch.load`` on the CPU with one clear error for a truncated or foreign file (never a pickle traceback)."""
    torch = import_optional("torch")
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as exc:  # zipfile, pickle, EOF and runtime errors all mean "not a readable torch file"
        raise ValueError(
            f"{what} {str(path)!r} cannot be read (truncated, or not written by torch.save): "
            f"{type(exc).__name__}: {exc}"
        ) from None


def derive_seed(*parts: int) -> int:
    """A 31-bit seed from integers (seed, stage, camera, epoch...), stable across runs and processes."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint32)[0] >> 1)


@dataclass
class Session:
    """One stage run in one process: devices, process group, determinism, logging; its run folder.

    Use as a context manager; it undoes what it changed in the process (log handlers, the
    deterministic-algorithms flag, a process group it created) on exit. The files of the run
    are written through ``folder`` (a :class:`RunFolder` made on entry, rank 0 writes).
    """

    config: _Config
    resume: bool = False
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: Any = None
    run_dir: Path = field(default_factory=Path)
    amp: bool = False
    folder: RunFolder = field(init=False)
    _handlers: list[logging.Handler] = field(default_factory=list)
    _owns_group: bool = False
    _old_deterministic: bool = False
    _old_benchmark: bool = False
    _old_cudnn_deterministic: bool = False
    _old_level: int = logging.NOTSET
    _old_threads: int = 0

    # ------------------------------------------------------------------ setup
    def __enter__(self) -> Session:
        torch = import_optional("torch")
        dist = torch.distributed
        self._setup_process_group(torch, dist)
        self._setup_device(torch)
        if self.config.run_dir is None:
            raise ValueError("run_dir must be set (resolve_config chooses runs/<dataset>/<stage> by default)")
        self.run_dir = Path(self.config.run_dir)
        self.folder = RunFolder(self.run_dir, self.config, self.resume, self.is_main, self.barrier)
        self._old_threads = torch.get_num_threads()
        if self.config.runtime.num_threads is not None:
            torch.set_num_threads(self.config.runtime.num_threads)
        self._old_deterministic = torch.are_deterministic_algorithms_enabled()
        self._old_benchmark = torch.backends.cudnn.benchmark
        self._old_cudnn_deterministic = torch.backends.cudnn.deterministic
        train = self.train_config
        if train is not None and train.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.amp = bool(train is not None and train.amp and self.device.type == "cuda")
        self._setup_logging()
        if train is not None and train.amp and not self.amp:
            logger.warning("amp=True needs a CUDA device; training in float32 on %s", self.device)
        return self

    def _setup_process_group(self, torch: Any, dist: Any) -> None:
        if dist.is_available() and dist.is_initialized():
            self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
            self.local_rank = int(os.environ.get("LOCAL_RANK", self.rank))
            return
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world > 1:  # launched by torchrun: initialise from the environment
            self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
            use_cuda = self.config.runtime.device != "cpu" and torch.cuda.is_available()
            if use_cuda:
                torch.cuda.set_device(self.local_rank)
            dist.init_process_group(backend="nccl" if use_cuda else "gloo")
            self._owns_group = True
            self.rank, self.world_size = dist.get_rank(), dist.get_world_size()

    def _setup_device(self, torch: Any) -> None:
        requested = self.config.runtime.device.strip().lower()
        if requested == "auto":
            requested = "cuda" if torch.cuda.is_available() else "cpu"
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(
                f"runtime.device must be available: device={self.config.runtime.device!r} but torch sees no CUDA device"
            )
        if requested == "cuda" and self.world_size > 1:
            requested = f"cuda:{self.local_rank}"
        self.device = torch.device(requested)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        train = self.train_config
        optim = train.optim if train is not None else None
        if optim is not None and optim.identities_per_step % self.world_size:
            raise ValueError(
                f"optim.batch_size / optim.num_instances = {optim.identities_per_step} identities per step must "
                f"split evenly over the {self.world_size} processes (batch_size is the global batch); got "
                f"batch_size={optim.batch_size}, num_instances={optim.num_instances}"
            )

    def _setup_logging(self) -> None:
        self._old_level = logger.level
        logger.setLevel(logging.INFO)
        if not self.is_main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
        file_handler = logging.FileHandler(self.run_dir / "train.log", encoding="utf-8")
        file_handler.setFormatter(formatter)
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(formatter)
        for handler in (file_handler, console):
            logger.addHandler(handler)
            self._handlers.append(handler)

    def __exit__(self, *exc: Any) -> None:
        torch = import_optional("torch")
        torch.use_deterministic_algorithms(self._old_deterministic)
        torch.set_num_threads(self._old_threads)
        torch.backends.cudnn.benchmark = self._old_benchmark
        torch.backends.cudnn.deterministic = self._old_cudnn_deterministic
        for handler in self._handlers:
            logger.removeHandler(handler)
            handler.close()
        self._handlers.clear()
        logger.setLevel(self._old_level)
        if self._owns_group:
            torch.distributed.destroy_process_group()

    # ------------------------------------------------------------------ helpers
    @property
    def train_config(self) -> _TrainConfig | None:
        """The config if it is a training stage's; ``None`` for evaluation (no seed, optimiser or batch)."""
        return self.config if isinstance(self.config, _TrainConfig) else None

    @property
    def training(self) -> bool:
        """Whether the config is a training stage's (evaluation has no seed, optimiser or batch)."""
        return self.train_config is not None

    def _require_training(self, what: str) -> _TrainConfig:
        train = self.train_config
        if train is None:
            raise TypeError(f"{what} needs a training stage's config, not a {self.config.STAGE!r} config")
        return train

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def progress(self) -> bool:
        """Whether to draw progress bars: rank 0, ``progress`` on and stderr a terminal."""
        return bool(self.is_main and self.config.runtime.progress and sys.stderr.isatty())

    def barrier(self) -> None:
        if self.distributed:
            import_optional("torch").distributed.barrier()

    def seed_everything(self) -> None:
        """Seed Python's and torch's global generators (augmentation, initialisation) from ``seed``."""
        torch = import_optional("torch")
        seed = self._require_training("seed_everything").seed
        random.seed(seed)
        torch.manual_seed(seed)

    def environment(self) -> dict[str, Any]:
        """The processes of the run, for ``env.json``: world size, device, AMP, threads."""
        torch = import_optional("torch")
        train = self.train_config
        return {
            "world_size": self.world_size,
            "device": str(self.device),
            "device_name": (
                torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else platform.processor()
            ),
            "cuda": torch.version.cuda,
            "amp": self.amp,
            "sync_bn": bool(train is not None and train.sync_bn and self.distributed),
            "torch_threads": torch.get_num_threads(),
        }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states saved by :func:`rng_state`."""
    torch = import_optional("torch")
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
