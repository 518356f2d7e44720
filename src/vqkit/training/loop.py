"""The one training loop: every model vqkit trains goes through :func:`fit`.

A model brings a :class:`Task` (its loss on a batch, its validation, the metric that picks the
best checkpoint); the loop brings the rest: learning-rate schedule, clock and budget, logging,
checkpoints, exact resume, the finite-loss guard. Read :func:`fit` top to bottom.

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
from tqdm import tqdm

from vqkit.checkpoint import checkpoint_dir, save_checkpoint
from vqkit.config import RunConfig
from vqkit.data.source import Batch, BatchSource
from vqkit.distributed import all_reduce_max_, get_rank, get_world_size, is_main_process
from vqkit.errors import VQKitError
from vqkit.training.schedule import learning_rate

__all__ = ["Meter", "Task", "TrainDiverged", "TrainResult", "TrainState", "fit"]

CLOCK_SYNC_STEPS = 8  # under torchrun, ranks agree on the clock this often (an all-reduce syncs)


class Task(Protocol):
    """What a model brings to the loop."""

    best_metric: str  # key of validate()'s result that picks "best" (lower is better)
    best_label: str  # how to print it, e.g. "val reconstruction MSE"

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


class TrainDiverged(VQKitError):
    """The loss became NaN or infinite; nothing was saved after it did."""


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    epoch: int
    images_seen: int
    stopped: str  # "epochs", "max_steps" or "max_minutes"
    best_val: float
    best_metric: str
    best_label: str
    history: list[dict[str, Any]] = field(default_factory=list)


class Meter:
    """Running sums of per-step scalars, kept on their device: adding never waits for the device;
    reading (:meth:`means`, :meth:`state`) does. Sums are float64 (float32 on MPS), so a resumed
    epoch continues the same sums bit for bit."""

    def __init__(self, state: dict[str, float] | None = None) -> None:
        state = dict(state or {})
        self.n = int(state.pop("_n", 0))
        self.sums: dict[str, Tensor] = {k: torch.tensor(v, dtype=torch.float64)
                                        for k, v in state.items()}

    def add(self, values: dict[str, Tensor]) -> None:
        self.n += 1
        for k, v in values.items():
            v = v.detach().to(torch.float32 if v.device.type == "mps" else torch.float64)
            self.sums[k] = v if k not in self.sums else self.sums[k] + v

    def means(self) -> dict[str, float]:
        return {k: float(v) / max(1, self.n) for k, v in self.sums.items()}

    def state(self) -> dict[str, float]:
        return {**{k: float(v) for k, v in self.sums.items()}, "_n": float(self.n)}


@dataclass
class TrainState:
    """Everything besides weights and optimizer that an exact resume needs."""

    step: int = 0  # optimizer steps taken
    epoch: int = 0  # epochs completed
    batch_in_epoch: int = 0  # batches of the current epoch done
    items_seen: int = 0  # training items (images, clips, sequences), all ranks
    best_val: float = math.inf  # lowest value of the task's best_metric so far
    elapsed_s: float = 0.0  # wall-clock of earlier invocations
    lr_progress: float = 0.0  # how much of a cosine schedule the clock has spent (0..1)
    epoch_sums: dict[str, float] = field(default_factory=dict)  # Meter.state() of this epoch

    def to_dict(self, device: torch.device) -> dict[str, Any]:
        """The saved form, with the RNG states (key names kept from format 1)."""
        s: dict[str, Any] = {
            "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
            "images_seen": self.items_seen, "best_val": self.best_val,
            "elapsed_s": self.elapsed_s, "lr_progress": self.lr_progress,
            "epoch_sums": dict(self.epoch_sums), "rng_cpu": torch.get_rng_state(),
        }
        if device.type == "cuda":
            s["rng_cuda"] = torch.cuda.get_rng_state_all()
        return s

    @classmethod
    def restore(cls, s: dict[str, Any], device: torch.device) -> TrainState:
        """Read :meth:`to_dict`'s output (or a format-1 state) and restore the RNG states."""
        torch.set_rng_state(s["rng_cpu"])
        if device.type == "cuda" and "rng_cuda" in s:
            torch.cuda.set_rng_state_all(s["rng_cuda"])
        return cls(step=s["step"], epoch=s["epoch"], batch_in_epoch=s["batch_in_epoch"],
                   items_seen=s["images_seen"],
                   best_val=s.get("best_val", s.get("best_val_recon", math.inf)),
                   elapsed_s=s["elapsed_s"], lr_progress=s.get("lr_progress", 0.0),
                   epoch_sums=dict(s.get("epoch_sums", {})))


