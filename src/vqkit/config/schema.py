"""The config dataclasses: one per concern under :class:`RunConfig`, every field typed and
commented with its unit."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vqkit.config.parse import apply_dict, check_rule, read_config_file, rule
from vqkit.errors import ConfigError
from vqkit.utils import atomic_write_text


@dataclass
class DataConfig:
    """Where the data is and how it is split."""

    root: str = ""  # folder, archive or cache; empty means the download cache (images)
    train_split: str = "train"
    val_split: str = "val"
    # image folders: training resolution (shorter side resized, then a square crop), in pixels
    image_size: int = rule(32, min=4)
    # image folders without train/ val/ test/ folders: the fraction of files (by a hash of the
    # relative path, seeded by split_seed) that form "val"
    val_fraction: float = rule(0.1, min=0, lt=1)
    split_seed: int = rule(0, min=0)
    hflip: bool = False  # image folders: random horizontal flips in training
    # speech: random frequency warps in training (vocal tract length perturbation): each crop's
    # frequencies scaled by a factor drawn in [1 - w, 1 + w]; 0 disables
    freq_warp: float = rule(0.0, min=0, lt=0.5)
    workers: int = rule(0, min=0)  # processes that pack an image folder; 0: one per core


@dataclass
class AudioConfig:
    """Mel frontend and speech clip handling (librosa's vocabulary; lengths in samples)."""

    sample_rate: int = rule(16000, min=1000)  # Hz
    n_fft: int = rule(1024, min=16)  # samples
    hop_length: int = rule(256, min=1)  # samples
    win_length: int = rule(0, min=0)  # samples; 0 means n_fft
    n_mels: int = rule(128, min=1)
    fmin: float = rule(0.0, min=0)  # Hz
    fmax: float = rule(0.0, min=0)  # Hz; 0 means sample_rate / 2
    top_db: float = rule(80.0, gt=0)  # dB below the peak kept by the per-utterance normalisation
    # "utterance_minmax": the thesis's per-utterance min-max of dB to [-1, 1] (needs min/max to
    # invert); "fixed_db": a fixed affine map of dB (ref 1.0) to about [-1, 1], invertible as is.
    normalization: str = rule("utterance_minmax", choices=("utterance_minmax", "fixed_db"))
    min_db: float = -100.0  # dB mapped to -1 by "fixed_db"
    max_db: float = 20.0  # dB mapped to +1 by "fixed_db"
    # every clip padded or cut to this length (s); 0 keeps whole utterances
    clip_s: float = rule(5.0, min=0)
    # recordings longer than this (s) are cut into equal segments of at most this length
    # when cached (never loaded whole); 0 keeps whole recordings
    segment_s: float = rule(60.0, min=0)
    # random training crops of this many frames; 0 trains on whole clips
    crop_frames: int = rule(0, min=0)
    griffin_lim_iters: int = rule(64, min=0)
    griffin_lim_momentum: float = rule(0.99, min=0, lt=1)


@dataclass
class ModelConfig:
    """Convolutional VQ-VAE; the defaults are the thesis model."""

    # "conv2d": the thesis's 2-D model (images, mel tiles); "temporal": 1-D convolutions over
    # time with the mel bins as channels (speech only; one code per stage per code frame)
    kind: str = rule("conv2d", choices=("conv2d", "temporal"))
    in_channels: int = rule(3, min=1)
    hidden_channels: int = rule(128, min=2)
    num_residual_layers: int = rule(2, min=0)
    residual_channels: int = rule(32, min=1)
    # each halves height and width: 32x32 -> 8x8 with 2 ("temporal": halves time only)
    num_downsamples: int = rule(2, min=1)
    dim: int = rule(64, min=1)  # channels of the encoder output fed to the quantizer


@dataclass
class QuantizerConfig:
    """Which quantizer and its options; 0 disables a weighted term or a mechanism."""

    kind: str = rule("vq", choices=("vq", "fsq", "rvq"))  # "vq", "fsq" or "rvq"
    codebook_size: int = rule(512, min=2)
    # 0 means the model's dim; smaller adds learned in/out projections
    codebook_dim: int = rule(0, min=0)
    commitment_weight: float = rule(0.25, min=0)
    codebook_weight: float = rule(1.0, min=0)  # unused with EMA updates
    # 0: codebook learned by gradient (thesis); e.g. 0.99: EMA updates
    ema_decay: float = rule(0.0, min=0, lt=1)
    kmeans_init: bool = False  # initialise the codebook by k-means on the first training batch
    kmeans_iters: int = rule(10, min=0)
    # restart codes whose EMA count per batch falls below this
    dead_code_threshold: float = rule(0.0, min=0)
    cosine: bool = False  # l2-normalised codes and inputs
    rotation_trick: bool = False  # rotation trick (arXiv 2410.06424) instead of straight-through
    levels: list[int] = rule([8, 8, 8], min=2)  # FSQ levels per dimension
    num_quantizers: int = rule(1, min=1)  # residual VQ stages
    # probability of training on a random prefix of RVQ stages
    quantizer_dropout: float = rule(0.0, min=0, max=1)
    # batches in the sliding window of codebook-usage statistics
    usage_window: int = rule(100, min=1)


@dataclass
class SearchConfig:
    """How codes are chosen at encode time (``vqkit.models.search``): 0 steps picks the codes
    nearest the encoder's output; more take that many Adam steps on the latents towards the
    codes that decode best (same decoder, same bit rate)."""

    steps: int = rule(0, min=0)  # Adam steps of analysis-by-synthesis code search; 0: none
    lr: float = rule(0.02, gt=0)  # step size on the latents
    # Speech: weight of (1 - a mel-domain STOI) beside the MSE the search descends; 0: MSE only.
    stoi_weight: float = rule(0.0, min=0)


@dataclass
class TrainConfig:
    """Optimisation and the training loop."""

    epochs: int = rule(10, min=1)
    batch_size: int = rule(32, min=1)
    lr: float = rule(3e-4, gt=0)
    optimizer: str = rule("adam", choices=("adam", "adamw"))  # "adam" or "adamw"
    weight_decay: float = rule(0.0, min=0)
    # "constant", "cosine" or "step"
    lr_schedule: str = rule("constant", choices=("constant", "cosine", "step"))
    lr_step_epochs: int = rule(20, min=1)  # "step": multiply lr by lr_gamma every this many epochs
    lr_gamma: float = rule(0.5, gt=0)
    warmup_steps: int = rule(0, min=0)
    grad_clip: float = rule(0.0, min=0)  # max gradient norm; 0 disables clipping
    recon_weight: float = rule(1.0, min=0)  # weight of the reconstruction MSE in the loss
    max_steps: int = rule(0, min=0)  # stop after this many optimizer steps in total; 0: no limit
    # stop (with a checkpoint) after this much wall-clock; 0: no limit
    max_minutes: float = rule(0.0, min=0)
    # (a "cosine" schedule then ends at the last epoch or at the end of the minutes, if sooner)
    seed: int = rule(0, min=0)
    # "auto", "cpu", "cuda", "cuda:1", "mps"
    device: str = rule("auto", pattern=r"auto|cpu|mps|cuda(:[0-9]+)?")
    num_threads: int = rule(0, min=0)  # CPU threads for torch; 0: torch's default (one per core)
    channels_last: bool = True  # faster convolutions on CPU and GPU, same results up to rounding
    # "fp32", or "bf16": autocast (quantizer distances stay fp32)
    precision: str = rule("fp32", choices=("fp32", "bf16"))
    # compile the encoder and decoder with torch.compile (the quantizer's data-dependent steps
    # stay eager); worth it on a GPU for long runs, the first steps pay the compilation
    compile: bool = False
    # also checkpoint every this many steps; 0: each epoch only
    checkpoint_every_steps: int = rule(0, min=0)
    # also checkpoint "last" this often; 0: never
    checkpoint_every_minutes: float = rule(10.0, min=0)
    log_every_steps: int = rule(20, min=1)
    val_max_batches: int = rule(0, min=0)  # cap validation batches per epoch; 0: the whole split


@dataclass
class PriorConfig:
    """An autoregressive transformer over a trained VQ-VAE run's codes (``task = "prior"``).

    The last six fields describe the VQ-VAE's codes; ``vqkit train prior`` fills them in from
    the run (0 / "" until then) and a resumed or loaded prior checks them against it."""

    run: str = ""  # the VQ-VAE run directory whose codes are modelled
    checkpoint: str = rule("best", choices=("best", "last"))  # its checkpoint
    dim: int = rule(256, min=8)  # width of the transformer
    layers: int = rule(4, min=1)
    heads: int = rule(4, min=1)  # dim must be a multiple of heads
    dropout: float = rule(0.1, min=0, lt=1)
    class_conditional: bool = True  # condition on the class label when the data has labels
    # probability of training a sample with the "no class" token (unconditional sampling and
    # compression of files whose class is unknown use it)
    class_dropout: float = rule(0.1, min=0, max=1)
    # speech: the class of an utterance, "none" (unconditional), "transcript" (the text of
    # <SPK>/transcript/<utt>.txt, e.g. FSDD's digit) or "speaker"
    speech_classes: str = rule("none", choices=("none", "transcript", "speaker"))
    codebook_size: int = rule(0, min=0)  # codes per stage of the VQ-VAE
    num_quantizers: int = rule(0, min=0)  # residual stages per position
    grid: list[int] = rule([0, 0], min=0)  # code grid (rows, columns) in raster order
    # "raster": images, every item the whole grid, row by row; "time": speech, code frames in
    # time order (all rows of frame t, stages innermost, then frame t + 1), grid = (rows per
    # frame, the most frames an item may have), items of any whole number of frames up to that
    order: str = rule("raster", choices=("raster", "time"))
    class_names: list[str] = field(default_factory=list)  # empty: unconditional
    vqvae_sha256: str = ""  # sha256 of the VQ-VAE's model.safetensors the codes came from


@dataclass
class RunConfig:
    """Everything a run needs; saved as ``config.json`` in the run directory."""

    task: str = rule("image", choices=("image", "speech", "prior"))  # "image", "speech", "prior"
    preset: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    prior: PriorConfig = field(default_factory=PriorConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> RunConfig:
        cfg = cls()
        apply_dict(cfg, d, source)
        cfg.validate(source)
        return cfg

    def validate(self, source: str = "config") -> RunConfig:
        """Check every field against its rule (as parsing does, for configs built in code) and
        the rules that involve two fields; raise ConfigError naming the first bad one."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if dataclasses.is_dataclass(value):
                for g in dataclasses.fields(value):
                    check_rule(getattr(value, g.name), g.metadata, f"{source}: {f.name}.{g.name}")
            else:
                check_rule(value, f.metadata, f"{source}: {f.name}")
        if self.model.kind == "temporal" and self.task != "speech":
            raise ConfigError(f"{source}: model.kind 'temporal' codes mel spectrograms; it needs "
                              f"task 'speech', not {self.task!r}")
        a = self.audio
        if a.win_length > a.n_fft:
            raise ConfigError(f"{source}: audio.win_length ({a.win_length}) must be at most "
                              f"audio.n_fft ({a.n_fft})")
        if a.fmax and not a.fmin < a.fmax <= a.sample_rate / 2:
            raise ConfigError(f"{source}: audio.fmax ({a.fmax}) must lie above audio.fmin "
                              f"({a.fmin}) and at most sample_rate / 2 ({a.sample_rate / 2})")
        if a.normalization == "fixed_db" and not a.max_db > a.min_db:
            raise ConfigError(f"{source}: audio.max_db ({a.max_db}) must be above audio.min_db "
                              f"({a.min_db})")
        if self.search.stoi_weight and self.task != "speech":
            raise ConfigError(f"{source}: search.stoi_weight scores speech; a {self.task} run "
                              f"takes 0")
        p = self.prior
        if p.dim % p.heads:
            raise ConfigError(f"{source}: prior.dim ({p.dim}) must be a multiple of prior.heads "
                              f"({p.heads})")
        if len(p.grid) != 2:
            raise ConfigError(f"{source}: prior.grid must be [rows, columns], got {p.grid}")
        return self

    def save(self, path: str | Path) -> None:
        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        return cls.from_dict(read_config_file(path), str(path))
