"""The training loop's state: counters and RNG (:class:`TrainState`, saved and restored in one
place), running sums kept on the device (:class:`Meter`), the clock and its budget
(:class:`Clock`), the finite-loss guard (:class:`FiniteGuard`) and stop requests from signals
(:class:`StopSignals`)."""

from __future__ import annotations

import math
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vqkit.distributed import all_reduce_max_, get_world_size
from vqkit.errors import VQKitError

__all__ = ["CLOCK_SYNC_STEPS", "Clock", "FiniteGuard", "Meter", "StopSignals", "TrainDiverged",
           "TrainState"]

CLOCK_SYNC_STEPS = 8  # under torchrun, ranks agree on the clock this often (an all-reduce syncs)


class TrainDiverged(VQKitError):
    """The loss became NaN or infinite; nothing was saved after it did."""


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


class StopSignals:
    """While active, SIGINT and SIGTERM ask the loop to stop at the next step boundary (it saves
    a resumable checkpoint first) instead of killing it; a second signal of the same kind then
    acts as usual. Handlers are installed only from the main thread, and restored on exit."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received == signum:  # asked twice: stop now
            signal.signal(signum, self._old.get(signum, signal.SIG_DFL))
            signal.raise_signal(signum)
            return
        self.received = signum

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)
        self._old = {}

    def requested(self, step: int, device: torch.device) -> bool:
        """Whether to stop after ``step``; ranks agree every CLOCK_SYNC_STEPS steps."""
        if get_world_size() == 1:
            return self.received is not None
        if step % CLOCK_SYNC_STEPS:
            return False
        flag = torch.tensor([0.0 if self.received is None else 1.0], device=device)
        return bool(all_reduce_max_(flag) > 0)

    @property
    def name(self) -> str:
        return signal.Signals(self.received).name if self.received is not None else ""
