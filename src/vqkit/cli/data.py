"""``vqkit data PATH``: what vqkit will train on (counts, sizes, unreadable files)."""

from __future__ import annotations

import argparse
import json

from vqkit.config import RunConfig, apply_overrides
from vqkit.errors import ConfigError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "data", help="summarise a dataset before training on it",
        description="Say what `vqkit train image --data PATH` would train on: counts per split "
                    "and class, image sizes and modes, the channels the model takes, and the "
                    "unreadable files by name (headers only: no image is decoded).")
    p.add_argument("path", help="an image folder, CIFAR-10, an audio folder or a CSV/JSONL "
                                "manifest")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="data.KEY=VALUE", help="a data setting, e.g. data.val_fraction=0.2")
    p.set_defaults(func=run)


def format_summary(s: dict) -> str:
    """The summary as a few lines of text."""
    lines = [f"{s['path']}: {s['kind']}" + (f", splits by {s['split_rule']}"
                                            if s.get("split_rule") else "")]
    for name, sp in s["splits"].items():
        bad = sp["files"] - sp["readable"]
        unit = "files" if "speakers" in sp else "images"
        lines.append(f"  {name:<6} {sp['readable']:>8} {unit}" + (f" ({bad} unreadable)"
                                                                  if bad else ""))
        if sp.get("classes"):
            lines.append("         " + ", ".join(f"{k} {v}" for k, v in sp["classes"].items()))
    for name, sp in s["splits"].items():
        if sp.get("speakers"):
            lines.append(f"  {name}: {sp['seconds']:.1f} s; " + ", ".join(
                f"{k} {v}" for k, v in sp["speakers"].items()))
    a = s.get("audio")
    if a:
        sec = a["seconds"]
        lines.append(f"  durations {sec['min']:.2f}-{sec['max']:.2f} s (median "
                     f"{sec['median']:.2f} s, total {sec['total'] / 60:.1f} min)")
        lines.append("  sample rates " + ", ".join(f"{r} Hz ({n})" for r, n
                                                   in a["sample_rates"].items())
                     + "; channels " + ", ".join(f"{c} ({n})" for c, n in a["channels"].items()))
    im = s.get("images", {})
    if im.get("width"):
        lines.append(f"  sizes  width {im['width']['min']}-{im['width']['max']} (median "
                     f"{im['width']['median']:g}), height {im['height']['min']}-"
                     f"{im['height']['max']} (median {im['height']['median']:g})")
    if im.get("most_common_sizes"):
        lines.append("  most common " + ", ".join(f"{w}x{h} ({n})" for w, h, n
                                                  in im["most_common_sizes"]))
    if im.get("modes"):
        lines.append("  modes  " + ", ".join(f"{m} {n}" for m, n in im["modes"].items()))
    if "image_size" in s:
        lines.append(f"  trains at {s['image_size']}x{s['image_size']} with {s['channels']} "
                     f"channel{'s' * (s['channels'] > 1)}")
    u = s["unreadable"]
    if u["count"]:
        lines.append(f"  unreadable: {u['count']} file(s), skipped when training:")
        lines += [f"    {x['path']}: {x['reason']}" for x in u["first"]]
        if u["count"] > len(u["first"]):
            lines.append(f"    ... and {u['count'] - len(u['first'])} more")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from vqkit.data.summary import summarize_data

    cfg = RunConfig()
    for item in args.overrides:
        if not item.strip().startswith("data."):
            raise ConfigError(f"override {item!r}: only data.KEY=VALUE settings apply here")
    apply_overrides(cfg, args.overrides)
    cfg.validate("--set")
    s = summarize_data(args.path, cfg.data)
    print(json.dumps(s, indent=2) if args.json else format_summary(s))
    return 0
