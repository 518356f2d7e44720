"""The evaluation folder ``RUN/eval/<split>/``: what ``vqkit evaluate`` leaves for the report.

One folder per evaluated split (``speakers:A,B`` becomes ``speakers-A-B``), written atomically
(built beside its final name, then renamed into place) and replaced by the next evaluation of
that split:

``metrics.json``
    ``{"format_version": 1, "run", "split", "data", "checkpoint": {"name", "step", "epoch"},
    "metrics": {...}, "about": {...}}``: every metric ``evaluate`` returns, and what the split
    is (:mod:`vqkit.evaluation.about`; absent in folders written before it).
``code_counts.npy``
    int64, shape=(num_quantizers, codebook_size): how often each code occurs over the split
    (speech: real frames only).
``samples.npz`` (read with ``allow_pickle=False``)
    ``kind`` = "image": ``originals`` and ``reconstructions``, uint8 (N, H, W, C), the split's
    first N images. ``kind`` = "speech": ``names`` (N,), ``sample_rate``, ``n_samples`` (N,),
    ``n_frames`` (N,), ``mel`` and ``mel_hat`` float32 (N, n_mels, max n_frames) on the model's
    scale (zero past each utterance's ``n_frames``), for the split's first N utterances; their
    audio is in ``sample-<i>.original.wav``, ``sample-<i>.oracle.wav`` (Griffin-Lim of the true
    mel) and ``sample-<i>.reconstruction.wav`` (32-bit float, as ``vqkit reconstruct`` writes).

:func:`write_evaluation` writes a folder, :func:`read_evaluation` reads one back, and
:func:`evaluation_folders` lists a run's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from vqkit.audio.pipeline import write_wav
from vqkit.errors import DataError, VQKitError

__all__ = [
    "AUDIO_KINDS",
    "FORMAT_VERSION",
    "Evaluation",
    "ImageSamples",
    "SpeechSample",
    "evaluation_dir",
    "evaluation_folders",
    "read_evaluation",
    "split_folder_name",
    "write_evaluation",
]

FORMAT_VERSION = 1
EVAL_DIR = "eval"
METRICS_FILE, COUNTS_FILE, SAMPLES_FILE = "metrics.json", "code_counts.npy", "samples.npz"
AUDIO_KINDS = ("original", "oracle", "reconstruction")


@dataclass
class ImageSamples:
    """The first images of a split: ``originals`` and ``reconstructions``, uint8 (N, H, W, C)."""

    originals: np.ndarray
    reconstructions: np.ndarray


@dataclass
class SpeechSample:
    """One utterance through the model, as ``vqkit reconstruct`` passes it.

    ``audio`` maps "original", "oracle" (Griffin-Lim of the true mel) and "reconstruction" to
    mono float32 (samples,) at ``sample_rate``; ``mel`` and ``mel_hat`` are (n_mels, T) on the
    model's scale, real frames only.
    """

    name: str
    sample_rate: int
    audio: dict[str, np.ndarray]
    mel: np.ndarray
    mel_hat: np.ndarray


@dataclass
class Evaluation:
    """A run's model on a split: metrics, code histogram, samples, and where they came from.

    ``code_counts`` is int64 (num_quantizers, codebook_size) (None for metrics alone, as in a
    ``--json`` file); ``samples`` is :class:`ImageSamples`, a list of :class:`SpeechSample` or
    None; ``checkpoint`` holds ``name``, ``step`` and ``epoch``; ``folder`` is where it was
    read from.
    """

    metrics: dict[str, Any]
    code_counts: np.ndarray | None
    samples: ImageSamples | list[SpeechSample] | None = None
    run: str = ""
    split: str = ""
    data: str = ""
    checkpoint: dict[str, Any] = field(default_factory=dict)
    folder: Path | None = None
    about: dict[str, Any] = field(default_factory=dict)  # the split's definition and warnings


def split_folder_name(split: str) -> str:
    """A split as a folder name: runs of anything but letters, digits, ``_`` and ``.`` become
    ``-`` (``speakers:A,B`` -> ``speakers-A-B``); leading and trailing dots and dashes go."""
    name = re.sub(r"[^A-Za-z0-9_.]+", "-", split).strip(".-")
    if not name:
        raise VQKitError(f"split {split!r}: no usable folder name")
    return name


def evaluation_dir(run_dir: str | Path, split: str) -> Path:
    """``RUN/eval/<split as a folder name>``."""
    return Path(run_dir) / EVAL_DIR / split_folder_name(split)


def evaluation_folders(run_dir: str | Path) -> list[Path]:
    """The run's evaluation folders (those holding ``metrics.json``), sorted by name."""
    root = Path(run_dir) / EVAL_DIR
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and (p / METRICS_FILE).is_file())


# ---------------------------------------------------------------------------------------------
# Writing


