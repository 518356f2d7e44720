"""What vqkit will train on, before it trains: ``vqkit data PATH``.

For an image folder: counts per split and class, image sizes and modes summarised, the
channels the model will take, and the unreadable files by name. For audio (a folder, a
manifest, a subset): counts and seconds per split and speaker, durations, sample rates and
channel counts, unreadable files. Only headers are read (no
pixels decoded), in parallel worker processes, so a 10,000-file folder takes seconds. For
CIFAR-10 batches: counts per split and class.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from vqkit.config import DataConfig
from vqkit.data.audio_folder import find_audio_files
from vqkit.data.audio_sources import is_manifest
from vqkit.data.cifar10 import (
    ARCHIVE_NAME,
    SPLIT_FILES,
    _batches_dir_in,
    cifar10_class_names,
    find_cifar10,
    read_batch,
)
from vqkit.data.image_folder import GREY_MODES, scan_image_folder
from vqkit.data.image_store import read_headers
from vqkit.data.loaders import is_image_folder
from vqkit.utils import run_parallel

__all__ = ["summarize_data"]

N_UNREADABLE = 20  # unreadable files listed by name


def _spread(values: list[int]) -> dict[str, float]:
    a = np.asarray(values)
    return {"min": int(a.min()), "median": float(np.median(a)), "max": int(a.max())}


def _image_folder(root: Path, d: DataConfig, workers: int) -> dict[str, Any]:
    folder = scan_image_folder(root, val_fraction=d.val_fraction, split_seed=d.split_seed)
    names = folder.class_names
    pairs = [(s.name, rel, lab) for s in folder.splits.values()
             for rel, lab in zip(s.files, s.labels, strict=True)]
    rels = [p[1] for p in pairs]
    heads = read_headers(root, rels, workers)
    splits: dict[str, Any] = {}
    sizes: Counter = Counter()
    modes: Counter = Counter()
    unreadable = []
    for (split, rel, lab), h in zip(pairs, heads, strict=True):
        s = splits.setdefault(split, {"files": 0, "readable": 0, "classes": Counter()})
        s["files"] += 1
        if isinstance(h, str):
            unreadable.append({"path": rel, "reason": h})
            continue
        s["readable"] += 1
        if names:
            s["classes"][names[lab]] += 1
        sizes[(h[0], h[1])] += 1
        modes[h[2]] += 1
    for s in splits.values():
        s["classes"] = dict(sorted(s["classes"].items()))
    ws = [w for (w, _), n in sizes.items() for _ in range(n)]
    hs = [h for (_, h), n in sizes.items() for _ in range(n)]
    shorter = [min(w, h) for (w, h), n in sizes.items() for _ in range(n)]
    return {
        "path": str(root), "kind": "image_folder", "split_rule": folder.split_rule,
        "class_names": names, "splits": splits,
        "images": {"width": _spread(ws), "height": _spread(hs),
                   "shorter_side": _spread(shorter),
                   "most_common_sizes": [[w, h, n] for (w, h), n in sizes.most_common(5)],
                   "modes": dict(modes.most_common())} if sizes else {},
        "channels": 1 if modes and all(m in GREY_MODES for m in modes) else 3,
        "image_size": d.image_size,
        "unreadable": {"count": len(unreadable), "first": unreadable[:N_UNREADABLE]},
    }


def _cifar10(root: str | None) -> dict[str, Any]:
    folder = find_cifar10(root, download=False)
    names = cifar10_class_names(root)
    splits = {}
    for split, files in SPLIT_FILES.items():
        if split == "all" or not all((folder / f).is_file() for f in files):
            continue
        labels = np.concatenate([read_batch(folder / f)[1] for f in files])
        counts = Counter(int(k) for k in labels)
        splits[split] = {"files": len(labels), "readable": len(labels),
                         "classes": {names[k]: counts[k] for k in sorted(counts)}}
    return {"path": str(folder), "kind": "cifar10", "split_rule": "batch files",
            "class_names": names, "splits": splits,
            "images": {"most_common_sizes": [[32, 32, sum(s["files"] for s in splits.values())]],
                       "modes": {"RGB": sum(s["files"] for s in splits.values())}},
            "channels": 3, "image_size": 32, "unreadable": {"count": 0, "first": []}}


def _audio_info(args: tuple[str, list[str]]) -> list[tuple[float, int, int] | str]:
    import soundfile as sf

    root, rels = args
    out: list[tuple[float, int, int] | str] = []
    for rel in rels:
        try:
            info = sf.info(str(Path(root) / rel))
            if info.frames <= 0:
                raise RuntimeError("empty audio (0 samples)")
            out.append((info.frames / info.samplerate, int(info.samplerate), int(info.channels)))
        except Exception as e:  # noqa: BLE001 - any decoder failure: the file is unreadable
            out.append(" ".join(str(e).split()) or type(e).__name__)
    return out


def _audio(path: Path, workers: int) -> dict[str, Any]:
    from vqkit.data.audio_sources import audio_root, list_audio_sources

    sources = list_audio_sources(path)
    root = audio_root(path)
    rels = [s.rel for s in sources]
    tasks = [(str(root), rels[i:i + 256]) for i in range(0, len(rels), 256)]
    infos = [x for part in run_parallel(_audio_info, tasks, workers) for x in part]
    named = any(s.split != "train" for s in sources)
    splits: dict[str, Any] = {}
    rates: Counter = Counter()
    chans: Counter = Counter()
    durations, unreadable = [], []
    for s, info in zip(sources, infos, strict=True):
        split = s.split if named else "all"
        sp = splits.setdefault(split, {"files": 0, "readable": 0, "speakers": Counter(),
                                       "seconds": 0.0})
        sp["files"] += 1
        if isinstance(info, str):
            unreadable.append({"path": s.rel, "reason": info})
            continue
        sp["readable"] += 1
        sp["speakers"][s.speaker] += 1
        sp["seconds"] += info[0]
        durations.append(info[0])
        rates[info[1]] += 1
        chans[info[2]] += 1
    for sp in splits.values():
        sp["speakers"] = dict(sorted(sp["speakers"].items()))
        sp["seconds"] = round(sp["seconds"], 3)
    d = np.asarray(durations) if durations else np.zeros(1)
    return {"path": str(path), "kind": "audio",
            "split_rule": "its split column" if named else "a hash of the id (val 10%, test 10%)",
            "splits": splits,
            "audio": {"seconds": {"min": float(d.min()), "median": float(np.median(d)),
                                  "max": float(d.max()), "total": float(d.sum())},
                      "sample_rates": dict(sorted(rates.items())),
                      "channels": dict(sorted(chans.items()))},
            "unreadable": {"count": len(unreadable), "first": unreadable[:N_UNREADABLE]}}


def summarize_data(path: str | Path, data: DataConfig | None = None,
                   workers: int = 0) -> dict[str, Any]:
    """A summary of the dataset at ``path`` (an image folder, CIFAR-10 or audio), as a dict
    ready for JSON: ``kind``, ``splits`` (per split ``files``, ``readable``, ``classes`` or
    ``speakers``), ``images`` (sizes and modes) or ``audio`` (durations in s, sample rates in
    Hz, channels), ``unreadable``.

    Raises
    ------
    DataError
        When ``path`` holds neither an image folder nor CIFAR-10 (or an empty folder).
    """
    d = data or DataConfig()
    workers = workers or d.workers or os.cpu_count() or 1
    p = Path(path).expanduser()
    if is_image_folder(p):
        return _image_folder(p, d, workers)
    cifar = p.is_dir() and (_batches_dir_in(p) is not None or (p / ARCHIVE_NAME).is_file())
    audio_dir = p.is_dir() and ((p / "metadata.csv").is_file() or find_audio_files(p))
    if is_manifest(p) or (audio_dir and not cifar):
        return _audio(p, workers)
    return _cifar10(str(path))
