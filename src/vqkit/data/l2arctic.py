"""Read L2-ARCTIC (and any corpus laid out ``<SPK>/wav/*.wav``) straight from its zips or folders.

:func:`open_corpus` accepts

- the release zip (``l2arctic_release_v5.0.zip``) holding one ``<SPK>.zip`` per speaker and a
  ``suitcase_corpus`` entry (skipped): inner zips are opened from the outer one as file objects,
  nothing is extracted;
- a folder of per-speaker zips (``ABA.zip``, ...), or a single speaker zip;
- an extracted tree ``<SPK>/wav/*.wav``, ``<SPK>/transcript/*.txt``, ``<SPK>/textgrid/*.TextGrid``,
  ``<SPK>/annotation/*.TextGrid`` (the last only for ~150 utterances per speaker), or any folder
  laid out ``<SPK>/wav/*.wav`` such as the FSDD copy in ``shared/data`` (transcripts, TextGrids and
  annotations are optional).

A folder holding both extracted speakers and zips lists each speaker once: extracted folders
first, then zips in name order. The public speaker table of the 24 L2-ARCTIC speakers (first
language, gender) ships as ``l2arctic_speakers.csv``; other speakers are "unknown".
"""

from __future__ import annotations

import csv
import functools
import io
import os
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath

from vqkit.data.containers import DirContainer, ZipContainer, open_inner_zip
from vqkit.errors import DataError

__all__ = [
    "KINDS",
    "SpeakerInfo",
    "Utterance",
    "Corpus",
    "open_corpus",
    "speaker_table",
    "speaker_info",
]

# File kinds of an utterance: folder name under <SPK>/ and file suffix.
KINDS = {"wav": ".wav", "transcript": ".txt", "textgrid": ".textgrid", "annotation": ".textgrid"}
_SKIP_PARTS = ("suitcase", "__macosx")


@dataclass(frozen=True)
class SpeakerInfo:
    speaker: str
    first_language: str  # "unknown" for speakers not in the L2-ARCTIC table
    gender: str  # "M", "F" or "unknown"


@functools.cache
def speaker_table() -> dict[str, SpeakerInfo]:
    """The 24 L2-ARCTIC speakers: code -> first language and gender."""
    text = resources.files("vqkit.data").joinpath("l2arctic_speakers.csv").read_text()
    rows = csv.DictReader(io.StringIO(text))
    return {r["speaker"]: SpeakerInfo(r["speaker"], r["first_language"], r["gender"])
            for r in rows}


def speaker_info(speaker: str) -> SpeakerInfo:
    """Table entry of ``speaker``; first language and gender "unknown" when not in the table."""
    return speaker_table().get(speaker.upper(), SpeakerInfo(speaker, "unknown", "unknown"))


@dataclass(frozen=True)
class Utterance:
    """One recording and its companion files, as member names inside their container."""

    speaker: str
    utt_id: str  # file stem, e.g. "arctic_a0001"; unique within a speaker only
    wav: str
    transcript: str | None = None
    textgrid: str | None = None
    annotation: str | None = None
    container: int = 0  # index of the folder or zip holding the files (Corpus internal)

    def member(self, kind: str) -> str | None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        return getattr(self, kind)


def _skipped(parts: list[str]) -> bool:
    joined = "/".join(parts).lower()  # no skip word holds a "/": a match lies within one part
    return any(s in joined for s in _SKIP_PARTS)


def _scan(names, default_speaker: str | None) -> dict[str, dict[str, dict[str, str]]]:
    """Member names -> {speaker: {utt_id: {kind: name}}} for names ``.../<SPK>/<kind>/<utt>.<ext>``
    (or ``<kind>/<utt>.<ext>`` when the container is one speaker's, named ``default_speaker``)."""
    found: dict[str, dict[str, dict[str, str]]] = {}
    for name in names:
        parts = name.split("/")
        if len(parts) >= 3:
            speaker, kind, fname = parts[-3], parts[-2].lower(), parts[-1]
        elif len(parts) == 2 and default_speaker:
            speaker, kind, fname = default_speaker, parts[0].lower(), parts[1]
        else:
            continue
        if kind not in KINDS or fname.startswith(".") or not speaker or _skipped([name]):
            continue
        stem, ext = os.path.splitext(fname)
        if ext.lower() != KINDS[kind] or not stem:
            continue
        found.setdefault(speaker, {}).setdefault(stem, {})[kind] = name
    return found


