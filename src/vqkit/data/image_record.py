"""``RUN/data.json``: what an image-folder run trained on (classes, splits, store)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from vqkit.config import RunConfig
from vqkit.utils import atomic_write_text

__all__ = ["write_data_record"]


def _split_record(src: Any) -> dict[str, Any]:
    meta = src.meta
    files = meta["files"]
    return {"n_images": len(files), "n_unreadable": len(meta["unreadable"]),
            "unreadable_first": sorted(meta["unreadable"])[:20],
            "stored_size": meta["stored_size"],
            "files_sha256": hashlib.sha256("\n".join(files).encode()).hexdigest(),
            "first_files": files[:5]}


def write_data_record(path: Path, cfg: RunConfig, train: Any, val: Any) -> None:
    """Write the class names (label i is ``class_names[i]``), the split rule, and per split
    the count, the unreadable files skipped and a checksum of its file list."""
    record = {"kind": "image_folder", "root": cfg.data.root, "split_rule": train.split_rule,
              "class_names": train.class_names, "channels": train.channels,
              "image_size": cfg.data.image_size,
              "splits": {cfg.data.train_split: _split_record(train),
                         cfg.data.val_split: _split_record(val)}}
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
