"""Speech audio: reading files (:mod:`~vqkit.audio.io`), the mel frontend
(:mod:`~vqkit.audio.mel`) and its inverse (:mod:`~vqkit.audio.griffinlim`), the model's scale
(:mod:`~vqkit.audio.normalize`, :mod:`~vqkit.audio.pipeline`) and the on-disk mel cache
(:mod:`~vqkit.audio.cache`)."""

from vqkit.audio.griffinlim import audio_from_mel_db, griffin_lim, mel_to_audio, mel_to_stft
from vqkit.audio.io import load_audio, resample
from vqkit.audio.mel import (
    db_to_power,
    frontend_params,
    mel_db_from_audio,
    mel_filterbank,
    melspectrogram,
    power_to_db,
    stft_magnitude,
)

__all__ = [
    "audio_from_mel_db",
    "db_to_power",
    "frontend_params",
    "griffin_lim",
    "load_audio",
    "mel_db_from_audio",
    "mel_filterbank",
    "mel_to_audio",
    "mel_to_stft",
    "melspectrogram",
    "power_to_db",
    "resample",
    "stft_magnitude",
]
