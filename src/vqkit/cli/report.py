"""``vqkit report RUN_DIR``: one self-contained HTML page about a run."""

from __future__ import annotations

import argparse

from vqkit.cli.common import add_run_arguments


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report", help="write RUN_DIR/report.html, a self-contained page about a run",
        description="Write one HTML page (no server needed; figures, images and audio "
                    "embedded) with the run's config and metrics, loss curves, codebook usage, "
                    "a sorted code-frequency histogram and reconstructions of a few "
                    "validation items (images, or utterances with audio players).")
    add_run_arguments(p, device="cpu", checkpoint_help="checkpoint run for the code "
                      "histogram and samples (default best)")
    p.add_argument("--out", help="where to write the page (default RUN_DIR/report.html)")
    p.add_argument("--no-samples", action="store_true",
                   help="saved artifacts only: no code histogram or samples from the checkpoint")
    p.add_argument("--items", type=int, default=None, metavar="N",
                   help="images in the sample grid (default 16) or utterances (default 3)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vqkit.reports.html import write_report

    n = {} if args.items is None else {"n_images": args.items, "n_utterances": args.items}
    path = write_report(args.run_dir, out=args.out, which=args.checkpoint, device=args.device,
                        live=not args.no_samples, **n)
    size = path.stat().st_size
    print(f"{path} ({size / 1e6:.1f} MB); open it in a browser")
    return 0
