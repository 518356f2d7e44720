"""Batches of code sequences held in memory: the training data of a prior."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from vqkit.data.source import BatchSource

__all__ = ["CodeData"]


class CodeData(BatchSource):
    """A split's code sequences (N, L) (raster order, stages innermost) and class labels (N,)
    (-1: none), batched by indexing; epoch order drawn from ``(seed, epoch)`` like
    :class:`~vqkit.data.images.ImageData`."""

    def __init__(self, tokens: torch.Tensor, labels: torch.Tensor | None = None,
                 name: str = "codes") -> None:
        if tokens.dim() != 2:
            raise ValueError(f"{name}: expected (N, L) tokens, got {tuple(tokens.shape)}")
        self.tokens = tokens
        self.labels = (labels if labels is not None
                       else torch.full((tokens.shape[0],), -1, dtype=torch.long))
        self.name = name

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def to(self, device: torch.device) -> CodeData:
        return CodeData(self.tokens.to(device), self.labels.to(device), self.name)

    def batches(self, batch_size: int, *, epoch: int | None = None, seed: int = 0,
                start: int = 0, rank: int = 0,
                world_size: int = 1) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(tokens (B, L) int64, labels (B,) int64) batches."""
        order = None
        if epoch is not None:
            g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            order = torch.randperm(len(self), generator=g)
        n = len(self)
        for b in range(start, self.num_batches(batch_size)):
            lo, hi = b * batch_size, min((b + 1) * batch_size, n)
            idx = (torch.arange(lo, hi) if order is None else order[lo:hi])[rank::world_size]
            idx = idx.to(self.tokens.device)
            yield self.tokens[idx].long(), self.labels[idx].long()
