"""Evaluate an image run on a CIFAR-10 split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vqkit.data.image_files import model_output_to_pixels
from vqkit.data.images import ImageData, model_output_to_unit
from vqkit.evaluation.artifacts import Evaluation, ImageSamples
from vqkit.evaluation.metrics import mse_per_item, psnr_per_item, ssim_per_item
from vqkit.figures.images import plot_originals_over_reconstructions
from vqkit.quantizers.stats import code_histogram, histogram_stats
from vqkit.rates import bits_per_pixel


@torch.no_grad()
def evaluate_images(
    model, data: ImageData, *, batch_size: int = 500, device: torch.device | None = None,
    grid_path: str | Path | None = None, n_examples: int = 16,
) -> Evaluation:
    """Reconstruction and codebook metrics over every image of ``data``.

    Parameters
    ----------
    model : VQVAE
    data : ImageData
    batch_size : int > 0
    device : torch.device or None
        Default: the model's.
    grid_path : str, Path or None
        Where to write the PNG of the first ``n_examples`` originals over their
        reconstructions.
    n_examples : int >= 0
        Images kept as samples (the first of ``data``).

    Returns
    -------
    Evaluation
        ``metrics``: ``mse`` on the [0, 1] pixel scale (reconstructions clamped to it), ``psnr``
        the mean over images of their PSNR in dB, ``ssim`` the mean SSIM, ``perplexity`` and
        ``codebook_usage`` of the histogram of all codes of the split, ``codebook_size``,
        ``n_images``, ``bits_per_image``, ``bits_per_pixel``; ``code_counts`` that histogram
        (num_quantizers, codebook_size); ``samples`` the first images and their
        reconstructions as uint8.
    """
    device = device or next(model.parameters()).device
    model.eval()
    q = model.quantizer
    counts = torch.zeros(q.num_quantizers, q.codebook_size, dtype=torch.long)
    mse, psnr, ssim = [], [], []
    originals, reconstructions = [], []
    kept = 0
    for x in data.batches(batch_size):
        x = x.to(device)
        xhat, out = model(x)
        a, b = model_output_to_unit(x.clone()), model_output_to_unit(xhat)
        mse.append(mse_per_item(a, b).cpu())
        psnr.append(psnr_per_item(a, b).cpu())
        ssim.append(ssim_per_item(a, b).cpu())
        counts += code_histogram(out.codes, q.codebook_size, q.num_quantizers)
        if kept < n_examples:
            take = n_examples - kept
            originals.append(model_output_to_pixels(x[:take]))
            reconstructions.append(model_output_to_pixels(xhat[:take]))
            kept += len(originals[-1])
    perplexity, usage = histogram_stats(counts)
    positions = int(out.codes[0].numel() / max(1, q.num_quantizers))
    h, w = x.shape[-2:]
    metrics = {
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
    samples = None
    if originals:
        samples = ImageSamples(np.concatenate(originals), np.concatenate(reconstructions))
        if grid_path is not None:
            plot_originals_over_reconstructions(samples.originals, samples.reconstructions,
                                                grid_path)
    return Evaluation(metrics, counts.numpy(), samples)
