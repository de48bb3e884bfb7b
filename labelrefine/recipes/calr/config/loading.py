"""Loading the CALR recipe's config: YAML files, ``--set`` text and Python values, renamed keys.

Resolution order (later wins): the stage's defaults, the preset, the YAML file, the command
line's dedicated flags, then ``--set section.key=value``. Values may be typed (``{"optim.epochs":
2}``) or text, which is read as YAML reads a scalar (``"1e-4"``, ``"no"``, ``"null"``). The
resolved config is written to ``RUN_DIR/config.yaml`` by the trainer.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from ._base import _convert, _flatten, _rebuilt, _yaml, config_keys
from .catalogue import get_preset
from .schema import _CLASSES, STAGES, EvalConfig, InterConfig, IntraConfig, StageConfig, _Config, config_class

__all__ = [
    "RENAMED",
    "STAGE_RENAMED",
    "config_from_dict",
    "load_yaml",
    "parse_set",
    "resolve_config",
    "yaml_values",
]

_C = typing.TypeVar("_C", bound=_Config)

RENAMED: Mapping[str, str] = types.MappingProxyType(
    {
        "dataset": "data.dataset",
        "data_root": "data.root",
        "height": "data.height",
        "width": "data.width",
        "flip_p": "augment.flip_p",
        "pad": "augment.pad",
        "erasing_p": "augment.erasing_p",
        **{key: f"model.{key}" for key in ("backbone", "pretrained", "pooling", "ibn", "mlp_hidden", "cnn_width")},
        **{key: f"optim.{key}" for key in ("optimizer", "lr", "weight_decay", "lr_step", "lr_gamma", "batch_size")},
        **{key: f"optim.{key}" for key in ("num_instances", "iters_per_epoch", "epochs", "temperature")},
        **{key: f"optim.{key}" for key in ("momentum", "memory_mode")},
        **{key: f"runtime.{key}" for key in ("run_dir", "device", "num_workers", "num_threads", "progress")},
        "test_batch_size": "runtime.test_batch_size",
        "data_seed": "synthetic.seed",
        **{f"synth_{key}": f"synthetic.{key}" for key in ("ids", "cams", "dim", "camera_strength", "noise")},
        "synth_family_size": "synthetic.family_size",
        **{f"synthreid_{key}": f"synthetic.reid_{key}" for key in ("ids", "cams", "height", "width")},
        "intra_method": "clustering.method",
        "clustering": "clustering.method",
        **{key: f"clustering.{key}" for key in ("images_per_cluster", "k1", "k2", "eps", "min_sim", "k")},
        **{key: f"clustering.{key}" for key in ("k_includes_self", "min_size", "min_samples")},
        "refine": "refinement.enabled",
        "pivots": "refinement.rule",
        "p_schedule": "refinement.schedule",
        **{key: f"refinement.{key}" for key in ("p_start", "p_end", "p_span", "p_power", "p_rate")},
        **{key: f"refinement.{key}" for key in ("cacl", "cacl_warmup", "local_labels")},
        "align": "alignment.enabled",
        "align_epochs": "alignment.epochs",
        **{key: f"alignment.{key}" for key in ("beta", "grl_lambda", "grl_schedule", "cam_hidden", "cam_lr_mult")},
    }
)


# STAGE_RENAMED: per stage, every key that moved when the clustering sections got a sub-section per
# method (stage 1's section became ``camera_clustering``), and its new place (named by "did you mean").
STAGE_RENAMED: Mapping[str, Mapping[str, str]] = types.MappingProxyType(
    {
        "intra": types.MappingProxyType(
            {
                "clustering.method": "camera_clustering.method",
                "clustering.images_per_cluster": "camera_clustering.agglomerative.images_per_cluster",
                "clustering.k1": "camera_clustering.agglomerative.k1",
                "clustering.k2": "camera_clustering.agglomerative.k2",
                "clustering.eps": "camera_clustering.dbscan.eps",
                "clustering.min_sim": "camera_clustering.infomap.min_sim",
                "clustering.k": "camera_clustering.infomap.k",
            }
        ),
        "inter": types.MappingProxyType(
            {
                "clustering.k_includes_self": "clustering.infomap.k_includes_self",
                "clustering.min_size": "clustering.infomap.min_size",
                "clustering.eps": "clustering.dbscan.eps",
                "clustering.min_samples": "clustering.dbscan.min_samples",
                "clustering.k1": "clustering.dbscan.k1",
                "clustering.k2": "clustering.dbscan.k2",
            }
        ),
        "eval": types.MappingProxyType({}),
    }
)


def _abbreviates(short: str, long: str) -> bool:
    """Whether ``short`` abbreviates ``long``: same first letter, its letters in order in ``long`` (lr)."""
    rest = iter(long)
    return short[:1] == long[:1] and all(char in rest for char in short)


def _renamed(key: str, stage: str | None) -> list[str]:
    """The new names of ``key``: through :data:`RENAMED`, then :data:`STAGE_RENAMED` of ``stage`` (or of any stage)."""
    key = RENAMED.get(key, key)
    stages = [stage] if stage is not None and stage in STAGE_RENAMED else list(STAGE_RENAMED)
    return [STAGE_RENAMED[name].get(key, key) for name in stages]


def _closest_key(key: str, known: list[str], stage: str | None = None) -> str | None:
    """The known key a mistyped or renamed ``key`` most likely means.

    In order: its new name (:data:`RENAMED`, :data:`STAGE_RENAMED`); a near-identical key (a typo,
    difflib ratio >= 0.8); a key of the same section whose name abbreviates it or that it abbreviates (``optim.lr`` for
    ``optim.learning_rate``), the closest of them; the closest key; the closest key name alone.
    """
    renamed = [name for name in _renamed(key, stage) if name != key and name in known]
    if renamed:
        return renamed[0]
    typo = difflib.get_close_matches(key, known, n=1, cutoff=0.8)
    if typo:
        return typo[0]
    section, _, leaf = key.rpartition(".")
    related = [
        name
        for name in known
        if name.rpartition(".")[0] == section
        and (_abbreviates(name.rpartition(".")[2], leaf) or _abbreviates(leaf, name.rpartition(".")[2]))
    ]
    close = difflib.get_close_matches(key, related, n=1, cutoff=0.0) or difflib.get_close_matches(key, known, n=1)
    if close:
        return close[0]
    leaves = {name.rpartition(".")[2]: name for name in reversed(known)}
    return next((leaves[name] for name in difflib.get_close_matches(key, list(leaves), n=1)), None)


def _unknown_key(key: str, known: list[str], where: str, stage: str | None = None) -> ValueError:
    """The error of an unknown key, naming its new place (:data:`RENAMED`) or the closest key or key name."""
    close = _closest_key(key, known, stage)
    hint = f"; did you mean {close!r}?" if close else ""
    if close is not None and close in _renamed(key, stage):
        hint = f"; did you mean {close!r}? (the key was renamed)"
    return ValueError(f"unknown config key {key!r} {where}{hint}")


def config_from_dict(cls: type[_C], values: Mapping[str, Any], *, parse_strings: bool = False) -> _C:
    """Build ``cls`` from a mapping of ``section.key`` (or nested section mappings) and top-level keys.

    Unknown keys raise ``ValueError`` naming the closest key (or the new name of a renamed key).
    With ``parse_strings`` text values are read as YAML scalars for non-string fields
    (``"1e-4"`` for a float, ``"no"`` for a bool, ``"null"`` for an optional field), as for
    YAML files and ``--set``; other values are type-checked as they are.
    """
    known = config_keys(cls)
    flat = _flatten(values)
    for key in flat:
        if key not in known:
            raise _unknown_key(key, known, f"for stage {cls.STAGE!r}", cls.STAGE)
    hints = typing.get_type_hints(cls)
    top: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default_factory is not dataclasses.MISSING:
            inner = {key.partition(".")[2]: v for key, v in flat.items() if key.partition(".")[0] == f.name}
            top[f.name] = _rebuilt(f.default_factory(), inner, f"{f.name}.", parse_strings=parse_strings)
        elif f.name in flat:
            top[f.name] = _convert(f.name, flat[f.name], hints[f.name], parse_strings=parse_strings)
    return cls(**top)


# ----------------------------------------------------------------------------------------------
# YAML and --set


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file: keys and sections, optionally inside ``intra:``/``inter:``/``eval:``."""
    yaml = _yaml()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {str(path)!r}")
    with path.open(encoding="utf-8") as handle:
        try:
            data = yaml.safe_load(handle)
        except yaml.YAMLError as exc:
            raise ValueError(f"config file {str(path)!r} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {str(path)!r} must hold a mapping of keys, got {type(data).__name__}")
    return data


