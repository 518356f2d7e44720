"""Real processes stopped at random moments (Ctrl-C, SIGTERM, kill -9, mid-save included) and
resumed end with the weights of an uninterrupted run, bit for bit."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import make_cifar_dir
from safetensors.torch import load_file

SETTINGS = ["--set", "model.hidden_channels=32", "--set", "model.residual_channels=8",
            "--set", "model.dim=8", "--set", "quantizer.codebook_size=16",
            "--set", "quantizer.dead_code_threshold=2", "--set", "train.log_every_steps=1",
            "--set", "train.num_threads=1", "--batch-size", "8", "--epochs", "3",
            "--no-progress"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("interrupts") / "data"
    make_cifar_dir(root, n_per_batch=48)  # 192 training images: 24 steps per epoch
    return root


def vqkit(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "vqkit", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def steps_logged(run: Path) -> int:
    try:
        return sum(1 for line in (run / "metrics.jsonl").read_text().splitlines()
                   if '"kind": "step"' in line)
    except FileNotFoundError:
        return 0


def stop_at_random(proc: subprocess.Popen, run: Path, sig: int, rng: random.Random,
                   min_new_steps: int = 2) -> None:
    """Send ``sig`` a random moment after the run has logged a few more steps."""
    start = steps_logged(run)
    deadline = time.time() + 60
    while steps_logged(run) < start + min_new_steps and proc.poll() is None:
        assert time.time() < deadline, "training did not start"
        time.sleep(0.02)
    time.sleep(rng.uniform(0, 0.4))
    if proc.poll() is None:
        proc.send_signal(sig)
    proc.wait(60)


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "checkpoints" / "last" / "model.safetensors")


@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory) -> dict[str, torch.Tensor]:
    run = tmp_path_factory.mktemp("full") / "run"
    p = vqkit("train", "image", "--data", str(data), "--out", str(run), *SETTINGS)
    assert p.wait(120) == 0, p.stderr.read()
    return weights(run)


def assert_same_as(run: Path, expected: dict[str, torch.Tensor]) -> None:
    got = weights(run)
    assert got.keys() == expected.keys()
    for k in got:
        assert torch.equal(got[k], expected[k]), k
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()
             if json.loads(x)["kind"] == "step"]
    assert steps == list(range(1, 73))  # every step once, in order, after the resumes


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_mid_epoch_saves_and_resume_is_exact(data, tmp_path, uninterrupted, sig, code):
    rng = random.Random(sig)
    run = tmp_path / "run"
    p = vqkit("train", "image", "--data", str(data), "--out", str(run), *SETTINGS)
    stop_at_random(p, run, sig, rng)
    err = p.stderr.read()
    if p.returncode == 0:
        pytest.skip("the run finished before the signal (machine too fast for this test)")
    assert p.returncode == code, err
    assert "interrupted" in err and "--resume" in err and "Traceback" not in err
    r = vqkit("train", "--resume", str(run), "--no-progress")
    assert r.wait(120) == 0, r.stderr.read()
    assert_same_as(run, uninterrupted)


def test_kill_9_at_random_moments_then_resume_is_exact(data, tmp_path, uninterrupted):
    """Checkpoints every step, so that some kills land inside a save."""
    rng = random.Random(9)
    run = tmp_path / "run"
    args = ["--set", "train.checkpoint_every_steps=1"]
    p = vqkit("train", "image", "--data", str(data), "--out", str(run), *SETTINGS, *args)
    stop_at_random(p, run, signal.SIGKILL, rng, min_new_steps=3)
    for _ in range(2):
        p = vqkit("train", "--resume", str(run), "--no-progress")
        stop_at_random(p, run, signal.SIGKILL, rng)
    p = vqkit("train", "--resume", str(run), "--no-progress")
    assert p.wait(120) == 0, p.stderr.read()
    assert_same_as(run, uninterrupted)
    left = sorted(x.name for x in (run / "checkpoints").iterdir())
    assert left == ["best", "last"]
