"""``vqkit report RUN_DIR``: one self-contained HTML page about a run, from its saved files."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report", help="write RUN_DIR/report.html, a self-contained page about a run",
        description="Write one HTML page (no server needed; figures, images and audio "
                    "embedded) from the run's saved files: config, metrics, loss curves, "
                    "codebook usage, and what `vqkit evaluate` saved in RUN_DIR/eval/ (metrics, "
                    "the sorted code-frequency histogram and samples: images, or utterances "
                    "with audio players). Runs no model.")
    p.add_argument("run_dir", help="run directory written by `vqkit train`")
    p.add_argument("--out", help="where to write the page (default RUN_DIR/report.html)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vqkit.reports.page import write_report

    path = write_report(args.run_dir, out=args.out)
    size = path.stat().st_size
    print(f"{path} ({size / 1e6:.1f} MB); open it in a browser")
    return 0
