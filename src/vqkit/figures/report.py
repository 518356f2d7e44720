"""The report's figures, drawn from run-log records and code histograms (never from a model),
once per theme (:func:`vqkit.figures.themes.themed_figure`).

Each function returns ``{"light": PNG bytes, "dark": PNG bytes}``, or None when there is
nothing to draw.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vqkit.figures.curves import draw_losses, series
from vqkit.figures.themes import subplots, themed_figure

__all__ = ["histogram_figure", "loss_figure", "rate_curve_figure", "usage_figure"]

Records = list[dict[str, Any]]


def loss_figure(records: Records, best_metric: str = "val_recon") -> dict[str, bytes] | None:
    """The losses of ``metrics.jsonl`` records (:func:`vqkit.figures.curves.draw_losses`),
    once per theme; None when there is nothing to draw."""
    if not any(r.get("kind") in ("step", "epoch", "stop") for r in records):
        return None
    return themed_figure(lambda theme: draw_losses(records, theme, best_metric))


def usage_figure(records: Records, codebook_size: int) -> dict[str, bytes] | None:
    """Fraction of the codebook in use and code perplexity against optimizer steps: per batch
    and over the sliding window (training steps), and on the validation split (epochs)."""
    usage_keys = [("usage", "step", "per batch"),
                  ("window_usage", "step", "sliding window of batches"),
                  ("val_usage", "epoch", "validation split")]
    ppl_keys = [("perplexity", "step", "per batch"),
                ("val_perplexity", "epoch", "validation split")]
    if not any(series(records, k, (kind,)) for k, kind, _ in usage_keys + ppl_keys):
        return None

    def draw(theme):
        fig, (a, b) = subplots(1, 2, figsize=(11.5, 3.3))
        for ax, keys in ((a, usage_keys), (b, ppl_keys)):
            for i, (key, kind, label) in enumerate(keys):
                s = series(records, key, (kind,))
                if s is None:
                    continue
                if kind == "epoch":
                    ax.plot(*s, marker="s", markersize=3.5, linewidth=1.2, label=label,
                            color=theme["colors"][i])
                else:
                    ax.plot(*s, linewidth=1.1, alpha=0.85, label=label, color=theme["colors"][i])
        a.set_ylim(0, 1.04)
        a.set_title("codebook usage (fraction of codes used)")
        a.set_ylabel("fraction of codes")
        b.axhline(codebook_size, color=theme["muted"], linestyle=":", linewidth=1)
        b.set_title(f"perplexity (max {codebook_size} = all codes equally used)")
        b.set_ylabel("perplexity")
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
        fig, ax = subplots(figsize=(11.5, 3.2))
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


def rate_curve_figure(rows: Records) -> dict[str, bytes] | None:
    """STOI and wideband PESQ against kbps over a model's stage counts (``rate_curve`` rows of
    an evaluation), each with the Griffin-Lim oracle as a dotted line; None without rows."""
    if not rows:
        return None
    kbps = [r["kbps"] for r in rows]

    def draw(theme):
        fig, axes = subplots(1, 2, figsize=(11.5, 3.3))
        for ax, key, name in ((axes[0], "stoi", "STOI"), (axes[1], "pesq", "PESQ (wideband)")):
            ax.plot(kbps, [r[key] for r in rows], marker="o", markersize=3.5,
                    color=theme["colors"][0], label="reconstruction")
            ax.axhline(rows[0][f"{key}_oracle"], color=theme["muted"], linestyle=":",
                       linewidth=1.2, label="Griffin-Lim oracle")
            ax.set_xlabel("kbps (nominal, first n stages)")
            ax.set_title(f"{name} against bit rate")
            ax.legend(loc="best")
        fig.tight_layout()
        return fig

    return themed_figure(draw)
