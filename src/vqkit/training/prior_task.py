"""What the code prior brings to the training loop: cross-entropy on cached codes.

The data is the VQ-VAE run's dataset encoded once (:mod:`vqkit.codes.cache`); the loop,
checkpoints and exact resume are the same as for the VQ-VAE.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vqkit.codes.cache import describe_vqvae, load_code_split
from vqkit.config import RunConfig
from vqkit.data.source import Batch, BatchSource
from vqkit.figures.curves import plot_loss_curves
from vqkit.models import model_for
from vqkit.training.setup import Setup

__all__ = ["PriorTask", "prior_setup"]

LN2 = math.log(2.0)


class PriorTask:
    """Loss = mean cross-entropy (nats) per code; "best" = the lowest validation bits per code.
    A fraction ``prior.class_dropout`` of the training items is shown with "no class", so the
    same model also serves unconditional sampling and compression."""

    best_metric = "val_bits_per_code"
    best_label = "val bits per code"
    unit = "img"
    seconds_per_item = 0.0

    def __init__(self, cfg: RunConfig, device: torch.device) -> None:
        self.cfg, self.device = cfg, device
        if cfg.prior.order == "time":
            self.unit = "utt"

    def _nll(self, model: nn.Module, batch: Batch, *, drop: float,
             reduction: str = "mean") -> tuple[Tensor, int]:
        """Cross-entropy (nats) of the batch's real tokens: their mean, or (``"sum"``) sum."""
        tokens, labels, lengths = batch
        tokens, labels = tokens.to(self.device), labels.to(self.device)
        if drop > 0:
            keep = torch.rand(labels.shape, device=self.device) >= drop
            labels = torch.where(keep, labels, torch.full_like(labels, -1))
        logits = model(tokens, labels)
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), tokens.reshape(-1),
                             reduction="none").view(tokens.shape)
        real = (torch.arange(tokens.shape[1], device=self.device)[None, :]
                < lengths.to(self.device)[:, None])
        total = (ce * real).sum()
        loss = total if reduction == "sum" else total / real.sum().clamp_min(1)
        return loss, tokens.shape[0]

    def loss(self, model: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, Tensor], int]:
        loss, n = self._nll(model, batch, drop=self.cfg.prior.class_dropout)
        return loss, {"loss": loss.detach(), "bits_per_code": loss.detach() / LN2}, n

    @torch.no_grad()
    def validate(self, model: nn.Module, data: BatchSource) -> dict[str, float]:
        """Loss per code and bits per code over the validation split's real codes (with the
        class labels)."""
        t = self.cfg.train
        model.eval()
        total, count = 0.0, 0
        for i, batch in enumerate(data.batches(t.batch_size)):
            if t.val_max_batches and i >= t.val_max_batches:
                break
            loss, _ = self._nll(model, batch, drop=0.0, reduction="sum")
            total += float(loss)
            count += int(batch[2].sum())
        model.train()
        mean = total / count if count else math.nan
        return {"val_loss": mean, "val_bits_per_code": mean / LN2}

    def log_values(self, model: nn.Module) -> dict[str, float]:
        return {}

    def summary(self, record: dict[str, Any]) -> str:
        return (f"val bits/code {record.get('val_bits_per_code', math.nan):.3f} "
                f"(raw {math.log2(self.cfg.prior.codebook_size):.0f})")


def prior_setup(cfg: RunConfig, device: torch.device, run_dir: Path, *,
                data: tuple[BatchSource, BatchSource] | None = None,
                tensorboard: bool = False) -> Setup:
    """The prior of ``cfg`` over its VQ-VAE run's codes (described into ``cfg.prior`` first,
    checked against the run on resume), the cached train and val codes, and its task."""
    describe_vqvae(cfg)
    if data is None:
        data = (load_code_split(cfg, "train", run_dir, device=device),
                load_code_split(cfg, "val", run_dir, device=device))
    p = cfg.prior
    if p.order == "time" and not p.grid[1]:  # speech: room for the longest item seen
        frame = p.grid[0] * p.num_quantizers
        p.grid = [p.grid[0], max(int(d.lengths.max()) // frame for d in data)]
    model = model_for(cfg).to(device)

    def on_epoch_end(record: dict[str, Any]) -> None:
        plot_loss_curves(run_dir / "metrics.jsonl", run_dir / "loss_vs_epochs.png")

    return Setup(model=model, task=PriorTask(cfg, device), data=data, on_epoch_end=on_epoch_end)
