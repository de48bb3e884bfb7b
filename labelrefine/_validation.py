"""Input checks shared by the core: every public function normalises its arguments here.

Each checker takes the argument's public name so that errors say which argument broke which
rule and what was received. Nothing here modifies its input: arrays are converted with
``np.asarray`` (a view when possible) and copied only when a dtype change requires it.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

__all__ = [
    "as_rng",
    "check_cameras",
    "check_choice",
    "check_features",
    "check_int",
    "check_knn_graph",
    "check_labels",
    "check_probability",
    "check_same_length",
    "to_numpy",
]


def _describe(x: Any) -> str:
    """Short description of a received value for error messages."""
    if isinstance(x, np.ndarray):
        return f"array of shape {x.shape} and dtype {x.dtype}"
    text = repr(x)
    return text if len(text) <= 60 else text[:57] + "..."


def to_numpy(x: Any, name: str) -> np.ndarray:
    """Convert arrays, lists and (CPU or CUDA) torch tensors to numpy without importing torch."""
    if x is None:
        raise TypeError(f"{name} must be an array, got None")
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, duck-typed
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16":  # numpy has no bfloat16: widen to float32 (exact)
            x = x.float()
        x = x.numpy()
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be array-like, got {_describe(x)}: {exc}") from None
    if arr.dtype == object and arr.ndim > 0 and arr.size and isinstance(arr.flat[0], np.ndarray):
        raise ValueError(f"{name} must be a rectangular array, got ragged nested sequences")
    return arr


def check_labels(x: Any, name: str, *, n: int | None = None) -> np.ndarray:
    """1-D integer labels, -1 for "no cluster"; returned as int64 (a copy only if needed)."""
    arr = to_numpy(x, name)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one label per sample), got shape {arr.shape}")
    if arr.size == 0 and arr.dtype == np.float64:  # np.asarray([]) is float64
        arr = arr.astype(np.int64)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integers (-1 = no cluster), got dtype {arr.dtype}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} must have length {n} (one per sample), got {arr.shape[0]}")
    if arr.size and arr.min() < -1:
        raise ValueError(f"{name} must be >= -1 (-1 = no cluster), got minimum {arr.min()}")
    return arr.astype(np.int64, copy=False)


def check_cameras(x: Any, name: str = "cams", *, n: int | None = None) -> np.ndarray:
    """Factorise any per-sample hashable camera ids into int64 codes 0..C-1."""
    arr = to_numpy(x, name)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per sample), got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} must have length {n} (one per sample), got {arr.shape[0]}")
    if arr.dtype.kind == "f" and arr.size and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must not contain NaN or infinity")
    try:
        _, codes = np.unique(arr, return_inverse=True)
    except TypeError:
        # mixed types (e.g. ints and strings) cannot be sorted: factorise by first appearance
        lookup: dict[Any, int] = {}
        codes = np.fromiter((lookup.setdefault(c, len(lookup)) for c in arr.tolist()), np.int64, arr.size)
    return codes.reshape(-1).astype(np.int64, copy=False)


def check_features(x: Any, name: str = "feats", *, n: int | None = None) -> np.ndarray:
    """2-D finite float features (float16 is promoted to float32); never copied otherwise."""
    arr = to_numpy(x, name)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_dims), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    if arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    if arr.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be float32 or float64, got dtype {arr.dtype}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} must have {n} rows (one per sample), got {arr.shape[0]}")
    if not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise ValueError(f"{name} must be finite, got NaN or infinity (first in row {bad})")
    return arr


def check_knn_graph(knn: Any, name: str = "knn", *, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A kNN graph ``(indices, distances)``: both (N, k), indices in [0, N), distances finite."""
    if not isinstance(knn, (tuple, list)) or len(knn) != 2:
        raise TypeError(f"{name} must be a tuple (indices, distances), got {_describe(knn)}")
    indices = to_numpy(knn[0], f"{name}[0] (indices)")
    distances = to_numpy(knn[1], f"{name}[1] (distances)")
    if indices.ndim != 2:
        raise ValueError(f"{name} indices must be 2-D (N, k), got shape {indices.shape}")
    if distances.shape != indices.shape:
        raise ValueError(
            f"{name} indices and distances must have the same shape, got {indices.shape} and {distances.shape}"
        )
    if indices.dtype == bool or not np.issubdtype(indices.dtype, np.integer):
        raise TypeError(f"{name} indices must be integers, got dtype {indices.dtype}")
    if not np.issubdtype(distances.dtype, np.floating):
        raise TypeError(f"{name} distances must be floats, got dtype {distances.dtype}")
    n_rows = indices.shape[0]
    if n is not None and n_rows != n:
        raise ValueError(f"{name} must have {n} rows (one per sample), got {n_rows}")
    if indices.size and (indices.min() < 0 or indices.max() >= n_rows):
        raise ValueError(
            f"{name} indices must lie in [0, {n_rows}), got values in [{indices.min()}, {indices.max()}]"
        )
    if not np.isfinite(distances).all():
        raise ValueError(f"{name} distances must be finite, got NaN or infinity")
    return indices.astype(np.int64, copy=False), distances


def check_probability(p: Any, name: str = "p") -> float:
    """A real number in [0, 1]."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"{name} must be a real number in [0, 1], got {_describe(p)}")
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {p}")
    return float(p)


def check_int(x: Any, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """An integer with ``low <= x <= high`` (bounds optional, inclusive)."""
    if isinstance(x, bool) or not isinstance(x, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {_describe(x)}")
    x = int(x)
    if (low is not None and x < low) or (high is not None and x > high):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {x}")
    return x


def check_choice(x: Any, name: str, choices: tuple[str, ...]) -> str:
    """One of a fixed set of option strings."""
    if x not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {_describe(x)}")
    return x


def check_same_length(**arrays: np.ndarray) -> int:
    """All arrays have the same first dimension; returns it."""
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{k}={v}" for k, v in lengths.items())
        raise ValueError(f"arguments must have the same length (one entry per sample), got {described}")
    return next(iter(lengths.values()))


def as_rng(rng: int | np.random.Generator | None) -> np.random.Generator:
    """The library's one randomness convention: ``numpy.random.default_rng(rng)``."""
    if rng is not None and not isinstance(rng, (numbers.Integral, np.random.Generator, np.random.SeedSequence)):
        raise TypeError(f"rng must be None, an int seed or a numpy.random.Generator, got {_describe(rng)}")
    return np.random.default_rng(rng)
