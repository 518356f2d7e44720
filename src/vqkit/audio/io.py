"""Reading audio files: mono float32 at the sample rate asked for (soundfile + soxr)."""

from __future__ import annotations

from pathlib import Path
from typing import IO

import numpy as np
import soundfile as sf
import soxr

from vqkit.errors import DataError

__all__ = ["load_audio", "resample"]


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
