"""``vqkit probe RUN``: linear probes on the codes and on raw pixels (class accuracy)."""

from __future__ import annotations

import argparse
import json

from vqkit.cli.common import add_run_arguments


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "probe", help="what the codes know: linear probes on codes vs raw pixels or mels",
        description="Train a linear classifier (logistic regression) on the training split's "
                    "pooled code embeddings, on its bag of codes and on its raw pixels (speech: "
                    "mels pooled over time), and print each one's accuracy on the held-out "
                    "split: the class for images, the transcript's word and the speaker for "
                    "speech.")
    add_run_arguments(p, device="auto")
    p.add_argument("--data", help="data location (default: the one the run trained on)")
    p.add_argument("--train-split", default="train")
    p.add_argument("--split", default="val", help="held-out split (default val)")
    p.add_argument("--max-train", type=int, default=10000,
                   help="training images or utterances (default 10000)")
    p.add_argument("--max-items", type=int, default=10000,
                   help="held-out images or utterances (default 10000)")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vqkit.probing import probe_run
    from vqkit.utils import atomic_write_text

    r = probe_run(args.run_dir, data=args.data, train_split=args.train_split,
                  test_split=args.split, max_train=args.max_train, max_test=args.max_items,
                  which=args.checkpoint, device=args.device)
    if r.get("task") == "speech":
        _print_speech(r)
    else:
        _print_image(r)
    if args.json:
        from pathlib import Path

        atomic_write_text(Path(args.json), json.dumps(r, indent=2) + "\n")
    return 0


def _print_speech(r: dict) -> None:
    print(f"linear probes: trained on {r['train_items']} {r['train_split']} utterances, accuracy "
          f"on {r['test_items']} {r['test_split']} utterances")
    for task, t in r["tasks"].items():
        if t is None:
            print(f"  {task}: no transcripts (<SPK>/transcript/<utt>.txt) to probe")
            continue
        print(f"  {task} ({len(t['classes'])} classes, majority {t['chance']:.3f}):")
        for name in ("code_embeddings", "bag_of_codes", "mels"):
            print(f"    {name:<16} {r['features'][name]:>5} dims  accuracy "
                  f"{t[f'{name}_accuracy']:.3f}  (train {t[f'{name}_train_accuracy']:.3f})")


def _print_image(r: dict) -> None:
    print(f"linear probes, {r['classes']} classes: trained on {r['train_items']} "
          f"{r['train_split']} images, accuracy on {r['test_items']} {r['test_split']} images "
          f"(majority class {r['chance']:.3f})")
    for name in ("code_embeddings", "bag_of_codes", "pixels"):
        print(f"  {name:<16} {r[f'{name}_dims']:>5} dims  accuracy {r[f'{name}_accuracy']:.3f}"
              f"  (train {r[f'{name}_train_accuracy']:.3f})")
