"""Speech from any folder of audio files or from a CSV / JSONL manifest: mixed formats, rates
and channels, speakers from folders, manifest errors naming file and line, bad files skipped,
and a tiny training + evaluation on a manifest. Synthetic audio made here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vqkit.audio.cache import open_cache
from vqkit.cli import main
from vqkit.config import apply_overrides, get_preset
from vqkit.data.audio_folder import manifest_sources
from vqkit.data.audio_sources import build_mel_cache, list_audio_sources
from vqkit.errors import DataError
from vqkit.training.train import train

TINY = ["model.hidden_channels=16", "model.residual_channels=8", "model.dim=8",
        "quantizer.codebook_size=16", "audio.n_mels=32", "audio.griffin_lim_iters=4",
        "train.batch_size=4", "train.warmup_steps=0", "audio.sample_rate=16000"]


def tone(seconds: float, sr: int, f0: float, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    y = (0.3 * np.sin(2 * np.pi * f0 * t)).astype(np.float32)
    return y if channels == 1 else np.stack([y, 0.5 * y], axis=1)


def write_mixed(root: Path) -> list[str]:
    """Two speakers' files as WAV 8 kHz mono, FLAC 44.1 kHz stereo and OGG 22.05 kHz."""
    rels = []
    for s, spk in enumerate(("anna", "ben")):
        for u, (ext, sr, ch) in enumerate([("wav", 8000, 1), ("flac", 44100, 2),
                                           ("ogg", 22050, 1), ("wav", 16000, 2)]):
            rel = f"{spk}/session {u % 2}/take{u}.{ext}"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            sf.write(root / rel, tone(0.4 + 0.1 * u, sr, 200 + 40 * s + 10 * u, ch), sr)
            rels.append(rel)
    return rels


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VQKIT_DATA", str(tmp_path / "vqkit-data"))


def test_a_folder_of_mixed_audio_is_cached_with_speakers_from_folders(tmp_path):
    rels = write_mixed(tmp_path / "d")
    (tmp_path / "d" / "ben" / "broken.flac").write_bytes(b"fLaC not really")
    (tmp_path / "d" / "notes.txt").write_text("not audio")
    sources = list_audio_sources(tmp_path / "d")
    assert sorted(s.rel for s in sources) == sorted([*rels, "ben/broken.flac"])
    assert {s.speaker for s in sources} == {"anna", "ben"}
    assert all("/" not in s.utt_id and " " not in s.utt_id for s in sources)
    cfg = get_preset("l2arctic")
    apply_overrides(cfg, TINY)
    res = build_mel_cache(tmp_path / "d", tmp_path / "cache", cfg.audio, workers=1,
                          progress=False)
    assert res.computed == 8 and res.skipped == 1 and "broken.flac" in res.bad[0][0]
    cache = open_cache(tmp_path / "cache", cfg.audio)
    lengths = {e.source: e.n_frames for e in cache.entries.values()}
    # 0.4 s at 16 kHz with hop 256 is about 25 frames, whatever the file's rate
    assert 23 <= lengths["anna/session 0/take0.wav"] <= 27


