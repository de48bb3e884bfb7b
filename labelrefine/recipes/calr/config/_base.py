"""The base of the schema: field checks, the section base class and the key walk of nested sections."""

from __future__ import annotations

import dataclasses
import math
import numbers
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

from ...._validation import check_choice, check_int

# ----------------------------------------------------------------------------------------------
# field checks


def _positive(value: float, name: str) -> None:
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def _non_negative(value: float, name: str) -> None:
    if not value >= 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def _open_unit(value: float, name: str) -> None:
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")


def _check_device(value: str) -> None:
    text = value.strip().lower()
    if text in ("auto", "cpu", "cuda") or (text.startswith("cuda:") and text[5:].isdigit()):
        return
    raise ValueError(f"runtime.device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {value!r}")


_TYPE_NAMES = {bool: "a bool", int: "an integer", float: "a number", str: "a string"}


def _convert(name: str, value: Any, tp: Any, *, parse_strings: bool) -> Any:
    """Check one field value against its annotation; with ``parse_strings`` text is read as a YAML scalar.

    Text from ``--set`` or ``replace`` is read as YAML reads a value (``yes``, ``1e-4`` and
    ``null`` included), so the command line and a YAML file accept the same spellings. A
    ``tuple[str, ...]`` field takes a list, or text of comma-separated items; a ``Literal``
    field takes one of its values.
    """
    if typing.get_origin(tp) is tuple:
        return _string_tuple(name, value, parse_strings=parse_strings)
    if typing.get_origin(tp) is typing.Literal:
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a string, got {value!r}")
        return check_choice(value, name, typing.get_args(tp))
    optional = type(None) in typing.get_args(tp)
    base = next((a for a in typing.get_args(tp) if a is not type(None)), tp)
    expected = _TYPE_NAMES[base] + (" or null" if optional else "")
    error: type[Exception] = TypeError
    if parse_strings and isinstance(value, str):
        error = ValueError
        if optional and value.strip().lower() in ("", "none", "null", "~"):
            value = None
        elif base is not str:
            value = _scalar(value, base)
    if value is None and optional:
        return None
    if base is str and isinstance(value, Path):
        return str(value)
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, numbers.Integral) and not isinstance(value, bool),
        float: isinstance(value, numbers.Real) and not isinstance(value, bool),
        str: isinstance(value, str),
    }[base]
    if not ok:
        raise error(f"{name} must be {expected}, got {value!r}")
    return base(value)


def _string_tuple(name: str, value: Any, *, parse_strings: bool) -> tuple[str, ...]:
    if parse_strings and isinstance(value, str):
        value = [item.strip() for item in value.split(",") if item.strip()]
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise TypeError(f"{name} must be a list of strings, got {value!r}")
    return tuple(value)


def _scalar(text: str, base: type) -> Any:
    """``text`` read as a YAML scalar; a float field also takes ``5e-4``, which PyYAML reads as text."""
    yaml = _yaml()
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if base is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return text
    return value


def _yaml() -> Any:
    from ...._optional import import_optional

    return import_optional("yaml")


def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, _Section)


@dataclass(frozen=True)
class _Section:
    """Base of the sections: converts (type-checks) every field, then runs ``_validate``.

    A field whose type is a section is a sub-section (``clustering.dbscan``): its keys are
    written ``section.sub.key``.
    """

    NAME: ClassVar[str] = ""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            value = getattr(self, f.name)
            if _is_section(hints[f.name]):
                if not isinstance(value, hints[f.name]):
                    raise TypeError(f"{self._name(f.name)} must be a {hints[f.name].__name__}, got {value!r}")
                continue
            object.__setattr__(self, f.name, _convert(self._name(f.name), value, hints[f.name], parse_strings=False))
        self._validate()

    def _validate(self) -> None:
        pass

    def _name(self, key: str) -> str:
        return f"{self.NAME}.{key}"

    def _ints(self, low: int, *keys: str) -> None:
        for key in keys:
            check_int(getattr(self, key), self._name(key), low=low)


# ----------------------------------------------------------------------------------------------
# keys of nested sections


def config_keys(cls: type) -> list[str]:
    """Every key of a stage config (or a section), ``section.key`` / ``section.sub.key``, in field order."""
    keys = []
    for f in fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
        if isinstance(default, _Section):
            keys += [f"{f.name}.{inner}" for inner in config_keys(type(default))]
        else:
            keys.append(f.name)
    return keys


def config_to_dict(config: Any) -> dict[str, Any]:
    """The config as a nested dict (sections as mappings, tuples as lists), as written to ``config.yaml``."""
    return {
        f.name: dataclasses.asdict(value, dict_factory=_yaml_dict)
        if isinstance(value := getattr(config, f.name), _Section)
        else value
        for f in fields(config)
    }


def _yaml_dict(items: list[tuple[str, Any]]) -> dict[str, Any]:
    """A section's fields with tuples as lists, which ``yaml.safe_dump`` writes."""
    return {key: list(value) if isinstance(value, tuple) else value for key, value in items}


def _flatten(values: Mapping[str, Any]) -> dict[str, Any]:
    """``{"optim": {"lr": 1}}`` and ``{"optim.lr": 1}`` both become ``{"optim.lr": 1}`` (at any depth)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            out.update({f"{key}.{inner}": v for inner, v in _flatten(value).items()})
        else:
            out[str(key)] = value
    return out


def _rebuilt(section: Any, values: Mapping[str, Any], prefix: str, *, parse_strings: bool) -> Any:
    """``section`` with the flat ``values`` (its own ``key`` or ``sub.key``) applied, converted and validated."""
    hints = typing.get_type_hints(type(section))
    changes: dict[str, Any] = {}
    for f in fields(section):
        if _is_section(hints[f.name]):
            inner = {k.partition(".")[2]: v for k, v in values.items() if k.partition(".")[0] == f.name}
            if inner:
                changes[f.name] = _rebuilt(
                    getattr(section, f.name), inner, f"{prefix}{f.name}.", parse_strings=parse_strings
                )
        elif f.name in values:
            changes[f.name] = _convert(prefix + f.name, values[f.name], hints[f.name], parse_strings=parse_strings)
    return dataclasses.replace(section, **changes) if changes else section
