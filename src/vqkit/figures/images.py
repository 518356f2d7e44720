"""Image mosaics: :func:`image_grid` lays images out, optionally each row of originals above the
row of their reconstructions; the PNG figure of ``vqkit evaluate`` / ``vqkit reconstruct``, the
report and TensorBoard all use it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vqkit.figures.themes import subplots

__all__ = ["image_grid", "plot_originals_over_reconstructions"]


def image_grid(
    images: np.ndarray, ncols: int, *, under: np.ndarray | None = None, scale: int = 1,
    gap: int = 1, pair_gap: int | None = None, fill: float = 1.0,
) -> np.ndarray:
    """One mosaic (rows, cols, C) of N images in rows of ``ncols``.

    With ``under``, each row of ``images`` has the row of ``under`` (the same positions, e.g.
    the reconstructions of ``images``) directly below it, and the pairs of rows are
    ``pair_gap`` pixels apart.

    Parameters
    ----------
    images : np.ndarray, shape=(N, H, W, C)
        Floats in [0, 1], or uint8.
    ncols : int > 0
        Images per row (fewer when N is smaller).
    under : np.ndarray, shape=(N, H, W, C), optional
        Same dtype as ``images``.
    scale : int >= 1
        Each image enlarged by this factor (nearest neighbour: pixels stay sharp).
    gap : int >= 0
        Pixels between neighbouring images (and between a row and the row under it).
    pair_gap : int >= 0 or None
        Pixels between pairs of rows; None: ``gap``.
    fill : float in [0, 1]
        Colour of the gaps and of empty cells (1 white, 0.5 mid-grey; times 255 for uint8).

    Returns
    -------
    np.ndarray, shape=(rows * H * scale + gaps, cols * W * scale + gaps, C)
        float32 for float input, uint8 for uint8 input.
    """
    n, h, w, c = images.shape
    if under is not None and under.shape != images.shape:
        raise ValueError(f"under has shape {under.shape}, images {images.shape}")
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    layers = [images] if under is None else [images, under]
    pair_gap = gap if pair_gap is None else pair_gap
    ch, cw = h * scale, w * scale
    band = len(layers) * ch + (len(layers) - 1) * gap  # one row, or a row over its partner
    height = nrows * band + (nrows - 1) * pair_gap
    width = ncols * cw + (ncols - 1) * gap
    uint8 = images.dtype == np.uint8
    dtype = np.uint8 if uint8 else np.float32
    mosaic = np.full((height, width, c), round(fill * 255) if uint8 else fill, dtype=dtype)
    for i in range(n):
        r, k = divmod(i, ncols)
        left = k * (cw + gap)
        for j, layer in enumerate(layers):
            top = r * (band + pair_gap) + j * (ch + gap)
            mosaic[top:top + ch, left:left + cw] = np.repeat(np.repeat(layer[i], scale, 0),
                                                             scale, 1)
    return mosaic


def plot_originals_over_reconstructions(
    originals: np.ndarray, reconstructions: np.ndarray, out_path: str | Path, ncols: int = 16
) -> Path:
    """A PNG of :func:`image_grid`: each row of originals above the row of their
    reconstructions.

    ``originals`` and ``reconstructions`` are (N, H, W, C), uint8 or floats in [0, 1].
    """
    grid = image_grid(originals, ncols, under=reconstructions, gap=1, pair_gap=4)
    rows, cols = grid.shape[:2]
    fig, ax = subplots(figsize=(max(2.0, cols / 55), max(1.5, rows / 55 + 0.5)))
    top = 255 if grid.dtype == np.uint8 else 1.0
    ax.imshow(grid.squeeze(-1) if grid.shape[-1] == 1 else grid, interpolation="nearest",
              cmap="gray" if grid.shape[-1] == 1 else None, vmin=0, vmax=top)
    ax.set_title("originals (upper row of each pair) over reconstructions", fontsize=9)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(out_path, dpi=120)
    return Path(out_path)
