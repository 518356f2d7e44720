"""Mel caching: the thesis notebook's per-file pickles vs ``vqkit cache`` (``build_mel_cache``).

The notebook, per file: ``librosa.load(path, sr=16000)``, pad or cut to 5 s,
``librosa.feature.melspectrogram(n_fft=1024, hop_length=256, n_mels=128)``,
``librosa.power_to_db(ref=np.max)``, then ``pickle.dump`` of a dict with the waveform and the mel.
vqkit: ``build_cache`` with 1 worker, with 2 workers, and a re-run over the up-to-date cache.
All on the same files; imports and one warm-up file are outside the timings.

    PYTHONPATH=src python benchmarks/speech_cache.py [--data DIR] [--limit N] [--json PATH]

Needs librosa (``pip install -e .[bench]``).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / \
    "fsdd-l2arctic-layout"

SR, CLIP_S, N_FFT, HOP, N_MELS = 16000, 5.0, 1024, 256, 128


def notebook_cache_one(path: Path, out_dir: Path) -> None:
    """The notebook's caching of one file, as written there."""
    import librosa

    y, sr = librosa.load(path, sr=SR)
    n = int(SR * CLIP_S)
    y = np.pad(y, (0, n - len(y))) if len(y) < n else y[:n]
    mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS)
    mel_db = librosa.power_to_db(mel, ref=np.max)
    with open(out_dir / f"{path.parent.parent.name}_{path.stem}.pkl", "wb") as f:
        pickle.dump({"waveform": y, "mel": mel_db, "sr": sr}, f)


def cpu_s() -> float:
    """CPU seconds used so far by this process and its finished children (user + system)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn, *args, **kw):
    """(result, wall s, cpu s) of ``fn(*args, **kw)``."""
    c0, t0 = cpu_s(), time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t0, cpu_s() - c0


def run_notebook(files: list[Path], out_dir: Path) -> float:
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for p in files:
        notebook_cache_one(p, out_dir)
    return time.perf_counter() - t0


def measure(data: Path, limit: int = 0, workdir: Path | None = None) -> dict:
    """Run the four cache measurements on the same files; returns the results (JSON-able)."""
    import librosa
    import torch

    from vqkit.config import get_preset
    from vqkit.data.audio_sources import build_mel_cache as build_cache

    data = data.resolve()
    files = sorted(data.glob("*/wav/*.wav"))
    if limit:
        files = files[:limit]
    if not files:
        raise SystemExit(f"no <SPK>/wav/*.wav under {data}")
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="vqkit-bench-", dir=workdir))
    try:
        # The same files for both: a folder of links to the chosen ones.
        src = work / "data"
        for p in files:
            dst = src / p.parent.parent.name / "wav" / p.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(p, dst)
        cfg = get_preset("l2arctic").audio
        cfg.sample_rate, cfg.n_fft, cfg.hop_length, cfg.n_mels = SR, N_FFT, HOP, N_MELS

        # warm-up outside the timings (imports, filterbank caches, first-call overheads)
        notebook_cache_one(files[0], work)
        build_cache(src, work / "warm", cfg, workers=1, progress=False)

        t_nb, _, cpu_nb = timed(run_notebook, files, work / "notebook")
        nb_bytes = sum(f.stat().st_size for f in (work / "notebook").iterdir())
        shutil.rmtree(work / "notebook")
        r1, _, cpu1 = timed(build_cache, src, work / "w1", cfg, workers=1, progress=False)
        r2, _, cpu2 = timed(build_cache, src, work / "w2", cfg, workers=2, progress=False)
        rr, _, cpur = timed(build_cache, src, work / "w2", cfg, workers=2, progress=False)
        vq_bytes = sum(f.stat().st_size for f in (work / "w2").rglob("*.npy"))
        assert r1.computed == r2.computed == rr.reused and rr.computed == 0, (r1, r2, rr)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    n = len(files)
    return {
        "files": n,
        "data": str(data),
        "notebook_s": t_nb,
        "vqkit_1worker_s": r1.seconds,
        "vqkit_2workers_s": r2.seconds,
        "vqkit_rerun_s": rr.seconds,
        "notebook_files_per_s": n / t_nb,
        "vqkit_1worker_files_per_s": n / r1.seconds,
        "vqkit_2workers_files_per_s": n / r2.seconds,
        "ratio_vqkit1_over_notebook": t_nb / r1.seconds,
        "ratio_vqkit2_over_notebook": t_nb / r2.seconds,
        "ratio_2workers_over_1worker": r1.seconds / r2.seconds,
        "ratio_rerun_over_first_run": rr.seconds / r2.seconds,
        # CPU seconds (all processes): with other jobs on the machine, wall-clock ratios of
        # parallel runs understate the speed-up; equal CPU totals show no parallel overhead.
        "notebook_cpu_s": cpu_nb,
        "vqkit_1worker_cpu_s": cpu1,
        "vqkit_2workers_cpu_s": cpu2,
        "vqkit_rerun_cpu_s": cpur,
        "notebook_mb": nb_bytes / 1e6,
        "vqkit_mb": vq_bytes / 1e6,
        "bad_files": r1.skipped,
        "cpu_count": os.cpu_count(),
        "load_avg_1min": os.getloadavg()[0],
        "python": platform.python_version(),
        "torch": torch.__version__,
        "librosa": librosa.__version__,
    }


def format_table(res: dict) -> str:
    n = res["files"]
    rows = [
        ("notebook (librosa, 5 s pad, pickle)", res["notebook_s"], res["notebook_cpu_s"], ""),
        ("vqkit build_cache, 1 worker", res["vqkit_1worker_s"], res["vqkit_1worker_cpu_s"],
         f"{res['ratio_vqkit1_over_notebook']:.1f}x notebook"),
        ("vqkit build_cache, 2 workers", res["vqkit_2workers_s"], res["vqkit_2workers_cpu_s"],
         f"{res['ratio_vqkit2_over_notebook']:.1f}x notebook, "
         f"{res['ratio_2workers_over_1worker']:.2f}x 1 worker"),
        ("vqkit re-run, up to date", res["vqkit_rerun_s"], res["vqkit_rerun_cpu_s"],
         f"{res['ratio_rerun_over_first_run']:.3f}x first run"),
    ]
    lines = [f"{n} files from {res['data']} ({res['cpu_count']} CPUs, "
             f"load {res['load_avg_1min']:.2f})",
             f"{'method':38s} {'wall s':>7s} {'cpu s':>7s} {'files/s':>8s}  ratio (files/s)"]
    lines += [f"{name:38s} {t:7.2f} {c:7.2f} {n / t:8.0f}  {note}" for name, t, c, note in rows]
    lines.append(f"disk: notebook {res['notebook_mb']:.0f} MB, vqkit {res['vqkit_mb']:.1f} MB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA,
                    help="folder laid out <SPK>/wav/*.wav (default: the shared FSDD copy)")
    ap.add_argument("--limit", type=int, default=0, help="use the first N files (0: all)")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--workdir", type=Path, help="scratch folder (default: a temporary one)")
    args = ap.parse_args(argv)
    res = measure(args.data, args.limit, args.workdir)
    print(format_table(res))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