def yaml_values(data: Mapping[str, Any], stage: str, source: str = "config file") -> dict[str, Any]:
    """The keys of a YAML mapping that apply to ``stage``, as ``section.key``.

    Sections are nested mappings (``optim: {lr: 1e-4}``) or dotted keys (``optim.lr: 1e-4``).
    Keys outside a stage section apply to every stage that has them (a key no stage has is an
    error, with the closest name); a section named after a stage applies to that stage only.
    """
    all_known = sorted({key for cls in _CLASSES.values() for key in config_keys(cls)})
    own = set(config_keys(config_class(stage)))
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in STAGES:
            if not isinstance(value, dict):
                raise ValueError(f"{source}: section {key!r} must be a mapping of keys, got {value!r}")
            if key == stage:
                for inner, inner_value in _flatten(value).items():
                    if inner not in own:
                        raise _unknown_key(inner, sorted(own), f"in section {key!r} of the {source}", stage)
                    out[inner] = inner_value
            continue
        for inner, inner_value in _flatten({key: value}).items():
            if inner not in all_known:
                raise _unknown_key(inner, all_known, f"in the {source}", stage)
            if inner in own:
                out[inner] = inner_value
    return out


def parse_set(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Parse ``--set section.key=value`` items into a dict of strings (parsed later by field type)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = value
    return out


@typing.overload
def resolve_config(
    stage: Literal["intra"],
    *,
    preset: str | None = None,
    yaml_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    sets: Mapping[str, Any] | None = None,
    base: Mapping[str, Any] | None = None,
) -> IntraConfig: ...
@typing.overload
def resolve_config(
    stage: Literal["inter"],
    *,
    preset: str | None = None,
    yaml_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    sets: Mapping[str, Any] | None = None,
    base: Mapping[str, Any] | None = None,
) -> InterConfig: ...
@typing.overload
def resolve_config(
    stage: Literal["eval"],
    *,
    preset: str | None = None,
    yaml_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    sets: Mapping[str, Any] | None = None,
    base: Mapping[str, Any] | None = None,
) -> EvalConfig: ...
@typing.overload
def resolve_config(
    stage: str,
    *,
    preset: str | None = None,
    yaml_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    sets: Mapping[str, Any] | None = None,
    base: Mapping[str, Any] | None = None,
) -> StageConfig: ...
def resolve_config(
    stage: str,
    *,
    preset: str | None = None,
    yaml_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    sets: Mapping[str, Any] | None = None,
    base: Mapping[str, Any] | None = None,
) -> StageConfig:
    """Build a stage config: defaults < ``base`` < preset < YAML file < ``overrides`` < ``sets``.

    Parameters
    ----------
    stage : {"intra", "inter", "eval"}
        Which config to build.
    preset : str, optional
        A key of :data:`PRESETS`.
    yaml_file : path, optional
        A YAML file (see ``yaml_values``).
    overrides : mapping, optional
        Values from dedicated command-line flags (typed or text), ``section.key`` to value.
    sets : mapping, optional
        ``--set`` values, ``section.key`` to a typed value (``{"optim.epochs": 2}``) or to text
        parsed by the field's type (``{"optim.epochs": "2"}``, as on the command line).
    base : mapping, optional
        Starting values, e.g. a saved ``config.yaml`` (eval reads the trained run's); keys the
        stage does not have are skipped.

    Returns
    -------
    IntraConfig, InterConfig or EvalConfig
        The class of ``stage`` (``config_class``); type checkers see it from the stage's literal.

    Raises
    ------
    ValueError, TypeError
        An unknown key (with the closest key, or the new name of a key of the flat config of
        earlier versions), a value of the wrong type or out of range.
    FileNotFoundError
        A missing YAML file.

    Examples
    --------
    >>> cfg = resolve_config("inter", preset="veri", sets={"alignment.beta": "0.5", "optim.epochs": 40})
    >>> cfg.data.height, cfg.data.width, cfg.alignment.beta, cfg.optim.epochs
    (224, 224, 0.5, 40)
    """
    cls = config_class(stage)
    own = set(config_keys(cls))
    values: dict[str, Any] = {}
    if base:
        flat = [key for key, value in base.items() if key in RENAMED and not isinstance(value, Mapping)]
        if flat:
            raise ValueError(
                f"base (a run's config.yaml) holds keys of the flat config of earlier versions: {flat[0]!r} is "
                f"now {RENAMED[flat[0]]!r}; write it with sections (RENAMED in labelrefine.recipes.calr.config maps "
                "every key)"
            )
        moved = STAGE_RENAMED.get(stage, {})  # a run's config.yaml written before the clustering sub-sections
        saved = {moved.get(key, key): value for key, value in _flatten(base).items()}
        values.update({key: value for key, value in saved.items() if key in own})
    if preset is not None:
        values.update(get_preset(preset).values(stage))
    if yaml_file is not None:
        values.update(yaml_values(load_yaml(yaml_file), stage, f"config file {str(yaml_file)!r}"))
    for source in (overrides or {}, sets or {}):
        for key, value in _flatten(source).items():
            if key not in own:
                raise _unknown_key(key, sorted(own), f"for stage {stage!r}", stage)
            values[key] = value
    # config_class(stage) is IntraConfig, InterConfig or EvalConfig
    return typing.cast(StageConfig, config_from_dict(cls, values, parse_strings=True))
