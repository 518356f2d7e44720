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
from cifar10 import train_and_evaluate  # noqa: E402

from vqkit.data.cifar10 import load_cifar10  # noqa: E402

THESIS_VQ = ["quantizer.ema_decay=0", "quantizer.kmeans_init=false",
             "quantizer.dead_code_threshold=0"]
VARIANTS: dict[str, list[str]] = {
    "vq (thesis: gradient codebook, straight-through)": THESIS_VQ,
    "vq + ema": [*THESIS_VQ, "quantizer.ema_decay=0.99"],
    "vq + ema + k-means + dead-code restart": [],
    "vq + rotation trick": [*THESIS_VQ, "quantizer.rotation_trick=true"],
    "vq + ema + k-means + restart + rotation trick": ["quantizer.rotation_trick=true"],
    "vq + cosine (ema, k-means, restart)": ["quantizer.cosine=true"],
    "vq + 16-d codebook (ema, k-means, restart)": ["quantizer.codebook_dim=16"],
    "fsq [8,8,8] (512 codes)": ["quantizer.kind=fsq", "quantizer.levels=8,8,8"],
    "fsq [8,5,5,5] (1000 codes)": ["quantizer.kind=fsq", "quantizer.levels=8,5,5,5"],
    "rvq x2 (ema, k-means, restart)": ["quantizer.kind=rvq", "quantizer.num_quantizers=2"],
    "rvq x4 (ema, k-means, restart)": ["quantizer.kind=rvq", "quantizer.num_quantizers=4"],
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--only", default="", help="comma-separated substrings of variant names")
    p.add_argument("--json", default="benchmarks/results/quantizers.json")
    p.add_argument("--work", default="")
    args = p.parse_args()

    train_imgs, _ = load_cifar10(args.data, "train")
    val, _ = load_cifar10(args.data, "val")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="vqkit-quant-"))
    out_path = Path(args.json)
    results = json.loads(out_path.read_text()) if out_path.exists() else {}
    results.setdefault("variants", {})
    results.update({"epochs": args.epochs, "train_images": len(train_imgs),
                    "recipe": "cifar10 preset train section", "network": "thesis (8x8 grid)"})
    wanted = [s for s in args.only.split(",") if s]
    for name, overrides in VARIANTS.items():
        if wanted and not any(w in name for w in wanted):
            continue
        slug = "".join(c if c.isalnum() else "-" for c in name)[:60]
        m = train_and_evaluate("cifar10", overrides, train_imgs, val, args.epochs, work / slug)
        results["variants"][name] = {"overrides": overrides, **m}
        print(f"{name:48s} psnr {m['psnr']:.2f}  usage {m['codebook_usage']:.3f}", flush=True)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(results, indent=2) + "\n")

    print(f"\nCIFAR-10 val (data_batch_5) after {args.epochs} epochs "
          f"({args.epochs * len(train_imgs):,} images), thesis network, cifar10 recipe\n")
    print("| quantizer | MSE | PSNR (dB) | SSIM | usage | perplexity | bits/image |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, m in results["variants"].items():
        print(f"| {name} | {m['mse']:.5f} | {m['psnr']:.2f} | {m['ssim']:.3f} | "
              f"{m['codebook_usage']:.3f} | {m['perplexity']:.0f} | {m['bits_per_image']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
