"""The config dataclasses: one per concern under :class:`RunConfig`, every field typed and
commented with its unit."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vqkit.config.parse import apply_dict, read_config_file
from vqkit.utils import atomic_write_text


@dataclass
class DataConfig:
    """Where the data is and how it is split."""

    root: str = ""  # folder, archive or cache; empty means the download cache (images)
    train_split: str = "train"
    val_split: str = "val"


@dataclass
class AudioConfig:
    """Mel frontend and speech clip handling (librosa's vocabulary; lengths in samples)."""

    sample_rate: int = 16000  # Hz
    n_fft: int = 1024  # samples
    hop_length: int = 256  # samples
    win_length: int = 0  # samples; 0 means n_fft
    n_mels: int = 128
    fmin: float = 0.0  # Hz
    fmax: float = 0.0  # Hz; 0 means sample_rate / 2
    top_db: float = 80.0  # dB below the peak kept by the per-utterance normalisation
    # "utterance_minmax": the thesis's per-utterance min-max of dB to [-1, 1] (needs min/max to
    # invert); "fixed_db": a fixed affine map of dB (ref 1.0) to about [-1, 1], invertible as is.
    normalization: str = "utterance_minmax"
    min_db: float = -100.0  # dB mapped to -1 by "fixed_db"
    max_db: float = 20.0  # dB mapped to +1 by "fixed_db"
    clip_s: float = 5.0  # every clip padded or cut to this length (s); 0 keeps whole utterances
    crop_frames: int = 0  # random training crops of this many frames; 0 trains on whole clips
    griffin_lim_iters: int = 64
    griffin_lim_momentum: float = 0.99


@dataclass
class ModelConfig:
    """Convolutional VQ-VAE; the defaults are the thesis model."""

    in_channels: int = 3
    hidden_channels: int = 128
    num_residual_layers: int = 2
    residual_channels: int = 32
    num_downsamples: int = 2  # each halves height and width: 32x32 -> 8x8 with 2
    dim: int = 64  # channels of the encoder output fed to the quantizer


@dataclass
class QuantizerConfig:
    """Which quantizer and its options; 0 disables a weighted term or a mechanism."""

    kind: str = "vq"  # "vq", "fsq" or "rvq"
    codebook_size: int = 512
    codebook_dim: int = 0  # 0 means the model's dim; smaller adds learned in/out projections
    commitment_weight: float = 0.25
    codebook_weight: float = 1.0  # unused with EMA updates
    ema_decay: float = 0.0  # 0: codebook learned by gradient (thesis); e.g. 0.99: EMA updates
    kmeans_init: bool = False  # initialise the codebook by k-means on the first training batch
    kmeans_iters: int = 10
    dead_code_threshold: float = 0.0  # restart codes whose EMA count per batch falls below this
    cosine: bool = False  # l2-normalised codes and inputs
    rotation_trick: bool = False  # rotation trick (arXiv 2410.06424) instead of straight-through
    levels: list[int] = field(default_factory=lambda: [8, 8, 8])  # FSQ levels per dimension
    num_quantizers: int = 1  # residual VQ stages
    quantizer_dropout: float = 0.0  # probability of training on a random prefix of RVQ stages
    usage_window: int = 100  # batches in the sliding window of codebook-usage statistics


@dataclass
class TrainConfig:
    """Optimisation and the training loop."""

    epochs: int = 10
    batch_size: int = 32
    lr: float = 3e-4
    optimizer: str = "adam"  # "adam" or "adamw"
    weight_decay: float = 0.0
    lr_schedule: str = "constant"  # "constant", "cosine" or "step"
    lr_step_epochs: int = 20  # "step": multiply lr by lr_gamma every this many epochs
    lr_gamma: float = 0.5
    warmup_steps: int = 0
    grad_clip: float = 0.0  # max gradient norm; 0 disables clipping
    recon_weight: float = 1.0  # weight of the reconstruction MSE in the loss
    max_steps: int = 0  # stop after this many optimizer steps in total; 0: no limit
    max_minutes: float = 0.0  # stop (with a checkpoint) after this much wall-clock; 0: no limit
    # (a "cosine" schedule then ends at the last epoch or at the end of the minutes, if sooner)
    seed: int = 0
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", "mps"
    num_threads: int = 0  # CPU threads for torch; 0: torch's default (one per core)
    channels_last: bool = True  # faster convolutions on CPU and GPU, same results up to rounding
    precision: str = "fp32"  # "fp32", or "bf16": autocast (quantizer distances stay fp32)
    checkpoint_every_steps: int = 0  # also checkpoint every this many steps; 0: each epoch only
    log_every_steps: int = 20
    val_max_batches: int = 0  # cap validation batches per epoch; 0: the whole split


@dataclass
class RunConfig:
    """Everything a run needs; saved as ``config.json`` in the run directory."""

    task: str = "image"  # "image" or "speech"
    preset: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> RunConfig:
        cfg = cls()
        apply_dict(cfg, d, source)
        return cfg

    def save(self, path: str | Path) -> None:
        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        return cls.from_dict(read_config_file(path), str(path))
