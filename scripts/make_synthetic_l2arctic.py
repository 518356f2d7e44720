"""Write a synthetic stand-in for the L2-ARCTIC release zip, laid out as the real one.

``l2arctic_release_v5.0.zip`` holds one stored ``<SPK>.zip`` per speaker (the 24 speakers of
vqkit's table unless ``--speakers`` says otherwise) and a ``suitcase_corpus.zip``. Each speaker
zip holds ``<SPK>/wav/arctic_a####.wav`` (44.1 kHz, 16-bit mono: a chirp plus harmonics plus a
little noise, 1-3 s), ``<SPK>/transcript/*.txt``, ``<SPK>/textgrid/*.TextGrid`` and, for the
first utterances, ``<SPK>/annotation/*.TextGrid``. For trying ``vqkit subset`` without the
licensed corpus:

    python scripts/make_synthetic_l2arctic.py --out /tmp/l2 --per-speaker 20
    vqkit subset --source /tmp/l2/l2arctic_release_v5.0.zip --speakers HJK,BWC \\
        --max-per-speaker 5 --seed 42 --out /tmp/l2-subset
"""

from __future__ import annotations

import argparse
import io
import sys
import zipfile
from pathlib import Path

import numpy as np
import soundfile as sf

from vqkit.data.l2arctic import speaker_table

SAMPLE_RATE_HZ = 44100
N_ANNOTATED = 3  # utterances per speaker with a manual annotation, as ~150 of ~1130 are


def synthetic_utterance(rng: np.random.Generator, sample_rate_hz: int = SAMPLE_RATE_HZ
                        ) -> np.ndarray:
    """A speech-like test signal: a gliding harmonic tone with an envelope, plus noise."""
    duration_s = rng.uniform(1.0, 3.0)
    t = np.arange(int(duration_s * sample_rate_hz)) / sample_rate_hz
    f0 = rng.uniform(90, 220) * (1 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate_hz
    y = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = np.clip(np.sin(np.pi * t / duration_s), 0, None) ** 0.5
    y = 0.25 * envelope * y / 2.3 + 0.003 * rng.standard_normal(len(t))
    return y.astype(np.float32)


def speaker_zip(speaker: str, n: int, rng: np.random.Generator) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for i in range(n):
            utt = f"arctic_a{i + 1:04d}"
            wav = io.BytesIO()
            sf.write(wav, synthetic_utterance(rng), SAMPLE_RATE_HZ, format="WAV",
                     subtype="PCM_16")
            z.writestr(f"{speaker}/wav/{utt}.wav", wav.getvalue())
            z.writestr(f"{speaker}/transcript/{utt}.txt", f"synthetic sentence {i + 1}\n")
            z.writestr(f"{speaker}/textgrid/{utt}.TextGrid", f"File type = \"ooTextFile\"\n{utt}\n")
            if i < N_ANNOTATED:
                z.writestr(f"{speaker}/annotation/{utt}.TextGrid",
                           f"File type = \"ooTextFile\"\nannotated {utt}\n")
    return buf.getvalue()


def write_release_zip(path: str | Path, speakers: list[str], per_speaker: int, seed: int = 0
                      ) -> Path:
    """Write the release zip to ``path``; returns it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        for speaker in speakers:
            z.writestr(f"{speaker}.zip", speaker_zip(speaker, per_speaker, rng))
        z.writestr("suitcase_corpus.zip", speaker_zip("suitcase_corpus", 2, rng))
        z.writestr("README.md", "Synthetic stand-in for L2-ARCTIC v5.0 (vqkit).\n")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for the release zip")
    ap.add_argument("--speakers", default=",".join(speaker_table()),
                    help="comma-separated speaker codes (default: the 24 L2-ARCTIC speakers)")
    ap.add_argument("--per-speaker", type=int, default=20, help="utterances per speaker")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    path = write_release_zip(args.out / "l2arctic_release_v5.0.zip",
                             [s for s in args.speakers.split(",") if s], args.per_speaker,
                             args.seed)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
