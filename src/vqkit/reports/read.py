"""Gather what the report shows from a run directory: saved files only, no model.

- ``config.json`` (the resolved config) and ``metrics.jsonl`` (:func:`vqkit.runlog.read_metrics`);
- ``checkpoints/{best,last}/meta.json`` (the header's checkpoint; its weights are never read);
- every ``eval/<split>/`` folder written by ``vqkit evaluate``
  (:mod:`vqkit.evaluation.artifacts`: metrics, code histogram, samples);
- ``eval*.json`` files in the run directory (``vqkit evaluate --json``, and what runs from before
  the evaluation folders have): metrics only; one that repeats an evaluation folder's metrics is
  listed once;
- the PNG figures saved in the run directory.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vqkit.config import RunConfig
from vqkit.errors import DataError, VQKitError
from vqkit.evaluation.artifacts import Evaluation, evaluation_folders, read_evaluation
from vqkit.rates import bitrate_bps, bits_per_code, bits_per_pixel
from vqkit.runlog import RunSummary, read_metrics, summarize

__all__ = ["ReportData", "codebook_shape", "gather", "nominal_rate"]

_PROVENANCE = ("run", "split", "checkpoint")  # keys of an eval*.json file that are no metric


@dataclass
class ReportData:
    """Everything the page shows.

    Attributes
    ----------
    run_dir : Path
    config : dict
        ``config.json`` as saved.
    records : list of dict
        Every ``metrics.jsonl`` record; ``steps`` and ``epochs`` are those of kind "step" and
        "epoch", ``summary`` what they say (the same :func:`vqkit.runlog.summarize` the CLI
        prints).
    checkpoint : dict
        ``meta.json`` of the best checkpoint (else the last) plus its ``name``; empty without one.
    evaluations : list of Evaluation
        The evaluation folders (with ``code_counts`` and ``samples``), then the ``eval*.json``
        files (metrics only: ``code_counts`` None). ``folder`` says where each came from.
    figures : dict of str to bytes
        PNG files of the run directory by name.
    notes : list of str
        What could not be read, in one line each.
    """

    run_dir: Path
    config: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)
    checkpoint: dict[str, Any] = field(default_factory=dict)
    evaluations: list[Evaluation] = field(default_factory=list)
    figures: dict[str, bytes] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def steps(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("kind") == "step"]

    @property
    def epochs(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("kind") == "epoch"]

    @property
    def best_metric(self) -> str:
        return "val_nll" if self.config.get("task") == "prior" else "val_recon"

    @property
    def summary(self) -> RunSummary:
        return summarize(self.records, self.best_metric)

    @property
    def primary(self) -> Evaluation | None:
        """The evaluation the summary quotes: of the run's validation split if there is one,
        else the first."""
        val = self.config.get("data", {}).get("val_split", "val")
        return next((e for e in self.evaluations if e.split == val),
                    self.evaluations[0] if self.evaluations else None)

    @property
    def with_artifacts(self) -> list[Evaluation]:
        """The evaluations that have a code histogram (evaluation folders)."""
        return [e for e in self.evaluations if e.code_counts is not None]

    def source(self, evaluation: Evaluation) -> str:
        """Where an evaluation was read from, relative to the run directory."""
        if evaluation.folder is None:
            return "?"
        try:
            return evaluation.folder.relative_to(self.run_dir).as_posix()
        except ValueError:
            return str(evaluation.folder)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


def _json_evaluation(path: Path, d: dict[str, Any]) -> Evaluation:
    """A metrics file of ``vqkit evaluate --json``: provenance keys plus the metrics."""
    about = d.get("about")
    return Evaluation(
        metrics={k: v for k, v in d.items() if k not in _PROVENANCE and k != "about"},
        code_counts=None, run=str(d.get("run", "")), split=str(d.get("split", "")),
        checkpoint={"name": d.get("checkpoint")} if d.get("checkpoint") else {}, folder=path,
        about=about if isinstance(about, dict) else {})


def _same(a: Evaluation, b: Evaluation) -> bool:
    """One evaluation seen twice (its folder and its --json file): same split, checkpoint and
    metrics (compared as JSON, so that NaN equals NaN)."""
    return (a.split == b.split and a.checkpoint.get("name") == b.checkpoint.get("name")
            and json.dumps(a.metrics, sort_keys=True) == json.dumps(b.metrics, sort_keys=True))


def gather(run_dir: str | Path) -> ReportData:
    """Read everything the page shows from ``run_dir`` (see the module docstring).

    Raises
    ------
    VQKitError
        When ``run_dir`` is not a directory or has no readable ``config.json``.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise VQKitError(f"{run_dir}: no such run directory")
    cfg_path = run_dir / "config.json"
    config = _read_json(cfg_path)
    if config is None:
        raise VQKitError(f"{cfg_path}: missing or unreadable; is {run_dir} a vqkit run?")
    records = read_metrics(run_dir / "metrics.jsonl")
    data = ReportData(run_dir=run_dir, config=config, records=records)
    for name in ("best", "last"):
        meta = _read_json(run_dir / "checkpoints" / name / "meta.json")
        if meta is not None:
            data.checkpoint = {"name": name, **meta}
            break
    for folder in evaluation_folders(run_dir):
        try:
            data.evaluations.append(read_evaluation(folder))
        except DataError as e:
            data.notes.append(f"Left out: {e}")
    for path in sorted(run_dir.glob("eval*.json")):
        d = _read_json(path)
        if d is None:
            data.notes.append(f"Left out: {path.name}: unreadable")
            continue
        ev = _json_evaluation(path, d)
        if not any(_same(ev, other) for other in data.evaluations):
            data.evaluations.append(ev)
    for p in sorted(run_dir.glob("*.png")):
        try:
            data.figures[p.name] = p.read_bytes()
        except OSError:
            continue
    return data


def codebook_shape(config: dict[str, Any]) -> tuple[int, int]:
    """(codebook_size, num_quantizers) of a saved config's quantizer section: FSQ has
    ``prod(levels)`` codes, only RVQ has several stages."""
    q = config.get("quantizer", {})
    if q.get("kind") == "fsq":
        return math.prod(q.get("levels", [1])), 1
    stages = int(q.get("num_quantizers", 1)) if q.get("kind") == "rvq" else 1
    return int(q.get("codebook_size", 1)), stages


def nominal_rate(data: ReportData) -> tuple[float, str] | None:
    """(rate, unit) of the run's codes: from an evaluation's ``bits_per_pixel`` /
    ``bitrate_bps``, else computed from the config (images: sides a multiple of the
    downsampling). None when neither is readable."""
    for ev in data.evaluations:
        for key, unit in (("bits_per_pixel", "bits/pixel"), ("bitrate_bps", "bits/s")):
            if isinstance(ev.metrics.get(key), (int, float)):
                return float(ev.metrics[key]), unit
    try:
        cfg = RunConfig.from_dict(data.config)
    except VQKitError:
        return None
    bpc = bits_per_code(*codebook_shape(data.config))
    down = 2 ** cfg.model.num_downsamples
    if cfg.task == "image":
        return bits_per_pixel(1, bpc, down * down), "bits/pixel"
    return bitrate_bps(cfg, downsampling=down, bits_per_code=bpc), "bits/s"
