"""What the VQ-VAE brings to the training loop: its loss on a batch and its validation."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vqkit.config import RunConfig
from vqkit.data.image_record import write_data_record
from vqkit.data.loaders import load_training_data
from vqkit.data.source import Batch, BatchSource
from vqkit.distributed import is_main_process
from vqkit.figures.curves import plot_loss_curves
from vqkit.models import model_for
from vqkit.quantizers.stats import code_histogram, histogram_stats
from vqkit.training.setup import Setup
from vqkit.training.state import Meter

__all__ = ["VQVAETask", "reconstruction_loss", "split_batch", "vqvae_setup"]


def reconstruction_loss(xhat: Tensor, x: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean squared error, over the positions where ``mask`` (broadcastable to x) is true."""
    if mask is None:
        return F.mse_loss(xhat, x)
    mask = mask.expand_as(x).to(x.dtype)
    return ((xhat - x) ** 2 * mask).sum() / mask.sum().clamp_min(1)


def split_batch(batch: Batch) -> tuple[Tensor, Tensor | None]:
    """Data sources yield a tensor, or (tensor, mask of real positions)."""
    return batch if isinstance(batch, tuple) else (batch, None)


class VQVAETask:
    """Loss = ``recon_weight * MSE`` (over real positions) + the quantizer's loss terms;
    "best" = the lowest validation reconstruction MSE (with EMA codebooks the commitment term
    grows as the encoder spreads over more codes, which says nothing about quality)."""

    best_metric = "val_recon"
    best_label = "val reconstruction MSE"

    def __init__(self, cfg: RunConfig, device: torch.device) -> None:
        self.cfg, self.device = cfg, device
        a = cfg.audio
        self.unit = "img" if cfg.task == "image" else "clip"
        frames = a.crop_frames or round(a.clip_s * a.sample_rate / a.hop_length)
        speech = cfg.task == "speech"
        self.seconds_per_item = frames * a.hop_length / a.sample_rate if speech else 0.0

    def _input(self, batch: Batch) -> tuple[Tensor, Tensor | None]:
        x, mask = split_batch(batch)
        x = x.to(self.device, non_blocking=True)
        if self.cfg.train.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, None if mask is None else mask.to(self.device)

    def _losses(self, model: nn.Module, x: Tensor, mask: Tensor | None):
        xhat, out = model(x)
        recon = reconstruction_loss(xhat, x, mask)
        return self.cfg.train.recon_weight * recon + out.loss, recon, out

    def loss(self, model: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, Tensor], int]:
        x, mask = self._input(batch)
        loss, recon, out = self._losses(model, x, mask)
        values = {"loss": loss.detach(), "recon": recon.detach(), "vq": out.loss.detach(),
                  **{k: v.detach() for k, v in out.losses.items()}, **out.metrics}
        return loss, values, x.shape[0]

    @torch.no_grad()
    def validate(self, model: nn.Module, data: BatchSource) -> dict[str, float]:
        """Mean losses over the validation split (at most ``val_max_batches`` batches), and
        perplexity/usage of its whole code histogram."""
        t = self.cfg.train
        model.eval()
        sums = Meter()
        counts = None
        q = model.quantizer
        for i, batch in enumerate(data.batches(t.batch_size)):
            if t.val_max_batches and i >= t.val_max_batches:
                break
            x, mask = self._input(batch)
            loss, recon, out = self._losses(model, x, mask)
            sums.add({"recon": recon, "vq": out.loss, "loss": loss})
            c = code_histogram(out.codes, q.codebook_size, q.num_quantizers)
            counts = c if counts is None else counts + c
        model.train()
        res = {f"val_{k}": v for k, v in sums.means().items()}
        if counts is not None:
            res["val_perplexity"], res["val_usage"] = histogram_stats(counts)
        return res

    def log_values(self, model: nn.Module) -> dict[str, float]:
        return {"window_usage": model.quantizer.window_usage()}

    def summary(self, record: dict[str, Any]) -> str:
        return (f"val perplexity {record.get('val_perplexity', math.nan):.1f}  "
                f"usage {record.get('val_usage', math.nan):.2f}")


def vqvae_setup(cfg: RunConfig, device: torch.device, run_dir: Path, *,
                data: tuple[BatchSource, BatchSource] | None = None,
                tensorboard: bool = False) -> Setup:
    """The VQ-VAE of ``cfg`` (channels-last when asked), its data (whole splits in memory,
    unless ``data`` is given) and task; after each epoch the loss plot is redrawn and, with
    ``tensorboard``, samples are logged."""
    train_data, val_data = data if data is not None else load_training_data(cfg)
    channels = getattr(train_data, "channels", None)
    # An image folder's channels: the model follows them (train() saves the config after setup).
    if channels is not None:
        cfg.model.in_channels = channels
    if is_main_process() and hasattr(train_data, "split_rule"):
        write_data_record(run_dir / "data.json", cfg, train_data, val_data)
    model = model_for(cfg).to(device)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if cfg.train.compile:  # bound methods: the state dict keeps its keys
        model.encoder.forward = torch.compile(model.encoder.forward)
        model.decoder.forward = torch.compile(model.decoder.forward)
    writer = None
    if tensorboard:
        from vqkit.training.tensorboard import make_writer  # optional dependency

        writer = make_writer(run_dir)

    def on_epoch_end(record: dict[str, Any]) -> None:
        if writer is not None:
            writer.log_samples(model, val_data, cfg, record["step"])
        plot_loss_curves(run_dir / "metrics.jsonl", run_dir / "loss_vs_epochs.png")

    return Setup(model=model, task=VQVAETask(cfg, device), data=(train_data, val_data),
                 on_epoch_end=on_epoch_end, writer=writer)
