"""``vqkit decode RUN_DIR CODES.npz --out DIR``: a code file back to PNG or WAV files."""

from __future__ import annotations

import argparse

from vqkit.cli.common import add_run_arguments, add_stages_argument


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "decode", help="decode a code file back to images or audio",
        description="Decode a code file written by `vqkit encode` with the same run's model "
                    "(refused when the model's fingerprint differs) into PNG or WAV files.")
    add_run_arguments(p, device="cpu", checkpoint=None,
                      checkpoint_help="default: the checkpoint the codes were made with")
    p.add_argument("codes", metavar="CODES.npz", help="code file written by `vqkit encode`")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the decoded files")
    add_stages_argument(p, "decode")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vqkit.codes import decode_file

    paths = decode_file(args.run_dir, args.codes, args.out, which=args.checkpoint,
                        device=args.device, stages=args.stages)
    for path in paths:
        print(path)
    print(f"decoded {len(paths)} file{'s' * (len(paths) != 1)} into {args.out}")
    return 0
