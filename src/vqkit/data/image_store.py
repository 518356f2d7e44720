"""An image folder's split packed once into a uint8 memory-mapped store, and batches from it.

Why a packed store and not decoding workers per step (measured on the 2-core machine, see the
issue-10 note): decoding costs 0.10 ms per 32x32 PNG, 0.20 ms per 64x64 PNG and 0.33 ms per
256-pixel JPEG resized to 64, against 0.0007 ms to gather an image from the memory map and
about 3 ms of training per 32x32 image. Per-step workers would redo that decoding every epoch
on cores the training needs (there are two), and make exact resume depend on worker timing; the
store decodes once, in parallel, costs no RAM beyond the page cache, and is indexed like the
in-memory tensor.

The store is ``<cache>/<split>-<fingerprint>.npy`` (N, C, S, S) beside a ``.json`` written last
(its presence says the store is complete; both are renamed into place from temp files). The
fingerprint covers the split's relative paths, sizes and modification times and the settings,
so a changed folder gets a new store and the stale one (a file vqkit made) is removed. The
cache folder is ``DATA/.vqkit-cache/``, or ``$VQKIT_DATA/image-stores/<hash of DATA>`` when
DATA is not writable. S is ``image_size`` when every image's shorter side already is (CIFAR-10
PNGs then train on exactly the pixels of the pickles), else ``image_size * 9 // 8`` for the
random training crop.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from vqkit.data.download import cache_dir
from vqkit.data.image_folder import GREY_MODES, ImageFolder, decode_square, read_header
from vqkit.data.images import images_to_model_input
from vqkit.data.source import BatchSource
from vqkit.errors import DataError
from vqkit.paths import writable_folder
from vqkit.utils import atomic_write_text, run_parallel

__all__ = ["FolderImages", "open_split_store", "read_headers", "store_folder"]

STORE_VERSION = 1
CACHE_NAME = ".vqkit-cache"
N_NAMED = 5  # unreadable files named in the one message


def store_folder(root: Path) -> Path:
    """Where the stores of ``root`` go: inside it, else (read-only data) under ``$VQKIT_DATA``,
    by the rule the mel cache follows (:func:`vqkit.paths.writable_folder`)."""
    inside = root / CACHE_NAME
    if writable_folder(root):
        try:
            inside.mkdir(exist_ok=True)
            if writable_folder(inside):
                return inside
        except OSError:
            pass
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    out = cache_dir() / "image-stores" / key
    out.mkdir(parents=True, exist_ok=True)
    return out


def _fingerprint(folder: ImageFolder, split: str, settings: dict) -> str:
    h = hashlib.sha256(json.dumps({"v": STORE_VERSION, **settings}, sort_keys=True).encode())
    for rel in folder.split(split).files:
        st = (folder.root / rel).stat()
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def _headers(args: tuple[str, list[str]]) -> list[tuple[int, int, str] | str]:
    root, rels = args
    out: list[tuple[int, int, str] | str] = []
    for rel in rels:
        try:
            out.append(read_header(Path(root) / rel))
        except DataError as e:
            out.append(str(e).split(": ", 1)[-1])
    return out


def _decode_rows(args: tuple[str, str, list[tuple[int, str]], int, int, tuple]) -> list:
    """Decode files into their rows of the store; the reasons for the files that fail."""
    store, root, rows, size, channels, shape = args
    mm = np.lib.format.open_memmap(store, mode="r+")
    bad = []
    for row, rel in rows:
        try:
            mm[row] = decode_square(Path(root) / rel, size, channels)
        except DataError as e:
            bad.append((row, str(e).split(": ", 1)[-1]))
    mm.flush()
    del mm
    return bad


def _chunks(items: list, workers: int) -> list[list]:
    size = max(1, min(512, len(items) // max(1, workers * 4)))
    return [items[i:i + size] for i in range(0, len(items), size)]


def read_headers(root: Path, rels: list[str], workers: int) -> list[tuple[int, int, str] | str]:
    """(width, height, mode) of each file, or the reason it is unreadable; in parallel."""
    tasks = [(str(root), c) for c in _chunks(rels, workers)]
    return [h for part in run_parallel(_headers, tasks, workers) for h in part]


def _pack(folder: ImageFolder, split: str, image_size: int, channels: int | None,
          workers: int, npy: Path, meta_path: Path) -> dict:
    files = folder.split(split).files
    heads = read_headers(folder.root, files, workers)
    ok = [i for i, h in enumerate(heads) if not isinstance(h, str)]
    bad = {files[i]: heads[i] for i in range(len(files)) if isinstance(heads[i], str)}
    if channels is None:  # grey only when every readable image is grey
        channels = 1 if ok and all(heads[i][2] in GREY_MODES for i in ok) else 3
    same = ok and all(min(heads[i][0], heads[i][1]) == image_size for i in ok)
    size = image_size if same else image_size * 9 // 8
    shape = (len(ok), channels, size, size)
    fd, tmp = tempfile.mkstemp(dir=npy.parent, prefix=".tmp-", suffix=".npy")
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes it private; a store is as readable as its data
    try:
        np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape).flush()
        tasks = [(tmp, str(folder.root), c, size, channels, shape)
                 for c in _chunks(list(enumerate(files[i] for i in ok)), workers)]
        failed = dict(p for part in run_parallel(_decode_rows, tasks, workers) for p in part)
        os.replace(tmp, npy)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    bad.update({files[ok[r]]: why for r, why in failed.items()})
    keep = [r for r in range(len(ok)) if r not in failed]
    labels = folder.split(split).labels
    meta = {"version": STORE_VERSION, "split": split, "n": len(keep), "shape": list(shape),
            "image_size": image_size, "channels": channels, "stored_size": size,
            "rows": keep, "labels": [labels[ok[r]] for r in keep],
            "files": [files[ok[r]] for r in keep], "unreadable": bad}
    atomic_write_text(meta_path, json.dumps(meta) + "\n")
    return meta


def open_split_store(folder: ImageFolder, split: str, *, image_size: int,
                     channels: int | None = None, workers: int = 0,
                     report: bool = True) -> tuple[np.ndarray, dict]:
    """The store of one split (packed now when missing or stale) as a read-only memmap
    (N, C, S, S) and its metadata; unreadable files are skipped and, when packed now, named in
    one line on stderr.

    Raises
    ------
    DataError
        When no image of the split can be read.
    """
    workers = workers or os.cpu_count() or 1
    cache = store_folder(folder.root)
    # The channels are not in the key: a store packed with the channels its files give is
    # reused by a caller that asks for those channels (evaluation asks for the model's).
    key = _fingerprint(folder, split, {"split": split, "image_size": image_size})
    npy, meta_path = cache / f"{split}-{key}.npy", cache / f"{split}-{key}.json"
    meta = None
    if meta_path.is_file() and npy.is_file():
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError):
            meta = None
    if (meta is None or meta.get("version") != STORE_VERSION
            or (channels is not None and meta.get("channels") != channels)):
        meta = _pack(folder, split, image_size, channels, workers, npy, meta_path)
        for old in cache.glob(f"{split}-*.*"):  # stale stores of this split (ours)
            if old.suffix in (".npy", ".json") and old.stem != f"{split}-{key}":
                old.unlink(missing_ok=True)
        if report and meta["unreadable"]:
            names = list(meta["unreadable"].items())[:N_NAMED]
            print(f"vqkit: skipped {len(meta['unreadable'])} unreadable image(s) of split "
                  f"{split!r} in {folder.root}: " + "; ".join(f"{n} ({w})" for n, w in names)
                  + (" ..." if len(meta["unreadable"]) > N_NAMED else ""), file=sys.stderr)
    if meta["n"] == 0:
        raise DataError(f"{folder.root}: no readable images in split {split!r} "
                        f"({len(meta['unreadable'])} unreadable)")
    store = np.load(npy, mmap_mode="r")
    if list(store.shape) != meta["shape"]:
        raise DataError(f"{npy}: store of shape {store.shape}, its metadata says "
                        f"{meta['shape']}; delete {cache} to rebuild it")
    return store, meta


class FolderImages(BatchSource):
    """A split of an image folder, batched from its memory-mapped store like
    :class:`~vqkit.data.images.ImageData` from its tensor: the same epoch order for the same
    ``(seed, epoch)``, then, for training, a random ``image_size`` crop (and a horizontal flip
    with ``hflip``) per image drawn from the same generator; a centre crop otherwise.
    """

    def __init__(self, store: np.ndarray, meta: dict, name: str, *, image_size: int,
                 train: bool = False, hflip: bool = False,
                 class_names: list[str] | None = None, split_rule: str = "",
                 limit: int = 0) -> None:
        self.store, self.meta, self.name = store, meta, name
        self.split_rule = split_rule  # how files were assigned to splits
        self.rows = np.asarray(meta["rows"], dtype=np.int64)[:limit or None]
        self.image_size, self.train, self.hflip = image_size, train, hflip
        self.channels = int(store.shape[1])
        self.class_names = class_names
        lab = np.asarray(meta["labels"], dtype=np.int64)[:len(self.rows)]
        self.labels = torch.from_numpy(lab) if class_names else None

    def __len__(self) -> int:
        return len(self.rows)

    def to(self, device: torch.device) -> FolderImages:
        """Stays on disk: batches are moved to the device by the task."""
        return self

    def head(self, n: int) -> FolderImages:
        """The first ``n`` images only."""
        return FolderImages(self.store, self.meta, self.name, image_size=self.image_size,
                            train=self.train, hflip=self.hflip, class_names=self.class_names,
                            split_rule=self.split_rule, limit=n)

    def epoch_order(self, epoch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor | None,
                                                          torch.Tensor | None]:
        """(permutation, crop offsets (N, 2) or None, flips (N,) or None) for an epoch."""
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        order = torch.randperm(len(self), generator=g)
        room = self.store.shape[-1] - self.image_size
        offsets = torch.randint(0, room + 1, (len(self), 2), generator=g) if room else None
        flips = torch.rand(len(self), generator=g) < 0.5 if self.hflip else None
        return order, offsets, flips

    def batches(self, batch_size: int, *, epoch: int | None = None, seed: int = 0,
                start: int = 0, rank: int = 0, world_size: int = 1) -> Iterator[torch.Tensor]:
        """Float batches (B, C, image_size, image_size) in [-0.5, 0.5] (see the class doc)."""
        n, s, size = len(self), self.store.shape[-1], self.image_size
        order = offsets = flips = None
        if epoch is not None:
            order, offsets, flips = self.epoch_order(epoch, seed)
            if not self.train:
                offsets = flips = None
        centre = (s - size) // 2
        for b in range(start, self.num_batches(batch_size)):
            lo, hi = b * batch_size, min((b + 1) * batch_size, n)
            pos = torch.arange(lo, hi)[rank::world_size]
            idx = pos if order is None else order[pos]
            x = torch.from_numpy(self.store[self.rows[idx.numpy()]])
            if s != size:
                if offsets is None or len(pos) == 0:
                    x = x[:, :, centre:centre + size, centre:centre + size]
                else:
                    x = torch.stack([x[i, :, oy:oy + size, ox:ox + size] for i, (oy, ox)
                                     in enumerate(offsets[pos].tolist())])
            if flips is not None:
                f = flips[pos]
                x[f] = x[f].flip(-1)
            yield images_to_model_input(x.contiguous())
