"""What an evaluation measures: each metric in one line, the split's definition and what it
holds, and warnings when it overlaps the training split or its audio was resampled up.

``vqkit evaluate`` prints these, stores them in ``RUN/eval/<split>/metrics.json`` and the report
shows them beside the numbers.
"""

from __future__ import annotations

import copy
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

from vqkit.config import RunConfig
from vqkit.data.cifar10 import SPLIT_FILES
from vqkit.data.speech import (
    describe_split,
    open_speech_cache,
    select_ids,
    source_sample_rates,
    speaker_counts,
    upsampling_note,
)
from vqkit.errors import DataError

__all__ = ["METRIC_HELP", "about_images", "about_speech", "metric_help_text"]

# One line per metric, for `vqkit evaluate --help` and the report.
METRIC_HELP = {
    "mse": "mean squared error per pixel on the [0, 1] scale (lower is better)",
    "psnr": "peak signal-to-noise ratio in dB, the mean over images of 10 log10(1 / MSE)",
    "ssim": "structural similarity (1 = identical), the mean over images",
    "perplexity": "2 ** entropy of the code histogram over the split: the number of equally "
                  "used codes that would give the same entropy",
    "codebook_usage": "fraction of the codebook's codes used at least once on the split",
    "codebook_size": "codes per codebook (per stage for residual VQ)",
    "n_images": "images evaluated",
    "bits_per_image": "raw code bits per image: codes per image x log2(codebook size) x stages",
    "bits_per_pixel": "bits_per_image / pixels per image (no entropy coding)",
    "mel_mse": "mean squared error of the normalised mel, over real frames and bands",
    "mel_l1_db": "mean absolute error of the mel in dB against the true mel (real frames)",
    "stoi": "short-time objective intelligibility (0-1) of the Griffin-Lim audio of the "
            "reconstructed mel against the original recording",
    "stoi_oracle": "STOI of the Griffin-Lim audio of the true mel: the vocoder's ceiling",
    "stoi_ratio": "stoi / stoi_oracle: how much of the ceiling the codes keep",
    "pesq": "wideband PESQ (ITU-T P.862.2, MOS-LQO about 1-4.64) of the Griffin-Lim audio of "
            "the reconstructed mel, same groups as STOI (NaN without the optional pesq package)",
    "pesq_oracle": "wideband PESQ of the Griffin-Lim audio of the true mel",
    "stages": "residual VQ stages the codes used (--stages; all by default)",
    "stoi_groups": "number of STOI scores averaged: consecutive utterances are joined into "
                   "groups of at least 1 s, because STOI needs that much audio",
    "stoi_utterances": "utterances inside those groups",
    "n_utterances": "utterances evaluated",
    "n_frames": "real mel frames evaluated",
    "audio_s": "seconds of audio evaluated",
    "bitrate_bps": "raw code bits per second of audio: code frames per second x "
                   "log2(codebook size) x stages (no entropy coding)",
    "kbps": "bitrate_bps / 1000 (the rate-quality table)",
    "usage_per_stage": "codebook_usage of each residual stage used, first to last",
    "search_steps": "steps of encoder-side code search the codes were chosen with "
                    "(--search-steps; 0: the nearest codes)",
}


def metric_help_text() -> str:
    """The metrics and their meaning, one per line (for ``--help``)."""
    width = max(map(len, METRIC_HELP))
    return "\n".join(textwrap.fill(v, 96, initial_indent=f"  {k:<{width}}  ",
                                   subsequent_indent=" " * (width + 4))
                     for k, v in METRIC_HELP.items())


def about_images(split: str, train_split: str, labels: Any = None,
                 class_names: list[str] | None = None, split_rule: str = "") -> dict[str, Any]:
    """The definition of a split (CIFAR-10's batch files, or an image folder's ``split_rule``),
    its images per class, and a warning when it is the training split."""
    files = None if split_rule else SPLIT_FILES.get(split)
    definition = (f"CIFAR-10 {', '.join(files)}" if files else
                  f"the {split!r} split of an image folder (by {split_rule})" if split_rule else
                  f"the {split!r} split")
    if files and split in SPLIT_FILES and train_split in SPLIT_FILES and split != train_split:
        overlap = set(SPLIT_FILES[split]) & set(SPLIT_FILES[train_split])
    else:
        overlap = {split} if split == train_split else set()
    warnings = []
    if overlap:
        warnings.append(f"split {split!r} holds images the model trained on "
                        f"({', '.join(sorted(overlap))} is in the training split "
                        f"{train_split!r}): not held-out data")
    about: dict[str, Any] = {"definition": definition, "warnings": warnings}
    if labels is not None and class_names:
        counts = Counter(int(v) for v in labels)
        about["classes"] = {class_names[k] if k < len(class_names) else str(k): n
                            for k, n in sorted(counts.items())}
    return about


def about_speech(cfg: RunConfig, root: str | Path | None, split: str,
                 max_items: int = 0) -> dict[str, Any]:
    """The definition of a speech split, its utterances per speaker, the recordings' sample
    rates, and warnings: utterances or speakers also in the training split, audio resampled up
    to ``cfg.audio.sample_rate`` (its mel bands above the recording's Nyquist are empty)."""
    cfg = copy.deepcopy(cfg)
    if root is not None:
        cfg.data.root = str(root)
    cache, source_root = open_speech_cache(cfg, progress=False)
    ids = select_ids(cache, split)
    ids = ids[:max_items] if max_items else ids
    warnings = []
    try:
        trained = set(select_ids(cache, cfg.data.train_split))
    except DataError:  # the training split is not in this data
        trained = set()
    seen = [i for i in ids if i in trained]
    if seen:
        warnings.append(f"{len(seen)} of {len(ids)} utterances of split {split!r} are in the "
                        f"training split {cfg.data.train_split!r}: not held-out data")
    speakers = speaker_counts(cache, ids)
    trained_speakers = {cache.entries[i].speaker for i in trained}
    shared = sorted(set(speakers) & trained_speakers)
    if split.startswith("speakers:") and shared:
        warnings.append(f"speaker(s) {', '.join(shared)} of split {split!r} were in the "
                        f"training split too: this does not test unseen speakers")
    rates = source_sample_rates(cache, source_root, ids)
    note = upsampling_note(rates, cfg.audio.sample_rate)
    if note:
        warnings.append(f"{note}, and STOI is scored on band-limited audio")
    return {"definition": describe_split(cache, split), "speakers": speakers,
            "sample_rates": {str(r): n for r, n in sorted(rates.items())},
            "warnings": warnings}

