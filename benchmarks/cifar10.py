"""CIFAR-10: vqkit's presets against a faithful re-implementation of the thesis notebook.

One run measures, on the same data (train = data_batch_1-4, val = data_batch_5):
  * training throughput at equal batch size (images/s, end to end, data loading included),
    alternating the contenders over several rounds and keeping each one's best round;
  * training FLOPs per image (forward + backward, counted by torch's FlopCounterMode);
  * val MSE / PSNR / SSIM / codebook usage after the same number of training images.

    python benchmarks/cifar10.py --data ../shared/data --epochs 5 \
        --json benchmarks/results/cifar10.json

Ratios are what to quote: absolute seconds depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import notebook_reference as nb  # noqa: E402

from vqkit.config import apply_overrides, get_preset  # noqa: E402
from vqkit.data.cifar10 import load_cifar10  # noqa: E402
from vqkit.data.images import ImageData  # noqa: E402
from vqkit.evaluation.images import evaluate_images  # noqa: E402
from vqkit.models import build_model, load_model  # noqa: E402
from vqkit.training.train import train  # noqa: E402

NOTEBOOK = "notebook"


def flops_per_image(kind: str, overrides: list[str], batch: int = 32) -> float:
    """Training FLOPs per image: forward + backward at the given batch size."""
    x = torch.rand(batch, 3, 32, 32) - 0.5
    if kind == NOTEBOOK:
        model = nb.Model()

        def step():
            vq_loss, recon, _, _ = model(x)
            (torch.nn.functional.mse_loss(recon, x) + vq_loss).backward()
    else:
        cfg = get_preset(kind)
        apply_overrides(cfg, overrides)
        model = build_model(cfg.model, cfg.quantizer)
        model.train()

        def step():
            recon, out = model(x)
            (torch.nn.functional.mse_loss(recon, x) + out.loss).backward()
    step()  # k-means initialisation etc. happen on the first batch; count a steady step
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return counter.get_total_flops() / batch


def vqkit_config(preset: str, overrides: list[str], epochs: int, batch_size: int | None):
    cfg = get_preset(preset)
    apply_overrides(cfg, overrides)
    cfg.train.epochs = epochs
    cfg.train.log_every_steps = 10**9
    if batch_size:
        cfg.train.batch_size = batch_size
    return cfg


def time_training(kind, overrides, train_imgs, val, steps: int, batch_size: int) -> float:
    """Images/s over ``steps`` training steps at ``batch_size``, end to end."""
    n = steps * batch_size
    if kind == NOTEBOOK:
        torch.manual_seed(0)
        model = nb.Model()
        opt = torch.optim.Adam(model.parameters(), lr=3e-4)
        t = time.perf_counter()
        loader = nb.make_loader(train_imgs.numpy(), batch_size)
        nb.train_steps(model, opt, loader, n, log=[])
        return n / (time.perf_counter() - t)
    cfg = vqkit_config(kind, overrides, 1000, batch_size)
    cfg.train.max_steps = steps
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        train(cfg, Path(tmp) / "run", progress=False,
              data=(ImageData(train_imgs), ImageData(val[:batch_size])))
        return n / (time.perf_counter() - t)


def train_and_evaluate(kind, overrides, train_imgs, val, epochs: int, work: Path) -> dict:
    t = time.perf_counter()
    if kind == NOTEBOOK:
        torch.manual_seed(0)
        model = nb.Model()
        opt = torch.optim.Adam(model.parameters(), lr=3e-4)
        nb.train_steps(model, opt, nb.make_loader(train_imgs.numpy(), 32),
                       epochs * len(train_imgs), log=[])
        seconds = time.perf_counter() - t
        evaluated = nb.EvalAdapter(model.eval())
    else:
        cfg = vqkit_config(kind, overrides, epochs, None)
        run_dir = work / kind
        shutil.rmtree(run_dir, ignore_errors=True)
        train(cfg, run_dir, progress=False, data=(ImageData(train_imgs), ImageData(val)))
        seconds = time.perf_counter() - t
        evaluated, _ = load_model(run_dir, "last")
    with torch.no_grad():
        metrics = evaluate_images(evaluated, ImageData(val), n_examples=0).metrics
    return {"train_seconds": seconds, **metrics}


def quality_job(kind: str, overrides: list[str], data: str, epochs: int, work: Path,
                threads: int) -> dict:
    """One contender's training and evaluation, in a worker process with its own threads."""
    torch.set_num_threads(threads)
    train_imgs, _ = load_cifar10(data, "train")
    val, _ = load_cifar10(data, "val")
    return train_and_evaluate(kind, overrides, train_imgs, val, epochs, work)


