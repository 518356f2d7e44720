"""``vqkit reconstruct RUN_DIR IN... --out DIR``: pass files through a trained model."""

from __future__ import annotations

import argparse

from vqkit.cli.common import add_run_arguments, add_search_argument, add_stages_argument


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "reconstruct", help="reconstruct audio (or image) files through a trained run",
        description="Speech runs: for each audio file IN, write OUT/IN.wav (Griffin-Lim of the "
                    "model's mel), OUT/IN.griffinlim.wav (Griffin-Lim of the true mel) and "
                    "OUT/IN.comparison.png (mels in dB). Image runs: OUT/IN.png and "
                    "OUT/IN.comparison.png. Names as `vqkit decode` writes them.")
    add_run_arguments(p, device="auto")
    p.add_argument("inputs", nargs="+", metavar="IN", help="audio files (speech) or images")
    p.add_argument("--out", required=True, help="folder for the outputs (created)")
    add_stages_argument(p)
    add_search_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vqkit.evaluation.reconstruct import reconstruct_files

    for path in reconstruct_files(args.run_dir, args.inputs, args.out, which=args.checkpoint,
                                  device=args.device, stages=args.stages,
                                  search_steps=args.search_steps):
        print(path)
    return 0
