"""The code file format: a trained model's discrete codes for a set of items, on disk.

A code file is an ``.npz`` archive (read with ``allow_pickle=False``) of three arrays:

``codes``
    Every item's codes, flattened (row-major) and concatenated, in the smallest unsigned
    integer dtype that holds ``codebook_size - 1`` (uint8 up to 256 codes, uint16 up to 65,536).
``shapes``
    int64, shape=(N, ndim): each item's code shape, (H', W') or (H', W', K) for K residual
    stages; for speech H' runs over mel bands and W' over frames.
``meta``
    A JSON string: ``format_version``, ``fingerprint`` (of the model that made the codes, see
    :func:`vqkit.codes.fingerprint.model_fingerprint`), ``task``, ``checkpoint``,
    ``codebook_size``, ``num_quantizers``, ``bits_per_code``, ``downsampling``, ``names`` (one
    per item, unique file names without suffix) and ``items`` (per item: its source, and the
    height/width or the sample rate, length and pipeline side information the decoder needs).
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vqkit.errors import DataError
from vqkit.paths import safe_name
from vqkit.rates import bits_per_pixel, bits_per_second
from vqkit.utils import atomic_write_bytes

__all__ = ["FORMAT_VERSION", "CodeFile", "code_dtype", "load_codes", "make_header",
           "save_codes"]

FORMAT_VERSION = 1


def code_dtype(codebook_size: int) -> np.dtype:
    """The smallest unsigned integer dtype holding codes ``0 .. codebook_size - 1``."""
    for dt in (np.uint8, np.uint16, np.uint32):
        if codebook_size - 1 <= np.iinfo(dt).max:
            return np.dtype(dt)
    return np.dtype(np.uint64)


@dataclass
class CodeFile:
    """Codes of N items and what is needed to decode them.

    Attributes
    ----------
    codes : list of np.ndarray
        One per item, shape (H', W') or (H', W', K), unsigned integers < ``codebook_size``.
    names : list of str
        One per item: the output file name, without suffix.
    fingerprint : str
        sha256 (hex) of the model that made the codes.
    meta : dict
        The rest of the header (see the module docstring).
    path : Path or None
        Where it was saved or read from.
    """

    codes: list[np.ndarray]
    names: list[str]
    fingerprint: str
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def task(self) -> str:
        return str(self.meta.get("task", "image"))

    @property
    def bits_per_code(self) -> float:
        return float(self.meta["bits_per_code"])

    def positions(self, i: int) -> int:
        """Code positions of item ``i`` (residual stages not counted)."""
        shape = self.codes[i].shape
        nq = int(self.meta.get("num_quantizers", 1))
        return math.prod(shape[:-1]) if nq > 1 else math.prod(shape)

    def rate(self, i: int | None = None) -> float:
        """Bits per pixel (images) or bits per second (speech) of item ``i``, or of all items
        together (total bits over total pixels or total seconds) when ``i`` is None."""
        idx = range(len(self.codes)) if i is None else [i]
        positions = sum(self.positions(j) for j in idx)
        items = self.meta["items"]
        if self.task == "image":
            pixels = sum(items[j]["height"] * items[j]["width"] for j in idx)
            return bits_per_pixel(positions, self.bits_per_code, pixels)
        seconds = sum(items[j]["duration_s"] for j in idx)
        return bits_per_second(positions, self.bits_per_code, seconds)

    @property
    def rate_unit(self) -> str:
        return "bits/pixel" if self.task == "image" else "bits/s"


def make_header(meta: dict[str, Any], fingerprint: str, names: Sequence[str]) -> dict[str, Any]:
    """The ``meta`` JSON of a code file: ``meta`` plus the format version, the model's
    fingerprint and the item names."""
    return {**meta, "format_version": FORMAT_VERSION, "fingerprint": fingerprint,
            "names": list(names)}


def save_codes(
    path: str | Path,
    codes_list: Sequence[np.ndarray | torch.Tensor],
    names: Sequence[str],
    model_fingerprint: str,
    meta: dict[str, Any],
) -> CodeFile:
    """Write a code file (atomically) and return it.

    Parameters
    ----------
    path : str or Path
        Written as given (no ``.npz`` is appended).
    codes_list : sequence of arrays, each shape (H', W') or (H', W', K), integers
    names : sequence of str, one per item
    model_fingerprint : str
    meta : dict
        Must hold ``codebook_size``; JSON-serialisable.
    """
    if not codes_list:
        raise ValueError("no codes to save")
    if len(codes_list) != len(names):
        raise ValueError(f"{len(codes_list)} code arrays but {len(names)} names")
    size = int(meta["codebook_size"])
    dt = code_dtype(size)
    arrays = [c.cpu().numpy() if isinstance(c, torch.Tensor) else np.asarray(c)
              for c in codes_list]
    for a in arrays:
        if a.size and (a.min() < 0 or a.max() >= size):
            raise ValueError(f"codes outside [0, {size})")
    ndim = {a.ndim for a in arrays}
    if len(ndim) > 1:
        raise ValueError(f"code arrays of different ranks {sorted(ndim)}")
    shapes = np.array([a.shape for a in arrays], dtype=np.int64).reshape(len(arrays), -1)
    flat = np.concatenate([a.reshape(-1) for a in arrays]).astype(dt)
    header = make_header(meta, model_fingerprint, names)
    buf = io.BytesIO()
    np.savez_compressed(buf, codes=flat, shapes=shapes, meta=np.array(json.dumps(header)))
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return CodeFile([a.astype(dt) for a in arrays], list(names), model_fingerprint, header, path)


def load_codes(path: str | Path) -> CodeFile:
    """Read a code file written by :func:`save_codes`.

    Raises
    ------
    DataError
        Naming the file, when it is missing, not a code file, of another format version, or
        inconsistent (shapes that do not add up, codes out of range).
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("codes", "shapes", "meta") if k not in z.files]
            if missing:
                raise DataError(f"{path}: not a vqkit code file (no {missing[0]!r} array)")
            flat, shapes, meta_text = z["codes"], z["shapes"], str(z["meta"])
    except FileNotFoundError:
        raise DataError(f"{path}: no such code file") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path}: not a readable code file ({e})") from None
    try:
        meta = json.loads(meta_text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: corrupt header ({e})") from None
    problem = header_problem(meta, shapes)
    if problem:
        raise DataError(f"{path}: corrupt header ({problem})")
    names = meta["names"]
    for name in names:
        safe_name(name, what="item name", source=path)  # decoding writes <name>.png/.wav
    sizes = [math.prod(int(d) for d in s) for s in shapes]
    if sum(sizes) != flat.size:
        raise DataError(f"{path}: truncated or corrupt ({flat.size} codes, shapes need "
                        f"{sum(sizes)})")
    size = meta["codebook_size"]
    if flat.size and (flat.dtype.kind != "u" or int(flat.max()) >= size):
        raise DataError(f"{path}: codes outside [0, {size})")
    offsets = np.cumsum([0, *sizes])
    codes = [flat[offsets[i]:offsets[i + 1]].reshape(tuple(int(d) for d in s))
             for i, s in enumerate(shapes)]
    return CodeFile(codes, list(names), str(meta.get("fingerprint", "")), meta, path)


def _int(v: Any, lo: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= lo


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def header_problem(meta: Any, shapes: np.ndarray) -> str | None:
    """What is wrong with a code file's header (one phrase), or None: every field the decoder
    reads is present, typed and consistent with the ``shapes`` array."""
    if not isinstance(meta, dict):
        return "not a JSON object"
    if meta.get("format_version") != FORMAT_VERSION:
        return f"code file format {meta.get('format_version')!r}, this vqkit reads {FORMAT_VERSION}"
    if meta.get("task") not in ("image", "speech"):
        return f"task {meta.get('task')!r}"
    if not _int(meta.get("codebook_size"), 2) or not _int(meta.get("num_quantizers"), 1):
        return "codebook_size or num_quantizers missing or out of range"
    names, items = meta.get("names"), meta.get("items")
    if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        return "'names' is not a list of strings"
    if len(set(names)) != len(names):
        return "two items share a name"
    if not isinstance(items, list) or len(items) != len(names):
        return f"{len(names)} names but {len(items) if isinstance(items, list) else 'no'} items"
    if shapes.ndim != 2 or len(shapes) != len(names) or shapes.dtype.kind not in "iu":
        return f"{len(names)} names, shapes {shapes.shape}"
    if len(names) == 0:
        return "no items"
    if (shapes < 1).any():
        return "an item has an empty code shape"
    if meta["num_quantizers"] > 1 and (shapes[:, -1] > meta["num_quantizers"]).any():
        return f"more stages than the {meta['num_quantizers']} the model has"
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            return f"items[{i}] is not an object"
        if meta["task"] == "image" and not (_int(item.get("height"), 1)
                                             and _int(item.get("width"), 1)):
            return f"items[{i}] lacks a height or width"
        if meta["task"] == "speech":
            info = item.get("info")
            if not (_int(item.get("sample_rate"), 1) and _number(item.get("duration_s"))
                    and isinstance(info, dict) and _int(info.get("n_frames"), 1)
                    and _int(info.get("n_samples"), 1)):
                return f"items[{i}] lacks its sample rate, duration or frame counts"
    return None
