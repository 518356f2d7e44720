"""``vqkit sample PRIOR_RUN --n 64 --seed S --out DIR``: images drawn from a code prior."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sample", help="draw images or speech from a prior trained with `vqkit train prior`",
        description="Draw codes from the prior token by token and decode them with the VQ-VAE "
                    "it models: DIR/<i>.png and DIR/grid.png (rows of 8; a class-conditional "
                    "prior without --class takes the classes in turn, one per row), or for a "
                    "speech prior DIR/<i>.wav of --seconds each (Griffin-Lim, as `vqkit "
                    "reconstruct`). The same --seed gives the same files.")
    p.add_argument("run_dir", metavar="PRIOR_RUN", help="run directory of `vqkit train prior`")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"])
    p.add_argument("--n", type=int, default=64, help="how many samples (default 64)")
    p.add_argument("--class", dest="class_name", metavar="NAME", help="only this class")
    p.add_argument("--temperature", type=float, default=1.0, help="divide the logits by T")
    p.add_argument("--top-k", type=int, default=0, help="keep the K likeliest codes (0: all)")
    p.add_argument("--guidance", type=float, default=1.0,
                   help="classifier-free guidance of a class-conditional prior (default 1: "
                        "none; e.g. 3 draws samples more typical of their class)")
    p.add_argument("--seconds", type=float, default=1.0,
                   help="speech: seconds per sample, whole code frames (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the PNG/WAV files")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vqkit.codes.sample import sample_prior

    res = sample_prior(args.run_dir, args.out, n=args.n, class_name=args.class_name,
                       temperature=args.temperature, top_k=args.top_k,
                       guidance=args.guidance, seed=args.seed, which=args.checkpoint,
                       seconds=args.seconds)
    grid = f" and {res['grid']}" if res["grid"] else f" in {args.out}"
    print(f"wrote {len(res['files'])} samples{grid}")
    return 0
