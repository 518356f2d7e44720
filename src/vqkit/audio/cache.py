"""On-disk cache of mel spectrograms in dB, one ``.npy`` per utterance, computed in parallel.

Layout of a cache folder::

    manifest.json            parameters, their hash, and one record per utterance (atomic write)
    <SPK>/<utt_id>.npy       (n_mels, T) mel power in dB, ref 1.0, floor -100 dB, float16 by default

Each entry stores the raw ``10 * log10(max(mel, 1e-10))`` of the whole utterance: no clip padding,
no normalisation (both are applied at load time, from :class:`~vqkit.config.AudioConfig`).

An entry is keyed by the hash of the frontend parameters and its source file's size and mtime,
and carries a CRC-32 of its bytes. :func:`build_cache` recomputes only entries that are missing,
stale (parameters or source changed) or corrupt (wrong size or checksum), and drops entries whose
source left the data. Bad audio (empty, unreadable, non-finite, more than two channels) is
reported by file and skipped; a bad file is remembered with its key and reported again, not
re-read, until it changes. Stereo files are averaged to mono.

Entries are written to a temporary file and renamed (readers never see half a file) without a
per-file fsync: the manifest, written last and fsync'ed, holds each entry's checksum, so an entry
torn by a crash fails its check and is recomputed on the next run.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import io
import json
import multiprocessing
import os
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vqkit.audio.mel import AMIN, frontend_params, load_audio, melspectrogram, power_to_db
from vqkit.config import AudioConfig
from vqkit.errors import ConfigError, DataError
from vqkit.utils import atomic_write_text

__all__ = [
    "AudioSource",
    "CacheEntry",
    "CacheResult",
    "MelCache",
    "build_cache",
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


def _hash(obj: Any) -> str:
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


@dataclass
class CacheResult:
    """What :func:`build_cache` did."""

    out: Path
    manifest_path: Path
    computed: int = 0
    reused: int = 0
    skipped: int = 0  # bad files, new or remembered
    removed: int = 0  # entries whose source is no longer listed
    bad: list[tuple[str, str]] = field(default_factory=list)  # (source path, reason)
    params_hash: str = ""
    workers: int = 1
    seconds: float = 0.0

    @property
    def n_entries(self) -> int:
        return self.computed + self.reused


@dataclass(frozen=True)
class AudioSource:
    """One utterance to cache: its id, speaker, audio path (relative to the data folder) and
    split. :mod:`vqkit.data.audio_sources` lists them for a data folder."""

    id: str  # "<speaker>/<utt_id>"
    speaker: str
    utt_id: str
    rel: str  # relative to the data folder, "/"-separated
    split: str


# ---------------------------------------------------------------------------------------------
# Computing entries (runs in worker processes)


def _init_worker() -> None:
    # One thread per process: the workers are the parallelism, and torch's thread pool must not
    # be used in a forked child (as torch's DataLoader workers do).
    import torch

    torch.set_num_threads(1)


def _compute_one(src: str, dst: str, params: dict[str, Any]) -> tuple[int, str] | str:
    """Compute and write one entry: (n_frames, checksum), or the reason the audio is bad."""
    try:
        y = load_audio(src, sample_rate=params["sample_rate"])
        mel = melspectrogram(y, sample_rate=params["sample_rate"], n_fft=params["n_fft"],
                             hop_length=params["hop_length"], win_length=params["win_length"],
                             n_mels=params["n_mels"], fmin=params["fmin"], fmax=params["fmax"],
                             power=params["power"])
        db = power_to_db(mel, ref=params["ref"], amin=params["amin"]).astype(params["dtype"])
    except DataError as e:
        msg = str(e)  # "<src>: what is wrong"; the file is reported beside the reason
        return msg[len(src) + 2:] if msg.startswith(f"{src}: ") else msg
    except Exception as e:  # noqa: BLE001 - a decoder or resampler failure: report, go on
        return f"{type(e).__name__}: {e}"
    buf = io.BytesIO()
    np.save(buf, db, allow_pickle=False)
    data = buf.getvalue()
    dst_path = Path(dst)
    dst_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst_path.parent, prefix=f".{dst_path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, dst_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return db.shape[1], f"crc32:{zlib.crc32(data):08x}"


def _compute_chunk(tasks: list[tuple[str, str]], params: dict[str, Any]
                   ) -> list[tuple[int, str] | str]:
    return [_compute_one(src, dst, params) for src, dst in tasks]


# ---------------------------------------------------------------------------------------------
# Checking entries


def _entry_ok(root: str, rec: dict[str, Any], n_mels: int, itemsize: int, verify: bool) -> bool:
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


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(m, dict) or m.get("format_version") != FORMAT_VERSION:
        return None
    return m


# ---------------------------------------------------------------------------------------------
# Building


def build_cache(
    sources: list[AudioSource],
    data: str | Path,
    out: str | Path,
    cfg: AudioConfig,
    *,
    workers: int | None = None,
    dtype: str = "float16",
    verify: bool = True,
    progress: bool = True,
) -> CacheResult:
    """Compute the mel spectrogram (dB) of every source into the cache ``out``.

    Parameters
    ----------
    sources : list of AudioSource
        The utterances (:func:`vqkit.data.audio_sources.list_audio_sources`); ids must be unique.
    data : str or Path
        The folder the sources' paths are relative to.
    out : str or Path
        Cache folder, created if needed.
    cfg : AudioConfig
        Frontend parameters (sample_rate, n_fft, hop_length, win_length, n_mels, fmin, fmax);
        the other fields (normalisation, clip length, ...) apply at load time.
    workers : int > 0 or None
        Worker processes; None means ``os.cpu_count()``; 1 computes in this process.
    dtype : "float16" or "float32"
        Storage type of the dB values (float16: 0.06 dB resolution at 100 dB, half the size).
    verify : bool
        Check every reused entry's CRC-32 (reads each file); False checks file sizes only.
    progress : bool
        Show a tqdm progress bar on stderr.

    Returns
    -------
    CacheResult
        Counts of entries computed, reused, skipped (bad audio) and removed, and the bad files
        with their reasons.
    """
    t0 = time.perf_counter()
    data, out = Path(data), Path(out)
    params = cache_params(cfg, dtype=dtype)
    phash = _hash(params)
    manifest_path = out / MANIFEST_NAME
    old = _read_manifest(manifest_path) or {}
    old_entries = {e["id"]: e for e in old.get("entries", [])}
    old_bad = {b["id"]: b for b in old.get("bad", [])}
    itemsize = np.dtype(dtype).itemsize
    workers = max(1, int(workers or os.cpu_count() or 1))
    result = CacheResult(out=out, manifest_path=manifest_path, params_hash=phash, workers=workers)

    entries: dict[str, dict[str, Any]] = {}
    bad: dict[str, dict[str, Any]] = {}
    todo: list[tuple[AudioSource, dict[str, Any]]] = []
    data_s, out_s = str(data), str(out)
    for s in sources:
        base = {"id": s.id, "speaker": s.speaker, "utt_id": s.utt_id, "source": s.rel}
        try:
            st = os.stat(os.path.join(data_s, s.rel))
        except OSError:
            bad[s.id] = {**base, "reason": "missing audio file"}
            continue
        key = hashlib.sha256(f"{phash}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]
        rec = {**base, "path": f"{s.speaker}/{s.utt_id}.npy", "source_size": st.st_size,
               "source_mtime_ns": st.st_mtime_ns, "key": key, "split": s.split}
        prev = old_entries.get(s.id)
        if (prev is not None and prev.get("key") == rec["key"] and prev.get("path") == rec["path"]
                and _entry_ok(out_s, prev, params["n_mels"], itemsize, verify)):
            entries[s.id] = {**rec, "n_frames": prev["n_frames"], "checksum": prev["checksum"]}
            result.reused += 1
        elif s.id in old_bad and old_bad[s.id].get("key") == rec["key"]:
            bad[s.id] = {**rec, "reason": old_bad[s.id]["reason"]}
        else:
            todo.append((s, rec))

    try:
        for (s, rec), res in _run(todo, data, out, params, workers, progress):
            if isinstance(res, str):
                bad[s.id] = {**rec, "reason": res}
                if s.id in old_entries:  # was good, now bad: drop the outdated entry
                    (out / old_entries[s.id]["path"]).unlink(missing_ok=True)
            else:
                entries[s.id] = {**rec, "n_frames": int(res[0]), "checksum": res[1]}
                result.computed += 1
    finally:
        # Remove entries whose source left the data, then record what is on disk (also after
        # an interruption, so that a re-run resumes).
        listed = {s.id for s in sources}
        for i, e in old_entries.items():
            if i not in listed:
                (out / e["path"]).unlink(missing_ok=True)
                result.removed += 1
        manifest = {
            "format_version": FORMAT_VERSION,
            "params": params,
            "params_hash": phash,
            "data": str(data.resolve()),
            "entries": [entries[i] for i in sorted(entries)],
            "bad": [bad[i] for i in sorted(bad)],
        }
        if manifest != old:
            atomic_write_text(manifest_path, json.dumps(manifest, indent=1) + "\n")
    result.bad = [(str(data / b["source"]), b["reason"]) for b in manifest["bad"]]
    result.skipped = len(result.bad)
    result.seconds = time.perf_counter() - t0
    return result


def _run(todo, data: Path, out: Path, params: dict[str, Any], workers: int, progress: bool):
    """Yield ((source, record), result) for each task, computed here or in worker processes."""
    from tqdm import tqdm

    bar = tqdm(total=len(todo), unit="file", desc="mel cache", disable=not progress or not todo,
               file=sys.stderr)
    tasks = [(str(data / s.rel), str(out / rec["path"])) for s, rec in todo]
    try:
        if workers == 1 or len(todo) <= 1:
            import torch

            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # small FFTs: threads cost more than they save
            try:
                for item, task in zip(todo, tasks, strict=True):
                    yield item, _compute_one(*task, params)
                    bar.update(1)
            finally:
                torch.set_num_threads(threads)
            return
        # Chunks of files per task amortise the inter-process round trip; several chunks per
        # worker keep the load balanced. Longest files first, so no long one comes last.
        order = sorted(range(len(todo)), key=lambda i: -todo[i][1]["source_size"])
        size = max(1, min(64, len(order) // (workers * 8)))
        chunks = [order[i:i + size] for i in range(0, len(order), size)]
        with cf.ProcessPoolExecutor(max_workers=min(workers, len(chunks)),
                                    mp_context=_mp_context(), initializer=_init_worker) as pool:
            futures = {pool.submit(_compute_chunk, [tasks[i] for i in c], params): c
                       for c in chunks}
            try:
                for fut in cf.as_completed(futures):
                    for i, res in zip(futures[fut], fut.result(), strict=True):
                        yield todo[i], res
                    bar.update(len(futures[fut]))
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
    finally:
        bar.close()


def _mp_context():
    # fork starts workers in milliseconds with numpy/torch already imported; spawn (the only
    # choice on Windows, the default on macOS) re-imports them in each worker.
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods and sys.platform == "linux"
                                       else None)


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
    manifest = _read_manifest(mpath)
    if manifest is None:
        raise DataError(f"{mpath}: unreadable or of another format version; rebuild the cache")
    try:
        cache = MelCache(root, manifest)
    except (KeyError, TypeError) as e:
        raise DataError(f"{mpath}: malformed manifest ({e})") from None
    if cfg is not None:
        cache.check_params(cfg)
    return cache
