"""Mel cache: invalidation, corruption, bad audio, parallel workers (tiny synthetic data)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vqkit.audio.cache import open_cache
from vqkit.audio.io import load_audio
from vqkit.audio.mel import mel_db_from_audio
from vqkit.config import AudioConfig
from vqkit.data.audio_sources import build_mel_cache
from vqkit.data.subset import make_subset
from vqkit.errors import ConfigError, DataError

CFG = AudioConfig(n_mels=64, n_fft=512, hop_length=128)


def _tone(seed: int, sample_rate: int = 8000, seconds: float = 0.2) -> np.ndarray:
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    rng = np.random.default_rng(seed)
    return (0.3 * np.sin(2 * np.pi * (150 + 40 * seed) * t)
            + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def _make_data(root: Path, speakers=("AAA", "BBB"), n: int = 3) -> Path:
    for s in speakers:
        (root / s / "wav").mkdir(parents=True)
        for i in range(n):
            sf.write(root / s / "wav" / f"u{i}.wav", _tone(i + 7 * len(s)), 8000)
    return root


def _build(data, out, cfg=CFG, **kw):
    return build_mel_cache(data, out, cfg, workers=kw.pop("workers", 1), progress=False, **kw)


def _manifest(cache: Path) -> dict:
    return json.loads((cache / "manifest.json").read_text())


def _bump_mtime(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))


@pytest.fixture
def data(tmp_path) -> Path:
    return _make_data(tmp_path / "data")


def test_build_then_rerun_computes_nothing(data, tmp_path):
    cache = tmp_path / "cache"
    first = _build(data, cache)
    assert (first.computed, first.reused, first.skipped) == (6, 0, 0)
    manifest_bytes = (cache / "manifest.json").read_bytes()
    again = _build(data, cache)
    assert (again.computed, again.reused, again.skipped) == (0, 6, 0)
    assert (cache / "manifest.json").read_bytes() == manifest_bytes  # not rewritten
    mc = open_cache(cache, CFG)
    assert mc.ids() == [f"{s}/u{i}" for s in ("AAA", "BBB") for i in range(3)]
    assert mc.ids("train") == mc.ids() and mc.splits == {"train": mc.ids()}
    e = mc.entries["AAA/u0"]
    assert e.speaker == "AAA" and e.source == "AAA/wav/u0.wav" and e.split == "train"
    assert e.source_size == (data / "AAA/wav/u0.wav").stat().st_size
    # raw dB of the whole utterance (no padding), equal to the frontend up to float16 storage
    want = mel_db_from_audio(load_audio(data / "AAA/wav/u0.wav", sample_rate=16000), CFG)
    got = mc.load("AAA/u0")
    assert got.dtype == np.float32 and got.shape == want.shape == (64, e.n_frames)
    assert np.abs(got - want).max() < 0.07


def test_parameter_change_recomputes_everything(data, tmp_path):
    cache = tmp_path / "cache"
    _build(data, cache)
    other = AudioConfig(n_mels=32, n_fft=512, hop_length=128)
    res = _build(data, cache, other)
    assert (res.computed, res.reused) == (6, 0)
    assert open_cache(cache, other).load("BBB/u2").shape[0] == 32
    with pytest.raises(ConfigError, match="n_mels: cache 32 vs config 64"):
        open_cache(cache, CFG)
    # load-time settings (normalisation, clip length) do not touch the cache
    same = AudioConfig(n_mels=32, n_fft=512, hop_length=128, clip_s=2.0,
                       normalization="fixed_db")
    assert _build(data, cache, same).computed == 0


def test_touched_or_changed_file_recomputes_only_that_one(data, tmp_path):
    cache = tmp_path / "cache"
    _build(data, cache)
    before = open_cache(cache).load("AAA/u1")
    _bump_mtime(data / "AAA/wav/u1.wav")
    res = _build(data, cache)
    assert (res.computed, res.reused) == (1, 5)
    assert np.array_equal(open_cache(cache).load("AAA/u1"), before)
    sf.write(data / "BBB/wav/u0.wav", _tone(99, seconds=0.5), 8000)  # new content and length
    res = _build(data, cache)
    assert (res.computed, res.reused) == (1, 5)
    assert open_cache(cache).entries["BBB/u0"].n_frames == 1 + 8000 // 128
    # a source that leaves the data leaves the cache
    (data / "BBB/wav/u2.wav").unlink()
    res = _build(data, cache)
    assert (res.computed, res.reused, res.removed) == (0, 5, 1)
    assert not (cache / "BBB/u2.npy").exists()


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_corrupt_entry_is_detected_and_recomputed(data, tmp_path, damage):
    cache = tmp_path / "cache"
    _build(data, cache)
    good = open_cache(cache).load("BBB/u1")
    entry = cache / "BBB/u1.npy"
    raw = bytearray(entry.read_bytes())
    if damage == "flip":
        raw[-3] ^= 0xFF
        entry.write_bytes(bytes(raw))
        with pytest.raises(DataError, match=r"u1\.npy: corrupt cache entry"):
            open_cache(cache).load("BBB/u1")
    elif damage == "truncate":
        entry.write_bytes(bytes(raw[:-10]))
    else:
        entry.unlink()
    res = _build(data, cache)
    assert (res.computed, res.reused) == (1, 5)
    assert np.array_equal(open_cache(cache).load("BBB/u1"), good)


def test_bad_audio_is_reported_and_skipped(data, tmp_path):
    bad = data / "CCC" / "wav"
    bad.mkdir(parents=True)
    (bad / "empty.wav").write_bytes(b"")
    (bad / "garbage.wav").write_bytes(os.urandom(300))
    y = _tone(1)
    y[10] = np.nan
    sf.write(bad / "nan.wav", y, 8000, subtype="FLOAT")
    sf.write(bad / "three.wav", np.stack([_tone(2)] * 3, axis=1), 8000)
    sf.write(bad / "stereo.wav", np.stack([_tone(3), _tone(4)], axis=1), 8000)  # averaged: ok
    cache = tmp_path / "cache"
    res = _build(data, cache)
    assert (res.computed, res.skipped) == (7, 4)
    reasons = {Path(p).name: r for p, r in res.bad}
    assert set(reasons) == {"empty.wav", "garbage.wav", "nan.wav", "three.wav"}
    assert "empty" in reasons["empty.wav"] and "unreadable" in reasons["garbage.wav"]
    assert "non-finite" in reasons["nan.wav"] and "3 channels" in reasons["three.wav"]
    assert "CCC/stereo" in open_cache(cache)
    # bad files are remembered: reported again, not re-read, until they change
    again = _build(data, cache)
    assert (again.computed, again.reused, again.skipped) == (0, 7, 4)
    sf.write(bad / "three.wav", _tone(2), 8000)
    fixed = _build(data, cache)
    assert (fixed.computed, fixed.skipped) == (1, 3)


def test_two_workers_give_identical_arrays(data, tmp_path):
    one = _build(data, tmp_path / "one", workers=1)
    two = _build(data, tmp_path / "two", workers=2)
    assert one.computed == two.computed == 6 and two.workers == 2
    a, b = open_cache(tmp_path / "one"), open_cache(tmp_path / "two")
    assert a.ids() == b.ids()
    for i in a.ids():
        assert np.array_equal(a.load(i), b.load(i))
        assert a.entries[i].checksum == b.entries[i].checksum


def test_subset_splits_and_float32_storage(data, tmp_path):
    subset = tmp_path / "subset"
    make_subset(data, subset, seed=0, split_by="speaker", val_fraction=0.0, test_fraction=0.4)
    cache = tmp_path / "cache"
    res = _build(subset, cache, dtype="float32")
    assert res.computed == 6
    mc = open_cache(cache, CFG)
    assert sorted(mc.splits) == ["test", "train"] and len(mc.ids("test")) == 3
    assert _manifest(cache)["params"]["dtype"] == "float32"
    want = mel_db_from_audio(load_audio(subset / "AAA/wav/u0.wav", sample_rate=16000), CFG)
    assert np.allclose(mc.load("AAA/u0"), want, atol=1e-4)


def test_missing_or_zip_only_data_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="not a folder"):
        _build(tmp_path / "nope", tmp_path / "cache")
    with pytest.raises(DataError, match="no manifest.json"):
        open_cache(tmp_path)
