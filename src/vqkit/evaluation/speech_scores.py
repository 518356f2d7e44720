"""Speech quality scores as the field reports them: STOI (pystoi, Taal et al. 2011) and wideband
PESQ (ITU-T P.862.2, the ``pesq`` package), each of a reconstruction and of the Griffin-Lim
oracle against the original wave, over groups of consecutive utterances.

STOI needs 30 frames of 384 ms of non-silent speech, which many short clips (FSDD digits:
0.2-0.6 s) do not have: pystoi then returns 1e-5. So both scores are computed over *groups* of
consecutive utterances concatenated until a group lasts at least :data:`STOI_MIN_S` seconds and
has enough speech; an utterance of that length or longer is its own group.

PESQ is an optional extra (a C extension built from source: ``pip install 'vqkit[pesq]'``);
without it, or at a sample rate other than 16 kHz (wideband PESQ is defined at 16 kHz only),
the PESQ scores are NaN and :func:`pesq_note` says why.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pystoi

__all__ = ["PESQ_MAX", "STOI_MIN_S", "StoiGroups", "pesq_available", "pesq_note", "pesq_wb",
           "stoi_score"]

STOI_MIN_S = 1.0  # shortest audio STOI and PESQ are computed on (a group of short utterances)
PESQ_MAX = 4.644  # wideband PESQ (MOS-LQO) of a signal against itself
PESQ_RATE = 16000  # Hz: the only rate of wideband PESQ


def pesq_available() -> bool:
    """Whether the optional ``pesq`` package imports."""
    try:
        import pesq  # noqa: F401
    except ImportError:
        return False
    return True


def pesq_note(sample_rate: int) -> str | None:
    """Why PESQ scores are NaN for audio at ``sample_rate`` (None when they are computed)."""
    if not pesq_available():
        return ("PESQ not computed: the optional `pesq` package is missing "
                "(pip install 'vqkit[pesq]'; it builds from source with a C compiler)")
    if sample_rate != PESQ_RATE:
        return f"PESQ not computed: wideband PESQ needs 16000 Hz audio, the run uses {sample_rate}"
    return None


def pesq_wb(clean: np.ndarray, degraded: np.ndarray, sample_rate: int = PESQ_RATE) -> float:
    """Wideband PESQ of ``degraded`` against ``clean`` (same length, mono): about 1.0 (bad) to
    :data:`PESQ_MAX` (identical); NaN without the package, at another rate, or when PESQ finds
    no speech in ``clean``."""
    if pesq_note(sample_rate) is not None:
        return math.nan
    from pesq import PesqError, pesq

    try:
        return float(pesq(sample_rate, np.asarray(clean, np.float32),
                          np.asarray(degraded, np.float32), "wb"))
    except PesqError:
        return math.nan


def stoi_score(clean: np.ndarray, degraded: np.ndarray, sample_rate: int) -> float | None:
    """STOI in [0, 1] (1: identical), or None when ``clean`` has too little speech for it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = pystoi.stoi(clean, degraded, sample_rate)
    if any("Not enough STFT frames" in str(w.message) for w in caught):
        return None
    return float(s)


class StoiGroups:
    """STOI and wideband PESQ of a reconstruction and of the oracle, over groups of consecutive
    utterances. ``pesq`` and ``pesq_oracle`` hold one value per scored group (NaN where PESQ is
    unavailable, see :func:`pesq_note`)."""

    def __init__(self, sample_rate: int, min_s: float = STOI_MIN_S) -> None:
        self.sample_rate, self.min_samples = sample_rate, int(min_s * sample_rate)
        self.pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.stoi: list[float] = []
        self.stoi_oracle: list[float] = []
        self.pesq: list[float] = []
        self.pesq_oracle: list[float] = []
        self.utterances = 0

    def add(self, clean: np.ndarray, recon: np.ndarray, oracle: np.ndarray) -> None:
        self.pending.append((clean, recon, oracle))
        if sum(len(p[0]) for p in self.pending) >= self.min_samples:
            self._score()

    def _score(self) -> None:
        clean, recon, oracle = (np.concatenate([p[k] for p in self.pending]) for k in range(3))
        s = stoi_score(clean, recon, self.sample_rate)
        if s is None:
            return  # too little speech yet: the group grows with the next utterance
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.stoi_oracle.append(float(pystoi.stoi(clean, oracle, self.sample_rate)))
        self.stoi.append(s)
        self.pesq.append(pesq_wb(clean, recon, self.sample_rate))
        self.pesq_oracle.append(pesq_wb(clean, oracle, self.sample_rate))
        self.utterances += len(self.pending)
        self.pending = []

    def finish(self) -> None:
        """Score what is left (if it has enough speech on its own)."""
        if self.pending:
            self._score()

    def means(self) -> dict[str, float]:
        """``stoi``, ``stoi_oracle``, ``pesq``, ``pesq_oracle``: means over the scored groups
        (NaN-skipping for PESQ; NaN when none)."""
        def mean(v: list[float]) -> float:
            v = [x for x in v if not math.isnan(x)]
            return float(np.mean(v)) if v else math.nan

        return {"stoi": mean(self.stoi), "stoi_oracle": mean(self.stoi_oracle),
                "pesq": mean(self.pesq), "pesq_oracle": mean(self.pesq_oracle)}
