"""The run folder of one stage run: what is written there, atomically, and read back on ``--resume``.

Layout of a run folder (``RUN_DIR``)::

    config.yaml        the resolved config (stage included)
    env.json           library versions, world size, global and per-device batch, seed, device
    log.jsonl          one JSON object per epoch
    train.log          the logger's output (written by :class:`~labelrefine.recipes.calr.runtime.Session`)
    checkpoint.pt      the latest checkpoint (written to a temporary file, then os.replace)
    best.pt            stage 2 with ``report_epoch="best"``: the encoder of the best epoch
    local_labels.npz   stage 1 only: labels, keys (image paths or sample ids), cams
    plots/*.png        ``labelrefine-calr plot``

The process side of a run (devices, process group, determinism, log handlers) is
:class:`~labelrefine.recipes.calr.runtime.Session`, which owns one :class:`RunFolder`.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..._optional import import_optional
from .config import RUNTIME_KEYS, RUNTIME_SECTION, _Config, _flatten, _TrainConfig, config_to_dict

__all__ = ["RunFolder", "read_log", "rng_state"]


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


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def rng_state() -> dict[str, Any]:
    """Python, numpy (global), torch CPU and CUDA generator states."""
    import random

    torch = import_optional("torch")
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # noqa: NPY002 - saved for user code that uses the global generator
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _no_barrier() -> None:
    return None


@dataclass
class RunFolder:
    """The files of one stage run in ``path``; rank 0 writes them, every process may read.

    Parameters
    ----------
    path : pathlib.Path
        The run folder.
    config : config
        The stage's resolved config (written to ``config.yaml``, compared on ``--resume``).
    resume : bool, default False
        Continue the run found in ``path``.
    is_main : bool, default True
        Whether this process writes (rank 0).
    barrier : callable, optional
        Waits for every process (after the run folder is prepared and after a checkpoint).
    """

    path: Path
    config: _Config
    resume: bool = False
    is_main: bool = True
    barrier: Callable[[], None] = _no_barrier

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoint.pt"

    def prepare(self, environment: Mapping[str, Any]) -> dict[str, Any] | None:
        """Check the folder against ``resume``, write config.yaml / env.json; return the checkpoint to resume.

        ``environment`` describes the processes (world size, device...) for ``env.json``.
        """
        from .runtime import load_torch_file, logger

        checkpoint = None
        exists = self.checkpoint_path.is_file()
        if exists and not self.resume:
            raise FileExistsError(
                f"run_dir {str(self.path)!r} already holds a run (checkpoint.pt); pass --resume to continue it "
                "or choose another --run-dir"
            )
        if self.resume and exists:
            self._check_resumable()
            checkpoint = load_torch_file(self.checkpoint_path, "checkpoint", weights_only=False)
            if not isinstance(checkpoint, dict):
                raise ValueError(f"checkpoint {str(self.checkpoint_path)!r} is not a labelrefine-calr checkpoint")
            if checkpoint.get("stage") != self.config.STAGE:
                raise ValueError(
                    f"run_dir {str(self.path)!r} holds a {checkpoint.get('stage')!r} run, not a "
                    f"{self.config.STAGE!r} run"
                )
        elif self.resume:
            logger.warning("--resume: no checkpoint in %s, starting a new run", self.path)
        if self.is_main:
            self.path.mkdir(parents=True, exist_ok=True)
            if checkpoint is None:
                (self.path / "log.jsonl").unlink(missing_ok=True)
            self.write_config()
            self.write_env(checkpoint, environment)
        self.barrier()
        return checkpoint

    def _check_resumable(self) -> None:
        saved_path = self.path / "config.yaml"
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
                f"resume: the config differs from the run being resumed in {str(self.path)!r} ({details}); "
                "resume with the same settings (only the runtime section, data.root and stop_after_epoch may change)"
            )

    def write_config(self) -> None:
        yaml = import_optional("yaml")
        data = {"stage": self.config.STAGE, **config_to_dict(self.config)}
        _atomic_write_text(self.path / "config.yaml", yaml.safe_dump(data, sort_keys=False))

    def write_env(self, checkpoint: dict[str, Any] | None, environment: Mapping[str, Any]) -> None:
        """``env.json``: versions, the processes (``environment``), batch and seed; earlier starts in ``history``."""
        train = self.config
        if not isinstance(train, _TrainConfig):
            raise TypeError(f"write_env needs a training stage's config, not a {self.config.STAGE!r} config")
        path = self.path / "env.json"
        history = []
        if checkpoint is not None and path.is_file():
            try:
                previous = json.loads(path.read_text(encoding="utf-8"))
                history = [*previous.pop("history", []), previous]
            except ValueError:
                history = []
        world = int(environment.get("world_size", 1))
        env = {
            "stage": self.config.STAGE,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": _versions(),
            "world_size": world,
            "global_batch": train.optim.batch_size,
            "per_device_batch": train.optim.batch_size // world,
            "seed": train.seed,
            **{key: value for key, value in environment.items() if key != "world_size"},
            "deterministic": train.deterministic,
            "argv": sys.argv,
            "resumed_from_epoch": None if checkpoint is None else checkpoint.get("epoch"),
            "history": history,
        }
        _atomic_write_text(path, json.dumps(env, indent=1, default=str))

    def append_log(self, record: dict[str, Any]) -> None:
        """Add one record to ``log.jsonl`` (rank 0)."""
        if not self.is_main:
            return
        with (self.path / "log.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=_json_default) + "\n")

    def truncate_log(self, last_epoch: int, key: str = "step") -> None:
        """Keep the log records up to the checkpointed ``last_epoch`` (a killed run may have logged more)."""
        if not self.is_main:
            return
        records = [r for r in read_log(self.path) if r.get(key, -1) <= last_epoch]
        text = "".join(json.dumps(r, default=_json_default) + "\n" for r in records)
        _atomic_write_text(self.path / "log.jsonl", text)

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Write ``checkpoint.pt`` atomically (rank 0), with the RNG states of this process."""
        torch = import_optional("torch")
        if self.is_main:
            state = {**state, "stage": self.config.STAGE, "config": config_to_dict(self.config), "rng": rng_state()}
            _atomic_write_bytes(self.checkpoint_path, lambda handle: torch.save(state, handle))
        self.barrier()
