"""Build or refresh a mel cache (format: :mod:`vqkit.audio.cache`) in parallel worker
processes, computing only the entries that are missing, stale or corrupt."""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import io
import json
import os
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from vqkit.audio.cache import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    AudioSource,
    cache_params,
    entry_ok,
    entry_rel_path,
    params_hash,
    read_manifest,
    remove_entry,
)
from vqkit.audio.io import load_audio
from vqkit.audio.mel import melspectrogram, power_to_db
from vqkit.config import AudioConfig
from vqkit.errors import DataError
from vqkit.paths import resolve_inside
from vqkit.utils import atomic_write_text, worker_context

__all__ = ["CacheResult", "build_cache"]


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


# ---------------------------------------------------------------------------------------------
# Computing entries (runs in worker processes)


def _init_worker() -> None:
    # One thread per process: the workers are the parallelism, and torch's thread pool must not
    # be used in a forked child (as torch's DataLoader workers do).
    torch.set_num_threads(1)


def _compute_one(src: str, dst: str, params: dict[str, Any],
                 span: tuple[float, float] = (0.0, 0.0)) -> tuple[int, str] | str:
    """Compute and write one entry (of the ``span`` (start, end) in s of the file, when given):
    (n_frames, checksum), or the reason the audio is bad."""
    try:
        y = load_audio(src, sample_rate=params["sample_rate"], min_samples=params["n_fft"],
                       start_s=span[0], end_s=span[1])
        mel = melspectrogram(y, sample_rate=params["sample_rate"], n_fft=params["n_fft"],
                             hop_length=params["hop_length"], win_length=params["win_length"],
                             n_mels=params["n_mels"], fmin=params["fmin"], fmax=params["fmax"],
                             power=params["power"])
        db = power_to_db(mel, ref=params["ref"], amin=params["amin"]).astype(params["dtype"])
        if not np.isfinite(db).all():
            return "non-finite mel values (the audio's samples are absurd)"
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


def _compute_chunk(tasks: list[tuple[str, str, tuple[float, float]]], params: dict[str, Any]
                   ) -> list[tuple[int, str] | str]:
    return [_compute_one(src, dst, params, span) for src, dst, span in tasks]


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
    phash = params_hash(params)
    manifest_path = out / MANIFEST_NAME
    old = read_manifest(manifest_path) or {}
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
        entry_path = entry_rel_path(s)  # refuses names that would land outside the cache
        resolve_inside(data, s.rel, what="audio path", source=f"utterance {s.id}",
                       links=False)  # read only
        try:
            st = os.stat(os.path.join(data_s, s.rel))
        except OSError:
            bad[s.id] = {**base, "reason": "missing audio file"}
            continue
        span = f":{s.start_s}:{s.end_s}" if s.start_s or s.end_s else ""
        key = hashlib.sha256(f"{phash}:{st.st_size}:{st.st_mtime_ns}{span}".encode()
                             ).hexdigest()[:16]
        rec = {**base, "path": entry_path, "source_size": st.st_size,
               "source_mtime_ns": st.st_mtime_ns, "key": key, "split": s.split}
        if span:  # a segment of a long recording
            rec["start_s"], rec["end_s"] = s.start_s, s.end_s
        prev = old_entries.get(s.id)
        if (prev is not None and prev.get("key") == rec["key"] and prev.get("path") == rec["path"]
                and entry_ok(out_s, prev, params["n_mels"], itemsize, verify)):
            entries[s.id] = {**rec, "n_frames": prev["n_frames"], "checksum": prev["checksum"]}
            result.reused += 1
        elif s.id in old_bad and old_bad[s.id].get("key") == rec["key"]:
            bad[s.id] = {**rec, "reason": old_bad[s.id]["reason"]}
        else:
            todo.append((s, rec))

    failed: OSError | None = None
    try:
        for (s, rec), res in _run(todo, data, out, params, workers, progress):
            if isinstance(res, str):
                bad[s.id] = {**rec, "reason": res}
                if s.id in old_entries:  # was good, now bad: drop the outdated entry
                    remove_entry(out, old_entries[s.id])
            else:
                entries[s.id] = {**rec, "n_frames": int(res[0]), "checksum": res[1]}
                result.computed += 1
    except OSError as e:  # writing an entry: disk full, no permission
        failed = e
    finally:
        if failed is None:
            # Remove entries whose source left the data, then record what is on disk (also
            # after an interruption, so that a re-run resumes).
            listed = {s.id for s in sources}
            for i, e in old_entries.items():
                if i not in listed:
                    remove_entry(out, e)
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
                try:
                    atomic_write_text(manifest_path, json.dumps(manifest, indent=1) + "\n")
                except OSError as e:
                    failed = e
    if failed is not None:
        # The old manifest stays: its entries are intact or fail their checksum (recomputed
        # next time); entries written now are simply not listed yet.
        raise DataError(f"{out}: cannot write the mel cache ({failed.strerror or failed}); "
                        f"it is left as it was and usable; free space and run again") from None
    result.bad = [(str(data / b["source"]), b["reason"]) for b in manifest["bad"]]
    result.skipped = len(result.bad)
    result.seconds = time.perf_counter() - t0
    return result


def _run(todo, data: Path, out: Path, params: dict[str, Any], workers: int, progress: bool):
    """Yield ((source, record), result) for each task, computed here or in worker processes."""
    bar = tqdm(total=len(todo), unit="file", desc="mel cache", disable=not progress or not todo,
               file=sys.stderr)
    tasks = [(str(data / s.rel), str(out / rec["path"]), (s.start_s, s.end_s)) for s, rec in todo]
    try:
        if workers == 1 or len(todo) <= 1:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # small FFTs: threads cost more than they save
            try:
                for item, task in zip(todo, tasks, strict=True):
                    yield item, _compute_one(task[0], task[1], params, task[2])
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
                                    mp_context=worker_context(), initializer=_init_worker) as pool:
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
