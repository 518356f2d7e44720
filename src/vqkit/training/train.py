"""``train(cfg, out_dir)``: train a VQ-VAE (or resume one) through the training loop.

The run directory receives ``config.json``, ``metrics.jsonl`` (one JSON line per logged step,
per epoch and per early stop), ``loss_vs_epochs.png`` and ``checkpoints/{last,best}``.
``train(None, out_dir, resume=True)`` continues a run exactly where it stopped. One process
writes a run folder at a time (:class:`~vqkit.rundir.RunLock`); a start that fails before the
first checkpoint leaves no run folder behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import torch

from vqkit.checkpoint import checkpoint_dir, find_checkpoint, load_checkpoint
from vqkit.config import RunConfig, apply_dict
from vqkit.data.source import BatchSource
from vqkit.distributed import (
    env_rank,
    get_rank,
    get_world_size,
    is_main_process,
    setup_distributed,
)
from vqkit.errors import VQKitError
from vqkit.figures.curves import plot_loss_curves
from vqkit.rundir import LOCK_NAME, RunLock
from vqkit.runlog import trim_to_step
from vqkit.training.loop import TrainResult, fit
from vqkit.training.prior_task import prior_setup
from vqkit.training.schedule import build_optimizer
from vqkit.training.state import TrainState
from vqkit.training.vqvae_task import vqvae_setup
from vqkit.utils import resolve_device, seed_everything

__all__ = ["TrainResult", "train"]

RUN_FILES = ("config.json", "data.json", "metrics.jsonl", "loss_vs_epochs.png", LOCK_NAME)
# How each task builds its model, data and loop Task (cfg.task -> setup function).
SETUPS = {"image": vqvae_setup, "speech": vqvae_setup, "prior": prior_setup}


def train(
    cfg: RunConfig | None,
    out_dir: str | Path,
    *,
    resume: bool | str = False,
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

    ``resume="auto"`` (with ``cfg``) makes a script re-runnable: a new run when ``out_dir`` holds
    none, otherwise it continues that run to ``cfg``'s epochs (and returns at once when they are
    done); a run whose saved config differs from ``cfg`` beyond the stop limits is refused.
    """
    run_dir = Path(out_dir)
    if resume == "auto":
        resume, overrides = _auto_resume(cfg, run_dir, overrides or {})
    if resume:
        find_checkpoint(run_dir, "last")  # a clear error before anything else
    elif cfg is None:
        raise VQKitError("train: a config is needed unless resuming")
    else:
        cfg.validate()
    created = not run_dir.exists()
    if env_rank() == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
    lock = RunLock(run_dir) if env_rank() == 0 else contextlib.nullcontext()
    try:
        with lock:
            return _train_locked(cfg, run_dir, resume=resume, overrides=overrides or {},
                                 progress=progress, data=data, tensorboard=tensorboard)
    except BaseException:
        if created and env_rank() == 0:
            _remove_if_no_checkpoint(run_dir)
        raise


def busy_machine_hint(threads: int) -> str:
    """One line when other processes already keep this machine's cores busy (load average
    above the cores minus half of one): training threads then compete with them."""
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:  # not available on this platform
        return ""
    if load <= cores - 0.5 or threads <= 1:
        return ""
    return (f"vqkit: note: the machine is busy (load {load:.1f} on {cores} cores) and this run "
            f"uses {threads} threads; if it trains slowly, try --set train.num_threads=1")


# Settings a resumed run may change: when to stop, and where and how fast it runs.
RESUMABLE = ("epochs", "max_steps", "max_minutes", "device", "num_threads")


