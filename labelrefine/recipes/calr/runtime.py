"""Run-time plumbing of the recipe: run folder, logging, checkpoints, RNG state, devices, processes.

Layout of a run folder (``RUN_DIR``)::

    config.yaml        the resolved config (stage included)
    env.json           library versions, world size, global and per-device batch, seed, device
    log.jsonl          one JSON object per epoch
    train.log          the logger's output
    checkpoint.pt      the latest checkpoint (written to a temporary file, then os.replace)
    local_labels.npz   stage 1 only: labels, keys (image paths or sample ids), cams
    plots/*.png        ``labelrefine-calr plot``
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..._optional import import_optional
from .config import RUNTIME_KEYS, RUNTIME_SECTION, _Config, _flatten, _TrainConfig, config_to_dict

LOGGER_NAME = "labelrefine.recipes.calr"
logger = logging.getLogger(LOGGER_NAME)

__all__ = [
    "INPUT_ERRORS",
    "LOGGER_NAME",
    "RunInterrupted",
    "Session",
    "derive_seed",
    "is_user_input",
    "load_torch_file",
    "read_log",
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


def _versions() -> dict[str, Any]:
    import importlib.metadata as md

    out: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform()}
    for dist_name in (
        "labelrefine",
        "numpy",
        "scipy",
        "scikit-learn",
        "torch",
        "torchvision",
        "faiss-cpu",
        "faiss-gpu",
        "infomap",
        "Pillow",
        "tqdm",
        "PyYAML",
    ):
        try:
            out[dist_name] = md.version(dist_name)
        except md.PackageNotFoundError:
            continue
    return out


def read_log(run_dir: str | Path) -> list[dict[str, Any]]:
    """The per-epoch records of ``RUN_DIR/log.jsonl`` (an empty list if there is none)."""
    path = Path(run_dir) / "log.jsonl"
    if not path.is_file():
        return []
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _atomic_write_bytes(path: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _atomic_write_text(path: Path, text: str) -> None:
    _atomic_write_bytes(path, lambda handle: handle.write(text.encode("utf-8")))


@dataclass
class Session:
    """One stage run in one process: devices, process group, logging, run folder, determinism.

    Use as a context manager; it undoes what it changed in the process (log handlers, the
    deterministic-algorithms flag, a process group it created) on exit.
    """

    config: _Config
    resume: bool = False
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: Any = None
    run_dir: Path = field(default_factory=Path)
    amp: bool = False
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

    # ------------------------------------------------------------------ run folder
    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoint.pt"

    def prepare_run_dir(self) -> dict[str, Any] | None:
        """Check the run folder against ``resume``, write config.yaml / env.json; return the checkpoint to resume."""
        checkpoint = None
        exists = self.checkpoint_path.is_file()
        if exists and not self.resume:
            raise FileExistsError(
                f"run_dir {str(self.run_dir)!r} already holds a run (checkpoint.pt); pass --resume to continue it "
                "or choose another --run-dir"
            )
        if self.resume and exists:
            self._check_resumable()
            checkpoint = load_torch_file(self.checkpoint_path, "checkpoint", weights_only=False)
            if not isinstance(checkpoint, dict):
                raise ValueError(f"checkpoint {str(self.checkpoint_path)!r} is not a labelrefine-calr checkpoint")
            if checkpoint.get("stage") != self.config.STAGE:
                raise ValueError(
                    f"run_dir {str(self.run_dir)!r} holds a {checkpoint.get('stage')!r} run, not a "
                    f"{self.config.STAGE!r} run"
                )
        elif self.resume:
            logger.warning("--resume: no checkpoint in %s, starting a new run", self.run_dir)
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if checkpoint is None:
                (self.run_dir / "log.jsonl").unlink(missing_ok=True)
            self.write_config()
            self.write_env(checkpoint)
        self.barrier()
        return checkpoint

    def _check_resumable(self) -> None:
        saved_path = self.run_dir / "config.yaml"
        if not saved_path.is_file():
            return
        yaml = import_optional("yaml")
        saved = _flatten(yaml.safe_load(saved_path.read_text(encoding="utf-8")) or {})
        saved.pop("stage", None)
        current = _flatten(config_to_dict(self.config))

        def kept(key: str) -> bool:
            return key not in RUNTIME_KEYS and not key.startswith(f"{RUNTIME_SECTION}.")

        changed = sorted(key for key in set(saved) | set(current) if kept(key) and saved.get(key) != current.get(key))
        if changed:
            details = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in changed[:6])
            raise ValueError(
                f"resume: the config differs from the run being resumed in {str(self.run_dir)!r} ({details}); "
                "resume with the same settings (only the runtime section, data.root and stop_after_epoch may change)"
            )

    def write_config(self) -> None:
        yaml = import_optional("yaml")
        data = {"stage": self.config.STAGE, **config_to_dict(self.config)}
        _atomic_write_text(self.run_dir / "config.yaml", yaml.safe_dump(data, sort_keys=False))

    def write_env(self, checkpoint: dict[str, Any] | None) -> None:
        torch = import_optional("torch")
        train = self._require_training("write_env")
        path = self.run_dir / "env.json"
        history = []
        if checkpoint is not None and path.is_file():
            try:
                previous = json.loads(path.read_text(encoding="utf-8"))
                history = [*previous.pop("history", []), previous]
            except ValueError:
                history = []
        env = {
            "stage": self.config.STAGE,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": _versions(),
            "world_size": self.world_size,
            "global_batch": train.optim.batch_size,
            "per_device_batch": train.optim.batch_size // self.world_size,
            "seed": train.seed,
            "device": str(self.device),
            "device_name": (
                torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else platform.processor()
            ),
            "cuda": torch.version.cuda,
            "deterministic": train.deterministic,
            "amp": self.amp,
            "sync_bn": bool(train.sync_bn and self.distributed),
            "torch_threads": torch.get_num_threads(),
            "argv": sys.argv,
            "resumed_from_epoch": None if checkpoint is None else checkpoint.get("epoch"),
            "history": history,
        }
        _atomic_write_text(path, json.dumps(env, indent=1, default=str))

    def append_log(self, record: dict[str, Any]) -> None:
        if not self.is_main:
            return
        with (self.run_dir / "log.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=_json_default) + "\n")

    def truncate_log(self, last_epoch: int, key: str = "step") -> None:
        """Keep the log records up to the checkpointed ``last_epoch`` (a killed run may have logged more)."""
        if not self.is_main:
            return
        records = [r for r in read_log(self.run_dir) if r.get(key, -1) <= last_epoch]
        text = "".join(json.dumps(r, default=_json_default) + "\n" for r in records)
        _atomic_write_text(self.run_dir / "log.jsonl", text)

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Write ``checkpoint.pt`` atomically (rank 0), with the RNG states of this process."""
        torch = import_optional("torch")
        if self.is_main:
            state = {**state, "stage": self.config.STAGE, "config": config_to_dict(self.config), "rng": rng_state()}
            _atomic_write_bytes(self.checkpoint_path, lambda handle: torch.save(state, handle))
        self.barrier()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def rng_state() -> dict[str, Any]:
    """Python, numpy (global), torch CPU and CUDA generator states."""
    torch = import_optional("torch")
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # noqa: NPY002 - saved for user code that uses the global generator
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states saved by :func:`rng_state`."""
    torch = import_optional("torch")
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
