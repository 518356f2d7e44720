"""The one training loop: every model vqkit trains goes through :func:`fit`.

A model brings a :class:`Task` (its loss on a batch, its validation, the metric that picks the
best checkpoint); the loop brings the rest: learning-rate schedule, clock and budget, logging,
checkpoints (per epoch, every few minutes, at any stop), exact resume, the finite-loss guard,
Ctrl-C and SIGTERM. Read :func:`fit` top to bottom.

Nothing in the loop waits for the device on every step: losses are summed on the device and
read (``float``) only at log time, at a checkpoint or at the end of an epoch.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from vqkit.checkpoint import checkpoint_dir, save_checkpoint
from vqkit.config import RunConfig
from vqkit.data.source import Batch, BatchSource
from vqkit.distributed import get_rank, get_world_size, is_main_process
from vqkit.errors import VQKitError
from vqkit.training.progress import Progress
from vqkit.training.schedule import learning_rate
from vqkit.training.state import Clock, FiniteGuard, Meter, StopSignals, TrainState

__all__ = ["Task", "TrainResult", "fit", "train_step", "validate_and_save"]


class Task(Protocol):
    """What a model brings to the loop."""

    best_metric: str  # key of validate()'s result that picks "best" (lower is better)
    best_label: str  # how to print it, e.g. "val reconstruction MSE"
    unit: str  # what one training item is, for progress: "img", "clip", "seq"
    seconds_per_item: float  # audio seconds in one training item (0: not audio)

    def loss(self, model: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, Tensor], int]:
        """(loss to backpropagate, detached scalars to log, items in the batch)."""
        ...

    def validate(self, model: nn.Module, data: BatchSource) -> dict[str, float]:
        """Metrics of the validation split, keys prefixed ``val_``."""
        ...

    def log_values(self, model: nn.Module) -> dict[str, float]:
        """Extra values read at log time (e.g. codebook usage over a window of batches)."""
        ...

    def summary(self, record: dict[str, Any]) -> str:
        """The task's part of the line printed at the end of an epoch."""
        ...


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    epoch: int
    images_seen: int
    stopped: str  # "epochs", "max_steps", "max_minutes" or "interrupted"
    best_val: float
    best_metric: str
    best_label: str
    history: list[dict[str, Any]] = field(default_factory=list)
    signal: str = ""  # "SIGINT" or "SIGTERM" when interrupted


