"""Speech: the thesis notebook's caching, model and loop against vqkit's cache and presets.

Part 1, caching (``speech_cache.py``, also runnable alone): the notebook's per-file librosa load +
melspectrogram + pickle against ``vqkit cache`` with 1 and 2 workers and an up-to-date re-run,
on the same files, in one run: files/s ratios.

Part 2, training. Leave one speaker out on FSDD in the L2-ARCTIC layout: every contender
trains on three speakers for the same wall-clock (``--minutes``), one after the other, then is
evaluated on the fourth speaker with the same code (:func:`vqkit.evaluation.speech.
evaluate_speech`, real frames only): mel MSE (normalised scale), mel L1 (dB), STOI of the
Griffin-Lim audio of the reconstruction, STOI of the Griffin-Lim audio of the true mel (the
vocoder's ceiling), codebook usage and perplexity. vqkit contenders run with ``--max-minutes``
(their cosine schedule anneals within the minutes) and are evaluated at their last checkpoint,
encoding with the code search of their preset (``search.steps``; ``--set search.steps=0`` for
the nearest codes).

The notebook contender: the thesis's conv VQ-VAE (``notebook_reference.Model(channels=1)``, its
non-EMA one-hot quantizer, 128 hiddens, 512 x 64 codes) and loop (``train_steps``), on 5 s clips
padded with silence and min-max normalised per utterance (top_db 80), fed item by item through a
``DataLoader`` (batch 16, shuffled), Adam 2e-4, StepLR(20, 0.5) per epoch, loss over all frames
(the padding included), ``.item()`` on every step. Its 313-frame clips are padded to 316 (a
multiple of 4) so that the output has the input's size. The mels are vqkit's cached ones,
normalised as the thesis did; only the model and the loop are the notebook's.

    PYTHONPATH=src python benchmarks/speech.py --minutes 15 --json benchmarks/results/speech.json
    PYTHONPATH=src python benchmarks/speech.py --minutes 1      # smoke run
    PYTHONPATH=src python benchmarks/speech.py --skip-training  # part 1 only

Rate-quality sweep: ``--contenders l2arctic-seed,l2arctic,l2arctic-codec,l2arctic-2kbps
--skip-cache``. A contender trained with quantizer dropout (``l2arctic-codec``) is also
evaluated at every stage count 1..S (:func:`vqkit.evaluation.rate_curve.rate_curve`, the
oracle's audio shared); the last table then lists bit/s, STOI, STOI / oracle and wideband
PESQ of every contender and stage count.

Minutes are wall-clock on whatever machine runs this: the ratios between contenders are what to
quote, and only on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
import notebook_reference as nb  # noqa: E402
import speech_cache  # noqa: E402

from vqkit.audio.normalize import SILENCE, clip_frames, pad_or_cut_frames  # noqa: E402
from vqkit.audio.pipeline import prepare_mel_db  # noqa: E402
from vqkit.config import apply_overrides, get_preset  # noqa: E402
from vqkit.data.speech import open_speech_cache, select_ids  # noqa: E402
from vqkit.evaluation.rate_curve import rate_curve  # noqa: E402
from vqkit.evaluation.speech import evaluate_speech  # noqa: E402
from vqkit.models import load_model  # noqa: E402
from vqkit.training.train import train  # noqa: E402
from vqkit.utils import atomic_write_text  # noqa: E402

NOTEBOOK = "notebook"
DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / \
    "fsdd-l2arctic-layout"
KEYS = ("mel_mse", "mel_l1_db", "stoi", "stoi_oracle", "stoi_ratio", "codebook_usage",
        "perplexity", "pesq", "bitrate_bps")


class ClipDataset(Dataset):
    """The notebook's per-item dataset: one (1, n_mels, 316) clip per utterance, no label."""

    def __init__(self, clips: list[torch.Tensor]) -> None:
        self.clips = clips

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int):
        return self.clips[i], 0  # (data, label), as the notebook's dataset


def notebook_clips(data: str, split: str) -> list[torch.Tensor]:
    cfg = get_preset("l2arctic-seed")
    cfg.data.root = data
    cache, _ = open_speech_cache(cfg)
    frames = clip_frames(cfg.audio)
    clips = []
    for i in select_ids(cache, split):
        norm, _ = prepare_mel_db(cache.load(i), cfg.audio)
        clips.append(torch.from_numpy(pad_or_cut_frames(norm, frames, SILENCE))[None])
    return clips


def run_notebook(data: str, train_split: str, test_split: str, minutes: float, seed: int,
                 max_items: int) -> dict:
    torch.manual_seed(seed)
    loader = DataLoader(ClipDataset(notebook_clips(data, train_split)), batch_size=16,
                        shuffle=True, generator=torch.Generator().manual_seed(seed))
    model = nb.Model(channels=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=20, gamma=0.5)
    log: list[tuple[float, float]] = []
    t0 = time.time()
    _, steps, epochs = nb.train_steps(model, optimizer, loader, max_seconds=60 * minutes,
                                      scheduler=scheduler, log=log)
    seconds = time.time() - t0
    cfg = get_preset("l2arctic-seed")
    metrics = evaluate_speech(nb.EvalAdapter(model.eval()), cfg, data, test_split,
                              max_items=max_items).metrics
    return {"steps": steps, "epochs": epochs, "train_s": seconds,
            "last_train_recon": log[-1][0], "last_train_perplexity": log[-1][1], **metrics}


