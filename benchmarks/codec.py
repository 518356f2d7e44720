"""Rate-distortion: vqkit (range-coded codes) against JPEG and WebP (Pillow) on CIFAR-10 val;
for a speech run, bits per second (raw code rate, unigram-coded, prior-coded) against STOI.

For the first ``--n`` val images: JPEG and WebP swept over quality, and vqkit's reconstruction
at its operating rate, coded with the prior (``--prior``) and with the adaptive unigram model.
PSNR (dB, mean over images) and SSIM against bits per pixel, counting the payload alone and the
whole file with its container headers (both columns; vqkit's header is shared by the images of
one file, so its per-image share is the file's header divided by ``--n``).

    python benchmarks/codec.py --run runs/cifar10 --prior runs/cifar10-prior \\
        --data ../shared/data --n 500 --json benchmarks/results/codec.json \\
        --plot docs/codec-rate-distortion.png

Speech (``--run`` a speech run): the first ``--n`` utterances of ``--split`` (the run's data)
compressed with the prior and with the adaptive unigram, decompressed, and scored by STOI
against the original recordings (over groups of at least 1 s, as ``vqkit evaluate``), beside
the Griffin-Lim ceiling (STOI of the true mel's Griffin-Lim audio); both files decode to the
same codes, so to the same audio:

    python benchmarks/codec.py --run runs/fsdd --prior runs/fsdd-prior \
        --split test --n 200 --json benchmarks/results/codec-speech.json
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from PIL import Image

from vqkit.codes.compress import compress_files, decompress_file
from vqkit.data.image_files import write_image
from vqkit.data.loaders import load_image_split
from vqkit.evaluation.metrics import psnr_per_item, ssim_per_item

QUALITIES = [5, 10, 20, 30, 50, 70, 90]


def jpeg_payload(data: bytes) -> int:
    """Bytes of entropy-coded data: after the (last) start-of-scan header, before EOI."""
    sos = data.rfind(b"\xff\xda")
    length = int.from_bytes(data[sos + 2:sos + 4], "big")
    return len(data) - (sos + 2 + length) - 2


def webp_payload(data: bytes) -> int:
    """Bytes of the VP8/VP8L bitstream chunk, without the RIFF container."""
    pos = 12
    while pos + 8 <= len(data):
        tag, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        if tag in (b"VP8 ", b"VP8L"):
            return size
        pos += 8 + size + (size & 1)
    return len(data) - 12


def quality_of(original: np.ndarray, decoded: np.ndarray) -> tuple[float, float]:
    """(mean PSNR, mean SSIM) of uint8 (N, H, W, C) images on the [0, 1] scale."""
    a = torch.from_numpy(original).permute(0, 3, 1, 2).float() / 255
    b = torch.from_numpy(decoded).permute(0, 3, 1, 2).float() / 255
    return float(psnr_per_item(b, a).mean()), float(ssim_per_item(b, a).mean())


def classic(images: np.ndarray, fmt: str, quality: int) -> dict[str, float]:
    decoded, payload, total = [], 0, 0
    for im in images:
        buf = io.BytesIO()
        Image.fromarray(im).save(buf, format=fmt, quality=quality)
        data = buf.getvalue()
        total += len(data)
        payload += jpeg_payload(data) if fmt == "JPEG" else webp_payload(data)
        decoded.append(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    pixels = images.shape[0] * images.shape[1] * images.shape[2]
    psnr, ssim = quality_of(images, np.stack(decoded))
    return {"codec": fmt.lower(), "quality": quality, "bpp_payload": 8 * payload / pixels,
            "bpp_file": 8 * total / pixels, "psnr": psnr, "ssim": ssim}


def vqkit_points(images: np.ndarray, run: str, prior: str | None, work: Path) -> list[dict]:
    folder = work / "png"
    paths = [write_image(folder / f"{i:05d}.png", im) for i, im in enumerate(images)]
    out = []
    for name, p in [("vqkit+prior", prior), ("vqkit+unigram", None)]:
        if name == "vqkit+prior" and p is None:
            continue
        r = compress_files(run, paths, work / f"{name}.vqz", prior_run=p)
        decompress_file(work / f"{name}.vqz", work / name)
        decoded = np.stack([np.asarray(Image.open(work / name / f"{q.stem}.png"))
                            for q in paths])
        psnr, ssim = quality_of(images, decoded)
        out.append({"codec": name, "quality": None, "bpp_payload": r["rate"],
                    "bpp_file": r["file_rate"], "psnr": psnr, "ssim": ssim,
                    "bits_per_code": r["bits_per_code"], "raw_bpp": r["raw_rate"]})
    return out


def plot(points: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("psnr", "ssim"), strict=True):
        for codec, style in (("jpeg", "o-"), ("webp", "s-")):
            pts = [p for p in points if p["codec"] == codec]
            ax.plot([p["bpp_payload"] for p in pts], [p[key] for p in pts], style, label=codec)
        for p in points:
            if p["codec"].startswith("vqkit"):
                ax.plot(p["bpp_payload"], p[key], "*", markersize=14, label=p["codec"])
        ax.set_xlabel("bits per pixel (payload)")
        ax.set_ylabel("PSNR (dB)" if key == "psnr" else "SSIM")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("CIFAR-10 val: vqkit vs JPEG and WebP")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def speech_points(run: str, prior: str | None, split: str, n: int, work: Path) -> dict:
    """Bits per second of the compressed files and STOI of their decoded audio."""
    from vqkit.data.speech import open_speech_cache, select_ids, source_path
    from vqkit.evaluation.reconstruct import read_audio, reconstruct_audio
    from vqkit.evaluation.speech_scores import StoiGroups
    from vqkit.models import load_model
    from vqkit.utils import unique_stems

    model, cfg = load_model(run, kind="vqvae")
    cache, root = open_speech_cache(cfg, progress=False)
    paths = [source_path(cache, root, i) for i in select_ids(cache, split)[:n]]
    names = unique_stems(paths)
    decoded, points = {}, []
    for name, p in [("vqkit+prior", prior), ("vqkit+unigram", None)]:
        if name == "vqkit+prior" and p is None:
            continue
        r = compress_files(run, paths, work / f"{name}.vqz", prior_run=p)
        decompress_file(work / f"{name}.vqz", work / name)
        decoded[name] = [sf.read(work / name / f"{s}.wav", dtype="float32")[0] for s in names]
        if not points:
            points.append({"codec": "vqkit raw", "bps_payload": r["raw_rate"],
                           "bps_file": r["raw_rate"],
                           "bits_per_code": math.log2(r["codebook_size"])})
        points.append({"codec": name, "bps_payload": r["rate"], "bps_file": r["file_rate"],
                       "bits_per_code": r["bits_per_code"]})
    first = next(iter(decoded.values()))
    same = all(np.array_equal(a, b) for d in decoded.values() for a, b in zip(first, d,
                                                                               strict=True))
    scores = StoiGroups(cfg.audio.sample_rate)
    for p, y_hat in zip(paths, first, strict=True):
        rec = reconstruct_audio(model, cfg, read_audio(p, cfg))
        scores.add(rec.original, y_hat, rec.oracle)
    scores.finish()
    m = scores.means()
    for pt in points:
        pt.update(stoi=m["stoi"], stoi_oracle=m["stoi_oracle"])
    return {"task": "speech", "run": run, "prior": prior, "split": split,
            "n_utterances": len(paths), "identical_decodes": same,
            "stoi_groups": len(scores.stoi), "points": points}


def speech_main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as work:
        res = speech_points(args.run, args.prior, args.split, args.n, Path(work))
    print(f"{res['n_utterances']} {args.split} utterances; STOI over {res['stoi_groups']} groups "
          f"of >= 1 s")
    print(f"{'codec':<14} {'bit/s payload':>13} {'bit/s file':>10} {'bits/code':>9} {'STOI':>6} "
          f"{'oracle':>6}")
    for p in res["points"]:
        print(f"{p['codec']:<14} {p['bps_payload']:>13.1f} {p['bps_file']:>10.1f} "
              f"{p['bits_per_code']:>9.3f} {p['stoi']:>6.3f} {p['stoi_oracle']:>6.3f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="trained image or speech run")
    ap.add_argument("--prior", help="a prior of the run (vqkit train prior)")
    ap.add_argument("--data", help="CIFAR-10 location (default: the run's)")
    ap.add_argument("--n", type=int, default=500, help="val images / utterances (default 500)")
    ap.add_argument("--split", default="val", help="speech: the split (default val)")
    ap.add_argument("--qualities", default=",".join(map(str, QUALITIES)))
    ap.add_argument("--json", help="write the points here")
    ap.add_argument("--plot", help="write the rate-distortion plot here (PNG)")
    args = ap.parse_args(argv)
    from vqkit.models import load_model

    _, cfg = load_model(args.run)
    if cfg.task == "speech":
        return speech_main(args)
    images = load_image_split(args.data or cfg.data.root or None, "val").images[:args.n]
    images = images.permute(0, 2, 3, 1).numpy()
    points = [classic(images, fmt, int(q)) for fmt in ("JPEG", "WEBP")
              for q in args.qualities.split(",")]
    with tempfile.TemporaryDirectory() as work:
        points += vqkit_points(images, args.run, args.prior, Path(work))
    print(f"{'codec':<14} {'quality':>7} {'bpp payload':>11} {'bpp file':>9} {'PSNR':>6} "
          f"{'SSIM':>6}")
    for p in points:
        print(f"{p['codec']:<14} {p['quality'] or '-':>7} {p['bpp_payload']:>11.4f} "
              f"{p['bpp_file']:>9.4f} {p['psnr']:>6.2f} {p['ssim']:>6.3f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"n_images": len(images), "run": args.run,
                                               "prior": args.prior, "points": points},
                                              indent=2) + "\n")
    if args.plot:
        plot(points, Path(args.plot))
    return 0


if __name__ == "__main__":
    sys.exit(main())