def _is(entry: os.DirEntry, kind: str) -> bool:
    """``entry.is_dir()`` / ``is_file()``, False for a link that cannot be followed (broken, or
    a loop): such an entry holds no audio."""
    try:
        return entry.is_dir() if kind == "dir" else entry.is_file()
    except OSError:
        return False


def _scan_dir(root: Path) -> list[str]:
    """Relative names ``<SPK>/<kind>/<file>`` (and ``<kind>/<file>``) under ``root``."""
    names = []
    for level1 in sorted(os.scandir(root), key=lambda e: e.name):
        if not _is(level1, "dir") or level1.name.startswith("."):
            continue
        if level1.name.lower() in KINDS:  # root is a single speaker's folder
            names += [f"{level1.name}/{e.name}" for e in os.scandir(level1.path)
                      if _is(e, "file")]
            continue
        for level2 in os.scandir(level1.path):
            if _is(level2, "dir") and level2.name.lower() in KINDS:
                names += [f"{level1.name}/{level2.name}/{e.name}"
                          for e in os.scandir(level2.path) if _is(e, "file")]
    return names


# ---------------------------------------------------------------------------------------------
# Corpus


class Corpus:
    """Speakers and utterances of one corpus source; read members with :meth:`read_bytes`.

    Use as a context manager (or call :meth:`close`) to close the zips it holds open.
    """

    def __init__(self, source: Path):
        self.source = source
        self.layouts: list[str] = []  # "folders", "speaker zips", "release zip"
        self._containers: list[DirContainer | ZipContainer] = []
        self._utts: dict[str, list[Utterance]] = {}
        self._extra: list[zipfile.ZipFile] = []  # outer zips kept open for their inner zips

    # -- building
    def _add(self, container: DirContainer | ZipContainer, found: dict, layout: str) -> bool:
        """Register the speakers of ``container`` not listed yet; False if it added none."""
        index = len(self._containers)
        added = False
        for speaker in sorted(found):
            if speaker in self._utts:
                continue  # listed already (extracted folders come before zips)
            utts = [Utterance(speaker=speaker, utt_id=utt_id, wav=files["wav"],
                              transcript=files.get("transcript"), textgrid=files.get("textgrid"),
                              annotation=files.get("annotation"), container=index)
                    for utt_id, files in sorted(found[speaker].items()) if "wav" in files]
            if utts:
                self._utts[speaker] = utts
                added = True
        if added:
            self._containers.append(container)
            if layout not in self.layouts:
                self.layouts.append(layout)
        return added

    def _add_zip(self, path: Path) -> None:
        try:
            outer = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as e:
            raise DataError(f"{path}: not a readable zip file ({e})") from None
        infos = outer.infolist()
        outer_used = self._add(ZipContainer(outer, str(path), []),
                               _scan([i.filename for i in infos], path.stem), "speaker zips")
        for info in infos:
            parts = info.filename.split("/")
            if not info.filename.lower().endswith(".zip") or _skipped(parts):
                continue
            label = f"{path}!{info.filename}"
            try:
                inner, fobj = open_inner_zip(outer, path, info)
            except (zipfile.BadZipFile, OSError) as e:
                raise DataError(f"{label}: not a readable zip file ({e})") from None
            stem = PurePosixPath(info.filename).stem
            if self._add(ZipContainer(inner, label, [fobj]), _scan(inner.namelist(), stem),
                         "release zip"):
                outer_used = True  # a compressed inner zip reads through the outer one
            else:
                inner.close()
                fobj.close()
        if not outer_used:
            outer.close()
        elif not any(isinstance(c, ZipContainer) and c.zf is outer for c in self._containers):
            self._extra.append(outer)

    # -- queries
    @property
    def speakers(self) -> list[str]:
        """Speaker codes found, sorted."""
        return sorted(self._utts)

    def utterances(self, speaker: str | None = None) -> list[Utterance]:
        """Utterances of ``speaker`` (all speakers when None), sorted by speaker and utt_id."""
        if speaker is not None:
            if speaker not in self._utts:
                raise DataError(f"{self.source}: no speaker {speaker!r} "
                                f"(found: {', '.join(self.speakers)})")
            return list(self._utts[speaker])
        return [u for s in self.speakers for u in self._utts[s]]

    def read_bytes(self, utt: Utterance, kind: str = "wav") -> bytes:
        """Contents of one of ``utt``'s files (``kind``: wav, transcript, textgrid, annotation)."""
        name = utt.member(kind)
        if name is None:
            raise DataError(f"{self.source}: {utt.speaker}/{utt.utt_id} has no {kind} file")
        container = self._containers[utt.container]
        try:
            return container.read(name)
        except (OSError, zipfile.BadZipFile, EOFError) as e:
            raise DataError(f"{container.describe(name)}: cannot read ({e})") from None

    def read_many(self, requests: Iterable[tuple[Utterance, str]]
                  ) -> Iterator[tuple[Utterance, str, bytes]]:
        """Read many files, yielding ``(utt, kind, data)`` in storage order, not request order.

        Reading a zip front to back keeps every seek forward, which matters for a compressed
        speaker zip inside the release zip (a backward seek there decompresses from the start).
        """
        def position(req: tuple[Utterance, str]) -> tuple[int, int, str]:
            utt, kind = req
            name = utt.member(kind) or ""
            c = self._containers[utt.container]
            offset = c.zf.getinfo(name).header_offset if isinstance(c, ZipContainer) else 0
            return utt.container, offset, name

        for utt, kind in sorted(requests, key=position):
            yield utt, kind, self.read_bytes(utt, kind)

    def read_text(self, utt: Utterance, kind: str = "transcript") -> str | None:
        """A text file of ``utt`` decoded as UTF-8 (None when absent)."""
        if utt.member(kind) is None:
            return None
        return self.read_bytes(utt, kind).decode("utf-8", errors="replace")

    def describe(self, utt: Utterance, kind: str = "wav") -> str:
        """Where a file lives, for messages: a path, or ``zip!member`` (``outer!inner!member``)."""
        name = utt.member(kind)
        return self._containers[utt.container].describe(name or f"<no {kind}>")

    def local_root(self, utt: Utterance) -> Path | None:
        """The folder the utterance's member names are relative to (folder layouts), else None."""
        return self._containers[utt.container].root

    def local_path(self, utt: Utterance, kind: str = "wav") -> Path | None:
        """The file's path when it is a plain file on disk (folder layouts), else None."""
        name = utt.member(kind)
        root = self.local_root(utt)
        return None if name is None or root is None else root / name

    def close(self) -> None:
        for c in self._containers:
            c.close()
        for z in self._extra:
            z.close()
        self._containers, self._extra = [], []

    def __enter__(self) -> Corpus:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_corpus(path: str | Path) -> Corpus:
    """List the speakers and utterances of an L2-ARCTIC-style corpus.

    Parameters
    ----------
    path : str or Path
        The release zip, a speaker zip, a folder of such zips, or a folder laid out
        ``<SPK>/wav/*.wav`` (a single speaker's folder ``wav/*.wav`` works too).

    Returns
    -------
    Corpus
        Open on the zips it found; close it (or use ``with``) when done.

    Raises
    ------
    DataError
        When ``path`` does not exist, a zip is unreadable, or no ``<SPK>/wav/*.wav`` is found.
    """
    path = Path(path)
    corpus = Corpus(path)
    try:
        if path.is_file():
            corpus._add_zip(path)
        elif path.is_dir():
            corpus._add(DirContainer(path), _scan(_scan_dir(path), path.name), "folders")
            zips = sorted(p for p in path.iterdir() if p.suffix.lower() == ".zip" and p.is_file())
            for z in zips:
                corpus._add_zip(z)
        else:
            raise DataError(f"{path}: no such file or folder")
    except BaseException:
        corpus.close()
        raise
    if not corpus.speakers:
        corpus.close()
        raise DataError(
            f"{path}: no speakers found; expected an L2-ARCTIC release zip, speaker zips, or "
            f"folders laid out <SPK>/wav/*.wav")
    return corpus
