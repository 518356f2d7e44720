"""A model's identity: the fingerprint stored in every code file, checked before decoding."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from vqkit.codes.format import CodeFile
from vqkit.errors import VQKitError

__all__ = ["check_fingerprint", "model_fingerprint"]


def _fingerprint_config(cfg) -> dict[str, Any]:
    """The parts of a run config that change what codes mean (not data, not training)."""
    d = cfg.to_dict()
    model = dict(d["model"])
    if model.get("kind") == "conv2d":  # the default: fingerprints from before the field stay
        del model["kind"]
    keep = {"task": d["task"], "model": model, "quantizer": d["quantizer"]}
    if d["task"] == "speech":
        keep["audio"] = d["audio"]
    if d["task"] == "prior":
        keep["prior"] = d["prior"]
    return keep


def model_fingerprint(model: torch.nn.Module, cfg) -> str:
    """sha256 (hex) of the model's state dict and the config sections that define it.

    Covers every tensor of ``model.state_dict()`` (name, dtype, shape and bytes, in name order)
    and the ``task``, ``model``, ``quantizer`` (and, for speech, ``audio``) sections of ``cfg``:
    two checkpoints give the same fingerprint only if they encode and decode identically.
    """
    h = hashlib.sha256(b"vqkit-model-fingerprint-v1\n")
    h.update(json.dumps(_fingerprint_config(cfg), sort_keys=True).encode())
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"\n{name} {t.dtype} {tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def check_fingerprint(code_file: CodeFile, model, cfg, run_dir: str | Path, which: str) -> None:
    """Raise VQKitError unless ``code_file`` was made by this model."""
    fp = model_fingerprint(model, cfg)
    if code_file.fingerprint != fp:
        made_by = code_file.meta.get("run", "another model")
        raise VQKitError(
            f"{code_file.path}: made by model {code_file.fingerprint[:12]} ({made_by}, "
            f"{code_file.meta.get('checkpoint', '?')} checkpoint), but {run_dir} "
            f"({which} checkpoint) is model {fp[:12]}; decode with the model that encoded it")
