"""What the Griffin-Lim oracle keeps when the mel loses detail: the ceiling a speech code faces.

Every score in vqkit's speech evaluation goes through the same vocoder: the reconstructed mel ->
NNLS linear magnitude -> fast Griffin-Lim -> STOI / wideband PESQ against the recording. This
benchmark feeds that vocoder the *true* mel of each utterance of one speaker after removing one
kind of detail, and scores it exactly as ``vqkit evaluate`` scores a reconstruction (groups of
>= 1 s, :class:`vqkit.evaluation.speech_scores.StoiGroups`):

- ``lifter K``: the mel's first K (of n_mels) DCT coefficients over frequency kept, the rest
  zeroed: the spectral envelope without the fine structure (harmonics of the voice) above it;
- ``lifter K + f0 comb``: that envelope times a harmonic comb at the recording's own pitch (an
  autocorrelation f0 per frame), as a codec that sent the pitch beside the envelope could;
- ``time box W``: a centred moving average over W frames (coarser time);
- ``tile FxT``: the mean over F bins x T frames, interpolated back (what one scalar per tile
  keeps);
- ``noise S dB``: Gaussian noise of S dB added to every bin.

    PYTHONPATH=src python benchmarks/vocoder_ceiling.py --max-items 60 \
        --json benchmarks/results/vocoder-ceiling.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from scipy.fft import dct, idct
from scipy.ndimage import uniform_filter1d

from vqkit.audio.griffinlim import audio_from_mel_db, mel_to_stft
from vqkit.audio.io import load_audio
from vqkit.audio.mel import db_to_power, mel_db_from_audio, mel_filterbank, power_to_db
from vqkit.config import AudioConfig, get_preset
from vqkit.evaluation.speech_scores import StoiGroups
from vqkit.utils import atomic_write_text

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / \
    "fsdd-l2arctic-layout"
Degrade = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (mel dB, audio) -> mel dB


def lifter(k: int) -> Degrade:
    def f(m: np.ndarray, _y: np.ndarray) -> np.ndarray:
        c = dct(m, axis=0, norm="ortho")
        c[k:] = 0
        return idct(c, axis=0, norm="ortho")
    return f


def time_box(w: int) -> Degrade:
    return lambda m, _y: uniform_filter1d(m, w, axis=1, mode="nearest")


def tile(fh: int, tw: int) -> Degrade:
    def f(m: np.ndarray, _y: np.ndarray) -> np.ndarray:
        t = m.shape[1]
        x = torch.from_numpy(m.astype(np.float32))[None, None]
        x = torch.nn.functional.pad(x, (0, -t % tw, 0, 0), mode="replicate")
        x = torch.nn.functional.avg_pool2d(x, (fh, tw))
        x = torch.nn.functional.interpolate(x, scale_factor=(fh, tw), mode="bilinear")
        return x[0, 0, :, :t].double().numpy()
    return f


def noise(db: float) -> Degrade:
    rng = np.random.default_rng(0)
    return lambda m, _y: m + db * rng.standard_normal(m.shape)


def f0_track(y: np.ndarray, frames: int, a: AudioConfig) -> np.ndarray:
    """Pitch (Hz, 0 = unvoiced) per mel frame: the autocorrelation peak in 60-400 Hz of each
    centred n_fft window, voiced where it exceeds 0.4 of the energy."""
    n, hop, sr = a.n_fft, a.hop_length, a.sample_rate
    yp = np.pad(y, n // 2)
    f0 = np.zeros(frames)
    lo, hi = sr // 400, sr // 60
    for t in range(frames):
        fr = yp[t * hop:t * hop + n]
        if len(fr) < n or np.std(fr) < 1e-4:
            continue
        ac = np.fft.irfft(np.abs(np.fft.rfft(fr - fr.mean(), 2 * n)) ** 2)[:n]
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.4 * ac[0]:
            f0[t] = sr / lag
    return f0


def lifter_comb(k: int, a: AudioConfig, width_hz: float = 25.0) -> Degrade:
    fb = np.asarray(mel_filterbank(sample_rate=a.sample_rate, n_fft=a.n_fft, n_mels=a.n_mels))
    freqs = np.arange(a.n_fft // 2 + 1) * a.sample_rate / a.n_fft
    env_of = lifter(k)

    def f(m: np.ndarray, y: np.ndarray) -> np.ndarray:
        env = db_to_power(env_of(m, y)).astype(np.float32)
        spec = np.asarray(mel_to_stft(torch.from_numpy(env), sample_rate=a.sample_rate,
                                      n_fft=a.n_fft), np.float64) ** 2
        for t, hz in enumerate(f0_track(y, m.shape[1], a)):
            if hz > 0:
                d = freqs / hz - np.round(freqs / hz)  # to the nearest harmonic, in harmonics
                spec[:, t] *= 0.03 + np.exp(-0.5 * (d * hz / width_hz) ** 2)
        mel = fb @ spec
        mel *= env.sum(0) / (mel.sum(0) + 1e-12)  # the envelope's energy per frame
        return np.asarray(power_to_db(mel))
    return f


def measure(files: list[Path], a: AudioConfig) -> dict[str, dict[str, float]]:
    tests: dict[str, Degrade] = {"true mel": lambda m, _y: m}
    tests |= {f"lifter {k}": lifter(k) for k in (20, 30, 45, 64, 90)}
    tests |= {f"lifter {k} + f0 comb": lifter_comb(k, a) for k in (30, 45)}
    tests |= {f"time box {w}": time_box(w) for w in (3, 5)}
    tests |= {f"tile {f}x{t}": tile(f, t) for f, t in ((4, 4), (8, 2), (2, 8))}
    tests |= {f"noise {s:g} dB": noise(s) for s in (1.0, 3.0)}
    groups = {name: StoiGroups(a.sample_rate) for name in tests}
    for path in files:
        y = np.asarray(load_audio(path, sample_rate=a.sample_rate), np.float32)
        m = np.asarray(mel_db_from_audio(y, a), np.float64).clip(min=-100)
        for name, degrade in tests.items():
            mel = torch.from_numpy(np.clip(degrade(m, y), -100, None).astype(np.float32))
            rec = np.asarray(audio_from_mel_db(mel, a, length=len(y)))
            groups[name].add(y, rec, rec)
    out = {}
    for name, g in groups.items():
        g.finish()
        r = g.means()
        out[name] = {"stoi": r["stoi"], "pesq": r["pesq"], "groups": len(g.stoi)}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default=str(DEFAULT_DATA), help="audio folder <SPK>/wav/*.wav")
    p.add_argument("--speaker", default="NICOLAS")
    p.add_argument("--preset", default="l2arctic", help="whose audio settings (the mel)")
    p.add_argument("--max-items", type=int, default=60, help="first N utterances (0: all)")
    p.add_argument("--json", default="", help="write the results here")
    args = p.parse_args(argv)
    files = sorted((Path(args.data) / args.speaker / "wav").glob("*.wav"))
    files = files[:args.max_items] if args.max_items else files
    if not files:
        print(f"{args.data}: no {args.speaker}/wav/*.wav", file=sys.stderr)
        return 2
    a = get_preset(args.preset).audio
    res = measure(files, a)
    ref = res["true mel"]["stoi"]
    print(f"{len(files)} utterances of {args.speaker}; vocoder: NNLS + {a.griffin_lim_iters} "
          f"fast Griffin-Lim iterations")
    print(f"{'mel given to the vocoder':<24} {'STOI':>6} {'x true':>7} {'PESQ':>5}")
    for name, r in res.items():
        print(f"{name:<24} {r['stoi']:6.3f} {r['stoi'] / ref:7.3f} {r['pesq']:5.2f}")
    if args.json:
        out = {"data": args.data, "speaker": args.speaker, "utterances": len(files),
               "preset": args.preset, "results": res}
        atomic_write_text(Path(args.json), json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
