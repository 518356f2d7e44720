"""Checkpoints: one folder per checkpoint, written atomically and verified when read.

``RUN_DIR/checkpoints/{last,best}/`` holds ``model.safetensors`` (weights and buffers),
``state.pt`` (optimizer, counters, RNG states; loaded with ``weights_only=True``),
``config.json`` (the resolved :class:`~vqkit.config.RunConfig`) and ``meta.json`` (format version,
step, epoch, and the sha256 of the two binary files). A folder is written beside its final name
and renamed into place, so a crash or a full disk leaves the previous checkpoint intact.

A checkpoint never holds non-finite weights: saving refuses them, and so does loading one that
was written otherwise. A flipped bit in either binary file fails its checksum at load.
Format 1 (no checksums) is still read.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from safetensors import SafetensorError

from vqkit.config import RunConfig
from vqkit.errors import VQKitError
from vqkit.utils import fsync_dir, pid_alive

__all__ = ["Checkpoint", "CheckpointError", "FORMAT_VERSION", "checkpoint_dir",
           "find_checkpoint", "load_checkpoint", "nonfinite_tensors", "save_checkpoint"]

FORMAT_VERSION = 2  # 2: meta.json holds "sha256" of model.safetensors and state.pt
READABLE_FORMATS = (1, 2)
BINARY_FILES = ("model.safetensors", "state.pt")


class CheckpointError(VQKitError):
    """A checkpoint cannot be written, or what was read is corrupt or unusable."""


@dataclass
class Checkpoint:
    path: Path
    config: RunConfig
    model_state: dict[str, torch.Tensor]
    state: dict[str, Any]
    meta: dict[str, Any]


def checkpoint_dir(run_dir: str | Path, which: str = "last") -> Path:
    return Path(run_dir) / "checkpoints" / which


def nonfinite_tensors(tensors: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors holding a NaN or an infinity (one pass each)."""
    return [k for k, v in tensors.items()
            if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_checkpoint(
    path: Path,
    *,
    model: torch.nn.Module,
    config: RunConfig,
    state: dict[str, Any],
    meta: dict[str, Any] | None = None,
) -> None:
    """Write a checkpoint folder at ``path`` atomically (replacing any previous one).

    Raises
    ------
    CheckpointError
        Non-finite weights (nothing is written), or a write that failed (disk full, no
        permission): its partial folder is removed and the previous checkpoint stays.
    """
    path = Path(path)
    weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    bad = nonfinite_tensors(weights)
    if bad:
        raise CheckpointError(f"{path}: refusing to save non-finite weights ({', '.join(bad[:3])}"
                              f"{' ...' if len(bad) > 3 else ''} hold NaN or inf)")
    blobs = {"model.safetensors": safetensors.torch.save(
        weights, metadata={"format_version": str(FORMAT_VERSION)})}
    buf = io.BytesIO()
    torch.save(state, buf)
    blobs["state.pt"] = buf.getvalue()
    info = {"format_version": FORMAT_VERSION, **(meta or {}),
            "sha256": {name: _sha256(data) for name, data in blobs.items()}}
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    old = path.parent / f".{path.name}.old-{os.getpid()}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        for name, data in blobs.items():
            _write_synced(tmp / name, data)
        config.save(tmp / "config.json")
        _write_synced(tmp / "meta.json", (json.dumps(info, indent=2) + "\n").encode())
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not path.exists():
            os.replace(old, path)  # put the previous checkpoint back
        raise CheckpointError(f"{path}: cannot write the checkpoint ({e.strerror or e}); the "
                              f"previous one is left as it was") from None
    shutil.rmtree(old, ignore_errors=True)
    remove_stale_temps(path)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def remove_stale_temps(path: Path) -> None:
    """Remove ``.<name>.tmp-PID`` / ``.<name>.old-PID`` folders of checkpoint ``path`` left by
    processes that died (called after ``path`` was written, so none is the only copy)."""
    for p in path.parent.glob(f".{path.name}.*-*"):
        kind, _, pid = p.name.rpartition("-")
        if kind.endswith((".tmp", ".old")) and pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)


def find_checkpoint(run_dir: str | Path, which: str = "last") -> Path:
    """The ``which`` checkpoint of a run (``best`` falls back to ``last``)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir}: no such run directory")
    for name in ([which, "last"] if which == "best" else [which]):
        p = checkpoint_dir(run_dir, name)
        if (p / "meta.json").is_file():
            return p
        # A crash between the two renames in save_checkpoint leaves only the ".old" copy.
        olds = sorted(p.parent.glob(f".{name}.old-*"))
        if olds and (olds[-1] / "meta.json").is_file():
            return olds[-1]
    if (run_dir / "config.json").is_file():
        raise CheckpointError(f"{run_dir}: no checkpoint yet (the run stopped before its first "
                              f"save); start it again with `vqkit train ... --out {run_dir}`")
    raise CheckpointError(f"{run_dir}: no checkpoint found (expected checkpoints/{which}/)")


def _read_verified(path: Path, meta: dict[str, Any]) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{path}: unreadable ({e.strerror or e})") from None
    want = meta.get("sha256", {}).get(path.name) if meta["format_version"] >= 2 else None
    if meta["format_version"] >= 2 and want != _sha256(data):
        raise CheckpointError(f"{path}: checksum mismatch (the file is corrupt or was "
                              f"modified); use the other checkpoint or retrain")
    return data


def load_checkpoint(
    run_dir: str | Path, which: str = "last", with_state: bool = True
) -> Checkpoint:
    """Read and verify a run's checkpoint; never unpickles arbitrary objects.

    Raises
    ------
    CheckpointError
        Missing, of an unknown format, failing its checksum, unreadable, or holding
        non-finite weights; the message names the file.
    """
    path = find_checkpoint(run_dir, which)
    try:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:  # ValueError: bad JSON or bytes that are not UTF-8
        raise CheckpointError(f"{path / 'meta.json'}: unreadable ({e})") from None
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if version not in READABLE_FORMATS or (version >= 2 and not isinstance(meta.get("sha256"),
                                                                           dict)):
        raise CheckpointError(f"{path}: checkpoint format {version!r}, this vqkit reads "
                              f"{', '.join(map(str, READABLE_FORMATS))}")
    config = RunConfig.load(path / "config.json")
    try:
        model_state = safetensors.torch.load(_read_verified(path / "model.safetensors", meta))
    except SafetensorError as e:
        raise CheckpointError(f"{path / 'model.safetensors'}: unreadable ({e})") from None
    bad = nonfinite_tensors(model_state)
    if bad:
        raise CheckpointError(f"{path / 'model.safetensors'}: non-finite weights "
                              f"({', '.join(bad[:3])}); this checkpoint cannot be used")
    state: dict[str, Any] = {}
    if with_state:
        data = _read_verified(path / "state.pt", meta)
        try:
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises several types for a bad file
            raise CheckpointError(f"{path / 'state.pt'}: unreadable ({e})") from None
    return Checkpoint(path, config, model_state, state, meta)
