"""``vqkit encode RUN_DIR INPUT... --out CODES.npz``: images or WAV files to a code file."""

from __future__ import annotations

import argparse

from vqkit.cli.common import add_run_arguments, add_search_argument, add_stages_argument


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "encode", help="encode images or audio files to a code file",
        description="Encode PNG/JPEG images (image runs: any size; sides that are not a multiple "
                    "of the model's downsampling are padded with edge pixels for the model and "
                    "cropped back when decoding) or audio files (speech runs: WAV, FLAC, OGG; "
                    "resampled to the run's rate) with a run's model and save their codes, in "
                    "the smallest integer type, with the model's fingerprint. Prints the rate: "
                    "bits per pixel or bits per second.")
    add_run_arguments(p, device="cpu")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image or audio files")
    p.add_argument("--out", required=True, metavar="CODES.npz", help="code file to write")
    add_stages_argument(p, "store")
    add_search_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vqkit.codes import encode_files

    cf = encode_files(args.run_dir, args.inputs, out=args.out, which=args.checkpoint,
                      device=args.device, stages=args.stages,
                      search_steps=args.search_steps)
    unit = cf.rate_unit
    width = max(len(n) for n in cf.names)
    for i, name in enumerate(cf.names):
        shape = "x".join(str(d) for d in cf.codes[i].shape)
        print(f"{name:<{width}}  codes {shape:<10}  {cf.rate(i):10.4g} {unit}")
    nq = cf.meta["num_quantizers"]
    used = cf.meta.get("stages", nq)
    stages = (f"{used}{f' of {nq}' if used != nq else ''} stages x " if nq > 1 else "")
    print(f"{cf.path}: {len(cf.names)} item{'s' * (len(cf.names) != 1)}, "
          f"{cf.bits_per_code:g} bits per code ({stages}{cf.meta['codebook_size']} codes, "
          f"stored as {cf.codes[0].dtype}), rate {cf.rate():.4g} {unit}; "
          f"model {cf.fingerprint[:12]}")
    return 0
