"""List the utterances of a speech data folder for the mel cache, and build that cache.

A data folder is a ``vqkit subset`` output (its ``metadata.csv`` lists the utterances and their
splits), any folder laid out ``<SPK>/wav/*.wav`` (every utterance in split "train"), any other
folder of audio files, or a CSV / JSONL manifest (:mod:`vqkit.data.audio_folder`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vqkit.audio.cache import AudioSource
from vqkit.audio.cache_build import CacheResult, build_cache
from vqkit.config import AudioConfig
from vqkit.data.audio_folder import (
    MANIFEST_SUFFIXES,
    folder_sources,
    manifest_sources,
    segment_sources,
)
from vqkit.data.l2arctic import open_corpus
from vqkit.data.subset import METADATA_NAME, read_metadata
from vqkit.errors import DataError

__all__ = ["audio_root", "build_mel_cache", "is_manifest", "list_audio_sources"]


def is_manifest(data: str | Path) -> bool:
    """A CSV or JSONL file listing audio (rather than a folder)."""
    data = Path(data)
    return data.is_file() and data.suffix.lower() in MANIFEST_SUFFIXES


def audio_root(data: str | Path) -> Path:
    """The folder the sources' paths are relative to: the manifest's folder, or ``data``."""
    data = Path(data)
    return data.parent if is_manifest(data) else data


def list_audio_sources(data: str | Path) -> list[AudioSource]:
    """Utterances of ``data``: from ``metadata.csv`` (a subset) or its ``<SPK>/wav/*.wav``.

    Raises
    ------
    DataError
        Not a folder, a folder of zips only, or duplicate utterance ids.
    """
    data = Path(data)
    if is_manifest(data):
        return _unique(manifest_sources(data)[1], data)
    if not data.is_dir():
        raise DataError(f"{data}: not a folder (the cache reads audio files on disk; make one "
                        f"with `vqkit subset` from zips)")
    meta = data / METADATA_NAME
    if meta.is_file():
        sources = [AudioSource(f"{r.speaker}/{r.utt_id}", r.speaker, r.utt_id, r.path, r.split)
                   for r in read_metadata(meta)]
    else:
        sources = _from_corpus(data)
        if not sources:
            raise DataError(f"{data}: holds only zips; the cache reads audio files on disk "
                            f"(make a folder with `vqkit subset`)")
    return _unique(sources, meta if meta.is_file() else data)


def _unique(sources: list[AudioSource], where: Path) -> list[AudioSource]:
    ids = [s.id for s in sources]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise DataError(f"{where}: duplicate utterance(s) {', '.join(dup[:5])}")
    return sources


def _from_corpus(data: Path) -> list[AudioSource]:
    sources = []
    try:
        corpus = open_corpus(data)
    except DataError:
        if any(p.suffix.lower() == ".zip" for p in data.iterdir()):
            raise
        return folder_sources(data)  # not <SPK>/wav/*.wav: any folder of audio files
    with corpus:
        prefixes: dict[int, str | None] = {}  # container -> its path relative to data
        for u in corpus.utterances():
            if u.container not in prefixes:
                root = corpus.local_root(u)
                prefixes[u.container] = (None if root is None else
                                         root.relative_to(data).as_posix())
            prefix = prefixes[u.container]
            if prefix is not None and u.wav is not None:
                rel = u.wav if prefix == "." else f"{prefix}/{u.wav}"
                sources.append(AudioSource(f"{u.speaker}/{u.utt_id}", u.speaker, u.utt_id, rel,
                                           "train"))
    return sources


def build_mel_cache(data: str | Path, out: str | Path, cfg: AudioConfig,
                    **kwargs: Any) -> CacheResult:
    """List ``data``'s utterances (recordings longer than ``cfg.segment_s`` cut into segments)
    and cache their mel spectrograms in ``out``
    (:func:`vqkit.audio.cache_build.build_cache`, whose keyword options it takes)."""
    root = audio_root(data)
    sources = segment_sources(list_audio_sources(data), root, cfg.segment_s)
    return build_cache(sources, root, out, cfg, **kwargs)
