"""Load a trained model from a run directory's checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch

from vqkit.checkpoint import load_checkpoint
from vqkit.config import RunConfig
from vqkit.errors import VQKitError
from vqkit.models.prior import CodePrior
from vqkit.models.vqvae import build_model


def model_for(cfg: RunConfig) -> torch.nn.Module:
    """A fresh (untrained) model of the kind ``cfg`` describes: the VQ-VAE for image and speech
    runs, the code prior for prior runs. New model kinds register here."""
    if cfg.task == "prior":
        return CodePrior(cfg.prior)
    return build_model(cfg.model, cfg.quantizer)


def load_model(run_dir: str | Path, which: str = "best", device: str | torch.device = "cpu",
               *, kind: str | None = None) -> tuple[torch.nn.Module, RunConfig]:
    """The trained model of a run, in eval mode on ``device``, and its config; ``kind``
    ("vqvae" or "prior") refuses a run of the other kind with one line.

    Raises
    ------
    VQKitError
        No checkpoint, an unreadable one, or weights that do not fit the saved config.
    """
    ckpt = load_checkpoint(run_dir, which, with_state=False)
    is_prior = ckpt.config.task == "prior"
    if kind == "vqvae" and is_prior:
        raise VQKitError(f"{run_dir}: a prior run (of {ckpt.config.prior.run}); give a VQ-VAE "
                         f"run here")
    if kind == "prior" and not is_prior:
        raise VQKitError(f"{run_dir}: not a prior run (train one with `vqkit train prior "
                         f"{run_dir} --out PRIOR_RUN`)")
    model = model_for(ckpt.config)
    try:
        model.load_state_dict(ckpt.model_state)
    except RuntimeError as e:
        raise VQKitError(f"{ckpt.path}: weights do not match the saved config ({e})") from None
    return model.to(device).eval(), ckpt.config
