"""Encoding files to a code file and decoding it back: what ``vqkit encode`` and
``vqkit decode`` run.

Items are encoded and decoded one at a time, with the same conversions as ``vqkit reconstruct``
(:mod:`vqkit.data.image_files` for images, :mod:`vqkit.audio.pipeline` for audio), so that
decoding a code file writes exactly what ``vqkit reconstruct`` writes for the same inputs.
Decoding refuses a code file whose fingerprint differs from the run's model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vqkit.audio.io import load_audio
from vqkit.audio.pipeline import model_output_to_wav, wav_to_model_input, write_wav
from vqkit.codes.fingerprint import check_fingerprint, model_fingerprint
from vqkit.codes.format import CodeFile, code_dtype, load_codes, make_header, save_codes
from vqkit.data.image_files import model_output_to_pixels, pad_to_multiple, read_image, write_image
from vqkit.data.images import images_to_model_input
from vqkit.errors import DataError, VQKitError
from vqkit.models import load_model
from vqkit.rates import bitrate_bps
from vqkit.utils import resolve_device, unique_stems

__all__ = ["AUDIO_SUFFIXES", "IMAGE_SUFFIXES", "decode_file", "encode_files", "write_decoded"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


@torch.no_grad()
def encode_files(
    run_dir: str | Path,
    inputs: Sequence[str | Path],
    *,
    out: str | Path | None = None,
    which: str = "best",
    device: str = "auto",
    stages: int | None = None,
    search_steps: int | None = None,
) -> CodeFile:
    """Encode image files (image runs) or audio files (speech runs) with a run's model.

    Parameters
    ----------
    run_dir : str or Path
        Run directory written by ``vqkit train``.
    inputs : sequence of paths
        Images (PNG, JPEG; converted to the model's channels; sides that are not a multiple of
        the model's downsampling are padded with edge pixels for the model and cropped back on
        decoding, as ``vqkit reconstruct`` does), or audio files (WAV, FLAC, OGG; mono or
        stereo, resampled to the run's ``audio.sample_rate``).
    out : str or Path, optional
        Where to save the code file (:func:`~vqkit.codes.format.save_codes`); not saved when
        None.
    which : "best" or "last"
        Checkpoint to use.
    device : str
        Torch device ("auto": CUDA, then MPS, then CPU).
    stages : int or None
        Residual VQ: store the first N stages only (a lower rate; None: all); the file's meta
        records ``stages`` and its ``bits_per_code`` and rates count only those.
    search_steps : int or None
        Steps of code search (:mod:`vqkit.models.search`; None: the run's ``search.steps``),
        recorded in the meta; decoding needs nothing of it.

    Returns
    -------
    CodeFile
        With ``rate()`` in bits per pixel (images) or bits per second (speech).
    """
    if not inputs:
        raise VQKitError("nothing to encode: give at least one input file")
    paths = [Path(p) for p in inputs]
    model, cfg = load_model(run_dir, which, resolve_device(device), stages=stages, kind="vqvae",
                            search_steps=search_steps)
    suffixes = IMAGE_SUFFIXES if cfg.task == "image" else AUDIO_SUFFIXES
    for p in paths:
        if p.suffix.lower() not in suffixes:
            raise DataError(f"{p}: a {cfg.task} run encodes {', '.join(suffixes)} files")
        if not p.is_file():
            raise DataError(f"{p}: no such file")
    q = model.quantizer
    codes, items = [], []
    for p in paths:
        c, item = (_encode_image if cfg.task == "image" else _encode_audio)(model, cfg, p)
        codes.append(c)
        items.append(item)
    meta = {
        "task": cfg.task,
        "run": str(run_dir),
        "checkpoint": which,
        "codebook_size": int(q.codebook_size),
        "num_quantizers": int(q.num_quantizers),
        "stages": int(getattr(q, "stages_used", q.num_quantizers)),
        "bits_per_code": float(q.bits_per_code),
        "search_steps": model.search.steps if model.search else 0,
        "downsampling": int(model.downsampling),
        "items": items,
    }
    if cfg.task == "speech":
        meta["nominal_bps"] = bitrate_bps(cfg, downsampling=model.downsampling,
                                          bits_per_code=q.bits_per_code)
    fp = model_fingerprint(model, cfg)
    names = unique_stems(paths)
    if out is not None:
        return save_codes(out, codes, names, fp, meta)
    dt = code_dtype(q.codebook_size)
    return CodeFile([c.astype(dt) for c in codes], names, fp, make_header(meta, fp, names))


def check_fits_model(cf: CodeFile, model) -> None:
    """Raise DataError unless every item's codes can be decoded by ``model``: the codebook size
    and stages it was made with, codes below that size, and (images) a grid that covers the
    stored height and width at the model's downsampling."""
    q, f = model.quantizer, model.downsampling
    if cf.meta["codebook_size"] != q.codebook_size:
        raise DataError(f"{cf.path}: says {cf.meta['codebook_size']} codes per stage, the model "
                        f"has {q.codebook_size}")
    for c, name, item in zip(cf.codes, cf.names, cf.meta["items"], strict=True):
        if c.size and int(c.max()) >= q.codebook_size:
            raise DataError(f"{cf.path}: item {name!r} holds codes beyond the model's "
                            f"{q.codebook_size}")
        stages = c.shape[-1] if q.stage_axis else 1
        if c.ndim != (3 if q.stage_axis else 2) or stages > q.num_quantizers:
            raise DataError(f"{cf.path}: item {name!r} has codes of shape {c.shape}, which "
                            f"this model does not decode")
        if cf.task == "image" and tuple(c.shape[:2]) != (-(-item["height"] // f),
                                                        -(-item["width"] // f)):
            raise DataError(f"{cf.path}: item {name!r}: a {c.shape[0]}x{c.shape[1]} code grid "
                            f"does not describe a {item['height']}x{item['width']} image")


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _encode_image(model, cfg, path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    img = read_image(path, cfg.model.in_channels)
    c, h, w = img.shape
    x = images_to_model_input(pad_to_multiple(img, model.downsampling)[None])
    codes = model.encode(x.to(_device(model)))[0].cpu().numpy()
    return codes, {"source": str(path), "height": int(h), "width": int(w), "channels": int(c)}


def _encode_audio(model, cfg, path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """The codes of one audio file, and what decoding needs: the pipeline's side information
    (real frames, samples, per-utterance statistics)."""
    sr = cfg.audio.sample_rate
    y = load_audio(path, sample_rate=sr, min_samples=cfg.audio.n_fft)
    x, info = wav_to_model_input(y, cfg.audio, multiple=model.downsampling)
    lengths = torch.tensor([info["n_frames"]])
    codes = model.encode(x.to(_device(model)), lengths=lengths)[0].cpu().numpy()
    # The codes describe info["n_samples"] samples: the whole file, or the clip of clip_s.
    return codes, {"source": str(path), "sample_rate": int(sr),
                   "duration_s": info["n_samples"] / sr, "info": info}


@torch.no_grad()
def decode_file(
    run_dir: str | Path,
    codes_path: str | Path,
    out_dir: str | Path,
    *,
    which: str | None = None,
    device: str = "auto",
    stages: int | None = None,
) -> list[Path]:
    """Decode a code file with a run's model into ``out_dir``: ``<name>.png`` or ``<name>.wav``
    per item, identical to what ``vqkit reconstruct`` writes for the input that was encoded.

    ``which`` defaults to the checkpoint the codes were made with; ``stages`` decodes the
    first N stored residual stages only (what ``reconstruct --stages N`` writes). Raises
    VQKitError when the model's fingerprint differs from the code file's, or for more stages
    than stored; nothing is written then.
    """
    cf = load_codes(codes_path)
    which = which or str(cf.meta.get("checkpoint", "best"))
    model, cfg = load_model(run_dir, which, resolve_device(device), kind="vqvae")
    check_fingerprint(cf, model, cfg, run_dir, which)
    if cf.task != cfg.task:  # pragma: no cover - the fingerprint covers the task
        raise VQKitError(f"{cf.path}: {cf.task} codes, but {run_dir} is a {cfg.task} run")
    check_fits_model(cf, model)
    stored = int(cf.meta.get("stages", cf.meta["num_quantizers"]))
    if stages is not None and (cf.meta["num_quantizers"] == 1 or not 1 <= stages <= stored):
        raise VQKitError(f"{cf.path}: --stages {stages}: the file stores {stored} stage(s) "
                         f"per code")
    return write_decoded(cf, model, cfg, out_dir, stages)


def write_decoded(cf: CodeFile, model, cfg, out_dir: str | Path,
                  stages: int | None = None) -> list[Path]:
    """Decode every item of ``cf`` (checked to fit ``model``) into ``out_dir``, the first
    ``stages`` residual stages only when given."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for c, name, item in zip(cf.codes, cf.names, cf.meta["items"], strict=True):
        codes = torch.from_numpy(c.astype(np.int64))[None].to(_device(model))
        if stages is not None:
            codes = codes[..., :stages]
        x_hat = model.decode(codes)
        if cf.task == "image":
            image = model_output_to_pixels(x_hat[0])[:item["height"], :item["width"]]
            written.append(write_image(out_dir / f"{name}.png", image))
        else:
            y = model_output_to_wav(x_hat, cfg.audio, item["info"])
            written.append(write_wav(out_dir / f"{name}.wav", y, cfg.audio.sample_rate))
    return written
