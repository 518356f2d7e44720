"""What a newcomer meets first: numbers that agree everywhere, honest progress, clear errors."""

from __future__ import annotations

import os
import re

import pytest

from vqkit.cli import main
from vqkit.reports import write_report
from vqkit.runlog import read_metrics, summarize
from vqkit.utils import format_number

TINY = ["--set", "model.hidden_channels=16", "--set", "model.residual_channels=8",
        "--set", "model.dim=8", "--set", "quantizer.codebook_size=16",
        "--set", "train.log_every_steps=1", "--batch-size", "8", "--no-progress"]


def test_a_budget_stop_shows_the_same_best_and_step_in_cli_report_and_plot(
        cifar_root, tmp_path, capsys, monkeypatch):
    """A --max-minutes run that stops mid-epoch: its stop is validated and can be the best;
    the CLI line, the report's summary and the plot's legend quote the same value and step."""
    import vqkit.training.state as state

    ticks = []

    def fake_elapsed(start, device):  # 6 s per step: a 1-minute budget ends at step 10
        ticks.append(1)
        return 6.0 * len(ticks)

    monkeypatch.setattr(state, "_elapsed_s", fake_elapsed)
    run = tmp_path / "run"
    assert main(["train", "image", "--data", str(cifar_root), "--out", str(run), "--epochs",
                 "50", "--max-minutes", "1", *TINY]) == 0
    out = capsys.readouterr().out
    m = re.search(r"best val reconstruction MSE (\S+) at step (\S+);", out)
    assert m, out
    value, step = m.group(1), m.group(2)
    records = read_metrics(run / "metrics.jsonl")
    s = summarize(records)
    assert records[-1]["kind"] == "stop" and s.steps == 10 and s.stopped_early
    assert (value, step) == (format_number(s.best_value), format_number(s.best_step))
    html = write_report(run).read_text()
    assert f"best val reconstruction MSE (step {step})" in html and value in html
    assert "Stopped early at step 10" in html
    assert (run / "loss_vs_epochs.png").stat().st_size > 5000  # drawn at the stop


def test_interrupting_prints_how_to_resume_below_the_bar(cifar_root, tmp_path, capsys,
                                                        monkeypatch):
    import signal

    import vqkit.training.loop as loop

    real = loop.train_step
    calls = []

    def step_then_ctrl_c(r, batch):
        calls.append(1)
        if len(calls) == 3:
            signal.raise_signal(signal.SIGINT)
        return real(r, batch)

    monkeypatch.setattr(loop, "train_step", step_then_ctrl_c)
    run = tmp_path / "run"
    code = main(["train", "image", "--data", str(cifar_root), "--out", str(run), *TINY])
    err = capsys.readouterr().err
    assert code == 130 and "interrupted (SIGINT) at step 3" in err
    assert f"vqkit train --resume {run}" in err
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0


@pytest.mark.parametrize("device", ["cuda", "cuda:3", "mps"])
def test_a_missing_device_is_one_line(cifar_root, tmp_path, capsys, device):
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code = main(["train", "image", "--data", str(cifar_root), "--out", str(tmp_path / "r"),
                 "--device", device])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and device in err
    assert not (tmp_path / "r").exists()


def test_a_busy_machine_gets_a_one_line_hint(monkeypatch):
    import os

    from vqkit.training.train import busy_machine_hint

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (3.2, 3.0, 2.0))
    hint = busy_machine_hint(2)
    assert "load 3.2 on 2 cores" in hint and "num_threads=1" in hint and "\n" not in hint
    assert busy_machine_hint(1) == ""  # one thread already
    monkeypatch.setattr(os, "getloadavg", lambda: (0.4, 0.3, 0.2))
    assert busy_machine_hint(2) == ""


def test_vqkit_lets_idle_openmp_threads_sleep():
    import subprocess
    import sys

    code = "import os, vqkit; print(os.environ.get('OMP_WAIT_POLICY'))"
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "PASSIVE"
    out = subprocess.run([sys.executable, "-c", code], env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
                         capture_output=True, text=True)
    assert out.stdout.strip() == "ACTIVE"  # an explicit choice wins


def test_resume_auto_makes_a_script_rerunnable_and_refuses_another_config(
        cifar_root, tmp_path, tiny_image_config):
    from vqkit.errors import VQKitError
    from vqkit.training.train import train

    cfg = tiny_image_config(epochs=1)
    cfg.data.root = str(cifar_root)
    run = tmp_path / "run"
    first = train(cfg, run, resume="auto", progress=False)
    again = train(cfg, run, resume="auto", progress=False)  # finished: returns at once
    assert (first.step, first.epoch) == (again.step, again.epoch) == (8, 1)
    cfg.train.epochs = 2  # a stop limit: continues to it
    assert train(cfg, run, resume="auto", progress=False).epoch == 2
    cfg.train.lr = 1e-2
    with pytest.raises(VQKitError, match=r"another config \(train\.lr differ"):
        train(cfg, run, resume="auto", progress=False)
