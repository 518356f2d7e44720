"""Batches of code sequences held in memory: the training data of a prior."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from vqkit.data.source import BatchSource

__all__ = ["CodeData"]


class CodeData(BatchSource):
    """A split's code sequences (N, L) (raster order, stages innermost; speech: padded, each
    item's first ``lengths[i]`` tokens real), class labels (N,) (-1: none) and, for speech,
    ``seconds`` (N,) of audio each item codes.

    Batches are ``(tokens (B, L_b), labels (B,), lengths (B,))`` with ``L_b`` the longest item
    of the batch. With equal lengths (images) the epoch order is a permutation drawn from
    ``(seed, epoch)`` like :class:`~vqkit.data.images.ImageData`; with varying lengths items
    are sorted by length (ties broken by that permutation) and cut into batches, whose order is
    then drawn from ``(seed, epoch)`` too, so a batch pads little and resuming at batch
    ``start`` is exact. Unshuffled (``epoch=None``): in order, or by length when they vary.
    """

    def __init__(self, tokens: torch.Tensor, labels: torch.Tensor | None = None,
                 name: str = "codes", *, lengths: torch.Tensor | None = None,
                 seconds: torch.Tensor | None = None, ids: list[str] | None = None) -> None:
        if tokens.dim() != 2:
            raise ValueError(f"{name}: expected (N, L) tokens, got {tuple(tokens.shape)}")
        self.tokens = tokens
        n = tokens.shape[0]
        self.labels = labels if labels is not None else torch.full((n,), -1, dtype=torch.long)
        self.lengths = (lengths.long() if lengths is not None
                        else torch.full((n,), tokens.shape[1], dtype=torch.long))
        self.seconds = seconds
        self.ids = ids
        self.name = name

    def __len__(self) -> int:
        return self.tokens.shape[0]

    @property
    def varying(self) -> bool:
        """Items of different lengths (speech)."""
        return bool(len(self)) and bool((self.lengths != self.lengths[0]).any())

    @property
    def n_codes(self) -> int:
        """Real tokens in the split."""
        return int(self.lengths.sum())

    def subset(self, n: int) -> CodeData:
        """The first ``n`` items."""
        return CodeData(self.tokens[:n], self.labels[:n], self.name, lengths=self.lengths[:n],
                        seconds=None if self.seconds is None else self.seconds[:n],
                        ids=None if self.ids is None else self.ids[:n])

    def to(self, device: torch.device) -> CodeData:
        return CodeData(self.tokens.to(device), self.labels.to(device), self.name,
                        lengths=self.lengths, seconds=self.seconds, ids=self.ids)

    def batch_order(self, batch_size: int, epoch: int | None, seed: int) -> torch.Tensor:
        n = len(self)
        perm = None
        if epoch is not None:
            g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            perm = torch.randperm(n, generator=g)
        if not self.varying:
            return torch.arange(n) if perm is None else perm
        base = torch.arange(n) if perm is None else perm
        order = base[torch.sort(self.lengths[base], stable=True).indices]
        if perm is None:
            return order
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch + 7_919)
        batches = list(order.split(batch_size))
        shuffled = torch.randperm(len(batches), generator=g)
        return torch.cat([batches[i] for i in shuffled.tolist()])

    def batches(self, batch_size: int, *, epoch: int | None = None, seed: int = 0,
                start: int = 0, rank: int = 0,
                world_size: int = 1) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(tokens (B, L_b) int64, labels (B,) int64, lengths (B,) int64) batches."""
        order = self.batch_order(batch_size, epoch, seed)
        n = len(self)
        for b in range(start, self.num_batches(batch_size)):
            lo, hi = b * batch_size, min((b + 1) * batch_size, n)
            idx = order[lo:hi][rank::world_size]
            lengths = self.lengths[idx]
            width = int(lengths.max()) if len(idx) else 0
            idx = idx.to(self.tokens.device)
            yield (self.tokens[idx, :width].long(), self.labels[idx].long(),
                   lengths.to(self.tokens.device))
