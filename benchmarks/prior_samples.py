"""Are a class-conditional speech prior's samples recognisable by class?

Draw ``--n-per-class`` utterances of ``--seconds`` for every class of the prior (``vqkit sample
--class``), re-analyse the written WAVs with the run's mel frontend and classify them with the
linear probe on pooled raw mels (mean and standard deviation over time) trained on the run's
real training utterances; the same probe's accuracy on real held-out utterances is the
reference. Needs a prior trained with ``--set prior.speech_classes=transcript`` (or speaker).

    python benchmarks/prior_samples.py --prior runs/fsdd-digit-prior --n-per-class 10 \\
        --json benchmarks/results/prior-samples-fsdd.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

from vqkit.audio.pipeline import wav_to_model_input
from vqkit.codes.sample import sample_prior
from vqkit.codes.speech_cache import load_speech_codes
from vqkit.evaluation.reconstruct import read_audio
from vqkit.models import load_model
from vqkit.probing import fit_linear_probe
from vqkit.probing.speech import speech_features


def mel_features(paths: list[Path], cfg) -> torch.Tensor:
    """Pooled mel features (N, 2 * n_mels) of audio files, as the probe pools real mels."""
    out = []
    for p in paths:
        x, info = wav_to_model_input(read_audio(p, cfg), cfg)
        m = x[0, 0, :, :info["n_frames"]].double()
        std = m.std(-1, unbiased=False) if m.shape[-1] > 1 else torch.zeros(m.shape[0])
        out.append(torch.cat([m.mean(-1), std]).float())
    return torch.stack(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prior", required=True, help="a class-conditional speech prior")
    ap.add_argument("--n-per-class", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=0.6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--guidance", type=float, default=1.0, help="classifier-free guidance")
    ap.add_argument("--train-split", default="train")
    ap.add_argument("--split", default="test", help="real held-out split (reference)")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    _, pcfg = load_model(args.prior, kind="prior")
    p = pcfg.prior
    if p.order != "time" or not p.class_names:
        print(f"{args.prior}: not a class-conditional speech prior", file=sys.stderr)
        return 2
    model, cfg = load_model(p.run, p.checkpoint, kind="vqvae")
    kind = p.speech_classes
    dev = torch.device("cpu")
    tr = load_speech_codes(model, cfg, args.train_split, dev)
    te = load_speech_codes(model, cfg, args.split, dev)
    names = list(p.class_names)
    y_tr = torch.tensor([names.index(v) for v in tr.labels(kind)])
    keep = [i for i, v in enumerate(te.labels(kind)) if v in names]
    y_te = torch.tensor([names.index(te.labels(kind)[i]) for i in keep])
    f_tr, f_te = speech_features(model, tr)["mels"], speech_features(model, te)["mels"][keep]
    with tempfile.TemporaryDirectory() as work:
        paths, labels = [], []
        for c, name in enumerate(names):
            res = sample_prior(args.prior, Path(work) / str(c), n=args.n_per_class,
                               class_name=name, seconds=args.seconds, seed=args.seed + c,
                               guidance=args.guidance)
            paths += res["files"]
            labels += [c] * len(res["files"])
        f_s = mel_features(paths, cfg)
    real = fit_linear_probe(f_tr, y_tr, f_te, y_te, classes=len(names))
    samples = fit_linear_probe(f_tr, y_tr, f_s, torch.tensor(labels), classes=len(names))
    # the same probe, per class (refit is deterministic: same weights)
    per = {}
    for c, name in enumerate(names):
        idx = [i for i, y in enumerate(labels) if y == c]
        per[name] = fit_linear_probe(f_tr, y_tr, f_s[idx], torch.tensor([c] * len(idx)),
                                     classes=len(names))["accuracy"]
    res = {"prior": args.prior, "classes": names, "kind": kind, "n_per_class": args.n_per_class,
           "seconds": args.seconds, "guidance": args.guidance, "chance": 1 / len(names),
           "real_accuracy": real["accuracy"], "real_items": len(keep),
           "sample_accuracy": samples["accuracy"], "per_class": per}
    print(f"mel probe ({kind}, {len(names)} classes) on real {args.split} utterances: "
          f"{real['accuracy']:.3f}; on {len(labels)} samples, asked class: "
          f"{samples['accuracy']:.3f} (chance {1 / len(names):.3f})")
    print("  " + ", ".join(f"{k} {v:.2f}" for k, v in per.items()))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
