"""Checkpoints: one folder per checkpoint, written atomically.

``RUN_DIR/checkpoints/{last,best}/`` holds ``model.safetensors`` (weights and buffers),
``state.pt`` (optimizer, scheduler, counters, RNG states; loaded with ``weights_only=True``),
``config.json`` (the resolved :class:`~vqkit.config.RunConfig`) and ``meta.json`` (format version,
step, epoch). A folder is written beside its final name and renamed into place, so a crash
leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from vqkit.config import RunConfig
from vqkit.errors import VQKitError

FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    path: Path
    config: RunConfig
    model_state: dict[str, torch.Tensor]
    state: dict[str, Any]
    meta: dict[str, Any]


def checkpoint_dir(run_dir: str | Path, which: str = "last") -> Path:
    return Path(run_dir) / "checkpoints" / which


def save_checkpoint(
    path: Path,
    *,
    model: torch.nn.Module,
    config: RunConfig,
    state: dict[str, Any],
    meta: dict[str, Any] | None = None,
) -> None:
    """Write a checkpoint folder at ``path`` atomically (replacing any previous one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(weights, tmp / "model.safetensors", metadata={"format_version": str(FORMAT_VERSION)})
    torch.save(state, tmp / "state.pt")
    config.save(tmp / "config.json")
    info = {"format_version": FORMAT_VERSION, **(meta or {})}
    (tmp / "meta.json").write_text(json.dumps(info, indent=2) + "\n")
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    old = path.parent / f".{path.name}.old-{os.getpid()}"
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    if old.exists():
        shutil.rmtree(old)


def find_checkpoint(run_dir: str | Path, which: str = "last") -> Path:
    """The ``which`` checkpoint of a run (``best`` falls back to ``last``)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise VQKitError(f"{run_dir}: no such run directory")
    for name in ([which, "last"] if which == "best" else [which]):
        p = checkpoint_dir(run_dir, name)
        if (p / "meta.json").is_file():
            return p
        # A crash between the two renames in save_checkpoint leaves only the ".old" copy.
        olds = sorted(p.parent.glob(f".{name}.old-*"))
        if olds and (olds[-1] / "meta.json").is_file():
            return olds[-1]
    raise VQKitError(f"{run_dir}: no checkpoint found (expected checkpoints/{which}/)")


def load_checkpoint(
    run_dir: str | Path, which: str = "last", with_state: bool = True
) -> Checkpoint:
    """Read a run's checkpoint; never unpickles arbitrary objects."""
    path = find_checkpoint(run_dir, which)
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise VQKitError(f"{path / 'meta.json'}: unreadable ({e})") from None
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise VQKitError(
            f"{path}: checkpoint format {version!r}, this vqkit reads {FORMAT_VERSION}")
    config = RunConfig.load(path / "config.json")
    try:
        model_state = load_file(path / "model.safetensors")
    except (OSError, SafetensorError) as e:
        raise VQKitError(f"{path / 'model.safetensors'}: unreadable ({e})") from None
    state: dict[str, Any] = {}
    if with_state:
        try:
            state = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises several types for a bad file
            raise VQKitError(f"{path / 'state.pt'}: unreadable ({e})") from None
    return Checkpoint(path, config, model_state, state, meta)
