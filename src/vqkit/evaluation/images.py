"""Evaluate an image run on a CIFAR-10 split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vqkit.data.image_files import model_output_to_pixels
from vqkit.data.images import ImageData, model_output_to_unit
from vqkit.evaluation.metrics import mse_per_item, psnr_per_item, ssim_per_item
from vqkit.figures.images import plot_originals_over_reconstructions
from vqkit.quantizers.stats import code_histogram, histogram_stats
from vqkit.rates import bits_per_pixel


@torch.no_grad()
def evaluate_images(
    model, data: ImageData, *, batch_size: int = 500, device: torch.device | None = None,
    grid_path: str | Path | None = None, n_grid: int = 16,
) -> dict[str, Any]:
    """Reconstruction and codebook metrics over every image of ``data``.

    ``mse`` is on the [0, 1] pixel scale (reconstructions clamped to it), ``psnr`` is the mean
    over images of their PSNR in dB, ``ssim`` the mean SSIM; ``perplexity`` and
    ``codebook_usage`` come from the histogram of all codes of the split.
    """
    device = device or next(model.parameters()).device
    model.eval()
    q = model.quantizer
    counts = torch.zeros(q.num_quantizers, q.codebook_size, dtype=torch.long)
    mse, psnr, ssim = [], [], []
    first = None
    for x in data.batches(batch_size):
        x = x.to(device)
        xhat, out = model(x)
        a, b = model_output_to_unit(x.clone()), model_output_to_unit(xhat)
        mse.append(mse_per_item(a, b).cpu())
        psnr.append(psnr_per_item(a, b).cpu())
        ssim.append(ssim_per_item(a, b).cpu())
        counts += code_histogram(out.codes, q.codebook_size, q.num_quantizers)
        if first is None:
            first = (model_output_to_pixels(x[:n_grid]), model_output_to_pixels(xhat[:n_grid]))
    perplexity, usage = histogram_stats(counts)
    positions = int(out.codes[0].numel() / max(1, q.num_quantizers))
    h, w = x.shape[-2:]
    result = {
        "mse": float(torch.cat(mse).mean()),
        "psnr": float(torch.cat(psnr).mean()),
        "ssim": float(torch.cat(ssim).mean()),
        "perplexity": perplexity,
        "codebook_usage": usage,
        "codebook_size": q.codebook_size,
        "n_images": len(data),
        "bits_per_image": positions * q.bits_per_code,
        "bits_per_pixel": bits_per_pixel(positions, q.bits_per_code, h * w),
    }
    if grid_path is not None and first is not None:
        plot_originals_over_reconstructions(first[0], first[1], grid_path)
    return result
