"""Image mosaics: originals over their reconstructions."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def image_grid(images: np.ndarray, ncols: int) -> np.ndarray:
    """(N, H, W, C) in [0, 1] -> one (rows*H, ncols*W, C) mosaic with 1-pixel gaps."""
    n, h, w, c = images.shape
    rows = -(-n // ncols)
    grid = np.ones((rows * (h + 1) - 1, ncols * (w + 1) - 1, c), dtype=np.float32)
    for i, im in enumerate(images):
        r, k = divmod(i, ncols)
        grid[r * (h + 1): r * (h + 1) + h, k * (w + 1): k * (w + 1) + w] = im
    return grid


def plot_originals_over_reconstructions(
    originals: np.ndarray, reconstructions: np.ndarray, out_path: str | Path, ncols: int = 16
) -> Path:
    """Originals (top) above their reconstructions (bottom); arrays (N, C, H, W) in [0, 1]."""
    o = image_grid(np.transpose(originals, (0, 2, 3, 1)), ncols)
    r = image_grid(np.transpose(reconstructions, (0, 2, 3, 1)), ncols)
    fig, axes = plt.subplots(2, 1, figsize=(ncols * 0.6, 2 * 0.6 * o.shape[0] / 33 + 0.8))
    for ax, im, title in zip(axes, (o, r), ("original", "reconstruction"), strict=True):
        ax.imshow(im.squeeze(-1) if im.shape[-1] == 1 else im, interpolation="nearest",
                  cmap="gray" if im.shape[-1] == 1 else None)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out_path, dpi=120)
    plt.close(fig)
    return Path(out_path)
