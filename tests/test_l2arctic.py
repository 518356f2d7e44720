"""L2-ARCTIC reading across layouts, and reproducible subsets (synthetic corpora, no real data)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vqkit.data.l2arctic import open_corpus, speaker_info, speaker_table
from vqkit.data.subset import make_subset, read_metadata
from vqkit.errors import DataError

SPEAKERS = {"ABA": 6, "HJK": 5, "BWC": 4, "TLV": 5}
N_ANNOTATED = 2  # first utterances of each speaker with annotation/*.TextGrid


def _wav_bytes(seed: int, sample_rate: int = 44100, seconds: float = 0.05) -> bytes:
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    y = 0.3 * np.sin(2 * np.pi * (200 + 50 * seed) * t)
    buf = io.BytesIO()
    sf.write(buf, y, sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _speaker_files(speaker: str, n: int, textgrids: bool = True) -> dict[str, bytes]:
    """{'<SPK>/<kind>/<file>': bytes} as the L2-ARCTIC release lays out one speaker."""
    files = {}
    for i in range(n):
        utt = f"arctic_a{i + 1:04d}"
        files[f"{speaker}/wav/{utt}.wav"] = _wav_bytes(sum(map(ord, speaker)) % 7 + i)
        files[f"{speaker}/transcript/{utt}.txt"] = f"sentence {i} of {speaker}\n".encode()
        if textgrids:
            files[f"{speaker}/textgrid/{utt}.TextGrid"] = f"tg {speaker} {i}".encode()
            if i < N_ANNOTATED:
                files[f"{speaker}/annotation/{utt}.TextGrid"] = f"ann {speaker} {i}".encode()
    return files


def _zip_bytes(files: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def _write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


@pytest.fixture(scope="module")
def corpus_files() -> dict[str, dict[str, bytes]]:
    return {s: _speaker_files(s, n) for s, n in SPEAKERS.items()}


@pytest.fixture(scope="module")
def layouts(tmp_path_factory, corpus_files) -> dict[str, Path]:
    """The same corpus as a release zip, a folder of speaker zips, and an extracted tree."""
    root = tmp_path_factory.mktemp("layouts")
    # Release zip: one <SPK>.zip per speaker (stored, as zips in zips are, and one deflated to
    # exercise the slow path), a suitcase_corpus entry and a README.
    release = root / "l2arctic_release_v5.0.zip"
    with zipfile.ZipFile(release, "w", compression=zipfile.ZIP_STORED) as z:
        for i, (speaker, files) in enumerate(corpus_files.items()):
            z.writestr(zipfile.ZipInfo(f"{speaker}.zip"), _zip_bytes(files),
                       compress_type=zipfile.ZIP_DEFLATED if i == 0 else zipfile.ZIP_STORED)
        z.writestr("suitcase_corpus.zip", _zip_bytes({
            "suitcase_corpus/wav/aba.wav": _wav_bytes(1),
            "suitcase_corpus/transcript/aba.txt": b"suitcase",
        }))
        z.writestr("README.md", b"L2-ARCTIC")
    zips = root / "zips"
    zips.mkdir()
    for speaker, files in corpus_files.items():
        (zips / f"{speaker}.zip").write_bytes(_zip_bytes(files))
    tree = _write_tree(root / "tree", {k: v for f in corpus_files.values() for k, v in f.items()})
    return {"release": release, "zips": zips, "tree": tree}


# ---------------------------------------------------------------------------------------------
# Reading


def test_speaker_table_has_the_24_speakers():
    table = speaker_table()
    assert len(table) == 24
    langs = [i.first_language for i in table.values()]
    assert sorted(set(langs)) == ["Arabic", "Hindi", "Korean", "Mandarin", "Spanish", "Vietnamese"]
    assert all(langs.count(x) == 4 for x in set(langs))
    assert sum(i.gender == "F" for i in table.values()) == 12
    assert speaker_info("HJK").first_language == "Korean" and speaker_info("HJK").gender == "F"
    assert speaker_info("GEORGE").first_language == "unknown"


@pytest.mark.parametrize("layout", ["release", "zips", "tree"])
def test_layouts_list_the_same_corpus(layouts, corpus_files, layout):
    with open_corpus(layouts[layout]) as corpus:
        assert corpus.speakers == sorted(SPEAKERS)  # suitcase_corpus skipped
        utts = corpus.utterances()
        assert len(utts) == sum(SPEAKERS.values())
        for u in utts:
            files = corpus_files[u.speaker]
            assert corpus.read_bytes(u) == files[f"{u.speaker}/wav/{u.utt_id}.wav"]
            assert corpus.read_text(u).startswith("sentence")
            assert u.textgrid is not None
            assert (u.annotation is not None) == (int(u.utt_id[-4:]) <= N_ANNOTATED)
    expected = {"release": ["release zip"], "zips": ["speaker zips"], "tree": ["folders"]}
    assert corpus.layouts == expected[layout]


def test_single_speaker_zip_and_folder(tmp_path, corpus_files):
    z = tmp_path / "HJK.zip"
    z.write_bytes(_zip_bytes(corpus_files["HJK"]))
    with open_corpus(z) as c:
        assert c.speakers == ["HJK"] and len(c.utterances("HJK")) == SPEAKERS["HJK"]
    # a zip of one speaker without the <SPK>/ prefix takes its name from the zip
    flat = {k.split("/", 1)[1]: v for k, v in corpus_files["BWC"].items()}
    (tmp_path / "BWC.zip").write_bytes(_zip_bytes(flat))
    with open_corpus(tmp_path / "BWC.zip") as c:
        assert c.speakers == ["BWC"]


def test_plain_fsdd_like_layout(tmp_path):
    files = {f"GEORGE/wav/fsdd_{d}_00.wav": _wav_bytes(d, 8000) for d in range(3)}
    files |= {f"GEORGE/transcript/fsdd_{d}_00.txt": b"zero" for d in range(3)}
    files |= {"LUCAS/wav/fsdd_1_00.wav": _wav_bytes(1, 8000)}  # no transcript folder
    _write_tree(tmp_path, files)
    with open_corpus(tmp_path) as c:
        assert c.speakers == ["GEORGE", "LUCAS"]
        lucas = c.utterances("LUCAS")[0]
        assert lucas.transcript is None and c.read_text(lucas) is None
        assert c.local_path(lucas) == tmp_path / "LUCAS/wav/fsdd_1_00.wav"
    res = make_subset(tmp_path, tmp_path.parent / "fsdd_out", seed=0)
    assert {r.first_language for r in res.rows} == {"unknown"}
    assert {r.sample_rate for r in res.rows} == {8000}
    assert [r.transcript for r in res.rows if r.speaker == "LUCAS"] == [""]


def test_no_speakers_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="no speakers found"):
        open_corpus(tmp_path)
    with pytest.raises(DataError, match="no such file"):
        open_corpus(tmp_path / "missing.zip")
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="bad.zip: not a readable zip"):
        open_corpus(tmp_path / "bad.zip")


# ---------------------------------------------------------------------------------------------
# Subsets


def test_subset_is_the_same_from_every_layout(layouts, tmp_path):
    metas = {}
    for name, src in layouts.items():
        res = make_subset(src, tmp_path / name, max_per_speaker=3, seed=7)
        metas[name] = res.metadata_path.read_bytes()
        assert len(res.rows) == 3 * len(SPEAKERS)
    assert metas["release"] == metas["zips"] == metas["tree"]


def test_subset_copies_files_and_writes_metadata(layouts, tmp_path):
    out = tmp_path / "out"
    res = make_subset(layouts["release"], out, speakers=["HJK", "aba"], max_per_speaker=0,
                      seed=1, val_fraction=0.2, test_fraction=0.2)
    rows = read_metadata(out / "metadata.csv")
    assert rows == res.rows
    assert sorted({r.speaker for r in rows}) == ["ABA", "HJK"]
    assert len(rows) == SPEAKERS["ABA"] + SPEAKERS["HJK"]
    for r in rows:
        assert (out / r.path).is_file() and r.path == f"{r.speaker}/wav/{r.utt_id}.wav"
        assert (out / r.speaker / "transcript" / f"{r.utt_id}.txt").is_file()
        assert (out / r.speaker / "textgrid" / f"{r.utt_id}.TextGrid").is_file()
        annotated = (out / r.speaker / "annotation" / f"{r.utt_id}.TextGrid").is_file()
        assert annotated == (int(r.utt_id[-4:]) <= N_ANNOTATED)
        assert r.transcript == f"sentence {int(r.utt_id[-4:]) - 1} of {r.speaker}"
        assert r.sample_rate == 44100 and r.duration_s == pytest.approx(0.05, abs=1e-4)
        assert r.first_language == {"ABA": "Arabic", "HJK": "Korean"}[r.speaker]
    # per speaker: round(6 * 0.2) = 1 val and 1 test for ABA; same for HJK (5 * 0.2)
    for c in res.counts().values():
        assert c["val"] == 1 and c["test"] == 1


def test_same_seed_same_subset_other_seed_differs(layouts, tmp_path):
    a = make_subset(layouts["tree"], tmp_path / "a", max_per_speaker=3, seed=42).rows
    b = make_subset(layouts["tree"], tmp_path / "b", max_per_speaker=3, seed=42).rows
    c = make_subset(layouts["tree"], tmp_path / "c", max_per_speaker=3, seed=43).rows
    assert a == b
    assert [(r.speaker, r.utt_id, r.split) for r in a] != \
        [(r.speaker, r.utt_id, r.split) for r in c]
    # a speaker's draw does not depend on which other speakers are chosen
    d = make_subset(layouts["tree"], tmp_path / "d", speakers=["HJK"], max_per_speaker=3,
                    seed=42).rows
    assert [r.utt_id for r in d] == [r.utt_id for r in a if r.speaker == "HJK"]


def test_rerun_is_idempotent(layouts, tmp_path):
    out = tmp_path / "out"
    first = make_subset(layouts["zips"], out, max_per_speaker=3, seed=5)
    assert first.files_written > 0 and first.metadata_written
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    again = make_subset(layouts["zips"], out, max_per_speaker=3, seed=5)
    assert again.files_written == 0 and again.files_unchanged == first.files_written
    assert not again.metadata_written and again.rows == first.rows
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == stamps
    # another seed into the same folder: old files are left alone and counted
    other = make_subset(layouts["zips"], out, max_per_speaker=3, seed=6)
    assert other.metadata_written and other.extra_files > 0


def test_unknown_speaker_lists_the_speakers_found(layouts, tmp_path):
    with pytest.raises(DataError) as e:
        make_subset(layouts["release"], tmp_path / "x", speakers=["HJK", "XYZ"])
    msg = str(e.value)
    assert "XYZ" in msg and "ABA, BWC, HJK, TLV" in msg and "\n" not in msg
    assert not (tmp_path / "x").exists()


def test_split_by_speaker_keeps_each_speaker_in_one_split(layouts, tmp_path):
    res = make_subset(layouts["tree"], tmp_path / "s", split_by="speaker", seed=3,
                      val_fraction=0.1, test_fraction=0.1)
    per_speaker = {}
    for r in res.rows:
        per_speaker.setdefault(r.speaker, set()).add(r.split)
    assert all(len(s) == 1 for s in per_speaker.values())
    splits = sorted(s for ss in per_speaker.values() for s in ss)
    assert splits == ["test", "train", "train", "val"]  # at least one speaker each
    with pytest.raises(DataError, match="at least 3 speakers"):
        make_subset(layouts["tree"], tmp_path / "t", speakers=["ABA", "HJK"],
                    split_by="speaker")


def test_unreadable_wav_is_skipped_and_reported(tmp_path):
    files = _speaker_files("HKK", 3, textgrids=False)
    files["HKK/wav/arctic_a0002.wav"] = b"garbage"
    _write_tree(tmp_path / "src", files)
    res = make_subset(tmp_path / "src", tmp_path / "out", seed=0)
    assert [r.utt_id for r in res.rows] == ["arctic_a0001", "arctic_a0003"]
    assert len(res.skipped) == 1 and "arctic_a0002.wav" in res.skipped[0][0]


def test_synthetic_release_script_writes_the_release_layout(tmp_path):
    """scripts/make_synthetic_l2arctic.py (used to demonstrate `vqkit subset`) reads back as a
    release zip: speakers, 44.1 kHz audio, transcripts, annotations; suitcase_corpus skipped."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / "make_synthetic_l2arctic.py"
    spec = importlib.util.spec_from_file_location("make_synthetic_l2arctic", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    release = script.write_release_zip(tmp_path / "l2arctic_release_v5.0.zip", ["HJK", "BWC"], 4)
    with open_corpus(release) as corpus:
        assert corpus.layouts == ["release zip"]
        utts = list(corpus.utterances())
        assert sorted({u.speaker for u in utts}) == ["BWC", "HJK"] and len(utts) == 8
        y, sr = sf.read(io.BytesIO(corpus.read_bytes(utts[0], "wav")))
        assert sr == 44100 and 1.0 <= len(y) / sr <= 3.0 and 0.01 < np.abs(y).max() < 1
        assert sum(u.annotation is not None for u in utts) == 2 * script.N_ANNOTATED
        assert all(u.transcript is not None and u.textgrid is not None for u in utts)
    res = make_subset(release, tmp_path / "sub", speakers=["HJK"], max_per_speaker=2, seed=1)
    assert len(read_metadata(tmp_path / "sub" / "metadata.csv")) == 2, res
