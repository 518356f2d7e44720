"""Training curves from run-log records (``metrics.jsonl``): one drawing for the run folder's
``loss_vs_epochs.png`` and for the report's loss figure."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from vqkit.figures.themes import subplots, themed_figure
from vqkit.runlog import read_metrics, summarize
from vqkit.utils import format_number

__all__ = ["draw_losses", "plot_loss_curves", "series", "smooth"]

Records = list[dict[str, Any]]
PANELS = [("loss", "total loss", "loss"),
          ("recon", "reconstruction", "MSE (model scale)"),
          ("vq", "VQ loss (codebook + commitment)", "loss")]


def smooth(y: np.ndarray, n: int) -> np.ndarray:
    """Centred moving average over about ``n`` points (edges use what they have)."""
    if n <= 1 or len(y) < 3:
        return y
    k = np.ones(n) / n
    return np.convolve(y, k, mode="same") / np.convolve(np.ones_like(y), k, mode="same")


def series(records: Records, key: str, kinds: tuple[str, ...], x: str = "step"):
    """(x, y) arrays of the records of ``kinds`` holding finite numbers under ``x`` and
    ``key``, or None."""
    pts = [(r[x], r[key]) for r in records if r.get("kind") in kinds
           and isinstance(r.get(key), (int, float)) and isinstance(r.get(x), (int, float))
           and math.isfinite(r[key])]
    if not pts:
        return None
    a = np.asarray(pts, dtype=np.float64)
    return a[:, 0], a[:, 1]


def draw_losses(records: Records, theme: dict[str, Any], best_metric: str = "val_recon"):
    """Total, reconstruction and VQ loss against optimizer steps: the logged training steps
    (faint) and their moving average, the epochs' training means, the validations (at each
    epoch's end and at an early stop), and the best checkpoint (a star). Returns the figure."""
    best = summarize(records, best_metric)
    c = theme["colors"]
    fig, axes = subplots(1, 3, figsize=(11.5, 3.4))
    for ax, (key, title, ylabel) in zip(axes, PANELS, strict=True):
        s = series(records, key, ("step",))
        if s is not None:
            ax.plot(*s, color=c[0], alpha=0.25, linewidth=0.8)
            ax.plot(s[0], smooth(s[1], max(1, len(s[1]) // 40)), color=c[0], linewidth=1.6,
                    label="train (logged steps)")
        e = series(records, f"train_{key}", ("epoch",))
        if e is not None:
            ax.plot(*e, marker="o", markersize=3.5, linewidth=1.0, linestyle="--", color=c[0],
                    label="train (epoch mean)")
        v = series(records, f"val_{key}", ("epoch", "stop"))
        if v is not None:
            ax.plot(*v, marker="s", markersize=4, linewidth=1.2, color=c[1], label="validation")
        if f"val_{key}" == best_metric and best.best_step >= 0:
            ax.plot([best.best_step], [best.best_value], marker="*", markersize=12,
                    color=c[2], linestyle="none",
                    label=f"best: {format_number(best.best_value)} at step "
                          f"{format_number(best.best_step)}")
        ys = np.concatenate([a[1] for a in (s, e, v) if a is not None] or [np.zeros(0)])
        if len(ys) and ys.min() > 0 and ys.max() / ys.min() > 20:
            ax.set_yscale("log")
        elif len(ys) and ys.max() > ys.min():  # readable after one epoch: room around the data
            pad = 0.05 * (ys.max() - ys.min())
            ax.set_ylim(ys.min() - pad, ys.max() + pad)
        ax.set_title(title)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(ylabel)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def plot_loss_curves(metrics_path: str | Path, out_path: str | Path,
                     best_metric: str = "val_recon") -> Path | None:
    """Draw ``metrics.jsonl``'s losses (:func:`draw_losses`, light theme) to a PNG file;
    None when there is nothing to draw yet."""
    records = read_metrics(metrics_path)
    if not any(r.get("kind") in ("step", "epoch", "stop") for r in records):
        return None
    png = themed_figure(lambda theme: draw_losses(records, theme, best_metric),
                        dpi=110, themes=("light",))["light"]
    Path(out_path).write_bytes(png)
    return Path(out_path)
