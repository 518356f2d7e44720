"""Mel frontend: audio -> mel power (dB), batched in torch (the inverse is
:mod:`vqkit.audio.griffinlim`, file reading :mod:`vqkit.audio.io`).

:func:`stft_magnitude`, :func:`mel_filterbank` (librosa-compatible Slaney mel scale and norm),
:func:`melspectrogram`, :func:`power_to_db` and its inverse :func:`db_to_power`.

Array functions accept a numpy array or a torch tensor and return the same kind; leading batch
dimensions are allowed everywhere. The STFT matches ``librosa.stft`` (periodic Hann window,
``center=True`` with zero padding); mel spectrograms match ``librosa.feature.melspectrogram``.

:func:`mel_db_from_audio` and :func:`vqkit.audio.griffinlim.audio_from_mel_db` take an
:class:`~vqkit.config.AudioConfig` and are the two directions every other module uses.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from vqkit.config import AudioConfig

__all__ = [
    "stft_magnitude",
    "hz_to_mel",
    "mel_to_hz",
    "mel_frequencies",
    "mel_filterbank",
    "melspectrogram",
    "power_to_db",
    "db_to_power",
    "frontend_params",
    "mel_db_from_audio",
    "AMIN",
]

Array = np.ndarray | torch.Tensor

AMIN = 1e-10  # floor of the power before taking dB: 10 * log10(1e-10) = -100 dB


# ---------------------------------------------------------------------------------------------
# numpy <-> torch


def _as_tensor(x: Array) -> tuple[torch.Tensor, bool]:
    if isinstance(x, torch.Tensor):
        return x, False
    return torch.from_numpy(np.ascontiguousarray(x)), True


def _back(x: torch.Tensor, was_numpy: bool) -> Array:
    return x.numpy() if was_numpy else x


@functools.lru_cache(maxsize=16)
def _window(win_length: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    return torch.hann_window(win_length, periodic=True, dtype=dtype, device=device)


# ---------------------------------------------------------------------------------------------
# STFT


def _stft(y: torch.Tensor, n_fft: int, hop_length: int, win_length: int) -> torch.Tensor:
    """Complex STFT of (..., samples) -> (..., 1 + n_fft // 2, T), as librosa.stft."""
    if not y.is_floating_point():
        y = y.float()
    lead = y.shape[:-1]
    window = _window(win_length, str(y.device), y.dtype)
    spec = torch.stft(y.reshape(-1, y.shape[-1]), n_fft=n_fft, hop_length=hop_length,
                      win_length=win_length, window=window, center=True, pad_mode="constant",
                      return_complex=True)
    return spec.reshape(*lead, *spec.shape[-2:])


def _istft(spec: torch.Tensor, n_fft: int, hop_length: int, win_length: int,
           length: int | None) -> torch.Tensor:
    lead = spec.shape[:-2]
    window = _window(win_length, str(spec.device), spec.real.dtype)
    y = torch.istft(spec.reshape(-1, *spec.shape[-2:]), n_fft=n_fft, hop_length=hop_length,
                    win_length=win_length, window=window, center=True, length=length)
    return y.reshape(*lead, y.shape[-1])


def stft_magnitude(
    y: Array, *, n_fft: int = 1024, hop_length: int = 256, win_length: int | None = None,
    power: float = 1.0,
) -> Array:
    """Magnitude (``power=1``) or power (``power=2``) STFT.

    Parameters
    ----------
    y : np.ndarray or torch.Tensor, shape=(..., samples)
    n_fft : int > 0
        FFT size in samples.
    hop_length : int > 0
        Frame step in samples.
    win_length : int <= n_fft or None
        Hann window length in samples; None means ``n_fft``.
    power : float > 0
        Exponent of the magnitude.

    Returns
    -------
    S : same kind as ``y``, shape=(..., 1 + n_fft // 2, 1 + samples // hop_length)
        Frames are centred (``y`` zero-padded by ``n_fft // 2`` on both sides), as librosa.
    """
    t, was_numpy = _as_tensor(y)
    mag = _stft(t, n_fft, hop_length, win_length or n_fft).abs()
    if power != 1.0:
        mag = mag.pow(power)
    return _back(mag, was_numpy)


# ---------------------------------------------------------------------------------------------
# Mel scale (Slaney's auditory toolbox, as librosa with htk=False)

_F_SP = 200.0 / 3  # Hz per mel below 1 kHz
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = math.log(6.4) / 27.0


def hz_to_mel(frequencies: np.ndarray | float, *, htk: bool = False) -> np.ndarray:
    """Hz -> mel: Slaney (linear below 1 kHz, logarithmic above) or HTK."""
    f = np.asanyarray(frequencies, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    mels = f / _F_SP
    log_region = f >= _MIN_LOG_HZ
    return np.where(log_region,
                    _MIN_LOG_MEL + np.log(np.maximum(f, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP,
                    mels)


def mel_to_hz(mels: np.ndarray | float, *, htk: bool = False) -> np.ndarray:
    """Mel -> Hz, the inverse of :func:`hz_to_mel`."""
    m = np.asanyarray(mels, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    return np.where(m >= _MIN_LOG_MEL,
                    _MIN_LOG_HZ * np.exp(_LOGSTEP * (np.maximum(m, _MIN_LOG_MEL) - _MIN_LOG_MEL)),
                    _F_SP * m)


def mel_frequencies(n_mels: int = 128, *, fmin: float = 0.0, fmax: float = 11025.0,
                    htk: bool = False) -> np.ndarray:
    """``n_mels`` frequencies in Hz, uniformly spaced on the mel scale from fmin to fmax."""
    return mel_to_hz(np.linspace(hz_to_mel(fmin, htk=htk), hz_to_mel(fmax, htk=htk), n_mels),
                     htk=htk)


@functools.lru_cache(maxsize=32)
def _mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float,
                    htk: bool, norm: str | None) -> np.ndarray:
    fftfreqs = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)
    mel_f = mel_frequencies(n_mels + 2, fmin=fmin, fmax=fmax, htk=htk)
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if norm == "slaney":
        weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    elif norm is not None:
        raise ValueError(f"norm must be 'slaney' or None, got {norm!r}")
    if not np.all((mel_f[:-2] == 0) | (weights.max(axis=1) > 0)):
        warnings.warn(f"empty mel filters: n_mels={n_mels} is too many for n_fft={n_fft} at "
                      f"sample_rate={sample_rate} Hz between fmin={fmin} and fmax={fmax} Hz",
                      stacklevel=3)
    weights = weights.astype(np.float32)
    weights.flags.writeable = False
    return weights


def mel_filterbank(
    *, sample_rate: int, n_fft: int, n_mels: int = 128, fmin: float = 0.0,
    fmax: float | None = None, htk: bool = False, norm: str | None = "slaney",
) -> np.ndarray:
    """Triangular mel filterbank, equal to ``librosa.filters.mel`` (to float32 rounding).

    Parameters
    ----------
    sample_rate : int > 0
        In Hz.
    n_fft : int > 0
        FFT size in samples.
    n_mels : int > 0
        Number of mel bands.
    fmin : float >= 0
        Lowest band edge in Hz.
    fmax : float > fmin or None
        Highest band edge in Hz; None means ``sample_rate / 2``.
    htk : bool
        HTK mel formula instead of Slaney's.
    norm : "slaney" or None
        "slaney" divides each triangle by its width in Hz (about constant energy per band).

    Returns
    -------
    weights : np.ndarray, shape=(n_mels, 1 + n_fft // 2), float32, read-only
    """
    fmax = float(sample_rate) / 2 if fmax is None else float(fmax)
    return _mel_filterbank(int(sample_rate), int(n_fft), int(n_mels), float(fmin), fmax,
                           bool(htk), norm)


def _filterbank_tensor(like: torch.Tensor, **kw: Any) -> torch.Tensor:
    return torch.from_numpy(np.array(mel_filterbank(**kw))).to(like.device, like.dtype)


def melspectrogram(
    y: Array, *, sample_rate: int = 16000, n_fft: int = 1024, hop_length: int = 256,
    win_length: int | None = None, n_mels: int = 128, fmin: float = 0.0,
    fmax: float | None = None, power: float = 2.0,
) -> Array:
    """Mel spectrogram, as ``librosa.feature.melspectrogram`` with the same arguments.

    Parameters
    ----------
    y : np.ndarray or torch.Tensor, shape=(..., samples)
        Audio at ``sample_rate``.
    sample_rate : int > 0
        In Hz.
    n_fft, hop_length, win_length : int
        In samples; ``win_length`` None means ``n_fft``.
    n_mels : int > 0
    fmin, fmax : float
        Band edges in Hz; ``fmax`` None means ``sample_rate / 2``.
    power : float > 0
        1 for magnitude, 2 for power.

    Returns
    -------
    M : same kind as ``y``, shape=(..., n_mels, 1 + samples // hop_length), float32
    """
    t, was_numpy = _as_tensor(y)
    spec = _stft(t, n_fft, hop_length, win_length or n_fft).abs()
    if power == 2.0:
        spec = spec.square()
    elif power != 1.0:
        spec = spec.pow(power)
    fb = _filterbank_tensor(spec, sample_rate=sample_rate, n_fft=n_fft, n_mels=n_mels,
                            fmin=fmin, fmax=fmax)
    return _back(torch.matmul(fb, spec), was_numpy)


# ---------------------------------------------------------------------------------------------
# Decibels


def power_to_db(
    S: Array, *, ref: float | Callable[[Any], Any] = 1.0, amin: float = AMIN,
    top_db: float | None = None,
) -> Array:
    """``10 * log10(max(S, amin) / max(ref, amin))``, as ``librosa.power_to_db``.

    Parameters
    ----------
    S : np.ndarray or torch.Tensor
        Power (non-negative).
    ref : float or callable
        Reference power (0 dB), or a function of ``S`` giving it (e.g. ``np.max``).
    amin : float > 0
        Floor on ``S`` and ``ref``; the default 1e-10 gives a floor of -100 dB for ref 1.
    top_db : float >= 0 or None
        If given, clip to ``max - top_db``. Unlike librosa (default 80), None: no clipping.

    Returns
    -------
    same kind and shape as ``S``, in dB
    """
    if amin <= 0:
        raise ValueError(f"amin must be > 0, got {amin}")
    t, was_numpy = _as_tensor(S)
    t = t.float() if not t.is_floating_point() else t
    ref_value = ref(S) if callable(ref) else ref
    ref_value = float(abs(ref_value))
    db = 10.0 * torch.log10(t.clamp_min(amin)) - 10.0 * math.log10(max(amin, ref_value))
    if top_db is not None:
        if top_db < 0:
            raise ValueError(f"top_db must be >= 0, got {top_db}")
        db = torch.maximum(db, db.max() - top_db)
    return _back(db, was_numpy)


def db_to_power(S_db: Array, *, ref: float = 1.0) -> Array:
    """``ref * 10 ** (S_db / 10)``, the inverse of :func:`power_to_db` (above its floor)."""
    t, was_numpy = _as_tensor(S_db)
    return _back(ref * torch.pow(10.0, t.float() / 10.0), was_numpy)


# ---------------------------------------------------------------------------------------------
# AudioConfig helpers


def frontend_params(cfg: AudioConfig) -> dict[str, Any]:
    """The resolved parameters of the mel frontend (0 defaults replaced), as keyword arguments
    of :func:`melspectrogram`: sample_rate, n_fft, hop_length, win_length, n_mels, fmin, fmax."""
    return {
        "sample_rate": int(cfg.sample_rate),
        "n_fft": int(cfg.n_fft),
        "hop_length": int(cfg.hop_length),
        "win_length": int(cfg.win_length or cfg.n_fft),
        "n_mels": int(cfg.n_mels),
        "fmin": float(cfg.fmin),
        "fmax": float(cfg.fmax or cfg.sample_rate / 2),
    }


def mel_db_from_audio(y: Array, cfg: AudioConfig) -> Array:
    """Audio at ``cfg.sample_rate`` -> mel power in dB (ref 1.0, floor -100 dB, no clipping).

    Parameters
    ----------
    y : np.ndarray or torch.Tensor, shape=(..., samples)
    cfg : AudioConfig

    Returns
    -------
    mel_db : same kind as ``y``, shape=(..., n_mels, T), float32, in dB
    """
    return power_to_db(melspectrogram(y, **frontend_params(cfg), power=2.0))
