"""The interface the training loop and evaluation read data through."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import torch

Batch = torch.Tensor | tuple[torch.Tensor, torch.Tensor]  # data, or (data, mask of real positions)


@runtime_checkable
class BatchSource(Protocol):
    """A split held in memory and batched by indexing (:class:`~vqkit.data.images.ImageData`,
    :class:`~vqkit.data.speech.SpeechData` subclass it and inherit :meth:`num_batches`)."""

    def __len__(self) -> int: ...

    def num_batches(self, batch_size: int) -> int:
        """Batches per epoch, the last one possibly short."""
        return -(-len(self) // batch_size)

    def batches(self, batch_size: int, *, epoch: int | None = None, seed: int = 0,
                start: int = 0, rank: int = 0, world_size: int = 1) -> Iterator[Batch]:
        """Batches shuffled by ``(seed, epoch)`` when ``epoch`` is given, in a fixed order
        otherwise; beginning at batch ``start``; rank ``rank`` of ``world_size`` takes its share
        of every batch."""
        ...
