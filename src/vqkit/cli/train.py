"""``vqkit train {image,speech}`` and ``vqkit train --resume RUN_DIR``."""

from __future__ import annotations

import argparse
import sys

from vqkit.config import apply_dict, resolve_config
from vqkit.errors import VQKitError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train a VQ-VAE, or a prior over a run's codes (or resume a run)",
        description="Train on images or speech from a preset, a config file and overrides.")
    p.add_argument("task", nargs="?", choices=["image", "speech", "prior"],
                   help="a VQ-VAE on images or speech, or a prior over a run's codes")
    p.add_argument("vqvae_run", nargs="?", metavar="RUN",
                   help="(prior) the trained VQ-VAE run whose codes the prior models")
    p.add_argument("--preset", help="named preset (see `vqkit presets`); default per task")
    p.add_argument("--config", help="JSON or TOML file applied after the preset")
    p.add_argument("--data", help="data folder/archive (images) or subset/cache folder (speech)")
    p.add_argument("--out", help="run directory to create")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR exactly")
    g = p.add_argument_group("common overrides (shortcuts for --set train.KEY=VALUE)")
    g.add_argument("--epochs", type=int)
    g.add_argument("--max-steps", type=int)
    g.add_argument("--max-minutes", type=float,
                   help="stop after this wall-clock (a cosine lr schedule anneals within it)")
    g.add_argument("--batch-size", type=int)
    g.add_argument("--lr", type=float)
    g.add_argument("--seed", type=int)
    g.add_argument("--device", help="auto, cpu, cuda, cuda:N, mps")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override any config field, e.g. quantizer.kind=fsq (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--tensorboard", action="store_true", help="also log to TensorBoard")
    p.set_defaults(func=run)


SHORTCUTS = ("epochs", "max_steps", "max_minutes", "batch_size", "lr", "seed", "device")


def run(args: argparse.Namespace) -> int:
    from vqkit.training.train import train

    shortcuts = {k: getattr(args, k) for k in SHORTCUTS}
    if args.resume:
        if args.task or args.preset or args.config or args.set or args.data or args.vqvae_run:
            raise VQKitError("--resume takes its config from the run; only --epochs, "
                             "--max-steps, --max-minutes and --device may change")
        resumable = {k: v for k, v in shortcuts.items()
                     if k in ("epochs", "max_steps", "max_minutes", "device")}
        result = train(None, args.resume, resume=True, overrides=resumable,
                       progress=not args.no_progress, tensorboard=args.tensorboard)
    else:
        if not args.task:
            raise VQKitError("say what to train: `vqkit train image`, `vqkit train speech` or "
                             "`vqkit train prior RUN`")
        if (args.task == "prior") != bool(args.vqvae_run):
            raise VQKitError("a prior needs the VQ-VAE run it models: `vqkit train prior RUN "
                             "--out PRIOR_RUN`" if args.task == "prior" else
                             f"`vqkit train {args.task}` takes no RUN argument")
        if not args.out:
            raise VQKitError("--out RUN_DIR is required")
        cfg = resolve_config(args.task, args.preset, args.config, args.set)
        for k, v in shortcuts.items():
            if v is not None:
                apply_dict(cfg, {"train": {k: v}}, f"--{k.replace('_', '-')}")
        if args.data:
            cfg.data.root = args.data
        if args.vqvae_run:
            cfg.prior.run = args.vqvae_run
        result = train(cfg, args.out, progress=not args.no_progress,
                       tensorboard=args.tensorboard)
    from vqkit.distributed import is_main_process
    from vqkit.runlog import read_metrics, summarize
    from vqkit.utils import format_number

    if not is_main_process():
        return 0
    run = result.run_dir
    if result.stopped == "interrupted":
        print(f"interrupted ({result.signal}) at step {result.step}: saved {run}/checkpoints/last;"
              f" continue with `vqkit train --resume {run}`", file=sys.stderr)
        return 130 if result.signal == "SIGINT" else 143
    s = summarize(read_metrics(run / "metrics.jsonl"), result.best_metric)
    best = (f"best {result.best_label} {format_number(s.best_value)} at step "
            f"{format_number(s.best_step)}" if s.best_step >= 0 else "not validated yet")
    print(f"stopped after {s.epochs} epochs, {s.steps:,} steps ({result.stopped}); {best}; "
          f"run in {run}")
    last = result.history[-1] if result.history else {}
    if last and "val_bits_per_code" in last:
        print(f"last epoch: val {last['val_bits_per_code']:.3f} bits per code")
    elif last:
        print(f"last epoch: val perplexity {last.get('val_perplexity', float('nan')):.1f}, "
              f"codebook usage {last.get('val_usage', float('nan')):.3f}")
    return 0
