"""A differentiable stand-in for STOI computed on mel spectrograms, for code search.

STOI (Taal et al. 2011) correlates the short-time envelopes of clean and degraded speech in
15 one-third-octave bands (150 Hz - 4.3 kHz) over 384 ms segments, after dropping frames more
than 40 dB below the loudest clean frame and clipping the gain-matched degraded envelope at
15 dB above the clean one. :class:`MelStoi` does the same on mel magnitudes: a band's envelope
is the root of the summed power of the mel bins whose centre lies in it, and a segment is
384 ms of mel frames. It is not the figure vqkit reports (pystoi on the Griffin-Lim waveform,
:mod:`vqkit.evaluation.speech_scores`), only a smooth objective that follows it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vqkit.audio.mel import mel_frequencies
from vqkit.audio.normalize import denormalize_mel
from vqkit.config import AudioConfig
from vqkit.errors import ConfigError

__all__ = ["MelStoi", "model_scale_to_db", "stoi_bands"]

BANDS, LOWEST_HZ = 15, 150.0  # STOI's one-third-octave bands and the centre of the first
SEGMENT_S = 0.384  # STOI's segment: 30 frames of 12.8 ms
DYNAMIC_RANGE_DB = 40.0  # frames this far below the loudest clean frame are dropped
CLIP = 10 ** (15 / 20)  # degraded envelopes are clipped at 15 dB above the clean one


def model_scale_to_db(x: Tensor, cfg: AudioConfig) -> Tensor:
    """(B, 1, n_mels, T) or (B, n_mels, T) on the model's scale -> (B, n_mels, T) dB, float32.
    For ``utterance_minmax`` (no stats at hand) the top_db range below 0 dB: right up to a
    gain, which STOI ignores."""
    x = (x[:, 0] if x.dim() == 4 else x).float()
    if cfg.normalization == "fixed_db":
        return denormalize_mel(x, cfg)
    return (x.clamp(-1, 1) + 1) / 2 * cfg.top_db - cfg.top_db


def stoi_bands(cfg: AudioConfig) -> Tensor:
    """(bands, n_mels) 0/1 matrix: which mel bins' centres fall in each of STOI's bands; bands
    holding no bin are left out. ConfigError when no band holds a bin."""
    fmax = cfg.fmax or cfg.sample_rate / 2
    centres = torch.as_tensor(
        mel_frequencies(cfg.n_mels + 2, fmin=cfg.fmin, fmax=fmax)[1:-1], dtype=torch.float32)
    cf = LOWEST_HZ * 2 ** (torch.arange(BANDS, dtype=torch.float32) / 3)
    inside = ((centres[None] >= cf[:, None] * 2 ** (-1 / 6))
              & (centres[None] < cf[:, None] * 2 ** (1 / 6)))
    inside = inside[inside.any(1)]
    if not len(inside):
        raise ConfigError(f"mel bins ({cfg.n_mels} from {cfg.fmin:g} to {fmax:g} Hz) miss every "
                          f"STOI band ({LOWEST_HZ:g} Hz - 4.3 kHz)")
    return inside.float()


class MelStoi:
    """``MelStoi(cfg)(db_hat, db, lengths=None)``: per-item STOI-like scores in [-1, 1] (1: the
    envelopes correlate perfectly) of mel spectrograms in dB, each (B, n_mels, T), over each
    item's first ``lengths[i]`` frames (None: all); differentiable in ``db_hat``. Items with
    fewer than two frames within 40 dB of their loudest score 0."""

    def __init__(self, cfg: AudioConfig) -> None:
        self.bands = stoi_bands(cfg)
        self.segment = max(2, round(SEGMENT_S * cfg.sample_rate / cfg.hop_length))

    def __call__(self, db_hat: Tensor, db: Tensor, lengths: Tensor | None = None) -> Tensor:
        if db_hat.shape != db.shape or db.dim() != 3:
            raise ValueError(f"expected two (B, n_mels, T) tensors of one shape, got "
                             f"{tuple(db_hat.shape)} and {tuple(db.shape)}")
        bands = self.bands.to(db.device)
        ns = [db.shape[-1]] * len(db) if lengths is None else [int(n) for n in lengths]
        scores = [self._one(h[:, :n], c[:, :n], bands)
                  for h, c, n in zip(db_hat, db, ns, strict=True)]
        return torch.stack(scores)

    def _one(self, db_hat: Tensor, db: Tensor, bands: Tensor) -> Tensor:
        if db.shape[-1] < 2:
            return db_hat.sum() * 0.0
        top = db.detach().max()  # powers relative to the loudest bin: eps-free of the level
        power, power_hat = 10 ** ((db.detach() - top) / 10), 10 ** ((db_hat - top) / 10)
        frame_db = 10 * torch.log10(power.sum(0) + 1e-10)
        keep = frame_db > frame_db.max() - DYNAMIC_RANGE_DB
        if int(keep.sum()) < 2:
            return db_hat.sum() * 0.0
        x = torch.sqrt(bands @ power[:, keep] + 1e-12)
        y = torch.sqrt(bands @ power_hat[:, keep] + 1e-12)
        n = min(self.segment, x.shape[1])
        xs, ys = x.unfold(1, n, 1), y.unfold(1, n, 1)  # (bands, segments, n)
        gain = torch.sqrt((xs ** 2).sum(-1, keepdim=True) / ((ys ** 2).sum(-1, keepdim=True)
                                                             + 1e-12))
        ys = torch.minimum(gain * ys, xs * (1 + CLIP))
        xs = xs - xs.mean(-1, keepdim=True)
        ys = ys - ys.mean(-1, keepdim=True)
        r = (xs * ys).sum(-1) / (xs.norm(dim=-1) * ys.norm(dim=-1) + 1e-8)
        return r.mean()

