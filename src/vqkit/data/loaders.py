"""Build the training and validation sources a config asks for."""

from __future__ import annotations

from vqkit.config import RunConfig
from vqkit.data.cifar10 import cifar10_class_names, load_cifar10
from vqkit.data.images import ImageData
from vqkit.data.source import BatchSource
from vqkit.data.speech import load_speech_data
from vqkit.errors import ConfigError


def load_image_split(root: str | None, split: str, *, download: bool = True) -> ImageData:
    """One split of an image dataset, with its labels and class names: CIFAR-10 (a folder
    holding ``cifar-10-batches-py/``, that folder, or the archive; None: the download cache)."""
    images, labels = load_cifar10(root, split, download=download)
    return ImageData(images, split, labels=labels, class_names=cifar10_class_names(root))


def load_training_data(cfg: RunConfig) -> tuple[BatchSource, BatchSource]:
    """(train, val) data sources for ``cfg.task``."""
    if cfg.task == "image":
        root = cfg.data.root or None
        return (load_image_split(root, cfg.data.train_split),
                load_image_split(root, cfg.data.val_split))
    if cfg.task == "speech":
        return (load_speech_data(cfg, cfg.data.train_split, training=True),
                load_speech_data(cfg, cfg.data.val_split, training=False))
    raise ConfigError(f"task: unknown {cfg.task!r} (image, speech)")
