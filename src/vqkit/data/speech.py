"""Speech training and validation sources: normalised mel spectrograms held in memory.

``cfg.data.root`` is either a mel cache folder (its ``manifest.json`` from ``vqkit cache``) or an
audio folder (a ``vqkit subset`` output with ``metadata.csv``, or any ``<SPK>/wav/*.wav`` tree).
For an audio folder the cache is built or refreshed automatically (only missing or stale entries
are computed) in ``<root>/.vqkit-cache/<hash>``, or, when the folder is read-only (no write
permission, or no write bit in its mode, which is respected even for root), in
``$VQKIT_DATA/mel/<hash>`` (:func:`vqkit.data.download.cache_dir`).

Splits (:func:`select_ids`)
    A split name from the metadata ("train", "val", "test"), or ``speakers:A,B`` for every
    utterance of those speakers (case-insensitive), e.g. for leave-one-speaker-out. Data without
    metadata (every utterance in "train") is split by a hash of the utterance id: 10% "val"
    (``crc32(id) % 10 == 0``), 10% "test" (``== 1``), the rest "train", the proportions of
    ``vqkit subset``'s defaults; the same utterance always lands in the same split.

Sources (:class:`SpeechData`), by ``cfg.audio``
    Training: ``crop_frames > 0``: random crops of that many frames, shorter utterances padded
    with silence (-1) and masked; else ``clip_s > 0``: every utterance cut or padded to the clip
    as the thesis, yielded without mask (its loss covers the padding, as the thesis's did); else
    whole utterances padded per batch, masked. Validation: ``clip_s > 0``: clips, else whole
    utterances; batched by similar length, with masks of real frames.
"""

from __future__ import annotations

import hashlib
import json
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from vqkit.audio.cache import MANIFEST_NAME, MelCache, cache_params, open_cache
from vqkit.audio.mel import mel_frequencies
from vqkit.audio.normalize import SILENCE, clip_frames
from vqkit.audio.pipeline import prepare_mel_db
from vqkit.config import AudioConfig, RunConfig
from vqkit.data.audio_sources import audio_root, build_mel_cache, is_manifest
from vqkit.data.download import cache_dir
from vqkit.data.source import BatchSource
from vqkit.distributed import is_main_process
from vqkit.errors import ConfigError, DataError
from vqkit.paths import writable_folder

__all__ = [
    "SpeechData",
    "auto_cache_dir",
    "describe_split",
    "load_speech_data",
    "open_speech_cache",
    "select_ids",
    "source_path",
    "source_sample_rates",
    "speaker_counts",
    "upsampling_note",
]

AUTO_CACHE_NAME = ".vqkit-cache"
SPEAKERS_PREFIX = "speakers:"


# ---------------------------------------------------------------------------------------------
# Where the mels are


def auto_cache_dir(root: str | Path, cfg: RunConfig) -> Path:
    """The cache folder used for the audio folder ``root`` with ``cfg.audio``'s frontend."""
    root = Path(root)
    params = cache_params(cfg.audio)
    if is_manifest(root):  # beside the manifest, one cache per manifest
        params, root = {**params, "manifest": root.name}, root.parent
    if writable_folder(root):
        key = json.dumps(params, sort_keys=True)
        return root / AUTO_CACHE_NAME / hashlib.sha256(key.encode()).hexdigest()[:16]
    key = json.dumps([params, str(root.resolve())], sort_keys=True)
    return cache_dir() / "mel" / hashlib.sha256(key.encode()).hexdigest()[:16]


def open_speech_cache(cfg: RunConfig, *, progress: bool | None = None) -> tuple[MelCache, Path]:
    """The mel cache of ``cfg.data.root`` (built or refreshed for an audio folder) and the folder
    its entries' ``source`` paths are relative to.

    Raises
    ------
    ConfigError
        No data folder given, or a cache folder built with other frontend parameters.
    DataError
        A missing folder, or one holding neither a cache nor audio.
    """
    if not cfg.data.root:
        raise ConfigError("speech needs data: pass --data (a subset, audio or mel cache folder)")
    root = Path(cfg.data.root).expanduser()
    if is_manifest(root):  # a CSV / JSONL manifest: its cache goes in its folder
        res_root = audio_root(root)
    elif not root.is_dir():
        raise DataError(f"{root}: no such folder")
    else:
        res_root = root
    if (root / MANIFEST_NAME).is_file():
        cache = open_cache(root, cfg.audio)
        return cache, Path(cache.data) if cache.data else root
    out = auto_cache_dir(root, cfg)
    if progress is None:
        progress = sys.stderr.isatty()
    # Sizes and times only for reused entries (fast); a corrupt entry still fails its checksum
    # when loaded, and load_speech_data then rebuilds with full verification.
    res = build_mel_cache(root, out, cfg.audio, verify=False, progress=progress)
    if res.bad:
        path, reason = res.bad[0]
        more = f" and {len(res.bad) - 1} more" if len(res.bad) > 1 else ""
        print(f"vqkit: skipped bad audio {path} ({reason}){more}", file=sys.stderr)
    if res.n_entries == 0:
        raise DataError(f"{root}: no readable audio (expected audio files, a manifest, "
                        f"<SPK>/wav/*.wav or a subset folder with metadata.csv)")
    return open_cache(out, cfg.audio), res_root


