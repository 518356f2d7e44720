"""The training loop, read top to bottom: setup, data, model, optimizer, resume, loop.

``train(cfg, out_dir)`` trains a VQ-VAE and returns a :class:`TrainResult`; the run directory
receives ``config.json``, ``metrics.jsonl`` (one JSON line per logged step and per epoch),
``loss_vs_epochs.png`` and ``checkpoints/{last,best}``. ``train(None, out_dir, resume=True)``
continues a run exactly where it stopped.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from vqkit.checkpoint import checkpoint_dir, load_checkpoint, save_checkpoint
from vqkit.config import RunConfig
from vqkit.data.source import BatchSource
from vqkit.distributed import (
    all_reduce_max_,
    get_rank,
    get_world_size,
    is_main_process,
    setup_distributed,
)
from vqkit.errors import VQKitError
from vqkit.evaluation.metrics import code_histogram, histogram_stats
from vqkit.models import build_model
from vqkit.utils import resolve_device, seed_everything


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    epoch: int
    images_seen: int
    stopped: str  # "epochs", "max_steps" or "max_minutes"
    best_val_recon: float
    history: list[dict[str, Any]] = field(default_factory=list)


def reconstruction_loss(xhat: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None = None):
    """Mean squared error, over the positions where ``mask`` (broadcastable to x) is true."""
    if mask is None:
        return F.mse_loss(xhat, x)
    mask = mask.expand_as(x).to(x.dtype)
    return ((xhat - x) ** 2 * mask).sum() / mask.sum().clamp_min(1)


def split_batch(batch) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Data sources yield a tensor, or (tensor, mask of real positions)."""
    return batch if isinstance(batch, tuple) else (batch, None)


def lr_factor(cfg: RunConfig, step: int, steps_per_epoch: int, progress_floor: float = 0.0
              ) -> float:
    """Multiplier of the base learning rate at optimizer step ``step``.

    ``progress_floor`` (0..1) is how much of the cosine is spent at least, whatever the step:
    the share of a ``max_minutes`` budget used so far (see :func:`train`).
    """
    t = cfg.train
    warm = min(1.0, (step + 1) / t.warmup_steps) if t.warmup_steps > 0 else 1.0
    if t.lr_schedule == "constant":
        return warm
    if t.lr_schedule == "step":
        return warm * t.lr_gamma ** ((step // steps_per_epoch) // t.lr_step_epochs)
    if t.lr_schedule == "cosine":
        # Annealed over the configured epochs, or over the time budget if that ends sooner;
        # max_steps only stops early, so an interrupted run follows the uninterrupted schedule.
        total = max(1, t.epochs * steps_per_epoch)
        progress = min(1.0, max(step / total, progress_floor))
        return warm * 0.5 * (1 + math.cos(math.pi * progress))
    raise VQKitError(f"train.lr_schedule: unknown {t.lr_schedule!r} (constant, step, cosine)")


CLOCK_SYNC_STEPS = 8


def _elapsed_s(start_time: float, device: torch.device) -> float:
    """Seconds since ``start_time``; the slowest rank's under torchrun, so that every rank
    stops at the same step and follows the same learning rate."""
    elapsed = time.time() - start_time
    if get_world_size() > 1:
        t = torch.tensor([elapsed], dtype=torch.float64, device=device)
        elapsed = float(all_reduce_max_(t))
    return elapsed


def build_optimizer(cfg: RunConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    t = cfg.train
    params = [p for p in model.parameters() if p.requires_grad]
    if t.optimizer == "adam":
        return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)
    if t.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)
    raise VQKitError(f"train.optimizer: unknown {t.optimizer!r} (adam, adamw)")


class _Sums:
    """Running sums of per-batch scalars (kept as tensors; synced only when read)."""

    def __init__(self, state: dict[str, float] | None = None) -> None:
        self.n = int((state or {}).pop("_n", 0))
        self.sums: dict[str, float] = dict(state or {})

    def add(self, values: dict[str, torch.Tensor]) -> None:
        self.n += 1
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)

    def means(self) -> dict[str, float]:
        return {k: v / max(1, self.n) for k, v in self.sums.items()}

    def state(self) -> dict[str, float]:
        return {**self.sums, "_n": float(self.n)}