def _elapsed_s(start_time: float, device: torch.device) -> float:
    """Seconds since ``start_time``; the slowest rank's under torchrun, so that every rank
    stops at the same step and follows the same learning rate."""
    elapsed = time.time() - start_time
    if get_world_size() > 1:
        t = torch.tensor([elapsed], dtype=torch.float64, device=device)
        elapsed = float(all_reduce_max_(t))
    return elapsed


class Clock:
    """This invocation's wall-clock against its ``max_minutes`` budget, and the share of a
    cosine schedule it has spent: ``start + (1 - start) * elapsed / budget``, where ``start`` is
    what a resumed run had reached."""

    def __init__(self, max_minutes: float, progress_start: float, device: torch.device) -> None:
        self.budget_s = 60.0 * max_minutes
        self.start = self.progress = progress_start
        self.device = device
        self.t0 = time.time()
        self.elapsed = 0.0

    def tick(self, step: int) -> None:
        """After optimizer step ``step`` (0-based); ranks agree every CLOCK_SYNC_STEPS steps."""
        if self.budget_s and (get_world_size() == 1 or step % CLOCK_SYNC_STEPS == 0):
            self.elapsed = _elapsed_s(self.t0, self.device)
            self.progress = self.start + (1 - self.start) * min(1.0, self.elapsed / self.budget_s)

    def out_of_time(self) -> bool:
        return bool(self.budget_s) and self.elapsed >= self.budget_s


