"""Sampling from a code prior: codes drawn token by token (key/value cache), decoded by the
VQ-VAE they model, written as PNG files and one grid (images) or WAV files (speech: the decoded
mel through Griffin-Lim, as ``vqkit reconstruct`` and ``vqkit decode`` write them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vqkit.audio.pipeline import model_output_to_wav, write_wav
from vqkit.codes.cache import describe_vqvae
from vqkit.data.image_files import model_output_to_pixels, write_image
from vqkit.errors import VQKitError
from vqkit.figures.images import image_grid
from vqkit.models import load_model
from vqkit.models.prior import CodePrior, sample_tokens, tokens_to_codes
from vqkit.rates import frame_rate_hz

__all__ = ["sample_prior"]


@torch.no_grad()
def sample_prior(prior_run: str | Path, out_dir: str | Path, *, n: int = 64,
                 class_name: str | None = None, temperature: float = 1.0, top_k: int = 0,
                 guidance: float = 1.0, seed: int = 0, which: str = "best",
                 seconds: float = 1.0) -> dict:
    """Draw ``n`` samples on the CPU and write ``<i>.png`` and ``grid.png`` (a class-conditional
    prior without ``class_name``: the classes in turn, one per grid row of 8) into
    ``out_dir``; a speech prior: ``<i>.wav`` of ``seconds`` each (rounded up to whole code
    frames, at most the longest utterance the prior trained on). The same ``seed`` gives the
    same files. ``guidance``: classifier-free guidance (:func:`sample_tokens`;
    class-conditional priors only).

    Returns ``{"files": [...], "grid": path or None, "labels": [...], "codes": array (n, H',
    W'[, K])}``.
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
    vqvae, vq = load_model(p.run, p.checkpoint, "cpu", kind="vqvae")
    length = _speech_length(prior, vq, vqvae.downsampling, seconds) if p.order == "time" else None
    tokens = sample_tokens(prior, n, labels=labels, temperature=temperature, top_k=top_k,
                           guidance=guidance, generator=torch.Generator().manual_seed(seed),
                           length=length)
    codes = tokens_to_codes(tokens, p.grid, p.num_quantizers, p.order)
    label_names = [names[i] if i >= 0 else "" for i in labels.tolist()]
    if p.order == "time":
        return {"files": _write_wavs(vqvae, vq, codes, Path(out_dir)), "grid": None,
                "labels": label_names, "codes": codes.numpy()}
    images = np.stack([model_output_to_pixels(x) for x in vqvae.decode(codes)])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    width = len(str(n - 1))
    files = [write_image(out / f"{i:0{width}d}.png", im) for i, im in enumerate(images)]
    grid = write_image(out / "grid.png", image_grid(images, 8, scale=2, gap=2))
    return {"files": files, "grid": grid, "labels": label_names, "codes": codes.numpy()}


def _speech_length(prior: CodePrior, vq, downsampling: int, seconds: float) -> int:
    """Tokens of ``seconds`` of audio: whole code frames, within what the prior models."""
    per_s = frame_rate_hz(vq) / downsampling  # code frames per second
    frames = max(1, int(np.ceil(seconds * per_s - 1e-9)))
    most = prior.length // prior.frame_tokens
    if seconds <= 0 or frames > most:
        raise VQKitError(f"--seconds {seconds:g}: the prior draws 1 to {most} code frames "
                         f"({1 / per_s:.3f} to {most / per_s:.3f} s: the longest utterance it "
                         f"trained on)")
    return frames * prior.frame_tokens


def _write_wavs(vqvae, vq, codes: torch.Tensor, out: Path) -> list[Path]:
    """Each sample's mel decoded, de-normalised and through Griffin-Lim: ``<i>.wav``."""
    if vq.audio.normalization != "fixed_db":
        raise VQKitError(f"{vq.audio.normalization!r} normalisation needs each utterance's own "
                         f"statistics to make audio; sampling speech needs audio.normalization "
                         f"fixed_db (the l2arctic presets)")
    out.mkdir(parents=True, exist_ok=True)
    width = len(str(codes.shape[0] - 1))
    files = []
    for i, c in enumerate(codes):
        mel = vqvae.decode(c[None])
        frames = mel.shape[-1]
        info = {"n_frames": frames, "n_samples": (frames - 1) * vq.audio.hop_length,
                "stats": None}
        files.append(write_wav(out / f"{i:0{width}d}.wav", model_output_to_wav(mel, vq, info),
                               vq.audio.sample_rate))
    return files
