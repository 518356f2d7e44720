"""Image metrics, computed in torch on batches.

The code statistics (histograms, perplexity, usage) live in :mod:`vqkit.quantizers.stats`;
they are re-exported here for :mod:`vqkit.training.train`, which imports them from this module.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from vqkit.quantizers.stats import code_histogram, histogram_stats

__all__ = [
    "code_histogram",
    "histogram_stats",
    "mse_per_item",
    "psnr_per_item",
    "ssim_per_item",
]


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