def source_path(cache: MelCache, source_root: Path, utt_id: str) -> Path:
    """The audio file an entry was computed from."""
    return source_root / cache.entries[utt_id].source


def _hash_split(utt_id: str) -> str:
    bucket = zlib.crc32(utt_id.encode()) % 10
    return "val" if bucket == 0 else "test" if bucket == 1 else "train"


def select_ids(cache: MelCache, split: str) -> list[str]:
    """Ids of ``split``'s utterances, sorted (see the module docstring for what splits exist).

    Raises
    ------
    DataError
        An unknown speaker or an empty split, naming what exists.
    """
    if split.startswith(SPEAKERS_PREFIX):
        wanted = {s.strip().upper() for s in split[len(SPEAKERS_PREFIX):].split(",") if s.strip()}
        known = sorted({e.speaker for e in cache.entries.values()})
        unknown = wanted - {k.upper() for k in known}
        if not wanted or unknown:
            raise DataError(f"{cache.root}: split {split!r}: unknown speaker(s) "
                            f"{', '.join(sorted(unknown)) or '(none given)'} "
                            f"(speakers: {', '.join(known)})")
        return sorted(i for i, e in cache.entries.items() if e.speaker.upper() in wanted)
    splits = cache.splits
    if set(splits) <= {"train"}:  # no metadata: split by hash of the id
        ids = sorted(i for i in cache.entries if _hash_split(i) == split)
    else:
        ids = splits.get(split, [])
    if not ids:
        names = sorted(splits) if set(splits) - {"train"} else ["train", "val", "test"]
        raise DataError(f"{cache.root}: split {split!r} is empty (splits: {', '.join(names)}; "
                        f"or speakers:A,B)")
    return ids


def describe_split(cache: MelCache, split: str) -> str:
    """What ``split`` means for this data, in one line (see :func:`select_ids`)."""
    if split.startswith(SPEAKERS_PREFIX):
        names = split[len(SPEAKERS_PREFIX):].upper().replace(",", ", ")
        return f"every utterance of speaker(s) {names} (leave-speaker-out when not trained on)"
    if set(cache.splits) <= {"train"}:
        share = {"val": "10%", "test": "10%", "train": "80%"}.get(split, "")
        return (f"{share} of the utterances by a hash of their id, every speaker mixed (no "
                f"split column; speakers:A,B holds speakers out)")
    return (f"the {split!r} rows of the data's split column (a vqkit subset's metadata.csv or a "
            f"manifest's split column)")


def source_sample_rates(cache: MelCache, source_root: Path, ids: list[str]) -> dict[int, int]:
    """Recordings per sample rate among ``ids`` (from the files' headers; unreadable ones are
    left out)."""
    rates: dict[int, int] = {}
    for i in ids:
        try:
            sr = int(sf.info(str(source_path(cache, source_root, i))).samplerate)
        except (OSError, RuntimeError, sf.LibsndfileError):
            continue
        rates[sr] = rates.get(sr, 0) + 1
    return dict(sorted(rates.items()))


def upsampling_note(rates: dict[int, int], sample_rate: int) -> str:
    """A note when recordings are below ``sample_rate`` (empty otherwise): resampled up, their
    mel bands above their own Nyquist frequency hold no signal."""
    low = {r: n for r, n in rates.items() if r < sample_rate}
    if not low:
        return ""
    return (f"{sum(low.values())} of {sum(rates.values())} recordings are at "
            f"{', '.join(f'{r} Hz' for r in sorted(low))} and were resampled up to "
            f"{sample_rate} Hz: mel bands above {min(low) // 2} Hz hold no signal")


def speaker_counts(cache: MelCache, ids: list[str]) -> dict[str, int]:
    """Utterances per speaker among ``ids``, sorted by speaker."""
    counts: dict[str, int] = {}
    for i in ids:
        speaker = cache.entries[i].speaker
        counts[speaker] = counts.get(speaker, 0) + 1
    return dict(sorted(counts.items()))


# ---------------------------------------------------------------------------------------------
# The source


