"""Reference trainers built on labelrefine; see :mod:`labelrefine.recipes.calr`.

Importing this package imports nothing heavy; ``labelrefine.recipes.calr`` loads torch only
when training or evaluation is called.
"""

__all__ = ["calr"]


def __getattr__(name: str) -> object:
    if name == "calr":
        import importlib

        return importlib.import_module(".calr", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
