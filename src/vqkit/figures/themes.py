"""Figures for a page that follows the reader's light or dark theme: every figure is drawn once
per theme (:func:`themed_figure`); plus the PNG encoders of the report's images."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import matplotlib
import matplotlib.image
import numpy as np
from matplotlib import cycler
from matplotlib.figure import Figure
from PIL import Image

__all__ = ["THEMES", "png_bytes", "spectrogram_png", "subplots", "themed_figure"]


def subplots(*args: Any, figsize: tuple[float, float], layout: str | None = None,
             **kwargs: Any):
    """``(figure, axes)`` like ``pyplot.subplots``, without pyplot: vqkit never picks or
    changes the process's matplotlib backend (a notebook keeps its inline plots), and its
    figures need no closing."""
    fig = Figure(figsize=figsize, layout=layout)
    return fig, fig.subplots(*args, **kwargs)

THEMES: dict[str, dict[str, Any]] = {
    "light": {"bg": "#ffffff", "fg": "#1d2026", "muted": "#5d6470", "grid": "#d5d9df",
              "colors": ["#2563c9", "#e0590b", "#2b8a3e", "#9c36b5", "#c92a2a", "#0b7285"]},
    "dark": {"bg": "#1e2127", "fg": "#e4e6ea", "muted": "#a2a8b3", "grid": "#3a3f49",
             "colors": ["#7eaaff", "#ffa94d", "#69db7c", "#e599f7", "#ff8787", "#66d9e8"]},
}


def _rc(theme: dict[str, Any]) -> dict[str, Any]:
    return {
        "figure.facecolor": theme["bg"], "axes.facecolor": theme["bg"],
        "savefig.facecolor": theme["bg"], "axes.edgecolor": theme["muted"],
        "axes.labelcolor": theme["fg"], "text.color": theme["fg"],
        "xtick.color": theme["muted"], "ytick.color": theme["muted"],
        "grid.color": theme["grid"], "axes.grid": True, "grid.linewidth": 0.6,
        "axes.prop_cycle": cycler(color=theme["colors"]),
        "legend.facecolor": theme["bg"], "legend.edgecolor": theme["grid"],
        "legend.fontsize": 8.5, "axes.titlesize": 10.5, "axes.labelsize": 9,
        "xtick.labelsize": 8.5, "ytick.labelsize": 8.5, "font.size": 9,
        "axes.spines.top": False, "axes.spines.right": False,
    }


def themed_figure(draw: Callable[[dict[str, Any]], Any], dpi: int = 130,
                  themes: tuple[str, ...] = ("light", "dark")) -> dict[str, bytes]:
    """Call ``draw(theme)`` (which returns a figure) for each of ``themes`` (names in
    :data:`THEMES`); PNG bytes by theme name."""
    out = {}
    for name in themes:
        theme = THEMES[name]
        with matplotlib.rc_context(_rc(theme)):
            fig = draw(theme)
            buf = io.BytesIO()
            # Layout already tight (one draw only); light compression: figures are small.
            fig.savefig(buf, format="png", dpi=dpi, pil_kwargs={"compress_level": 3})
        out[name] = buf.getvalue()
    return out


def png_bytes(image: np.ndarray) -> bytes:
    """uint8 (H, W) or (H, W, C) -> PNG bytes."""
    buf = io.BytesIO()
    Image.fromarray(image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image).save(
        buf, format="PNG")
    return buf.getvalue()


def spectrogram_png(mel: np.ndarray, vmin: float, vmax: float) -> bytes:
    """(n_mels, T) -> a PNG of it, one pixel per value, low frequencies at the bottom, magma
    colour map from ``vmin`` to ``vmax``."""
    buf = io.BytesIO()
    matplotlib.image.imsave(buf, np.asarray(mel, dtype=np.float32), cmap="magma", vmin=vmin,
                            vmax=vmax, origin="lower", format="png")
    return buf.getvalue()
