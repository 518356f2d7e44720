"""Multi-process training with torchrun on CPU (gloo): the rank-aware paths really run."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from vqkit.checkpoint import load_checkpoint


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_training_with_torchrun(cifar_root, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
           "-m", "vqkit.cli", "train", "image", "--preset", "cifar10", "--data", str(cifar_root),
           "--out", str(out), "--epochs", "2", "--batch-size", "8", "--no-progress",
           "--max-minutes", "30",  # a budget: ranks agree on the clock by an all-reduce per step
           "--set", "model.hidden_channels=16", "--set", "model.residual_channels=8",
           "--set", "model.dim=8", "--set", "quantizer.codebook_size=16"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # Only rank 0 prints the summary and writes metrics: one epoch line per epoch.
    assert proc.stdout.count("stopped after 2 epochs, 16 steps") == 1
    epochs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()
              if json.loads(x)["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2]
    assert epochs[-1]["images_seen"] == 2 * 64  # 64 training images per epoch in the fixture
    ckpt = load_checkpoint(out)
    assert all(torch.isfinite(v.float()).all() for v in ckpt.model_state.values())
    assert ckpt.state["step"] == 16
