"""``vqkit`` command line: one module per subcommand, each with ``add_parser`` and ``run``.

``run(args)`` calls one library function and prints; errors from bad input surface as one line
on stderr (exit status 2), never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Subcommand name -> module under vqkit.cli (imported lazily so `vqkit --help` stays fast).
COMMANDS = {
    "train": "train",
    "evaluate": "evaluate",
    "subset": "subset",
    "cache": "cache",
    "reconstruct": "reconstruct",
    "encode": "encode",
    "decode": "decode",
    "sample": "sample",
    "compress": "compress",
    "decompress": "decompress",
    "probe": "probe",
    "report": "report",
    "presets": "presets",
    "data": "data",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vqkit", description="Train, evaluate and use VQ-VAEs on images and speech.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS.values():
        try:
            mod = importlib.import_module(f"vqkit.cli.{module}")
        except ModuleNotFoundError as e:
            if e.name == f"vqkit.cli.{module}":
                continue  # subcommand not built yet
            raise
        mod.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from vqkit.errors import VQKitError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except VQKitError as e:
        print(f"vqkit {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vqkit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
