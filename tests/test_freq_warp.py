"""Frequency-warp augmentation of speech training crops (audio.freq_warp)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vqkit.codes.fingerprint import model_fingerprint
from vqkit.config import RunConfig, get_preset
from vqkit.data.speech import SpeechData, warp_mel_axis
from vqkit.errors import ConfigError
from vqkit.models import model_for


def test_warping_stretches_the_mel_axis_by_the_factor():
    x = torch.arange(8.0).view(1, 1, 8, 1).repeat(3, 1, 1, 2)
    y = warp_mel_axis(x, torch.tensor([1.0, 2.0, 0.5]))
    assert torch.equal(y[0], x[0])  # factor 1: unchanged
    assert torch.allclose(y[1, 0, :, 0], torch.arange(8.0) / 2)  # bin i takes bin i / 2
    assert y[2, 0, :, 0].tolist() == [0, 2, 4, 6, 7, 7, 7, 7]  # beyond the top: the top bin


@settings(max_examples=20, deadline=None)
@given(factor=st.floats(0.5, 1.5), seed=st.integers(0, 2**31 - 1))
def test_warped_values_stay_within_each_frames_range(factor, seed):
    x = torch.randn(2, 1, 16, 5, generator=torch.Generator().manual_seed(seed))
    y = warp_mel_axis(x, torch.tensor([factor, 1.0]))
    lo, hi = x.amin(dim=2, keepdim=True), x.amax(dim=2, keepdim=True)
    assert (y >= lo - 1e-6).all() and (y <= hi + 1e-6).all()  # interpolation, no overshoot
    assert torch.allclose(y[1], x[1]) and torch.allclose(y[:, :, 0], x[:, :, 0])


def _source(warp: float) -> SpeechData:
    rng = np.random.default_rng(0)
    norms = [rng.uniform(-1, 1, (8, n)).astype(np.float32) for n in (12, 30, 9, 21, 16)]
    return SpeechData(norms, [f"u{i}" for i in range(5)], frames=8, random_crop=True,
                      multiple=4, freq_warp=warp)


def test_warped_batches_are_reproducible_and_resumable_and_keep_the_crops():
    warped, plain = _source(0.1), _source(0.0)
    a = list(warped.batches(2, epoch=3, seed=7))
    b = list(warped.batches(2, epoch=3, seed=7, start=1))  # resumed at batch 1
    for (xa, ma), (xb, mb) in zip(a[1:], b, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ma, mb)
    p = list(plain.batches(2, epoch=3, seed=7))
    assert not torch.equal(a[0][0], p[0][0])  # the bins moved
    for (xa, ma), (xp, mp) in zip(a, p, strict=True):
        assert torch.equal(ma, mp)  # same crops: the warp draws after the offsets
        assert torch.equal(xa[:, :, 0], xp[:, :, 0])  # the lowest bin stays
    assert all(torch.equal(x, y) for (x, _), (y, _) in zip(
        plain.batches(2, epoch=3, seed=7), _source(0.0).batches(2, epoch=3, seed=7),
        strict=True))


def test_the_warp_is_a_checked_field_that_does_not_change_what_codes_mean():
    cfg = get_preset("l2arctic-codec")
    model = model_for(cfg)
    before = model_fingerprint(model, cfg)
    cfg.audio.freq_warp = 0.1
    assert model_fingerprint(model, cfg) == before
    with pytest.raises(ConfigError, match="freq_warp"):
        RunConfig.from_dict({"task": "speech", "audio": {"freq_warp": 0.7}})
