"""Reconstruct files through a trained run: WAV for speech runs, PNG for image runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vqkit.errors import DataError
from vqkit.models import load_model
from vqkit.utils import resolve_device

__all__ = ["reconstruct_files", "reconstruct_wav", "reconstruct_image"]


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())


def _out_stems(inputs: list[Path]) -> list[str]:
    """Output name stems: the input's stem, made unique with ``-2``, ``-3`` on collisions."""
    seen: dict[str, int] = {}
    stems = []
    for p in inputs:
        n = seen.get(p.stem, 0) + 1
        seen[p.stem] = n
        stems.append(p.stem if n == 1 else f"{p.stem}-{n}")
    return stems


@torch.no_grad()
def reconstruct_wav(model, cfg, path: Path, out_dir: Path, stem: str) -> list[Path]:
    """One audio file through a speech model; writes three files and returns their paths.

    ``<stem>.wav`` (Griffin-Lim of the model's mel; named as ``vqkit decode`` names it),
    ``<stem>.griffinlim.wav``
    (Griffin-Lim of the true mel: the best any model can do with this vocoder) and
    ``<stem>.comparison.png`` (true mel over reconstructed mel, dB). WAVs are 32-bit float at
    ``cfg.audio.sample_rate``, as long as the input (or as the ``clip_s`` clip when the run was
    trained on clips and the input is longer).
    """
    from vqkit.audio.griffinlim import audio_from_mel_db
    from vqkit.audio.io import load_audio
    from vqkit.audio.mel import mel_db_from_audio
    from vqkit.audio.pipeline import MelInfo, model_output_to_mel_db, wav_to_model_input, write_wav
    from vqkit.figures.speech import plot_mel_comparison

    a = cfg.audio
    try:
        y = load_audio(path, sample_rate=a.sample_rate)
    except DataError as e:
        raise DataError(_one_line(e)) from None
    device = next(model.parameters()).device
    x, d = wav_to_model_input(y, a, multiple=model.downsampling)
    info = MelInfo.from_dict(d)
    x_hat, _ = model(x.to(device))
    db_hat = model_output_to_mel_db(x_hat, a, [info])[0, :, :info.n_frames].cpu()
    y = y[:info.n_samples]
    true_db = torch.from_numpy(mel_db_from_audio(y, a))[:, :info.n_frames]
    recon = audio_from_mel_db(db_hat, a, length=info.n_samples).numpy()
    oracle = audio_from_mel_db(true_db, a, length=info.n_samples).numpy()
    out = [out_dir / f"{stem}.wav", out_dir / f"{stem}.griffinlim.wav",
           out_dir / f"{stem}.comparison.png"]
    write_wav(out[0], recon, a.sample_rate)
    write_wav(out[1], oracle, a.sample_rate)
    plot_mel_comparison([true_db.numpy()], [db_hat.numpy()], out[2], a, titles=[path.name])
    return out


@torch.no_grad()
def reconstruct_image(model, cfg, path: Path, out_dir: Path, stem: str) -> list[Path]:
    """One image through an image model: ``<stem>.png`` (same size as the input, named as
    ``vqkit decode`` names it)
    and ``<stem>.comparison.png`` (original over reconstruction). Sides that are not a multiple
    of the model's downsampling are padded (edge pixels) for the model and cropped back."""
    from PIL import Image, UnidentifiedImageError

    from vqkit.data.images import images_to_model_input, model_output_to_unit
    from vqkit.figures.images import plot_originals_over_reconstructions

    try:
        with Image.open(path) as im:
            im = im.convert("RGB" if cfg.model.in_channels == 3 else "L")
            arr = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable image ({_one_line(e)})") from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    h, w = arr.shape[:2]
    f = model.downsampling
    padded = np.pad(arr, ((0, -h % f), (0, -w % f), (0, 0)), mode="edge")
    x = images_to_model_input(torch.from_numpy(padded).permute(2, 0, 1)[None].contiguous())
    device = next(model.parameters()).device
    x_hat, _ = model(x.to(device))
    rec = model_output_to_unit(x_hat)[0, :, :h, :w].cpu()
    orig = torch.from_numpy(arr).permute(2, 0, 1).float() / 255.0
    out = [out_dir / f"{stem}.png", out_dir / f"{stem}.comparison.png"]
    pixels = (rec.permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
    Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels).save(out[0])
    plot_originals_over_reconstructions(orig[None].numpy(), rec[None].numpy(), out[1], ncols=1)
    return out


def reconstruct_files(
    run_dir: str | Path,
    inputs: list[str | Path],
    out_dir: str | Path,
    *,
    which: str = "best",
    device: str = "auto",
) -> list[Path]:
    """Pass each input file through the run's model and write the results to ``out_dir``.

    Speech runs take audio files (WAV, FLAC, ...; any sample rate, resampled) and write three
    files per input (:func:`reconstruct_wav`); image runs take images (PNG, ...) and write two
    (:func:`reconstruct_image`). Every input is checked to exist before any is processed.

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
    model, cfg = load_model(run_dir, which, dev)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    one = reconstruct_wav if cfg.task == "speech" else reconstruct_image
    written: list[Path] = []
    for p, stem in zip(paths, _out_stems(paths), strict=True):
        written += one(model, cfg, p, out_dir, stem)
    return written
