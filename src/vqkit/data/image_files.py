"""Image files and the uint8 pixels they hold: reading, writing, and the model's scale.

``vqkit reconstruct``, ``vqkit encode`` / ``decode`` and ``vqkit evaluate`` read and write images
through these functions, so that the same input gives the same pixels everywhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from vqkit.data.images import model_output_to_unit
from vqkit.errors import DataError

__all__ = ["model_output_to_pixels", "pad_to_multiple", "read_image", "write_image"]


def read_image(path: str | Path, channels: int = 3) -> torch.Tensor:
    """Read a PNG or JPEG (anything Pillow opens) as uint8 (C, H, W): RGB for ``channels=3``,
    grey for 1.

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
            arr = np.asarray(im.convert("RGB" if channels == 3 else "L"), dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        reason = " ".join(str(e).split())
        raise DataError(f"{path}: not a readable image ({reason})") from None
    arr = arr[:, :, None] if arr.ndim == 2 else arr
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


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
