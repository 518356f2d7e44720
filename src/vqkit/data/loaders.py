"""Build the training and validation sources a config asks for."""

from __future__ import annotations

from pathlib import Path

from vqkit.config import DataConfig, RunConfig
from vqkit.data.cifar10 import ARCHIVE_NAME, _batches_dir_in, cifar10_class_names, load_cifar10
from vqkit.data.image_folder import has_image_files, scan_image_folder
from vqkit.data.image_store import FolderImages, open_split_store
from vqkit.data.images import ImageData
from vqkit.data.source import BatchSource
from vqkit.data.speech import load_speech_data
from vqkit.distributed import barrier, get_rank, get_world_size
from vqkit.errors import ConfigError

__all__ = ["is_image_folder", "load_image_split", "load_training_data"]


def is_image_folder(root: str | Path | None) -> bool:
    """True for a folder of image files that holds no CIFAR-10 batches or archive (those win)."""
    if not root:
        return False
    root = Path(root).expanduser()
    return (root.is_dir() and _batches_dir_in(root) is None
            and not (root / ARCHIVE_NAME).is_file() and has_image_files(root))


def load_image_split(root: str | None, split: str, *, download: bool = True,
                     data: DataConfig | None = None, channels: int | None = None,
                     train: bool = False) -> ImageData | FolderImages:
    """One split of an image dataset, with its labels and class names: an image folder (packed
    once into a memory-mapped store, see :mod:`vqkit.data.image_store`) at ``data.image_size``
    with ``channels`` (None: from the files), or CIFAR-10 (a folder holding
    ``cifar-10-batches-py/``, that folder, or the archive; None: the download cache)."""
    if is_image_folder(root):
        d = data or DataConfig()
        folder = scan_image_folder(root, val_fraction=d.val_fraction, split_seed=d.split_seed)
        folder.split(split)  # a clear error for a split the folder lacks
        # Under torchrun rank 0 packs while the others wait, then they open its store.
        if get_world_size() > 1 and get_rank() != 0:
            barrier()
        store, meta = open_split_store(folder, split, image_size=d.image_size,
                                       channels=channels, workers=d.workers,
                                       report=get_rank() == 0)
        if get_world_size() > 1 and get_rank() == 0:
            barrier()
        return FolderImages(store, meta, split, image_size=d.image_size, train=train,
                           hflip=d.hflip, class_names=folder.class_names,
                            split_rule=folder.split_rule)
    images, labels = load_cifar10(root, split, download=download)
    return ImageData(images, split, labels=labels, class_names=cifar10_class_names(root))


def load_training_data(cfg: RunConfig) -> tuple[BatchSource, BatchSource]:
    """(train, val) data sources for ``cfg.task``; an image folder's validation split takes
    the channels of its training split."""
    if cfg.task == "image":
        root = cfg.data.root or None
        tr = load_image_split(root, cfg.data.train_split, data=cfg.data, train=True)
        return tr, load_image_split(root, cfg.data.val_split, data=cfg.data,
                                    channels=getattr(tr, "channels", None))
    if cfg.task == "speech":
        return (load_speech_data(cfg, cfg.data.train_split, training=True),
                load_speech_data(cfg, cfg.data.val_split, training=False))
    raise ConfigError(f"task: unknown {cfg.task!r} (image, speech)")
