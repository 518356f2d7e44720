"""``vqkit evaluate RUN_DIR``: metrics table, JSON, figures and ``RUN_DIR/eval/<split>/``."""

from __future__ import annotations

import argparse
import sys

from vqkit.cli.common import add_run_arguments, add_search_argument, add_stages_argument
from vqkit.evaluation.about import metric_help_text


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate", help="evaluate a trained run on a split",
        description="Print the metrics of the run's model on a split and save them, the split's "
                    "code histogram and samples in RUN_DIR/eval/<split>/ for `vqkit report`; "
                    "also write the figures in RUN_DIR. Says what the split is, and warns when it "
                    "overlaps the training split or its audio was resampled up.",
        epilog="metrics:\n" + metric_help_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p, device="auto")
    p.add_argument("--data", help="data location (default: the one the run trained on)")
    p.add_argument("--split", default="val", help="val (default), test, train")
    p.add_argument("--json", help="also write the metrics to this JSON file")
    p.add_argument("--max-items", type=int, default=0, help="evaluate only the first N items")
    add_stages_argument(p)
    add_search_argument(p)
    p.add_argument("--curve", action="store_true",
                   help="speech, residual VQ: also evaluate at 1..N stages and print the "
                        "rate-quality table (kbps, STOI, PESQ, usage per stage), saved with "
                        "the metrics as rate_curve")
    p.set_defaults(func=run)


def format_table(metrics: dict) -> str:
    rows = [(k, v) for k, v in metrics.items() if isinstance(v, (int, float))]
    width = max(len(k) for k, _ in rows)
    return "\n".join(
        f"{k:<{width}}  {v:.6g}" if isinstance(v, float) else f"{k:<{width}}  {v}"
        for k, v in rows)


def run(args: argparse.Namespace) -> int:
    from vqkit.evaluation.artifacts import evaluation_dir
    from vqkit.evaluation.evaluate import evaluate, run_task
    from vqkit.evaluation.rate_curve import format_rate_curve

    if run_task(args.run_dir) == "prior":
        from vqkit.evaluation.prior import evaluate_prior

        m = evaluate_prior(args.run_dir, split=args.split, which=args.checkpoint,
                           device=args.device, json_path=args.json, max_items=args.max_items)
        each = (f"{m['codes_per_item']} codes each" if "codes_per_item" in m else
                f"{m['codes']:,} codes, {m['seconds']:.1f} s of audio, whole utterances")
        print(f"{m['run']} on split {m['split']!r} ({m['items']} items, {each}): negative "
              f"log-likelihood of the codes under the prior")
        print(format_table(m))
        print(f"saved in {evaluation_dir(args.run_dir, args.split)}")
        return 0

    metrics = evaluate(args.run_dir, data=args.data, split=args.split, which=args.checkpoint,
                       device=args.device, json_path=args.json, max_items=args.max_items,
                       stages=args.stages, curve=args.curve,
                       search_steps=args.search_steps)
    about = metrics.get("about", {})
    print(f"{metrics['run']} on split {metrics['split']!r} ({metrics['checkpoint']} checkpoint): "
          f"{about.get('definition', '')}")
    held = about.get("speakers") or about.get("classes")
    if held:
        what = "speakers" if "speakers" in about else "classes"
        print(f"{what}: " + ", ".join(f"{k} ({v})" for k, v in held.items()))
    for w in about.get("warnings", []):
        print(f"vqkit evaluate: warning: {w}", file=sys.stderr)
    print(format_table(metrics))
    if "rate_curve" in metrics:
        print("rate-quality curve (the first n stages of this model):")
        print(format_rate_curve(metrics["rate_curve"]))
    print(f"saved in {evaluation_dir(args.run_dir, args.split)} (for `vqkit report`)")
    return 0
