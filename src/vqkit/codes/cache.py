"""The code cache: a VQ-VAE run's dataset encoded once, for training and evaluating a prior.

``PRIOR_RUN/code-cache/<split>-<sha>.npz`` holds a split's codes as tokens (N, L) (raster
order, stages innermost; uint16) and labels (N,) (-1: none), where ``<sha>`` starts the sha256
of the VQ-VAE checkpoint's ``model.safetensors`` (from its ``meta.json``): retraining the
VQ-VAE changes the key, and the stale file of that split is removed. A speech run's split
(:mod:`vqkit.codes.speech_cache`: its utterances from the run's mel cache, codes in time order)
is stored as all tokens end to end with each utterance's length, seconds and id.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import torch

from vqkit.checkpoint import find_checkpoint, load_checkpoint
from vqkit.codes.speech_cache import encode_speech_split, speech_class_names
from vqkit.config import RunConfig
from vqkit.data.codes import CodeData
from vqkit.data.loaders import load_image_split
from vqkit.errors import DataError, VQKitError
from vqkit.evaluation.artifacts import split_folder_name
from vqkit.models import load_model
from vqkit.models.prior import codes_to_tokens
from vqkit.rates import code_rows
from vqkit.utils import atomic_write_bytes

__all__ = ["CACHE_DIR", "describe_vqvae", "load_code_split", "vqvae_sha256"]

CACHE_DIR = "code-cache"
ENCODE_BATCH = 256


def vqvae_sha256(run_dir: str | Path, which: str) -> str:
    """sha256 of the ``which`` checkpoint's weights, as its ``meta.json`` records it."""
    path = find_checkpoint(run_dir, which)
    try:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
        return str(meta["sha256"]["model.safetensors"])
    except (OSError, ValueError, KeyError, TypeError):
        raise VQKitError(f"{path / 'meta.json'}: no weights checksum (format 1 checkpoint?); "
                         f"retrain the VQ-VAE with this vqkit") from None


def describe_vqvae(cfg: RunConfig) -> RunConfig:
    """Fill in ``cfg.prior``'s description of the codes from its VQ-VAE run (codebook size,
    stages, grid, classes, weights checksum); a prior already described must match the run."""
    p = cfg.prior
    if not p.run:
        raise VQKitError("prior: say which VQ-VAE run to model (`vqkit train prior RUN`)")
    ckpt = load_checkpoint(p.run, p.checkpoint, with_state=False)
    vq = ckpt.config
    if vq.task == "prior":
        raise VQKitError(f"{p.run}: a prior run; give the VQ-VAE run it models")
    q = vq.quantizer
    size = int(np.prod(q.levels)) if q.kind == "fsq" else q.codebook_size
    stages = q.num_quantizers if q.kind == "rvq" else 1
    sha = vqvae_sha256(p.run, p.checkpoint)
    if vq.task == "speech":  # frame by frame; the most frames: from the data (prior_setup)
        grid = [code_rows(vq, 2 ** vq.model.num_downsamples), p.grid[1]]
        names = p.class_names  # read once, from the training split, when first described
        if not p.vqvae_sha256:
            names = (speech_class_names(vq, vq.data.train_split, p.speech_classes)
                     if p.class_conditional and p.speech_classes != "none" else [])
        want = {"codebook_size": size, "num_quantizers": stages, "grid": grid,
                "order": "time", "class_names": list(names), "vqvae_sha256": sha}
    else:
        side = 32 // 2 ** vq.model.num_downsamples  # CIFAR-10 images are 32 x 32
        names = p.class_names  # read once, when first described: sampling needs no data
        if not p.vqvae_sha256:
            names = (load_image_split(vq.data.root or None, vq.data.val_split).class_names or []
                     if p.class_conditional else [])
        want = {"codebook_size": size, "num_quantizers": stages, "grid": [side, side],
                "order": "raster", "class_names": list(names), "vqvae_sha256": sha}
    if p.vqvae_sha256:  # already described (resumed or loaded): must still be that model
        for k, v in want.items():
            if getattr(p, k) != v:
                raise VQKitError(f"{p.run}: its {p.checkpoint} checkpoint changed since the "
                                 f"prior was trained (prior.{k} {getattr(p, k)!r} != {v!r}); "
                                 f"train a new prior")
    for k, v in want.items():
        setattr(p, k, v)
    return cfg


