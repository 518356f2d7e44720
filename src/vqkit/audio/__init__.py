"""Speech audio: the mel frontend and its inverse (:mod:`vqkit.audio.mel`) and the on-disk mel
cache (:mod:`vqkit.audio.cache`)."""

from vqkit.audio.mel import (
    audio_from_mel_db,
    db_to_power,
    frontend_params,
    griffin_lim,
    load_audio,
    mel_db_from_audio,
    mel_filterbank,
    mel_to_audio,
    mel_to_stft,
    melspectrogram,
    power_to_db,
    resample,
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
