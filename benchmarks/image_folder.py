"""Training images/s from a PNG image folder (its packed memory-mapped store) vs the in-memory
CIFAR-10 pickles, side by side in one process, rounds alternating.

Each measurement trains the ``cifar10`` preset for ``--steps`` steps from a fresh model on the
already-loaded training split (the folder's store packed beforehand, as a second run finds it)
and times the whole ``train`` call; the ratio folder / pickle is the figure. Same pixels, same
model, same steps: only where the batches come from differs.

    python scripts/make_image_folder.py ../shared/data/cifar-10-batches-py FOLDER
    flock /tmp/vqkit-cpu.lock python benchmarks/image_folder.py --pickle ../shared/data \\
        --folder FOLDER --json benchmarks/results/image_folder.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from vqkit.config import get_preset
from vqkit.data.loaders import load_image_split
from vqkit.training.train import train


def measure(data: tuple, steps: int, overrides: list[str]) -> float:
    """Images/s of ``steps`` training steps of the cifar10 preset on ``data``."""
    from vqkit.config import apply_overrides

    cfg = get_preset("cifar10")
    apply_overrides(cfg, overrides)
    cfg.train.max_steps, cfg.train.checkpoint_every_minutes = steps, 0.0
    cfg.train.log_every_steps = 10**9
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        train(cfg, Path(tmp) / "run", progress=False, data=data)
        seconds = time.perf_counter() - t
    return steps * cfg.train.batch_size / seconds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pickle", required=True, help="CIFAR-10 (folder with cifar-10-batches-py)")
    p.add_argument("--folder", required=True, help="the same images as a PNG folder")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--json", help="write the results here")
    a = p.parse_args(argv)
    sources = {}
    for name, root in (("pickle", a.pickle), ("folder", a.folder)):
        t = time.perf_counter()
        tr, val = load_image_split(root, "train", train=True), load_image_split(root, "val")
        load_s = time.perf_counter() - t
        sources[name] = ((tr, val.head(32) if hasattr(val, "head") else _head(val)), load_s)
    rates: dict[str, list[float]] = {"pickle": [], "folder": []}
    for _ in range(a.rounds):
        for name in rates:
            rates[name].append(measure(sources[name][0], a.steps, a.overrides))
            print(f"{name}: {rates[name][-1]:.1f} img/s", file=sys.stderr)
    med = {k: statistics.median(v) for k, v in rates.items()}
    res = {"steps": a.steps, "rounds": a.rounds, "images_per_s": rates,
           "median_images_per_s": med, "ratio_folder_to_pickle": med["folder"] / med["pickle"],
           "load_seconds": {k: v[1] for k, v in sources.items()},
           "n_train": {k: len(v[0][0]) for k, v in sources.items()}}
    print(json.dumps(res, indent=2))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


def _head(val):
    from vqkit.data.images import ImageData

    return ImageData(val.images[:32], val.name)


if __name__ == "__main__":
    sys.exit(main())
