"""A folder of image files as a dataset: discovery, splits, class labels, header scans and the
decoding of one file to a square uint8 array.

Files (PNG, JPEG, WebP, BMP, TIFF) are found recursively; hidden files and folders (vqkit's own
``.vqkit-cache/`` among them) are skipped. Splits come from ``train/``, ``val/``, ``test/``
folders at the top when there are any, otherwise from a seeded hash of each file's relative
path (stable when other files are added or removed). The first folder level below the split
(or below the root) is the class when every file lies in one.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vqkit.data.image_files import pixels_of
from vqkit.errors import DataError

__all__ = ["IMAGE_SUFFIXES", "FolderSplit", "ImageFolder", "decode_square", "find_image_files",
           "has_image_files", "hash_fraction", "read_header", "scan_image_folder"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
SPLIT_FOLDERS = ("train", "val", "test")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


def _walk(root: Path):
    """Relative "/"-separated paths of the image files under ``root``, sorted; hidden entries
    skipped; symbolic links to folders are not followed (no cycles)."""
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_dir = os.path.relpath(dirpath, root)
        for name in filenames:
            if name.startswith(".") or not name.lower().endswith(IMAGE_SUFFIXES):
                continue
            rel = name if rel_dir == "." else f"{rel_dir}/{name}".replace(os.sep, "/")
            out.append(rel)
    return sorted(out)


def find_image_files(root: str | Path) -> list[str]:
    """Relative paths (sorted, "/"-separated) of every image file under ``root``."""
    return _walk(Path(root))


def has_image_files(root: str | Path) -> bool:
    """True as soon as one image file is found under ``root`` (stops at the first)."""
    for _, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        if any(not n.startswith(".") and n.lower().endswith(IMAGE_SUFFIXES) for n in filenames):
            return True
    return False


def hash_fraction(rel: str, seed: int) -> float:
    """A number in [0, 1) fixed by ``(seed, rel)``: which split a file falls in."""
    digest = hashlib.sha256(f"{seed}:{rel}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


@dataclass
class FolderSplit:
    """One split: relative paths (from the dataset root), labels (-1 without classes)."""

    name: str
    files: list[str]
    labels: list[int] = field(default_factory=list)


@dataclass
class ImageFolder:
    """The files of an image folder assigned to splits, and the class names."""

    root: Path
    splits: dict[str, FolderSplit]
    class_names: list[str] | None
    split_rule: str  # "folders" or "hash(seed=S, val_fraction=F)"

    def split(self, name: str) -> FolderSplit:
        if name not in self.splits:
            raise DataError(f"{self.root}: no split {name!r} (this folder has "
                            f"{', '.join(sorted(self.splits))}; {self.split_rule})")
        return self.splits[name]


def scan_image_folder(root: str | Path, *, val_fraction: float = 0.1,
                      split_seed: int = 0) -> ImageFolder:
    """Find the files of ``root`` and assign splits and labels (no file is opened).

    Raises
    ------
    DataError
        When ``root`` is not a folder or holds no image file.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    files = find_image_files(root)
    if not files:
        raise DataError(f"{root}: no image files ({', '.join(IMAGE_SUFFIXES)}) found")
    tops = {f.split("/", 1)[0] for f in files if "/" in f}
    by_split: dict[str, list[str]] = {}
    if tops & set(SPLIT_FOLDERS):
        rule = "folders"
        for f in files:
            top = f.split("/", 1)[0]
            if "/" in f and top in SPLIT_FOLDERS:
                by_split.setdefault(top, []).append(f)
        inner = {s: [f.split("/", 1)[1] for f in fs] for s, fs in by_split.items()}
    else:
        rule = f"hash(seed={split_seed}, val_fraction={val_fraction})"
        by_split = {"train": [], "val": []}
        for f in files:
            by_split["val" if hash_fraction(f, split_seed) < val_fraction else "train"].append(f)
        inner = dict(by_split)
    classed = all("/" in f for fs in inner.values() for f in fs)
    names = sorted({f.split("/", 1)[0] for fs in inner.values() for f in fs}) if classed else None
    index = {n: i for i, n in enumerate(names or [])}
    splits = {}
    for s, fs in by_split.items():
        labels = [index[f.split("/", 1)[0]] for f in inner[s]] if names else [-1] * len(fs)
        splits[s] = FolderSplit(s, fs, labels)
    return ImageFolder(root, splits, names, rule)


def read_header(path: str | Path) -> tuple[int, int, str]:
    """(width, height, mode) of an image from its header, as displayed (EXIF rotation
    applied); the pixels are not decoded.

    Raises
    ------
    DataError
        Naming the file: empty, or not an image Pillow can identify.
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise DataError(f"{path}: empty file (0 bytes)")
        with Image.open(path) as im:
            w, h = im.size
            orientation = im.getexif().get(0x0112, 1) if hasattr(im, "getexif") else 1
            mode = im.mode
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise DataError(f"{path}: not a readable image ({' '.join(str(e).split())})") from None
    if orientation in (5, 6, 7, 8):  # rotated by 90 or 270 degrees
        w, h = h, w
    return w, h, mode


def decode_square(path: str | Path, size: int, channels: int) -> np.ndarray:
    """Decode one file to uint8 (C, size, size): EXIF rotation applied, shorter side resized to
    ``size`` (bicubic), centre-cropped to a square. A file already ``size`` on its shorter
    side is cropped only, never resampled.

    Raises
    ------
    DataError
        Naming the file when it is empty, truncated or not an image.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            if im.format == "JPEG":  # decode at a reduced scale when much larger than needed
                im.draft("RGB" if channels == 3 else "L", (size, size))
            im.load()
            im = ImageOps.exif_transpose(im)
            w, h = im.size
            if min(w, h) != size:
                scale = size / min(w, h)
                new = (max(size, round(w * scale)), max(size, round(h * scale)))
                if im.mode in ("I;16", "I;16B", "I;16L"):
                    im = im.convert("I")
                im = im.resize(new, Image.Resampling.BICUBIC, reducing_gap=3.0)
                w, h = im.size
            left, top = (w - size) // 2, (h - size) // 2
            im = im.crop((left, top, left + size, top + size))
            arr = pixels_of(im, channels)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise DataError(f"{path}: not a readable image ({' '.join(str(e).split())})") from None
    return np.ascontiguousarray(arr.transpose(2, 0, 1))
