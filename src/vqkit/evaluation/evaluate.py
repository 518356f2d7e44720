"""``evaluate(run_dir, ...)``: metrics of a trained run on a split, plus figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vqkit.checkpoint import find_checkpoint
from vqkit.data.cifar10 import load_cifar10
from vqkit.data.images import ImageData
from vqkit.evaluation.images import evaluate_images
from vqkit.evaluation.speech import evaluate_speech
from vqkit.models import load_model
from vqkit.utils import atomic_write_text, resolve_device


def evaluate(
    run_dir: str | Path,
    *,
    data: str | None = None,
    split: str = "val",
    which: str = "best",
    device: str = "auto",
    json_path: str | Path | None = None,
    max_items: int = 0,
) -> dict[str, Any]:
    """Evaluate the ``which`` checkpoint of ``run_dir`` on ``split``.

    Images: writes ``original_and_reconstructed.png`` in the run dir. Speech: writes
    ``speech_reconstruction.png`` and ``speech_loss.png``. Returns the metrics (also written
    to ``json_path`` when given).
    """
    run_dir = Path(run_dir)
    dev = resolve_device(device)
    model, cfg = load_model(run_dir, which, dev)
    # "best" falls back to "last" when no epoch has finished; report which one was used.
    used = "best" if find_checkpoint(run_dir, which).name == "best" else "last"
    root = data if data is not None else (cfg.data.root or None)
    if cfg.task == "image":
        images, _ = load_cifar10(root, split)
        if max_items:
            images = images[:max_items]
        metrics = evaluate_images(model, ImageData(images, split), device=dev,
                                  grid_path=run_dir / "original_and_reconstructed.png")
    else:
        metrics = evaluate_speech(model, cfg, root, split, run_dir=run_dir, device=dev,
                                  max_items=max_items)
    metrics = {"run": str(run_dir), "split": split, "checkpoint": used, **metrics}
    if json_path is not None:
        atomic_write_text(Path(json_path), json.dumps(metrics, indent=2) + "\n")
    return metrics
