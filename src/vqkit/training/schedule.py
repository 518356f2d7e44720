"""The learning rate as a pure function of the step, and the optimizer it is applied to."""

from __future__ import annotations

import math

import torch

from vqkit.config import TrainConfig
from vqkit.errors import ConfigError

__all__ = ["build_optimizer", "learning_rate", "lr_factor"]


def lr_factor(t: TrainConfig, step: int, steps_per_epoch: int, progress_floor: float = 0.0
              ) -> float:
    """Multiplier of ``t.lr`` for optimizer step ``step`` (0-based).

    Linear warm-up over ``warmup_steps``, then ``constant``, ``step`` (times ``lr_gamma`` every
    ``lr_step_epochs`` epochs) or ``cosine`` (from 1 to 0 over ``epochs``). ``progress_floor``
    (0..1) is how much of the cosine is spent at least, whatever the step: the share of a
    ``max_minutes`` budget used so far, so that a run given N minutes anneals within them on any
    machine. ``max_steps`` only stops early: an interrupted run follows the uninterrupted
    schedule.
    """
    warm = min(1.0, (step + 1) / t.warmup_steps) if t.warmup_steps > 0 else 1.0
    if t.lr_schedule == "constant":
        return warm
    if t.lr_schedule == "step":
        return warm * t.lr_gamma ** ((step // steps_per_epoch) // t.lr_step_epochs)
    if t.lr_schedule == "cosine":
        total = max(1, t.epochs * steps_per_epoch)
        progress = min(1.0, max(step / total, progress_floor))
        return warm * 0.5 * (1 + math.cos(math.pi * progress))
    raise ConfigError(f"train.lr_schedule: unknown {t.lr_schedule!r} (constant, step, cosine)")


def learning_rate(t: TrainConfig, step: int, steps_per_epoch: int,
                  progress_floor: float = 0.0) -> float:
    """The learning rate of optimizer step ``step``: ``t.lr * lr_factor(...)``."""
    return t.lr * lr_factor(t, step, steps_per_epoch, progress_floor)


def build_optimizer(t: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """Adam or AdamW over the trainable parameters, at ``t.lr`` (the loop sets it each step)."""
    params = [p for p in model.parameters() if p.requires_grad]
    # On a GPU the fused kernels are faster and keep the step counter on the device (no host
    # read per step); the CPU keeps the default implementation, bit for bit as before.
    fused = {"fused": True} if params and params[0].is_cuda else {}
    if t.optimizer == "adam":
        return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay, **fused)
    if t.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay, **fused)
    raise ConfigError(f"train.optimizer: unknown {t.optimizer!r} (adam, adamw)")
