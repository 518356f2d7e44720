"""``vqkit cache``: compute the mel spectrograms (dB) of a subset folder in parallel."""

from __future__ import annotations

import argparse
import sys

from vqkit.config import DEFAULT_PRESET, apply_overrides, get_preset
from vqkit.data.audio_sources import build_mel_cache
from vqkit.errors import ConfigError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "cache", help="compute and cache mel spectrograms of a speech folder",
        description="Compute the mel power in dB of every utterance of DATA (a `vqkit subset` "
                    "folder, or any <SPK>/wav/*.wav folder) into CACHE, in parallel. Re-running "
                    "computes only what is missing, stale or corrupt; bad audio files are "
                    "reported and skipped.")
    p.add_argument("--data", required=True, help="subset folder (with metadata.csv) or "
                                                 "<SPK>/wav/*.wav folder")
    p.add_argument("--out", required=True, help="cache folder")
    p.add_argument("--preset", default=DEFAULT_PRESET["speech"],
                   help=f"preset whose audio settings to use (default "
                        f"{DEFAULT_PRESET['speech']})")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="audio.KEY=VALUE", help="override an audio setting (repeatable)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes (default: CPU count; 1: no subprocesses)")
    p.add_argument("--dtype", choices=["float16", "float32"], default="float16",
                   help="storage type of the dB values (default float16)")
    p.add_argument("--no-verify", action="store_true",
                   help="check reused entries by size only, not by checksum")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = get_preset(args.preset)
    for item in args.overrides:
        if not item.strip().startswith("audio."):
            raise ConfigError(f"override {item!r}: only audio.KEY=VALUE settings apply here")
    apply_overrides(cfg, args.overrides)
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    res = build_mel_cache(args.data, args.out, cfg.audio, workers=args.workers, dtype=args.dtype,
                      verify=not args.no_verify, progress=not args.no_progress)
    for path, reason in res.bad:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    print(f"{res.out}: {res.n_entries} utterances ({res.computed} computed, {res.reused} "
          f"reused, {res.skipped} skipped, {res.removed} removed) in {res.seconds:.1f} s "
          f"with {res.workers} worker{'s' * (res.workers > 1)}; params {res.params_hash}")
    return 0
