"""The mel frontend's inverse: mel -> linear STFT magnitude (non-negative least squares) ->
audio (fast Griffin-Lim with momentum, Perraudin, Balazs and Sondergaard, "A fast Griffin-Lim
algorithm", WASPAA 2013), batched in torch. Equivalent to ``librosa.feature.inverse``'s
``mel_to_stft`` / ``mel_to_audio`` and ``librosa.griffinlim``.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import torch

from vqkit.audio.mel import (
    Array,
    _as_tensor,
    _back,
    _filterbank_tensor,
    _istft,
    _stft,
    db_to_power,
    frontend_params,
    mel_filterbank,
)
from vqkit.config import AudioConfig

__all__ = ["audio_from_mel_db", "griffin_lim", "mel_to_audio", "mel_to_stft"]


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
