"""Reading config files and ``section.key=value`` overrides into the config dataclasses, every
value checked against its field's type."""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import re
import tomllib
import typing
from pathlib import Path
from typing import Any

from vqkit.errors import ConfigError


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON or TOML config file into a dict."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        return tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.') or 'JSON'}: {e}") from None


def rule(default: Any, *, min: float | None = None, max: float | None = None,
         gt: float | None = None, lt: float | None = None,
         choices: tuple[str, ...] | None = None, pattern: str | None = None) -> Any:
    """A dataclass field with ``default`` and the range its values must lie in: ``min``/``max``
    (inclusive), ``gt``/``lt`` (exclusive), ``choices``, or a regular expression ``pattern``
    (whole string). For a list, the rule applies to each item. Floats must also be finite."""
    meta = {k: v for k, v in dict(min=min, max=max, gt=gt, lt=lt, choices=choices,
                                  pattern=pattern).items() if v is not None}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def check_rule(value: Any, meta: Any, where: str) -> None:
    """Raise ConfigError unless ``value`` (or each item of a list) obeys the field's rule."""
    for v in value if isinstance(value, list) else [value]:
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"{where}: must be a finite number, got {v!r}")
        bad = None
        if "min" in meta and v < meta["min"]:
            bad = f"at least {meta['min']}"
        elif "max" in meta and v > meta["max"]:
            bad = f"at most {meta['max']}"
        elif "gt" in meta and not v > meta["gt"]:
            bad = f"above {meta['gt']}"
        elif "lt" in meta and not v < meta["lt"]:
            bad = f"below {meta['lt']}"
        elif "choices" in meta and v not in meta["choices"]:
            bad = f"one of {', '.join(meta['choices'])}"
        elif "pattern" in meta and not re.fullmatch(meta["pattern"], v):
            bad = f"of the form {meta['pattern']}"
        if bad:
            raise ConfigError(f"{where}: must be {bad}, got {v!r}")


def _field_types(obj: Any) -> dict[str, Any]:
    return typing.get_type_hints(type(obj))


def _coerce(value: Any, typ: Any, where: str) -> Any:
    """Check (and, for strings from the command line, parse) ``value`` as ``typ``."""
    origin = typing.get_origin(typ)
    if isinstance(value, str) and typ is not str:
        text = value.strip()
        if typ is bool:
            low = text.lower()
            if low in ("true", "1", "yes", "on"):
                return True
            if low in ("false", "0", "no", "off"):
                return False
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        if origin is list and not text.startswith("["):
            text = f"[{text}]"
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise ConfigError(f"{where}: cannot parse {value!r} as {_type_name(typ)}") from None
    if typ is bool:
        if isinstance(value, bool):
            return value
    elif typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif typ is str:
        if isinstance(value, str):
            return value
    elif origin is list:
        (item,) = typing.get_args(typ)
        if isinstance(value, (list, tuple)):
            return [_coerce(v, item, where) for v in value]
    raise ConfigError(f"{where}: expected {_type_name(typ)}, got {value!r}")


def _type_name(typ: Any) -> str:
    return getattr(typ, "__name__", None) or str(typ)


def sections(cfg: Any) -> list[str]:
    """Names of the fields of ``cfg`` that are themselves dataclasses (its sections)."""
    return [f.name for f in dataclasses.fields(cfg)
            if dataclasses.is_dataclass(getattr(cfg, f.name))]


def apply_dict(cfg: Any, d: dict[str, Any], source: str = "config") -> Any:
    """Apply a nested dict (``{"train": {"lr": 1e-3}}``) to the dataclass ``cfg`` in place,
    type-checked; unknown keys are refused."""
    types = _field_types(cfg)
    secs = sections(cfg)
    for key, value in d.items():
        if key not in types:
            raise ConfigError(f"{source}: unknown key {key!r} (sections: {', '.join(secs)})")
        if key in secs:
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {key!r} must be a table of settings")
            section = getattr(cfg, key)
            sec_types = _field_types(section)
            metas = {f.name: f.metadata for f in dataclasses.fields(section)}
            for k, v in value.items():
                if k not in sec_types:
                    known = ", ".join(sec_types)
                    raise ConfigError(f"{source}: unknown key {key}.{k} (known: {known})")
                where = f"{source}: {key}.{k}"
                v = _coerce(v, sec_types[k], where)
                check_rule(v, metas[k], where)
                setattr(section, k, v)
        else:
            where = f"{source}: {key}"
            value = _coerce(value, types[key], where)
            check_rule(value, {f.name: f.metadata for f in dataclasses.fields(cfg)}[key], where)
            setattr(cfg, key, value)
    return cfg


def apply_overrides(cfg: Any, overrides: list[str]) -> Any:
    """Apply ``section.key=value`` strings (``train.lr=1e-3``, ``quantizer.levels=8,5,5,5``)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected section.key=value")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        if len(parts) == 1:
            apply_dict(cfg, {parts[0]: value}, f"override {item!r}")
        elif len(parts) == 2:
            apply_dict(cfg, {parts[0]: {parts[1]: value}}, f"override {item!r}")
        else:
            raise ConfigError(f"override {item!r}: expected section.key=value")
    return cfg
