"""The report's figures, drawn from run-log records and code histograms (never from a model),
once per theme (:func:`vqkit.figures.themes.themed_figure`).

Each function returns ``{"light": PNG bytes, "dark": PNG bytes}``, or None when there is
nothing to draw.
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from vqkit.figures.themes import themed_figure  # noqa: E402

__all__ = ["histogram_figure", "loss_figure", "usage_figure"]

Records = list[dict[str, Any]]


def _smooth(y: np.ndarray, n: int) -> np.ndarray:
    """Centred moving average over about ``n`` points (edges use what they have)."""
    if n <= 1 or len(y) < 3:
        return y
    k = np.ones(n) / n
    num = np.convolve(y, k, mode="same")
    den = np.convolve(np.ones_like(y), k, mode="same")
    return num / den


def _series(records: Records, key: str, x: str = "step"):
    """(x values, y values) of the records holding finite numbers under ``x`` and ``key``."""
    pts = [(r[x], r[key]) for r in records
           if isinstance(r.get(key), (int, float)) and isinstance(r.get(x), (int, float))
           and math.isfinite(r[key])]
    if not pts:
        return None
    a = np.asarray(pts, dtype=np.float64)
    return a[:, 0], a[:, 1]


def loss_figure(steps: Records, epochs: Records) -> dict[str, bytes] | None:
    """Total, reconstruction and VQ loss against optimizer steps: logged steps (faint), their
    moving average, and the per-epoch train and validation means (``metrics.jsonl`` records of
    kind "step" and "epoch")."""
    panels = [("loss", "total loss"), ("recon", "reconstruction (MSE)"),
              ("vq", "VQ loss (codebook + commitment)")]
    if not any(_series(steps, k) or _series(epochs, f"val_{k}") for k, _ in panels):
        return None

    def draw(theme):
        fig, axes = plt.subplots(1, 3, figsize=(11.5, 3.3))
        for ax, (key, title) in zip(axes, panels, strict=True):
            c = theme["colors"]
            s = _series(steps, key)
            if s is not None:
                ax.plot(*s, color=c[0], alpha=0.25, linewidth=0.8)
                ax.plot(s[0], _smooth(s[1], max(1, len(s[1]) // 40)), color=c[0],
                        linewidth=1.6, label="train (steps)")
            for split, color, marker in (("train", c[0], "o"), ("val", c[1], "s")):
                e = _series(epochs, f"{split}_{key}")
                if e is not None:
                    ax.plot(*e, marker=marker, markersize=3.5, linewidth=1.2, color=color,
                            linestyle="--" if split == "train" else "-",
                            label=f"{split} (epoch mean)")
            ys = list(s[1] if s is not None else []) + [
                r[f"val_{key}"] for r in epochs if isinstance(r.get(f"val_{key}"), float)]
            if ys and min(ys) > 0 and max(ys) / min(ys) > 20:
                ax.set_yscale("log")
            ax.set_title(title)
            ax.set_xlabel("optimizer step")
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="upper right")
        fig.tight_layout()
        return fig

    return themed_figure(draw)


def usage_figure(steps: Records, epochs: Records, codebook_size: int) -> dict[str, bytes] | None:
    """Fraction of the codebook in use and code perplexity against optimizer steps: per batch
    and over the sliding window (training steps), and on the validation split (epochs)."""
    usage_keys = [("usage", steps, "per batch"),
                  ("window_usage", steps, "sliding window of batches"),
                  ("val_usage", epochs, "validation split")]
    ppl_keys = [("perplexity", steps, "per batch"),
                ("val_perplexity", epochs, "validation split")]
    if not any(_series(r, k) for k, r, _ in usage_keys + ppl_keys):
        return None

    def draw(theme):
        fig, (a, b) = plt.subplots(1, 2, figsize=(11.5, 3.3))
        for ax, keys in ((a, usage_keys), (b, ppl_keys)):
            for i, (key, recs, label) in enumerate(keys):
                s = _series(recs, key)
                if s is None:
                    continue
                if recs is epochs:
                    ax.plot(*s, marker="s", markersize=3.5, linewidth=1.2, label=label,
                            color=theme["colors"][i])
                else:
                    ax.plot(*s, linewidth=1.1, alpha=0.85, label=label, color=theme["colors"][i])
        a.set_ylim(0, 1.04)
        a.set_title("codebook usage (fraction of codes used)")
        b.axhline(codebook_size, color=theme["muted"], linestyle=":", linewidth=1)
        b.set_title(f"perplexity (max {codebook_size} = all codes equally used)")
        b.set_ylim(0, codebook_size * 1.05)
        for ax in (a, b):
            ax.set_xlabel("optimizer step")
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="lower right")
        fig.tight_layout()
        return fig

    return themed_figure(draw)


def histogram_figure(counts: np.ndarray) -> dict[str, bytes]:
    """Code frequencies of a (K, codebook_size) histogram sorted from the most to the least
    used, one curve per residual stage."""
    counts = np.atleast_2d(counts)

    def draw(theme):
        fig, ax = plt.subplots(figsize=(11.5, 3.2))
        size = counts.shape[1]
        for k, c in enumerate(counts):
            freq = np.sort(c)[::-1] / max(c.sum(), 1)
            label = f"stage {k + 1}" if len(counts) > 1 else None
            color = theme["colors"][k % len(theme["colors"])]
            edges = np.arange(size + 1) + 0.5
            ax.stairs(freq, edges, fill=len(counts) == 1, color=color, label=label,
                      baseline=freq[freq > 0].min() / 2 if (freq > 0).any() else None)
        ax.axhline(1 / size, color=theme["muted"], linestyle=":", linewidth=1,
                   label="uniform (1 / codebook size)")
        ax.set_yscale("log")
        ax.set_axisbelow(True)
        ax.set_xlim(0.5, size + 0.5)
        ax.set_xlabel("code rank (most used first)")
        ax.set_ylabel("frequency")
        ax.set_title("code frequencies, sorted")
        ax.legend(loc="upper right")
        fig.tight_layout()
        return fig

    return themed_figure(draw)
