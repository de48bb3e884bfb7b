"""Input checks shared by the core: every public function normalises its arguments here.

Each checker takes the argument's public name so that errors say which argument broke which
rule and what was received. Nothing here modifies its input: arrays are converted with
``np.asarray`` (a view when possible) and copied only when a dtype change requires it.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

__all__ = [
    "as_rng",
    "check_bool",
    "check_cameras",
    "check_choice",
    "check_features",
    "check_int",
    "check_labels",
    "check_probability",
    "check_real",
    "check_same_length",
    "seed_from",
    "to_numpy",
]


def describe(x: Any) -> str:
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
        if str(x.dtype) == "torch.bfloat16":  # numpy has no bfloat16: widen (exactly) to float32
            x = x.float()
        x = x.numpy()
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be array-like, got {describe(x)}: {exc}") from None
    if arr.dtype == object and arr.ndim > 0 and arr.size and isinstance(arr.flat[0], np.ndarray):
        raise ValueError(f"{name} must be a rectangular array, got ragged nested sequences")
    return arr


def _whole_numbers(arr: np.ndarray, name: str) -> np.ndarray:
    """A float array holding only whole numbers (e.g. labels saved as float64) as int64; others refused."""
    fractional = ~np.isfinite(arr) | (arr != np.round(arr)) | (np.abs(arr) > 2.0**53)
    if fractional.any():
        i = int(np.flatnonzero(fractional)[0])
        raise TypeError(
            f"{name} must hold integers (-1 = no cluster), got dtype {arr.dtype} with the non-integer value "
            f"{arr[i].item()!r} at index {i}"
        )
    return arr.astype(np.int64)


def check_labels(x: Any, name: str, *, n: int | None = None) -> np.ndarray:
    """1-D integer labels, -1 for "no cluster"; returned as int64 (a copy only if needed).

    Float arrays are accepted when every value is a whole number (labels saved as float64, as
    some released stage-1 labels are); a fractional, NaN or infinite value is refused.
    """
    arr = to_numpy(x, name)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one label per sample), got shape {arr.shape}")
    if arr.dtype.kind == "f":
        arr = _whole_numbers(arr, name)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integers (-1 = no cluster), got dtype {arr.dtype}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} must have length {n} (one per sample), got {arr.shape[0]}")
    if arr.size and arr.min() < -1:
        raise ValueError(f"{name} must be >= -1 (-1 = no cluster), got minimum {arr.min()}")
    if arr.size and arr.dtype.kind == "u" and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} must fit in int64 (ids up to {np.iinfo(np.int64).max}), got maximum {arr.max()}")
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


def check_real(x: Any, name: str, *, low: float, high: float, open_low: bool = False, open_high: bool = False) -> float:
    """A real number (Python or numpy scalar) between ``low`` and ``high``, each end closed unless open."""
    left, right = "(" if open_low else "[", ")" if open_high else "]"
    interval = f"{left}{low:g}, {high:g}{right}"
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"{name} must be a real number in {interval}, got {describe(x)}")
    value = float(x)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite real number in {interval}, got {x}")
    below = value <= low if open_low else value < low
    above = value >= high if open_high else value > high
    if below or above:
        raise ValueError(f"{name} must be in {interval}, got {x}")
    return value


def check_bool(x: Any, name: str) -> bool:
    """A bool (Python or numpy); 0/1 and strings are refused."""
    if not isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {describe(x)}")
    return bool(x)


def check_probability(p: Any, name: str = "p") -> float:
    """A real number in [0, 1]."""
    return check_real(p, name, low=0.0, high=1.0)


def check_int(x: Any, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """An integer with ``low <= x <= high`` (bounds optional, inclusive)."""
    if isinstance(x, bool) or not isinstance(x, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {describe(x)}")
    x = int(x)
    if (low is not None and x < low) or (high is not None and x > high):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {x}")
    return x


def check_choice(x: Any, name: str, choices: tuple[str, ...]) -> str:
    """One of a fixed set of option strings."""
    if x not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {describe(x)}")
    return x


def check_same_length(**arrays: np.ndarray) -> int:
    """All arrays have the same first dimension; returns it."""
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{k}={v}" for k, v in lengths.items())
        raise ValueError(f"arguments must have the same length (one entry per sample), got {described}")
    return next(iter(lengths.values()))


def as_rng(rng: Any, name: str = "rng") -> np.random.Generator:
    """The library's one randomness convention: ``numpy.random.default_rng(rng)``.

    Parameters
    ----------
    rng : None, int >= 0, numpy.random.SeedSequence or numpy.random.Generator
        None: fresh entropy; an int: a reproducible seed; a Generator is used as is (shared).
    name : str, default "rng"
        The caller's argument name, used in error messages.
    """
    if isinstance(rng, bool) or (
        rng is not None and not isinstance(rng, (numbers.Integral, np.random.Generator, np.random.SeedSequence))
    ):
        raise TypeError(f"{name} must be None, an int seed or a numpy.random.Generator, got {describe(rng)}")
    if isinstance(rng, numbers.Integral):
        if int(rng) < 0:
            raise ValueError(
                f"{name} must be None, an int seed or a numpy.random.Generator, got {int(rng)}: int seeds must be >= 0"
            )
        return np.random.default_rng(int(rng))
    return np.random.default_rng(rng)


def seed_from(rng: Any, name: str = "rng", *, low: int = 0, high: int = 2**31 - 1) -> int:
    """An int seed in ``[low, high]`` for libraries that take only ints (torch, Infomap).

    An int ``rng`` is used as is when it lies in the range (so ``rng=3`` means seed 3); a
    Generator or None draws one with :func:`as_rng` (a Generator advances by one draw).
    """
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool) and low <= int(rng) <= high:
        return int(rng)
    return int(as_rng(rng, name).integers(low, high, endpoint=True))
