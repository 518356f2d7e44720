"""Convolutional VQ-VAE for images (B, C, H, W) and mel spectrograms (B, 1, n_mels, T)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vqkit.config import ModelConfig, QuantizerConfig
from vqkit.models.search import CodeSearch
from vqkit.quantizers import Quantizer, QuantizerOutput, build_quantizer


class Residual(nn.Module):
    """x + conv1x1(relu(conv3x3(relu(x)))) (the thesis's residual layer)."""

    def __init__(self, channels: int, residual_channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, residual_channels, 3, padding=1, bias=False),
            nn.ReLU(),
            nn.Conv2d(residual_channels, channels, 1, bias=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


def residual_stack(channels: int, residual_channels: int, num_layers: int) -> nn.Sequential:
    """``num_layers`` residual layers followed by a ReLU."""
    layers: list[nn.Module] = [Residual(channels, residual_channels) for _ in range(num_layers)]
    return nn.Sequential(*layers, nn.ReLU())


class Encoder(nn.Module):
    """Strided 4x4 convs (each halves H and W), a 3x3 conv, a residual stack, then 1x1 to dim."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        h = cfg.hidden_channels
        layers: list[nn.Module] = []
        in_ch = cfg.in_channels
        for i in range(cfg.num_downsamples):
            out_ch = h // 2 if i < cfg.num_downsamples - 1 else h
            layers += [nn.Conv2d(in_ch, out_ch, 4, stride=2, padding=1), nn.ReLU()]
            in_ch = out_ch
        layers += [nn.Conv2d(in_ch, h, 3, padding=1)]
        layers += [residual_stack(h, cfg.residual_channels, cfg.num_residual_layers)]
        layers += [nn.Conv2d(h, cfg.dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Decoder(nn.Module):
    """3x3 conv from dim, a residual stack, then transposed 4x4 convs (each doubles H and W)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        h = cfg.hidden_channels
        layers: list[nn.Module] = [
            nn.Conv2d(cfg.dim, h, 3, padding=1),
            residual_stack(h, cfg.residual_channels, cfg.num_residual_layers),
        ]
        in_ch = h
        for i in range(cfg.num_downsamples):
            last = i == cfg.num_downsamples - 1
            out_ch = cfg.in_channels if last else h // 2
            layers.append(nn.ConvTranspose2d(in_ch, out_ch, 4, stride=2, padding=1))
            if not last:
                layers.append(nn.ReLU())
            in_ch = out_ch
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class VQVAE(nn.Module):
    """Encoder, quantizer, decoder. Fully convolutional: any H and W divisible by
    ``2 ** num_downsamples`` work.

    ``forward(x)`` returns ``(reconstruction, quantizer_output)``; ``encode`` maps inputs to
    codes (B, H', W') (or (B, H', W', K) for residual VQ) and ``decode`` maps codes back.
    """

    def __init__(self, model: ModelConfig, quantizer: QuantizerConfig | Quantizer) -> None:
        super().__init__()
        self.config = model
        self.encoder = Encoder(model)
        self.quantizer = (
            quantizer if isinstance(quantizer, Quantizer) else build_quantizer(quantizer, model.dim)
        )
        self.decoder = Decoder(model)
        self.search: CodeSearch | None = None  # set by load_model; used in eval mode only

    @property
    def downsampling(self) -> int:
        """Factor by which each spatial axis shrinks from input to code grid."""
        return 2 ** self.config.num_downsamples

    def check_input(self, x: Tensor) -> None:
        """Raise ValueError for inputs the model cannot take."""
        c = self.config.in_channels
        if x.dim() != 4 or x.shape[1] != c:
            raise ValueError(f"expected input of shape (B, {c}, H, W), got {tuple(x.shape)}")
        f = self.downsampling
        if x.shape[2] % f or x.shape[3] % f:
            raise ValueError(
                f"height and width must be divisible by {f}, got {x.shape[2]}x{x.shape[3]}")

    def _latents(self, x: Tensor, lengths: Tensor | None) -> Tensor:
        z = self.encoder(x)
        if self.search is None or self.training:
            return z
        return self.search(z, x, self._nearest, self.decoder, lengths)

    def _nearest(self, z: Tensor) -> Tensor:
        return self.quantizer.decode(self.quantizer.encode(z))

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, QuantizerOutput]:
        """``lengths``: real columns (mel frames) per item, for the code search only."""
        self.check_input(x)
        out = self.quantizer(self._latents(x, lengths))
        return self.decoder(out.quantized), out

    @torch.no_grad()
    def encode(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        self.check_input(x)
        return self.quantizer.encode(self._latents(x, lengths))

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        return self.decoder(self.quantizer.decode(codes))


def build_model(model: ModelConfig, quantizer: QuantizerConfig) -> VQVAE:
    return VQVAE(model, quantizer)
