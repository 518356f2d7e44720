"""A speech run's utterances as codes: what a speech prior trains on and the probes read.

Each utterance of a split comes from the run's mel cache (the cache ``vqkit train speech``
built), goes through the same normalisation and padding as ``vqkit encode`` (real frames
padded with silence to a multiple of the model's downsampling) and is encoded on its own or with
utterances of exactly its padded length, so that no utterance's codes see another's padding.
Codes are (F', T', K) per utterance: F' code rows per frame (n_mels / 4 for the 2-D model, 1 for
the temporal one), T' frames, K residual stages.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from vqkit.audio.normalize import SILENCE, pad_frames
from vqkit.audio.pipeline import prepare_mel_db
from vqkit.config import RunConfig
from vqkit.data.speech import open_speech_cache, select_ids, source_path
from vqkit.errors import VQKitError
from vqkit.models.prior import codes_to_tokens

__all__ = ["SpeechCodes", "encode_mels", "encode_speech_split", "load_speech_codes",
           "speech_class_names", "transcript_of"]

BATCH = 64


class SpeechCodes:
    """A split's utterances: ``ids``, ``speakers``, ``codes`` (each (F', T', K) int64),
    ``mels`` (each (n_mels, frames) on the model's scale, real frames only), ``seconds`` and
    ``sources`` (the audio files)."""

    def __init__(self, ids: list[str], speakers: list[str], codes: list[np.ndarray],
                 mels: list[np.ndarray], seconds: list[float], sources: list[Path]) -> None:
        self.ids, self.speakers, self.codes = ids, speakers, codes
        self.mels, self.seconds, self.sources = mels, seconds, sources

    def labels(self, kind: str) -> list[str | None]:
        """Each utterance's ``"transcript"`` (None without one) or ``"speaker"``."""
        if kind == "speaker":
            return list(self.speakers)
        return [transcript_of(Path(s)) for s in self.sources]


def transcript_of(source: Path) -> str | None:
    """The text of ``<SPK>/transcript/<utt>.txt`` beside ``<SPK>/wav/<utt>.wav`` (stripped,
    lower case; the L2-ARCTIC layout), or None."""
    path = source.parent.parent / "transcript" / f"{source.stem}.txt"
    try:
        return path.read_text(encoding="utf-8").strip().lower() or None
    except (OSError, UnicodeDecodeError):
        return None


def speech_class_names(cfg: RunConfig, split: str, kind: str) -> list[str]:
    """The classes (sorted) of ``split``'s utterances: their transcripts or speakers; a
    VQKitError when an utterance has no transcript."""
    cache, source_root = open_speech_cache(cfg, progress=False)
    ids = select_ids(cache, split)
    if kind == "speaker":
        return sorted({cache.entries[i].speaker for i in ids})
    names = set()
    for i in ids:
        text = transcript_of(source_path(cache, source_root, i))
        if text is None:
            raise VQKitError(f"{source_path(cache, source_root, i)}: no transcript "
                             f"(<SPK>/transcript/<utt>.txt) for prior.speech_classes=transcript")
        names.add(text)
    return sorted(names)


@torch.no_grad()
def encode_mels(model, norms: list[np.ndarray], device: torch.device) -> list[np.ndarray]:
    """Codes (F', T'[, K]) of each normalised mel (n_mels, frames), padded with silence to the
    model's downsampling as ``vqkit encode`` pads; batched only with equal padded lengths."""
    d = model.downsampling
    padded = [pad_frames(np.asarray(m, dtype=np.float32), d, SILENCE) for m in norms]
    out: list[np.ndarray | None] = [None] * len(padded)
    by_len: dict[int, list[int]] = {}
    for i, x in enumerate(padded):
        by_len.setdefault(x.shape[-1], []).append(i)
    for idx in by_len.values():
        for lo in range(0, len(idx), BATCH):
            part = idx[lo:lo + BATCH]
            x = torch.from_numpy(np.stack([padded[i] for i in part]))[:, None].to(device)
            lengths = torch.tensor([np.shape(norms[i])[-1] for i in part])
            codes = model.encode(x, lengths=lengths).cpu().numpy().astype(np.int64)
            for i, c in zip(part, codes, strict=True):
                out[i] = c
    return out  # type: ignore[return-value]


def _seconds(cache, source_root: Path, utt_id: str, cfg: RunConfig) -> float:
    """Seconds of audio an utterance holds: its segment, its file's length, or its frames."""
    e = cache.entries[utt_id]
    if e.end_s > e.start_s:
        return float(e.end_s - e.start_s)
    try:
        return float(sf.info(str(source_path(cache, source_root, utt_id))).duration)
    except (OSError, RuntimeError, sf.LibsndfileError):
        return max(1, e.n_frames - 1) * cfg.audio.hop_length / cfg.audio.sample_rate


def load_speech_codes(model, cfg: RunConfig, split: str, device: torch.device, *,
                      max_items: int = 0) -> SpeechCodes:
    """Every utterance of ``split`` (the first ``max_items``, 0: all) of the speech run whose
    model and config these are, encoded."""
    cache, source_root = open_speech_cache(cfg, progress=False)
    ids = select_ids(cache, split)
    if max_items:
        ids = ids[:max_items]
    mels = [prepare_mel_db(cache.load(i), cfg.audio)[0] for i in ids]
    codes = encode_mels(model, mels, device)
    return SpeechCodes(ids, [cache.entries[i].speaker for i in ids], codes, mels,
                       [_seconds(cache, source_root, i, cfg) for i in ids],
                       [source_path(cache, source_root, i) for i in ids])


def encode_speech_split(model, cfg: RunConfig, split: str, device: torch.device, *,
                        kind: str = "none", names: list[str] | None = None
                        ) -> dict[str, np.ndarray]:
    """The code cache's arrays for a speech split: ``tokens`` (all utterances' tokens in time
    order, end to end; uint16), ``lengths``, ``seconds``, ``ids`` and ``labels`` (the index
    of each utterance's ``kind`` of class in ``names``; -1: none or not among them)."""
    sc = load_speech_codes(model, cfg, split, device)
    index = {n: i for i, n in enumerate(names or [])}
    labels = ([index.get(v, -1) if v is not None else -1 for v in sc.labels(kind)]
              if kind != "none" else [-1] * len(sc.ids))
    seqs = [codes_to_tokens(torch.from_numpy(c)[None], "time")[0].numpy() for c in sc.codes]
    flat = np.concatenate(seqs) if seqs else np.zeros(0, np.int64)
    if flat.size and int(flat.max()) >= 2 ** 16:
        raise VQKitError(f"{cfg.data.root}: codes beyond 65,535 are not cached")
    return {"tokens": flat.astype(np.uint16),
            "lengths": np.array([s.size for s in seqs], dtype=np.int64),
            "seconds": np.array(sc.seconds, dtype=np.float64),
            "ids": np.array(sc.ids, dtype=str), "labels": np.array(labels, dtype=np.int64)}
