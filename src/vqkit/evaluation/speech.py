"""Evaluate a speech run on a split: mel errors and codebook use over real frames, STOI and
wideband PESQ.

STOI and PESQ are computed over *groups* of consecutive utterances (in id order, same split;
:class:`~vqkit.evaluation.speech_scores.StoiGroups`): an utterance of at least
:data:`STOI_MIN_S` seconds (every L2-ARCTIC sentence) is its own group. ``stoi``,
``stoi_oracle``, ``pesq`` and ``pesq_oracle`` are means over the same groups;
``stoi_utterances`` counts the utterances inside scored groups.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vqkit.audio.io import load_audio
from vqkit.audio.normalize import FLOOR_DB, clip_frames, pad_or_cut_frames
from vqkit.audio.pipeline import (
    batch_model_input,
    mel_db_to_waveforms,
    model_output_to_mel_db,
    prepare_mel_db,
)
from vqkit.config import AudioConfig, RunConfig
from vqkit.data.speech import open_speech_cache, select_ids, source_path
from vqkit.evaluation.artifacts import Evaluation, SpeechSample
from vqkit.evaluation.reconstruct import reconstruct_audio
from vqkit.evaluation.speech_scores import STOI_MIN_S, StoiGroups
from vqkit.figures.speech import plot_mel_comparison, plot_speech_loss
from vqkit.quantizers.stats import code_histogram, histogram_stats
from vqkit.rates import bitrate_bps

__all__ = ["STOI_MIN_S", "StoiGroups", "evaluate_speech", "real_codes"]  # re-exported

_CHUNK = 256  # utterances loaded at once (their waveforms are kept until scored)


def real_codes(codes: torch.Tensor, mask: torch.Tensor, downsampling: int) -> torch.Tensor:
    """Codes of the positions whose time column holds at least one real frame.

    Parameters
    ----------
    codes : torch.Tensor, shape=(B, H', W') or (B, H', W', K)
    mask : torch.Tensor, shape=(B, 1, 1, T), bool; real frames form a prefix of each row
    downsampling : int
        Frames per code column.

    Returns
    -------
    torch.Tensor, shape=(M,) or (M, K)
    """
    cols = mask[:, 0, 0, ::downsampling].to(codes.device)  # (B, W')
    sel = cols[:, None, :].expand(codes.shape[0], codes.shape[1], codes.shape[2])
    return codes[sel]


@torch.no_grad()
def evaluate_speech(
    model,
    cfg: RunConfig,
    root: str | Path | None,
    split: str,
    *,
    run_dir: str | Path | None = None,
    device: torch.device | None = None,
    max_items: int = 0,
    batch_size: int = 32,
    n_plot: int = 4,
    n_examples: int = 0,
    oracle_cache: dict[str, Any] | None = None,
) -> Evaluation:
    """Reconstruction, codebook and intelligibility metrics of ``model`` on ``split``.

    Every utterance goes through the model as in validation (whole, or the ``clip_s`` clip of
    the thesis), batched by similar length. Only real frames count: padding is excluded from the
    mel errors and its code columns from the histogram.

    Parameters
    ----------
    model : VQVAE (or anything with ``model(x) -> (x_hat, out)``, ``out.codes``, ``quantizer``)
    cfg : RunConfig
        The run's config (audio frontend and normalisation).
    root : str, Path or None
        Data (audio or cache folder); None means ``cfg.data.root``.
    split : str
        "train", "val", "test" or "speakers:A,B" (:func:`vqkit.data.speech.select_ids`).
    run_dir : str, Path or None
        Where ``speech_reconstruction.png`` and ``speech_loss.png`` (from ``metrics.jsonl``)
        go; None writes no figures.
    device : torch.device or None
        Default: the model's.
    max_items : int >= 0
        Evaluate only the first N utterances (in id order); 0: all.
    batch_size : int > 0
    n_plot : int >= 0
        Utterances shown in ``speech_reconstruction.png`` (evenly spaced in id order).
    n_examples : int >= 0
        Utterances kept as samples (the first in id order), each passed through the model
        alone by :func:`~vqkit.evaluation.reconstruct.reconstruct_audio`, as
        ``vqkit reconstruct`` does.
    oracle_cache : dict or None
        Filled with the oracle's waveforms (by utterance id) on the first call and reused by
        the next ones (the stage sweep of one model: the oracle does not depend on the model).

    Returns
    -------
    Evaluation
        ``metrics``: ``mel_mse`` (normalised scale, per real frame and band), ``mel_l1_db``
        (mean absolute error in dB against the model's target, i.e. the true mel after the
        normalisation's clamping), ``perplexity``, ``codebook_usage``, ``codebook_size``,
        ``stoi`` (Griffin-Lim of the reconstruction vs the original wave), ``stoi_oracle``
        (Griffin-Lim of the true mel), ``stoi_ratio``, ``pesq`` and ``pesq_oracle`` (wideband
        PESQ, same groups; NaN without the optional package), ``stages`` (residual stages
        used), ``stoi_groups``, ``stoi_utterances``,
        ``n_utterances``, ``n_frames``, ``audio_s``, ``bitrate_bps``; ``code_counts``: the
        histogram of the codes of real frames (num_quantizers, codebook_size); ``samples``: a
        list of :class:`~vqkit.evaluation.artifacts.SpeechSample`.
    """
    cfg = copy.deepcopy(cfg)
    if root is not None:
        cfg.data.root = str(root)
    a = cfg.audio
    cache, source_root = open_speech_cache(cfg)
    ids = select_ids(cache, split)
    if max_items:
        ids = ids[:max_items]
    device = device or next(model.parameters()).device
    model.eval()
    q = model.quantizer
    down = int(getattr(model, "downsampling", 4))
    frames = clip_frames(a, multiple=down)
    plot_at = ({int(round(k)) for k in np.linspace(0, len(ids) - 1, n_plot)} if n_plot
               else set())
    plots: dict[int, tuple[str, np.ndarray, np.ndarray]] = {}
    totals = _Totals(torch.zeros(q.num_quantizers, q.codebook_size, dtype=torch.long))
    groups = StoiGroups(a.sample_rate)
    for c0 in range(0, len(ids), _CHUNK):
        chunk = ids[c0:c0 + _CHUNK]
        waves, norms, infos, mels = _load_chunk(cache, source_root, chunk, a)
        recon: list[np.ndarray | None] = [None] * len(chunk)
        oracle: list[np.ndarray | None] = [None] * len(chunk)
        order = sorted(range(len(chunk)), key=lambda k: (infos[k].n_frames, k))
        for b0 in range(0, len(order), batch_size):
            idx = order[b0:b0 + batch_size]
            binfos = [infos[k] for k in idx]
            x, mask = batch_model_input([norms[k] for k in idx], frames=frames, multiple=down)
            x, mask = x.to(device), mask.to(device)
            if getattr(model, "search", None) is None:
                x_hat, out = model(x)
            else:  # the search scores real frames only
                x_hat, out = model(x, lengths=mask.flatten(1).sum(1))
            db_hat = totals.add(x, x_hat, mask, real_codes(out.codes, mask, down), a, binfos)
            lengths = [len(waves[k]) for k in idx]
            true_db = torch.stack([torch.from_numpy(pad_or_cut_frames(mels[k], x.shape[-1],
                                                                      FLOOR_DB))
                                   for k in idx]).to(device)
            cached = oracle_cache is not None and all(chunk[k] in oracle_cache for k in idx)
            oracle_waves = ([oracle_cache[chunk[k]] for k in idx] if cached  # type: ignore[index]
                            else mel_db_to_waveforms(true_db, a, lengths))
            for k, wr, wo in zip(idx, mel_db_to_waveforms(db_hat, a, lengths), oracle_waves,
                                 strict=True):
                recon[k], oracle[k] = wr, wo
                if oracle_cache is not None:
                    oracle_cache[chunk[k]] = wo
            for j, k in enumerate(idx):
                if c0 + k in plot_at:
                    n = binfos[j].n_frames
                    plots[c0 + k] = (chunk[k], mels[k], db_hat[j, :, :n].cpu().numpy())
        for k in range(len(chunk)):
            totals.n_frames += infos[k].n_frames
            totals.n_samples += len(waves[k])
            groups.add(waves[k], recon[k], oracle[k])
    groups.finish()
    metrics = _metrics(totals, groups, q, cfg, down, len(ids))
    samples = [_sample(model, cfg, cache, source_root, utt) for utt in ids[:n_examples]]
    if run_dir is not None:
        _write_figures(Path(run_dir), plots, a)
    return Evaluation(metrics, totals.counts.numpy(), samples)


@dataclass
class _Totals:
    """Sums over the real frames of every batch."""

    counts: torch.Tensor  # (num_quantizers, codebook_size) code histogram
    sq_sum: float = 0.0
    l1_sum: float = 0.0
    n_values: int = 0
    n_frames: int = 0
    n_samples: int = 0

    def add(self, x: torch.Tensor, x_hat: torch.Tensor, mask: torch.Tensor,
            codes: torch.Tensor, a: AudioConfig, infos: list) -> torch.Tensor:
        """Add a batch's errors and codes; returns the reconstruction in dB (B, n_mels, T)."""
        m = mask.expand_as(x).float()
        self.sq_sum += float(((x_hat.float() - x) ** 2 * m).sum())
        self.n_values += int(m.sum())
        db_hat = model_output_to_mel_db(x_hat, a, infos)
        db_target = model_output_to_mel_db(x, a, infos)
        self.l1_sum += float(((db_hat - db_target).abs() * m[:, 0]).sum())
        self.counts += code_histogram(codes, self.counts.shape[1], self.counts.shape[0])
        return db_hat


def _load_chunk(cache, source_root, chunk: list[str],
                a: AudioConfig) -> tuple[list, list, list, list]:
    """Waveforms, normalised mels, their infos and the cached mels in dB of ``chunk``."""
    waves, norms, infos, mels = [], [], [], []
    for utt in chunk:
        e = cache.entries[utt]
        y = load_audio(source_path(cache, source_root, utt), sample_rate=a.sample_rate,
                       start_s=e.start_s, end_s=e.end_s)
        mel_db = cache.load(utt)
        norm, info = prepare_mel_db(mel_db, a, n_samples=len(y))
        waves.append(y[:info.n_samples])
        norms.append(norm)
        infos.append(info)
        mels.append(mel_db[:, :info.n_frames])
    return waves, norms, infos, mels


def _metrics(t: _Totals, groups: StoiGroups, q, cfg: RunConfig, down: int,
             n_utterances: int) -> dict[str, Any]:
    used = int(getattr(q, "stages_used", q.num_quantizers))
    perplexity, usage = histogram_stats(t.counts[:used])  # the stages the codes used
    scores = groups.means()
    stoi, stoi_oracle = scores["stoi"], scores["stoi_oracle"]
    return {
        "mel_mse": t.sq_sum / max(1, t.n_values),
        "mel_l1_db": t.l1_sum / max(1, t.n_values),
        "perplexity": perplexity,
        "codebook_usage": usage,
        "codebook_size": q.codebook_size,
        "stoi": stoi,
        "stoi_oracle": stoi_oracle,
        "stoi_ratio": stoi / stoi_oracle if stoi_oracle and stoi_oracle > 0 else math.nan,
        "pesq": scores["pesq"],
        "pesq_oracle": scores["pesq_oracle"],
        "stages": used,
        "stoi_groups": len(groups.stoi),
        "stoi_utterances": groups.utterances,
        "n_utterances": n_utterances,
        "n_frames": t.n_frames,
        "audio_s": t.n_samples / cfg.audio.sample_rate,
        "bitrate_bps": bitrate_bps(cfg, downsampling=down, bits_per_code=q.bits_per_code),
    }


def _sample(model, cfg: RunConfig, cache, source_root, utt: str) -> SpeechSample:
    """One utterance through the model alone, as ``vqkit reconstruct`` does."""
    e = cache.entries[utt]
    r = reconstruct_audio(model, cfg, load_audio(source_path(cache, source_root, utt),
                                                 sample_rate=cfg.audio.sample_rate,
                                                 start_s=e.start_s, end_s=e.end_s))
    return SpeechSample(utt, r.sample_rate, {"original": r.original, "oracle": r.oracle,
                                             "reconstruction": r.reconstruction},
                        r.mel, r.mel_hat)


def _write_figures(run_dir: Path, plots: dict, a: AudioConfig) -> None:
    if plots:
        shown = [plots[k] for k in sorted(plots)]
        plot_mel_comparison([s[1] for s in shown], [s[2] for s in shown],
                            run_dir / "speech_reconstruction.png", a,
                            titles=[s[0] for s in shown])
    plot_speech_loss(run_dir / "metrics.jsonl", run_dir / "speech_loss.png")
