"""Speech data in any layout: a folder of audio files, or a CSV / JSONL manifest.

A folder: every WAV, FLAC, OGG or MP3 under it (recursively; hidden entries skipped) is an
utterance; its speaker is its first folder level ("default" for files at the top), its id the
rest of its path. A manifest (``.csv`` with a header row, or ``.jsonl``, one object a line)
lists ``path`` (relative to the manifest's folder) and optionally ``speaker``, ``split``,
``text``, ``start`` and ``end`` (a span of the file, in seconds). Recordings longer than
``audio.segment_s`` are cut into segments when cached (:func:`segment_sources`). Splits absent
from a folder or a manifest are drawn from a hash of the id as for ``<SPK>/wav/*.wav`` folders.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import re
from pathlib import Path

import soundfile as sf

from vqkit.audio.cache import AudioSource
from vqkit.errors import DataError
from vqkit.paths import resolve_inside

__all__ = ["AUDIO_SUFFIXES", "MANIFEST_SUFFIXES", "find_audio_files", "folder_sources",
           "manifest_sources", "segment_sources"]

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
MANIFEST_SUFFIXES = (".csv", ".jsonl")
COLUMNS = ("path", "speaker", "split", "text", "start", "end")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _plain(name: str) -> str:
    """A name usable as one path component: runs of other characters become "_"."""
    out = _UNSAFE.sub("_", name).strip("._") or "_"
    return out


def find_audio_files(root: str | Path) -> list[str]:
    """Relative "/"-separated paths of the audio files under ``root``, sorted."""
    root = Path(root)
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        out += [n if rel_dir == "." else f"{rel_dir}/{n}" for n in filenames
                if not n.startswith(".") and n.lower().endswith(AUDIO_SUFFIXES)]
    return sorted(out)


def _source(rel: str, speaker: str | None, split: str) -> AudioSource:
    parts = rel.split("/")
    if speaker is None:
        speaker = parts[0] if len(parts) > 1 else "default"
        parts = parts[1:] if len(parts) > 1 else parts
    stem = "__".join(parts)
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    spk, utt = _plain(speaker), _plain(stem)
    return AudioSource(f"{spk}/{utt}", spk, utt, rel, split)


def folder_sources(root: str | Path) -> list[AudioSource]:
    """Utterances of a folder of audio files (speaker = first folder level), split "train".

    Raises
    ------
    DataError
        When the folder holds no audio file.
    """
    rels = find_audio_files(root)
    if not rels:
        raise DataError(f"{root}: no audio files ({', '.join(AUDIO_SUFFIXES)}) found")
    return [_source(r, None, "train") for r in rels]


def _rows(path: Path) -> list[tuple[int, dict]]:
    """(line number, row) of a CSV (header row first) or JSONL manifest."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read the manifest ({e})") from None
    if path.suffix.lower() == ".jsonl":
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}: line {n}: not JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}: line {n}: expected an object with a 'path'")
            rows.append((n, obj))
        return rows
    reader = csv.DictReader(text.splitlines())
    if reader.fieldnames is None or "path" not in [f.strip() for f in reader.fieldnames]:
        raise DataError(f"{path}: no 'path' column in the header row "
                        f"(columns: {', '.join(reader.fieldnames or []) or 'none'})")
    return [(n, {k.strip(): v for k, v in row.items() if k is not None})
            for n, row in enumerate(reader, 2)]


def _number(row: dict, key: str, where: str) -> float:
    text = str(row.get(key) if row.get(key) is not None else "").strip()
    if not text:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{where}: {key} {text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise DataError(f"{where}: {key} {text!r} must be a finite number of seconds >= 0")
    return value


def _span(row: dict, where: str, target: Path) -> tuple[float, float]:
    """(start, end) in s of a manifest row (0, 0: the whole file), checked against the file."""
    start, end = _number(row, "start", where), _number(row, "end", where)
    if not (start or end):
        return 0.0, 0.0
    try:
        info = sf.info(str(target))
        duration = info.frames / info.samplerate
    except (RuntimeError, sf.LibsndfileError):
        duration = math.inf  # unreadable: named and skipped when cached
    if end and end <= start:
        raise DataError(f"{where}: end ({end:g} s) must be after start ({start:g} s)")
    if start >= duration or end > duration + 0.01:
        raise DataError(f"{where}: start/end ({start:g}-{end:g} s) beyond the file's "
                        f"{duration:.3f} s")
    return start, end


def segment_sources(sources: list[AudioSource], root: Path,
                    segment_s: float) -> list[AudioSource]:
    """Each recording (or manifest span) longer than ``segment_s`` seconds cut into equal
    segments of at most that length, ids ``<id>.seg0000``...; the rest unchanged (files whose
    header cannot be read too: the cache names and skips them)."""
    if segment_s <= 0:
        return sources
    out = []
    for s in sources:
        try:
            info = sf.info(str(root / s.rel))
            duration = info.frames / info.samplerate
        except (RuntimeError, sf.LibsndfileError):
            out.append(s)
            continue
        lo, hi = s.start_s, s.end_s or duration
        n = math.ceil((hi - lo) / segment_s - 1e-9)
        if n <= 1:
            out.append(s)
            continue
        step = (hi - lo) / n
        out += [dataclasses.replace(s, id=f"{s.id}.seg{k:04d}", utt_id=f"{s.utt_id}.seg{k:04d}",
                                    start_s=round(lo + k * step, 6),
                                    end_s=round(lo + (k + 1) * step, 6)) for k in range(n)]
    return out


def manifest_sources(path: str | Path) -> tuple[Path, list[AudioSource]]:
    """(the manifest's folder, its utterances). Rows without ``split`` are "train" (then
    split by hash when no row names a split).

    Raises
    ------
    DataError
        One line naming the manifest and the row (its line): an empty manifest, a missing or
        empty ``path``, a path outside the folder, a missing file, an unknown column, or a bad
        ``start`` / ``end`` (seconds; not a number, negative, end before start, beyond the
        file).
    """
    path = Path(path).expanduser()
    folder = path.parent
    sources: list[AudioSource] = []
    seen: dict[str, int] = {}
    for n, row in _rows(path):
        where = f"{path}: line {n}"
        unknown = sorted(set(row) - set(COLUMNS))
        if unknown:
            raise DataError(f"{where}: unknown column(s) {', '.join(unknown)} "
                            f"(known: {', '.join(COLUMNS)})")
        rel = str(row.get("path") or "").strip().replace("\\", "/")
        if not rel:
            raise DataError(f"{where}: empty 'path'")
        target = resolve_inside(folder, rel, what="audio path", source=where, links=False)
        if not target.is_file():
            raise DataError(f"{where}: no such file {rel!r} (paths are relative to {folder})")
        if not rel.lower().endswith(AUDIO_SUFFIXES):
            raise DataError(f"{where}: {rel!r} is not {', '.join(AUDIO_SUFFIXES)}")
        speaker = str(row.get("speaker") or "").strip() or None
        split = str(row.get("split") or "").strip() or "train"
        src = _source(rel, speaker, split)
        start, end = _span(row, where, target)
        if start or end:
            src = dataclasses.replace(src, id=f"{src.id}.{start:g}-{end:g}",
                                      utt_id=f"{src.utt_id}.{start:g}-{end:g}",
                                      start_s=start, end_s=end)
        if src.id in seen:
            raise DataError(f"{where}: utterance {src.id!r} again (first on line "
                            f"{seen[src.id]})")
        seen[src.id] = n
        sources.append(src)
    if not sources:
        raise DataError(f"{path}: the manifest lists no audio")
    return folder, sources
