"""The run log ``metrics.jsonl``: one JSON record per line, ``kind`` "step", "epoch" or "stop".

Training appends to it; the CLI summary, the plots and the report read it through here.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["read_metrics"]


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
