"""``vqkit decode RUN_DIR CODES.npz --out DIR``: a code file back to PNG or WAV files."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "decode", help="decode a code file back to images or audio",
        description="Decode a code file written by `vqkit encode` with the same run's model "
                    "(refused when the model's fingerprint differs) into PNG or WAV files.")
    p.add_argument("run_dir", help="run directory written by `vqkit train`")
    p.add_argument("codes", metavar="CODES.npz", help="code file written by `vqkit encode`")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the decoded files")
    p.add_argument("--checkpoint", choices=["best", "last"],
                   help="default: the checkpoint the codes were made with")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vqkit.codes import decode_file

    paths = decode_file(args.run_dir, args.codes, args.out, which=args.checkpoint,
                        device=args.device)
    for path in paths:
        print(path)
    print(f"decoded {len(paths)} file{'s' * (len(paths) != 1)} into {args.out}")
    return 0
