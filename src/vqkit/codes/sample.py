"""Sampling from a code prior: codes drawn token by token (key/value cache), decoded by the
VQ-VAE they model, written as PNG files and one grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vqkit.codes.cache import describe_vqvae
from vqkit.data.image_files import model_output_to_pixels, write_image
from vqkit.errors import VQKitError
from vqkit.figures.images import image_grid
from vqkit.models import load_model
from vqkit.models.prior import sample_tokens, tokens_to_codes

__all__ = ["sample_prior"]


@torch.no_grad()
def sample_prior(prior_run: str | Path, out_dir: str | Path, *, n: int = 64,
                 class_name: str | None = None, temperature: float = 1.0, top_k: int = 0,
                 guidance: float = 1.0, seed: int = 0, which: str = "best") -> dict:
    """Draw ``n`` samples on the CPU and write ``<i>.png`` and ``grid.png`` (a class-conditional
    prior without ``class_name``: the classes in turn, one per grid row of 8) into
    ``out_dir``. The same ``seed`` gives the same files. ``guidance``: classifier-free guidance
    (:func:`sample_tokens`; class-conditional priors only).

    Returns ``{"files": [...], "grid": path, "labels": [...], "codes": array (n, H', W'[, K])}``.
    """
    if n < 1:
        raise VQKitError("--n: must be at least 1")
    if temperature <= 0 or top_k < 0 or guidance < 0:
        raise VQKitError("--temperature must be above 0, --top-k and --guidance at least 0")
    prior, cfg = load_model(prior_run, which, "cpu", kind="prior")
    describe_vqvae(cfg)
    p = cfg.prior
    names = p.class_names if p.class_conditional else []
    if guidance != 1.0 and not names:
        raise VQKitError(f"--guidance: {prior_run} is not class-conditional")
    if class_name is not None:
        if class_name not in names:
            known = ", ".join(names) if names else "none: the prior is unconditional"
            raise VQKitError(f"--class {class_name!r}: not a class of {prior_run} ({known})")
        labels = torch.full((n,), names.index(class_name))
    elif names:
        labels = (torch.arange(n) // 8) % len(names)
    else:
        labels = torch.full((n,), -1)
    tokens = sample_tokens(prior, n, labels=labels, temperature=temperature, top_k=top_k,
                           guidance=guidance, generator=torch.Generator().manual_seed(seed))
    codes = tokens_to_codes(tokens, p.grid, p.num_quantizers)
    vqvae, _ = load_model(p.run, p.checkpoint, "cpu", kind="vqvae")
    images = np.stack([model_output_to_pixels(x) for x in vqvae.decode(codes)])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    width = len(str(n - 1))
    files = [write_image(out / f"{i:0{width}d}.png", im) for i, im in enumerate(images)]
    grid = write_image(out / "grid.png", image_grid(images, 8, scale=2, gap=2))
    return {"files": files, "grid": grid,
            "labels": [names[i] if i >= 0 else "" for i in labels.tolist()],
            "codes": codes.numpy()}
