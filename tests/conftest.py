"""Shared fixtures: tiny synthetic CIFAR-10 folders written in the official pickle format."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import settings

# CI runs on 2 shared cores: a slow example is load, not a bug. No per-example deadline.
settings.register_profile("vqkit", deadline=None)
settings.load_profile("vqkit")

torch.set_num_threads(1)  # tiny tensors: threads only add overhead (and CI has 2 cores)


def write_cifar_batch(path: Path, n: int, seed: int, bytes_keys: bool = True) -> np.ndarray:
    """A batch file like the official ones (Python-2-style bytes keys by default)."""
    rng = np.random.default_rng(seed)
    # Smooth-ish images (low-frequency blobs) so that a model can learn something quickly.
    base = rng.integers(0, 256, size=(n, 3, 4, 4)).astype(np.float32)
    up = np.repeat(np.repeat(base, 8, axis=2), 8, axis=3)
    data = np.clip(up + rng.normal(0, 8, size=up.shape), 0, 255).astype(np.uint8).reshape(n, -1)
    d = {"data": data, "labels": [int(i % 10) for i in range(n)],
         "batch_label": f"batch {seed}", "filenames": [f"img_{i}.png" for i in range(n)]}
    if bytes_keys:
        d = {k.encode(): (v.encode() if isinstance(v, str) else v) for k, v in d.items()}
    with open(path, "wb") as f:
        pickle.dump(d, f, protocol=2)
    return data


def make_cifar_dir(root: Path, n_per_batch: int = 16, with_test: bool = True) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, 6):
        write_cifar_batch(folder / f"data_batch_{i}", n_per_batch, seed=i)
    if with_test:
        write_cifar_batch(folder / "test_batch", n_per_batch, seed=99)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [b"c%d" % i for i in range(10)]}, f, protocol=2)
    return folder


@pytest.fixture
def cifar_root(tmp_path: Path) -> Path:
    """A folder holding ``cifar-10-batches-py/`` with 16 images per batch."""
    make_cifar_dir(tmp_path / "data")
    return tmp_path / "data"


@pytest.fixture
def tiny_image_config():
    """The cifar10 preset shrunk to run a few steps in well under a second."""
    from vqkit.config import get_preset

    def make(preset: str = "cifar10", **train):
        cfg = get_preset(preset)
        m = cfg.model
        m.hidden_channels, m.residual_channels, m.dim = 16, 8, 8
        cfg.quantizer.codebook_size = 32
        t = cfg.train
        t.batch_size, t.epochs, t.log_every_steps, t.warmup_steps = 8, 2, 1, 0
        for k, v in train.items():
            setattr(t, k, v)
        return cfg

    return make
