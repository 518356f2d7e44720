"""``vqkit compress RUN [--prior PRIOR_RUN] INPUT... --out FILE``: a real compressed file."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compress", help="encode files and range-code their codes into one compressed file",
        description="Encode images (image runs) or audio files (speech runs) with the run's "
                    "VQ-VAE and range-code the codes with the prior's probabilities (adaptive "
                    "code counts without --prior). Prints the achieved rate.")
    p.add_argument("run_dir", metavar="RUN", help="run directory written by `vqkit train`")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image or audio files")
    p.add_argument("--prior", metavar="PRIOR_RUN", help="a prior of RUN (`vqkit train prior`)")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"])
    p.add_argument("--out", required=True, metavar="FILE", help="the compressed file to write")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vqkit.codes.compress import compress_files

    r = compress_files(args.run_dir, args.inputs, args.out, prior_run=args.prior,
                       which=args.checkpoint)
    unit = r["rate_unit"]
    print(f"wrote {r['path']}: {len(r['names'])} items, {r['bits']:,} payload bits "
          f"({r['bits_per_code']:.3f} bits/code), {r['file_bits'] // 8:,} bytes in all")
    print(f"rate {r['rate']:.4f} {unit} (payload), {r['file_rate']:.4f} {unit} (whole file); "
          f"raw codes {r['raw_rate']:.4f} {unit}")
    return 0
