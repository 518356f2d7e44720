"""Training curves written as PNG files (matplotlib's Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from vqkit.runlog import read_metrics  # noqa: E402


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
