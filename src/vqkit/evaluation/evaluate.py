"""``evaluate(run_dir, ...)``: metrics of a trained run on a split, figures, and the evaluation
folder ``RUN/eval/<split>/`` that ``vqkit report`` shows (:mod:`vqkit.evaluation.artifacts`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vqkit.checkpoint import find_checkpoint
from vqkit.data.images import ImageData
from vqkit.data.loaders import load_image_split
from vqkit.errors import VQKitError
from vqkit.evaluation.about import about_images, about_speech
from vqkit.evaluation.artifacts import write_evaluation
from vqkit.evaluation.images import evaluate_images
from vqkit.evaluation.rate_curve import rate_curve
from vqkit.evaluation.speech import evaluate_speech
from vqkit.evaluation.speech_scores import pesq_note
from vqkit.models import load_model
from vqkit.utils import atomic_write_text, resolve_device

N_IMAGE_SAMPLES = 16  # images kept in RUN/eval/<split>/samples.npz
N_SPEECH_SAMPLES = 3  # utterances kept (with three WAVs each)


def _checkpoint_info(path: Path) -> dict[str, Any]:
    """Name, step and epoch of the checkpoint folder ``path``, from its ``meta.json``."""
    name = "best" if path.name == "best" else "last"
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, json.JSONDecodeError):
        meta = {}
    return {"name": name, "step": meta.get("step"), "epoch": meta.get("epoch")}


def run_task(run_dir: str | Path) -> str:
    """The ``task`` of a run ("image", "speech", "prior"), from its saved config."""
    try:
        return str(json.loads((Path(run_dir) / "config.json").read_text())["task"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def evaluate(
    run_dir: str | Path,
    *,
    data: str | None = None,
    split: str = "val",
    which: str = "best",
    device: str = "auto",
    json_path: str | Path | None = None,
    max_items: int = 0,
    stages: int | None = None,
    curve: bool = False,
    search_steps: int | None = None,
) -> dict[str, Any]:
    """Evaluate the ``which`` checkpoint of ``run_dir`` on ``split``.

    Writes ``RUN/eval/<split>/`` (metrics, the code histogram of the split and samples; see
    :mod:`vqkit.evaluation.artifacts`) and figures in the run dir: images
    ``original_and_reconstructed.png``, speech ``speech_reconstruction.png`` and
    ``speech_loss.png``.

    Parameters
    ----------
    run_dir : str or Path
    data : str or None
        Data location; None: the one the run trained on (``data.root`` of its config).
    split : str
        "val", "test", "train", or for speech "speakers:A,B".
    which : "best" or "last"
        "best" falls back to "last" when no epoch has finished.
    device : str
    json_path : str, Path or None
        Also write the returned metrics there.
    max_items : int >= 0
        Only the first N items of the split; 0: all.
    stages : int or None
        Residual VQ stages to use (speech or images; None: all).
    curve : bool
        Speech with residual VQ: also evaluate every stage count 1..S (S = ``stages`` or all)
        and add the rows as ``rate_curve`` (:func:`~vqkit.evaluation.rate_curve.rate_curve`).
    search_steps : int or None
        Steps of code search (:mod:`vqkit.models.search`; None: the run's ``search.steps``).

    Returns
    -------
    dict
        ``run``, ``split``, ``checkpoint`` (the one used), every metric, and ``about``: the
        split's ``definition``, its ``speakers`` or ``classes`` with counts, speech
        ``sample_rates``, and ``warnings`` (see :mod:`vqkit.evaluation.about`).
    """
    run_dir = Path(run_dir)
    dev = resolve_device(device)
    model, cfg = load_model(run_dir, which, dev, stages=stages, kind="vqvae",
                            search_steps=search_steps)
    checkpoint = _checkpoint_info(find_checkpoint(run_dir, which))
    root = data if data is not None else (cfg.data.root or None)
    if curve and cfg.task != "speech":
        raise VQKitError(f"{run_dir}: --curve is for speech runs (bit/s against STOI and PESQ)")
    if cfg.task == "image":
        images = load_image_split(root, split, data=cfg.data, channels=cfg.model.in_channels)
        about = about_images(split, cfg.data.train_split, images.labels, images.class_names,
                             getattr(images, "split_rule", ""))
        if max_items:
            images = (ImageData(images.images[:max_items], split)
                      if isinstance(images, ImageData) else images.head(max_items))
        result = evaluate_images(model, images, device=dev,
                                 grid_path=run_dir / "original_and_reconstructed.png",
                                 n_examples=N_IMAGE_SAMPLES)
    else:
        cache: dict[str, Any] = {}  # the oracle's audio, shared with the rate curve
        result = evaluate_speech(model, cfg, root, split, run_dir=run_dir, device=dev,
                                 max_items=max_items, n_examples=N_SPEECH_SAMPLES,
                                 oracle_cache=cache if curve else None)
        about = about_speech(cfg, root, split, max_items)
        note = pesq_note(cfg.audio.sample_rate)
        if note:
            about.setdefault("warnings", []).append(note)
        if curve:
            result.metrics["rate_curve"] = rate_curve(
                model, cfg, root, split, device=dev, max_items=max_items, oracle_cache=cache,
                last=result, max_stages=getattr(model.quantizer, "stages_used", 0))
    result.metrics["search_steps"] = model.search.steps if model.search else 0
    result.run, result.split, result.checkpoint = str(run_dir), split, checkpoint
    result.data, result.about = str(root or ""), about
    write_evaluation(run_dir, result)
    metrics = {"run": str(run_dir), "split": split, "checkpoint": checkpoint["name"],
               **result.metrics, "about": about}
    if json_path is not None:
        atomic_write_text(Path(json_path), json.dumps(metrics, indent=2) + "\n")
    return metrics
