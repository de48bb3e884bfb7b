"""Imports of optional accelerators with an error that names the extra to install."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

# top-level module -> the labelrefine extra that installs it (Pillow comes with torchvision)
_EXTRAS = {
    "faiss": "faiss",
    "infomap": "infomap",
    "torch": "torch",
    "torchvision": "torch",
    "PIL": "torch",
    "tqdm": "torch",
    "yaml": "torch",
    "matplotlib": "plot",
}


def import_optional(module: str) -> ModuleType:
    """Import ``module`` or raise ``ModuleNotFoundError`` naming the labelrefine extra."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        extra = _EXTRAS.get(module.split(".")[0], module)
        raise ModuleNotFoundError(
            f'{module} is required for this function; install it with: pip install "labelrefine[{extra}]"'
        ) from exc


def has_module(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    return importlib.util.find_spec(module) is not None
