#!/usr/bin/env python3
"""Write CIFAR-10 batches as PNG files in class folders: an image-folder dataset for vqkit.

Default: batches 1-4 -> OUT/train/<class>/<batch>_<index>.png, batch 5 -> OUT/val/<class>/...
(the pickle path's train and val splits). ``--size 64 --flip`` writes every image of batches
1-5 upscaled (bicubic) to 64x64 and, with ``--flip``, its mirror image too, into
OUT/<class>/ (no split folders: vqkit splits them by a hash of the path): 100,000 files::

    python scripts/make_image_folder.py ../shared/data/cifar-10-batches-py cifar10-png
    python scripts/make_image_folder.py ../shared/data/cifar-10-batches-py OUT64 --size 64 --flip
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import sys
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from vqkit.data.cifar10 import cifar10_class_names, read_batch  # noqa: E402


def _write(args: tuple) -> int:
    images, names, size, flip = args
    for img, name in zip(images, names, strict=True):
        im = Image.fromarray(img.transpose(1, 2, 0))
        if size != 32:
            im = im.resize((size, size), Image.Resampling.BICUBIC)
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        im.save(name)
        if flip:
            im.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(name.replace(".png", "_f.png"))
    return len(names)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("cifar", help="the cifar-10-batches-py folder")
    p.add_argument("out", help="folder to write (created)")
    p.add_argument("--size", type=int, default=32, help="side in pixels (default 32: as is)")
    p.add_argument("--flip", action="store_true", help="also write each image mirrored")
    p.add_argument("--limit", type=int, default=0, help="images per batch (0: all)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    a = p.parse_args(argv)
    classes = cifar10_class_names(a.cifar)
    out = Path(a.out)
    tasks = []
    for b in range(1, 6):
        images, labels = read_batch(Path(a.cifar) / f"data_batch_{b}")
        if a.limit:
            images, labels = images[:a.limit], labels[:a.limit]
        split = "" if a.size != 32 or a.flip else ("val/" if b == 5 else "train/")
        names = [str(out / f"{split}{classes[k]}/{b}_{i:05d}.png") for i, k in enumerate(labels)]
        for lo in range(0, len(names), 500):
            tasks.append((images[lo:lo + 500], names[lo:lo + 500], a.size, a.flip))
    with cf.ProcessPoolExecutor(max_workers=a.workers) as pool:
        n = sum(pool.map(_write, tasks))
    print(f"{out}: {n * (2 if a.flip else 1)} PNG files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
