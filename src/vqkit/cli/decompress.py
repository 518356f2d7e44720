"""``vqkit decompress FILE --out DIR``: a compressed file back to images or audio."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "decompress", help="decode a file written by `vqkit compress`",
        description="Range-decode the codes and decode them with the VQ-VAE into PNG or WAV "
                    "files (what `vqkit decode` writes for the same codes). The models are the "
                    "runs named in the file unless --run/--prior say otherwise; a model whose "
                    "fingerprint differs from the file's is refused.")
    p.add_argument("file", metavar="FILE", help="compressed file")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the decoded files")
    p.add_argument("--run", help="the VQ-VAE run (default: the one named in FILE)")
    p.add_argument("--prior", metavar="PRIOR_RUN", help="the prior (default: as named in FILE)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vqkit.codes.compress import decompress_file

    paths = decompress_file(args.file, args.out, run_dir=args.run, prior_run=args.prior)
    print(f"decoded {len(paths)} file{'s' * (len(paths) != 1)} into {args.out}")
    return 0
