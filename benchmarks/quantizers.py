"""Quantizers compared on CIFAR-10 with the same network, data, recipe and number of images.

Every variant trains the thesis network (8x8 grid) with the `cifar10` preset's optimisation
recipe for the same number of epochs; only the quantizer section differs. Writes JSON and
prints a Markdown table (MSE on the [0, 1] scale, PSNR, SSIM, codebook usage, perplexity and
bits per image on the validation split, data_batch_5).

    python benchmarks/quantizers.py --data ../shared/data --epochs 5 \
        --json benchmarks/results/quantizers.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cifar10 import run_quality_jobs  # noqa: E402

from vqkit.data.cifar10 import load_cifar10  # noqa: E402

THESIS_VQ = ["quantizer.ema_decay=0", "quantizer.kmeans_init=false",
             "quantizer.dead_code_threshold=0"]
VARIANTS: dict[str, list[str]] = {
    "vq (thesis: gradient codebook, straight-through)": THESIS_VQ,
    "vq + ema": [*THESIS_VQ, "quantizer.ema_decay=0.99"],
    "vq + ema + k-means + dead-code restart": [],
    "vq + rotation trick": [*THESIS_VQ, "quantizer.rotation_trick=true"],
    "vq + cosine (ema, k-means, restart)": ["quantizer.cosine=true"],
    "fsq [8,8,8] (512 codes)": ["quantizer.kind=fsq", "quantizer.levels=8,8,8"],
    "fsq [8,5,5,5] (1000 codes)": ["quantizer.kind=fsq", "quantizer.levels=8,5,5,5"],
    "rvq x2 (ema, k-means, restart)": ["quantizer.kind=rvq", "quantizer.num_quantizers=2"],
    "rvq x4 (ema, k-means, restart)": ["quantizer.kind=rvq", "quantizer.num_quantizers=4"],
}


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name)[:60]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--only", action="append", default=[],
                   help="run only variants whose name contains this (repeatable)")
    p.add_argument("--json", default="benchmarks/results/quantizers.json")
    p.add_argument("--work", default="")
    p.add_argument("--jobs", type=int, default=1, help="variants trained at once (1 thread each)")
    p.add_argument("--set", action="append", default=[],
                   help="override applied to every variant, e.g. model.hidden_channels=64")
    args = p.parse_args(argv)

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="vqkit-quant-"))
    out_path = Path(args.json)
    results = json.loads(out_path.read_text()) if out_path.exists() else {}
    results.setdefault("variants", {})
    n_train = len(load_cifar10(args.data, "train")[1])
    results.update({"epochs": args.epochs, "train_images": n_train, "overrides": args.set,
                    "recipe": "cifar10 preset train section", "network": "thesis (8x8 grid)"})
    wanted = args.only
    names = [n for n in VARIANTS if not wanted or any(w in n for w in wanted)]
    # Batches of --jobs variants; the JSON is rewritten after each batch so partial results
    # survive an interrupted run.
    for i in range(0, len(names), max(1, args.jobs)):
        chunk = names[i:i + max(1, args.jobs)]
        outs = run_quality_jobs([("cifar10", VARIANTS[n] + args.set, work / slug(n))
                                 for n in chunk],
                                args.data, args.epochs, args.jobs)
        for name, m in zip(chunk, outs, strict=True):
            results["variants"][name] = {"overrides": VARIANTS[name], **m}
            print(f"{name:48s} psnr {m['psnr']:.2f}  usage {m['codebook_usage']:.3f}", flush=True)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(results, indent=2) + "\n")

    print(f"\nCIFAR-10 val (data_batch_5) after {args.epochs} epochs "
          f"({args.epochs * n_train:,} images), thesis network, cifar10 recipe\n")
    print("| quantizer | MSE | PSNR (dB) | SSIM | usage | perplexity | bits/image |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, m in results["variants"].items():
        print(f"| {name} | {m['mse']:.5f} | {m['psnr']:.2f} | {m['ssim']:.3f} | "
              f"{m['codebook_usage']:.3f} | {m['perplexity']:.0f} | {m['bits_per_image']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
