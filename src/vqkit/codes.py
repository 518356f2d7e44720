"""Code files: a trained model's discrete codes for a set of images or WAV files, on disk.

A code file is an ``.npz`` archive (read with ``allow_pickle=False``) of three arrays:

``codes``
    Every item's codes, flattened (row-major) and concatenated, in the smallest unsigned
    integer dtype that holds ``codebook_size - 1`` (uint8 up to 256 codes, uint16 up to 65,536).
``shapes``
    int64, shape=(N, ndim): each item's code shape, (H', W') or (H', W', K) for K residual
    stages; for speech H' runs over mel bands and W' over frames.
``meta``
    A JSON string: ``format_version``, ``fingerprint`` (of the model that made the codes, see
    :func:`model_fingerprint`), ``task``, ``checkpoint``, ``codebook_size``, ``num_quantizers``,
    ``bits_per_code``, ``downsampling``, ``names`` (one per item, unique file names without
    suffix) and ``items`` (per item: its source, and the height/width or the sample rate,
    length and pipeline side information the decoder needs).

:func:`encode_files` and :func:`decode_file` are what ``vqkit encode`` and ``vqkit decode`` run.
Decoding refuses a code file whose fingerprint differs from the run's model. Items are encoded
and decoded one at a time, with the same conversions as ``vqkit reconstruct``, so that decoding
a code file writes exactly what ``vqkit reconstruct`` writes for the same inputs.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vqkit.errors import DataError, VQKitError

__all__ = [
    "FORMAT_VERSION",
    "IMAGE_SUFFIXES",
    "AUDIO_SUFFIXES",
    "CodeFile",
    "bits_per_pixel",
    "bits_per_second",
    "check_fingerprint",
    "code_dtype",
    "decode_file",
    "encode_files",
    "load_codes",
    "model_fingerprint",
    "model_output_to_image",
    "pad_to_multiple",
    "read_image",
    "save_codes",
    "write_image",
]

FORMAT_VERSION = 1
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


# ---------------------------------------------------------------------------------------------
# Rates


def bits_per_pixel(positions: int, bits_per_code: float, pixels: int) -> float:
    """Nominal rate of image codes: ``positions * bits_per_code / pixels``.

    Parameters
    ----------
    positions : int >= 0
        Code positions (H' * W'; residual stages are counted in ``bits_per_code``).
    bits_per_code : float > 0
        Bits of one position, all stages: ``num_quantizers * log2(codebook_size)``.
    pixels : int > 0
        H * W of the image(s) (a pixel counts once whatever its channels).
    """
    return positions * bits_per_code / pixels


def bits_per_second(positions: int, bits_per_code: float, duration_s: float) -> float:
    """Nominal rate of speech codes: ``positions * bits_per_code / duration_s``, in bit/s."""
    return positions * bits_per_code / duration_s


def code_dtype(codebook_size: int) -> np.dtype:
    """The smallest unsigned integer dtype holding codes ``0 .. codebook_size - 1``."""
    for dt in (np.uint8, np.uint16, np.uint32):
        if codebook_size - 1 <= np.iinfo(dt).max:
            return np.dtype(dt)
    return np.dtype(np.uint64)


# ---------------------------------------------------------------------------------------------
# The file format


@dataclass
class CodeFile:
    """Codes of N items and what is needed to decode them.

    Attributes
    ----------
    codes : list of np.ndarray
        One per item, shape (H', W') or (H', W', K), unsigned integers < ``codebook_size``.
    names : list of str
        One per item: the output file name, without suffix.
    fingerprint : str
        sha256 (hex) of the model that made the codes (:func:`model_fingerprint`).
    meta : dict
        The rest of the header (see the module docstring).
    path : Path or None
        Where it was saved or read from.
    """

    codes: list[np.ndarray]
    names: list[str]
    fingerprint: str
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def task(self) -> str:
        return str(self.meta.get("task", "image"))

    @property
    def bits_per_code(self) -> float:
        return float(self.meta["bits_per_code"])

    def positions(self, i: int) -> int:
        """Code positions of item ``i`` (residual stages not counted)."""
        shape = self.codes[i].shape
        nq = int(self.meta.get("num_quantizers", 1))
        return math.prod(shape[:-1]) if nq > 1 else math.prod(shape)

    def rate(self, i: int | None = None) -> float:
        """Bits per pixel (images) or bits per second (speech) of item ``i``, or of all items
        together (total bits over total pixels or total seconds) when ``i`` is None."""
        idx = range(len(self.codes)) if i is None else [i]
        positions = sum(self.positions(j) for j in idx)
        items = self.meta["items"]
        if self.task == "image":
            pixels = sum(items[j]["height"] * items[j]["width"] for j in idx)
            return bits_per_pixel(positions, self.bits_per_code, pixels)
        seconds = sum(items[j]["duration_s"] for j in idx)
        return bits_per_second(positions, self.bits_per_code, seconds)

    @property
    def rate_unit(self) -> str:
        return "bits/pixel" if self.task == "image" else "bits/s"


def save_codes(
    path: str | Path,
    codes_list: Sequence[np.ndarray | torch.Tensor],
    names: Sequence[str],
    model_fingerprint: str,
    meta: dict[str, Any],
) -> CodeFile:
    """Write a code file (atomically) and return it.

    Parameters
    ----------
    path : str or Path
        Written as given (no ``.npz`` is appended).
    codes_list : sequence of arrays, each shape (H', W') or (H', W', K), integers
    names : sequence of str, one per item
    model_fingerprint : str
    meta : dict
        Must hold ``codebook_size``; JSON-serialisable.
    """
    from vqkit.utils import atomic_write_bytes

    if not codes_list:
        raise ValueError("no codes to save")
    if len(codes_list) != len(names):
        raise ValueError(f"{len(codes_list)} code arrays but {len(names)} names")
    size = int(meta["codebook_size"])
    dt = code_dtype(size)
    arrays = [c.cpu().numpy() if isinstance(c, torch.Tensor) else np.asarray(c)
              for c in codes_list]
    for a in arrays:
        if a.size and (a.min() < 0 or a.max() >= size):
            raise ValueError(f"codes outside [0, {size})")
    ndim = {a.ndim for a in arrays}
    if len(ndim) > 1:
        raise ValueError(f"code arrays of different ranks {sorted(ndim)}")
    shapes = np.array([a.shape for a in arrays], dtype=np.int64).reshape(len(arrays), -1)
    flat = np.concatenate([a.reshape(-1) for a in arrays]).astype(dt)
    header = {**meta, "format_version": FORMAT_VERSION, "fingerprint": model_fingerprint,
              "names": list(names)}
    buf = io.BytesIO()
    np.savez_compressed(buf, codes=flat, shapes=shapes, meta=np.array(json.dumps(header)))
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return CodeFile([a.astype(dt) for a in arrays], list(names), model_fingerprint, header, path)


def load_codes(path: str | Path) -> CodeFile:
    """Read a code file written by :func:`save_codes`.

    Raises
    ------
    DataError
        Naming the file, when it is missing, not a code file, of another format version, or
        inconsistent (shapes that do not add up, codes out of range).
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("codes", "shapes", "meta") if k not in z.files]
            if missing:
                raise DataError(f"{path}: not a vqkit code file (no {missing[0]!r} array)")
            flat, shapes, meta_text = z["codes"], z["shapes"], str(z["meta"])
    except FileNotFoundError:
        raise DataError(f"{path}: no such code file") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path}: not a readable code file ({e})") from None
    try:
        meta = json.loads(meta_text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: corrupt header ({e})") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{path}: code file format {meta.get('format_version')!r}, this vqkit "
                        f"reads {FORMAT_VERSION}")
    names = meta.get("names", [])
    if shapes.ndim != 2 or len(shapes) != len(names) or len(meta.get("items", [])) != len(names):
        raise DataError(f"{path}: corrupt header ({len(names)} names, shapes {shapes.shape})")
    sizes = [math.prod(int(d) for d in s) for s in shapes]
    if sum(sizes) != flat.size:
        raise DataError(f"{path}: truncated or corrupt ({flat.size} codes, shapes need "
                        f"{sum(sizes)})")
    size = int(meta.get("codebook_size", 0))
    if flat.size and (flat.dtype.kind != "u" or int(flat.max()) >= size):
        raise DataError(f"{path}: codes outside [0, {size})")
    offsets = np.cumsum([0, *sizes])
    codes = [flat[offsets[i]:offsets[i + 1]].reshape(tuple(int(d) for d in s))
             for i, s in enumerate(shapes)]
    return CodeFile(codes, list(names), str(meta.get("fingerprint", "")), meta, path)


