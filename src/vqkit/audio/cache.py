"""On-disk cache of mel spectrograms in dB, one ``.npy`` per utterance, computed in parallel by
:mod:`vqkit.audio.cache_build`.

Layout of a cache folder::

    manifest.json            parameters, their hash, and one record per utterance (atomic write)
    <SPK>/<utt_id>.npy       (n_mels, T) mel power in dB, ref 1.0, floor -100 dB, float16 by default

Each entry stores the raw ``10 * log10(max(mel, 1e-10))`` of the whole utterance: no clip padding,
no normalisation (both are applied at load time, from :class:`~vqkit.config.AudioConfig`).

An entry is keyed by the hash of the frontend parameters and its source file's size and mtime,
and carries a CRC-32 of its bytes. :func:`~vqkit.audio.cache_build.build_cache` recomputes only
entries that are missing, stale (parameters or source changed) or corrupt (wrong size or
checksum), and drops entries whose source left the data. Bad audio (empty, unreadable,
non-finite, more than two channels) is reported by file and skipped; a bad file is remembered with
its key and reported again, not re-read, until it changes. Stereo files are averaged to mono.

Entries are written to a temporary file and renamed (readers never see half a file) without a
per-file fsync: the manifest, written last and fsync'ed, holds each entry's checksum, so an entry
torn by a crash fails its check and is recomputed on the next run.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vqkit.audio.mel import AMIN, frontend_params
from vqkit.config import AudioConfig
from vqkit.errors import ConfigError, DataError
from vqkit.paths import UnsafePath, resolve_inside, safe_name

__all__ = [
    "AudioSource",
    "CacheEntry",
    "MelCache",
    "cache_params",
    "open_cache",
    "MANIFEST_NAME",
]

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
# Bump when the mel computation changes in a way the parameters do not show: stales every entry.
FRONTEND_VERSION = 1
DTYPES = ("float16", "float32")


def cache_params(cfg: AudioConfig, *, dtype: str = "float16") -> dict[str, Any]:
    """Everything that determines a cache entry's values, as stored in the manifest."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return {**frontend_params(cfg), "power": 2.0, "ref": 1.0, "amin": AMIN, "dtype": dtype,
            "frontend_version": FRONTEND_VERSION}


def params_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class CacheEntry:
    """One cached utterance (a record of ``manifest.json``)."""

    id: str  # "<speaker>/<utt_id>"
    speaker: str
    utt_id: str
    path: str  # entry file, relative to the cache folder
    source: str  # audio file, relative to the data folder
    source_size: int  # bytes
    source_mtime_ns: int
    key: str  # hash of the parameters, source size and mtime
    n_frames: int
    split: str
    checksum: str  # "crc32:xxxxxxxx" of the entry file's bytes
    start_s: float = 0.0  # a segment of the source: from here (s)
    end_s: float = 0.0  # to here (s); 0: the whole source


@dataclass(frozen=True)
class AudioSource:
    """One utterance to cache: its id, speaker, audio path (relative to the data folder) and
    split. :mod:`vqkit.data.audio_sources` lists them for a data folder."""

    id: str  # "<speaker>/<utt_id>"
    speaker: str
    utt_id: str
    rel: str  # relative to the data folder, "/"-separated
    split: str
    start_s: float = 0.0  # a segment of the file: from here (s)
    end_s: float = 0.0  # to here (s); 0: to the end of the file


# ---------------------------------------------------------------------------------------------
# Entry files: where they go, checking them, removing them


def entry_rel_path(source: AudioSource) -> str:
    """``<speaker>/<utt_id>.npy``, the entry file of ``source`` inside the cache; speaker and
    utterance id must be plain names (:func:`vqkit.paths.safe_name`)."""
    where = f"utterance {source.id!r}"
    return (f"{safe_name(source.speaker, what='speaker name', source=where)}/"
            f"{safe_name(source.utt_id, what='utterance id', source=where)}.npy")


def remove_entry(root: Path, rec: dict[str, Any]) -> None:
    """Delete an entry file the cache made (``<name>/<name>.npy`` inside ``root``); a manifest
    record naming anything else is ignored, never followed."""
    parts = str(rec.get("path", "")).split("/")
    if len(parts) != 2 or not parts[1].endswith(".npy"):
        return
    with contextlib.suppress(OSError, UnsafePath):
        for part in parts:
            safe_name(part, what="cache entry", source=root)
        resolve_inside(root, "/".join(parts), what="cache entry", source=root).unlink()


def entry_ok(root: str, rec: dict[str, Any], n_mels: int, itemsize: int, verify: bool) -> bool:
    # plain str paths and os calls: this runs once per entry on every re-run
    path = os.path.join(root, rec["path"])
    try:
        if verify:
            with open(path, "rb") as f:
                data = f.read()
            if f"crc32:{zlib.crc32(data):08x}" != rec["checksum"]:
                return False
            size = len(data)
        else:
            size = os.stat(path).st_size
    except OSError:
        return False
    # npy: a header padded to a multiple of 64 bytes (format 1.0 here), then the data
    payload = n_mels * int(rec["n_frames"]) * itemsize
    return size - payload in range(64, 65536, 64) if size > payload else False


ENTRY_FIELDS = {"id": str, "speaker": str, "utt_id": str, "path": str, "source": str,
                "source_size": int, "source_mtime_ns": int, "key": str, "n_frames": int,
                "split": str, "checksum": str}


