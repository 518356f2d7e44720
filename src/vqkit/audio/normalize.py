"""Mel spectrograms in dB <-> the model's [-1, 1] scale, and padding to whole frames.

Two normalisations, picked by :attr:`~vqkit.config.AudioConfig.normalization`:

- ``"utterance_minmax"`` (the thesis): clamp at ``max - top_db``, then map the utterance's own
  minimum and maximum to -1 and +1. Inverting needs those two numbers (the *stats*), which a
  decoder given only codes does not have.
- ``"fixed_db"``: the fixed affine map of ``[min_db, max_db]`` to ``[-1, 1]``, clamped. It needs
  no stats: any model output can be turned back into dB.

In both, -1 is silence: padding frames take the value :data:`SILENCE`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from vqkit.audio.mel import AMIN
from vqkit.config import AudioConfig
from vqkit.errors import ConfigError

__all__ = [
    "FLOOR_DB",
    "NORMALIZATIONS",
    "SILENCE",
    "clip_frames",
    "clip_samples",
    "denormalize_mel",
    "frames_for_samples",
    "normalize_mel_db",
    "pad_frames",
    "pad_or_cut_frames",
]

Array = np.ndarray | torch.Tensor
Stats = tuple[float, float] | tuple[Array, Array]

SILENCE = -1.0  # the normalised value of silence and of padding
FLOOR_DB = 10.0 * math.log10(AMIN)  # -100 dB: the dB of digital silence in the mel cache
NORMALIZATIONS = ("utterance_minmax", "fixed_db")


def _check(cfg: AudioConfig) -> None:
    if cfg.normalization not in NORMALIZATIONS:
        raise ConfigError(f"audio.normalization: unknown {cfg.normalization!r} "
                          f"({', '.join(NORMALIZATIONS)})")
    if cfg.normalization == "fixed_db" and not cfg.max_db > cfg.min_db:
        raise ConfigError(f"audio.max_db ({cfg.max_db}) must be above audio.min_db "
                          f"({cfg.min_db})")


def _amax(x: Array) -> Array:
    """Maximum over the last two axes, keeping them: (..., n_mels, T) -> (..., 1, 1)."""
    if isinstance(x, torch.Tensor):
        return x.amax(dim=(-2, -1), keepdim=True)
    return x.max(axis=(-2, -1), keepdims=True)


def _amin(x: Array) -> Array:
    if isinstance(x, torch.Tensor):
        return x.amin(dim=(-2, -1), keepdim=True)
    return x.min(axis=(-2, -1), keepdims=True)


def _squeeze_stat(s: Array, ndim: int) -> float | Array:
    s = s[..., 0, 0]
    return float(s) if ndim == 2 else s


def _expand_stat(s: float | Array, like: Array) -> float | Array:
    if isinstance(s, (int, float)):
        return float(s)
    if isinstance(like, torch.Tensor):
        s = torch.as_tensor(s, dtype=like.dtype, device=like.device)
    else:
        s = np.asarray(s, dtype=like.dtype)
    return s[..., None, None]


def normalize_mel_db(mel_db: Array, cfg: AudioConfig) -> tuple[Array, Stats | None]:
    """Mel power in dB -> the model's scale [-1, 1].

    Parameters
    ----------
    mel_db : np.ndarray or torch.Tensor, shape=(..., n_mels, T)
        Mel power in dB (ref 1.0, as :func:`vqkit.audio.mel.mel_db_from_audio` and the mel cache
        give it). With leading dimensions each (n_mels, T) item has its own min/max.
    cfg : AudioConfig
        ``normalization``; ``top_db`` for "utterance_minmax"; ``min_db``, ``max_db`` for
        "fixed_db".

    Returns
    -------
    norm : same kind as ``mel_db``, same shape, float32, in [-1, 1]
    stats : (lo, hi) in dB or None
        "utterance_minmax": the dB values mapped to -1 and +1 (floats for a 2-D input, arrays of
        the leading shape otherwise); a constant input maps to -1 with ``lo == hi``.
        "fixed_db": None (the map is fixed).
    """
    _check(cfg)
    x = mel_db.float() if isinstance(mel_db, torch.Tensor) else np.asarray(mel_db, np.float32)
    if cfg.normalization == "fixed_db":
        scale = 2.0 / (cfg.max_db - cfg.min_db)
        norm = (x - cfg.min_db) * scale - 1.0
        norm = norm.clamp(-1.0, 1.0) if isinstance(norm, torch.Tensor) else np.clip(norm, -1, 1)
        return norm, None
    hi = _amax(x)
    if isinstance(x, torch.Tensor):
        x = torch.maximum(x, hi - cfg.top_db)
    else:
        x = np.maximum(x, hi - np.float32(cfg.top_db))
    lo = _amin(x)
    span = hi - lo
    span = (torch.where(span > 0, span, torch.ones_like(span)) if isinstance(span, torch.Tensor)
            else np.where(span > 0, span, np.float32(1.0)))
    norm = (x - lo) * (2.0 / span) - 1.0
    return norm, (_squeeze_stat(lo, x.ndim), _squeeze_stat(hi, x.ndim))


def denormalize_mel(norm: Array, cfg: AudioConfig, stats: Stats | None = None) -> Array:
    """The model's scale -> mel power in dB: the inverse of :func:`normalize_mel_db`.

    Parameters
    ----------
    norm : np.ndarray or torch.Tensor, shape=(..., n_mels, T)
        Values on the model's scale; clamped to [-1, 1] first (a model may overshoot).
    cfg : AudioConfig
    stats : (lo, hi) or None
        What :func:`normalize_mel_db` returned; required for "utterance_minmax", ignored for
        "fixed_db".

    Returns
    -------
    mel_db : same kind and shape as ``norm``, float32, in dB (ref 1.0)

    Raises
    ------
    ValueError
        "utterance_minmax" without stats.
    """
    _check(cfg)
    x = norm.float() if isinstance(norm, torch.Tensor) else np.asarray(norm, np.float32)
    x = x.clamp(-1.0, 1.0) if isinstance(x, torch.Tensor) else np.clip(x, -1.0, 1.0)
    if cfg.normalization == "fixed_db":
        lo, hi = cfg.min_db, cfg.max_db
    else:
        if stats is None:
            raise ValueError("utterance_minmax: denormalising needs the utterance's (min, max) "
                             "in dB")
        lo, hi = _expand_stat(stats[0], x), _expand_stat(stats[1], x)
    return (x + 1.0) * ((hi - lo) / 2.0) + lo


def pad_frames(x: Array, multiple: int, value: float = SILENCE) -> Array:
    """Pad the last axis (frames) with ``value`` up to a multiple of ``multiple``.

    Parameters
    ----------
    x : np.ndarray or torch.Tensor, shape=(..., T)
    multiple : int > 0
        E.g. the model's downsampling factor (4 for two strided convolutions).
    value : float
        Fill value; :data:`SILENCE` (-1) on the model's scale.

    Returns
    -------
    same kind as ``x``, shape=(..., ceil(T / multiple) * multiple)
    """
    n = x.shape[-1]
    target = -(-n // multiple) * multiple
    return pad_or_cut_frames(x, target, value)


def pad_or_cut_frames(x: Array, n_frames: int, value: float = SILENCE) -> Array:
    """Cut the last axis to ``n_frames`` (keeping the beginning) or pad it with ``value``."""
    n = x.shape[-1]
    if n >= n_frames:
        return x[..., :n_frames]
    if isinstance(x, torch.Tensor):
        return torch.nn.functional.pad(x, (0, n_frames - n), value=value)
    widths = [(0, 0)] * (x.ndim - 1) + [(0, n_frames - n)]
    return np.pad(x, widths, constant_values=value)


def frames_for_samples(n_samples: int, cfg: AudioConfig) -> int:
    """Mel frames of ``n_samples`` samples: ``1 + n_samples // hop_length`` (centred frames)."""
    return 1 + int(n_samples) // int(cfg.hop_length)


def clip_samples(cfg: AudioConfig) -> int:
    """Samples of a ``clip_s`` clip at ``sample_rate`` (0 when ``clip_s`` is 0)."""
    return int(round(cfg.clip_s * cfg.sample_rate))


def clip_frames(cfg: AudioConfig, *, multiple: int = 4) -> int:
    """Frames of the model input for one ``clip_s`` clip, rounded UP to a multiple of ``multiple``.

    A clip of ``clip_s`` seconds has ``1 + clip_samples // hop_length`` mel frames (centred
    frames); the model needs a multiple of its downsampling factor (4), so the clip is padded
    further with silence (-1): 5 s at 16 kHz with hop 256 is 313 frames, padded to 316. The
    extra frames are padding and never count in metrics. 0 when ``clip_s`` is 0.
    """
    if cfg.clip_s <= 0:
        return 0
    n = frames_for_samples(clip_samples(cfg), cfg)
    return -(-n // multiple) * multiple
