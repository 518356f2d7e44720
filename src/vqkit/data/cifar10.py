"""CIFAR-10 in the official "python version" format, loaded once into uint8 tensors.

``--data`` may name a folder holding ``cifar-10-batches-py/``, that folder itself, or the
``cifar-10-python.tar.gz`` archive (or a folder holding it). With nothing given, the download
cache (``$VQKIT_DATA``, default ``~/.cache/vqkit``) is used, and filled from the official URL
when empty.
"""

from __future__ import annotations

import pickle
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from vqkit.data.download import cache_dir, download_url, extract_tar_safely, replace_path
from vqkit.errors import DataError

BATCHES_DIR = "cifar-10-batches-py"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
SPLIT_FILES = {
    "train": [f"data_batch_{i}" for i in range(1, 5)],
    "val": ["data_batch_5"],
    "test": ["test_batch"],
    "all": [f"data_batch_{i}" for i in range(1, 6)],
}
IMAGE_SHAPE = (3, 32, 32)
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
# Every file of the official cifar-10-batches-py/ folder that we read.
CIFAR10_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta")
NUM_CLASSES = 10
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck")
_DATA_HINT = ("download cifar-10-python.tar.gz yourself and pass --data PATH (a folder holding "
              "cifar-10-batches-py/, that folder, or the archive)")


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: a batch file cannot run code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        # Protocol 5 pickles of arrays (pickle.HIGHEST_PROTOCOL).
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        # Protocol <= 2 pickles written by Python 3 store ``bytes`` as
        # ``_codecs.encode(str, "latin1")``; encoding a string cannot run code.
        ("_codecs", "encode"),
        ("copy_reg", "_reconstructor"),
        ("copyreg", "_reconstructor"),
        ("__builtin__", "object"),
        ("builtins", "object"),
    }

    def find_class(self, module: str, name: str):  # noqa: D102
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one batch file: images (N, 3, 32, 32) uint8 and labels (N,) int64.

    Accepts pickles whose keys are ``str`` or ``bytes`` (Python 2 style).
    """
    path = Path(path)
    obj = _load_dict(path)
    if "data" not in obj or "labels" not in obj:
        raise DataError(f"{path}: missing 'data' or 'labels' (keys: {sorted(obj)})")
    data = np.asarray(obj["data"])
    try:
        labels = np.asarray(obj["labels"], dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as e:
        raise DataError(f"{path}: 'labels' must be integers ({e})") from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(
            f"{path}: 'data' must be uint8 of shape (N, 3072), got {data.dtype} {data.shape}")
    if labels.shape != (data.shape[0],):
        raise DataError(f"{path}: labels of shape {labels.shape} for {data.shape[0]} images")
    return data.reshape(-1, *IMAGE_SHAPE), labels


def read_label_names(path: str | Path) -> list[str]:
    """The ``label_names`` list of a ``batches.meta`` file (10 names for CIFAR-10)."""
    path = Path(path)
    names = _load_dict(path).get("label_names")
    if not isinstance(names, list | tuple):
        raise DataError(f"{path}: no 'label_names' list")
    return [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names]


def _load_dict(path: Path) -> dict:
    """Unpickle ``path`` with :class:`_ArrayUnpickler`; keys as ``str``."""
    try:
        with open(path, "rb") as f:
            obj = _ArrayUnpickler(f, encoding="latin1").load()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    except Exception as e:
        # Only allow-listed callables run, so any error here means a corrupt file, and
        # corrupt pickles fail in many ways: UnpicklingError, EOFError, KeyError (bad memo),
        # OverflowError or MemoryError (bad length), LookupError (bad codec name), ...
        raise DataError(f"{path}: not a readable CIFAR-10 batch (truncated or corrupt: {e!r})") \
            from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _batches_dir_in(root: Path) -> Path | None:
    if (root / BATCHES_DIR).is_dir():
        return root / BATCHES_DIR
    # A folder holding batches.meta or any batch file (files, not sub-folders of that name).
    if root.is_dir() and (
        (root / "batches.meta").is_file()
        or any((root / f).is_file() for files in SPLIT_FILES.values() for f in files)
    ):
        return root
    return None


def find_cifar10(root: str | Path | None = None, download: bool = True) -> Path:
    """The ``cifar-10-batches-py`` folder for ``root`` (see module doc), downloading or
    extracting into the cache when needed."""
    if root:
        root = Path(root).expanduser()
        if not root.exists():
            raise DataError(f"{root}: no such file or folder")
        if root.is_file():
            if not root.name.endswith((".tar.gz", ".tgz")):
                raise DataError(f"{root}: expected a folder or {ARCHIVE_NAME}")
            return _extract_archive(root, extract_tar_safely, cache_dir())
        found = _batches_dir_in(root)
        if found is not None:
            return found
        if (root / ARCHIVE_NAME).is_file():
            return _extract_archive(root / ARCHIVE_NAME, extract_tar_safely, cache_dir())
        raise DataError(
            f"{root}: no CIFAR-10 here (expected {BATCHES_DIR}/, its batch files, "
            f"or {ARCHIVE_NAME})")
    cached = cache_dir() / BATCHES_DIR
    if cached.is_dir():
        return cached
    if not download:
        raise DataError(f"CIFAR-10 not found in {cache_dir()}; pass --data DIR")
    return download_cifar10(cache_dir())


def _extract_archive(archive: Path, extract, dest_root: Path) -> Path:
    stat = archive.stat()
    dest = dest_root / f"extracted-{stat.st_size}-{int(stat.st_mtime)}"
    found = _batches_dir_in(dest)
    if found is None:  # extract_tar_safely renames a complete folder into place, or nothing
        extract(archive, dest)
        found = _batches_dir_in(dest)
    if found is None:
        raise DataError(f"{archive}: archive holds no {BATCHES_DIR}/ folder or batch files")
    return found


def cifar10_class_names(root: str | Path | None = None) -> list[str]:
    """The 10 class names from ``batches.meta`` (the standard names when it is absent)."""
    meta = find_cifar10(root, download=False) / "batches.meta"
    if meta.is_file():
        names = read_label_names(meta)
        if len(names) == NUM_CLASSES:
            return names
    return list(CLASS_NAMES)


def load_cifar10(
    root: str | Path | None, split: str, download: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 of one split.

    ``split`` is ``train`` (data_batch_1-4), ``val`` (data_batch_5), ``test`` (test_batch) or
    ``all`` (1-5); only that split's files are read.
    """
    if split not in SPLIT_FILES:
        raise DataError(f"unknown split {split!r} (known: {', '.join(SPLIT_FILES)})")
    folder = find_cifar10(root, download=download)
    missing = [f for f in SPLIT_FILES[split] if not (folder / f).is_file()]
    if missing:
        raise DataError(f"{folder / missing[0]}: missing file needed by split {split!r}")
    parts = [read_batch(folder / f) for f in SPLIT_FILES[split]]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return torch.from_numpy(images), torch.from_numpy(labels)


