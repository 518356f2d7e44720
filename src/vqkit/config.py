"""Typed run configuration: one dataclass per concern under :class:`RunConfig`.

A run's config is built from a named preset, then a file (JSON or TOML), then ``section.key=value``
overrides; every value is type-checked against its field and unknown keys are rejected. The
resolved config is saved in every run directory as ``config.json``.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import json
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vqkit.errors import ConfigError


@dataclass
class DataConfig:
    """Where the data is and how it is split."""

    root: str = ""  # folder, archive or cache; empty means the download cache (images)
    train_split: str = "train"
    val_split: str = "val"


@dataclass
class AudioConfig:
    """Mel frontend and speech clip handling (librosa's vocabulary; lengths in samples)."""

    sample_rate: int = 16000  # Hz
    n_fft: int = 1024  # samples
    hop_length: int = 256  # samples
    win_length: int = 0  # samples; 0 means n_fft
    n_mels: int = 128
    fmin: float = 0.0  # Hz
    fmax: float = 0.0  # Hz; 0 means sample_rate / 2
    top_db: float = 80.0  # dB below the peak kept by the per-utterance normalisation
    # "utterance_minmax": the thesis's per-utterance min-max of dB to [-1, 1] (needs min/max to
    # invert); "fixed_db": a fixed affine map of dB (ref 1.0) to about [-1, 1], invertible as is.
    normalization: str = "utterance_minmax"
    min_db: float = -100.0  # dB mapped to -1 by "fixed_db"
    max_db: float = 20.0  # dB mapped to +1 by "fixed_db"
    clip_s: float = 5.0  # every clip padded or cut to this length (s); 0 keeps whole utterances
    crop_frames: int = 0  # random training crops of this many frames; 0 trains on whole clips
    griffin_lim_iters: int = 64
    griffin_lim_momentum: float = 0.99


@dataclass
class ModelConfig:
    """Convolutional VQ-VAE; the defaults are the thesis model."""

    in_channels: int = 3
    hidden_channels: int = 128
    num_residual_layers: int = 2
    residual_channels: int = 32
    num_downsamples: int = 2  # each halves height and width: 32x32 -> 8x8 with 2
    dim: int = 64  # channels of the encoder output fed to the quantizer


@dataclass
class QuantizerConfig:
    """Which quantizer and its options; 0 disables a weighted term or a mechanism."""

    kind: str = "vq"  # "vq", "fsq" or "rvq"
    codebook_size: int = 512
    codebook_dim: int = 0  # 0 means the model's dim; smaller adds learned in/out projections
    commitment_weight: float = 0.25
    codebook_weight: float = 1.0  # unused with EMA updates
    ema_decay: float = 0.0  # 0: codebook learned by gradient (thesis); e.g. 0.99: EMA updates
    kmeans_init: bool = False  # initialise the codebook by k-means on the first training batch
    kmeans_iters: int = 10
    dead_code_threshold: float = 0.0  # restart codes whose EMA count per batch falls below this
    cosine: bool = False  # l2-normalised codes and inputs
    rotation_trick: bool = False  # rotation trick (arXiv 2410.06424) instead of straight-through
    levels: list[int] = field(default_factory=lambda: [8, 8, 8])  # FSQ levels per dimension
    num_quantizers: int = 1  # residual VQ stages
    quantizer_dropout: float = 0.0  # probability of training on a random prefix of RVQ stages
    usage_window: int = 100  # batches in the sliding window of codebook-usage statistics


@dataclass
class TrainConfig:
    """Optimisation and the training loop."""

    epochs: int = 10
    batch_size: int = 32
    lr: float = 3e-4
    optimizer: str = "adam"  # "adam" or "adamw"
    weight_decay: float = 0.0
    lr_schedule: str = "constant"  # "constant", "cosine" or "step"
    lr_step_epochs: int = 20  # "step": multiply lr by lr_gamma every this many epochs
    lr_gamma: float = 0.5
    warmup_steps: int = 0
    grad_clip: float = 0.0  # max gradient norm; 0 disables clipping
    recon_weight: float = 1.0  # weight of the reconstruction MSE in the loss
    max_steps: int = 0  # stop after this many optimizer steps in total; 0: no limit
    max_minutes: float = 0.0  # stop (with a checkpoint) after this much wall-clock; 0: no limit
    # (a "cosine" schedule then ends at the last epoch or at the end of the minutes, if sooner)
    seed: int = 0
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", "mps"
    num_threads: int = 0  # CPU threads for torch; 0: torch's default (one per core)
    channels_last: bool = True  # faster convolutions on CPU and GPU, same results up to rounding
    checkpoint_every_steps: int = 0  # also checkpoint every this many steps; 0: each epoch only
    log_every_steps: int = 20
    val_max_batches: int = 0  # cap validation batches per epoch; 0: the whole split


@dataclass
class RunConfig:
    """Everything a run needs; saved as ``config.json`` in the run directory."""

    task: str = "image"  # "image" or "speech"
    preset: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> RunConfig:
        cfg = cls()
        apply_dict(cfg, d, source)
        return cfg

    def save(self, path: str | Path) -> None:
        from vqkit.utils import atomic_write_text

        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        return cls.from_dict(read_config_file(path), str(path))


SECTIONS = ("data", "audio", "model", "quantizer", "train")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON or TOML config file into a dict."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file ({e.strerror})") from None
    try:
        return tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.') or 'JSON'}: {e}") from None


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


