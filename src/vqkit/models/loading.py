"""Load a trained model from a run directory's checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch

from vqkit.checkpoint import load_checkpoint
from vqkit.config import RunConfig
from vqkit.errors import VQKitError
from vqkit.models.prior import CodePrior
from vqkit.models.search import search_for
from vqkit.models.temporal import TemporalVQVAE
from vqkit.models.vqvae import build_model


def model_for(cfg: RunConfig) -> torch.nn.Module:
    """A fresh (untrained) model of the kind ``cfg`` describes: the 2-D VQ-VAE for image and
    speech runs, the temporal one (``model.kind = "temporal"``) for speech, the code prior for
    prior runs. New model kinds register here."""
    if cfg.task == "prior":
        return CodePrior(cfg.prior)
    if cfg.model.kind == "temporal":
        return TemporalVQVAE(cfg.model, cfg.quantizer, cfg.audio.n_mels)
    return build_model(cfg.model, cfg.quantizer)


def set_stages(model: torch.nn.Module, stages: int | None, source: str = "") -> None:
    """Make ``model`` encode, decode and report rates with its first ``stages`` residual
    stages (None: all). VQKitError (naming ``source``) for a model without residual stages or
    a count out of range."""
    if stages is None:
        return
    q = getattr(model, "quantizer", None)
    where = f"{source}: " if source else ""
    if not hasattr(q, "use_stages"):
        raise VQKitError(f"{where}--stages needs a residual VQ model (quantizer.kind rvq)")
    if not 1 <= stages <= q.num_quantizers:
        raise VQKitError(f"{where}--stages must be in [1, {q.num_quantizers}], got {stages}")
    q.use_stages(stages)


def load_model(run_dir: str | Path, which: str = "best", device: str | torch.device = "cpu",
               stages: int | None = None, *, kind: str | None = None,
               search_steps: int | None = None) -> tuple[torch.nn.Module, RunConfig]:
    """The trained model of a run, in eval mode on ``device``, and its config; with
    ``stages``, set to its first ``stages`` residual stages (:func:`set_stages`); ``kind``
    ("vqvae" or "prior") refuses a run of the other kind with one line; a VQ-VAE encodes with
    the code search of its config's ``search`` section, ``search_steps`` overriding its steps
    (0: nearest codes).

    Raises
    ------
    VQKitError
        No checkpoint, an unreadable one, weights that do not fit the saved config, or
        ``stages`` the model does not have.
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
    set_stages(model, stages, str(run_dir))
    if not is_prior:
        model.search = search_for(ckpt.config, search_steps)
    return model.to(device).eval(), ckpt.config