def verify_cifar10_dir(folder: str | Path, *, files: Iterable[str] = CIFAR10_FILES) -> None:
    """Check that ``folder`` is a readable ``cifar-10-batches-py`` folder.

    Checks structure, not checksums: local copies may legitimately differ from the official
    files. Each batch must be readable by :func:`vqkit.data.cifar10.read_batch` (images
    (N, 3, 32, 32) uint8, N labels in [0, 10)), and ``batches.meta`` must list 10 label names.

    Parameters
    ----------
    folder : path
        The ``cifar-10-batches-py`` folder.
    files : iterable of str
        The files to require; by default all of them (``data_batch_1`` … ``data_batch_5``,
        ``test_batch``, ``batches.meta``). Pass a subset for copies without ``test_batch``.

    Raises
    ------
    DataError
        Naming the first missing or malformed file.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    files = list(files)
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        raise DataError(f"{folder / missing[0]}: missing (needed files: {', '.join(missing)})")
    for name in files:
        path = folder / name
        if name == "batches.meta":
            n_names = len(read_label_names(path))
            if n_names != NUM_CLASSES:
                raise DataError(f"{path}: {n_names} label names, expected {NUM_CLASSES}")
            continue
        _, labels = read_batch(path)
        if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
            raise DataError(
                f"{path}: labels must lie in [0, {NUM_CLASSES}), "
                f"got {labels.min()}..{labels.max()}")


def download_cifar10(
    dest_root: str | Path, *, url: str = CIFAR10_URL, md5: str | None = CIFAR10_MD5
) -> Path:
    """Download, verify and unpack CIFAR-10 into ``dest_root``; return its batches folder.

    The archive is kept as ``dest_root/cifar-10-python.tar.gz`` (a copy with the right md5
    is reused, not fetched again) and unpacked safely into a temp folder; only a
    ``cifar-10-batches-py/`` that passes :func:`verify_cifar10_dir` is renamed into place.
    An existing ``dest_root/cifar-10-batches-py`` that passes verification is returned
    as is; one that does not is replaced.

    Parameters
    ----------
    dest_root : path
        Usually :func:`cache_dir`.
    url : str
        Where to fetch ``cifar-10-python.tar.gz``.
    md5 : str or None
        Its expected hex md5 (None: not checked).

    Returns
    -------
    Path
        ``dest_root / "cifar-10-batches-py"``.

    Raises
    ------
    DataError
        When offline (with a hint to pass ``--data``), on a checksum mismatch, or when the
        archive is unsafe, corrupt or not CIFAR-10.
    """
    dest_root = Path(dest_root).expanduser()
    folder = dest_root / BATCHES_DIR
    if folder.is_dir():
        try:
            verify_cifar10_dir(folder)
            return folder
        except DataError:
            pass  # incomplete or damaged: fetch again and replace it below
    archive = download_url(url, dest_root / ARCHIVE_NAME, md5=md5, hint=_DATA_HINT)
    staging = Path(tempfile.mkdtemp(dir=dest_root, prefix=".cifar-10-extract-", suffix=".tmp"))
    try:
        extract_tar_safely(archive, staging / "out")
        extracted = staging / "out" / BATCHES_DIR
        if not extracted.is_dir():
            raise DataError(f"{archive}: archive holds no {BATCHES_DIR}/ folder")
        try:
            verify_cifar10_dir(extracted)
        except DataError as e:
            message = str(e).replace(str(extracted), BATCHES_DIR)
            raise DataError(f"{archive}: not a valid CIFAR-10 archive: {message}") from None
        replace_path(extracted, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder
