"""Speech figures: mel spectrograms (original over reconstruction) and training curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vqkit.audio.mel import frontend_params, mel_frequencies
from vqkit.config import AudioConfig
from vqkit.figures.themes import subplots
from vqkit.runlog import read_metrics

__all__ = ["plot_mel_comparison", "plot_speech_loss"]


def _mel_axis(ax, cfg: AudioConfig, n_mels: int) -> None:
    """Label the mel-band axis with the band centres in Hz."""
    p = frontend_params(cfg)
    hz = mel_frequencies(n_mels + 2, fmin=p["fmin"], fmax=p["fmax"])[1:-1]
    ticks = np.linspace(0, n_mels - 1, 5).round().astype(int)
    ax.set_yticks(ticks + 0.5)
    ax.set_yticklabels([f"{hz[t] / 1000:.1f}k" if hz[t] >= 1000 else f"{hz[t]:.0f}"
                        for t in ticks])
    ax.set_ylabel("mel frequency (Hz)")


def plot_mel_comparison(
    originals: list[np.ndarray], reconstructions: list[np.ndarray], out_path: str | Path,
    cfg: AudioConfig, *, titles: list[str] | None = None, dynamic_range_db: float = 80.0,
) -> Path:
    """Each original mel (top row) over its reconstruction (bottom row), in dB.

    Parameters
    ----------
    originals, reconstructions : lists of np.ndarray, each shape=(n_mels, T), in dB
        Real frames only; pairs have the same shape.
    out_path : str or Path
        PNG file.
    cfg : AudioConfig
        For the time (``hop_length / sample_rate`` per frame) and mel-frequency axes.
    titles : list of str or None
        One per column (e.g. utterance ids).
    dynamic_range_db : float > 0
        Colour scale, shared by all panels: from the loudest original's peak down by this much.
    """
    n = len(originals)
    widths = [max(o.shape[-1], 8) for o in originals]
    fig, axes = subplots(2, n, figsize=(min(4.5 * n, 20) + 1, 5.6), squeeze=False,
                             gridspec_kw={"width_ratios": widths}, layout="constrained")
    sec_per_frame = cfg.hop_length / cfg.sample_rate
    im = None
    vmax = max(float(np.max(o)) for o in originals)
    vmin = vmax - dynamic_range_db
    for k, (o, r) in enumerate(zip(originals, reconstructions, strict=True)):
        for row, (mel, label) in enumerate(((o, "original"), (r, "reconstruction"))):
            ax = axes[row, k]
            im = ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax,
                           extent=(0, mel.shape[-1] * sec_per_frame, 0, mel.shape[0]),
                           interpolation="nearest")
            if k == 0:
                _mel_axis(ax, cfg, mel.shape[0])
            else:
                ax.set_yticks([])
            if row == 1:
                ax.set_xlabel("time (s)")
            title = label if titles is None else f"{titles[k]}: {label}"
            ax.set_title(title, fontsize=8)
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label="dB (ref 1.0)")
    fig.savefig(out_path, dpi=110)
    return Path(out_path)


def plot_speech_loss(metrics_path: str | Path, out_path: str | Path) -> Path | None:
    """Reconstruction MSE (normalised scale), VQ loss and codebook use of a speech run.

    Per epoch (train and val) when the run has two epochs or more; per logged step (train)
    otherwise. Returns None when ``metrics.jsonl`` holds nothing to plot.
    """
    records = read_metrics(metrics_path)
    epochs = [r for r in records if r.get("kind") == "epoch"]
    steps = [r for r in records if r.get("kind") == "step"]
    if len(epochs) >= 2 or (epochs and not steps):
        x, xlabel, rows = [r["epoch"] for r in epochs], "epoch", epochs
        series = {"recon": [("train_recon", "train"), ("val_recon", "val")],
                  "vq": [("train_vq", "train"), ("val_vq", "val")],
                  "codes": [("train_perplexity", "train perplexity"),
                            ("val_perplexity", "val perplexity")],
                  "usage": [("window_usage", "train (window)"), ("val_usage", "val")]}
    elif steps:
        x, xlabel, rows = [r["step"] for r in steps], "step", steps
        series = {"recon": [("recon", "train")], "vq": [("vq", "train")],
                  "codes": [("perplexity", "train perplexity")],
                  "usage": [("window_usage", "train (window)")]}
    else:
        return None
    fig, axes = subplots(1, 4, figsize=(16, 3.6))
    titles = {"recon": "reconstruction MSE (normalised, real frames)",
              "vq": "VQ loss", "codes": "perplexity", "usage": "codebook usage"}
    for ax, (panel, keys) in zip(axes, series.items(), strict=True):
        for key, label in keys:
            ys = [r.get(key) for r in rows]
            if any(y is not None for y in ys):
                ax.plot(x, [np.nan if y is None else y for y in ys],
                        "-o" if label.startswith("train") else "--s", label=label, markersize=3)
        ax.set_title(titles[panel], fontsize=9)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    axes[0].set_yscale("log")
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    return Path(out_path)
