"""``write_report(run_dir)``: one self-contained HTML page about a run.

The page (``RUN_DIR/report.html``) opens from disk with no server and no network: figures,
images and audio are embedded as base64 ``data:`` URIs, and there is no script. It is laid out
for a laptop screen and follows the reader's light or dark theme (``prefers-color-scheme``);
every figure is drawn twice, once per theme.

What it shows, and where each part comes from:

- config and metrics tables: ``config.json``, ``metrics.jsonl`` and every ``eval*.json``
  (written by ``vqkit evaluate --json``);
- loss curves and codebook usage over training: ``metrics.jsonl``;
- the sorted code-frequency histogram and the samples (images: originals over
  reconstructions; speech: a few utterances with their original and reconstructed mel
  spectrograms and three players: original, Griffin-Lim of the true mel, reconstruction):
  no saved artifact holds them, so the report runs the run's checkpoint on a few items of the
  run's validation data (``cfg.data.root``) and says so on the page. When the checkpoint or the
  data cannot be read, those parts are left out with the reason;
- every other PNG in the run directory (``loss_vs_epochs.png``, ``original_and_reconstructed
  .png`` from ``vqkit evaluate``, ...), as saved.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from vqkit.errors import VQKitError  # noqa: E402

__all__ = ["write_report", "build_report", "ReportData"]

REPORT_NAME = "report.html"


# ---------------------------------------------------------------------------------------------
# What the page is built from


@dataclass
class Utterance:
    """One speech sample: mel spectrograms in the model's scale, audio at ``sample_rate``."""

    name: str
    duration_s: float
    mel: np.ndarray  # (n_mels, T) model input
    mel_hat: np.ndarray  # (n_mels, T) reconstruction
    audio: dict[str, np.ndarray]  # "original", "griffin_lim", "reconstruction" -> (samples,)
    sample_rate: int


@dataclass
class ReportData:
    """Everything the page shows, gathered from the run directory (and its checkpoint)."""

    run_dir: Path
    config: dict[str, Any]
    steps: list[dict[str, Any]]
    epochs: list[dict[str, Any]]
    evals: dict[str, dict[str, Any]]  # file name -> metrics
    checkpoint: dict[str, Any] = field(default_factory=dict)  # meta.json of the checkpoint
    code_counts: np.ndarray | None = None  # (K, codebook_size)
    code_counts_source: str = ""
    image_grid: np.ndarray | None = None  # (H, W, C) uint8 mosaic
    n_grid: int = 0
    utterances: list[Utterance] = field(default_factory=list)
    sample_note: str = ""  # why the live parts are missing, or where they come from
    figures: dict[str, bytes] = field(default_factory=dict)  # saved PNGs by file name
    rate: tuple[float, str] | None = None  # nominal bits per pixel or per second


# ---------------------------------------------------------------------------------------------
# Reading the run directory


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        obj = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


def gather(
    run_dir: str | Path, *, which: str = "best", device: str = "cpu", live: bool = True,
    n_images: int = 16, n_utterances: int = 3, hist_items: int = 1000,
    hist_utterances: int = 32,
) -> ReportData:
    """Read the run's artifacts; with ``live``, also run its checkpoint on a few items of its
    validation data for the code histogram and the samples."""
    from vqkit.runlog import read_metrics

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise VQKitError(f"{run_dir}: no such run directory")
    cfg_path = run_dir / "config.json"
    config = _read_json(cfg_path)
    if config is None:
        raise VQKitError(f"{cfg_path}: missing or unreadable; is {run_dir} a vqkit run?")
    records = read_metrics(run_dir / "metrics.jsonl")
    data = ReportData(
        run_dir=run_dir, config=config,
        steps=[r for r in records if r.get("kind") == "step"],
        epochs=[r for r in records if r.get("kind") == "epoch"],
        evals={},
    )
    for p in sorted(run_dir.glob("eval*.json")):
        m = _read_json(p)
        if m is not None:
            data.evals[p.name] = m
    for p in sorted(run_dir.glob("*.png")):
        try:
            data.figures[p.name] = p.read_bytes()
        except OSError:
            continue
    for name in (which, "last"):
        meta = _read_json(run_dir / "checkpoints" / name / "meta.json")
        if meta is not None:
            data.checkpoint = {"name": name, **meta}
            break
    for m in data.evals.values():  # an evaluation that saved its code histogram
        if isinstance(m.get("code_counts"), list):
            data.code_counts = np.atleast_2d(np.asarray(m["code_counts"], dtype=np.int64))
            data.code_counts_source = "from vqkit evaluate"
    if live:
        try:
            _live_samples(data, which=which, device=device, n_images=n_images,
                          n_utterances=n_utterances, hist_items=hist_items,
                          hist_utterances=hist_utterances)
        except VQKitError as e:
            data.sample_note = f"Samples and code histogram unavailable: {e}"
    return data