def run_vqkit(preset: str, data: str, train_split: str, test_split: str, minutes: float,
              seed: int, overrides: list[str], work: Path, max_items: int) -> dict:
    cfg = get_preset(preset)
    cfg.data.root = data
    apply_overrides(cfg, [f"data.train_split={train_split}", f"data.val_split={test_split}",
                          "train.val_max_batches=8", f"train.seed={seed}",
                          f"train.max_minutes={minutes}", *overrides])
    run_dir = work / preset
    t0 = time.time()
    res = train(cfg, run_dir, progress=False)
    seconds = time.time() - t0
    model, cfg = load_model(run_dir, "last")
    cache: dict = {}
    ev = evaluate_speech(model, cfg, data, test_split, run_dir=run_dir, max_items=max_items,
                         oracle_cache=cache)
    metrics = ev.metrics
    if cfg.quantizer.kind == "rvq" and cfg.quantizer.quantizer_dropout > 0:
        metrics["rate_curve"] = rate_curve(model, cfg, data, test_split, max_items=max_items,
                                           oracle_cache=cache, last=ev)
    return {"steps": res.step, "epochs": res.epoch, "train_s": seconds, "run_dir": str(run_dir),
            "search_steps": model.search.steps if model.search else 0, **metrics}


def format_table(results: dict[str, dict]) -> str:
    head = f"{'contender':<15}{'steps':>7}" + "".join(f"{k:>16}" for k in KEYS)
    rows = [head, "-" * len(head)]
    for name, r in results.items():
        vals = "".join(f"{r.get(k, math.nan):>16.4f}" for k in KEYS)
        rows.append(f"{name:<15}{r['steps']:>7}{vals}")
    return "\n".join(rows)


def format_rate_table(results: dict[str, dict]) -> str:
    """One row per contender and stage count (every prefix for quantizer-dropout models)."""
    rows = [f"{'contender':<16}{'stages':>7}{'bit/s':>9}{'stoi':>8}{'x oracle':>10}{'pesq':>7}"]
    for name, r in results.items():
        for c in r.get("rate_curve") or [{**r, "stages": "all"}]:
            rows.append(f"{name:<16}{c['stages']!s:>7}{c.get('bitrate_bps', math.nan):>9.1f}"
                        f"{c['stoi']:>8.4f}{c['stoi_ratio']:>10.4f}"
                        f"{c.get('pesq', math.nan):>7.3f}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default=str(DEFAULT_DATA),
                   help="audio folder <SPK>/wav/*.wav or a mel cache (default: shared FSDD)")
    p.add_argument("--train-speakers", default="GEORGE,JACKSON,LUCAS")
    p.add_argument("--test-speaker", default="NICOLAS")
    p.add_argument("--minutes", type=float, default=15.0, help="training wall-clock per contender")
    p.add_argument("--contenders", default=f"{NOTEBOOK},l2arctic-seed,l2arctic")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override for the vqkit presets (repeatable)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-items", type=int, default=0, help="evaluate only N utterances")
    p.add_argument("--work", default="", help="where vqkit runs go (default: a temp dir)")
    p.add_argument("--json", default="", help="write the results here")
    p.add_argument("--skip-cache", action="store_true", help="leave out part 1 (caching)")
    p.add_argument("--skip-training", action="store_true", help="leave out part 2 (training)")
    args = p.parse_args(argv)
    out: dict = {"data": args.data, "torch": torch.__version__}
    if not args.skip_cache:
        print("== caching: notebook vs vqkit cache on the same files", flush=True)
        out["cache"] = speech_cache.measure(Path(args.data))
        print(speech_cache.format_table(out["cache"]), flush=True)
        if args.json:
            atomic_write_text(Path(args.json), json.dumps(out, indent=2) + "\n")
    if args.skip_training:
        return 0
    train_split = f"speakers:{args.train_speakers}"
    test_split = f"speakers:{args.test_speaker}"
    work = Path(args.work or tempfile.mkdtemp(prefix="vqkit-speech-bench-"))
    results: dict[str, dict] = {}
    for name in args.contenders.split(","):
        print(f"== {name}: training {args.minutes:g} min on {train_split}", flush=True)
        if name == NOTEBOOK:
            results[name] = run_notebook(args.data, train_split, test_split, args.minutes,
                                         args.seed, args.max_items)
        else:
            results[name] = run_vqkit(name, args.data, train_split, test_split, args.minutes,
                                      args.seed, args.set, work, args.max_items)
        r = results[name]
        print(f"   {r['steps']} steps, stoi {r['stoi']:.3f} (oracle {r['stoi_oracle']:.3f}), "
              f"usage {r['codebook_usage']:.3f}", flush=True)
        if args.json:  # after each contender: a long run keeps what it measured
            out.update({"train": train_split, "test": test_split, "minutes": args.minutes,
                        "overrides": args.set, "threads": torch.get_num_threads(),
                        "results": results})
            atomic_write_text(Path(args.json), json.dumps(out, indent=2) + "\n")
    print(format_table(results))
    print(format_rate_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
