"""Arguments shared by the subcommands that load a trained run."""

from __future__ import annotations

import argparse


def add_run_arguments(p: argparse.ArgumentParser, *, device: str,
                      checkpoint: str | None = "best",
                      checkpoint_help: str = "which checkpoint of the run (default best)") -> None:
    """``run_dir`` (the first positional), ``--checkpoint`` and ``--device``."""
    p.add_argument("run_dir", help="run directory written by `vqkit train`")
    p.add_argument("--checkpoint", default=checkpoint, choices=["best", "last"],
                   help=checkpoint_help)
    p.add_argument("--device", default=device,
                   help=f"auto, cpu, cuda, cuda:N, mps (default {device})")