def _live_samples(data: ReportData, *, which: str, device: str, n_images: int,
                  n_utterances: int, hist_items: int, hist_utterances: int) -> None:
    from vqkit.models import load_model

    dev = torch.device(device)
    model, cfg = load_model(data.run_dir, which, dev)
    q = model.quantizer
    if cfg.task == "image":
        images = _image_sample(cfg, hist_items)
        counts, grid = _run_images(model, images, n_images, dev)
        h, w = images.shape[-2:]
        data.rate = (h // model.downsampling * (w // model.downsampling) * q.bits_per_code
                     / (h * w), "bits/pixel")
        data.image_grid, data.n_grid = grid, min(n_images, len(images))
        what = f"{len(images)} images"
    else:
        counts, utts, n_used = _run_speech(model, cfg, n_utterances, hist_utterances, dev)
        data.utterances = utts
        from vqkit.rates import bitrate_bps

        data.rate = (bitrate_bps(cfg.audio, downsampling=model.downsampling,
                                 bits_per_code=q.bits_per_code), "bits/s")
        what = f"{n_used} utterances"
    if data.code_counts is None:
        data.code_counts = counts.numpy()
        data.code_counts_source = (
            f"computed by this report: the {data.checkpoint.get('name', which)} checkpoint "
            f"on the first {what} of the {cfg.data.val_split!r} split")
    where = cfg.data.root or "the download cache"
    data.sample_note = (f"Samples: the {data.checkpoint.get('name', which)} checkpoint on the "
                        f"first items of the {cfg.data.val_split!r} split of {where}.")


def _image_sample(cfg, n: int) -> torch.Tensor:
    from vqkit.data.cifar10 import load_cifar10

    images, _ = load_cifar10(cfg.data.root or None, cfg.data.val_split, download=False)
    return images[:n]


@torch.no_grad()
def _run_images(model, images: torch.Tensor, n_grid: int, device: torch.device):
    from vqkit.data.images import images_to_model_input, model_output_to_unit
    from vqkit.evaluation.metrics import code_histogram

    q = model.quantizer
    counts = torch.zeros(q.num_quantizers, q.codebook_size, dtype=torch.long)
    first = None
    for lo in range(0, len(images), 250):
        x = images_to_model_input(images[lo:lo + 250]).to(device)
        x_hat, out = model(x)
        counts += code_histogram(out.codes, q.codebook_size, q.num_quantizers)
        if first is None:
            first = (model_output_to_unit(x[:n_grid].clone()).cpu(),
                     model_output_to_unit(x_hat[:n_grid]).cpu())
    assert first is not None
    return counts, originals_over_reconstructions(first[0].numpy(), first[1].numpy())


