"""Configuration of the CALR recipe, in three rooms.

- ``config/schema.py`` (with its clustering sections in
  ``config/clustering.py``): the frozen stage configs and their
  sections, choice fields typed from the code that implements them;
- ``config/loading.py``: YAML, ``--set`` and Python values, renamed
  keys, :func:`resolve_config`;
- ``config/catalogue.py``: the presets and the source of every setting.

Every name is importable from ``labelrefine.recipes.calr.config``.
"""

from ._base import _flatten, _Section, config_keys, config_to_dict
from .catalogue import (
    DEFAULT_SOURCES,
    PRESETS,
    SETTINGS,
    Preset,
    Setting,
    get_preset,
    preset_settings,
    settings_markdown,
)
from .clustering import (
    GLOBAL_METHODS,
    AgglomerativeConfig,
    CameraClusteringConfig,
    CameraDbscanConfig,
    CameraInfomapConfig,
    ClusteringConfig,
    DbscanConfig,
    InfomapConfig,
)
from .loading import (
    RENAMED,
    STAGE_RENAMED,
    _unknown_key,
    config_from_dict,
    load_yaml,
    parse_set,
    resolve_config,
    yaml_values,
)
from .schema import (
    RUNTIME_KEYS,
    RUNTIME_SECTION,
    STAGES,
    AlignmentConfig,
    AugmentConfig,
    DataConfig,
    EvalConfig,
    InterConfig,
    IntraConfig,
    ModelConfig,
    OptimConfig,
    RefinementConfig,
    RuntimeConfig,
    StageConfig,
    SyntheticConfig,
    _Config,
    _TrainConfig,
    backbone_choices,
    config_class,
    dataset_choices,
    schedule_choices,
)

IntraClusteringConfig = CameraClusteringConfig
"""The name of :class:`CameraClusteringConfig` before the section was renamed ``camera_clustering``."""

__all__ = [
    "DEFAULT_SOURCES",
    "GLOBAL_METHODS",
    "PRESETS",
    "RENAMED",
    "SETTINGS",
    "STAGES",
    "STAGE_RENAMED",
    "AgglomerativeConfig",
    "AlignmentConfig",
    "AugmentConfig",
    "CameraClusteringConfig",
    "CameraDbscanConfig",
    "CameraInfomapConfig",
    "ClusteringConfig",
    "DataConfig",
    "DbscanConfig",
    "EvalConfig",
    "InfomapConfig",
    "InterConfig",
    "IntraClusteringConfig",
    "IntraConfig",
    "ModelConfig",
    "OptimConfig",
    "Preset",
    "RefinementConfig",
    "RuntimeConfig",
    "Setting",
    "StageConfig",
    "SyntheticConfig",
    "backbone_choices",
    "config_class",
    "config_from_dict",
    "config_keys",
    "config_to_dict",
    "dataset_choices",
    "get_preset",
    "load_yaml",
    "parse_set",
    "preset_settings",
    "resolve_config",
    "schedule_choices",
    "settings_markdown",
    "yaml_values",
]

# private names the trainer and the runtime import
_PRIVATE = (_Config, _Section, _TrainConfig, _flatten, _unknown_key, RUNTIME_KEYS, RUNTIME_SECTION)
