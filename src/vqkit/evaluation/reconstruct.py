"""Reconstruct files through a trained run: WAV for speech runs, PNG for image runs.

:func:`reconstruct_audio` is the one way vqkit turns a waveform into its reconstruction and
the Griffin-Lim of its true mel: ``vqkit reconstruct`` writes its results, and
``vqkit evaluate`` writes it for the first utterances of a split (the report's players).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vqkit.audio.griffinlim import audio_from_mel_db
from vqkit.audio.io import load_audio
from vqkit.audio.mel import mel_db_from_audio
from vqkit.audio.pipeline import MelInfo, model_output_to_mel_db, wav_to_model_input, write_wav
from vqkit.data.image_files import model_output_to_pixels, pad_to_multiple, read_image, write_image
from vqkit.data.images import images_to_model_input
from vqkit.errors import DataError
from vqkit.figures.images import plot_originals_over_reconstructions
from vqkit.figures.speech import plot_mel_comparison
from vqkit.models import load_model
from vqkit.utils import resolve_device, unique_stems

__all__ = ["AudioReconstruction", "reconstruct_audio", "reconstruct_files", "reconstruct_image",
           "reconstruct_wav"]


@dataclass
class AudioReconstruction:
    """One waveform through a speech model.

    Attributes
    ----------
    original : np.ndarray, shape=(n_samples,), float32
        The input as the model saw it (the whole file, or its ``clip_s`` clip).
    reconstruction : np.ndarray, shape=(n_samples,), float32
        Griffin-Lim of the model's mel.
    oracle : np.ndarray, shape=(n_samples,), float32
        Griffin-Lim of the true mel: the best any model can do with this vocoder.
    mel, mel_hat : np.ndarray, shape=(n_mels, n_frames), float32
        Model input and output on the model's scale, real frames only.
    true_db, db_hat : np.ndarray, shape=(n_mels, n_frames), float32
        The true mel and the reconstructed mel in dB (ref 1.0).
    sample_rate : int
    """

    original: np.ndarray
    reconstruction: np.ndarray
    oracle: np.ndarray
    mel: np.ndarray
    mel_hat: np.ndarray
    true_db: np.ndarray
    db_hat: np.ndarray
    sample_rate: int


@torch.no_grad()
def reconstruct_audio(model, cfg, y: np.ndarray) -> AudioReconstruction:
    """Pass mono audio ``y`` (samples at ``cfg.audio.sample_rate``) through a speech model,
    alone (no batch), as ``vqkit reconstruct`` does."""
    a = cfg.audio
    device = next(model.parameters()).device
    x, d = wav_to_model_input(y, a, multiple=model.downsampling)
    info = MelInfo.from_dict(d)
    x_hat, _ = model(x.to(device), lengths=torch.tensor([info.n_frames]))
    db_hat = model_output_to_mel_db(x_hat, a, [info])[0, :, :info.n_frames].cpu()
    y = np.asarray(y, dtype=np.float32)[:info.n_samples]
    true_db = torch.from_numpy(mel_db_from_audio(y, a))[:, :info.n_frames]
    return AudioReconstruction(
        original=y,
        reconstruction=audio_from_mel_db(db_hat, a, length=info.n_samples).numpy(),
        oracle=audio_from_mel_db(true_db, a, length=info.n_samples).numpy(),
        mel=x[0, 0, :, :info.n_frames].numpy(),
        mel_hat=x_hat[0, 0, :, :info.n_frames].float().cpu().numpy(),
        true_db=true_db.numpy(), db_hat=db_hat.numpy(), sample_rate=a.sample_rate)


def read_audio(path: Path, cfg) -> np.ndarray:
    """An audio file as mono float32 at the run's sample rate (DataError in one line)."""
    try:
        return load_audio(path, sample_rate=cfg.audio.sample_rate, min_samples=cfg.audio.n_fft)
    except DataError as e:
        raise DataError(" ".join(str(e).split())) from None


def reconstruct_wav(model, cfg, path: Path, out_dir: Path, stem: str) -> list[Path]:
    """One audio file through a speech model; writes three files and returns their paths.

    ``<stem>.wav`` (Griffin-Lim of the model's mel; named as ``vqkit decode`` names it),
    ``<stem>.griffinlim.wav`` (Griffin-Lim of the true mel) and ``<stem>.comparison.png`` (true
    mel over reconstructed mel, dB). WAVs are 32-bit float at ``cfg.audio.sample_rate``, as long
    as the input (or as the ``clip_s`` clip when the run was trained on clips and the input is
    longer).
    """
    r = reconstruct_audio(model, cfg, read_audio(path, cfg))
    out = [out_dir / f"{stem}.wav", out_dir / f"{stem}.griffinlim.wav",
           out_dir / f"{stem}.comparison.png"]
    write_wav(out[0], r.reconstruction, r.sample_rate)
    write_wav(out[1], r.oracle, r.sample_rate)
    plot_mel_comparison([r.true_db], [r.db_hat], out[2], cfg.audio, titles=[path.name])
    return out


@torch.no_grad()
def reconstruct_image(model, cfg, path: Path, out_dir: Path, stem: str) -> list[Path]:
    """One image through an image model: ``<stem>.png`` (same size as the input, named as
    ``vqkit decode`` names it) and ``<stem>.comparison.png`` (original over reconstruction).
    Sides that are not a multiple of the model's downsampling are padded (edge pixels) for the
    model and cropped back."""
    img = read_image(path, cfg.model.in_channels)
    h, w = img.shape[-2:]
    x = images_to_model_input(pad_to_multiple(img, model.downsampling)[None])
    x_hat, _ = model(x.to(next(model.parameters()).device))
    pixels = model_output_to_pixels(x_hat[0])[:h, :w]
    out = [out_dir / f"{stem}.png", out_dir / f"{stem}.comparison.png"]
    write_image(out[0], pixels)
    original = img.permute(1, 2, 0).numpy()
    plot_originals_over_reconstructions(original[None], pixels[None], out[1], ncols=1)
    return out


def reconstruct_files(
    run_dir: str | Path,
    inputs: list[str | Path],
    out_dir: str | Path,
    *,
    which: str = "best",
    device: str = "auto",
    stages: int | None = None,
    search_steps: int | None = None,
) -> list[Path]:
    """Pass each input file through the run's model and write the results to ``out_dir``.

    Speech runs take audio files (WAV, FLAC, ...; any sample rate, resampled) and write three
    files per input (:func:`reconstruct_wav`); image runs take images (PNG, ...) and write two
    (:func:`reconstruct_image`). Every input is checked to exist before any is processed.
    ``stages``: the first N residual VQ stages only (None: all); ``search_steps``: steps of
    code search (:mod:`vqkit.models.search`; None: the run's ``search.steps``).

    Returns
    -------
    list of Path
        The written files, in input order.

    Raises
    ------
    DataError
        Naming the file: a missing input, or one that is not audio (speech) / an image.
    """
    paths = [Path(p) for p in inputs]
    if not paths:
        raise DataError("no input files given")
    for p in paths:
        if not p.is_file():
            raise DataError(f"{p}: no such file")
    dev = resolve_device(device)
    model, cfg = load_model(run_dir, which, dev, stages=stages, kind="vqvae",
                            search_steps=search_steps)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    one = reconstruct_wav if cfg.task == "speech" else reconstruct_image
    written: list[Path] = []
    for p, stem in zip(paths, unique_stems(paths), strict=True):
        written += one(model, cfg, p, out_dir, stem)
    return written
