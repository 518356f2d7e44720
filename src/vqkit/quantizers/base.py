"""The interface every quantizer shares, and the gradient estimators they pick from.

Every quantizer takes channel-first features ``(B, D, *S)`` (``S`` = spatial or time axes) and
returns a :class:`QuantizerOutput`; ``encode`` gives integer codes and ``decode`` turns codes
back into features, so that in eval ``forward(x).quantized == decode(encode(x))``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vqkit.rates import bits_per_code


@dataclass
class QuantizerOutput:
    """What a quantizer returns.

    Attributes
    ----------
    quantized : Tensor, shape (B, D, *S)
        The quantized features; in training the gradient reaches the input through the
        chosen estimator (straight-through or rotation trick).
    codes : Tensor of int64, shape (B, *S) or (B, *S, K) for K residual stages
        Indices in ``[0, codebook_size)``.
    losses : dict of str to scalar Tensor
        Named, already weighted loss terms (``codebook``, ``commitment``); add them to the
        reconstruction loss.
    metrics : dict of str to scalar Tensor
        Detached statistics of this batch: ``perplexity`` and ``usage`` (fraction of the
        codebook used).
    """

    quantized: Tensor
    codes: Tensor
    losses: dict[str, Tensor] = field(default_factory=dict)
    metrics: dict[str, Tensor] = field(default_factory=dict)

    @property
    def loss(self) -> Tensor:
        """Sum of the loss terms (0 when there are none)."""
        total = self.quantized.new_zeros(())
        for v in self.losses.values():
            total = total + v
        return total


def full_precision(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run a quantizer method in float32 with autocast off: under bf16 autocast, distances,
    code choices and codebook updates stay in full precision (the encoder and decoder around
    them run in bf16). Without autocast the input passes through untouched."""

    @functools.wraps(method)
    def wrapper(self: Any, x: Tensor, *args: Any, **kwargs: Any) -> Any:
        if not torch.is_autocast_enabled(x.device.type):
            return method(self, x, *args, **kwargs)
        with torch.autocast(x.device.type, enabled=False):
            return method(self, x.float(), *args, **kwargs)

    return wrapper


def straight_through(x: Tensor, q: Tensor) -> Tensor:
    """Forward value ``q``, gradient copied to ``x`` unchanged (van den Oord et al. 2017)."""
    return x + (q - x).detach()


def rotate_to(src: Tensor, tgt: Tensor, eps: float = 1e-6) -> Tensor:
    """Rotation trick (Fifty et al. 2024, arXiv 2410.06424, Eq. 4-5).

    Returns, for each row, ``tgt`` as the forward value, computed as ``s * R @ src`` where ``R``
    rotates ``src``'s direction onto ``tgt``'s and ``s = |tgt| / |src|``; ``R`` and ``s`` are
    treated as constants, so the gradient reaching ``src`` is the output gradient rotated back
    and rescaled rather than copied.

    Parameters
    ----------
    src, tgt : Tensor, shape (N, D)
    """
    src_norm = src.norm(dim=-1, keepdim=True).clamp_min(eps)
    tgt_norm = tgt.norm(dim=-1, keepdim=True).clamp_min(eps)
    u = (src / src_norm).detach()
    q = (tgt / tgt_norm).detach()
    w = F.normalize(u + q, dim=-1, eps=eps).detach()
    # R x = x - 2 w (w.x) + 2 q (u.x): the Householder form of the rotation from u to q.
    rotated = (
        src
        - 2 * (src * w).sum(-1, keepdim=True) * w
        + 2 * (src * u).sum(-1, keepdim=True) * q
    )
    return rotated * (tgt_norm / src_norm).detach()


def channels_last(x: Tensor) -> Tensor:
    """(B, D, *S) -> (B, *S, D)."""
    return x.movedim(1, -1)


def channels_first(x: Tensor) -> Tensor:
    """(B, *S, D) -> (B, D, *S)."""
    return x.movedim(-1, 1)


class Quantizer(nn.Module):
    """Base class: subclasses set ``dim``, ``codebook_size`` and ``num_quantizers`` and implement
    ``forward``, ``encode`` and ``decode``; the base keeps a sliding window of code counts."""

    dim: int
    codebook_size: int  # distinct codes per stage
    num_quantizers: int = 1
    # whether codes carry a trailing axis of stages (residual quantizers, even of one stage)
    stage_axis: bool = False

    def _init_projections(self, dim: int, codebook_dim: int) -> None:
        """``project_in`` (dim -> codebook_dim) and ``project_out`` (back): learned linear maps
        when the two differ, identities otherwise."""
        needs = codebook_dim != dim
        self.project_in = nn.Linear(dim, codebook_dim) if needs else nn.Identity()
        self.project_out = nn.Linear(codebook_dim, dim) if needs else nn.Identity()

    def _init_usage_window(self, usage_window: int) -> None:
        k = max(1, self.num_quantizers)
        self.register_buffer(
            "window_counts", torch.zeros(max(1, usage_window), k, self.codebook_size),
            persistent=False,
        )
        self.window_pos = 0  # a Python int: reading a device counter would wait for the device

    @torch.no_grad()
    def record_usage_(self, counts: Tensor) -> None:
        """Add one batch's counts, shape (num_quantizers, codebook_size), to the window."""
        if not hasattr(self, "window_counts"):
            return
        self.window_counts[self.window_pos % self.window_counts.shape[0]] = counts
        self.window_pos += 1

    def window_usage(self) -> float:
        """Fraction of codes used over the last ``usage_window`` training batches (mean over
        stages)."""
        used = (self.window_counts.sum(0) > 0).float().mean(-1)
        return float(used.mean())

    @property
    def bits_per_code(self) -> float:
        """Bits to store the codes of one position (all stages)."""
        return bits_per_code(self.codebook_size, self.num_quantizers)

    def forward(self, x: Tensor) -> QuantizerOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def encode(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def decode(self, codes: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError
