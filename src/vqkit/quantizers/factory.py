"""Build the quantizer a config names."""

from __future__ import annotations

from vqkit.config import QuantizerConfig
from vqkit.errors import ConfigError
from vqkit.quantizers.base import Quantizer
from vqkit.quantizers.fsq import FiniteScalarQuantizer
from vqkit.quantizers.rvq import ResidualVectorQuantizer
from vqkit.quantizers.vq import VectorQuantizer


def vq_kwargs(cfg: QuantizerConfig) -> dict:
    """Keyword options of :class:`VectorQuantizer` taken from the config."""
    return dict(
        codebook_dim=cfg.codebook_dim or None,
        commitment_weight=cfg.commitment_weight,
        codebook_weight=cfg.codebook_weight,
        ema_decay=cfg.ema_decay,
        kmeans_init=cfg.kmeans_init,
        kmeans_iters=cfg.kmeans_iters,
        dead_code_threshold=cfg.dead_code_threshold,
        cosine=cfg.cosine,
        rotation_trick=cfg.rotation_trick,
        usage_window=cfg.usage_window,
    )


def build_quantizer(cfg: QuantizerConfig, dim: int) -> Quantizer:
    """A quantizer for features with ``dim`` channels, as ``cfg.kind`` says."""
    try:
        if cfg.kind == "vq":
            return VectorQuantizer(dim, cfg.codebook_size, **vq_kwargs(cfg))
        if cfg.kind == "fsq":
            return FiniteScalarQuantizer(dim, cfg.levels, usage_window=cfg.usage_window)
        if cfg.kind == "rvq":
            return ResidualVectorQuantizer(
                dim,
                cfg.codebook_size,
                num_quantizers=cfg.num_quantizers,
                quantizer_dropout=cfg.quantizer_dropout,
                **vq_kwargs(cfg),
            )
    except ValueError as e:
        raise ConfigError(f"quantizer: {e}") from None
    raise ConfigError(f"quantizer.kind: unknown {cfg.kind!r} (known: vq, fsq, rvq)")