# ---------------------------------------------------------------------------------------------
# The model's identity


def _fingerprint_config(cfg) -> dict[str, Any]:
    """The parts of a run config that change what codes mean (not data, not training)."""
    d = cfg.to_dict()
    keep = {"task": d["task"], "model": d["model"], "quantizer": d["quantizer"]}
    if d["task"] == "speech":
        keep["audio"] = d["audio"]
    return keep


def model_fingerprint(model: torch.nn.Module, cfg) -> str:
    """sha256 (hex) of the model's state dict and the config sections that define it.

    Covers every tensor of ``model.state_dict()`` (name, dtype, shape and bytes, in name order)
    and the ``task``, ``model``, ``quantizer`` (and, for speech, ``audio``) sections of ``cfg``:
    two checkpoints give the same fingerprint only if they encode and decode identically.
    """
    h = hashlib.sha256(b"vqkit-model-fingerprint-v1\n")
    h.update(json.dumps(_fingerprint_config(cfg), sort_keys=True).encode())
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"\n{name} {t.dtype} {tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Images: file <-> model scale


def read_image(path: str | Path, channels: int = 3) -> torch.Tensor:
    """Read a PNG or JPEG as uint8 (C, H, W): RGB for ``channels=3``, grey for 1.

    Raises DataError naming the file when it cannot be read.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if channels not in (1, 3):
        raise DataError(f"{path}: the model takes {channels} channels; images give 1 or 3")
    try:
        with Image.open(path) as im:
            im = im.convert("RGB" if channels == 3 else "L")
            arr = np.asarray(im, dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DataError(f"{path}: unreadable image ({e})") from None
    arr = arr[:, :, None] if arr.ndim == 2 else arr
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def pad_to_multiple(image: torch.Tensor, multiple: int) -> torch.Tensor:
    """uint8 (C, H, W) -> (C, H', W') with H' and W' rounded up to ``multiple`` by repeating the
    edge pixels (as ``vqkit reconstruct``); the decoder's output is cropped back."""
    h, w = image.shape[-2:]
    arr = np.pad(image.numpy(), ((0, 0), (0, -h % multiple), (0, -w % multiple)), mode="edge")
    return torch.from_numpy(np.ascontiguousarray(arr))


