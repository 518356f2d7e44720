"""Waveform <-> model input and output: the one place that knows how a speech model sees audio.

Forward: audio -> mel dB (:func:`vqkit.audio.mel.mel_db_from_audio`) -> cut to ``clip_s`` when
set -> normalised (:func:`vqkit.audio.normalize.normalize_mel_db`) -> padded with silence (-1) to
the model's frame multiple, or to the whole clip (``clip_s``, as the thesis). Backward: model
output -> real frames only -> dB (:func:`~vqkit.audio.normalize.denormalize_mel`) -> Griffin-Lim
(:func:`vqkit.audio.mel.audio_from_mel_db`).

Evaluation, ``vqkit reconstruct`` and ``vqkit encode/decode`` all go through these functions, so a
model is always fed what it was trained on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from vqkit.audio.griffinlim import audio_from_mel_db
from vqkit.audio.mel import mel_db_from_audio
from vqkit.audio.normalize import (
    FLOOR_DB,
    SILENCE,
    clip_frames,
    clip_samples,
    denormalize_mel,
    frames_for_samples,
    normalize_mel_db,
    pad_frames,
    pad_or_cut_frames,
)
from vqkit.config import AudioConfig, RunConfig

__all__ = [
    "MelInfo",
    "batch_model_input",
    "mel_db_to_waveforms",
    "model_output_to_mel_db",
    "model_output_to_wav",
    "prepare_mel_db",
    "wav_to_model_input",
    "write_wav",
]


@dataclass(frozen=True)
class MelInfo:
    """What is needed to turn a model output back into audio.

    Attributes
    ----------
    n_frames : int
        Real mel frames at the start of the model input; the rest is padding.
    n_samples : int
        Samples (at ``sample_rate``) the real frames describe: the output waveform's length.
    stats : (lo, hi) in dB or None
        Per-utterance min/max for "utterance_minmax"; None for "fixed_db".
    """

    n_frames: int
    n_samples: int
    stats: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (e.g. to store beside codes)."""
        d = asdict(self)
        d["stats"] = list(self.stats) if self.stats is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any] | MelInfo) -> MelInfo:
        """From :meth:`to_dict`'s output (or a MelInfo, returned as is)."""
        if isinstance(d, MelInfo):
            return d
        stats = d.get("stats")
        return cls(int(d["n_frames"]), int(d["n_samples"]),
                   (float(stats[0]), float(stats[1])) if stats is not None else None)


def _audio(cfg: AudioConfig | RunConfig) -> AudioConfig:
    return cfg.audio if isinstance(cfg, RunConfig) else cfg


def _multiple(cfg: AudioConfig | RunConfig, multiple: int | None) -> int:
    if multiple is not None:
        return multiple
    return 2 ** cfg.model.num_downsamples if isinstance(cfg, RunConfig) else 4


def prepare_mel_db(
    mel_db: np.ndarray, cfg: AudioConfig | RunConfig, *, n_samples: int | None = None
) -> tuple[np.ndarray, MelInfo]:
    """One utterance's mel dB -> its real frames on the model's scale, and their :class:`MelInfo`.

    With ``clip_s > 0`` the utterance is cut to the clip and, for "utterance_minmax", normalised
    as the thesis did: over the clip padded with digital silence (-100 dB) to ``clip_s``, so a
    short clip's minimum is ``max - top_db``.

    Parameters
    ----------
    mel_db : np.ndarray, shape=(n_mels, T), in dB (ref 1.0)
    cfg : AudioConfig
    n_samples : int or None
        Length of the utterance in samples at ``sample_rate``; None means ``(T - 1) * hop``.

    Returns
    -------
    norm : np.ndarray, shape=(n_mels, n_frames), float32 in [-1, 1] (no padding)
    info : MelInfo
    """
    cfg = _audio(cfg)
    mel_db = np.asarray(mel_db, dtype=np.float32)
    n = mel_db.shape[-1]
    if n_samples is None:
        n_samples = (n - 1) * cfg.hop_length
    if cfg.clip_s > 0:
        clip_n = frames_for_samples(clip_samples(cfg), cfg)
        n = min(n, clip_n)
        n_samples = min(n_samples, clip_samples(cfg))
        # The thesis padded the waveform with zeros to 5 s before taking the mel: the padding is
        # at the -100 dB floor and takes part in the per-utterance min/max.
        mel_db = pad_or_cut_frames(mel_db, clip_n, FLOOR_DB)
    norm, stats = normalize_mel_db(mel_db, cfg)
    if stats is not None:
        stats = (float(stats[0]), float(stats[1]))
    return np.ascontiguousarray(norm[:, :n]), MelInfo(n, int(n_samples), stats)


