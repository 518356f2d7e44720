"""Temporal VQ-VAE for mel spectrograms: 1-D convolutions over time with the mel bins as
channels, so that one code (per residual stage) describes a whole time step of the code grid
(SoundStream-style speech tokens) instead of a 4x4 tile.

The model takes plain tensors (B, n_mels, T), or the pipeline's (B, 1, n_mels, T), and returns
the same layout. Any T works: it is padded (edge frames) to a multiple of the stride for the
convolutions and the output cropped back to T, so no frame is lost or invented.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vqkit.config import ModelConfig, QuantizerConfig
from vqkit.models.search import CodeSearch
from vqkit.quantizers import Quantizer, QuantizerOutput, build_quantizer

__all__ = ["TemporalVQVAE"]


class Residual1d(nn.Module):
    """x + conv1x1(relu(dilated conv3(relu(x))))."""

    def __init__(self, channels: int, residual_channels: int, dilation: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ReLU(),
            nn.Conv1d(channels, residual_channels, 3, padding=dilation, dilation=dilation),
            nn.ReLU(),
            nn.Conv1d(residual_channels, channels, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


def _stack(channels: int, residual_channels: int, num_layers: int) -> list[nn.Module]:
    """Residual layers with dilations 1, 3, 9, ... (a wide receptive field in time)."""
    return [Residual1d(channels, residual_channels, 3 ** i) for i in range(num_layers)]


class TemporalVQVAE(nn.Module):
    """1-D encoder, quantizer, decoder over time; the stride in time is
    ``2 ** cfg.num_downsamples`` and the mel bins (``n_mels``) are the input channels.

    ``forward(x)`` returns ``(reconstruction, quantizer_output)``; codes have shape (B, T', K)
    for (B, n_mels, T) inputs and (B, 1, T', K) for (B, 1, n_mels, T) inputs (K residual
    stages; no K axis for a single-stage quantizer), with ``T' = ceil(T / stride)``.
    """

    code_rows = 1  # code positions per time step of the code grid

    def __init__(self, model: ModelConfig, quantizer: QuantizerConfig | Quantizer,
                 n_mels: int) -> None:
        super().__init__()
        self.config, self.n_mels = model, n_mels
        h, r, n = model.hidden_channels, model.residual_channels, model.num_residual_layers
        enc: list[nn.Module] = [nn.Conv1d(n_mels, h, 7, padding=3), *_stack(h, r, n)]
        for _ in range(model.num_downsamples):
            enc += [nn.ReLU(), nn.Conv1d(h, h, 4, stride=2, padding=1), *_stack(h, r, n)]
        enc += [nn.ReLU(), nn.Conv1d(h, model.dim, 1)]
        self.encoder = nn.Sequential(*enc)
        self.quantizer = (
            quantizer if isinstance(quantizer, Quantizer) else build_quantizer(quantizer, model.dim)
        )
        dec: list[nn.Module] = [nn.Conv1d(model.dim, h, 3, padding=1), *_stack(h, r, n)]
        for _ in range(model.num_downsamples):
            dec += [nn.ReLU(), nn.ConvTranspose1d(h, h, 4, stride=2, padding=1), *_stack(h, r, n)]
        dec += [nn.ReLU(), nn.Conv1d(h, n_mels, 7, padding=3)]
        self.decoder = nn.Sequential(*dec)
        self.search: CodeSearch | None = None  # set by load_model; used in eval mode only

    @property
    def downsampling(self) -> int:
        """Frames per code time step (the stride in time)."""
        return 2 ** self.config.num_downsamples

    def _flat(self, x: Tensor) -> tuple[Tensor, bool]:
        """(B, n_mels, T) from either layout, and whether the input had the channel axis."""
        four = x.dim() == 4
        if four and x.shape[1] != 1 or x.dim() not in (3, 4) or x.shape[-2] != self.n_mels:
            raise ValueError(f"expected input of shape (B, {self.n_mels}, T) or "
                             f"(B, 1, {self.n_mels}, T), got {tuple(x.shape)}")
        return (x[:, 0] if four else x).contiguous(), four

    def _encode_features(self, x: Tensor) -> tuple[Tensor, int, bool]:
        flat, four = self._flat(x)
        t = flat.shape[-1]
        pad = -t % self.downsampling
        if pad:
            flat = F.pad(flat, (0, pad), mode="replicate")
        return self.encoder(flat), t, four

    def _searched(self, x: Tensor, lengths: Tensor | None) -> tuple[Tensor, int, bool]:
        """Encoder features, moved by the code search in eval mode when one is set."""
        z, t, four = self._encode_features(x)
        if self.search is not None and not self.training:
            q = self.quantizer
            z = self.search(z, x, lambda f: q.decode(q.encode(f)),
                            lambda f: self._decode_features(f, t, four), lengths)
        return z, t, four

    def _decode_features(self, z: Tensor, t: int | None, four: bool) -> Tensor:
        y = self.decoder(z)
        if t is not None:
            y = y[..., :t]
        return y[:, None] if four else y

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, QuantizerOutput]:
        """``lengths``: real frames per item, for the code search only."""
        z, t, four = self._searched(x, lengths)
        out = self.quantizer(z)
        if four:
            out.codes = out.codes[:, None]
        return self._decode_features(out.quantized, t, four), out

    @torch.no_grad()
    def encode(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        z, _, four = self._searched(x, lengths)
        codes = self.quantizer.encode(z)
        return codes[:, None] if four else codes

    @torch.no_grad()
    def decode(self, codes: Tensor, length: int | None = None) -> Tensor:
        """Mel (B, n_mels, T) or (B, 1, n_mels, T) (as the codes came) of ``T' * stride``
        frames, or ``length`` frames when given."""
        stage_axis = int(self.quantizer.stage_axis)
        four = codes.dim() == 3 + stage_axis
        if four:
            codes = codes[:, 0]
        return self._decode_features(self.quantizer.decode(codes), length, four)
