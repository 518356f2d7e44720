"""Nominal rates of codes: bits per code position, per pixel, per second; mel frame rate.

The one place these are computed: the code files (``vqkit encode``), the evaluations and the
report all call these functions. "Nominal" means the bits of the code indices as they are,
without entropy coding.
"""

from __future__ import annotations

import math

from vqkit.config import AudioConfig, RunConfig

__all__ = ["bitrate_bps", "bits_per_code", "bits_per_pixel", "bits_per_second", "code_rows",
           "frame_rate_hz"]


def bits_per_code(codebook_size: int, num_quantizers: int = 1) -> float:
    """Bits of one code position, all stages: ``num_quantizers * log2(codebook_size)``."""
    return num_quantizers * math.log2(codebook_size)


def bits_per_pixel(positions: int, bits_per_code: float, pixels: int) -> float:
    """Nominal rate of image codes: ``positions * bits_per_code / pixels``.

    Parameters
    ----------
    positions : int >= 0
        Code positions (H' * W'; residual stages are counted in ``bits_per_code``).
    bits_per_code : float > 0
        Bits of one position, all stages (:func:`bits_per_code`).
    pixels : int > 0
        H * W of the image(s) (a pixel counts once whatever its channels).
    """
    return positions * bits_per_code / pixels


def bits_per_second(positions: int, bits_per_code: float, duration_s: float) -> float:
    """Nominal rate of speech codes: ``positions * bits_per_code / duration_s``, in bit/s."""
    return positions * bits_per_code / duration_s


def _audio(cfg: AudioConfig | RunConfig) -> AudioConfig:
    return cfg.audio if isinstance(cfg, RunConfig) else cfg


def frame_rate_hz(cfg: AudioConfig | RunConfig) -> float:
    """Mel frames per second: ``sample_rate / hop_length``."""
    cfg = _audio(cfg)
    return cfg.sample_rate / cfg.hop_length


def code_rows(cfg: AudioConfig | RunConfig, downsampling: int) -> int:
    """Code positions per code column: ``n_mels / d`` for the 2-D model, 1 for the temporal
    model (``model.kind = "temporal"``, which needs a RunConfig to be recognised)."""
    if isinstance(cfg, RunConfig) and cfg.model.kind == "temporal":
        return 1
    return _audio(cfg).n_mels // downsampling


def bitrate_bps(cfg: AudioConfig | RunConfig, *, downsampling: int,
                bits_per_code: float) -> float:
    """Bits per second of the codes: :func:`code_rows` rows (``n_mels / d``, or 1 for the
    temporal model) at ``frame_rate / d`` columns per second (``d`` = the model's
    downsampling), ``bits_per_code`` bits each (all stages used)."""
    rows = code_rows(cfg, downsampling)
    return rows * frame_rate_hz(_audio(cfg)) / downsampling * bits_per_code
