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


def add_search_argument(p: argparse.ArgumentParser) -> None:
    """``--search-steps N``: steps of the encoder-side code search (the run's config otherwise)."""
    p.add_argument("--search-steps", type=int, metavar="N",
                   help="choose codes by N steps of analysis-by-synthesis search (0: the codes "
                        "nearest the encoder's output; default the run's search.steps)")


def add_stages_argument(p: argparse.ArgumentParser, what: str = "use") -> None:
    """``--stages N``: the first N residual VQ stages (a lower bit rate)."""
    p.add_argument("--stages", type=int, metavar="N",
                   help=f"residual VQ: {what} the first N stages only (a lower bit rate; "
                        f"default all)")
