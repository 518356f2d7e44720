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
from vqkit.errors import VQKitError
from vqkit.evaluation.artifacts import evaluation_dir
from vqkit.models import load_model
from vqkit.utils import atomic_write_text, resolve_device

__all__ = ["evaluate_prior", "unigram_bits"]

PIXELS = 32 * 32  # a CIFAR-10 image


def unigram_bits(train: CodeData, test: CodeData, vocab: int, stages: int) -> float:
    """Bits per code of ``test``'s real codes under the code frequencies of ``train``'s (one
    table per residual stage, add-one smoothed)."""
    def stage_codes(d: CodeData, s: int) -> np.ndarray:
        real = torch.arange(d.tokens.shape[1])[None, :] < d.lengths[:, None]
        at = (torch.arange(d.tokens.shape[1]) % stages == s)[None, :] & real
        return d.tokens[at].numpy()

    bits = 0.0
    for s in range(stages):
        counts = np.bincount(stage_codes(train, s), minlength=vocab)
        logp = np.log2((counts + 1) / (counts.sum() + vocab))
        bits += float(-logp[stage_codes(test, s)].sum())
    return bits / test.n_codes


@torch.no_grad()
def item_bits(model, data: CodeData, *, conditional: bool, batch_size: int,
              device: torch.device) -> np.ndarray:
    """Bits of each item's real codes under the prior (N,), float64."""
    out = np.zeros(len(data))
    order = data.batch_order(batch_size, None, 0)
    for b, (tokens, labels, lengths) in enumerate(data.batches(batch_size)):
        tokens = tokens.to(device)
        logits = model(tokens, labels if conditional else None).float()
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1),
                             reduction="none").view(tokens.shape).double()
        real = torch.arange(tokens.shape[1], device=device)[None, :] < lengths.to(device)[:, None]
        idx = order[b * batch_size:(b + 1) * batch_size].numpy()
        out[idx] = ((ce * real).sum(1) / math.log(2)).cpu().numpy()
    return out


def evaluate_prior(run_dir: str | Path, *, split: str = "val", which: str = "best",
                   device: str = "auto", json_path: str | Path | None = None,
                   max_items: int = 0, batch_size: int = 256) -> dict[str, Any]:
    """Negative log-likelihood of ``split``'s codes under the prior of ``run_dir``.

    Returns ``bits_per_code`` (with the class labels when the prior is class-conditional),
    ``bits_per_code_unconditional`` ("no class", what ``vqkit compress`` codes with),
    ``raw_bits_per_code`` (log2 of the codebook size per stage) and ``unigram_bits_per_code``
    (the training split's code frequencies); images: ``bits_per_image`` and
    ``bits_per_pixel`` of both; speech (whole utterances): ``bits_per_second`` of audio,
    ``raw_bits_per_second`` and ``unigram_bits_per_second``. Also saved as
    ``RUN/eval/<split>/metrics.json``.
    """
    run_dir = Path(run_dir)
    dev = resolve_device(device)
    model, cfg = load_model(run_dir, which, dev, kind="prior")
    describe_vqvae(cfg)  # refuses a VQ-VAE that changed since training
    p = cfg.prior
    data = load_code_split(cfg, split, run_dir, device=dev)
    if max_items:
        data = data.subset(max_items)
    train = load_code_split(cfg, "train", run_dir, device=dev)
    if p.order == "time" and int(data.lengths.max()) > model.length:
        raise VQKitError(f"{run_dir}: split {split!r} holds utterances of up to "
                         f"{int(data.lengths.max()) // model.frame_tokens} code frames; the prior "
                         f"models at most {p.grid[1]} (the longest of its training data)")
    codes = data.n_codes
    cond_items = item_bits(model, data, conditional=True, batch_size=batch_size, device=dev)
    uncond_items = (item_bits(model, data, conditional=False, batch_size=batch_size, device=dev)
                    if model.num_classes else cond_items)
    cond, uncond = cond_items.sum() / codes, uncond_items.sum() / codes
    raw = math.log2(p.codebook_size)
    unigram = unigram_bits(train, data, p.codebook_size, p.num_quantizers)
    m: dict[str, Any] = {
        "run": str(run_dir), "split": split, "checkpoint": which, "items": len(data),
        "class_conditional": bool(model.num_classes),
        "bits_per_code": cond, "bits_per_code_unconditional": uncond,
        "raw_bits_per_code": raw, "unigram_bits_per_code": unigram,
    }
    if p.order == "time":  # speech: per second of audio
        seconds = float(data.seconds.sum())
        m.update({"codes": codes, "seconds": seconds, "codes_per_second": codes / seconds,
                  "bits_per_second": cond * codes / seconds,
                  "raw_bits_per_second": raw * codes / seconds,
                  "unigram_bits_per_second": unigram * codes / seconds})
    else:
        per_item = data.tokens.shape[1]
        m.update({"codes_per_item": per_item,
                  "bits_per_image": cond * per_item,
                  "bits_per_image_unconditional": uncond * per_item,
                  "bits_per_pixel": cond * per_item / PIXELS,
                  "bits_per_pixel_unconditional": uncond * per_item / PIXELS})
    out = evaluation_dir(run_dir, split) / "metrics.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(m, indent=2) + "\n")
    if json_path is not None:
        atomic_write_text(Path(json_path), json.dumps(m, indent=2) + "\n")
    return m