def batch_model_input(
    norms: list[np.ndarray] | list[torch.Tensor], *, frames: int = 0, multiple: int = 4
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack utterances on the model's scale into one padded batch and its mask of real frames.

    Parameters
    ----------
    norms : list of arrays, each shape=(n_mels, n_i)
    frames : int >= 0
        Frames of every item (e.g. :func:`~vqkit.audio.normalize.clip_frames`, longer items
        are cut); 0 pads to the longest item rounded up to ``multiple``.
    multiple : int > 0
        The model's downsampling factor.

    Returns
    -------
    x : torch.Tensor, shape=(B, 1, n_mels, T), float32, padding = -1
    mask : torch.Tensor, shape=(B, 1, 1, T), bool, True on real frames
    """
    ts = [torch.as_tensor(np.asarray(m, dtype=np.float32)) if not isinstance(m, torch.Tensor)
          else m.float() for m in norms]
    longest = max(t.shape[-1] for t in ts)
    T = frames or -(-longest // multiple) * multiple
    x = torch.stack([pad_or_cut_frames(t, T, SILENCE) for t in ts]).unsqueeze(1)
    lengths = torch.tensor([min(t.shape[-1], T) for t in ts])
    mask = (torch.arange(T)[None, :] < lengths[:, None])[:, None, None, :]
    return x, mask


def wav_to_model_input(
    y: np.ndarray, cfg: AudioConfig | RunConfig, *, multiple: int | None = None
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Waveform at ``sample_rate`` -> model input (1, 1, n_mels, T') and its side information.

    ``T'`` is the clip (:func:`~vqkit.audio.normalize.clip_frames`) when ``clip_s > 0``, as the
    thesis; otherwise the utterance's frames rounded up to ``multiple``. Padding is silence (-1).

    Parameters
    ----------
    y : np.ndarray, shape=(samples,), float32
        Mono audio at the config's ``sample_rate`` (:func:`vqkit.audio.mel.load_audio`).
    cfg : AudioConfig or RunConfig
    multiple : int > 0 or None
        The model's downsampling factor; None: ``2 ** model.num_downsamples`` of a RunConfig,
        4 for an AudioConfig.

    Returns
    -------
    x : torch.Tensor, shape=(1, 1, n_mels, T'), float32
    info : dict
        :meth:`MelInfo.to_dict` (``n_frames``, ``n_samples``, ``stats``): plain JSON values
        that :func:`model_output_to_wav` needs (e.g. stored beside the codes).
    """
    multiple = _multiple(cfg, multiple)
    cfg = _audio(cfg)
    y = np.asarray(y, dtype=np.float32)
    mel_db = mel_db_from_audio(y, cfg)
    norm, info = prepare_mel_db(mel_db, cfg, n_samples=len(y))
    frames = clip_frames(cfg, multiple=multiple)
    x = (pad_or_cut_frames(norm, frames, SILENCE) if frames
         else pad_frames(norm, multiple, SILENCE))
    return torch.from_numpy(np.ascontiguousarray(x))[None, None], info.to_dict()


def model_output_to_mel_db(x_hat: torch.Tensor, cfg: AudioConfig | RunConfig,
                           infos: list[MelInfo] | list[dict[str, Any]]) -> torch.Tensor:
    """Model output (B, 1, n_mels, T) -> mel dB (B, n_mels, T); frames past each item's
    ``n_frames`` are set to the -100 dB floor (silence)."""
    cfg = _audio(cfg)
    infos = [MelInfo.from_dict(i) for i in infos]
    x = x_hat[:, 0].float()
    if cfg.normalization == "utterance_minmax":
        lo = torch.tensor([i.stats[0] if i.stats else 0.0 for i in infos], device=x.device)
        hi = torch.tensor([i.stats[1] if i.stats else 0.0 for i in infos], device=x.device)
        db = denormalize_mel(x, cfg, (lo, hi))
    else:
        db = denormalize_mel(x, cfg)
    n = torch.tensor([i.n_frames for i in infos], device=x.device)
    real = torch.arange(x.shape[-1], device=x.device)[None, :] < n[:, None]
    return torch.where(real[:, None, :], db, torch.full_like(db, FLOOR_DB))


def mel_db_to_waveforms(mel_db: torch.Tensor, cfg: AudioConfig | RunConfig,
                        lengths: list[int], *, seed: int | None = 0) -> list[np.ndarray]:
    """Griffin-Lim of a batch of mel dB (B, n_mels, T) at once, cut to each item's length.

    Items are run together (padded frames should be at the -100 dB floor); item ``i`` gets the
    first ``lengths[i]`` samples. The frames beyond ``1 + max(lengths) // hop`` are dropped.
    """
    cfg = _audio(cfg)
    longest = max(lengths)
    mel_db = mel_db[..., :frames_for_samples(longest, cfg)]
    y = audio_from_mel_db(mel_db, cfg, length=longest, seed=seed)
    y = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    return [np.ascontiguousarray(y[i, :n], dtype=np.float32) for i, n in enumerate(lengths)]


def model_output_to_wav(x_hat: torch.Tensor, cfg: AudioConfig | RunConfig,
                        info: MelInfo | dict[str, Any], *, seed: int | None = 0) -> np.ndarray:
    """Model output (1, 1, n_mels, T) -> waveform (n_samples,) at ``sample_rate``, float32:
    real frames only, de-normalised, then Griffin-Lim.

    ``info`` is what :func:`wav_to_model_input` returned (a dict, or a :class:`MelInfo`).
    """
    info = MelInfo.from_dict(info)
    db = model_output_to_mel_db(x_hat[:1], cfg, [info])[:, :, :info.n_frames]
    return mel_db_to_waveforms(db, cfg, [info.n_samples], seed=seed)[0]


def write_wav(path: str | Path, y: np.ndarray | torch.Tensor, sample_rate: int) -> Path:
    """Write mono audio as a 32-bit float WAV (nothing clips; Griffin-Lim may exceed 1)."""
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    sf.write(str(path), np.asarray(y, dtype=np.float32).reshape(-1), int(sample_rate),
             subtype="FLOAT")
    return Path(path)

