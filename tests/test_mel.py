"""Mel frontend against librosa, and the inverse path on synthetic signals."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from vqkit.audio import griffinlim as G
from vqkit.audio import io as IO
from vqkit.audio import mel as M
from vqkit.config import AudioConfig
from vqkit.errors import DataError

librosa = pytest.importorskip("librosa")

SR = 16000


def _chirp(seconds: float = 1.0, sample_rate: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (0.5 * np.sin(2 * np.pi * (200 * t + 900 * t**2))).astype(np.float32)


def _tones(seconds: float = 1.0, sample_rate: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (0.4 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 880 * t)).astype(
        np.float32)


def _spectral_convergence(y_hat: np.ndarray, y: np.ndarray) -> float:
    """|| |STFT(y_hat)| - |STFT(y)| ||_F / || |STFT(y)| ||_F."""
    S = M.stft_magnitude(y)
    S_hat = M.stft_magnitude(y_hat[..., : y.shape[-1]])
    return float(np.linalg.norm(S_hat - S) / np.linalg.norm(S))


@pytest.mark.parametrize("sample_rate,n_fft,n_mels,fmin,fmax", [
    (16000, 1024, 128, 0.0, None),
    (22050, 2048, 80, 50.0, 8000.0),
    (8000, 512, 40, 0.0, None),
    (44100, 1024, 128, 20.0, None),
])
def test_filterbank_matches_librosa(sample_rate, n_fft, n_mels, fmin, fmax):
    ours = M.mel_filterbank(sample_rate=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin,
                            fmax=fmax)
    ref = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    assert ours.shape == ref.shape == (n_mels, 1 + n_fft // 2)
    assert np.abs(ours - ref).max() < 1e-6


def test_mel_scale_round_trip_and_htk():
    f = np.array([0.0, 500.0, 1000.0, 4000.0, 8000.0])
    for htk in (False, True):
        assert np.allclose(M.mel_to_hz(M.hz_to_mel(f, htk=htk), htk=htk), f)
        assert np.allclose(M.hz_to_mel(f, htk=htk), librosa.hz_to_mel(f, htk=htk))


@pytest.mark.parametrize("win_length", [None, 800])
def test_melspectrogram_matches_librosa(win_length):
    rng = np.random.default_rng(0)
    y = _chirp() + 0.05 * rng.standard_normal(SR).astype(np.float32)
    ours = M.melspectrogram(y, sample_rate=SR, n_fft=1024, hop_length=256,
                            win_length=win_length, n_mels=128)
    ref = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=1024, hop_length=256,
                                         win_length=win_length, n_mels=128)
    assert ours.shape == ref.shape == (128, 1 + SR // 256)
    assert np.abs(ours - ref).max() / ref.max() < 1e-5
    ours_db = M.power_to_db(ours)
    ref_db = librosa.power_to_db(ref, ref=1.0, amin=1e-10, top_db=None)
    assert np.abs(ours_db - ref_db).max() < 1e-2


def test_torch_and_batches_give_the_same_as_numpy_per_item():
    y = np.stack([_chirp(0.5), _tones(0.5)])
    batch = M.melspectrogram(torch.from_numpy(y))
    assert isinstance(batch, torch.Tensor) and batch.shape == (2, 128, 1 + 8000 // 256)
    for i in range(2):
        assert np.allclose(batch[i].numpy(), M.melspectrogram(y[i]), rtol=1e-4, atol=1e-6)


def test_power_to_db_floor_ref_and_inverse():
    S = np.array([0.0, 1e-12, 1e-3, 1.0, 100.0], dtype=np.float32)
    db = M.power_to_db(S)
    assert np.allclose(db, [-100, -100, -30, 0, 20], atol=1e-4)
    assert np.allclose(M.db_to_power(db)[2:], S[2:], rtol=1e-5)
    assert np.allclose(M.power_to_db(S, ref=np.max), db - 20, atol=1e-4)
    assert np.allclose(M.power_to_db(S, top_db=40.0), np.maximum(db, -20), atol=1e-4)
    assert np.allclose(M.power_to_db(S, ref=np.max),
                       librosa.power_to_db(S, ref=np.max, top_db=None), atol=1e-3)


def test_resample_preserves_duration_and_frequency():
    sr_in, sr_out, f0 = 44100, 16000, 440.0
    t = np.arange(sr_in) / sr_in
    y = np.sin(2 * np.pi * f0 * t).astype(np.float32)
    z = IO.resample(y, orig_sample_rate=sr_in, target_sample_rate=sr_out)
    assert z.dtype == np.float32 and len(z) == sr_out
    spectrum = np.abs(np.fft.rfft(z * np.hanning(len(z))))
    assert np.fft.rfftfreq(len(z), 1 / sr_out)[spectrum.argmax()] == pytest.approx(f0, abs=1.0)
    # batched rows resample like single ones
    zz = IO.resample(np.stack([y, 0.5 * y]), orig_sample_rate=sr_in, target_sample_rate=sr_out)
    assert zz.shape == (2, sr_out) and np.allclose(zz[0], z, atol=1e-6)


def test_load_audio_mono_stereo_and_bad_files(tmp_path):
    y = _tones(0.25, 8000)
    sf.write(tmp_path / "mono.wav", y, 8000)
    sf.write(tmp_path / "stereo.wav", np.stack([y, 0 * y], axis=1), 8000)
    sf.write(tmp_path / "three.wav", np.stack([y, y, y], axis=1), 8000)
    mono = IO.load_audio(tmp_path / "mono.wav", sample_rate=16000)
    assert mono.dtype == np.float32 and mono.shape == (4000,)
    stereo = IO.load_audio(tmp_path / "stereo.wav", sample_rate=16000)
    assert np.allclose(stereo, 0.5 * mono, atol=1e-4)  # averaged to mono
    with pytest.raises(DataError, match=r"three\.wav: 3 channels"):
        IO.load_audio(tmp_path / "three.wav", sample_rate=16000)
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.wav: empty file"):
        IO.load_audio(tmp_path / "empty.wav", sample_rate=16000)
    (tmp_path / "junk.wav").write_bytes(b"RIFF not really")
    with pytest.raises(DataError, match=r"junk\.wav: unreadable audio"):
        IO.load_audio(tmp_path / "junk.wav", sample_rate=16000)


def test_griffin_lim_recovers_a_signal_from_its_magnitude():
    # Measured on these signals (seeds 0-2): momentum 0.99 gives SC 0.03-0.06, momentum 0
    # (plain Griffin-Lim) 0.08-0.18 after 64 iterations.
    ys = np.stack([_chirp(), _tones()])
    S = M.stft_magnitude(torch.from_numpy(ys))
    fast = G.griffin_lim(S, n_iter=64, momentum=0.99, length=SR).numpy()
    plain = G.griffin_lim(S, n_iter=64, momentum=0.0, length=SR).numpy()
    assert fast.shape == (2, SR)
    for i in range(2):
        sc_fast, sc_plain = _spectral_convergence(fast[i], ys[i]), \
            _spectral_convergence(plain[i], ys[i])
        assert sc_fast < 0.1
        assert sc_fast < sc_plain
    # deterministic for a seed
    assert torch.equal(G.griffin_lim(S[:1], n_iter=4, seed=3), G.griffin_lim(S[:1], n_iter=4,
                                                                              seed=3))


def test_mel_to_stft_nnls_beats_pinv_and_is_non_negative():
    y = _chirp()
    S = M.stft_magnitude(y)
    mel = M.melspectrogram(y)
    errs = {}
    for method in ("pinv", "nnls"):
        S_hat = G.mel_to_stft(mel, method=method)
        assert S_hat.shape == S.shape and S_hat.min() >= 0
        errs[method] = np.linalg.norm(S_hat - S) / np.linalg.norm(S)
    assert errs["nnls"] < errs["pinv"]


def test_mel_db_round_trip_through_audio_config():
    # Measured: spectral convergence 0.06-0.09 (seeds 0-2) for these signals; bound with margin.
    cfg = AudioConfig(griffin_lim_iters=64)
    ys = np.stack([_chirp(), _tones()])
    mel_db = M.mel_db_from_audio(ys, cfg)
    assert mel_db.shape == (2, cfg.n_mels, 1 + SR // cfg.hop_length)
    assert mel_db.min() >= -100.0
    y_hat = G.audio_from_mel_db(mel_db, cfg, length=SR)
    assert y_hat.shape == (2, SR)
    for i in range(2):
        assert _spectral_convergence(y_hat[i], ys[i]) < 0.15
