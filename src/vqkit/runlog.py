"""The run log ``metrics.jsonl``: one JSON record per line, ``kind`` "step", "epoch" or "stop".

Training appends to it; the CLI summary, the plots and the report read it through here.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from vqkit.utils import atomic_write_text

__all__ = ["RunSummary", "read_metrics", "summarize", "trim_to_step"]


def read_metrics(path: str | Path) -> list[dict]:
    """Records of a ``metrics.jsonl`` file (a torn last line is ignored)."""
    records = []
    try:
        lines = Path(path).read_text().splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def trim_to_step(path: str | Path, step: int) -> int:
    """Drop the records logged after optimizer step ``step`` (a run resumed from the checkpoint
    of that step logs them again); returns how many were dropped. A torn last line goes too."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return 0
    kept = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("step", 0) <= step:
            kept.append(line)
    if len(kept) != len(lines):
        atomic_write_text(path, "".join(f"{line}\n" for line in kept))
    return len(lines) - len(kept)


@dataclass(frozen=True)
class RunSummary:
    """What a run's records say: the one place the CLI, the plots and the report read the step
    count and the best validation value from."""

    steps: int  # optimizer steps, from the last record
    epochs: int  # epochs completed
    best_metric: str  # e.g. "val_recon"
    best_value: float  # lowest best_metric over epoch and stop records (inf: none yet)
    best_step: int  # the step it was measured at (-1: none)
    stopped_early: bool  # the last validation was a stop record (budget end), not an epoch end


def summarize(records: list[dict], best_metric: str = "val_recon") -> RunSummary:
    """Summarise ``read_metrics`` records. Validations come from epoch records and from stop
    records (a ``max_minutes`` budget's end is validated too), as the best checkpoint does."""
    validated = [r for r in records if r.get("kind") in ("epoch", "stop")
                 and isinstance(r.get(best_metric), (int, float))]
    best = min(validated, key=lambda r: r[best_metric], default=None)
    return RunSummary(
        steps=max((int(r.get("step", 0)) for r in records), default=0),
        epochs=sum(r.get("kind") == "epoch" for r in records),
        best_metric=best_metric,
        best_value=float(best[best_metric]) if best else math.inf,
        best_step=int(best.get("step", -1)) if best else -1,
        stopped_early=bool(validated) and validated[-1].get("kind") == "stop")
