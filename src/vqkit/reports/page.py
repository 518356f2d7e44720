"""``write_report(run_dir)``: one self-contained HTML page about a run, from its saved files.

The page (``RUN_DIR/report.html``) opens from disk with no server and no network: figures,
images and audio are embedded as base64 ``data:`` URIs, and there is no script. It is laid out
for a laptop screen and follows the reader's light or dark theme (``prefers-color-scheme``,
styles in ``report.css``); every figure is drawn once per theme.

It only reads and renders (:func:`vqkit.reports.read.gather`): the code histogram and the
samples come from ``vqkit evaluate`` (``RUN/eval/<split>/``); a run with no evaluation gets a
note saying how to add them.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import math
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from vqkit import __version__
from vqkit.evaluation.about import METRIC_HELP
from vqkit.evaluation.artifacts import Evaluation, ImageSamples, SpeechSample
from vqkit.figures.images import image_grid
from vqkit.figures.report import histogram_figure, loss_figure, rate_curve_figure, usage_figure
from vqkit.figures.themes import png_bytes, spectrogram_png
from vqkit.quantizers.stats import histogram_summary
from vqkit.reports.read import ReportData, codebook_shape, gather, nominal_rate
from vqkit.utils import atomic_write_text, format_number

__all__ = ["REPORT_NAME", "fmt", "render", "write_report"]

REPORT_NAME = "report.html"
NO_EVALUATION = "run <code>vqkit evaluate RUN</code> to add samples and the code histogram"
AUDIO_LABELS = {"original": "original",
                "oracle": "Griffin-Lim of the true mel (vocoder ceiling)",
                "reconstruction": "reconstruction (Griffin-Lim of the decoded mel)"}


def _css() -> str:
    return resources.files("vqkit.reports").joinpath("report.css").read_text(encoding="utf-8")


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def wav_bytes(y: np.ndarray, sample_rate: int) -> bytes:
    """Mono float audio -> 16-bit PCM WAV bytes for the page (peaks above full scale clip)."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(np.asarray(y, dtype=np.float32), -1, 1), sample_rate,
             format="WAV", subtype="PCM_16")
    return buf.getvalue()


fmt = format_number  # the one number format of the CLI, the plots and the page


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


def _section(ident: str, title: str, body: str) -> str:
    return f'<section id="{ident}"><h2>{_e(title)}</h2>{body}</section>'


def _provenance(data: ReportData, ev: Evaluation) -> str:
    """"split 'val', best checkpoint (step 8, epoch 1), eval/val"."""
    ck = ev.checkpoint
    at = ", ".join(f"{k} {ck[k]}" for k in ("step", "epoch") if ck.get(k) is not None)
    name = f"{ck.get('name', '?')} checkpoint" + (f" ({at})" if at else "")
    return f"split {ev.split or '?'!r}, {name}, {data.source(ev)}"


# ---------------------------------------------------------------------------------------------
# Sections


def _summary(data: ReportData) -> str:
    s = data.summary
    seen = max((r.get("images_seen", 0) for r in data.records), default=0)
    best_label = ("best val reconstruction MSE" if s.best_metric == "val_recon"
                  else f"best {s.best_metric}")
    items: list[tuple[str, Any]] = [
        ("optimizer steps", s.steps or None),
        ("epochs completed", s.epochs),
        ("images seen" if data.config.get("task") == "image" else "items seen", seen or None),
        (f"{best_label} (step {fmt(s.best_step)})" if s.best_step >= 0 else best_label,
         s.best_value if s.best_step >= 0 else None),
    ]
    primary = data.primary
    ev, split = (primary.metrics, primary.split) if primary is not None else ({}, "")
    for key, label in (("psnr", "PSNR (dB)"), ("ssim", "SSIM"), ("mse", "MSE"),
                       ("stoi", "STOI"), ("stoi_oracle", "STOI of Griffin-Lim (true mel)"),
                       ("mel_l1_db", "mel error (dB)"), ("perplexity", "perplexity"),
                       ("codebook_usage", "codebook usage")):
        if isinstance(ev.get(key), (int, float)):
            items.append((f"{label} ({split or 'eval'})", ev[key]))
    rate = nominal_rate(data)
    if rate is not None:
        items.append((rate[1], rate[0]))
    return _section("summary", "Summary", _kpis(items))


