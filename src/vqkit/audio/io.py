"""Reading audio files: mono float32 at the sample rate asked for (soundfile + soxr)."""

from __future__ import annotations

from pathlib import Path
from typing import IO

import numpy as np
import soundfile as sf
import soxr

from vqkit.errors import DataError

__all__ = ["load_audio", "resample"]


MAX_ABS_SAMPLE = 1e6  # beyond this a sample is absurd (float WAVs hold about [-1, 1], or int16)


def load_audio(path: str | Path | IO[bytes], *, sample_rate: int,
               min_samples: int = 1, start_s: float = 0.0, end_s: float = 0.0) -> np.ndarray:
    """Read an audio file as float32 mono at ``sample_rate``.

    Parameters
    ----------
    path : str, Path or binary file object
        Any format libsndfile reads (WAV, FLAC, OGG, ...).
    sample_rate : int > 0
        Target sampling rate in Hz; the file is resampled with soxr (HQ) when it differs.
    min_samples : int >= 1
        Fewer samples than this (at ``sample_rate``) is an error, e.g. ``n_fft``: the
        shortest audio a mel frontend describes.
    start_s, end_s : float >= 0
        Read only this span of the file, in seconds (``end_s`` 0: to the end); the rest is
        never decoded into memory.

    Returns
    -------
    y : np.ndarray, shape=(samples,), float32
        Mono signal. Two channels are averaged to mono; more than two are an error.

    Raises
    ------
    DataError
        Naming the file, when it is unreadable, empty, shorter than ``min_samples``, has more
        than two channels, or holds non-finite or absurd (beyond ±1e6) samples.
    """
    name = str(getattr(path, "name", path))
    try:
        if start_s or end_s:
            file_sr = sf.info(path).samplerate
            data, file_sr = sf.read(path, dtype="float32", always_2d=True,
                                    start=int(round(start_s * file_sr)),
                                    stop=int(round(end_s * file_sr)) if end_s else None)
        else:
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
    peak = float(np.abs(data).max())
    if peak > MAX_ABS_SAMPLE:
        raise DataError(f"{name}: absurd sample values (peak {peak:.3g}; audio lies within "
                        f"about [-1, 1])")
    y = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
    y = resample(y, orig_sample_rate=int(file_sr), target_sample_rate=sample_rate)
    if len(y) < min_samples:
        raise DataError(f"{name}: too short ({len(y)} samples, {len(y) / sample_rate * 1e3:.3g} "
                        f"ms at {sample_rate} Hz); at least {min_samples} samples "
                        f"({min_samples / sample_rate * 1e3:.0f} ms) are needed")
    return y


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
