"""The rate-quality curve of one speech model: every prefix of its residual stages evaluated on
one split (SoundStream-style quantizer dropout trains them all), as codecs are compared."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from vqkit.config import RunConfig
from vqkit.errors import VQKitError
from vqkit.evaluation.artifacts import Evaluation
from vqkit.evaluation.speech import evaluate_speech

__all__ = ["CURVE_COLUMNS", "format_rate_curve", "rate_curve"]

# (key, header, format) of the printed table
CURVE_COLUMNS = (("stages", "stages", "{:d}"), ("bitrate_bps", "bit/s", "{:.1f}"),
                 ("kbps", "kbps", "{:.3f}"), ("stoi", "STOI", "{:.4f}"),
                 ("stoi_ratio", "xoracle", "{:.4f}"), ("pesq", "PESQ", "{:.3f}"),
                 ("mel_l1_db", "mel L1 dB", "{:.3f}"), ("usage_min", "usage min", "{:.3f}"))


def rate_curve(model, cfg: RunConfig, root: str | Path | None, split: str, *,
               device: torch.device | None = None, max_items: int = 0,
               max_stages: int = 0, oracle_cache: dict[str, Any] | None = None,
               last: Evaluation | None = None) -> list[dict[str, Any]]:
    """One row per stage count n = 1..S (S = all, or ``max_stages``): ``stages``,
    ``bitrate_bps``, ``kbps``, ``stoi``, ``stoi_oracle``, ``stoi_ratio``, ``pesq``,
    ``pesq_oracle``, ``mel_l1_db``, ``codebook_usage``, ``usage_per_stage`` (list of n) and
    ``usage_min``. The oracle's audio is computed once (or taken from ``oracle_cache``) and
    reused for every row; ``last``, an evaluation of the same split at S stages, is the last
    row as it is.

    Raises
    ------
    VQKitError
        The model's quantizer has no residual stages to choose from.
    """
    q = model.quantizer
    if not hasattr(q, "use_stages"):
        raise VQKitError("a rate-quality curve needs a residual VQ model (quantizer.kind rvq)")
    before = q.active_stages
    total = min(max_stages or q.num_quantizers, q.num_quantizers)
    cache: dict[str, Any] = {} if oracle_cache is None else oracle_cache
    rows = []
    try:
        for n in range(1, total + 1):
            q.use_stages(n)
            ev = (last if last is not None and n == total else
                  evaluate_speech(model, cfg, root, split, device=device, max_items=max_items,
                                  oracle_cache=cache))
            m = ev.metrics
            usage = [float((ev.code_counts[i] > 0).mean()) for i in range(n)]
            rows.append({
                "stages": n, "bitrate_bps": m["bitrate_bps"], "kbps": m["bitrate_bps"] / 1000,
                **{k: m[k] for k in ("stoi", "stoi_oracle", "stoi_ratio", "pesq",
                                     "pesq_oracle", "mel_l1_db", "codebook_usage")},
                "usage_per_stage": usage, "usage_min": float(np.min(usage))})
    finally:
        q.use_stages(before)
    return rows


def format_rate_curve(rows: list[dict[str, Any]]) -> str:
    """The curve as a text table, the oracle's STOI and PESQ below it."""
    heads = [h for _, h, _ in CURVE_COLUMNS]
    body = [[f.format(r[k]) for k, _, f in CURVE_COLUMNS] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(heads, *body, strict=False)]
    lines = ["  ".join(x.rjust(w) for x, w in zip(line, widths, strict=True))
             for line in [heads, *body]]
    if rows:
        lines.append(f"Griffin-Lim oracle: STOI {rows[0]['stoi_oracle']:.4f}, "
                     f"PESQ {rows[0]['pesq_oracle']:.3f}")
    return "\n".join(lines)