def originals_over_reconstructions(
    originals: np.ndarray, reconstructions: np.ndarray, ncols: int = 8, target_px: int = 128,
) -> np.ndarray:
    """A uint8 (H, W, C) mosaic: rows of originals, each above the row of its reconstructions.

    ``originals`` and ``reconstructions`` are (N, C, H, W) in [0, 1]. Images are enlarged by an
    integer factor (nearest neighbour) to about ``target_px`` wide; gaps are mid-grey so the
    mosaic reads on light and dark pages.
    """
    n, c, h, w = originals.shape
    s = max(1, target_px // max(h, w))
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    gap, pair_gap = max(1, s), 4 * max(1, s)
    cell_h, cell_w = h * s, w * s
    height = nrows * (2 * cell_h + gap) + (nrows - 1) * pair_gap
    width = ncols * cell_w + (ncols - 1) * gap
    mosaic = np.full((height, width, c), 0.5, dtype=np.float32)
    for i in range(n):
        r, k = divmod(i, ncols)
        top = r * (2 * cell_h + gap + pair_gap)
        left = k * (cell_w + gap)
        for j, src in enumerate((originals[i], reconstructions[i])):
            up = np.repeat(np.repeat(np.transpose(src, (1, 2, 0)), s, 0), s, 1)
            y = top + j * (cell_h + gap)
            mosaic[y:y + cell_h, left:left + cell_w] = up
    return np.round(np.clip(mosaic, 0, 1) * 255).astype(np.uint8)


# -- speech -----------------------------------------------------------------------------------


@torch.no_grad()
def _run_speech(model, cfg, n_utts: int, n_hist: int, device: torch.device):
    """Code counts over the real frames of the first ``n_hist`` utterances of the validation
    split (batched as evaluation does), and the first ``n_utts`` as :class:`Utterance` (passed
    through the model as ``vqkit reconstruct`` does)."""
    from vqkit.audio.mel import audio_from_mel_db, load_audio, mel_db_from_audio
    from vqkit.audio.normalize import clip_frames
    from vqkit.audio.pipeline import (
        MelInfo,
        batch_model_input,
        model_output_to_wav,
        prepare_mel_db,
        wav_to_model_input,
    )
    from vqkit.data.speech import open_speech_cache, select_ids, source_path
    from vqkit.evaluation.metrics import code_histogram
    from vqkit.evaluation.speech import real_codes

    a = cfg.audio
    q = model.quantizer
    down = model.downsampling
    cache, source_root = open_speech_cache(cfg, progress=False)
    ids = select_ids(cache, cfg.data.val_split)
    counts = torch.zeros(q.num_quantizers, q.codebook_size, dtype=torch.long)
    hist_ids = ids[:n_hist]
    for b0 in range(0, len(hist_ids), 16):
        norms = [prepare_mel_db(cache.load(i), a)[0] for i in hist_ids[b0:b0 + 16]]
        x, mask = batch_model_input(norms, frames=clip_frames(a, multiple=down), multiple=down)
        _, out = model(x.to(device))
        counts += code_histogram(real_codes(out.codes, mask.to(device), down), q.codebook_size,
                                 q.num_quantizers)
    utts: list[Utterance] = []
    for utt in ids[:n_utts]:
        y = load_audio(source_path(cache, source_root, utt), sample_rate=a.sample_rate)
        x, d = wav_to_model_input(y, a, multiple=down)
        info = MelInfo.from_dict(d)
        x_hat, _ = model(x.to(device))
        y = y[:info.n_samples]
        true_db = mel_db_from_audio(y, a)[:, :info.n_frames]
        utts.append(Utterance(
            name=utt, duration_s=len(y) / a.sample_rate,
            mel=x[0, 0, :, :info.n_frames].cpu().numpy(),
            mel_hat=x_hat[0, 0, :, :info.n_frames].cpu().numpy(),
            audio={"original": y,
                   "griffin_lim": _to_numpy(audio_from_mel_db(true_db, a, length=len(y))),
                   "reconstruction": _to_numpy(model_output_to_wav(x_hat.cpu(), a, info))},
            sample_rate=a.sample_rate))
    return counts, utts, len(hist_ids)


def _to_numpy(y) -> np.ndarray:
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    return np.asarray(y, dtype=np.float32).reshape(-1)


# ---------------------------------------------------------------------------------------------
# Encoding for the page


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def png_bytes(image: np.ndarray) -> bytes:
    """uint8 (H, W) or (H, W, C) -> PNG bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image).save(
        buf, format="PNG")
    return buf.getvalue()


def wav_bytes(y: np.ndarray, sample_rate: int) -> bytes:
    """Mono float audio -> 16-bit PCM WAV bytes (peaks above full scale are clipped)."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(np.asarray(y, dtype=np.float32), -1, 1), sample_rate,
             format="WAV", subtype="PCM_16")
    return buf.getvalue()


def spectrogram_png(mel: np.ndarray, vmin: float, vmax: float) -> bytes:
    """(n_mels, T) -> a PNG of it, low frequencies at the bottom, magma colour map."""
    buf = io.BytesIO()
    plt.imsave(buf, np.asarray(mel, dtype=np.float32), cmap="magma", vmin=vmin, vmax=vmax,
               origin="lower", format="png")
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# Figures, drawn once per theme

THEMES: dict[str, dict[str, Any]] = {
    "light": {"bg": "#ffffff", "fg": "#1d2026", "muted": "#5d6470", "grid": "#d5d9df",
              "colors": ["#2563c9", "#e0590b", "#2b8a3e", "#9c36b5", "#c92a2a", "#0b7285"]},
    "dark": {"bg": "#1e2127", "fg": "#e4e6ea", "muted": "#a2a8b3", "grid": "#3a3f49",
             "colors": ["#7eaaff", "#ffa94d", "#69db7c", "#e599f7", "#ff8787", "#66d9e8"]},
}


def _rc(theme: dict[str, Any]) -> dict[str, Any]:
    from matplotlib import cycler

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