def _evals_section(data: ReportData) -> str:
    notes = "".join(f'<p class="note">{_e(n)}</p>' for n in data.notes)
    if not data.evaluations:
        return _section("evaluation", "Evaluation",
                        f'<p class="muted">No evaluation yet: {NO_EVALUATION}.</p>{notes}')
    keys: list[str] = []
    for ev in data.evaluations:
        for k, v in ev.metrics.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in keys:
                keys.append(k)
    rows = [[k, *[ev.metrics.get(k, "") for ev in data.evaluations], METRIC_HELP.get(k, "")]
            for k in keys]
    header = ["metric", *[_provenance(data, ev) for ev in data.evaluations], "what it measures"]
    return _section("evaluation", "Evaluation",
                    f'<div class="scroll">{table(rows, header)}</div>'
                    f'{"".join(_about(ev) for ev in data.evaluations)}{notes}'
                    f'{"".join(_rate_curve(ev) for ev in data.evaluations)}')


def _rate_curve(ev: Evaluation) -> str:
    """The rate-quality curve of ``vqkit evaluate --curve``: figure and table."""
    rows = ev.metrics.get("rate_curve")
    fig = rate_curve_figure(rows) if isinstance(rows, list) else None
    if fig is None:
        return ""
    keys = ("stages", "bitrate_bps", "stoi", "stoi_ratio", "pesq", "mel_l1_db", "usage_min")
    body = table([[r[k] for k in keys] for r in rows], keys)
    return picture(fig, "STOI and PESQ against kbps", f"Split {ev.split!r}: the first n residual "
                   "stages of one model (dotted: the Griffin-Lim oracle).") + body


def _about(ev: Evaluation) -> str:
    """The split's definition, what it holds, and the evaluation's warnings."""
    about = ev.about
    if not about:
        return ""
    held = about.get("speakers") or about.get("classes") or {}
    what = "speakers" if about.get("speakers") else "classes"
    parts = [f"Split {ev.split!r}: {about.get('definition', '')}."]
    if held:
        parts.append(f"{what}: " + ", ".join(f"{k} ({v})" for k, v in held.items()) + ".")
    lines = [f'<p class="note">{_e(" ".join(parts))}</p>']
    lines += [f'<p class="note warning">Warning: {_e(w)}.</p>' for w in about.get("warnings", [])]
    return "".join(lines)


def _training_section(data: ReportData) -> str:
    parts = []
    fig = loss_figure(data.records, data.best_metric)
    if fig is None:
        parts.append('<p class="muted">No metrics in metrics.jsonl yet.</p>')
    else:
        parts.append(picture(fig, "loss curves", "Faint: logged training steps; solid: their "
                                                 "moving average; circles: epoch means; "
                                                 "squares: validation (each epoch's end and an "
                                                 "early stop); star: the best checkpoint."))
    if data.summary.stopped_early:
        stop = [r for r in data.records if r.get("kind") == "stop"][-1]
        parts.append(f'<p class="note">Stopped early at step {stop.get("step", 0):,} '
                     f'({_e(stop.get("reason", "max_minutes"))}), validated there: '
                     f'{data.best_metric} {fmt(stop.get(data.best_metric, math.nan))}.</p>')
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
    return _section("training", "Training", "".join(parts))


def _histogram(data: ReportData, ev: Evaluation) -> str:
    counts = ev.code_counts
    s = histogram_summary(counts)
    size, stages = int(s["codebook_size"]), counts.shape[0]
    what = (f"{fmt(ev.metrics['n_images'])} images" if "n_images" in ev.metrics else
            f"{fmt(ev.metrics.get('n_utterances', '?'))} utterances, real frames only")
    return (f"<h3>{_e(_provenance(data, ev))}</h3>"
            + picture(histogram_figure(counts), "sorted code-frequency histogram",
                      f"Every code of the split ({what}), from vqkit evaluate.")
            + _kpis([("codes used" + (" (mean over stages)" if stages > 1 else ""),
                      f"{s['used']:.0f} / {size}"),
                     ("perplexity", s["perplexity"]),
                     ("codebook usage", s["usage"]),
                     ("entropy (bits per code)", s["entropy_bits"]),
                     ("max entropy (bits)", math.log2(size) if size > 1 else 0.0),
                     ("codes counted" + (" per stage" if stages > 1 else ""), int(s["total"]))]))


def _codebook_section(data: ReportData) -> str:
    parts = []
    fig = usage_figure(data.records, max(codebook_shape(data.config)[0], 1))
    if fig is not None:
        parts.append(picture(fig, "codebook usage over training",
                             "Usage per batch and over the sliding window of recent batches "
                             "(training), and on the validation split at each epoch's end."))
    parts += [_histogram(data, ev) for ev in data.with_artifacts]
    if not data.with_artifacts:
        parts.append(f'<p class="muted">No code histogram: {NO_EVALUATION}.</p>')
    return _section("codebook", "Codebook", "".join(parts))


