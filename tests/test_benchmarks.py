"""Smoke runs of the benchmark scripts on tiny synthetic data, so they cannot rot unseen."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def bench_modules(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.setenv("VQKIT_DATA", str(tmp_path / "vqkit-data"))
    yield
    for name in ("speech", "speech_cache", "notebook_reference"):
        sys.modules.pop(name, None)


def test_speech_benchmark_trains_and_evaluates_every_contender(bench_modules, tmp_path):
    import speech
    from test_speech_training import write_corpus

    corpus = write_corpus(tmp_path / "corpus")
    out = tmp_path / "speech.json"
    rc = speech.main(["--data", str(corpus), "--train-speakers", "AAA,BBB", "--test-speaker",
                      "CCC", "--minutes", "0.01", "--contenders", "notebook,l2arctic",
                      "--skip-cache", "--work", str(tmp_path / "work"), "--json", str(out),
                      "--set", "audio.griffin_lim_iters=4"])
    assert rc == 0
    res = json.loads(out.read_text())["results"]
    assert set(res) == {"notebook", "l2arctic"}
    for r in res.values():
        assert r["steps"] >= 1 and r["n_utterances"] == 4
        assert 0 < r["codebook_usage"] <= 1 and r["mel_mse"] > 0
        assert math.isnan(r["stoi"]) or 0 <= r["stoi"] <= 1  # nan: no group of 1 s or more