def write_manifest(root: Path, rows: list[dict], kind: str = "csv") -> Path:
    if kind == "jsonl":
        path = root / "list.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path
    cols = list(dict.fromkeys(k for r in rows for k in r))
    path = root / "list.csv"
    path.write_text(",".join(cols) + "\n" + "".join(
        ",".join(str(r.get(c, "")) for c in cols) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_a_manifest_lists_paths_speakers_and_splits(tmp_path, kind):
    rels = write_mixed(tmp_path)
    rows = [{"path": r, "speaker": "S1" if i < 5 else "S2",
             "split": "val" if i % 4 == 0 else "train", "text": "hello"}
            for i, r in enumerate(rels)]
    folder, sources = manifest_sources(write_manifest(tmp_path, rows, kind))
    assert folder == tmp_path and [s.rel for s in sources] == rels
    assert [s.speaker for s in sources] == ["S1"] * 5 + ["S2"] * 3
    assert [s.split for s in sources].count("val") == 2


@pytest.mark.parametrize("rows,kind,message", [
    ([{"speaker": "a"}], "csv", "no 'path' column"),
    ([{"path": "anna/session 0/take0.wav"}, {"path": "missing.wav"}], "csv",
     r"list.csv: line 3: no such file 'missing.wav'"),
    ([{"path": "anna/session 0/take0.wav"}, {"path": ""}], "jsonl", "line 2: empty 'path'"),
    ([{"path": "../outside.wav"}], "csv", r"line 2: refusing audio path"),
    ([{"path": "anna/session 0/take0.wav", "start": "x"}], "csv",
     "line 2: start 'x' is not a number"),
    ([{"path": "anna/session 0/take0.wav", "start": "0.3", "end": "0.2"}], "jsonl",
     r"line 1: end \(0.2 s\) must be after start"),
    ([{"path": "anna/session 0/take0.wav", "start": "0.1", "end": "9"}], "csv",
     "line 2: start/end .* beyond the file's 0.400 s"),
    ([{"path": "anna/session 0/take0.wav", "start": "-1"}], "csv", "line 2: start '-1' must"),
    ([{"path": "anna/session 0/take0.wav", "voice": "x"}], "jsonl",
     "line 1: unknown column.*voice"),
    ([{"path": "anna/session 0/take0.wav"}, {"path": "anna/session 0/take0.wav"}], "csv",
     "line 3: utterance .* again"),
    ([], "jsonl", "lists no audio"),
])
def test_manifest_errors_name_the_file_and_line(tmp_path, rows, kind, message):
    write_mixed(tmp_path)
    path = write_manifest(tmp_path, rows, kind)
    with pytest.raises(DataError, match=message) as e:
        manifest_sources(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_a_bad_jsonl_line_is_one_line(tmp_path):
    (tmp_path / "m.jsonl").write_text('{"path": "a.wav"}\nnot json\n')
    with pytest.raises(DataError, match=r"m.jsonl: line 2: not JSON"):
        manifest_sources(tmp_path / "m.jsonl")


def test_train_and_evaluate_on_a_manifest(tmp_path, capsys):
    rels = write_mixed(tmp_path / "d")
    (tmp_path / "d" / "bad.wav").write_bytes(b"")
    rows = [{"path": r, "split": "val" if i in (0, 5) else "train"} for i, r in enumerate(rels)]
    rows.append({"path": "bad.wav", "speaker": "anna"})
    manifest = write_manifest(tmp_path / "d", rows)
    cfg = get_preset("l2arctic")
    apply_overrides(cfg, [*TINY, "train.epochs=1"])
    cfg.data.root = str(manifest)
    train(cfg, tmp_path / "run", progress=False)
    assert "bad.wav" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "run"), "--split", "val"]) == 0
    out = capsys.readouterr().out
    assert "saved in" in out


def test_vqkit_data_summarises_audio(tmp_path, capsys):
    write_mixed(tmp_path / "d")
    (tmp_path / "d" / "anna" / "zero.wav").write_bytes(b"")
    assert main(["data", str(tmp_path / "d"), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["kind"] == "audio" and s["splits"]["all"]["speakers"] == {"anna": 4, "ben": 4}
    assert s["audio"]["sample_rates"] == {"8000": 2, "16000": 2, "22050": 2, "44100": 2}
    assert s["audio"]["channels"] == {"1": 4, "2": 4}
    assert abs(s["audio"]["seconds"]["total"] - 2 * (0.4 + 0.5 + 0.6 + 0.7)) < 0.01
    assert s["unreadable"]["count"] == 1 and s["unreadable"]["first"][0]["path"] == \
        "anna/zero.wav"
    assert main(["data", str(tmp_path / "d")]) == 0
    assert "anna/zero.wav" in capsys.readouterr().out


def test_long_recordings_are_cut_into_segments_and_spans_are_read_alone(tmp_path, capsys):
    d = tmp_path / "d"
    (d / "long").mkdir(parents=True)
    sf.write(d / "long" / "hour.flac", tone(25.0, 8000, 220), 8000)  # stands for a long file
    write_mixed(d)
    rows = [{"path": "long/hour.flac"},
            {"path": "anna/session 1/take1.flac", "start": "0.1", "end": "0.4", "split": "val"},
            {"path": "ben/session 0/take0.wav", "split": "val"}]
    manifest = write_manifest(d, rows)
    cfg = get_preset("l2arctic")
    apply_overrides(cfg, [*TINY, "audio.segment_s=10", "train.epochs=1"])
    res = build_mel_cache(manifest, tmp_path / "cache", cfg.audio, workers=2, progress=False)
    assert res.computed == 5 and res.skipped == 0  # 3 segments of 8.33 s + 2 others
    cache = open_cache(tmp_path / "cache", cfg.audio)
    segs = sorted((e.start_s, e.end_s, e.n_frames) for e in cache.entries.values()
                  if e.source == "long/hour.flac")
    assert [(round(a, 2), round(b, 2)) for a, b, _ in segs] == [
        (0, 8.33), (8.33, 16.67), (16.67, 25.0)]
    assert all(515 <= n <= 525 for *_, n in segs)  # 8.33 s at 16 kHz, hop 256: ~521 frames
    span = next(e for e in cache.entries.values() if e.source.endswith("take1.flac"))
    assert (span.start_s, span.end_s) == (0.1, 0.4) and 17 <= span.n_frames <= 21
    cfg.data.root = str(manifest)
    train(cfg, tmp_path / "run", progress=False)
    assert main(["evaluate", str(tmp_path / "run"), "--split", "val"]) == 0
    assert "saved in" in capsys.readouterr().out