def _auto_resume(cfg: RunConfig | None, run_dir: Path,
                 overrides: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """(resume?, overrides) for ``resume="auto"``: resume when ``run_dir`` holds a run whose
    config is ``cfg`` up to the stop limits, taking those from ``cfg``."""
    if cfg is None:
        raise VQKitError('train: resume="auto" needs a config')
    if not (checkpoint_dir(run_dir, "last") / "meta.json").exists():
        return False, overrides
    saved = load_checkpoint(run_dir, "last", with_state=False).config.to_dict()
    wanted = cfg.validate().to_dict()
    for d in (saved, wanted):
        for k in RESUMABLE:
            d["train"].pop(k)
    if saved != wanted:
        diff = [f"{sec}.{k}" for sec, vals in wanted.items() if isinstance(vals, dict)
                for k, v in vals.items() if saved.get(sec, {}).get(k) != v]
        diff += [k for k, v in wanted.items() if not isinstance(v, dict) and saved.get(k) != v]
        raise VQKitError(f"{run_dir}: holds a run with another config ({', '.join(diff)} "
                         f"differ); use a new --out")
    return True, {**{k: getattr(cfg.train, k) for k in RESUMABLE}, **overrides}


def _remove_if_no_checkpoint(run_dir: Path) -> None:
    """Undo a start that failed before its first checkpoint: remove the files it wrote and the
    folder (only if nothing else is in it)."""
    if (run_dir / "checkpoints").exists():
        return
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    shutil.rmtree(run_dir / "tensorboard", ignore_errors=True)
    with contextlib.suppress(OSError):
        run_dir.rmdir()


def _train_locked(cfg: RunConfig | None, run_dir: Path, *, resume: bool,
                  overrides: dict[str, Any], progress: bool,
                  data: tuple[BatchSource, BatchSource] | None, tensorboard: bool) -> TrainResult:
    # -- config: a resumed run takes everything (architecture included) from its saved config
    ckpt = None
    if resume:
        ckpt = load_checkpoint(run_dir, "last")
        cfg = ckpt.config
        cfg.train.max_steps, cfg.train.max_minutes = 0, 0.0
        apply_dict(cfg, {"train": {k: v for k, v in overrides.items() if v is not None}},
                   "--resume option")
    elif (checkpoint_dir(run_dir, "last") / "meta.json").exists():
        raise VQKitError(f"{run_dir}: already holds a run; use --resume {run_dir} or a new --out")
    assert cfg is not None
    t = cfg.train

    # -- setup: process group (under torchrun), seed, threads, device
    device = setup_distributed(resolve_device(t.device))
    if is_main_process():
        cfg.save(run_dir / "config.json")
        if ckpt is not None:  # the records after the checkpoint will be logged again
            trim_to_step(run_dir / "metrics.jsonl", ckpt.state["step"])
    seed_everything(t.seed + get_rank())
    if t.num_threads > 0:
        torch.set_num_threads(t.num_threads)
    if is_main_process() and device.type == "cpu":
        hint = busy_machine_hint(torch.get_num_threads())
        if hint:
            print(hint, file=sys.stderr)

    # -- model, data and task for this kind of run (see SETUPS)
    setup = SETUPS[cfg.task](cfg, device, run_dir, data=data,
                             tensorboard=tensorboard and is_main_process())
    if is_main_process():  # a setup may complete the config (a prior describes its codes)
        cfg.save(run_dir / "config.json")
    model = setup.model
    train_data, val_data = setup.data
    if train_data.num_batches(t.batch_size) == 0:
        raise VQKitError("train: the training split is empty")
    if hasattr(train_data, "to") and device.type == "cuda":  # batches gathered on the GPU
        train_data, val_data = train_data.to(device), val_data.to(device)

    # -- optimizer, resumed state; DDP averages gradients (quantizers all-reduce their stats)
    optimizer = build_optimizer(t, model)
    state = TrainState()
    if ckpt is not None:
        try:
            model.load_state_dict(ckpt.model_state)
            optimizer.load_state_dict(ckpt.state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise VQKitError(f"{ckpt.path}: does not fit the model its config describes "
                             f"({str(e).splitlines()[0]})") from None
        state = TrainState.restore(ckpt.state, device)
    wrapped = model
    if get_world_size() > 1:
        wrapped = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)

    try:
        result = fit(setup.task, wrapped, cfg, (train_data, val_data), run_dir, device=device,
                     optimizer=optimizer, state=state, progress=progress, writer=setup.writer,
                     on_epoch_end=setup.on_epoch_end)
    finally:
        if setup.writer is not None:
            setup.writer.close()
    if is_main_process() and setup.on_epoch_end is not None:
        plot_loss_curves(run_dir / "metrics.jsonl", run_dir / "loss_vs_epochs.png")
    return result