def model_output_to_image(x_hat: torch.Tensor, height: int | None = None,
                          width: int | None = None) -> np.ndarray:
    """Model output (1, C, H, W) or (C, H, W) in [-0.5, 0.5] -> uint8 (height, width, C): cropped
    to the top-left ``height`` x ``width`` (default all), rounded to the nearest level."""
    from vqkit.data.images import model_output_to_unit

    x = x_hat.detach().float()
    x = x[0] if x.dim() == 4 else x
    u = model_output_to_unit(x.clone())[:, :height, :width].cpu()
    return (u.permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Write uint8 (H, W, C) with C in {1, 3} as a PNG."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image[:, :, 0] if image.shape[-1] == 1 else image).save(path, format="PNG")
    return path


# ---------------------------------------------------------------------------------------------
# encode / decode


def _unique_names(paths: Sequence[Path]) -> list[str]:
    """File stems, made unique by ``-2``, ``-3``... in input order (as ``vqkit reconstruct``)."""
    seen: dict[str, int] = {}
    names = []
    for p in paths:
        stem = p.stem
        n = seen.get(stem, 0) + 1
        seen[stem] = n
        names.append(stem if n == 1 else f"{stem}-{n}")
    return names


@torch.no_grad()
def encode_files(
    run_dir: str | Path,
    inputs: Sequence[str | Path],
    *,
    out: str | Path | None = None,
    which: str = "best",
    device: str = "auto",
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
        Where to save the code file (:func:`save_codes`); not saved when None.
    which : "best" or "last"
        Checkpoint to use.
    device : str
        Torch device ("auto": CUDA, then MPS, then CPU).

    Returns
    -------
    CodeFile
        With ``rate()`` in bits per pixel (images) or bits per second (speech).
    """
    from vqkit.models import load_model
    from vqkit.utils import resolve_device

    if not inputs:
        raise VQKitError("nothing to encode: give at least one input file")
    paths = [Path(p) for p in inputs]
    model, cfg = load_model(run_dir, which, resolve_device(device))
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
        "bits_per_code": float(q.bits_per_code),
        "downsampling": int(model.downsampling),
        "items": items,
    }
    if cfg.task == "speech":
        from vqkit.audio.pipeline import bitrate_bps

        meta["nominal_bps"] = bitrate_bps(cfg.audio, downsampling=model.downsampling,
                                          bits_per_code=q.bits_per_code)
    fp = model_fingerprint(model, cfg)
    names = _unique_names(paths)
    if out is not None:
        return save_codes(out, codes, names, fp, meta)
    dt = code_dtype(q.codebook_size)
    header = {**meta, "format_version": FORMAT_VERSION, "fingerprint": fp, "names": names}
    return CodeFile([c.astype(dt) for c in codes], names, fp, header)


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _encode_image(model, cfg, path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    from vqkit.data.images import images_to_model_input

    img = read_image(path, cfg.model.in_channels)
    c, h, w = img.shape
    x = images_to_model_input(pad_to_multiple(img, model.downsampling)[None])
    codes = model.encode(x.to(_device(model)))[0].cpu().numpy()
    return codes, {"source": str(path), "height": int(h), "width": int(w), "channels": int(c)}


def _encode_audio(model, cfg, path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """The codes of one audio file, and what decoding needs: the pipeline's side information
    (real frames, samples, per-utterance statistics)."""
    from vqkit.audio.io import load_audio
    from vqkit.audio.pipeline import wav_to_model_input

    sr = cfg.audio.sample_rate
    y = load_audio(path, sample_rate=sr)
    x, info = wav_to_model_input(y, cfg.audio, multiple=model.downsampling)
    codes = model.encode(x.to(_device(model)))[0].cpu().numpy()
    # The codes describe info["n_samples"] samples: the whole file, or the clip of clip_s.
    return codes, {"source": str(path), "sample_rate": int(sr),
                   "duration_s": info["n_samples"] / sr, "info": info}


def check_fingerprint(code_file: CodeFile, model, cfg, run_dir: str | Path, which: str) -> None:
    """Raise VQKitError unless ``code_file`` was made by this model."""
    fp = model_fingerprint(model, cfg)
    if code_file.fingerprint != fp:
        made_by = code_file.meta.get("run", "another model")
        raise VQKitError(
            f"{code_file.path}: made by model {code_file.fingerprint[:12]} ({made_by}, "
            f"{code_file.meta.get('checkpoint', '?')} checkpoint), but {run_dir} "
            f"({which} checkpoint) is model {fp[:12]}; decode with the model that encoded it")


@torch.no_grad()
def decode_file(
    run_dir: str | Path,
    codes_path: str | Path,
    out_dir: str | Path,
    *,
    which: str | None = None,
    device: str = "auto",
) -> list[Path]:
    """Decode a code file with a run's model into ``out_dir``: ``<name>.png`` or ``<name>.wav``
    per item, identical to what ``vqkit reconstruct`` writes for the input that was encoded
    (``<name>.reconstruction.png`` / ``.reconstruction.wav``).

    ``which`` defaults to the checkpoint the codes were made with. Raises VQKitError when the
    model's fingerprint differs from the code file's; nothing is written then.
    """
    from vqkit.models import load_model
    from vqkit.utils import resolve_device

    cf = load_codes(codes_path)
    which = which or str(cf.meta.get("checkpoint", "best"))
    model, cfg = load_model(run_dir, which, resolve_device(device))
    check_fingerprint(cf, model, cfg, run_dir, which)
    if cf.task != cfg.task:  # pragma: no cover - the fingerprint covers the task
        raise VQKitError(f"{cf.path}: {cf.task} codes, but {run_dir} is a {cfg.task} run")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for c, name, item in zip(cf.codes, cf.names, cf.meta["items"], strict=True):
        codes = torch.from_numpy(c.astype(np.int64))[None].to(_device(model))
        x_hat = model.decode(codes)
        if cf.task == "image":
            image = model_output_to_image(x_hat, item["height"], item["width"])
            written.append(write_image(out_dir / f"{name}.png", image))
        else:
            from vqkit.audio.pipeline import model_output_to_wav, write_wav

            y = model_output_to_wav(x_hat, cfg.audio, item["info"])
            written.append(write_wav(out_dir / f"{name}.wav", y, cfg.audio.sample_rate))
    return written
