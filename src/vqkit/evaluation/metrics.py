"""Image and code metrics, computed in torch on batches."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


def mse_per_item(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error of each item: (B, ...) -> (B,)."""
    return ((a - b) ** 2).flatten(1).mean(1)


def psnr_per_item(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """PSNR in dB of each item: (B, ...) -> (B,); identical items give +inf."""
    return 10 * torch.log10(data_range**2 / mse_per_item(a, b))


@functools.lru_cache(maxsize=8)
def _gaussian_window(size: int, sigma: float) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).float()


def ssim_per_item(
    a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0, window: int = 11, sigma: float = 1.5
) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004) of each image (B, C, H, W) -> (B,).

    Gaussian 11x11 window with sigma 1.5, K1 = 0.01, K2 = 0.03, valid positions only (as
    scikit-image with ``gaussian_weights=True``), averaged over channels and positions.
    """
    c = a.shape[1]
    g = _gaussian_window(window, sigma).to(a.device, a.dtype)
    w = (g[:, None] * g[None, :]).expand(c, 1, window, window).contiguous()

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, w, groups=c)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    s = num / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.flatten(1).mean(1)


def perplexity_and_usage(counts: torch.Tensor) -> tuple[float, float]:
    """``exp(entropy)`` of a code histogram and the fraction of codes that occur."""
    counts = counts.double()
    p = counts / counts.sum().clamp_min(1)
    perplexity = torch.exp(-(p * p.clamp_min(1e-300).log()).sum())
    return float(perplexity), float((counts > 0).double().mean())


def code_histogram(
    codes: torch.Tensor, codebook_size: int, num_quantizers: int = 1
) -> torch.Tensor:
    """Counts of each code per stage, shape (num_quantizers, codebook_size).

    ``codes`` is (B, *S) for one stage or (B, *S, K) with K <= num_quantizers stages (missing
    stages, e.g. under quantizer dropout, count nothing).
    """
    counts = torch.zeros(num_quantizers, codebook_size, dtype=torch.long)
    per_stage = codes.reshape(-1, codes.shape[-1]) if num_quantizers > 1 else codes.reshape(-1, 1)
    for k in range(per_stage.shape[1]):
        counts[k] += torch.bincount(per_stage[:, k].cpu(), minlength=codebook_size)
    return counts


def histogram_stats(counts: torch.Tensor) -> tuple[float, float]:
    """Perplexity and usage of a (K, codebook_size) histogram, averaged over the K stages."""
    stats = [perplexity_and_usage(c) for c in counts]
    return (sum(s[0] for s in stats) / len(stats), sum(s[1] for s in stats) / len(stats))
