"""Reading and writing index-aligned arrays for the command line (.npy, .npz, .pt, .csv, .txt).

A file argument is a path, optionally followed by ``:KEY`` to pick one array of a ``.npz``
archive or of a ``.pt`` file holding a dict of tensors: ``local_labels.npz:labels``. Pickled
objects are never loaded (``allow_pickle=False``, ``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ._optional import import_optional

__all__ = ["load_array", "save_array"]

_SUFFIXES = (".npy", ".npz", ".pt", ".csv", ".txt")
_SAVE_SUFFIXES = (".npy", ".csv", ".txt")


def _split_key(text: str) -> tuple[Path, str | None]:
    """``file.npz:labels`` -> (file.npz, "labels"); a path without a known suffix before ``:`` is kept whole."""
    head, sep, key = text.rpartition(":")
    if sep and Path(head).suffix in _SUFFIXES and key and "/" not in key and "\\" not in key:
        return Path(head), key
    return Path(text), None


def _to_number(text: np.ndarray) -> np.ndarray | None:
    """``text`` as int64, else float64, else None."""
    for dtype in (np.int64, np.float64):
        try:
            return text.astype(dtype)
        except ValueError:
            continue
    return None


def _parse_text(path: Path, name: str) -> np.ndarray:
    """One value per line, or comma-separated rows; ints if every value is an int, else floats, else strings.

    A first line that is not numeric while every other line is (a header such as ``label``) is skipped.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # numpy warns on empty input; we raise instead
        text = np.loadtxt(path, delimiter=",", dtype=str, ndmin=1, encoding="utf-8")
    if text.size == 0:
        raise ValueError(f"{name}: {path} holds no values (an empty file)")
    text = np.char.strip(text)
    numbers = _to_number(text)
    if numbers is not None:
        return numbers
    if text.shape[0] > 1:
        body = _to_number(text[1:])
        if body is not None:  # a header line above numeric rows
            return body
    return text


def _from_archive(arrays: dict[str, Any], key: str | None, path: Path, name: str, kind: str) -> Any:
    keys = sorted(arrays)
    if key is not None:
        if key not in arrays:
            raise ValueError(f"{name}: {path} has no array {key!r}; it holds {', '.join(map(repr, keys)) or 'none'}")
        return arrays[key]
    if len(keys) == 1:
        return arrays[keys[0]]
    listed = ", ".join(map(repr, keys)) or "no arrays"
    example = keys[0] if keys else "KEY"
    raise ValueError(f"{name}: {path} is a {kind} holding {listed}; pick one with {path}:{example}")


def _load_npz(path: Path, key: str | None, name: str) -> np.ndarray:
    with np.load(path, allow_pickle=False) as archive:
        return np.asarray(_from_archive({k: archive[k] for k in archive.files}, key, path, name, ".npz archive"))


def _load_pt(path: Path, key: str | None, name: str) -> np.ndarray:
    torch = import_optional("torch")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types (pickle, zip, runtime) for a foreign file
        raise ValueError(f"{name}: cannot read {path} as a torch file of tensors: {exc}") from None
    if isinstance(obj, dict):
        obj = _from_archive(obj, key, path, name, ".pt dict")
    elif key is not None:
        raise ValueError(f"{name}: {path} holds a single {type(obj).__name__}, not a dict: drop ':{key}'")
    if not isinstance(obj, torch.Tensor):
        raise ValueError(f"{name}: {path} must hold a tensor (or a dict of tensors), got {type(obj).__name__}")
    obj = obj.detach().cpu()
    return (obj.float() if obj.dtype == torch.bfloat16 else obj).numpy()


def load_array(path: str | Path, name: str) -> np.ndarray:
    """Load ``path`` for the argument ``name`` with errors that name both.

    Parameters
    ----------
    path : str or Path
        A ``.npy`` file; a ``.npz`` archive (its only array, or ``FILE.npz:KEY`` for one of
        several, e.g. ``local_labels.npz:labels``); a ``.pt`` file holding a tensor or a dict of
        tensors (``FILE.pt:KEY``; needs torch); or a ``.csv`` / ``.txt`` file with one value per
        line (or one row of comma-separated values per sample), optionally below one header line.
        Pickled objects are refused, never loaded.
    name : str
        The argument the file is for, used in error messages.

    Returns
    -------
    numpy.ndarray
        Never empty.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        A directory, an unsupported suffix, a missing or ambiguous key, an empty, truncated,
        foreign or pickled file.
    ModuleNotFoundError
        A ``.pt`` file without torch installed (the message names the extra).
    """
    path, key = _split_key(str(path))
    if path.is_dir():
        raise ValueError(f"{name}: {path} is a directory, expected a file ({', '.join(_SUFFIXES)})")
    if path.suffix not in _SUFFIXES:
        raise ValueError(f"{name}: unsupported file type {path.suffix!r} for {path}; use one of {', '.join(_SUFFIXES)}")
    if key is not None and path.suffix not in (".npz", ".pt"):
        raise ValueError(f"{name}: a key (':{key}') only selects an array of a .npz or .pt file, got {path}")
    if not path.is_file():
        raise FileNotFoundError(f"{name}: no such file: {path}")
    try:
        if path.suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        elif path.suffix == ".npz":
            array = _load_npz(path, key, name)
        elif path.suffix == ".pt":
            array = _load_pt(path, key, name)
        else:
            array = _parse_text(path, name)
    except ValueError as exc:
        text = str(exc)
        if text.startswith(f"{name}: "):
            raise
        if "allow_pickle" in text or "pickle" in text.lower():
            raise ValueError(
                f"{name}: {path} holds pickled data (an object array, or not a numpy file at all), which "
                "labelrefine never loads: save a numeric or string array instead "
                "(np.save(path, np.asarray(values, dtype=np.int64)))"
            ) from None
        raise ValueError(f"{name}: cannot read {path}: {text}") from None
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ValueError(f"{name}: cannot read {path} (truncated or not a {path.suffix} file): {exc}") from None
    if array.size == 0:
        raise ValueError(f"{name}: {path} holds no values (an array of shape {array.shape})")
    return array


def save_array(path: str | Path, array: np.ndarray, name: str = "--output") -> Path:
    """Save to ``.npy``, or to ``.csv`` / ``.txt`` with one value (or row) per line.

    Raises
    ------
    ValueError
        An unsupported suffix, or ``path`` is an existing directory.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{name}: {path} is a directory; give a file name such as {path / 'labels.npy'}")
    if path.suffix not in _SAVE_SUFFIXES:
        raise ValueError(
            f"{name}: unsupported file type {path.suffix!r} for {path}; use one of {', '.join(_SAVE_SUFFIXES)}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":
        np.save(path, array)
    else:
        np.savetxt(path, array, delimiter=",", fmt="%d" if np.issubdtype(array.dtype, np.integer) else "%.8g")
    return path