def _image_samples(samples: ImageSamples) -> str:
    h, w = samples.originals.shape[1:3]
    s = max(1, 128 // max(h, w))  # enlarged to about 128 px, pixels kept sharp
    grid = image_grid(samples.originals, 8, under=samples.reconstructions, scale=s, gap=s,
                      pair_gap=4 * s, fill=0.5)  # mid-grey gaps read on light and dark pages
    img = _img(png_bytes(grid), "originals over reconstructions", "pixel")
    return (f'<figure><div class="frame">{img}</div><figcaption>The first '
            f"{len(samples.originals)} images of the split: each row of originals above the "
            f"row of their reconstructions.</figcaption></figure>")


def _utterance(u: SpeechSample) -> str:
    lo = float(min(u.mel.min(), u.mel_hat.min()))
    hi = float(max(u.mel.max(), u.mel_hat.max()))
    spec = (f'<div class="spec"><div>original mel</div>'
            f'{_img(spectrogram_png(u.mel, lo, hi), "original mel spectrogram " + u.name)}'
            f"<div>reconstructed mel</div>"
            f'{_img(spectrogram_png(u.mel_hat, lo, hi), "reconstructed mel " + u.name)}</div>')
    players = "".join(
        f'<div>{_e(AUDIO_LABELS[k])}<audio controls preload="metadata" '
        f'src="{_data_uri(wav_bytes(u.audio[k], u.sample_rate), "audio/wav")}"></audio></div>'
        for k in AUDIO_LABELS if k in u.audio)
    seconds = len(u.audio["original"]) / u.sample_rate
    return (f'<div class="utt"><h3>{_e(u.name)} <span class="muted">{seconds:.2f} s</span>'
            f'</h3>{spec}<div class="players">{players}</div></div>')


def _samples_section(data: ReportData) -> str:
    parts = []
    for ev in data.with_artifacts:
        if ev.samples is None:
            continue
        parts.append(f"<h3>{_e(_provenance(data, ev))}</h3>")
        if isinstance(ev.samples, ImageSamples):
            parts.append(_image_samples(ev.samples))
        else:
            parts += [_utterance(u) for u in ev.samples]
            parts.append('<p class="note">Each utterance passed through the model alone, as '
                         "<code>vqkit reconstruct</code> does.</p>")
    if not parts:
        parts.append(f'<p class="muted">No samples: {NO_EVALUATION}.</p>')
    return _section("samples", "Samples", "".join(parts))


def _figures_section(data: ReportData) -> str:
    if not data.figures:
        return ""
    figs = "".join(
        f'<figure><div class="frame">{_img(png, name)}</div><figcaption>{_e(name)}'
        f"</figcaption></figure>" for name, png in data.figures.items())
    return _section("figures", "Figures saved in the run directory", figs)


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
    return _section("config", "Configuration", f'<div class="tables">{cells}</div>'
                    '<p class="note">From config.json.</p>')


def render(data: ReportData) -> str:
    """The page's HTML."""
    cfg = data.config
    name = data.run_dir.resolve().name
    task, preset = cfg.get("task", "?"), cfg.get("preset") or "custom"
    q = cfg.get("quantizer", {})
    size, stages = codebook_shape(cfg)
    quant = q.get("kind", "vq")
    quant += f" levels {q.get('levels')}" if quant == "fsq" else f", {size} codes"
    if stages > 1:
        quant += f" x {stages} stages"
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
        f"<title>vqkit report: {_e(name)}</title><style>{_css()}</style></head><body><main>"
        f"<header><p>vqkit report</p><h1>{_e(name)}</h1>"
        f"<p>{_e(task)} &middot; preset {_e(preset)} &middot; {_e(quant)} &middot; "
        f"{_e(ck_text)}</p><nav>{nav}</nav></header>"
        + "".join(sections)
        + f"<footer>Written by vqkit {_e(__version__)} on {_e(now)} from "
        f"{_e(data.run_dir)}.</footer></main></body></html>\n")


def write_report(run_dir: str | Path, *, out: str | Path | None = None) -> Path:
    """Write ``RUN_DIR/report.html`` (or ``out``) from the run's saved files; return its path.

    Parameters
    ----------
    run_dir : str or Path
        Run directory written by ``vqkit train`` (and ``vqkit evaluate``).
    out : str or Path, optional
        Where to write the page; default ``RUN_DIR/report.html``.

    Raises
    ------
    VQKitError
        When ``run_dir`` is not a run directory (no readable ``config.json``).
    """
    data = gather(run_dir)
    path = Path(out) if out is not None else Path(run_dir) / REPORT_NAME
    atomic_write_text(path, render(data))
    return path
