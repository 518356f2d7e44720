"""Image files and the uint8 pixels they hold: reading, writing, and the model's scale.

``vqkit reconstruct``, ``vqkit encode`` / ``decode`` and ``vqkit evaluate`` read and write images
through these functions, so that the same input gives the same pixels everywhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from vqkit.data.images import model_output_to_unit
from vqkit.errors import DataError

__all__ = ["model_output_to_pixels", "pad_to_multiple", "pixels_of", "read_image", "write_image"]


def pixels_of(im: Image.Image, channels: int) -> np.ndarray:
    """uint8 (H, W, C) of an opened image: 16- and 32-bit greys scaled to 8 bits, palette and
    alpha images flattened (alpha dropped), any mode to RGB or grey."""
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode != "F" else max(1.0, float(a.max()))
        a = np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        if channels == 3:
            a = np.repeat(a[:, :, None], 3, axis=2)
        return a if a.ndim == 3 else a[:, :, None]
    if im.mode == "P":
        im = im.convert("RGBA")
    a = np.asarray(im.convert("RGB" if channels == 3 else "L"), dtype=np.uint8)
    return a if a.ndim == 3 else a[:, :, None]


def read_image(path: str | Path, channels: int = 3) -> torch.Tensor:
    """Read a PNG or JPEG (anything Pillow opens) as uint8 (C, H, W): RGB for ``channels=3``,
    grey for 1; EXIF rotation applied and modes converted as for training (:func:`pixels_of`).

    Raises
    ------
    DataError
        One line naming the file: missing, not an image, or a channel count images cannot give.
    """
    path = Path(path)
    if channels not in (1, 3):
        raise DataError(f"{path}: the model takes {channels} channels; images give 1 or 3")
    try:
        with Image.open(path) as im:
            arr = pixels_of(ImageOps.exif_transpose(im), channels)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        reason = " ".join(str(e).split())
        raise DataError(f"{path}: not a readable image ({reason})") from None
    return torch.from_numpy(np.array(arr.transpose(2, 0, 1), order="C"))  # a writable copy


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Write uint8 (H, W, C) with C in {1, 3} as a PNG (creating the folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image[:, :, 0] if image.shape[-1] == 1 else image).save(path, format="PNG")
    return path


def pad_to_multiple(image: torch.Tensor, multiple: int) -> torch.Tensor:
    """uint8 (C, H, W) -> (C, H', W') with H' and W' rounded up to ``multiple`` by repeating the
    edge pixels; the model's output is cropped back to (H, W)."""
    h, w = image.shape[-2:]
    arr = np.pad(image.numpy(), ((0, 0), (0, -h % multiple), (0, -w % multiple)), mode="edge")
    return torch.from_numpy(np.ascontiguousarray(arr))


def model_output_to_pixels(x: torch.Tensor) -> np.ndarray:
    """The model's scale [-0.5, 0.5] (its input or its output), (..., C, H, W) -> uint8
    (..., H, W, C): clamped to [0, 1], times 255, rounded to the nearest level."""
    u = model_output_to_unit(x.detach().float().clone()).cpu()
    return (u.movedim(-3, -1).numpy() * 255.0).round().astype(np.uint8)
