"""Build the training and validation sources a config asks for."""

from __future__ import annotations

from vqkit.config import RunConfig
from vqkit.data.cifar10 import load_cifar10
from vqkit.data.images import ImageData
from vqkit.data.source import BatchSource
from vqkit.data.speech import load_speech_data
from vqkit.errors import ConfigError


def load_training_data(cfg: RunConfig) -> tuple[BatchSource, BatchSource]:
    """(train, val) data sources for ``cfg.task``."""
    if cfg.task == "image":
        train, _ = load_cifar10(cfg.data.root or None, cfg.data.train_split)
        val, _ = load_cifar10(cfg.data.root or None, cfg.data.val_split)
        return ImageData(train, "train"), ImageData(val, "val")
    if cfg.task == "speech":
        return (load_speech_data(cfg, cfg.data.train_split, training=True),
                load_speech_data(cfg, cfg.data.val_split, training=False))
    raise ConfigError(f"task: unknown {cfg.task!r} (image, speech)")
