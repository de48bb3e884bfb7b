"""Reading and writing index-aligned arrays for the command line (.npy, .csv, .txt)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["load_array", "save_array"]

_SUFFIXES = (".npy", ".csv", ".txt")


def _parse_text(path: Path) -> np.ndarray:
    """One value per line, or comma-separated rows; ints if every value is an int, else floats, else strings."""
    text = np.loadtxt(path, delimiter=",", dtype=str, ndmin=1, encoding="utf-8")
    for dtype in (np.int64, np.float64):
        try:
            return text.astype(dtype)
        except ValueError:
            continue
    return text


def load_array(path: str | Path, name: str) -> np.ndarray:
    """Load ``path`` for the argument ``name`` with errors that name both.

    Parameters
    ----------
    path : str or Path
        A ``.npy`` file, or a ``.csv`` / ``.txt`` file with one value per line (or one row of
        comma-separated values per sample).
    name : str
        The argument the file is for, used in error messages.

    Returns
    -------
    numpy.ndarray
    """
    path = Path(path)
    if path.suffix not in _SUFFIXES:
        raise ValueError(f"{name}: unsupported file type {path.suffix!r} for {path}; use one of {', '.join(_SUFFIXES)}")
    if not path.is_file():
        raise FileNotFoundError(f"{name}: no such file: {path}")
    try:
        return np.load(path, allow_pickle=False) if path.suffix == ".npy" else _parse_text(path)
    except ValueError as exc:
        raise ValueError(f"{name}: cannot read {path}: {exc}") from None


def save_array(path: str | Path, array: np.ndarray) -> Path:
    """Save to ``.npy``, or to ``.csv`` / ``.txt`` with one value (or row) per line."""
    path = Path(path)
    if path.suffix not in _SUFFIXES:
        raise ValueError(f"output: unsupported file type {path.suffix!r} for {path}; use one of {', '.join(_SUFFIXES)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":
        np.save(path, array)
    else:
        np.savetxt(path, array, delimiter=",", fmt="%d" if np.issubdtype(array.dtype, np.integer) else "%.8g")
    return path
