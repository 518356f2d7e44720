"""Code statistics: counts, perplexity and usage, for one batch or for a whole split.

Two precisions, on purpose:

- :func:`code_statistics` is the quantizers' per-batch statistic during training: on the
  batch's device, float32, no host synchronisation;
- :func:`code_histogram` counts every code of a split (int64, on the CPU), and
  :func:`histogram_stats` / :func:`histogram_summary` compute perplexity, usage and entropy of
  such a histogram in float64. Evaluation, validation during training and the report use these.

Perplexity is ``exp(entropy)`` of the code frequencies (entropy in nats): the number of equally
used codes that would give the same entropy. Usage is the fraction of the codebook that occurs.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "code_histogram",
    "code_statistics",
    "histogram_stats",
    "histogram_summary",
    "perplexity_and_usage",
]


def code_statistics(codes: Tensor, codebook_size: int) -> tuple[Tensor, Tensor]:
    """Counts per code of one batch, shape (codebook_size,), float32, and its perplexity.

    Stays on the codes' device (no ``.item()``): the quantizers call it on every training step.
    """
    flat = codes.reshape(-1)
    # index_add_ into a fixed-size vector: bincount would read the largest code back from the
    # device to size its output. Counts are small integers, exact in float32 either way.
    counts = torch.zeros(codebook_size, device=codes.device).index_add_(
        0, flat, torch.ones(flat.shape, device=codes.device))
    probs = counts / counts.sum().clamp_min(1)
    entropy = -(probs * torch.log(probs.clamp_min(1e-10))).sum()
    return counts, entropy.exp()


def code_histogram(
    codes: Tensor, codebook_size: int, num_quantizers: int = 1
) -> Tensor:
    """Counts of each code per stage, int64, shape (num_quantizers, codebook_size), on the CPU.

    ``codes`` is (B, *S) for one stage or (B, *S, K) with K <= num_quantizers stages (missing
    stages, e.g. under quantizer dropout, count nothing).
    """
    counts = torch.zeros(num_quantizers, codebook_size, dtype=torch.long)
    per_stage = codes.reshape(-1, codes.shape[-1]) if num_quantizers > 1 else codes.reshape(-1, 1)
    for k in range(per_stage.shape[1]):
        counts[k] += torch.bincount(per_stage[:, k].cpu(), minlength=codebook_size)
    return counts


def _entropy(counts: Tensor) -> Tensor:
    """Entropy (nats, float64 scalar tensor) of one stage's histogram (codebook_size,)."""
    counts = counts.double()
    p = counts / counts.sum().clamp_min(1)
    return -(p * p.clamp_min(1e-300).log()).sum()


def perplexity_and_usage(counts: Tensor | np.ndarray) -> tuple[float, float]:
    """``exp(entropy)`` of one stage's histogram (codebook_size,) and the fraction of codes that
    occur, in float64."""
    counts = torch.as_tensor(counts)
    return float(torch.exp(_entropy(counts))), float((counts > 0).double().mean())


def histogram_stats(counts: Tensor | np.ndarray) -> tuple[float, float]:
    """Perplexity and usage of a (K, codebook_size) histogram, averaged over the K stages."""
    stats = [perplexity_and_usage(c) for c in counts]
    return (sum(s[0] for s in stats) / len(stats), sum(s[1] for s in stats) / len(stats))


def histogram_summary(counts: Tensor | np.ndarray) -> dict[str, float]:
    """What the report shows of a (K, codebook_size) histogram, each averaged over the stages.

    Returns
    -------
    dict
        ``perplexity`` and ``usage`` (:func:`histogram_stats`), ``used`` (codes that occur),
        ``entropy_bits`` (bits per code), ``codebook_size`` and ``total`` (codes counted per
        stage: those of the first stage).
    """
    counts = torch.as_tensor(np.atleast_2d(np.asarray(counts)))
    perplexity, usage = histogram_stats(counts)
    k = counts.shape[0]
    return {
        "perplexity": perplexity,
        "usage": usage,
        "used": sum(float((c > 0).sum()) for c in counts) / k,
        "entropy_bits": sum(float(_entropy(c)) for c in counts) / k / math.log(2),
        "codebook_size": float(counts.shape[1]),
        "total": float(counts[0].sum()),
    }
