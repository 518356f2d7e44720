"""A run written by vqkit before the training loop was rewritten still resumes and evaluates.

``tests/data/legacy_run_v1`` is the ``cifar10`` preset shrunk (hidden 16, 32 codes, dead-code
threshold 2), trained on ``make_cifar_dir``'s synthetic batches for 11 steps of 8 images
(stopped inside epoch 2 of 3), written by the previous loop (a ``LambdaLR`` scheduler state,
``best_val_recon``).
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch
from conftest import make_cifar_dir
from safetensors.torch import load_file

from vqkit.checkpoint import load_checkpoint
from vqkit.data.cifar10 import load_cifar10
from vqkit.data.images import ImageData
from vqkit.evaluation.evaluate import evaluate
from vqkit.training.train import train

LEGACY = Path(__file__).parent / "data" / "legacy_run_v1"


@pytest.fixture
def legacy(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(LEGACY, run)
    root = tmp_path / "data"
    make_cifar_dir(root)
    data = (ImageData(load_cifar10(root, "train")[0]), ImageData(load_cifar10(root, "val")[0]))
    return run, root, data


def test_legacy_run_resumes_to_the_end_and_evaluates(legacy):
    run, root, data = legacy
    res = train(None, run, resume=True, progress=False, data=data)
    assert res.step == 24 and res.epoch == 3 and res.stopped == "epochs"
    state = load_checkpoint(run).state
    assert state["step"] == 24 and state["images_seen"] == 24 * 8
    weights = load_file(run / "checkpoints" / "last" / "model.safetensors")
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
    m = evaluate(run, data=str(root), split="val")
    assert m["n_images"] == 16 and math.isfinite(m["psnr"]) and 0 < m["codebook_usage"] <= 1


def test_legacy_resume_equals_an_uninterrupted_run_bit_for_bit(legacy, tmp_path):
    """Where this machine computes the fixture's first 11 steps exactly (same CPU kernels),
    resuming it must give the weights of an uninterrupted run, bit for bit."""
    run, _, data = legacy
    cfg = load_checkpoint(run).config
    cfg.train.max_steps = 11
    train(cfg, tmp_path / "again", progress=False, data=data)
    ours = load_file(tmp_path / "again" / "checkpoints" / "last" / "model.safetensors")
    theirs = load_file(run / "checkpoints" / "last" / "model.safetensors")
    if not all(torch.equal(ours[k], theirs[k]) for k in theirs):
        pytest.skip("this CPU rounds the first 11 steps differently from the fixture's machine")
    cfg.train.max_steps = 0
    full = train(cfg, tmp_path / "full", progress=False, data=data)
    resumed = train(None, run, resume=True, progress=False, data=data)
    assert resumed.step == full.step == 24
    a = load_file(tmp_path / "full" / "checkpoints" / "last" / "model.safetensors")
    b = load_file(run / "checkpoints" / "last" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
