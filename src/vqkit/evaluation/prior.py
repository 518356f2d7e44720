"""``evaluate_prior``: the rate a code prior gives a split, against the raw and unigram rates."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vqkit.codes.cache import describe_vqvae, load_code_split
from vqkit.data.codes import CodeData
from vqkit.models import load_model
from vqkit.utils import atomic_write_text, resolve_device

__all__ = ["evaluate_prior", "unigram_bits"]

PIXELS = 32 * 32  # a CIFAR-10 image


def unigram_bits(train: CodeData, test: CodeData, vocab: int, stages: int) -> float:
    """Bits per code of ``test`` under the code frequencies of ``train`` (one table per
    residual stage, add-one smoothed)."""
    bits = 0.0
    for s in range(stages):
        counts = np.bincount(train.tokens[:, s::stages].reshape(-1).numpy(), minlength=vocab)
        logp = np.log2((counts + 1) / (counts.sum() + vocab))
        bits += float(-logp[test.tokens[:, s::stages].reshape(-1).numpy()].sum())
    return bits / test.tokens.numel()


@torch.no_grad()
def _bits(model, data: CodeData, *, conditional: bool, batch_size: int,
          device: torch.device) -> float:
    total = 0.0
    for tokens, labels in data.batches(batch_size):
        tokens = tokens.to(device)
        logits = model(tokens, labels if conditional else None).float()
        total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1),
                                       reduction="sum"))
    return total / math.log(2) / data.tokens.numel()


def evaluate_prior(run_dir: str | Path, *, split: str = "val", which: str = "best",
                   device: str = "auto", json_path: str | Path | None = None,
                   max_items: int = 0, batch_size: int = 256) -> dict[str, Any]:
    """Negative log-likelihood of ``split``'s codes under the prior of ``run_dir``.

    Returns ``bits_per_code`` (with the class labels when the prior is class-conditional),
    ``bits_per_code_unconditional`` ("no class", what ``vqkit compress`` codes with),
    ``bits_per_image`` and ``bits_per_pixel`` of both, ``raw_bits_per_code`` (log2 of the
    codebook size per stage) and ``unigram_bits_per_code`` (the training split's code
    frequencies). Also saved as ``RUN/eval/<split>/metrics.json``.
    """
    run_dir = Path(run_dir)
    dev = resolve_device(device)
    model, cfg = load_model(run_dir, which, dev, kind="prior")
    describe_vqvae(cfg)  # refuses a VQ-VAE that changed since training
    p = cfg.prior
    data = load_code_split(cfg, split, run_dir, device=dev)
    if max_items:
        data = CodeData(data.tokens[:max_items], data.labels[:max_items], split)
    train = load_code_split(cfg, "train", run_dir, device=dev)
    per_item = data.tokens.shape[1]
    cond = _bits(model, data, conditional=True, batch_size=batch_size, device=dev)
    uncond = (_bits(model, data, conditional=False, batch_size=batch_size, device=dev)
              if model.num_classes else cond)
    m: dict[str, Any] = {
        "run": str(run_dir), "split": split, "checkpoint": which, "items": len(data),
        "codes_per_item": per_item, "class_conditional": bool(model.num_classes),
        "bits_per_code": cond, "bits_per_code_unconditional": uncond,
        "bits_per_image": cond * per_item, "bits_per_image_unconditional": uncond * per_item,
        "bits_per_pixel": cond * per_item / PIXELS,
        "bits_per_pixel_unconditional": uncond * per_item / PIXELS,
        "raw_bits_per_code": math.log2(p.codebook_size),
        "unigram_bits_per_code": unigram_bits(train, data, p.codebook_size, p.num_quantizers),
    }
    out = run_dir / "eval" / split / "metrics.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(m, indent=2) + "\n")
    if json_path is not None:
        atomic_write_text(Path(json_path), json.dumps(m, indent=2) + "\n")
    return m