@dataclass
class _Run:
    """What the loop's helper functions share."""

    task: Task
    model: nn.Module  # possibly wrapped by DDP
    raw: nn.Module  # the model itself: saved, validated
    cfg: RunConfig
    val_data: BatchSource
    optimizer: torch.optim.Optimizer
    run_dir: Path
    device: torch.device
    state: TrainState
    meter: Meter
    clock: Clock
    guard: FiniteGuard
    progress: Progress
    writer: Any
    steps_per_epoch: int
    history: list[dict[str, Any]] = field(default_factory=list)
    last_save: float = field(default_factory=time.time)

    @property
    def main(self) -> bool:
        return is_main_process()

    def lr(self) -> float:
        """The learning rate of the next optimizer step."""
        return learning_rate(self.cfg.train, self.state.step, self.steps_per_epoch,
                             self.clock.progress)

    def log(self, record: dict[str, Any]) -> None:
        if not self.main:
            return
        try:
            with open(self.run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as e:
            raise VQKitError(f"{self.run_dir / 'metrics.jsonl'}: cannot append "
                             f"({e.strerror or e})") from None

    def save(self, which: str) -> None:
        """Checkpoint ``which`` ("last" or "best"); only rank 0 writes, never a diverged model."""
        self.guard.check(self.run_dir)
        self.last_save = time.time()
        if not self.main:
            return
        s = self.state
        s.epoch_sums = self.meter.state()
        saved = {**s.to_dict(self.device), "optimizer": self.optimizer.state_dict(),
                 "elapsed_s": s.elapsed_s + time.time() - self.clock.t0,
                 "lr_progress": self.clock.progress, "best_metric": self.task.best_metric}
        save_checkpoint(checkpoint_dir(self.run_dir, which), model=self.raw, config=self.cfg,
                        state=saved, meta={"step": s.step, "epoch": s.epoch,
                                           "images_seen": s.items_seen})


def autocast_for(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The forward pass's precision: "fp32" (no autocast) or "bf16" (autocast; quantizers keep
    their distances and codebook updates in fp32)."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision == "fp32":
        return contextlib.nullcontext()
    raise VQKitError(f"train.precision: unknown {precision!r} (fp32, bf16)")


def train_step(r: _Run, batch: Batch) -> tuple[dict[str, Tensor], int]:
    """One optimizer step on ``batch``; returns the task's detached scalars and the batch size."""
    t = r.cfg.train
    for group in r.optimizer.param_groups:
        group["lr"] = r.lr()
    with autocast_for(t.precision, r.device):
        loss, values, n = r.task.loss(r.model, batch)
    r.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if t.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(r.model.parameters(), t.grad_clip)
    r.optimizer.step()
    r.guard.watch(loss, r.state.step)
    return values, n


def validate_and_save(r: _Run, record: dict[str, Any]) -> dict[str, Any]:
    """Validate, log ``record`` with the validation metrics, save "last", and "best" when the
    task's best metric improved. An epoch record also closes the epoch before saving, so that
    "last" resumes at the next one."""
    r.guard.check(r.run_dir)
    record.update(r.task.validate(r.raw, r.val_data))
    if record["kind"] == "epoch":
        record["time_s"] = r.state.elapsed_s + time.time() - r.clock.t0
        r.history.append(record)
    r.log(record)
    if record["kind"] == "epoch":
        r.state.epoch += 1
        r.state.batch_in_epoch = 0
        r.meter = Meter()
    score = record.get(r.task.best_metric, math.inf)
    improved = score < r.state.best_val
    r.state.best_val = min(r.state.best_val, score)  # before saving: "last" records it
    r.save("last")
    if improved:
        r.save("best")
    return record


def fit(task: Task, model: nn.Module, cfg: RunConfig, data: tuple[BatchSource, BatchSource],
        run_dir: Path, *, device: torch.device, optimizer: torch.optim.Optimizer,
        state: TrainState, progress: bool = True, writer: Any = None,
        on_epoch_end: Any = None) -> TrainResult:
    """Train ``model`` on ``data[0]`` until ``cfg.train``'s epochs, steps or minutes run out, or
    SIGINT/SIGTERM asks it to stop (a resumable checkpoint is saved first).

    ``state`` holds the counters (fresh, or restored by :meth:`TrainState.restore`), the
    optimizer its state; ``on_epoch_end(record)`` runs on rank 0 after each epoch's record is
    logged (e.g. to redraw plots). Raises :class:`~vqkit.training.state.TrainDiverged` when the
    loss stops being finite.
    """
    t = cfg.train
    train_data, val_data = data
    world = get_world_size()
    r = _Run(task=task, model=model, raw=getattr(model, "module", model), cfg=cfg,
             val_data=val_data, optimizer=optimizer, run_dir=run_dir, device=device,
             state=state, meter=Meter(state.epoch_sums),
             clock=Clock(t.max_minutes, state.lr_progress, device), guard=FiniteGuard(device),
             progress=Progress(enabled=progress and is_main_process(), unit=task.unit,
                               items_per_epoch=len(train_data), epochs=t.epochs,
                               done=state.items_seen, budget_s=60 * t.max_minutes,
                               seconds_per_item=task.seconds_per_item),
             writer=writer, steps_per_epoch=train_data.num_batches(t.batch_size))
    stopped = "max_steps" if t.max_steps and state.step >= t.max_steps else "epochs"
    model.train()
    with StopSignals() as signals:
        while state.epoch < t.epochs and stopped == "epochs":
            r.progress.epoch(state.epoch)
            t_epoch, items_epoch = time.time(), 0
            for batch in train_data.batches(t.batch_size, epoch=state.epoch, seed=t.seed,
                                            start=state.batch_in_epoch, rank=get_rank(),
                                            world_size=world):
                values, n = train_step(r, batch)
                r.clock.tick(state.step)
                state.step += 1
                state.batch_in_epoch += 1
                state.items_seen += n * world
                items_epoch += n * world
                r.meter.add(values)
                r.progress.update(n * world)
                if state.step % t.log_every_steps == 0:
                    _log_step(r, values)
                if ((t.checkpoint_every_steps and state.step % t.checkpoint_every_steps == 0)
                        or (t.checkpoint_every_minutes
                            and time.time() - r.last_save >= 60 * t.checkpoint_every_minutes)):
                    r.save("last")
                if t.max_steps and state.step >= t.max_steps:
                    stopped = "max_steps"
                elif r.clock.out_of_time():
                    stopped = "max_minutes"
                elif signals.requested(state.step, device):
                    stopped = "interrupted"
                if stopped != "epochs":
                    break
            if stopped != "epochs" and state.batch_in_epoch < r.steps_per_epoch:
                if stopped == "max_minutes":
                    # The budget's end is the schedule's end: judge these weights for "best".
                    validate_and_save(r, {"kind": "stop", "reason": stopped, "step": state.step,
                                          "epoch": state.epoch, "images_seen": state.items_seen})
                else:
                    r.save("last")  # mid-epoch stop: resume continues at batch_in_epoch
                break
            _end_of_epoch(r, items_epoch, time.time() - t_epoch, on_epoch_end)
    r.progress.close()
    return TrainResult(run_dir, state.step, state.epoch, state.items_seen, stopped,
                       state.best_val, task.best_metric, task.best_label, r.history,
                       signal=signals.name)


def _end_of_epoch(r: _Run, items: int, seconds: float, on_epoch_end: Any) -> None:
    """Validate, log, checkpoint; then TensorBoard, the epoch's line and ``on_epoch_end``."""
    s, t = r.state, r.cfg.train
    record = validate_and_save(r, {
        "kind": "epoch", "epoch": s.epoch + 1, "step": s.step, "images_seen": s.items_seen,
        "lr": r.lr(), "images_per_s": items / max(seconds, 1e-9), **r.task.log_values(r.raw),
        **{f"train_{k}": v for k, v in r.meter.means().items()}})
    if r.writer is not None:
        for k, v in record.items():
            if k.startswith(("train_", "val_")):
                r.writer.add_scalar(k.replace("_", "/", 1), v, s.step)
    if r.main:
        rate = f"{record['images_per_s']:.0f} {r.task.unit}/s"
        if r.task.seconds_per_item:
            rate += f" ({record['images_per_s'] * r.task.seconds_per_item:.0f} s of audio/s)"
        r.progress.write(f"epoch {record['epoch']}/{t.epochs}  train loss "
                         f"{record['train_loss']:.4f}  val loss "
                         f"{record.get('val_loss', math.nan):.4f}  {r.task.summary(record)}  "
                         f"{rate}")
        if on_epoch_end is not None:
            on_epoch_end(record)


def _log_step(r: _Run, values: dict[str, Tensor]) -> None:
    """The step record: ``float()`` waits for the device, so this runs every log_every_steps."""
    r.guard.check(r.run_dir)
    s = r.state
    rec = {"kind": "step", "step": s.step, "epoch": s.epoch, "images_seen": s.items_seen,
           "lr": r.lr(), **r.task.log_values(r.raw), **{k: float(v) for k, v in values.items()}}
    r.log(rec)
    shown = {"loss": f"{rec['loss']:.4f}"}
    if "window_usage" in rec:
        shown["codes used"] = f"{rec['window_usage']:.0%}"
    r.progress.show(**shown)
    if r.writer is not None:
        for k in ("loss", "recon", "vq", "perplexity", "window_usage", "lr"):
            if k in rec:
                r.writer.add_scalar(f"train/{k}", rec[k], s.step)
