"""Code search settings side by side on one trained speech run: STOI / oracle, PESQ, mel L1 and
encoding time for each (steps, lr, stoi_weight), in one run on the same utterances.

Each setting replaces the run's ``search`` section (:mod:`vqkit.models.search`) and evaluates
the first ``--max-items`` utterances of ``--split`` exactly as ``vqkit evaluate`` does
(:func:`vqkit.evaluation.speech.evaluate_speech`, the Griffin-Lim oracle computed once and
shared). Steps 0 is the plain nearest-code encoding. Seconds are wall-clock for the whole
evaluation (search, Griffin-Lim and scoring): compare them within one run only.

    PYTHONPATH=src python benchmarks/code_search.py runs/codec2k --max-items 100 \
        --grid 100:0.02:0.1,50:0.04:0.1,30:0.06:0.1,20:0.1:0.1,0:0:0.1,100:0.02:0.3,100:0.02:0.03 \
        --json benchmarks/results/code-search.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from vqkit.evaluation.speech import evaluate_speech
from vqkit.models import load_model
from vqkit.models.search import search_for
from vqkit.utils import atomic_write_text


def parse_grid(text: str) -> list[tuple[int, float, float]]:
    """"steps:lr:stoi_weight,..." -> [(steps, lr, stoi_weight), ...]."""
    out = []
    for item in text.split(","):
        steps, lr, w = item.split(":")
        out.append((int(steps), float(lr), float(w)))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("run_dir")
    p.add_argument("--split", default="speakers:NICOLAS")
    p.add_argument("--max-items", type=int, default=100, help="first N utterances (0: all)")
    p.add_argument("--grid", default="100:0.02:0.1,30:0.06:0.1,0:0:0.1",
                   help="steps:lr:stoi_weight settings, comma-separated")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default="", help="write the results here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, cfg = load_model(args.run_dir, "best", "cpu")
    oracle: dict = {}
    model.search = None  # the first pass fills the oracle's cache (and warms up)
    evaluate_speech(model, cfg, None, args.split, max_items=args.max_items, oracle_cache=oracle)
    rows = []
    print(f"{'steps':>5} {'lr':>6} {'weight':>6} {'x oracle':>8} {'PESQ':>5} {'L1 dB':>6} "
          f"{'s':>6}")
    for steps, lr, weight in parse_grid(args.grid):
        cfg.search.steps, cfg.search.lr, cfg.search.stoi_weight = steps, lr, weight
        model.search = search_for(cfg)  # None for 0 steps: the nearest codes
        t0 = time.perf_counter()
        m = evaluate_speech(model, cfg, None, args.split, max_items=args.max_items,
                            oracle_cache=oracle).metrics
        row = {"steps": steps, "lr": lr, "stoi_weight": weight,
               "seconds": time.perf_counter() - t0, "stoi": m["stoi"],
               "stoi_ratio": m["stoi_ratio"], "pesq": m["pesq"], "mel_l1_db": m["mel_l1_db"]}
        rows.append(row)
        print(f"{steps:5d} {lr:6.3f} {weight:6.2f} {row['stoi_ratio']:8.3f} {row['pesq']:5.2f} "
              f"{row['mel_l1_db']:6.2f} {row['seconds']:6.1f}", flush=True)
    if args.json:
        out = {"run": args.run_dir, "split": args.split, "max_items": args.max_items,
               "torch": torch.__version__, "rows": rows}
        atomic_write_text(Path(args.json), json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
