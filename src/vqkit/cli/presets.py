"""``vqkit presets [NAME]``: list presets, or print one resolved as JSON."""

from __future__ import annotations

import argparse
import json

from vqkit.config import get_preset, list_presets


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("presets", help="list named presets or show one")
    p.add_argument("name", nargs="?", help="preset to print as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.name:
        print(json.dumps(get_preset(args.name).to_dict(), indent=2))
    else:
        for name in list_presets():
            print(f"{name:16s} {get_preset(name).task}")
    return 0
