"""CLI smoke tests: ``vqkit subset`` and ``vqkit cache`` on a tiny synthetic corpus."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from vqkit.cli import main


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "corpus"
    t = np.arange(1600) / 16000
    for s in ("HJK", "BWC", "GEORGE"):
        for i in range(4):
            (root / s / "wav").mkdir(parents=True, exist_ok=True)
            (root / s / "transcript").mkdir(exist_ok=True)
            sf.write(root / s / "wav" / f"u{i}.wav", 0.3 * np.sin(2 * np.pi * 300 * (i + 1) * t),
                     16000)
            (root / s / "transcript" / f"u{i}.txt").write_text(f"word {i}\n")
    return root


def test_subset_then_cache(corpus, tmp_path, capsys):
    out, cache = tmp_path / "subset", tmp_path / "cache"
    rc = main(["subset", "--source", str(corpus), "--out", str(out), "--speakers", "HJK,BWC",
               "--max-per-speaker", "3", "--seed", "1", "--val-fraction", "0.34",
               "--test-fraction", "0"])
    assert rc == 0
    lines = (out / "metadata.csv").read_text().splitlines()
    assert lines[0] == ("speaker,utt_id,path,duration_s,sample_rate,transcript,first_language,"
                        "gender,split")
    assert len(lines) == 1 + 6
    assert "HJK" in capsys.readouterr().out
    rc = main(["cache", "--data", str(out), "--out", str(cache), "--workers", "1",
               "--no-progress", "--set", "audio.n_mels=40"])
    assert rc == 0
    assert "6 computed" in capsys.readouterr().out
    manifest = json.loads((cache / "manifest.json").read_text())
    assert manifest["params"]["n_mels"] == 40 and len(manifest["entries"]) == 6
    assert sorted({e["split"] for e in manifest["entries"]}) == ["train", "val"]
    assert all((cache / e["path"]).is_file() for e in manifest["entries"])
    rc = main(["cache", "--data", str(out), "--out", str(cache), "--workers", "1",
               "--no-progress", "--set", "audio.n_mels=40"])
    assert rc == 0 and "0 computed, 6 reused" in capsys.readouterr().out


def test_unknown_speaker_exits_2_with_one_line(corpus, tmp_path, capsys):
    rc = main(["subset", "--source", str(corpus), "--out", str(tmp_path / "o"),
               "--speakers", "HJK,NOPE"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "NOPE" in err and "BWC, GEORGE, HJK" in err


def test_cache_rejects_non_audio_override(corpus, tmp_path, capsys):
    rc = main(["cache", "--data", str(corpus), "--out", str(tmp_path / "c"), "--set",
               "train.lr=1"])
    assert rc == 2 and "only audio" in capsys.readouterr().err