def apply_dict(cfg: RunConfig, d: dict[str, Any], source: str = "config") -> RunConfig:
    """Apply a nested dict (``{"train": {"lr": 1e-3}}``) to ``cfg`` in place, type-checked."""
    types = _field_types(cfg)
    for key, value in d.items():
        if key not in types:
            raise ConfigError(f"{source}: unknown key {key!r} (sections: {', '.join(SECTIONS)})")
        if key in SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {key!r} must be a table of settings")
            section = getattr(cfg, key)
            sec_types = _field_types(section)
            for k, v in value.items():
                if k not in sec_types:
                    known = ", ".join(sec_types)
                    raise ConfigError(f"{source}: unknown key {key}.{k} (known: {known})")
                setattr(section, k, _coerce(v, sec_types[k], f"{source}: {key}.{k}"))
        else:
            setattr(cfg, key, _coerce(value, types[key], f"{source}: {key}"))
    return cfg


def apply_overrides(cfg: RunConfig, overrides: list[str]) -> RunConfig:
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


# ---------------------------------------------------------------------------------------------
# Presets. "*-seed" reproduce the thesis notebooks exactly; the others are measured defaults
# (see README "Benchmarks").


def _cifar10_seed() -> RunConfig:
    return RunConfig(task="image", preset="cifar10-seed")


def _cifar10() -> RunConfig:
    cfg = RunConfig(task="image", preset="cifar10")
    q = cfg.quantizer
    q.ema_decay, q.kmeans_init, q.dead_code_threshold = 0.99, True, 1.0
    t = cfg.train
    t.lr, t.lr_schedule, t.warmup_steps = 1e-3, "cosine", 200
    return cfg


def _l2arctic_seed() -> RunConfig:
    cfg = RunConfig(task="speech", preset="l2arctic-seed")
    cfg.model.in_channels = 1
    t = cfg.train
    t.batch_size, t.lr, t.epochs, t.lr_schedule, t.lr_step_epochs, t.lr_gamma = (
        16, 2e-4, 50, "step", 20, 0.5)
    return cfg


def _l2arctic() -> RunConfig:
    cfg = _l2arctic_seed()
    cfg.preset = "l2arctic"
    a = cfg.audio
    # Crops of 32 frames (0.5 s): about the median FSDD digit, half the cost of 64 per step and
    # as good per step; evaluation takes whole utterances. fixed_db needs no stats to invert.
    a.normalization, a.clip_s, a.crop_frames = "fixed_db", 0.0, 32
    q = cfg.quantizer
    # Two residual stages of 512 codes (9000 bit/s): one stage (4500 bit/s, the thesis rate)
    # stalls at STOI ~0.88x the Griffin-Lim ceiling however long it trains (benchmarks/speech.py).
    # A restart threshold of 4 uses per batch keeps more codes alive than 1 at equal STOI.
    q.kind, q.num_quantizers = "rvq", 2
    q.ema_decay, q.kmeans_init, q.dead_code_threshold = 0.99, True, 4.0
    t = cfg.train
    # An epoch is one 0.5 s crop per utterance: many more epochs than whole-clip training.
    t.epochs, t.lr, t.lr_schedule, t.warmup_steps = 150, 1e-3, "cosine", 200
    return cfg


PRESETS = {
    "cifar10-seed": _cifar10_seed,
    "cifar10": _cifar10,
    "l2arctic-seed": _l2arctic_seed,
    "l2arctic": _l2arctic,
}

DEFAULT_PRESET = {"image": "cifar10", "speech": "l2arctic"}


def list_presets() -> list[str]:
    return sorted(PRESETS)


def get_preset(name: str) -> RunConfig:
    """A fresh copy of the named preset."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r} (known: {', '.join(list_presets())})")
    return copy.deepcopy(PRESETS[name]())


def resolve_config(
    task: str | None = None,
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: list[str] | None = None,
) -> RunConfig:
    """Preset, then file, then overrides; the preset defaults to the task's default."""
    if preset is None:
        preset = DEFAULT_PRESET.get(task or "image")
        if preset is None:
            raise ConfigError(f"unknown task {task!r} (known: image, speech)")
    cfg = get_preset(preset)
    if task is not None and cfg.task != task:
        raise ConfigError(f"preset {preset!r} is for {cfg.task!r}, not {task!r}")
    if config_file is not None:
        apply_dict(cfg, read_config_file(config_file), str(config_file))
    apply_overrides(cfg, overrides or [])
    return cfg