class FiniteGuard:
    """Remembers, on the device, the first step whose loss was NaN or infinite; :meth:`check`
    (a host sync) runs only where the loop reads values anyway or is about to save."""

    def __init__(self, device: torch.device) -> None:
        self.first_bad = torch.full((), -1, dtype=torch.long, device=device)

    def watch(self, loss: Tensor, step: int) -> None:
        bad = ~torch.isfinite(loss.detach()) & (self.first_bad < 0)
        self.first_bad = torch.where(bad, step + 1, self.first_bad)

    def check(self, run_dir: Path) -> None:
        bad = int(self.first_bad)
        if bad >= 0:
            raise TrainDiverged(
                f"{run_dir}: the loss became NaN or infinite at step {bad}; training stopped "
                f"and nothing after it was saved (lower the learning rate, check the data)")


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
    writer: Any
    steps_per_epoch: int
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def main(self) -> bool:
        return is_main_process()

    def lr(self) -> float:
        """The learning rate of the next optimizer step."""
        return learning_rate(self.cfg.train, self.state.step, self.steps_per_epoch,
                             self.clock.progress)

    def log(self, record: dict[str, Any]) -> None:
        if self.main:
            with open(self.run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    def save(self, which: str) -> None:
        """Checkpoint ``which`` ("last" or "best"); only rank 0 writes, never a diverged model."""
        self.guard.check(self.run_dir)
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
    """Train ``model`` on ``data[0]`` until ``cfg.train``'s epochs, steps or minutes run out.

    ``state`` holds the counters (fresh, or restored by :meth:`TrainState.restore`), the
    optimizer its state; ``on_epoch_end(record)`` runs on rank 0 after each epoch's record is
    logged (e.g. to redraw plots). Raises :class:`TrainDiverged` when the loss stops being
    finite.
    """
    t = cfg.train
    train_data, val_data = data
    world = get_world_size()
    r = _Run(task=task, model=model, raw=getattr(model, "module", model), cfg=cfg,
             val_data=val_data, optimizer=optimizer, run_dir=run_dir, device=device, state=state,
             meter=Meter(state.epoch_sums), clock=Clock(t.max_minutes, state.lr_progress, device),
             guard=FiniteGuard(device), writer=writer,
             steps_per_epoch=train_data.num_batches(t.batch_size))
    stopped = "max_steps" if t.max_steps and state.step >= t.max_steps else "epochs"
    model.train()
    while state.epoch < t.epochs and stopped == "epochs":
        bar = (tqdm(total=r.steps_per_epoch, initial=state.batch_in_epoch, leave=False,
                    desc=f"epoch {state.epoch + 1}", dynamic_ncols=True, disable=None)
               if r.main and progress else None)
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
            if bar is not None:
                bar.update(1)
            if state.step % t.log_every_steps == 0:
                _log_step(r, values, bar)
            if t.checkpoint_every_steps and state.step % t.checkpoint_every_steps == 0:
                r.save("last")
            if t.max_steps and state.step >= t.max_steps:
                stopped = "max_steps"
            elif r.clock.out_of_time():
                stopped = "max_minutes"
            if stopped != "epochs":
                break
        if bar is not None:
            bar.close()
        if stopped != "epochs" and state.batch_in_epoch < r.steps_per_epoch:
            if stopped == "max_minutes":
                # The budget's end is the schedule's end: judge these weights for "best" too.
                validate_and_save(r, {"kind": "stop", "step": state.step, "epoch": state.epoch,
                                      "images_seen": state.items_seen})
            else:
                r.save("last")  # mid-epoch stop: resume continues this epoch at batch_in_epoch
            break
        # -- end of epoch: validate, log, checkpoint
        seconds = time.time() - t_epoch
        record = validate_and_save(r, {
            "kind": "epoch", "epoch": state.epoch + 1, "step": state.step,
            "images_seen": state.items_seen, "lr": r.lr(),
            "images_per_s": items_epoch / max(seconds, 1e-9), **task.log_values(r.raw),
            **{f"train_{k}": v for k, v in r.meter.means().items()}})
        if writer is not None:
            for k, v in record.items():
                if k.startswith(("train_", "val_")):
                    writer.add_scalar(k.replace("_", "/", 1), v, state.step)
        if r.main:
            print(f"epoch {record['epoch']}/{t.epochs}  train loss {record['train_loss']:.4f}  "
                  f"val loss {record.get('val_loss', math.nan):.4f}  {task.summary(record)}  "
                  f"{record['images_per_s']:.0f} img/s", flush=True)
            if on_epoch_end is not None:
                on_epoch_end(record)
    return TrainResult(run_dir, state.step, state.epoch, state.items_seen, stopped,
                       state.best_val, task.best_metric, task.best_label, r.history)


def _log_step(r: _Run, values: dict[str, Tensor], bar: Any) -> None:
    """The step record: ``float()`` waits for the device, so this runs every log_every_steps."""
    r.guard.check(r.run_dir)
    s = r.state
    rec = {"kind": "step", "step": s.step, "epoch": s.epoch, "images_seen": s.items_seen,
           "lr": r.lr(), **r.task.log_values(r.raw), **{k: float(v) for k, v in values.items()}}
    r.log(rec)
    if bar is not None and "perplexity" in rec:
        bar.set_postfix(loss=f"{rec['loss']:.4f}", ppl=f"{rec['perplexity']:.0f}",
                        usage=f"{rec.get('window_usage', math.nan):.2f}")
    if r.writer is not None:
        for k in ("loss", "recon", "vq", "perplexity", "window_usage", "lr"):
            if k in rec:
                r.writer.add_scalar(f"train/{k}", rec[k], s.step)
