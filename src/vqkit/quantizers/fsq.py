"""Finite scalar quantization (Mentzer et al. 2023, arXiv 2309.15505).

Each of ``len(levels)`` channels is bounded to a few values and rounded; the implicit codebook
is the grid of all combinations, ``prod(levels)`` codes, with no codebook to learn, no
codebook or commitment loss and no dead codes.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
from torch import Tensor

from vqkit.distributed import all_reduce_sum_
from vqkit.quantizers.base import (
    Quantizer,
    QuantizerOutput,
    channels_first,
    channels_last,
    full_precision,
)
from vqkit.quantizers.stats import code_statistics


def round_ste(x: Tensor) -> Tensor:
    """``round(x)`` forward, identity gradient."""
    return x + (torch.round(x) - x).detach()


class FiniteScalarQuantizer(Quantizer):
    """Finite scalar quantizer.

    Parameters
    ----------
    dim : int
        Channels of the input features.
    levels : sequence of int, each >= 2
        Number of values of each quantized channel, e.g. ``[8, 5, 5, 5]`` (1000 codes) or
        ``[8, 8, 8]`` (512 codes). When ``len(levels) != dim``, learned linear projections map
        ``dim`` channels in and out of ``len(levels)``.
    usage_window : int
        Training batches counted by :meth:`window_usage`.

    Notes
    -----
    Channel ``i`` is bounded by ``tanh`` to ``(-L_i / 2, L_i / 2)`` (shifted by half a step for
    even ``L_i`` so that rounding gives exactly ``L_i`` integers), rounded with a
    straight-through estimator in training, and divided by ``L_i // 2`` so the quantized values
    lie in ``[-1, 1]``. Codes are the mixed-radix numbers of the per-channel indices, channel 0
    being the least significant digit.
    """

    def __init__(
        self,
        dim: int,
        levels: Sequence[int],
        *,
        usage_window: int = 100,
        eps: float = 1e-3,
    ) -> None:
        super().__init__()
        levels = list(levels)
        if not levels:
            raise ValueError("levels must not be empty")
        if any(not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 2
               for n in levels):
            raise ValueError(f"levels must be integers >= 2, got {levels}")
        levels = [int(n) for n in levels]
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if not 0 <= eps < 1:
            raise ValueError(f"eps must be in [0, 1), got {eps}")
        self.dim = dim
        self.levels = levels
        self.codebook_dim = len(levels)
        self.codebook_size = math.prod(levels)
        self.eps = eps

        self._init_projections(dim, self.codebook_dim)

        basis = [math.prod(levels[:i]) for i in range(len(levels))]
        self.register_buffer("_levels", torch.tensor(levels, dtype=torch.long), persistent=False)
        self.register_buffer("_basis", torch.tensor(basis, dtype=torch.long), persistent=False)
        self._init_usage_window(usage_window)

    # -- the grid -----------------------------------------------------------------------------
    def _half_width(self) -> Tensor:
        """``L // 2`` per channel: rounded values are divided by this to land in [-1, 1]."""
        return self._levels // 2

    def bound(self, z: Tensor) -> Tensor:
        """Squash ``z`` (..., len(levels)) so that rounding gives ``L`` integers per channel:
        ``{-(L-1)/2 .. (L-1)/2}`` for odd ``L``, ``{-L/2 .. L/2 - 1}`` for even ``L``."""
        levels = self._levels.to(z.dtype)
        half_l = (levels - 1) * (1 + self.eps) / 2
        offset = torch.where(self._levels % 2 == 0, 0.5, 0.0).to(z.dtype)
        shift = torch.atanh(offset / half_l)
        return torch.tanh(z + shift) * half_l - offset

    def codes_to_vectors(self, codes: Tensor) -> Tensor:
        """Grid vectors (..., len(levels)) in [-1, 1] for integer codes (...)."""
        digits = (codes.long().unsqueeze(-1) // self._basis) % self._levels
        half = self._half_width()
        return (digits - half).to(torch.get_default_dtype()) / half

    def vectors_to_codes(self, vectors: Tensor) -> Tensor:
        """Integer codes (...) in ``[0, prod(levels))`` for grid vectors (..., len(levels))."""
        half = self._half_width()
        digits = torch.round(vectors * half).long() + half
        return (digits * self._basis).sum(-1)

    # -- interface ----------------------------------------------------------------------------
    def _quantize(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Grid vectors (B, *S, len(levels)), with the straight-through estimator in training,
        and their codes (B, *S)."""
        bounded = self.bound(self.project_in(channels_last(x)))
        rounded = round_ste(bounded) if self.training else torch.round(bounded)
        grid = rounded / self._half_width()
        return grid, self.vectors_to_codes(grid.detach())

    @full_precision
    def forward(self, x: Tensor) -> QuantizerOutput:
        """Quantize ``x`` of shape (B, dim, *S)."""
        grid, codes = self._quantize(x)
        counts, perplexity = code_statistics(codes, self.codebook_size)
        if self.training:
            all_reduce_sum_(counts)
            self.record_usage_(counts.unsqueeze(0))
        zero = grid.new_zeros(())
        losses = {"codebook": zero, "commitment": zero.clone()}
        metrics = {
            "perplexity": perplexity.detach(),
            "usage": (counts > 0).float().mean(),
        }
        return QuantizerOutput(channels_first(self.project_out(grid)), codes, losses, metrics)

    @torch.no_grad()
    @full_precision
    def encode(self, x: Tensor) -> Tensor:
        """Codes (B, *S) for features (B, dim, *S)."""
        return self._quantize(x)[1]

    def decode(self, codes: Tensor) -> Tensor:
        """Features (B, dim, *S) for codes (B, *S)."""
        return channels_first(self.project_out(self.codes_to_vectors(codes)))