def themed_figure(draw: Callable[[dict[str, Any]], Any], dpi: int = 130) -> dict[str, bytes]:
    """Call ``draw(theme)`` (which returns a figure) for each theme; PNG bytes by theme."""
    out = {}
    for name, theme in THEMES.items():
        with plt.rc_context(_rc(theme)):
            fig = draw(theme)
            buf = io.BytesIO()
            # Layout already tight (one draw only); light compression: figures are small.
            fig.savefig(buf, format="png", dpi=dpi, pil_kwargs={"compress_level": 3})
            plt.close(fig)
        out[name] = buf.getvalue()
    return out


def _smooth(y: np.ndarray, n: int) -> np.ndarray:
    """Centred moving average over about ``n`` points (edges use what they have)."""
    if n <= 1 or len(y) < 3:
        return y
    k = np.ones(n) / n
    num = np.convolve(y, k, mode="same")
    den = np.convolve(np.ones_like(y), k, mode="same")
    return num / den


def _series(records: list[dict[str, Any]], key: str, x: str = "step"):
    pts = [(r[x], r[key]) for r in records
           if isinstance(r.get(key), (int, float)) and isinstance(r.get(x), (int, float))
           and math.isfinite(r[key])]
    if not pts:
        return None
    a = np.asarray(pts, dtype=np.float64)
    return a[:, 0], a[:, 1]


