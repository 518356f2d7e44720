"""Batches from a uint8 image tensor held in memory: no per-image Python objects."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from vqkit.data.source import BatchSource


def images_to_model_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W) in [0, 255] -> float32 in [-0.5, 0.5] (the thesis's scaling)."""
    return images.float().div_(255.0).sub_(0.5)


def model_output_to_unit(x: torch.Tensor) -> torch.Tensor:
    """Model scale [-0.5, 0.5] -> pixel scale [0, 1], clamped."""
    return (x + 0.5).clamp_(0.0, 1.0)


class ImageData(BatchSource):
    """A split of images as one uint8 tensor (N, C, H, W), batched by indexing.

    The order of a training epoch is a permutation drawn from ``(seed, epoch)``, so an
    interrupted epoch can be resumed at any batch with the same order.
    """

    def __init__(self, images: torch.Tensor, name: str = "images", *,
                 labels: torch.Tensor | None = None,
                 class_names: list[str] | None = None) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"{name}: expected uint8 (N, C, H, W), got {images.dtype} "
                             f"{tuple(images.shape)}")
        if labels is not None and labels.shape != (images.shape[0],):
            raise ValueError(f"{name}: {tuple(labels.shape)} labels for {images.shape[0]} images")
        self.images = images
        self.name = name
        self.labels = labels  # (N,) int64 class indices into class_names, or None
        self.class_names = class_names

    def __len__(self) -> int:
        return self.images.shape[0]

    def to(self, device: torch.device) -> ImageData:
        """Keep the uint8 tensor on ``device`` (on a GPU, batches are then gathered there)."""
        return ImageData(self.images.to(device), self.name, labels=self.labels,
                         class_names=self.class_names)

    def epoch_order(self, epoch: int, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        return torch.randperm(len(self), generator=g)

    def batches(
        self,
        batch_size: int,
        *,
        epoch: int | None = None,
        seed: int = 0,
        start: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> Iterator[torch.Tensor]:
        """Float batches (B, C, H, W) in [-0.5, 0.5]: shuffled by ``(seed, epoch)`` when epoch is
        given, in order otherwise; beginning at batch ``start``; each rank takes its share."""
        order = self.epoch_order(epoch, seed) if epoch is not None else None
        n = len(self)
        for b in range(start, self.num_batches(batch_size)):
            lo, hi = b * batch_size, min((b + 1) * batch_size, n)
            if order is None:
                idx = torch.arange(lo, hi)[rank::world_size]
            else:
                idx = order[lo:hi][rank::world_size]
            yield images_to_model_input(self.images[idx.to(self.images.device)])
