"""Frame codes from 2-D convolutions: the thesis's 2-D encoder and decoder over the mel
spectrogram (sharing weights across frequency), with the code grid's frequency axis folded
into one vector per code frame, so that one code per residual stage describes a whole code
frame (like the temporal model) instead of one 4x4 tile.

Inputs, codes and outputs have the temporal model's layouts (:class:`TemporalVQVAE`): the
stride in time (and in frequency) is ``2 ** num_downsamples``; ``n_mels`` must be divisible
by it.
"""

from __future__ import annotations

import dataclasses

from torch import Tensor, nn

from vqkit.config import ModelConfig
from vqkit.models.temporal import TemporalVQVAE
from vqkit.models.vqvae import Decoder, Encoder

__all__ = ["FrameVQVAE"]

FEATURES = 32  # channels per frequency row of the 2-D code grid, before folding


def _plane(model: ModelConfig) -> ModelConfig:
    """The 2-D encoder/decoder's config: one input channel, FEATURES output channels."""
    return dataclasses.replace(model, in_channels=1, dim=FEATURES)


class _FoldEncoder(nn.Module):
    def __init__(self, model: ModelConfig, n_mels: int) -> None:
        super().__init__()
        rows = n_mels // 2 ** model.num_downsamples
        self.net = Encoder(_plane(model))
        self.fold = nn.Conv1d(FEATURES * rows, model.dim, 1)

    def forward(self, x: Tensor) -> Tensor:  # (B, n_mels, T) -> (B, dim, T')
        y = self.net(x[:, None])
        return self.fold(y.flatten(1, 2))


class _UnfoldDecoder(nn.Module):
    def __init__(self, model: ModelConfig, n_mels: int) -> None:
        super().__init__()
        self.rows = n_mels // 2 ** model.num_downsamples
        self.unfold = nn.Conv1d(model.dim, FEATURES * self.rows, 3, padding=1)
        self.net = Decoder(_plane(model))

    def forward(self, z: Tensor) -> Tensor:  # (B, dim, T') -> (B, n_mels, T' * stride)
        y = self.unfold(z)
        y = y.reshape(y.shape[0], FEATURES, self.rows, y.shape[-1])
        return self.net(y)[:, 0]


class FrameVQVAE(TemporalVQVAE):
    """2-D convolutions, one code vector per code frame (``model.kind = "frames"``)."""

    def __init__(self, model: ModelConfig, quantizer, n_mels: int) -> None:
        f = 2 ** model.num_downsamples
        if n_mels % f:
            raise ValueError(f"n_mels ({n_mels}) must be divisible by 2 ** num_downsamples ({f})")
        super().__init__(model, quantizer, n_mels)

    @staticmethod
    def build_encoder(model: ModelConfig, n_mels: int) -> nn.Module:
        return _FoldEncoder(model, n_mels)

    @staticmethod
    def build_decoder(model: ModelConfig, n_mels: int) -> nn.Module:
        return _UnfoldDecoder(model, n_mels)