def loss_figure(data: ReportData) -> dict[str, bytes] | None:
    """Total, reconstruction and VQ loss against optimizer steps: logged steps (faint), their
    moving average, and the per-epoch train and validation means."""
    panels = [("loss", "total loss"), ("recon", "reconstruction (MSE)"),
              ("vq", "VQ loss (codebook + commitment)")]
    if not any(_series(data.steps, k) or _series(data.epochs, f"val_{k}") for k, _ in panels):
        return None

    def draw(theme):
        fig, axes = plt.subplots(1, 3, figsize=(11.5, 3.3))
        for ax, (key, title) in zip(axes, panels, strict=True):
            c = theme["colors"]
            s = _series(data.steps, key)
            if s is not None:
                ax.plot(*s, color=c[0], alpha=0.25, linewidth=0.8)
                ax.plot(s[0], _smooth(s[1], max(1, len(s[1]) // 40)), color=c[0],
                        linewidth=1.6, label="train (steps)")
            for split, color, marker in (("train", c[0], "o"), ("val", c[1], "s")):
                e = _series(data.epochs, f"{split}_{key}")
                if e is not None:
                    ax.plot(*e, marker=marker, markersize=3.5, linewidth=1.2, color=color,
                            linestyle="--" if split == "train" else "-",
                            label=f"{split} (epoch mean)")
            ys = [v for v in (s[1] if s is not None else [])] + [
                r[f"val_{key}"] for r in data.epochs if isinstance(r.get(f"val_{key}"), float)]
            if ys and min(ys) > 0 and max(ys) / min(ys) > 20:
                ax.set_yscale("log")
            ax.set_title(title)
            ax.set_xlabel("optimizer step")
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="upper right")
        fig.tight_layout()
        return fig

    return themed_figure(draw)


def usage_figure(data: ReportData, codebook_size: int) -> dict[str, bytes] | None:
    """Fraction of the codebook in use and code perplexity against optimizer steps."""
    usage_keys = [("usage", data.steps, "per batch"),
                  ("window_usage", data.steps, "sliding window of batches"),
                  ("val_usage", data.epochs, "validation split")]
    ppl_keys = [("perplexity", data.steps, "per batch"),
                ("val_perplexity", data.epochs, "validation split")]
    if not any(_series(r, k) for k, r, _ in usage_keys + ppl_keys):
        return None

    def draw(theme):
        fig, (a, b) = plt.subplots(1, 2, figsize=(11.5, 3.3))
        for ax, keys in ((a, usage_keys), (b, ppl_keys)):
            for i, (key, recs, label) in enumerate(keys):
                s = _series(recs, key)
                if s is None:
                    continue
                if recs is data.epochs:
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


def code_stats(counts: np.ndarray) -> dict[str, float]:
    """Used codes, perplexity and entropy (bits) of a (K, codebook_size) histogram, averaged
    over the K stages."""
    counts = np.atleast_2d(counts).astype(np.float64)
    used, ppl, ent = [], [], []
    for c in counts:
        p = c / max(c.sum(), 1)
        nz = p[p > 0]
        h = float(-(nz * np.log2(nz)).sum())
        used.append(float((c > 0).sum()))
        ent.append(h)
        ppl.append(2.0**h)
    return {"used": float(np.mean(used)), "perplexity": float(np.mean(ppl)),
            "entropy_bits": float(np.mean(ent)), "total": float(counts[0].sum())}


def histogram_figure(counts: np.ndarray) -> dict[str, bytes]:
    """Code frequencies sorted from the most to the least used, one curve per RVQ stage."""
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


# ---------------------------------------------------------------------------------------------
# HTML

CSS = """
:root {
  color-scheme: light dark;
  --bg: #f4f5f7; --fg: #1d2026; --muted: #5d6470; --card: #ffffff; --border: #dfe2e7;
  --accent: #2563c9; --th: #f0f2f5; --frame: #ffffff;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #15171b; --fg: #e4e6ea; --muted: #a2a8b3; --card: #1e2127; --border: #323741;
    --accent: #7eaaff; --th: #252932; --frame: #f4f5f7;
  }
}
* { box-sizing: border-box; }
html { background: var(--bg); }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; }
main { max-width: 1200px; margin: 0 auto; padding: 20px 20px 60px; }
header h1 { font-size: 1.55rem; margin: 6px 0 2px; overflow-wrap: anywhere; }
header p { margin: 0; color: var(--muted); }
nav { margin: 12px 0 4px; display: flex; flex-wrap: wrap; gap: 6px 14px; font-size: .92rem; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
section { background: var(--card); border: 1px solid var(--border); border-radius: 10px;
  padding: 14px 18px 16px; margin: 16px 0; }
h2 { font-size: 1.15rem; margin: 0 0 10px; }
h3 { font-size: 1rem; margin: 14px 0 6px; }
.muted { color: var(--muted); font-size: .9rem; }
.note { color: var(--muted); font-size: .9rem; margin: 6px 0 0; }
.kpis { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr));
  gap: 10px; }
.kpi { background: var(--th); border-radius: 8px; padding: 8px 12px; }
.kpi .v { font-size: 1.3rem; font-weight: 600; font-variant-numeric: tabular-nums; }
.kpi .k { color: var(--muted); font-size: .82rem; }
.tables { columns: 4 270px; column-gap: 26px; }
.tables > div { break-inside: avoid; margin-bottom: 14px; }
.tables table { width: 100%; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: .88rem; }
th, td { padding: 3px 10px; border-bottom: 1px solid var(--border); text-align: left;
  vertical-align: top; }
th { background: var(--th); font-weight: 600; }
td.n { text-align: right; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas,
  monospace; font-variant-numeric: tabular-nums; white-space: nowrap; }
caption { text-align: left; font-weight: 600; padding: 2px 0 6px; }
figure { margin: 8px 0; }
figure img, picture img { display: block; max-width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: .88rem; margin-top: 4px; }
img.pixel { image-rendering: pixelated; }
.frame { background: var(--frame); padding: 6px; border-radius: 6px; display: inline-block;
  max-width: 100%; }
.utt { border-top: 1px solid var(--border); padding-top: 10px; margin-top: 12px; }
.utt:first-of-type { border-top: 0; margin-top: 0; padding-top: 0; }
.spec { display: grid; grid-template-columns: 9.5em 1fr; gap: 4px 10px; align-items: center; }
.spec img { width: 100%; height: 150px; object-fit: fill; border-radius: 4px; }
.players { display: grid; grid-template-columns: repeat(auto-fit, minmax(240px, 1fr));
  gap: 8px 16px; margin-top: 10px; }
.players div { font-size: .88rem; color: var(--muted); }
audio { width: 100%; display: block; margin-top: 2px; }
details summary { cursor: pointer; color: var(--accent); margin: 6px 0; }
footer { color: var(--muted); font-size: .85rem; margin-top: 24px; }
@media (max-width: 640px) { .spec { grid-template-columns: 1fr; } }
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def fmt(v: Any) -> str:
    """A number as a table shows it: ints with thousands separators, floats to 4-5 digits."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        if v == 0:
            return "0"
        if abs(v) >= 1e5 or abs(v) < 1e-3:
            return f"{v:.3e}"
        return f"{v:.5g}" if abs(v) >= 1 else f"{v:.4g}"
    if isinstance(v, list):
        return ", ".join(fmt(x) for x in v) if len(v) <= 16 else f"[{len(v)} values]"
    return str(v)


def _cell(v: Any) -> str:
    cls = ' class="n"' if isinstance(v, (int, float)) and not isinstance(v, bool) else ""
    return f"<td{cls}>{_e(fmt(v))}</td>"


def table(rows: Sequence[Sequence[Any]], header: Sequence[str] | None = None,
          caption: str | None = None) -> str:
    parts = ["<table>"]
    if caption:
        parts.append(f"<caption>{_e(caption)}</caption>")
    if header:
        parts.append("<thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in header)
                     + "</tr></thead>")
    parts.append("<tbody>")
    for r in rows:
        parts.append("<tr><th scope=\"row\">" + _e(r[0]) + "</th>"
                     + "".join(_cell(v) for v in r[1:]) + "</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def picture(pngs: dict[str, bytes], alt: str, caption: str = "") -> str:
    """A themed figure: the dark variant when the reader prefers a dark scheme."""
    dark = _data_uri(pngs["dark"], "image/png")
    light = _data_uri(pngs["light"], "image/png")
    cap = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
    return (f'<figure><picture><source media="(prefers-color-scheme: dark)" srcset="{dark}">'
            f'<img src="{light}" alt="{_e(alt)}"></picture>{cap}</figure>')


def _img(png: bytes, alt: str, cls: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return f'<img{c} src="{_data_uri(png, "image/png")}" alt="{_e(alt)}">'


def _kpis(items: list[tuple[str, Any]]) -> str:
    cells = "".join(f'<div class="kpi"><div class="v">{_e(fmt(v))}</div>'
                    f'<div class="k">{_e(k)}</div></div>' for k, v in items if v is not None)
    return f'<div class="kpis">{cells}</div>'


def _summary(data: ReportData) -> str:
    last_step = data.steps[-1] if data.steps else {}
    last_epoch = data.epochs[-1] if data.epochs else {}
    step = max(last_step.get("step", 0), last_epoch.get("step", 0),
               data.checkpoint.get("step", 0) if data.checkpoint.get("name") == "last" else 0)
    vals = [r["val_recon"] for r in data.epochs if isinstance(r.get("val_recon"), float)]
    items: list[tuple[str, Any]] = [
        ("optimizer steps", step or None),
        ("epochs completed", len(data.epochs)),
        ("images seen" if data.config.get("task") == "image" else "clips seen",
         max(last_step.get("images_seen", 0), last_epoch.get("images_seen", 0)) or None),
        ("best val reconstruction MSE", min(vals) if vals else None),
    ]
    ev = next(iter(data.evals.values()), {})
    for key, label in (("psnr", "PSNR (dB)"), ("ssim", "SSIM"), ("mse", "MSE"),
                       ("stoi", "STOI"), ("stoi_oracle", "STOI of Griffin-Lim (true mel)"),
                       ("mel_l1_db", "mel error (dB)"), ("perplexity", "perplexity"),
                       ("codebook_usage", "codebook usage")):
        if isinstance(ev.get(key), (int, float)):
            items.append((f"{label} ({ev.get('split', 'eval')})", ev[key]))
    if data.rate is not None:
        items.append((data.rate[1], data.rate[0]))
    return f'<section id="summary"><h2>Summary</h2>{_kpis(items)}</section>'


def _evals_section(data: ReportData) -> str:
    if not data.evals:
        return ('<section id="evaluation"><h2>Evaluation</h2><p class="muted">No '
                '<code>eval*.json</code> in the run directory: run <code>vqkit evaluate RUN '
                '--json RUN/eval.json</code> to add it.</p></section>')
    names = list(data.evals)
    keys: list[str] = []
    for m in data.evals.values():
        for k, v in m.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in keys:
                keys.append(k)
    rows = [[k, *[data.evals[n].get(k, "") for n in names]] for k in keys]
    header = ["metric", *[f"{n} ({data.evals[n].get('split', '?')}, "
                          f"{data.evals[n].get('checkpoint', '?')})" for n in names]]
    return (f'<section id="evaluation"><h2>Evaluation</h2><div class="scroll">'
            f"{table(rows, header)}</div></section>")


def _training_section(data: ReportData) -> str:
    parts = ['<section id="training"><h2>Training</h2>']
    fig = loss_figure(data)
    if fig is None:
        parts.append('<p class="muted">No metrics in metrics.jsonl yet.</p>')
    else:
        parts.append(picture(fig, "loss curves", "Faint: logged steps; solid: their moving "
                                                 "average; markers: epoch means."))
    if data.epochs:
        keys = ["step", "train_loss", "val_loss", "val_recon", "val_vq", "val_perplexity",
                "val_usage", "lr", "images_per_s", "time_s"]
        keys = [k for k in keys if any(k in r for r in data.epochs)]
        rows = [[r.get("epoch", i + 1), *[r.get(k, "") for k in keys]]
                for i, r in enumerate(data.epochs)]
        t = table(rows, ["epoch", *keys])
        if len(rows) > 12:
            parts.append(f'<div class="scroll">{table(rows[-6:], ["epoch", *keys])}</div>'
                         f"<details><summary>all {len(rows)} epochs</summary>"
                         f'<div class="scroll">{t}</div></details>')
        else:
            parts.append(f'<div class="scroll">{t}</div>')
        last = data.epochs[-1]
        metrics = sorted({k[len("train_"):] for k in last if k.startswith("train_")}
                         | {k[len("val_"):] for k in last if k.startswith("val_")})
        rows = [[m, last.get(f"train_{m}", ""), last.get(f"val_{m}", "")] for m in metrics]
        parts.append(f'<h3>Last epoch ({_e(last.get("epoch", ""))})</h3>'
                     f'<div class="scroll">{table(rows, ["metric", "train", "val"])}</div>')
    elif data.steps:
        last = data.steps[-1]
        rows = [[k, v] for k, v in last.items() if isinstance(v, (int, float)) and k != "kind"]
        parts.append('<p class="note">No epoch has finished yet; the last logged step:</p>'
                     f"{table(rows, ['metric', 'value'])}")
    parts.append("</section>")
    return "".join(parts)


def _codebook_section(data: ReportData) -> str:
    size = int(data.config.get("quantizer", {}).get("codebook_size", 0))
    if data.config.get("quantizer", {}).get("kind") == "fsq":
        size = math.prod(data.config["quantizer"].get("levels", [1]))
    if data.code_counts is not None:
        size = int(data.code_counts.shape[1])
    parts = ['<section id="codebook"><h2>Codebook</h2>']
    fig = usage_figure(data, max(size, 1))
    if fig is not None:
        parts.append(picture(fig, "codebook usage over training",
                             "Usage per batch and over the sliding window of recent batches "
                             "(training), and on the validation split at each epoch's end."))
    if data.code_counts is not None:
        s = code_stats(data.code_counts)
        parts.append(picture(histogram_figure(data.code_counts), "sorted code-frequency "
                             "histogram", f"Code histogram {data.code_counts_source}."))
        stages = data.code_counts.shape[0]
        parts.append(_kpis([
            ("codes used" + (" (mean over stages)" if stages > 1 else ""),
             f"{s['used']:.0f} / {size}"),
            ("perplexity", s["perplexity"]),
            ("entropy (bits per code)", s["entropy_bits"]),
            ("max entropy (bits)", math.log2(size) if size > 1 else 0.0),
            ("codes counted" + (" per stage" if stages > 1 else ""), int(s["total"])),
        ]))
    else:
        parts.append(f'<p class="muted">{_e(data.sample_note or "No code histogram.")}</p>')
    parts.append("</section>")
    return "".join(parts)


def _samples_section(data: ReportData) -> str:
    parts = ['<section id="samples"><h2>Samples</h2>']
    if data.image_grid is not None:
        grid = _img(png_bytes(data.image_grid), "originals over reconstructions", "pixel")
        parts.append(
            f'<figure><div class="frame">{grid}</div><figcaption>The first {data.n_grid} '
            f"validation images: each row of originals above the row of their reconstructions."
            f"</figcaption></figure>")
    for u in data.utterances:
        lo = float(min(u.mel.min(), u.mel_hat.min()))
        hi = float(max(u.mel.max(), u.mel_hat.max()))
        spec = (f'<div class="spec"><div>original mel</div>'
                f'{_img(spectrogram_png(u.mel, lo, hi), "original mel spectrogram " + u.name)}'
                f"<div>reconstructed mel</div>"
                f'{_img(spectrogram_png(u.mel_hat, lo, hi), "reconstructed mel " + u.name)}'
                f"</div>")
        labels = {"original": "original",
                  "griffin_lim": "Griffin-Lim of the true mel (vocoder ceiling)",
                  "reconstruction": "reconstruction (Griffin-Lim of the decoded mel)"}
        players = "".join(
            f'<div>{_e(labels[k])}<audio controls preload="metadata" '
            f'src="{_data_uri(wav_bytes(u.audio[k], u.sample_rate), "audio/wav")}"></audio></div>'
            for k in ("original", "griffin_lim", "reconstruction") if k in u.audio)
        parts.append(f'<div class="utt"><h3>{_e(u.name)} <span class="muted">'
                     f'{u.duration_s:.2f} s</span></h3>{spec}<div class="players">{players}'
                     f"</div></div>")
    if data.image_grid is None and not data.utterances:
        parts.append(f'<p class="muted">{_e(data.sample_note or "No samples.")}</p>')
    elif data.sample_note:
        parts.append(f'<p class="note">{_e(data.sample_note)}</p>')
    parts.append("</section>")
    return "".join(parts)


def _figures_section(data: ReportData) -> str:
    if not data.figures:
        return ""
    figs = "".join(
        f'<figure><div class="frame">{_img(png, name)}</div><figcaption>{_e(name)}'
        f"</figcaption></figure>" for name, png in data.figures.items())
    return (f'<section id="figures"><h2>Figures saved in the run directory</h2>{figs}'
            f"</section>")


def _config_section(data: ReportData) -> str:
    cfg = data.config
    top = [[k, v] for k, v in cfg.items() if not isinstance(v, dict)]
    sections = [k for k, v in cfg.items() if isinstance(v, dict)]
    if cfg.get("task") != "speech":
        sections = [s for s in sections if s != "audio"]
    tables = [table(top, ["setting", "value"], "run")]
    tables += [table([[k, v] for k, v in cfg[s].items()], ["setting", "value"], s)
               for s in sections]
    cells = "".join(f'<div class="scroll">{t}</div>' for t in tables)
    return (f'<section id="config"><h2>Configuration</h2><div class="tables">{cells}</div>'
            f'<p class="note">From config.json.</p></section>')


def render(data: ReportData) -> str:
    """The page's HTML."""
    from vqkit import __version__

    cfg = data.config
    name = data.run_dir.resolve().name
    task, preset = cfg.get("task", "?"), cfg.get("preset") or "custom"
    q = cfg.get("quantizer", {})
    quant = q.get("kind", "vq")
    if quant == "fsq":
        quant += f" levels {q.get('levels')}"
    else:
        quant += f", {q.get('codebook_size')} codes"
        if q.get("num_quantizers", 1) > 1:
            quant += f" x {q.get('num_quantizers')} stages"
    ck = data.checkpoint
    ck_text = (f"{ck.get('name')} checkpoint: epoch {ck.get('epoch', '?')}, step "
               f"{ck.get('step', '?')}" if ck else "no checkpoint")
    sections = [_summary(data), _evals_section(data), _training_section(data),
                _codebook_section(data), _samples_section(data), _figures_section(data),
                _config_section(data)]
    nav = "".join(f'<a href="#{i}">{t}</a>' for i, t in (
        ("summary", "Summary"), ("evaluation", "Evaluation"), ("training", "Training"),
        ("codebook", "Codebook"), ("samples", "Samples"),
        *([("figures", "Saved figures")] if data.figures else []),
        ("config", "Configuration")))
    now = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light dark">'
        f"<title>vqkit report: {_e(name)}</title><style>{CSS}</style></head><body><main>"
        f"<header><p>vqkit report</p><h1>{_e(name)}</h1>"
        f"<p>{_e(task)} &middot; preset {_e(preset)} &middot; {_e(quant)} &middot; "
        f"{_e(ck_text)}</p><nav>{nav}</nav></header>"
        + "".join(sections)
        + f"<footer>Written by vqkit {_e(__version__)} on {_e(now)} from "
        f"{_e(data.run_dir)}.</footer></main></body></html>\n")


def build_report(run_dir: str | Path, **kwargs: Any) -> str:
    """The report's HTML for ``run_dir`` (see :func:`gather` for the options)."""
    return render(gather(run_dir, **kwargs))


def write_report(
    run_dir: str | Path, *, out: str | Path | None = None, which: str = "best",
    device: str = "cpu", live: bool = True, n_images: int = 16, n_utterances: int = 3,
) -> Path:
    """Write ``RUN_DIR/report.html`` (or ``out``) and return its path.

    Parameters
    ----------
    run_dir : str or Path
        Run directory written by ``vqkit train``.
    out : str or Path, optional
        Where to write the page; default ``RUN_DIR/report.html``.
    which : "best" or "last"
        Checkpoint run for the code histogram and the samples.
    device : str
        Torch device for that.
    live : bool
        False: use saved artifacts only (no code histogram, no samples unless saved).
    n_images, n_utterances : int
        Samples shown: images in the grid, or utterances with players.
    """
    from vqkit.utils import atomic_write_text

    data = gather(run_dir, which=which, device=device, live=live, n_images=n_images,
                  n_utterances=n_utterances)
    path = Path(out) if out is not None else Path(run_dir) / REPORT_NAME
    atomic_write_text(path, render(data))
    return path
