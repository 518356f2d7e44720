"""TensorBoard logging for ``vqkit train --tensorboard`` (optional: ``pip install
'vqkit[tensorboard]'``).

:func:`make_writer` returns a :class:`TensorBoardWriter` logging to ``RUN_DIR/tensorboard``:
scalars, images (reconstruction grids, mel spectrograms) and audio. Without the
``tensorboard`` package it raises :class:`~vqkit.errors.VQKitError` saying what to install.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from vqkit.errors import VQKitError

__all__ = ["TensorBoardWriter", "make_writer", "LOG_DIR"]

LOG_DIR = "tensorboard"


class TensorBoardWriter:
    """A thin layer over ``torch.utils.tensorboard.SummaryWriter`` taking numpy or torch data.

    Parameters
    ----------
    log_dir : Path
        Folder of the event files.
    backend : object, optional
        Anything with SummaryWriter's ``add_scalar``, ``add_image``, ``add_audio``, ``flush``
        and ``close``; a SummaryWriter on ``log_dir`` when None.
    """

    def __init__(self, log_dir: str | Path, backend: Any = None) -> None:
        self.log_dir = Path(log_dir)
        if backend is None:
            from torch.utils.tensorboard import SummaryWriter

            backend = SummaryWriter(log_dir=str(self.log_dir))
        self.backend = backend

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.backend.add_scalar(tag, float(value), int(step))

    def add_image(self, tag: str, image: np.ndarray | torch.Tensor, step: int) -> None:
        """``image``: (H, W), (H, W, C) or (C, H, W) with C in {1, 3}; uint8, or float in
        [0, 1] (clipped)."""
        a = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
        if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[2] not in (1, 3):
            a = np.transpose(a, (1, 2, 0))
        if a.ndim == 2:
            a = a[:, :, None]
        if a.dtype != np.uint8:
            a = np.round(np.clip(a.astype(np.float32), 0, 1) * 255).astype(np.uint8)
        if a.shape[2] == 1:
            a = np.repeat(a, 3, axis=2)
        self.backend.add_image(tag, a, int(step), dataformats="HWC")

    def add_audio(self, tag: str, audio: np.ndarray | torch.Tensor, step: int,
                  sample_rate: int) -> None:
        """``audio``: mono samples (samples,) in [-1, 1] (clipped) at ``sample_rate`` Hz."""
        y = audio.detach().cpu().float() if isinstance(audio, torch.Tensor) else (
            torch.as_tensor(np.asarray(audio, dtype=np.float32)))
        self.backend.add_audio(tag, y.reshape(1, -1).clamp(-1, 1), int(step),
                               sample_rate=int(sample_rate))

    @torch.no_grad()
    def log_samples(self, model, data, cfg, step: int, n: int = 8) -> None:
        """Reconstructions of the first ``n`` items of ``data`` (a validation source).

        Images: one grid, originals over reconstructions. Speech: the first item's original
        and reconstructed mel spectrograms (real frames only) and, with the "fixed_db"
        normalisation (invertible without per-utterance statistics), its reconstructed audio
        (Griffin-Lim).
        """
        from vqkit.data.images import model_output_to_unit
        from vqkit.figures.images import image_grid

        was_training = model.training
        model.eval()
        try:
            batch = next(iter(data.batches(n)))
            x, mask = batch if isinstance(batch, tuple) else (batch, None)
            x = x[:n].to(next(model.parameters()).device)
            x_hat, _ = model(x)
            if cfg.task == "image":
                both = torch.cat([model_output_to_unit(x.clone()), model_output_to_unit(x_hat)])
                grid = image_grid(both.permute(0, 2, 3, 1).cpu().numpy(), ncols=len(x))
                self.add_image("val/originals_over_reconstructions", grid, step)
            else:
                frames = int(mask[0].sum()) if mask is not None else x.shape[-1]
                self._log_speech(x[:1, :, :, :frames], x_hat[:1, :, :, :frames], cfg, step)
        finally:
            model.train(was_training)

    def _log_speech(self, x: torch.Tensor, x_hat: torch.Tensor, cfg, step: int) -> None:
        """``x``, ``x_hat``: (1, 1, n_mels, T) on the model's scale, real frames only."""
        mel, mel_hat = x[0, 0].float().cpu(), x_hat[0, 0].float().cpu()
        lo, hi = float(min(mel.min(), mel_hat.min())), float(max(mel.max(), mel_hat.max()))
        spec = torch.cat([mel_hat, mel], dim=0).flip(0)  # original on top, low bands down
        self.add_image("val/mel_original_over_reconstruction",
                       ((spec - lo) / max(hi - lo, 1e-9)).numpy(), step)
        a = cfg.audio
        if a.normalization == "fixed_db":
            from vqkit.audio.pipeline import model_output_to_wav

            frames = mel.shape[-1]
            info = {"n_frames": frames, "n_samples": (frames - 1) * a.hop_length, "stats": None}
            self.add_audio("val/reconstruction", model_output_to_wav(x_hat.cpu(), a, info),
                           step, a.sample_rate)

    def flush(self) -> None:
        self.backend.flush()

    def close(self) -> None:
        self.backend.close()


def make_writer(run_dir: str | Path) -> TensorBoardWriter:
    """A writer logging to ``RUN_DIR/tensorboard``.

    Raises
    ------
    VQKitError
        When the ``tensorboard`` package is not installed.
    """
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise VQKitError("--tensorboard needs the tensorboard package: "
                         "pip install 'vqkit[tensorboard]'") from None
    return TensorBoardWriter(Path(run_dir) / LOG_DIR)
