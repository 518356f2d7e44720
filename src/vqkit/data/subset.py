"""Pick a reproducible subset of an L2-ARCTIC-style corpus and copy it out with its metadata.

:func:`make_subset` reads straight from the corpus (zips included, see
:mod:`vqkit.data.l2arctic`), copies each chosen utterance's wav, transcript and, when present,
textgrid and annotation to ``OUT/<SPK>/<kind>/``, and writes ``OUT/metadata.csv``. The same
source, arguments and seed give the same subset; a re-run rewrites nothing that is already
identical. Audio is copied as is (its own sample rate): resampling happens in the mel cache.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path, PurePosixPath

import soundfile as sf

from vqkit.data.l2arctic import KINDS, Corpus, Utterance, open_corpus, speaker_info
from vqkit.errors import DataError
from vqkit.paths import safe_name
from vqkit.utils import atomic_write_bytes

__all__ = [
    "SPLITS",
    "SubsetRow",
    "SubsetResult",
    "make_subset",
    "read_metadata",
    "METADATA_NAME",
]

SPLITS = ("train", "val", "test")
METADATA_NAME = "metadata.csv"


@dataclass(frozen=True)
class SubsetRow:
    """One line of ``metadata.csv``."""

    speaker: str
    utt_id: str
    path: str  # wav path relative to the subset folder, "/"-separated
    duration_s: float
    sample_rate: int  # Hz, of the copied file
    transcript: str
    first_language: str
    gender: str
    split: str  # "train", "val" or "test"


METADATA_COLUMNS = [f.name for f in fields(SubsetRow)]


@dataclass
class SubsetResult:
    """What :func:`make_subset` chose and did."""

    out: Path
    metadata_path: Path
    rows: list[SubsetRow]
    speakers_found: list[str]
    layouts: list[str]
    files_written: int = 0
    files_unchanged: int = 0
    metadata_written: bool = False
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    extra_files: int = 0  # files under OUT/<SPK>/ that are not part of this subset (left alone)

    def counts(self) -> dict[str, dict[str, int]]:
        """Utterances per speaker and split: ``{speaker: {"train": n, "val": n, "test": n}}``."""
        out: dict[str, dict[str, int]] = {}
        for r in self.rows:
            out.setdefault(r.speaker, dict.fromkeys(SPLITS, 0))[r.split] += 1
        return out


def make_subset(
    source: str | Path,
    out: str | Path,
    *,
    speakers: Sequence[str] | None = None,
    max_per_speaker: int | None = 500,
    seed: int = 42,
    split_by: str = "utterance",
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> SubsetResult:
    """Choose up to ``max_per_speaker`` utterances per speaker, split them, copy them to ``out``.

    Parameters
    ----------
    source : str or Path
        Release zip, speaker zip(s), or a folder laid out ``<SPK>/wav/*.wav``.
    out : str or Path
        Output folder: ``<SPK>/wav/<utt>.wav``, ``<SPK>/transcript/<utt>.txt``, optional
        ``<SPK>/textgrid/`` and ``<SPK>/annotation/``, and ``metadata.csv``.
    speakers : sequence of str or None
        Speaker codes (case-insensitive); None means every speaker found.
    max_per_speaker : int > 0 or None
        Utterances drawn per speaker, uniformly without replacement; None or 0: all.
    seed : int
        Same seed, same subset. Each speaker's draw depends only on the seed and the speaker,
        so adding a speaker leaves the others' utterances unchanged.
    split_by : "utterance" or "speaker"
        "utterance": every speaker's utterances are split by the fractions (the same speakers
        in every split). "speaker": whole speakers go to val and test (at least one speaker each
        for a non-zero fraction), for evaluation on unseen voices.
    val_fraction, test_fraction : float in [0, 1)
        Shares of utterances (or speakers) in val and test; the rest is train.

    Returns
    -------
    SubsetResult

    Raises
    ------
    DataError
        Unreadable source, an unknown speaker (the message lists the speakers found), or too
        few speakers for a split by speaker.
    """
    if split_by not in ("utterance", "speaker"):
        raise ValueError(f"split_by must be 'utterance' or 'speaker', got {split_by!r}")
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"val_fraction and test_fraction must be in [0, 1) with a sum below 1, "
                         f"got {val_fraction} and {test_fraction}")
    if max_per_speaker is not None and max_per_speaker < 0:
        raise ValueError(f"max_per_speaker must be >= 0, got {max_per_speaker}")
    out = Path(out)
    with open_corpus(source) as corpus:
        chosen = _resolve_speakers(corpus, speakers)
        picks = {s: _draw(corpus.utterances(s), max_per_speaker, seed) for s in chosen}
        splits = _assign_splits(picks, seed, split_by, val_fraction, test_fraction, corpus.source)
        result = SubsetResult(out=out, metadata_path=out / METADATA_NAME, rows=[],
                              speakers_found=corpus.speakers, layouts=list(corpus.layouts))
        for speaker in chosen:
            result.rows += _copy_speaker(corpus, picks[speaker], out, splits, result)
    data = _metadata_bytes(result.rows)
    if not _same_bytes(result.metadata_path, data):
        atomic_write_bytes(result.metadata_path, data)
        result.metadata_written = True
    result.extra_files = _count_extra(out, chosen, picks)
    return result


def _resolve_speakers(corpus: Corpus, speakers: Sequence[str] | None) -> list[str]:
    found = corpus.speakers
    if speakers is None or len(speakers) == 0:
        return found
    by_upper = {s.upper(): s for s in found}
    chosen, unknown = [], []
    for s in speakers:
        s = s.strip()
        name = s if s in found else by_upper.get(s.upper())
        if name is None:
            unknown.append(s)
        elif name not in chosen:
            chosen.append(name)
    if unknown:
        raise DataError(f"{corpus.source}: unknown speaker(s) {', '.join(unknown)}; "
                        f"speakers found: {', '.join(found)}")
    return sorted(chosen)


def _draw(utts: list[Utterance], k: int | None, seed: int) -> list[Utterance]:
    if not k or k >= len(utts):
        return list(utts)
    rng = random.Random(f"{seed}/{utts[0].speaker}/draw")  # str seeds are hashed with SHA-512
    return sorted(rng.sample(utts, k), key=lambda u: u.utt_id)


def _n_of(n: int, fraction: float) -> int:
    return int(n * fraction + 0.5)


def _assign_splits(picks: dict[str, list[Utterance]], seed: int, split_by: str,
                   val_fraction: float, test_fraction: float, source: Path
                   ) -> dict[tuple[str, str], str]:
    splits: dict[tuple[str, str], str] = {}
    if split_by == "speaker":
        order = sorted(picks)
        random.Random(f"{seed}/speakers").shuffle(order)
        n_test = max(1, _n_of(len(order), test_fraction)) if test_fraction > 0 else 0
        n_val = max(1, _n_of(len(order), val_fraction)) if val_fraction > 0 else 0
        if n_test + n_val >= len(order):
            raise DataError(f"{source}: split by speaker needs at least {n_test + n_val + 1} "
                            f"speakers (train, val, test), got {len(order)}: {', '.join(picks)}")
        for i, speaker in enumerate(order):
            split = "test" if i < n_test else "val" if i < n_test + n_val else "train"
            for u in picks[speaker]:
                splits[(speaker, u.utt_id)] = split
        return splits
    for speaker, utts in picks.items():
        order = [u.utt_id for u in utts]
        random.Random(f"{seed}/{speaker}/split").shuffle(order)
        n_test, n_val = _n_of(len(order), test_fraction), _n_of(len(order), val_fraction)
        for i, utt_id in enumerate(order):
            splits[(speaker, utt_id)] = ("test" if i < n_test else
                                         "val" if i < n_test + n_val else "train")
    return splits


def _dest(out: Path, utt: Utterance, kind: str) -> Path:
    """Where one of ``utt``'s files goes: ``OUT/<speaker>/<kind>/<file name>``; a speaker or
    file name that is not a plain name (``..``, a separator) is refused."""
    member = utt.member(kind) or ""
    name = PurePosixPath(member).name
    return (out / safe_name(utt.speaker, what="speaker folder", source=member) / kind
            / safe_name(name, what="file name", source=member))


def _same_bytes(path: Path, data: bytes) -> bool:
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False


def _write_if_changed(dest: Path, data: bytes, result: SubsetResult) -> None:
    if _same_bytes(dest, data):
        result.files_unchanged += 1
    else:
        atomic_write_bytes(dest, data)
        result.files_written += 1


def _copy_speaker(corpus: Corpus, utts: list[Utterance], out: Path,
                  splits: dict[tuple[str, str], str], result: SubsetResult) -> list[SubsetRow]:
    """Copy one speaker's chosen utterances (read in storage order) and return their rows."""
    infos: dict[str, sf._SoundFileInfo] = {}
    transcripts: dict[str, str] = {}
    companions: dict[str, list[tuple[Path, bytes]]] = {}  # written once the wav is known good
    requests = [(u, kind) for u in utts for kind in KINDS if u.member(kind) is not None]
    for utt, kind, data in corpus.read_many(requests):
        if kind != "wav":
            if kind == "transcript":
                transcripts[utt.utt_id] = " ".join(data.decode("utf-8", "replace").split())
            companions.setdefault(utt.utt_id, []).append((_dest(out, utt, kind), data))
            continue
        try:
            info = sf.info(io.BytesIO(data))
            if info.frames <= 0:
                raise ValueError("0 samples")
        except Exception as e:  # noqa: BLE001 - any decoder failure means a bad file, reported
            result.skipped.append((corpus.describe(utt, "wav"), f"unreadable audio ({e})"))
            continue
        infos[utt.utt_id] = info
        _write_if_changed(_dest(out, utt, "wav"), data, result)
    rows = []
    for utt in utts:
        info = infos.get(utt.utt_id)
        if info is None:
            continue
        for dest, data in companions.get(utt.utt_id, []):
            _write_if_changed(dest, data, result)
        who = speaker_info(utt.speaker)
        rows.append(SubsetRow(
            speaker=utt.speaker, utt_id=utt.utt_id,
            path=_dest(out, utt, "wav").relative_to(out).as_posix(),
            duration_s=round(info.frames / info.samplerate, 4),
            sample_rate=int(info.samplerate), transcript=transcripts.get(utt.utt_id, ""),
            first_language=who.first_language, gender=who.gender,
            split=splits[(utt.speaker, utt.utt_id)]))
    return rows


def _metadata_bytes(rows: list[SubsetRow]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=METADATA_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        d = asdict(r)
        d["duration_s"] = f"{r.duration_s:.4f}"
        writer.writerow(d)
    return buf.getvalue().encode("utf-8")


def _count_extra(out: Path, speakers: list[str], picks: dict[str, list[Utterance]]) -> int:
    wanted = {_dest(out, u, kind) for s in speakers for u in picks[s] for kind in KINDS
              if u.member(kind) is not None}
    n = 0
    for spk_dir in (out.iterdir() if out.is_dir() else []):
        if not spk_dir.is_dir():
            continue
        for kind in KINDS:
            d = spk_dir / kind
            if d.is_dir():
                n += sum(1 for p in d.iterdir() if p.is_file() and p not in wanted)
    return n


def read_metadata(path: str | Path) -> list[SubsetRow]:
    """Read a ``metadata.csv`` written by :func:`make_subset`.

    Raises
    ------
    DataError
        When the file is missing, lacks a column, or has a malformed value (named by line).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in METADATA_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
    rows = []
    for line, d in enumerate(reader, start=2):
        try:
            rows.append(SubsetRow(
                speaker=d["speaker"], utt_id=d["utt_id"], path=d["path"],
                duration_s=float(d["duration_s"]), sample_rate=int(d["sample_rate"]),
                transcript=d["transcript"], first_language=d["first_language"],
                gender=d["gender"], split=d["split"]))
        except (TypeError, ValueError) as e:
            raise DataError(f"{path}, line {line}: malformed row ({e})") from None
        if rows[-1].split not in SPLITS:
            raise DataError(f"{path}, line {line}: split {rows[-1].split!r} is not one of "
                            f"{', '.join(SPLITS)}")
    return rows
