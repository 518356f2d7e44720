"""What a speech run's codes know: the spoken word (from the transcript) and the speaker.

Per utterance, three feature sets, each fed to the same logistic regression as the image probes
(:func:`~vqkit.probing.fit.fit_linear_probe`): the code embeddings (the quantizer's vectors
of every code row) pooled over time by their mean and standard deviation, the bag of codes (the
normalised histogram of the utterance's codes, per residual stage), and the baseline, the raw
normalised mel pooled the same way (mean and standard deviation of each mel bin over time).
Labels: the transcript ``<SPK>/transcript/<utt>.txt`` beside the ``<SPK>/wav/`` folder (the
L2-ARCTIC layout; FSDD's spoken digit) and the speaker (the first folder level).
"""

from __future__ import annotations

from typing import Any

import torch

from vqkit.codes.speech_cache import SpeechCodes, load_speech_codes
from vqkit.errors import VQKitError
from vqkit.probing.fit import fit_linear_probe
from vqkit.quantizers.stats import code_histogram

__all__ = ["probe_speech", "speech_features", "speech_labels"]


def _pool(x: torch.Tensor) -> torch.Tensor:
    """(..., T) -> mean and standard deviation over T, flattened."""
    x = x.reshape(-1, x.shape[-1]).double()
    std = x.std(-1, unbiased=False) if x.shape[-1] > 1 else torch.zeros(x.shape[0])
    return torch.cat([x.mean(-1), std]).float()


@torch.no_grad()
def speech_features(model, sc: SpeechCodes) -> dict[str, torch.Tensor]:
    """``{"code_embeddings": (N, 2 * D * F'), "bag_of_codes": (N, S * K), "mels": (N, 2 *
    n_mels)}`` (float32) of a split's utterances."""
    q = model.quantizer
    temporal = getattr(model, "code_rows", 0) == 1
    emb, bags, mels = [], [], []
    device = next(model.parameters()).device
    for c, m in zip(sc.codes, sc.mels, strict=True):
        codes = torch.from_numpy(c)[None].to(device)
        z = q.decode(codes[:, 0] if temporal else codes)  # (1, D, [F',] T')
        emb.append(_pool(z[0].cpu()))
        counts = code_histogram(torch.from_numpy(c), q.codebook_size, q.num_quantizers)
        bags.append(counts.reshape(-1).float() / c.size)
        mels.append(_pool(torch.from_numpy(m)))
    return {"code_embeddings": torch.stack(emb), "bag_of_codes": torch.stack(bags),
            "mels": torch.stack(mels)}


def speech_labels(sc: SpeechCodes) -> dict[str, list[str] | None]:
    """``{"transcript": transcripts (None when an utterance has none), "speaker": speakers}``."""
    words = sc.labels("transcript")
    return {"transcript": None if any(w is None for w in words) else words,  # type: ignore
            "speaker": list(sc.speakers)}


def probe_speech(model, cfg, *, train_split: str, test_split: str, max_train: int,
                 max_test: int, device: torch.device, steps: int) -> dict[str, Any]:
    """Held-out accuracy of the transcript and speaker probes (see the module docstring)."""
    tr = load_speech_codes(model, cfg, train_split, device, max_items=max_train)
    te = load_speech_codes(model, cfg, test_split, device, max_items=max_test)
    fa, fb = speech_features(model, tr), speech_features(model, te)
    la, lb = speech_labels(tr), speech_labels(te)
    result: dict[str, Any] = {"train_split": train_split, "test_split": test_split,
                              "train_items": len(tr.ids), "test_items": len(te.ids),
                              "features": {k: int(v.shape[1]) for k, v in fa.items()},
                              "tasks": {}}
    for task in ("transcript", "speaker"):
        ya, yb = la[task], lb[task]
        if ya is None or yb is None:
            result["tasks"][task] = None  # no transcripts
            continue
        names = sorted(set(ya) | set(yb))
        if len(set(ya)) < 2:
            raise VQKitError(f"{cfg.data.root}: split {train_split!r} holds one {task} only "
                             f"({ya[0]!r}); the probe needs at least two")
        y_tr = torch.tensor([names.index(v) for v in ya])
        y_te = torch.tensor([names.index(v) for v in yb])
        r: dict[str, Any] = {"classes": names,
                             "chance": float(torch.bincount(y_te).max()) / len(y_te),
                             "unseen_in_train": sorted(set(yb) - set(ya))}
        for name in fa:
            out = fit_linear_probe(fa[name], y_tr, fb[name], y_te, classes=len(names), steps=steps)
            r[f"{name}_accuracy"] = out["accuracy"]
            r[f"{name}_train_accuracy"] = out["train_accuracy"]
        result["tasks"][task] = r
    return result
