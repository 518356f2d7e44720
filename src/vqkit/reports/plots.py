"""Matplotlib figures written as PNG files (Agg backend: no display needed)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def read_metrics(path: str | Path) -> list[dict]:
    """Records of a ``metrics.jsonl`` file (a torn last line is ignored)."""
    records = []
    try:
        lines = Path(path).read_text().splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def plot_loss_curves(metrics_path: str | Path, out_path: str | Path) -> Path | None:
    """Reconstruction, VQ and total loss per epoch, train and val, in three panels."""
    epochs = [r for r in read_metrics(metrics_path) if r.get("kind") == "epoch"]
    if not epochs:
        return None
    x = [r["epoch"] for r in epochs]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    panels = (("recon", "reconstruction (MSE)"), ("vq", "VQ (codebook + commitment)"),
              ("loss", "total"))
    for ax, (key, title) in zip(axes, panels, strict=True):
        for split, style in (("train", "-o"), ("val", "--s")):
            ys = [r.get(f"{split}_{key}") for r in epochs]
            if all(y is not None for y in ys):
                ax.plot(x, ys, style, label=split, markersize=3)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return Path(out_path)


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