def manifest_problem(m: Any) -> str | None:
    """What is wrong with a parsed manifest (one line), or None if it has the right shape."""
    if not isinstance(m, dict) or m.get("format_version") != FORMAT_VERSION:
        return f"not a format-{FORMAT_VERSION} manifest"
    if not isinstance(m.get("params"), dict) or not isinstance(m.get("params_hash"), str):
        return "no 'params' table or 'params_hash'"
    for key in ("entries", "bad"):
        if not isinstance(m.get(key, []), list):
            return f"{key!r} is not a list"
    for i, e in enumerate(m.get("entries", [])):
        if not isinstance(e, dict):
            return f"entries[{i}] is not a table"
        for name, typ in ENTRY_FIELDS.items():
            if not isinstance(e.get(name), typ) or isinstance(e.get(name), bool):
                return (f"entries[{i}].{name}: expected {typ.__name__}, got "
                        f"{e.get(name, '(missing)')!r}")
    for i, b in enumerate(m.get("bad", [])):
        if not (isinstance(b, dict) and isinstance(b.get("id"), str)
                and isinstance(b.get("reason"), str)):
            return f"bad[{i}] lacks an 'id' or a 'reason'"
    return None


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest at ``path``, or None when it is missing, unreadable or malformed (a build
    then starts afresh)."""
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return None if manifest_problem(m) else m


# ---------------------------------------------------------------------------------------------
# Reading


class MelCache:
    """A built cache: entries by id and split, loaded as float32 dB arrays (n_mels, T)."""

    def __init__(self, root: Path, manifest: dict[str, Any]):
        self.root = root
        self.params: dict[str, Any] = manifest["params"]
        self.params_hash: str = manifest["params_hash"]
        self.data = manifest.get("data", "")
        self.entries: dict[str, CacheEntry] = {e["id"]: CacheEntry(**e)
                                               for e in manifest["entries"]}
        self.bad: list[dict[str, Any]] = manifest.get("bad", [])

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, utt_id: object) -> bool:
        return utt_id in self.entries

    @property
    def n_mels(self) -> int:
        return int(self.params["n_mels"])

    @property
    def splits(self) -> dict[str, list[str]]:
        """Split name -> ids of its utterances, sorted."""
        out: dict[str, list[str]] = {}
        for i in sorted(self.entries):
            out.setdefault(self.entries[i].split, []).append(i)
        return out

    def ids(self, split: str | None = None) -> list[str]:
        """Ids ("<speaker>/<utt_id>") of the entries, sorted; only ``split``'s when given."""
        return sorted(i for i, e in self.entries.items() if split is None or e.split == split)

    def load(self, utt_id: str, *, verify: bool = True) -> np.ndarray:
        """The mel power in dB of one utterance.

        Returns
        -------
        np.ndarray, shape=(n_mels, T), float32, in dB (ref 1.0, floor -100 dB)

        Raises
        ------
        DataError
            When the entry is missing or corrupt (re-run ``vqkit cache`` to repair it).
        """
        e = self.entries.get(utt_id)
        if e is None:
            raise DataError(f"{self.root}: no cached utterance {utt_id!r}")
        path = self.root / e.path
        try:
            data = path.read_bytes()
        except OSError as err:
            raise DataError(f"{path}: cannot read cache entry ({err.strerror or err}); "
                            f"re-run `vqkit cache`") from None
        if verify and f"crc32:{zlib.crc32(data):08x}" != e.checksum:
            raise DataError(f"{path}: corrupt cache entry (checksum mismatch); re-run "
                            f"`vqkit cache`")
        try:
            arr = np.load(io.BytesIO(data), allow_pickle=False)
        except ValueError as err:
            raise DataError(f"{path}: corrupt cache entry ({err})") from None
        if arr.shape != (self.n_mels, e.n_frames):
            raise DataError(f"{path}: shape {arr.shape}, manifest says "
                            f"{(self.n_mels, e.n_frames)}; re-run `vqkit cache`")
        return arr.astype(np.float32)

    def check_params(self, cfg: AudioConfig) -> None:
        """Raise ConfigError unless this cache was built with ``cfg``'s frontend parameters."""
        want = cache_params(cfg, dtype=self.params.get("dtype", "float16"))
        diff = [k for k in want if want[k] != self.params.get(k)]
        if diff:
            shown = ", ".join(f"{k}: cache {self.params.get(k)!r} vs config {want[k]!r}"
                              for k in diff)
            raise ConfigError(f"{self.root}: mel cache built with other parameters ({shown}); "
                              f"rebuild it with `vqkit cache`")


def open_cache(path: str | Path, cfg: AudioConfig | None = None) -> MelCache:
    """Open a cache built by :func:`build_cache`; with ``cfg``, also check its parameters.

    Raises
    ------
    DataError
        When ``path`` holds no readable manifest.
    ConfigError
        When ``cfg`` is given and its frontend parameters differ from the cache's.
    """
    root = Path(path)
    mpath = root / MANIFEST_NAME
    if not mpath.is_file():
        raise DataError(f"{root}: no {MANIFEST_NAME}; build the cache with `vqkit cache`")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataError(f"{mpath}: unreadable ({e}); rebuild the cache with `vqkit cache`") \
            from None
    problem = manifest_problem(manifest)
    if problem:
        raise DataError(f"{mpath}: malformed ({problem}); rebuild the cache with `vqkit cache`")
    cache = MelCache(root, manifest)
    if cfg is not None:
        cache.check_params(cfg)
    return cache
