"""Mel frontend and its inverse: audio -> mel power (dB) -> audio, batched in torch.

Forward: :func:`load_audio` (soundfile, mono, resampled with soxr), :func:`stft_magnitude`,
:func:`mel_filterbank` (librosa-compatible Slaney mel scale and norm), :func:`melspectrogram`,
:func:`power_to_db`. Inverse: :func:`db_to_power`, :func:`mel_to_stft` (non-negative least
squares), :func:`griffin_lim` (fast Griffin-Lim with momentum, Perraudin, Balazs and Sondergaard,
"A fast Griffin-Lim algorithm", WASPAA 2013), :func:`mel_to_audio`.

Array functions accept a numpy array or a torch tensor and return the same kind; leading batch
dimensions are allowed everywhere. The STFT matches ``librosa.stft`` (periodic Hann window,
``center=True`` with zero padding); mel spectrograms match ``librosa.feature.melspectrogram``.

:func:`mel_db_from_audio` and :func:`audio_from_mel_db` take an
:class:`~vqkit.config.AudioConfig` and are the two directions every other module uses.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import soundfile as sf
import soxr
import torch

from vqkit.config import AudioConfig
from vqkit.errors import DataError

__all__ = [
    "load_audio",
    "resample",
    "stft_magnitude",
    "hz_to_mel",
    "mel_to_hz",
    "mel_frequencies",
    "mel_filterbank",
    "melspectrogram",
    "power_to_db",
    "db_to_power",
    "mel_to_stft",
    "griffin_lim",
    "mel_to_audio",
    "frontend_params",
    "mel_db_from_audio",
    "audio_from_mel_db",
    "AMIN",
]

Array = np.ndarray | torch.Tensor

AMIN = 1e-10  # floor of the power before taking dB: 10 * log10(1e-10) = -100 dB


# ---------------------------------------------------------------------------------------------
# Loading and resampling


def load_audio(path: str | Path | IO[bytes], *, sample_rate: int) -> np.ndarray:
    """Read an audio file as float32 mono at ``sample_rate``.

    Parameters
    ----------
    path : str, Path or binary file object
        Any format libsndfile reads (WAV, FLAC, OGG, ...).
    sample_rate : int > 0
        Target sampling rate in Hz; the file is resampled with soxr (HQ) when it differs.

    Returns
    -------
    y : np.ndarray, shape=(samples,), float32
        Mono signal. Two channels are averaged to mono; more than two are an error.

    Raises
    ------
    DataError
        Naming the file, when it is unreadable, empty, has more than two channels or holds
        non-finite samples.
    """
    name = str(getattr(path, "name", path))
    try:
        data, file_sr = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as e:
        if isinstance(path, (str, Path)) and Path(path).is_file() and not Path(path).stat().st_size:
            raise DataError(f"{name}: empty file (0 bytes)") from None
        raise DataError(f"{name}: unreadable audio ({e})") from None
    except OSError as e:
        raise DataError(f"{name}: cannot read ({e.strerror or e})") from None
    if data.shape[0] == 0:
        raise DataError(f"{name}: empty audio (0 samples)")
    if data.shape[1] > 2:
        raise DataError(f"{name}: {data.shape[1]} channels; expected mono or stereo")
    if not np.isfinite(data).all():
        raise DataError(f"{name}: non-finite samples (NaN or Inf)")
    y = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
    return resample(y, orig_sample_rate=int(file_sr), target_sample_rate=sample_rate)


def resample(
    y: np.ndarray, *, orig_sample_rate: int, target_sample_rate: int, quality: str = "HQ"
) -> np.ndarray:
    """Resample with soxr along the last axis.

    Parameters
    ----------
    y : np.ndarray, shape=(..., samples)
    orig_sample_rate, target_sample_rate : int > 0
        In Hz.
    quality : str
        soxr quality: "QQ", "LQ", "MQ", "HQ" (librosa's ``soxr_hq``) or "VHQ".

    Returns
    -------
    np.ndarray, shape=(..., ceil(samples * target / orig)), float32
    """
    y = np.asarray(y, dtype=np.float32)
    if orig_sample_rate <= 0 or target_sample_rate <= 0:
        raise ValueError(f"sample rates must be > 0, got {orig_sample_rate}, {target_sample_rate}")
    if orig_sample_rate == target_sample_rate:
        return y
    if y.ndim == 1:
        return soxr.resample(y, orig_sample_rate, target_sample_rate, quality=quality)
    # soxr takes (samples, channels): resample all leading rows as channels in one call
    flat = y.reshape(-1, y.shape[-1])
    out = soxr.resample(np.ascontiguousarray(flat.T), orig_sample_rate, target_sample_rate,
                        quality=quality)
    return np.ascontiguousarray(out.T).reshape(*y.shape[:-1], -1)


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
# Inverse: mel -> linear STFT magnitude -> audio


def mel_to_stft(
    M: Array, *, sample_rate: int = 16000, n_fft: int = 1024, fmin: float = 0.0,
    fmax: float | None = None, power: float = 2.0, method: str = "nnls", n_iter: int = 30,
) -> Array:
    """Approximate linear STFT magnitude from a mel spectrogram (``librosa.feature.inverse``).

    Solves ``min ||mel_basis @ S**power - M||`` over ``S >= 0``, for all frames at once.

    Parameters
    ----------
    M : np.ndarray or torch.Tensor, shape=(..., n_mels, T)
        Mel spectrogram (power for ``power=2``), non-negative.
    sample_rate, n_fft, fmin, fmax
        As given to :func:`melspectrogram`.
    power : float > 0
        Exponent used when ``M`` was computed.
    method : "nnls" or "pinv"
        "pinv": pseudo-inverse clamped at 0 (fast). "nnls": that, refined by ``n_iter``
        multiplicative non-negative least-squares updates (Lee and Seung), which converge to
        the NNLS solution librosa computes with L-BFGS-B.
    n_iter : int >= 0
        Refinement steps of "nnls".

    Returns
    -------
    S : same kind as ``M``, shape=(..., 1 + n_fft // 2, T)
        Magnitude (``S ** power`` approximates the linear power).
    """
    t, was_numpy = _as_tensor(M)
    t = t.float() if not t.is_floating_point() else t
    n_mels = t.shape[-2]
    fb = _filterbank_tensor(t, sample_rate=sample_rate, n_fft=n_fft, n_mels=n_mels,
                            fmin=fmin, fmax=fmax)
    pinv = _pinv_tensor(t, sample_rate=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin,
                        fmax=fmax)
    t = t.clamp_min(0)
    S = torch.matmul(pinv, t).clamp_min(0)
    if method == "nnls":
        # Multiplicative updates need a strictly positive start; keep bins a filter covers.
        covered = (fb.sum(dim=0) > 0).to(t.dtype)[:, None]
        S = S + 1e-12 * covered
        numer = torch.matmul(fb.T, t)
        for _ in range(n_iter):
            S = S * numer / (torch.matmul(fb.T, torch.matmul(fb, S)) + 1e-20)
    elif method != "pinv":
        raise ValueError(f"method must be 'nnls' or 'pinv', got {method!r}")
    if power != 1.0:
        S = S.pow(1.0 / power)
    return _back(S, was_numpy)


@functools.lru_cache(maxsize=16)
def _pinv(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None) -> np.ndarray:
    fb = mel_filterbank(sample_rate=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    return np.linalg.pinv(fb.astype(np.float64)).astype(np.float32)


def _pinv_tensor(like: torch.Tensor, **kw: Any) -> torch.Tensor:
    return torch.from_numpy(_pinv(**kw)).to(like.device, like.dtype)


def griffin_lim(
    magnitude: Array, *, n_fft: int = 1024, hop_length: int = 256, win_length: int | None = None,
    n_iter: int = 64, momentum: float = 0.99, length: int | None = None, seed: int | None = 0,
) -> Array:
    """Fast Griffin-Lim (Perraudin et al. 2013): a signal whose STFT magnitude is ``magnitude``.

    Each step projects onto consistent spectrograms (iSTFT then STFT), extrapolates with
    ``momentum`` (``c_n = t_n + momentum * (t_n - t_{n-1})``) and restores the magnitude; with
    ``momentum=0`` it is the original Griffin-Lim. Equivalent to ``librosa.griffinlim``, batched.

    Parameters
    ----------
    magnitude : np.ndarray or torch.Tensor, shape=(B, 1 + n_fft // 2, T) or (F, T)
        Non-negative STFT magnitude, centred frames (:func:`stft_magnitude`).
    n_fft, hop_length, win_length : int
        In samples; ``win_length`` None means ``n_fft``.
    n_iter : int >= 0
        Iterations.
    momentum : float in [0, 1)
        0.99 is the value Perraudin et al. recommend.
    length : int or None
        Output length in samples; None gives ``hop_length * (T - 1)``.
    seed : int or None
        Seed of the random initial phase; None draws from torch's global generator.

    Returns
    -------
    y : same kind as ``magnitude``, shape=(B, samples) or (samples,), float32
    """
    if momentum < 0:
        raise ValueError(f"momentum must be >= 0, got {momentum}")
    S, was_numpy = _as_tensor(magnitude)
    S = S.float() if not S.is_floating_point() else S
    win_length = win_length or n_fft
    gen = None
    if seed is not None:
        gen = torch.Generator(device=S.device).manual_seed(seed)
    phase = torch.rand(S.shape, generator=gen, device=S.device, dtype=S.dtype) * (2 * math.pi)
    angles = torch.polar(torch.ones_like(S), phase)
    eps = torch.finfo(S.dtype).tiny
    alpha = momentum / (1.0 + momentum)
    tprev: torch.Tensor | None = None
    for _ in range(n_iter):
        inverse = _istft(S * angles, n_fft, hop_length, win_length, length)
        rebuilt = _stft(inverse, n_fft, hop_length, win_length)
        # c_n = t_n + a (t_n - t_{n-1}), up to the scale (1 + a) that the phase ignores
        angles = rebuilt - alpha * tprev if tprev is not None else rebuilt
        angles = angles / (angles.abs() + eps)
        tprev = rebuilt
    y = _istft(S * angles, n_fft, hop_length, win_length, length)
    return _back(y, was_numpy)


def mel_to_audio(
    M: Array, *, sample_rate: int = 16000, n_fft: int = 1024, hop_length: int = 256,
    win_length: int | None = None, fmin: float = 0.0, fmax: float | None = None,
    power: float = 2.0, n_iter: int = 64, momentum: float = 0.99, length: int | None = None,
    seed: int | None = 0,
) -> Array:
    """Mel spectrogram -> audio: :func:`mel_to_stft` then :func:`griffin_lim`.

    Parameters
    ----------
    M : np.ndarray or torch.Tensor, shape=(B, n_mels, T) or (n_mels, T)
        Mel power (``power=2``) or magnitude (``power=1``) spectrogram.
    Other parameters
        As :func:`melspectrogram` and :func:`griffin_lim`.

    Returns
    -------
    y : same kind as ``M``, shape=(B, samples) or (samples,), float32, at ``sample_rate``
    """
    S = mel_to_stft(M, sample_rate=sample_rate, n_fft=n_fft, fmin=fmin, fmax=fmax, power=power)
    return griffin_lim(S, n_fft=n_fft, hop_length=hop_length, win_length=win_length,
                       n_iter=n_iter, momentum=momentum, length=length, seed=seed)


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


def audio_from_mel_db(mel_db: Array, cfg: AudioConfig, *, length: int | None = None,
                      seed: int | None = 0) -> Array:
    """Mel power in dB (as :func:`mel_db_from_audio`) -> audio via NNLS and fast Griffin-Lim.

    Parameters
    ----------
    mel_db : np.ndarray or torch.Tensor, shape=(B, n_mels, T) or (n_mels, T)
    cfg : AudioConfig
        Frontend parameters, ``griffin_lim_iters`` and ``griffin_lim_momentum``.
    length : int or None
        Output length in samples.

    Returns
    -------
    y : same kind as ``mel_db``, shape=(B, samples) or (samples,), at ``cfg.sample_rate``
    """
    p = frontend_params(cfg)
    return mel_to_audio(db_to_power(mel_db), sample_rate=p["sample_rate"], n_fft=p["n_fft"],
                        hop_length=p["hop_length"], win_length=p["win_length"], fmin=p["fmin"],
                        fmax=p["fmax"], power=2.0, n_iter=cfg.griffin_lim_iters,
                        momentum=cfg.griffin_lim_momentum, length=length, seed=seed)