def load_code_split(cfg: RunConfig, split: str, cache_root: str | Path, *,
                    device: torch.device | None = None) -> CodeData:
    """The codes of ``split`` ("train", "val", "test") of the prior's VQ-VAE run, from the
    cache under ``cache_root`` or encoded now (and cached)."""
    p = cfg.prior
    folder = Path(cache_root) / CACHE_DIR
    name = split_folder_name(split)
    path = folder / f"{name}-{p.vqvae_sha256[:16]}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["sha256"]) == p.vqvae_sha256:
                    return _from_npz(z, split)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            pass  # unreadable: encode again
    arrays = _encode_split(cfg, split, device or torch.device("cpu"))
    buf = io.BytesIO()
    np.savez(buf, **arrays, sha256=np.array(p.vqvae_sha256))
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob(f"{name}-*.npz"):
        old.unlink(missing_ok=True)  # a stale cache of another VQ-VAE checkpoint
    atomic_write_bytes(path, buf.getvalue())
    with np.load(io.BytesIO(buf.getvalue()), allow_pickle=False) as z:
        return _from_npz(z, split)


def _from_npz(z, split: str) -> CodeData:
    labels = torch.from_numpy(z["labels"]).long()
    if "lengths" not in z:  # images: (N, L)
        return CodeData(torch.from_numpy(z["tokens"].astype(np.int64)), labels, split)
    lengths = z["lengths"].astype(np.int64)
    flat = z["tokens"].astype(np.int64)
    if int(lengths.sum()) != flat.size:
        raise ValueError("lengths do not add up to the tokens")
    tokens = np.zeros((len(lengths), int(lengths.max()) if len(lengths) else 0), np.int64)
    for i, (lo, n) in enumerate(zip(np.cumsum(lengths) - lengths, lengths, strict=True)):
        tokens[i, :n] = flat[lo:lo + n]
    return CodeData(torch.from_numpy(tokens), labels, split, lengths=torch.from_numpy(lengths),
                    seconds=torch.from_numpy(z["seconds"].astype(np.float64)),
                    ids=[str(i) for i in z["ids"]])


@torch.no_grad()
def _encode_split(cfg: RunConfig, split: str, device: torch.device):
    p = cfg.prior
    model, vq = load_model(p.run, p.checkpoint, device, kind="vqvae")
    if vqvae_sha256(p.run, p.checkpoint) != p.vqvae_sha256:
        raise VQKitError(f"{p.run}: its {p.checkpoint} checkpoint changed since the prior was "
                         f"trained; train a new prior")
    names = {"train": vq.data.train_split, "val": vq.data.val_split}
    if vq.task == "speech":
        return encode_speech_split(model, vq, names.get(split, split), device,
                                   kind=p.speech_classes if p.class_names else "none",
                                   names=p.class_names)
    data = load_image_split(vq.data.root or None, names.get(split, split))
    if data.images.shape[-2:] != (32, 32):
        raise DataError(f"{vq.data.root}: {split} images are not 32 x 32")
    out = [codes_to_tokens(model.encode(x.to(device))).cpu()
           for x in data.batches(ENCODE_BATCH)]
    tokens = torch.cat(out)
    if int(tokens.max()) >= 2 ** 16:
        raise VQKitError(f"{p.run}: codes beyond 65,535 are not cached")
    labels = data.labels if data.labels is not None else torch.full((len(data),), -1)
    return {"tokens": tokens.numpy().astype(np.uint16), "labels": labels.long().numpy()}
