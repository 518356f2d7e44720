"""Download cache, checksum-verified downloads and safe archive extraction."""

from __future__ import annotations

import os
from pathlib import Path

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"


def cache_dir() -> Path:
    """``$VQKIT_DATA`` or ``~/.cache/vqkit``."""
    return Path(os.environ.get("VQKIT_DATA") or Path.home() / ".cache" / "vqkit").expanduser()


def extract_tar_safely(archive: Path, dest: Path) -> None:  # filled in by the download module
    raise NotImplementedError


def download_cifar10(dest_root: Path) -> Path:  # filled in by the download module
    raise NotImplementedError
