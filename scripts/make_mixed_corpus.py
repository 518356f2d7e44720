#!/usr/bin/env python3
"""Turn an ``<SPK>/wav/*.wav`` corpus (the shared FSDD recordings) into a mixed one for
``vqkit train speech --data OUT/manifest.csv``: every other clip as 44.1 kHz stereo FLAC, the
rest left as 8 kHz WAV (copied), one speaker's clips concatenated (with silence between) into
one ``--long-minutes`` recording, one corrupt FLAC, and a CSV manifest (path, speaker, split,
text) over them; the ``--val-speaker`` is the validation split::

    python scripts/make_mixed_corpus.py ../shared/data/fsdd-l2arctic-layout /work/fixtures/mixed
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from vqkit.audio.io import resample  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("corpus", help="folder laid out <SPK>/wav/*.wav")
    p.add_argument("out", help="folder to write (created)")
    p.add_argument("--long-speaker", default="LUCAS")
    p.add_argument("--long-minutes", type=float, default=10.0)
    p.add_argument("--val-speaker", default="NICOLAS")
    a = p.parse_args(argv)
    src, out = Path(a.corpus), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for spk_dir in sorted(d for d in src.iterdir() if (d / "wav").is_dir()):
        spk = spk_dir.name
        wavs = sorted((spk_dir / "wav").glob("*.wav"))
        split = "val" if spk == a.val_speaker else "train"
        if spk == a.long_speaker:
            clips = [sf.read(w, dtype="float32")[0] for w in wavs]
            sr = sf.info(wavs[0]).samplerate
            gap = max(0.0, a.long_minutes * 60 * sr - sum(len(c) for c in clips)) / len(clips)
            parts = []
            for c in clips:
                parts += [c, np.zeros(int(gap), np.float32)]
            y = np.concatenate(parts)[: int(a.long_minutes * 60 * sr)]
            rel = f"{spk}/long_{a.long_minutes:g}min.wav"
            (out / spk).mkdir(exist_ok=True)
            sf.write(out / rel, y, sr, subtype="PCM_16")
            rows.append({"path": rel, "speaker": spk, "split": split, "text": ""})
            continue
        for i, w in enumerate(wavs):
            text_file = spk_dir / "transcript" / f"{w.stem}.txt"
            text = text_file.read_text().strip() if text_file.is_file() else ""
            (out / spk).mkdir(exist_ok=True)
            if i % 2:
                y, sr = sf.read(w, dtype="float32")
                y = resample(y, orig_sample_rate=sr, target_sample_rate=44100)
                rel = f"{spk}/{w.stem}.flac"
                sf.write(out / rel, np.stack([y, 0.8 * y], axis=1), 44100)
            else:
                rel = f"{spk}/{w.stem}.wav"
                shutil.copyfile(w, out / rel)
            rows.append({"path": rel, "speaker": spk, "split": split, "text": text})
    bad = rows[1]["path"].rsplit("/", 1)[0] + "/corrupt.flac"
    (out / bad).write_bytes(b"fLaC" + bytes(100))
    rows.append({"path": bad, "speaker": rows[1]["speaker"], "split": "train", "text": ""})
    with open(out / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "speaker", "split", "text"])
        w.writeheader()
        w.writerows(rows)
    print(f"{out / 'manifest.csv'}: {len(rows)} rows (one long recording, one corrupt file)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
