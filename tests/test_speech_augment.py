"""Frequency warps of speech training crops (``data.freq_warp``, vocal tract length
perturbation)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file
from test_speech_training import corpus, tiny_cfg  # noqa: F401  (corpus is a fixture)

from vqkit.config import AudioConfig
from vqkit.data.speech import SpeechData, load_speech_data, mel_band_hz
from vqkit.errors import ConfigError
from vqkit.training.train import train

HZ = mel_band_hz(AudioConfig(n_mels=64))


def peaked(bin_: int, n: int = 64, frames: int = 40) -> np.ndarray:
    """A mel of silence (-1) with one bright bin."""
    x = np.full((n, frames), -1.0, np.float32)
    x[bin_] = 1.0
    return x


def test_mel_band_hz_are_the_filterbank_centres():
    assert len(HZ) == 64 and np.all(np.diff(HZ) > 0)
    assert 0 < HZ[0] < 200 and 7000 < HZ[-1] < 8000


@settings(max_examples=25, deadline=None)
@given(bin_=st.integers(8, 40), factor=st.floats(0.8, 1.2))
def test_a_warp_moves_a_peak_to_its_scaled_frequency(bin_, factor):
    d = SpeechData([peaked(bin_)], ["a"], frames=32, random_crop=True, warp=0.2, band_hz=HZ)
    src = torch.from_numpy(peaked(bin_)[None, None, :, :32].copy())
    out = d._warp((src, torch.ones(1, 1, 1, 32, dtype=torch.bool)), np.array([factor]))[0]
    peak = int(out[0, 0, :, 0].argmax())
    target = int(np.abs(HZ - HZ[bin_] * factor).argmin())
    assert abs(peak - target) <= 1
    assert out.min() >= -1 and out.max() <= 1  # interpolation stays on the model's scale


def test_a_unit_factor_and_no_warp_leave_crops_unchanged():
    rng = np.random.default_rng(0)
    norms = [rng.uniform(-1, 1, (64, n)).astype(np.float32) for n in (20, 50, 70)]
    plain = SpeechData(norms, list("abc"), frames=16, random_crop=True)
    warped = SpeechData(norms, list("abc"), frames=16, random_crop=True, warp=0.1, band_hz=HZ)
    x, m = next(plain.batches(3, epoch=1, seed=2))
    assert torch.allclose(warped._warp(x, np.ones(3)), x, atol=1e-6)
    y, n = next(warped.batches(3, epoch=1, seed=2))
    assert y.shape == x.shape and not torch.allclose(x, y)
    # the same crops (offsets drawn before the factors), only warped along frequency: the
    # padded frames of the short item stay silent and masked
    assert torch.equal(m, n) and bool((y[0, 0, :, ~m[0, 0, 0]] == -1).all())
    with pytest.raises(ValueError, match="centre frequencies"):
        SpeechData(norms, list("abc"), frames=16, random_crop=True, warp=0.1)


def test_warps_are_a_function_of_seed_epoch_and_batch(corpus):  # noqa: F811
    cfg = tiny_cfg(corpus, extra=["audio.crop_frames=8", "data.freq_warp=0.15"])
    tr = load_speech_data(cfg, "speakers:AAA,BBB,CCC", training=True)
    assert tr.warp == 0.15
    full = [x for x, _ in tr.batches(4, epoch=3, seed=7)]
    tail = [x for x, _ in tr.batches(4, epoch=3, seed=7, start=1)]
    assert all(torch.equal(a, b) for a, b in zip(full[1:], tail, strict=True))
    val = load_speech_data(cfg, "speakers:CCC", training=False)
    assert val.warp == 0.0  # validation is never warped
    whole = tiny_cfg(corpus, extra=["audio.crop_frames=0", "data.freq_warp=0.15"])
    with pytest.raises(ConfigError, match="freq_warp.*crop_frames"):
        load_speech_data(whole, "speakers:AAA", training=True)  # it would be silently ignored


def test_training_with_warps_resumes_exactly(corpus, tmp_path):  # noqa: F811
    cfg = tiny_cfg(corpus, extra=["train.epochs=2", "audio.crop_frames=8", "data.freq_warp=0.1"])
    data = (load_speech_data(cfg, cfg.data.train_split, training=True),
            load_speech_data(cfg, cfg.data.val_split, training=False))
    full = train(cfg, tmp_path / "full", progress=False, data=data)
    cfg.train.max_steps = 3
    train(cfg, tmp_path / "part", progress=False, data=data)
    resumed = train(None, tmp_path / "part", resume=True, progress=False, data=data)
    assert resumed.step == full.step == 4
    a = load_file(tmp_path / "full" / "checkpoints" / "last" / "model.safetensors")
    b = load_file(tmp_path / "part" / "checkpoints" / "last" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