@torch.no_grad()
def validation_losses(model, data, cfg: RunConfig, device: torch.device) -> dict[str, float]:
    """Mean losses over the validation split, and perplexity/usage of its whole code histogram."""
    model.eval()
    sums = _Sums()
    counts = None
    for i, batch in enumerate(data.batches(cfg.train.batch_size)):
        if cfg.train.val_max_batches and i >= cfg.train.val_max_batches:
            break
        x, mask = split_batch(batch)
        x = x.to(device, non_blocking=True)
        if cfg.train.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        xhat, out = model(x)
        recon = reconstruction_loss(xhat, x, None if mask is None else mask.to(device))
        loss = cfg.train.recon_weight * recon + out.loss
        sums.add({"recon": recon, "vq": out.loss, "loss": loss})
        q = model.quantizer
        c = code_histogram(out.codes, q.codebook_size, q.num_quantizers)
        counts = c if counts is None else counts + c
    model.train()
    res = {f"val_{k}": v for k, v in sums.means().items()}
    if counts is not None:
        res["val_perplexity"], res["val_usage"] = histogram_stats(counts)
    return res


def train(
    cfg: RunConfig | None,
    out_dir: str | Path,
    *,
    resume: bool = False,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
    data: tuple[BatchSource, BatchSource] | None = None,
    tensorboard: bool = False,
) -> TrainResult:
    """Train (or, with ``resume``, continue) a run in ``out_dir``.

    A resumed run takes everything from its saved config, except that the stop limits of the
    interrupted invocation (``max_steps``, ``max_minutes``) are cleared: it continues to the
    configured epochs unless ``overrides`` (``epochs``, ``max_steps``, ``max_minutes``,
    ``device``) set new ones. ``max_minutes`` counts the wall-clock of this invocation.
    ``data`` may pass prepared ``(train, val)`` sources instead of loading them from ``cfg.data``.
    """
    from vqkit.data.loaders import load_training_data
    from vqkit.figures.curves import plot_loss_curves

    run_dir = Path(out_dir)
    ckpt = None
    # -- config: a resumed run takes everything (architecture included) from its saved config
    if resume:
        ckpt = load_checkpoint(run_dir, "last")
        cfg = ckpt.config
        cfg.train.max_steps, cfg.train.max_minutes = 0, 0.0
        for k, v in (overrides or {}).items():
            if v is not None:
                setattr(cfg.train, k, v)
    elif cfg is None:
        raise VQKitError("train: a config is needed unless resuming")
    elif (checkpoint_dir(run_dir, "last") / "meta.json").exists():
        raise VQKitError(f"{run_dir}: already holds a run; use --resume {run_dir} or a new --out")
    assert cfg is not None
    t = cfg.train
    # -- setup: process group (under torchrun), seed, device
    device = setup_distributed(resolve_device(t.device))
    main = is_main_process()
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        cfg.save(run_dir / "config.json")

    seed_everything(t.seed + get_rank())
    if t.num_threads > 0:
        torch.set_num_threads(t.num_threads)

    # -- data: whole splits in memory, batched by indexing
    train_data, val_data = data if data is not None else load_training_data(cfg)
    if hasattr(train_data, "to") and device.type == "cuda":
        train_data, val_data = train_data.to(device), val_data.to(device)
    steps_per_epoch = train_data.num_batches(t.batch_size)
    if steps_per_epoch == 0:
        raise VQKitError("train: the training split is empty")

    # -- model and optimizer
    raw_model = build_model(cfg.model, cfg.quantizer).to(device)
    if t.channels_last:
        raw_model = raw_model.to(memory_format=torch.channels_last)
    model = raw_model
    world = get_world_size()
    if world > 1:
        # Gradients are averaged across ranks; the quantizers all-reduce their own statistics.
        model = torch.nn.parallel.DistributedDataParallel(
            raw_model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = build_optimizer(cfg, raw_model)
    # With a max_minutes budget, a cosine schedule also follows the clock: its progress is at
    # least progress_start + (1 - progress_start) * (share of the budget used), so a run given
    # N minutes anneals to the end within them on any machine. progress_start is the floor a
    # resumed run had reached (saved as "lr_progress"); without a budget, steps alone count.
    clock = {"start": 0.0, "floor": 0.0}
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(cfg, s, steps_per_epoch, clock["floor"]))

    # -- counters, restored on resume together with the RNG states
    step, epoch, batch_in_epoch, images_seen = 0, 0, 0, 0
    best_val = math.inf
    elapsed_before = 0.0
    epoch_sums = _Sums()
    if ckpt is not None:
        raw_model.load_state_dict(ckpt.model_state)
        s = ckpt.state
        optimizer.load_state_dict(s["optimizer"])
        scheduler.load_state_dict(s["scheduler"])
        step, epoch, batch_in_epoch = s["step"], s["epoch"], s["batch_in_epoch"]
        images_seen, best_val = s["images_seen"], s["best_val_recon"]
        elapsed_before = s["elapsed_s"]
        clock["start"] = clock["floor"] = s.get("lr_progress", 0.0)
        epoch_sums = _Sums(dict(s["epoch_sums"]))
        torch.set_rng_state(s["rng_cpu"])
        if device.type == "cuda" and "rng_cuda" in s:
            torch.cuda.set_rng_state_all(s["rng_cuda"])

    writer = None
    if tensorboard and main:
        from vqkit.training.tensorboard import make_writer

        writer = make_writer(run_dir)

    def training_state() -> dict[str, Any]:
        s = {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "step": step,
            "epoch": epoch,
            "batch_in_epoch": batch_in_epoch,
            "images_seen": images_seen,
            "best_val_recon": best_val,
            "elapsed_s": elapsed_before + time.time() - start_time,
            "lr_progress": clock["floor"],
            "epoch_sums": epoch_sums.state(),
            "rng_cpu": torch.get_rng_state(),
        }
        if device.type == "cuda":
            s["rng_cuda"] = torch.cuda.get_rng_state_all()
        return s

    def save(which: str) -> None:
        if main:
            save_checkpoint(checkpoint_dir(run_dir, which), model=raw_model, config=cfg,
                            state=training_state(),
                            meta={"step": step, "epoch": epoch, "images_seen": images_seen})

    def save_validated(val_recon: float) -> None:
        """Save "last", and "best" too when ``val_recon`` beats every earlier validation.

        "best" is judged on reconstruction alone: with EMA codebooks the commitment term grows
        as the encoder spreads over more codes, which says nothing about quality."""
        nonlocal best_val
        improved = val_recon < best_val
        best_val = min(best_val, val_recon)  # before saving: "last" records it for resume
        save("last")
        if improved:
            save("best")

    def log(record: dict[str, Any]) -> None:
        if main:
            with open(run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    history: list[dict[str, Any]] = []
    start_time = time.time()
    budget_s = 60 * t.max_minutes
    elapsed = 0.0
    stopped = "epochs"
    bar = None
    model.train()
    if t.max_steps and step >= t.max_steps:
        stopped = "max_steps"  # already there: nothing left to do
    # -- the loop: one pass per epoch, validation and checkpoint at the end of each
    while epoch < t.epochs and stopped == "epochs":
        if main and progress:
            bar = tqdm(total=steps_per_epoch, initial=batch_in_epoch, desc=f"epoch {epoch + 1}",
                       leave=False, dynamic_ncols=True, disable=None)
        t_epoch = time.time()
        images_epoch = 0
        for batch in train_data.batches(t.batch_size, epoch=epoch, seed=t.seed,
                                        start=batch_in_epoch, rank=get_rank(), world_size=world):
            x, mask = split_batch(batch)
            x = x.to(device, non_blocking=True)
            if t.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            xhat, out = model(x)
            recon = reconstruction_loss(xhat, x, None if mask is None else mask.to(device))
            loss = t.recon_weight * recon + out.loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if t.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
            optimizer.step()
            # Under torchrun the ranks agree on the clock every CLOCK_SYNC_STEPS steps (an
            # all-reduce syncs a GPU); alone, every step. Same step count: same decisions.
            if budget_s and (world == 1 or step % CLOCK_SYNC_STEPS == 0):
                elapsed = _elapsed_s(start_time, device)
                clock["floor"] = clock["start"] + (1 - clock["start"]) * min(
                    1.0, elapsed / budget_s)
            scheduler.step()
            step += 1
            batch_in_epoch += 1
            images_seen += x.shape[0] * world
            images_epoch += x.shape[0] * world
            values = {"loss": loss.detach(), "recon": recon.detach(), "vq": out.loss.detach(),
                      **{k: v.detach() for k, v in out.losses.items()},
                      **{k: v for k, v in out.metrics.items()}}
            epoch_sums.add(values)
            if bar is not None:
                bar.update(1)
            if step % t.log_every_steps == 0:
                # float() syncs with the device; only every log_every_steps steps.
                rec = {"kind": "step", "step": step, "epoch": epoch, "images_seen": images_seen,
                       "lr": scheduler.get_last_lr()[0],
                       "window_usage": raw_model.quantizer.window_usage(),
                       **{k: float(v) for k, v in values.items()}}
                log(rec)
                if bar is not None:
                    bar.set_postfix(loss=f"{rec['loss']:.4f}", ppl=f"{rec['perplexity']:.0f}",
                                    usage=f"{rec['window_usage']:.2f}")
                if writer is not None:
                    for k in ("loss", "recon", "vq", "perplexity", "window_usage", "lr"):
                        writer.add_scalar(f"train/{k}", rec[k], step)
            if t.checkpoint_every_steps and step % t.checkpoint_every_steps == 0:
                save("last")
            if t.max_steps and step >= t.max_steps:
                stopped = "max_steps"
            elif budget_s and elapsed >= budget_s:
                stopped = "max_minutes"
            if stopped != "epochs":
                break
        if bar is not None:
            bar.close()
        if stopped != "epochs" and batch_in_epoch < steps_per_epoch:
            if stopped == "max_minutes":
                # The budget's end is the schedule's end: judge these weights for "best" too.
                val = validation_losses(raw_model, val_data, cfg, device)
                log({"kind": "stop", "step": step, "epoch": epoch, "images_seen": images_seen,
                     **val})
                save_validated(val.get("val_recon", math.inf))
            else:
                save("last")  # mid-epoch stop: resume continues this epoch at batch_in_epoch
            break
        # -- end of epoch: validate, log, plot, checkpoint
        seconds = time.time() - t_epoch
        record = {"kind": "epoch", "epoch": epoch + 1, "step": step, "images_seen": images_seen,
                  "lr": scheduler.get_last_lr()[0],
                  "images_per_s": images_epoch / max(seconds, 1e-9),
                  "window_usage": raw_model.quantizer.window_usage(),
                  **{f"train_{k}": v for k, v in epoch_sums.means().items()},
                  **validation_losses(raw_model, val_data, cfg, device)}
        record["time_s"] = elapsed_before + time.time() - start_time
        history.append(record)
        log(record)
        if writer is not None:
            for k, v in record.items():
                if k.startswith(("train_", "val_")):
                    writer.add_scalar(k.replace("_", "/", 1), v, step)
            writer.log_samples(raw_model, val_data, cfg, step)
        if main:
            print(f"epoch {epoch + 1}/{t.epochs}  train loss {record['train_loss']:.4f}  "
                  f"val loss {record.get('val_loss', float('nan')):.4f}  "
                  f"val perplexity {record.get('val_perplexity', float('nan')):.1f}  "
                  f"usage {record.get('val_usage', float('nan')):.2f}  "
                  f"{record['images_per_s']:.0f} img/s", flush=True)
        epoch += 1
        batch_in_epoch = 0
        epoch_sums = _Sums()
        save_validated(record.get("val_recon", math.inf))
        if main:
            plot_loss_curves(run_dir / "metrics.jsonl", run_dir / "loss_vs_epochs.png")
        if stopped != "epochs":
            break
    if writer is not None:
        writer.close()
    return TrainResult(run_dir, step, epoch, images_seen, stopped, best_val, history)