def _write_samples(folder: Path, samples: ImageSamples | list[SpeechSample]) -> None:
    if isinstance(samples, ImageSamples):
        np.savez_compressed(folder / SAMPLES_FILE, kind=np.array("image"),
                            originals=np.asarray(samples.originals, dtype=np.uint8),
                            reconstructions=np.asarray(samples.reconstructions, dtype=np.uint8))
        return
    frames = [s.mel.shape[-1] for s in samples]
    n_mels = samples[0].mel.shape[0]
    mel = np.zeros((len(samples), n_mels, max(frames)), dtype=np.float32)
    mel_hat = np.zeros_like(mel)
    for i, s in enumerate(samples):
        mel[i, :, :frames[i]], mel_hat[i, :, :frames[i]] = s.mel, s.mel_hat
        for kind in AUDIO_KINDS:
            write_wav(folder / f"sample-{i}.{kind}.wav", s.audio[kind], s.sample_rate)
    np.savez_compressed(
        folder / SAMPLES_FILE, kind=np.array("speech"), names=np.array([s.name for s in samples]),
        sample_rate=np.array(samples[0].sample_rate),
        n_samples=np.array([len(s.audio["original"]) for s in samples], dtype=np.int64),
        n_frames=np.array(frames, dtype=np.int64), mel=mel, mel_hat=mel_hat)


def write_evaluation(run_dir: str | Path, evaluation: Evaluation) -> Path:
    """Write ``evaluation`` to ``RUN/eval/<split>/`` (replacing an earlier one of the split)
    and return the folder.

    Raises
    ------
    VQKitError
        When the destination exists but is not an evaluation folder (nothing is deleted then).
    """
    dest = evaluation_dir(run_dir, evaluation.split)
    if dest.exists() and not (dest / METRICS_FILE).is_file():
        raise VQKitError(f"{dest}: exists and is not an evaluation folder; move it away")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        header = {"format_version": FORMAT_VERSION, "run": evaluation.run,
                  "split": evaluation.split, "data": evaluation.data,
                  "checkpoint": evaluation.checkpoint, "metrics": evaluation.metrics,
                  "about": evaluation.about}
        (tmp / METRICS_FILE).write_text(json.dumps(header, indent=2) + "\n")
        np.save(tmp / COUNTS_FILE, np.asarray(evaluation.code_counts, dtype=np.int64))
        if evaluation.samples is not None and (not isinstance(evaluation.samples, list)
                                               or evaluation.samples):
            _write_samples(tmp, evaluation.samples)
        old = dest.parent / f".{dest.name}.old-{os.getpid()}"
        if dest.exists():
            os.replace(dest, old)
        os.replace(tmp, dest)
        if old.exists():
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return dest


# ---------------------------------------------------------------------------------------------
# Reading


def _read_samples(folder: Path) -> ImageSamples | list[SpeechSample] | None:
    path = folder / SAMPLES_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path}: unreadable ({e})") from None
    try:
        kind = str(arrays["kind"])
        if kind == "image":
            return ImageSamples(arrays["originals"], arrays["reconstructions"])
        sr = int(arrays["sample_rate"])
        out = []
        for i, name in enumerate(arrays["names"]):
            n = int(arrays["n_frames"][i])
            audio = {}
            for k in AUDIO_KINDS:
                wav = folder / f"sample-{i}.{k}.wav"
                y, wav_sr = sf.read(str(wav), dtype="float32")
                if wav_sr != sr or len(y) != int(arrays["n_samples"][i]):
                    raise DataError(f"{wav}: {len(y)} samples at {wav_sr} Hz, expected "
                                    f"{int(arrays['n_samples'][i])} at {sr} Hz")
                audio[k] = y
            out.append(SpeechSample(str(name), sr, audio, arrays["mel"][i, :, :n],
                                    arrays["mel_hat"][i, :, :n]))
        return out
    except KeyError as e:
        raise DataError(f"{path}: no {e} array") from None
    except sf.LibsndfileError as e:
        raise DataError(f"{folder}: unreadable sample audio ({e})") from None


def read_evaluation(folder: str | Path) -> Evaluation:
    """Read an evaluation folder written by :func:`write_evaluation`.

    Raises
    ------
    DataError
        Naming the file: missing or unreadable, of another format version, or a code histogram
        that is not (K, codebook_size) integers.
    """
    folder = Path(folder)
    path = folder / METRICS_FILE
    try:
        header = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: unreadable ({e})") from None
    if not isinstance(header, dict) or header.get("format_version") != FORMAT_VERSION:
        version = header.get("format_version") if isinstance(header, dict) else None
        raise DataError(f"{path}: evaluation format {version!r}, this vqkit reads "
                        f"{FORMAT_VERSION}")
    counts_path = folder / COUNTS_FILE
    try:
        counts = np.load(counts_path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"{counts_path}: unreadable ({e})") from None
    if counts.ndim != 2 or counts.dtype.kind not in "iu":
        raise DataError(f"{counts_path}: expected (K, codebook_size) integers, got "
                        f"{counts.dtype} {counts.shape}")
    return Evaluation(
        metrics=dict(header.get("metrics", {})), code_counts=counts.astype(np.int64),
        samples=_read_samples(folder), run=str(header.get("run", "")),
        split=str(header.get("split", "")), data=str(header.get("data", "")),
        checkpoint=dict(header.get("checkpoint") or {}), folder=folder,
        about=header.get("about") if isinstance(header.get("about"), dict) else {})
