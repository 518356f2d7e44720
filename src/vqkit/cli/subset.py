"""``vqkit subset``: copy a reproducible subset of L2-ARCTIC (zips or folders) with metadata.csv."""

from __future__ import annotations

import argparse
import sys

from vqkit.data.subset import SPLITS, make_subset


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "subset", help="copy a reproducible subset of L2-ARCTIC with metadata.csv",
        description="Choose utterances per speaker with a seed, read them straight from the "
                    "release zip, speaker zips or <SPK>/wav/*.wav folders, and copy them with "
                    "their transcripts (and textgrid/annotation files when present) to OUT, "
                    "with OUT/metadata.csv. Re-running rewrites nothing that is unchanged.")
    p.add_argument("--source", required=True,
                   help="l2arctic_release_v5.0.zip, a folder of speaker zips, or a folder laid "
                        "out <SPK>/wav/*.wav")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--speakers", default="",
                   help="comma-separated speaker codes, e.g. HJK,BWC (default: all found)")
    p.add_argument("--max-per-speaker", type=_count, default=500,
                   help="utterances drawn per speaker (0: all; default 500)")
    p.add_argument("--seed", type=int, default=42, help="same seed, same subset (default 42)")
    p.add_argument("--split-by", choices=["utterance", "speaker"], default="utterance",
                   help="split each speaker's utterances, or hold out whole speakers")
    p.add_argument("--val-fraction", type=_fraction, default=0.1)
    p.add_argument("--test-fraction", type=_fraction, default=0.1)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    speakers = [s for s in args.speakers.split(",") if s.strip()] or None
    res = make_subset(args.source, args.out, speakers=speakers,
                      max_per_speaker=args.max_per_speaker or None, seed=args.seed,
                      split_by=args.split_by, val_fraction=args.val_fraction,
                      test_fraction=args.test_fraction)
    counts = res.counts()
    print(f"{args.source} ({', '.join(res.layouts)}): {len(res.speakers_found)} speakers found, "
          f"{len(counts)} chosen")
    print(f"{'speaker':10s} " + " ".join(f"{s:>6s}" for s in SPLITS))
    for speaker, c in counts.items():
        print(f"{speaker:10s} " + " ".join(f"{c[s]:6d}" for s in SPLITS))
    total = {s: sum(c[s] for c in counts.values()) for s in SPLITS}
    print(f"{'total':10s} " + " ".join(f"{total[s]:6d}" for s in SPLITS))
    print(f"{res.files_written} files written, {res.files_unchanged} unchanged; "
          f"{res.metadata_path} {'written' if res.metadata_written else 'unchanged'}")
    if res.extra_files:
        print(f"note: {res.extra_files} files under {res.out} are not in this subset "
              f"(left in place; metadata.csv lists the subset)")
    for path, reason in res.skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    return 0