class SpeechData(BatchSource):
    """Utterances on the model's scale, concatenated along time in one tensor (n_mels, total).

    Each batch is gathered by indexing (no per-utterance Python objects in the loop). A training
    epoch's order is a permutation drawn from ``(seed, epoch)`` and the crop offsets of batch
    ``b`` from ``(seed, epoch, b)``, so resuming at any batch reproduces the uninterrupted run.

    Parameters
    ----------
    norms : list of np.ndarray, each shape=(n_mels, n_i), float32 in [-1, 1]
        Real frames only.
    ids : list of str
    frames : int >= 0
        Frames of every item (crop or clip length); 0: each batch is padded to its longest item.
    random_crop : bool
        Draw a random window of ``frames`` from longer items (else they start at frame 0).
    masked : bool
        Yield ``(x, mask)``; else only ``x`` (loss over padding too, as the thesis).
    multiple : int > 0
        The model's downsampling factor.
    sort_by_length : bool
        Unshuffled batches (``epoch=None``) go from the shortest to the longest item.
    warp : float in [0, 0.5)
        With ``random_crop``: each crop's frequencies are scaled by a factor drawn uniformly in
        ``[1 - warp, 1 + warp]`` (vocal tract length perturbation), bin values linearly
        interpolated, bins warped past the top edge held at the top bin's value.
    band_hz : np.ndarray, shape=(n_mels,), optional
        The bins' centre frequencies (needed for ``warp``).
    """

    def __init__(self, norms: list[np.ndarray], ids: list[str], *, frames: int = 0,
                 random_crop: bool = False, masked: bool = True, multiple: int = 4,
                 sort_by_length: bool = True, name: str = "speech", warp: float = 0.0,
                 band_hz: np.ndarray | None = None) -> None:
        if len(norms) != len(ids):
            raise ValueError("norms and ids differ in length")
        if warp and band_hz is None:
            raise ValueError("warp needs the bins' centre frequencies")
        if frames % multiple:
            raise ConfigError(f"{name}: {frames} frames is not a multiple of {multiple}")
        lengths = [int(m.shape[-1]) for m in norms]
        self.ids = list(ids)
        self.lengths = torch.tensor(lengths, dtype=torch.long)
        self.offsets = torch.cumsum(torch.tensor([0, *lengths[:-1]], dtype=torch.long), 0)
        n_mels = norms[0].shape[0] if norms else 0
        self.data = (torch.from_numpy(np.concatenate(norms, axis=1)) if norms
                     else torch.zeros(n_mels, 0))
        self.frames, self.random_crop, self.masked = frames, random_crop, masked
        self.multiple, self.name = multiple, name
        self.warp = float(warp) if random_crop else 0.0
        self.band_hz = None if band_hz is None else np.asarray(band_hz, dtype=np.float64)
        self.order = (sorted(range(len(ids)), key=lambda i: (lengths[i], i)) if sort_by_length
                      else list(range(len(ids))))

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def n_frames(self) -> int:
        """Real frames in the whole split."""
        return int(self.lengths.sum())

    def to(self, device: torch.device) -> SpeechData:
        """The same source with its frames on ``device`` (batches are then gathered there)."""
        new = object.__new__(SpeechData)
        new.__dict__.update(self.__dict__)
        new.data = self.data.to(device)
        return new

    def epoch_order(self, epoch: int, seed: int) -> np.ndarray:
        return np.random.default_rng([seed % 2**63, epoch]).permutation(len(self))

    def batches(
        self,
        batch_size: int,
        *,
        epoch: int | None = None,
        seed: int = 0,
        start: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> Iterator[torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
        """Batches (B, 1, n_mels, T), with masks (B, 1, 1, T) of real frames when ``masked``.

        Shuffled by ``(seed, epoch)`` when ``epoch`` is given, in length order otherwise;
        beginning at batch ``start``; each rank takes its share of every batch.
        """
        order = (self.epoch_order(epoch, seed) if epoch is not None
                 else np.asarray(self.order, dtype=np.int64))
        for b in range(start, self.num_batches(batch_size)):
            idx = order[b * batch_size:(b + 1) * batch_size]
            lengths = self.lengths[torch.from_numpy(idx)]
            T = self.frames or -(-int(lengths.max()) // self.multiple) * self.multiple
            if self.random_crop:
                # Offsets of the whole batch (before the rank split) from (seed, epoch, batch).
                rng = np.random.default_rng([seed % 2**63, 0 if epoch is None else epoch, b])
                room = np.maximum(lengths.numpy() - T, 0)
                starts = torch.from_numpy(rng.integers(0, room + 1)).long()
                factors = rng.uniform(1 - self.warp, 1 + self.warp, len(idx)) if self.warp else None
            else:
                starts, factors = torch.zeros(len(idx), dtype=torch.long), None
            sel = slice(rank, None, world_size)
            batch = self._gather(torch.from_numpy(idx)[sel], starts[sel], T)
            yield batch if factors is None else self._warp(batch, factors[sel])

    def _warp(self, batch, factors: np.ndarray):
        """Each item's bin ``k`` takes the value at frequency ``band_hz[k] / factor``."""
        x, mask = batch if isinstance(batch, tuple) else (batch, None)
        hz = self.band_hz
        pos = np.stack([np.interp(hz / f, hz, np.arange(len(hz))) for f in factors])
        lo = np.minimum(np.floor(pos).astype(np.int64), len(hz) - 2)
        w = torch.from_numpy(pos - lo).to(x)[:, None, :, None]  # (B, 1, n_mels, 1)
        lo_t = torch.from_numpy(lo).to(x.device)[:, None, :, None].expand_as(x)
        x = torch.gather(x, 2, lo_t) * (1 - w) + torch.gather(x, 2, lo_t + 1) * w
        return x if mask is None else (x, mask)

    def _gather(self, idx: torch.Tensor, starts: torch.Tensor, T: int):
        pos = starts[:, None] + torch.arange(T)[None, :]  # (B, T) frame within the item
        real = pos < self.lengths[idx][:, None]
        flat = (self.offsets[idx][:, None] + pos).clamp_(max=max(0, self.data.shape[1] - 1))
        dev = self.data.device
        x = self.data[:, flat.to(dev)].permute(1, 0, 2)  # (n_mels, B, T) -> (B, n_mels, T)
        real = real.to(dev)
        x = torch.where(real[:, None, :], x, torch.full_like(x, SILENCE)).unsqueeze(1)
        return (x, real[:, None, None, :]) if self.masked else x


def mel_band_hz(a: AudioConfig) -> np.ndarray:
    """Centre frequencies (Hz) of the mel bins of ``a``'s frontend."""
    return mel_frequencies(a.n_mels + 2, fmin=a.fmin, fmax=a.fmax or a.sample_rate / 2)[1:-1]


def _load_norms(cache: MelCache, ids: list[str], cfg: RunConfig) -> list[np.ndarray]:
    return [prepare_mel_db(cache.load(i), cfg.audio)[0] for i in ids]


def load_speech_data(cfg: RunConfig, split: str, *, training: bool) -> SpeechData:
    """The source of ``split`` for training (``training=True``) or validation.

    Loads every mel of the split once, normalised by ``cfg.audio`` (see the module docstring).

    Raises
    ------
    ConfigError
        ``n_mels`` or ``crop_frames`` not a multiple of the model's downsampling factor.
    DataError
        Missing or unreadable data, an empty split.
    """
    multiple = 2 ** cfg.model.num_downsamples
    a = cfg.audio
    if a.n_mels % multiple:
        raise ConfigError(f"audio.n_mels={a.n_mels} must be a multiple of {multiple} (the "
                          f"model's downsampling)")
    if a.crop_frames < 0 or a.crop_frames % multiple:
        raise ConfigError(f"audio.crop_frames={a.crop_frames} must be 0 or a multiple of "
                          f"{multiple}")
    if cfg.data.freq_warp and not a.crop_frames:
        raise ConfigError(f"data.freq_warp={cfg.data.freq_warp} warps random training crops: "
                          f"it needs audio.crop_frames > 0")
    cache, source_root = open_speech_cache(cfg)
    ids = select_ids(cache, split)
    if training and is_main_process():
        note = upsampling_note(source_sample_rates(cache, source_root, ids), a.sample_rate)
        if note:
            print(f"vqkit: note: training split: {note}", file=sys.stderr)
    try:
        norms = _load_norms(cache, ids, cfg)
    except DataError:
        if Path(cfg.data.root, MANIFEST_NAME).is_file():
            raise  # a cache folder given by the user: `vqkit cache` repairs it
        # An automatic cache with a corrupt entry: rebuild with checksums, then load again.
        build_mel_cache(cfg.data.root, cache.root, cfg.audio, verify=True, progress=False)
        cache = open_cache(cache.root, cfg.audio)
        norms = _load_norms(cache, ids, cfg)
    clip = clip_frames(a, multiple=multiple)
    name = f"{split} split"
    if training and a.crop_frames > 0:
        return SpeechData(norms, ids, frames=a.crop_frames, random_crop=True, masked=True,
                          multiple=multiple, name=name, warp=cfg.data.freq_warp,
                          band_hz=mel_band_hz(a))
    if training and clip:
        return SpeechData(norms, ids, frames=clip, masked=False, multiple=multiple, name=name)
    return SpeechData(norms, ids, frames=clip, masked=True, multiple=multiple, name=name)
