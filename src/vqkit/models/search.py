"""Analysis-by-synthesis code search: pick the codes whose decoding is best, not the codes
nearest the encoder's output.

The quantizer picks the codes nearest the encoder's latents; on inputs unlike the training
data (a speaker the model never heard) that choice can be far from the best the decoder can do
with the same codes. :class:`CodeSearch` starts from the encoder's latents, takes ``steps``
Adam steps on them, each decoding their quantization (straight-through, as in training) and
descending a per-item objective, and returns for every item the latents whose quantization
scored best, the encoder's own among them: never worse than plain encoding by that objective.
The decoder, the code format and the bit rate are unchanged; only encoding costs more
(``steps`` decoder passes forward and back).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from vqkit.audio.intelligibility import MelStoi, model_scale_to_db
from vqkit.config import RunConfig
from vqkit.errors import ConfigError

__all__ = ["CodeSearch", "search_for", "search_objective"]

# (x_hat, x, lengths) -> loss per item, shape (B,); lengths: real frames (last axis) per item
Objective = Callable[[Tensor, Tensor, "Tensor | None"], Tensor]


@dataclass
class CodeSearch:
    """``search(z, x, quantize, decode, lengths)`` -> latents of ``z``'s shape.

    ``quantize(z)`` returns the quantized latents (no gradient needed) and ``decode(zq)`` the
    model's output for ``x``; ``objective(x_hat, x, lengths)`` the loss of each item (B,) over
    its first ``lengths[i]`` frames (the last axis; None: all). Items do not interact.
    """

    steps: int
    lr: float
    objective: Objective

    def __call__(self, z: Tensor, x: Tensor, quantize: Callable[[Tensor], Tensor],
                 decode: Callable[[Tensor], Tensor], lengths: Tensor | None = None) -> Tensor:
        best_z = z.detach().clone()
        with torch.enable_grad():
            z = best_z.clone().requires_grad_(True)
            opt = torch.optim.Adam([z], lr=self.lr)
            best: Tensor | None = None
            for step in range(self.steps + 1):
                with torch.no_grad():
                    zq = quantize(z)
                loss = self.objective(decode(z + (zq - z).detach()), x, lengths)
                with torch.no_grad():
                    if best is None:
                        best = loss.detach().clone()
                    else:
                        better = loss < best
                        best = torch.where(better, loss, best)
                        best_z[better] = z[better]
                if step == self.steps:
                    break
                (z.grad,) = torch.autograd.grad(loss.sum(), [z])
                opt.step()
        return best_z


def search_objective(cfg: RunConfig) -> Objective:
    """MSE on the model's scale (the training loss) per item, plus ``search.stoi_weight`` x
    (1 - :class:`~vqkit.audio.intelligibility.MelStoi`) for speech runs."""
    w = cfg.search.stoi_weight

    def mse(x_hat: Tensor, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        err = (x_hat - x) ** 2
        if lengths is None:
            return err.flatten(1).mean(1)
        real = torch.arange(x.shape[-1], device=x.device) < lengths.to(x.device)[:, None]
        real = real.reshape(len(x), *[1] * (x.dim() - 2), x.shape[-1]).expand_as(err)
        return (err * real).flatten(1).sum(1) / real.flatten(1).sum(1).clamp(min=1)

    if not w:
        return mse
    if cfg.task != "speech":
        raise ConfigError(f"search.stoi_weight ({w:g}) scores speech; a {cfg.task} run takes 0")
    stoi = MelStoi(cfg.audio)

    def mse_and_stoi(x_hat: Tensor, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        a = cfg.audio
        score = stoi(model_scale_to_db(x_hat, a), model_scale_to_db(x, a), lengths)
        return mse(x_hat, x, lengths) + w * (1 - score)

    return mse_and_stoi


def search_for(cfg: RunConfig, steps: int | None = None) -> CodeSearch | None:
    """The code search ``cfg.search`` describes (``steps`` overrides its step count); None for
    0 steps (plain nearest-code encoding)."""
    n = cfg.search.steps if steps is None else steps
    if n < 0:
        raise ConfigError(f"--search-steps must be >= 0, got {n}")
    if not n:
        return None
    return CodeSearch(n, cfg.search.lr, search_objective(cfg))
