"""Typed run configuration: one dataclass per concern under :class:`RunConfig`.

A run's config is built from a named preset (:mod:`vqkit.config.presets`), then a file (JSON or
TOML), then ``section.key=value`` overrides (:mod:`vqkit.config.parse`); every value is
type-checked against its field and unknown keys are rejected. The resolved config is saved in
every run directory as ``config.json``.
"""

from vqkit.config.parse import apply_dict, apply_overrides, read_config_file
from vqkit.config.presets import (
    DEFAULT_PRESET,
    PRESETS,
    get_preset,
    list_presets,
    resolve_config,
)
from vqkit.config.schema import (
    AudioConfig,
    DataConfig,
    ModelConfig,
    PriorConfig,
    QuantizerConfig,
    RunConfig,
    SearchConfig,
    TrainConfig,
)

__all__ = [
    "DEFAULT_PRESET",
    "PRESETS",
    "AudioConfig",
    "DataConfig",
    "ModelConfig",
    "PriorConfig",
    "QuantizerConfig",
    "RunConfig",
    "SearchConfig",
    "TrainConfig",
    "apply_dict",
    "apply_overrides",
    "get_preset",
    "list_presets",
    "read_config_file",
    "resolve_config",
]
