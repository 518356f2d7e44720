"""Residual vector quantization: a stack of vector quantizers, each quantizing what the ones
before it left over (Zeghidour et al. 2021, SoundStream), with quantizer dropout so that one
model serves several bitrates.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from vqkit.distributed import all_reduce_sum_, broadcast_, is_distributed
from vqkit.quantizers.base import (
    Quantizer,
    QuantizerOutput,
    channels_first,
    channels_last,
    full_precision,
    rotate_to,
    straight_through,
)
from vqkit.quantizers.stats import code_statistics
from vqkit.quantizers.vq import VectorQuantizer
from vqkit.rates import bits_per_code


class ResidualVectorQuantizer(Quantizer):
    """Residual vector quantizer.

    Parameters
    ----------
    dim : int
        Channels of the input features.
    codebook_size : int
        Codes K per stage.
    num_quantizers : int >= 1
        Stages N; codes have shape (B, *S, N) and cost ``N * log2(K)`` bits per position.
    quantizer_dropout : float in [0, 1]
        Probability that a training batch uses only the first n stages, n uniform in [1, N].
    codebook_dim : int, optional
        Dimension the stages work in; when it differs from ``dim``, learned linear projections
        (shared by all stages) map in and out of it.
    rotation_trick : bool
        Pass the gradient from the summed codes to the input with the rotation trick instead of
        straight-through.
    usage_window : int
        Training batches counted by :meth:`window_usage` (and by each stage's own window).
    **vq_kwargs
        Other options of every stage's :class:`VectorQuantizer` (EMA, k-means init, dead-code
        restart, cosine, loss weights).

    Notes
    -----
    Each stage's output is detached before it is subtracted from the residual and summed; the
    input gets the gradient of the sum once, through one estimator for the whole stack. The
    stages learn from their own losses (codebook and commitment; the commitment terms reach the
    input through the residuals).
    """

    stage_axis = True  # codes (B, *S, N), also for N = 1

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        *,
        num_quantizers: int = 2,
        quantizer_dropout: float = 0.0,
        codebook_dim: int | None = None,
        rotation_trick: bool = False,
        usage_window: int = 100,
        **vq_kwargs: Any,
    ) -> None:
        super().__init__()
        if num_quantizers < 1:
            raise ValueError(f"num_quantizers must be >= 1, got {num_quantizers}")
        if not 0.0 <= quantizer_dropout <= 1.0:
            raise ValueError(f"quantizer_dropout must be in [0, 1], got {quantizer_dropout}")
        self.dim = dim
        self.codebook_size = codebook_size
        self.codebook_dim = codebook_dim or dim
        self.num_quantizers = num_quantizers
        self.quantizer_dropout = quantizer_dropout
        self.rotation_trick = rotation_trick

        self._init_projections(dim, self.codebook_dim)
        self.stages = nn.ModuleList(
            VectorQuantizer(self.codebook_dim, codebook_size, usage_window=usage_window,
                            **vq_kwargs)
            for _ in range(num_quantizers)
        )
        self._init_usage_window(usage_window)
        self.active_stages: int | None = None  # set by use_stages(); not part of the weights

    def use_stages(self, n: int | None) -> None:
        """Quantize with the first ``n`` stages outside training (eval forward, encode and the
        rate of :attr:`bits_per_code`); None: all of them. Training ignores it."""
        if n is not None:
            self._check_num_stages(n)
        self.active_stages = n

    @property
    def stages_used(self) -> int:
        """Stages of eval forward and encode: :meth:`use_stages`'s n, else all N."""
        return self.active_stages or self.num_quantizers

    @property
    def bits_per_code(self) -> float:
        """Bits of one code position over the stages used: ``stages_used * log2(K)``."""
        return bits_per_code(self.codebook_size, self.stages_used)

    def _num_stages_for_batch(self, device: torch.device) -> int:
        """Outside training :attr:`stages_used`; in training N, or with probability
        ``quantizer_dropout`` a uniform n in [1, N] from torch's global generator (seeded by
        the run's seed; drawn on rank 0, so that every rank trains the same stages)."""
        if not self.training:
            return self.stages_used
        if self.quantizer_dropout == 0 or self.num_quantizers == 1:
            return self.num_quantizers
        n = self.num_quantizers
        if float(torch.rand(())) < self.quantizer_dropout:  # CPU generator: no device sync
            n = int(torch.randint(1, self.num_quantizers + 1, ()))
        if not is_distributed():
            return n
        return int(broadcast_(torch.tensor(n, device=device)))  # every rank uses rank 0's n

    def _check_num_stages(self, n: int) -> None:
        if not 1 <= n <= self.num_quantizers:
            raise ValueError(f"number of stages must be in [1, {self.num_quantizers}], got {n}")

    # -- interface ----------------------------------------------------------------------------
    @full_precision
    def forward(self, x: Tensor) -> QuantizerOutput:
        """Quantize ``x`` of shape (B, dim, *S); codes have shape (B, *S, n) with n = N except
        for training batches shortened by quantizer dropout."""
        n = self._num_stages_for_batch(x.device)
        z = channels_first(self.project_in(channels_last(x)))
        residual = z
        total: Tensor | None = None
        codes, outputs = [], []
        for stage in self.stages[:n]:
            out = stage(residual)
            q = out.quantized.detach()
            residual = residual - q
            # summed as decode() sums (same layout, same order): eval forward == decode(encode)
            total = q if total is None else total + q
            codes.append(out.codes)
            outputs.append(out)

        if self.training:
            with torch.no_grad():
                counts = torch.zeros(self.num_quantizers, self.codebook_size, device=x.device)
                for i, out in enumerate(outputs):
                    counts[i] = code_statistics(out.codes, self.codebook_size)[0]
                all_reduce_sum_(counts)
            self.record_usage_(counts)
            if z.requires_grad:
                total = self._estimate(z, total)

        losses: dict[str, Tensor] = {}
        for out in outputs:
            for name, value in out.losses.items():
                losses[name] = losses[name] + value if name in losses else value
        metrics = {
            "perplexity": torch.stack([o.metrics["perplexity"] for o in outputs]).mean(),
            "usage": torch.stack([o.metrics["usage"] for o in outputs]).mean(),
        }
        for i in range(self.num_quantizers):
            # A stage dropped for this batch used none of its codes.
            metrics[f"usage_stage{i}"] = (
                outputs[i].metrics["usage"] if i < n else z.new_zeros(()))
        quantized = channels_first(self.project_out(channels_last(total)))
        return QuantizerOutput(quantized, torch.stack(codes, dim=-1), losses, metrics)

    def _estimate(self, z: Tensor, total: Tensor) -> Tensor:
        """Forward value ``total``, gradient passed to ``z`` once for the whole stack."""
        if not self.rotation_trick:
            return straight_through(z, total)
        flat_z = channels_last(z).reshape(-1, self.codebook_dim)
        flat_q = channels_last(total).reshape(-1, self.codebook_dim)
        rotated = rotate_to(flat_z, flat_q).view(channels_last(z).shape)
        return channels_first(rotated)

    @torch.no_grad()
    @full_precision
    def encode(self, x: Tensor, num_quantizers: int | None = None) -> Tensor:
        """Codes (B, *S, n) of the first ``n = num_quantizers`` stages (default
        :attr:`stages_used`) for features (B, dim, *S)."""
        n = self.stages_used if num_quantizers is None else num_quantizers
        self._check_num_stages(n)
        residual = channels_first(self.project_in(channels_last(x)))
        codes = []
        for stage in self.stages[:n]:
            c = stage.encode(residual)
            residual = residual - stage.decode(c)
            codes.append(c)
        return torch.stack(codes, dim=-1)

    def decode(self, codes: Tensor) -> Tensor:
        """Features (B, dim, *S) for codes (B, *S, n) of the first n <= N stages."""
        n = codes.shape[-1]
        self._check_num_stages(n)
        total = None
        for i, stage in enumerate(self.stages[:n]):
            q = stage.decode(codes[..., i])
            total = q if total is None else total + q
        return channels_first(self.project_out(channels_last(total)))