def run_quality_jobs(jobs: list[tuple[str, list[str], Path]], data: str, epochs: int,
                     parallel: int) -> list[dict]:
    """Train and evaluate each (kind, overrides, work dir), ``parallel`` at a time (one thread
    each)."""
    if parallel <= 1:
        return [quality_job(k, o, data, epochs, w, torch.get_num_threads()) for k, o, w in jobs]
    # spawn, not fork: a forked child of a process that already ran OpenMP kernels can hang.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(parallel, mp_context=ctx) as pool:
        futures = [pool.submit(quality_job, k, o, data, epochs, w, 1) for k, o, w in jobs]
        return [f.result() for f in futures]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--epochs", type=int, default=5, help="training epochs for the quality run")
    p.add_argument("--contenders", default=f"{NOTEBOOK},cifar10-seed,cifar10")
    p.add_argument("--set", action="append", default=[],
                   help="override for the vqkit presets, e.g. train.lr=1e-3")
    p.add_argument("--throughput-steps", type=int, default=200)
    p.add_argument("--rounds", type=int, default=3, help="throughput rounds; 0 skips them")
    p.add_argument("--batch-size", type=int, default=32, help="batch for the throughput test")
    p.add_argument("--skip-quality", action="store_true")
    p.add_argument("--jobs", type=int, default=1,
                   help="train the contenders in this many processes at once (1 thread each); "
                        "quality only - throughput rounds always run one at a time")
    p.add_argument("--json", default="benchmarks/results/cifar10.json")
    p.add_argument("--work", default="", help="where trained runs go (default: a temp dir)")
    args = p.parse_args(argv)

    contenders = args.contenders.split(",")
    train_imgs, _ = load_cifar10(args.data, "train")
    val, _ = load_cifar10(args.data, "val")
    result = {"torch": torch.__version__, "threads": torch.get_num_threads(),
              "epochs": args.epochs, "train_images": len(train_imgs), "val_images": len(val),
              "overrides": args.set, "contenders": {}}
    res = result["contenders"]
    for kind in contenders:
        res[kind] = {"flops_per_image": flops_per_image(kind, args.set)}

    speeds: dict[str, list[float]] = {k: [] for k in contenders}
    for r in range(args.rounds):
        for kind in contenders:
            s = time_training(kind, args.set, train_imgs, val, args.throughput_steps,
                              args.batch_size)
            speeds[kind].append(s)
            print(f"round {r + 1}: {kind:14s} {s:8.1f} img/s", flush=True)
    for kind in contenders:
        if speeds[kind]:
            res[kind]["images_per_s"] = max(speeds[kind])
            res[kind]["images_per_s_rounds"] = speeds[kind]

    if not args.skip_quality:
        work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="vqkit-bench-"))
        outs = run_quality_jobs([(k, args.set, work) for k in contenders], args.data,
                                args.epochs, args.jobs)
        for kind, out in zip(contenders, outs, strict=True):
            res[kind].update(out)
            m = res[kind]
            print(f"{kind:14s} psnr {m['psnr']:.2f} dB  mse {m['mse']:.5f}  "
                  f"usage {m['codebook_usage']:.3f}  ({m['train_seconds']:.0f} s)", flush=True)

    ref = res.get(NOTEBOOK)
    if ref:
        for m in res.values():
            if "images_per_s" in m:
                m["throughput_ratio"] = m["images_per_s"] / ref["images_per_s"]
            m["flops_ratio"] = m["flops_per_image"] / ref["flops_per_image"]
            if "psnr" in m:
                m["psnr_gain_db"] = m["psnr"] - ref["psnr"]
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")

    cols = ["images_per_s", "throughput_ratio", "flops_ratio", "mse", "psnr", "psnr_gain_db",
            "ssim", "codebook_usage", "perplexity"]
    print(f"\nbatch {args.batch_size} throughput; quality after {args.epochs} epochs "
          f"({args.epochs * len(train_imgs)} images)")
    print(f"{'contender':14s} " + " ".join(f"{c:>16s}" for c in cols))
    for kind, m in res.items():
        cells = []
        for c in cols:
            v = m.get(c)
            cells.append(f"{v:16.4g}" if isinstance(v, float) and math.isfinite(v) else
                         f"{'-':>16s}")
        print(f"{kind:14s} " + " ".join(cells))
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
