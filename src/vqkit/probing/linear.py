"""What the codes know: linear probes on a run's codes against the same probe on raw pixels.

Three feature sets per image, each fed to a multinomial logistic regression trained on the
training split and scored on a held-out split: the code embeddings (the quantizer's vectors)
averaged over positions, the bag of codes (the normalised code histogram of the image), and the
raw pixels (the baseline).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vqkit.data.loaders import load_image_split
from vqkit.errors import VQKitError
from vqkit.models import load_model
from vqkit.probing.fit import fit_linear_probe
from vqkit.probing.speech import probe_speech
from vqkit.utils import resolve_device

__all__ = ["fit_linear_probe", "image_features", "probe_run"]


@torch.no_grad()
def image_features(model, images: torch.Tensor, *, batch_size: int = 256,
                   device: torch.device | None = None) -> dict[str, torch.Tensor]:
    """uint8 images (N, C, H, W) -> ``{"code_embeddings": (N, D), "bag_of_codes": (N, S * K),
    "pixels": (N, C * H * W)}`` (float32)."""
    q = model.quantizer
    device = device or torch.device("cpu")
    emb, bags = [], []
    for lo in range(0, images.shape[0], batch_size):
        x = images[lo:lo + batch_size].to(device).float().div(255.0).sub(0.5)
        codes = model.encode(x)  # (B, H', W') or (B, H', W', S)
        emb.append(q.decode(codes).mean(dim=(2, 3)).float().cpu())
        flat = codes.reshape(codes.shape[0], -1, q.num_quantizers)
        offsets = torch.arange(q.num_quantizers, device=flat.device) * q.codebook_size
        idx = (flat + offsets).reshape(codes.shape[0], -1)
        bag = torch.zeros(codes.shape[0], q.codebook_size * q.num_quantizers, device=flat.device)
        bag.scatter_add_(1, idx, torch.ones_like(idx, dtype=bag.dtype))
        bags.append((bag / idx.shape[1]).cpu())
    pixels = images.reshape(images.shape[0], -1).float() / 255.0
    return {"code_embeddings": torch.cat(emb), "bag_of_codes": torch.cat(bags),
            "pixels": pixels}


def probe_run(run_dir: str | Path, *, data: str | None = None, train_split: str = "train",
              test_split: str = "val", max_train: int = 10000, max_test: int = 10000,
              which: str = "best", device: str = "auto", steps: int = 300) -> dict[str, Any]:
    """Held-out class accuracy of linear probes on an image run's codes and on raw pixels
    (the first ``max_train`` / ``max_test`` images of each split); for a speech run, transcript and
    speaker accuracy on its codes and on raw mels (:mod:`vqkit.probing.speech`)."""
    dev = resolve_device(device)
    model, cfg = load_model(run_dir, which, dev, kind="vqvae")
    if cfg.task == "speech":
        if data is not None:
            cfg.data.root = str(data)
        return {"run": str(run_dir), "task": "speech",
                **probe_speech(model, cfg, train_split=train_split, test_split=test_split,
                               max_train=max_train, max_test=max_test, device=dev,
                               steps=steps)}
    if cfg.task != "image":
        raise VQKitError(f"{run_dir}: a {cfg.task} run; `vqkit probe` probes image and speech "
                         f"runs")
    root = data if data is not None else (cfg.data.root or None)
    tr, te = load_image_split(root, train_split), load_image_split(root, test_split)
    if tr.labels is None or te.labels is None:
        raise VQKitError(f"{root}: the probe needs class labels")
    tr_x, tr_y = tr.images[:max_train], tr.labels[:max_train].long()
    te_x, te_y = te.images[:max_test], te.labels[:max_test].long()
    classes = len(tr.class_names or []) or int(max(tr_y.max(), te_y.max())) + 1
    fa, fb = image_features(model, tr_x, device=dev), image_features(model, te_x, device=dev)
    result: dict[str, Any] = {"run": str(run_dir), "train_split": train_split,
                              "test_split": test_split, "train_items": len(tr_y),
                              "test_items": len(te_y), "classes": classes,
                              "chance": float(torch.bincount(te_y).max()) / len(te_y)}
    for name in fa:
        r = fit_linear_probe(fa[name], tr_y, fb[name], te_y, classes=classes, steps=steps)
        result[f"{name}_accuracy"] = r["accuracy"]
        result[f"{name}_train_accuracy"] = r["train_accuracy"]
        result[f"{name}_dims"] = int(fa[name].shape[1])
    return result
