"""Named presets. ``*-seed`` reproduce the thesis notebooks exactly; the others are measured
defaults (see the README's "Benchmarks")."""

from __future__ import annotations

import copy
from pathlib import Path

from vqkit.config.parse import apply_dict, apply_overrides, read_config_file
from vqkit.config.schema import RunConfig
from vqkit.errors import ConfigError


def _cifar10_seed() -> RunConfig:
    return RunConfig(task="image", preset="cifar10-seed")


def _cifar10() -> RunConfig:
    cfg = RunConfig(task="image", preset="cifar10")
    q = cfg.quantizer
    q.ema_decay, q.kmeans_init, q.dead_code_threshold = 0.99, True, 1.0
    t = cfg.train
    t.lr, t.lr_schedule, t.warmup_steps = 1e-3, "cosine", 200
    return cfg


def _folder64() -> RunConfig:
    # Image folders at 64x64: the cifar10 settings with the two downsamplings kept, so codes lie
    # on a 16x16 grid (4x the positions of 32x32), and random mirror images. Not tuned by a
    # sweep yet (issue 10): a starting point measured only for memory (< 2 GB on 100k files).
    cfg = _cifar10()
    cfg.preset = "folder64"
    cfg.data.image_size, cfg.data.hflip = 64, True
    return cfg


def _l2arctic_seed() -> RunConfig:
    cfg = RunConfig(task="speech", preset="l2arctic-seed")
    cfg.model.in_channels = 1
    t = cfg.train
    t.batch_size, t.lr, t.epochs, t.lr_schedule, t.lr_step_epochs, t.lr_gamma = (
        16, 2e-4, 50, "step", 20, 0.5)
    return cfg


def _l2arctic() -> RunConfig:
    cfg = _l2arctic_seed()
    cfg.preset = "l2arctic"
    a = cfg.audio
    # Crops of 32 frames (0.5 s): about the median FSDD digit, half the cost of 64 per step and
    # as good per step; evaluation takes whole utterances. fixed_db needs no stats to invert.
    a.normalization, a.clip_s, a.crop_frames = "fixed_db", 0.0, 32
    q = cfg.quantizer
    # Two residual stages of 512 codes (9000 bit/s): one stage (4500 bit/s, the thesis rate)
    # stalls at STOI ~0.88x the Griffin-Lim ceiling however long it trains (benchmarks/speech.py).
    # A restart threshold of 4 uses per batch keeps more codes alive than 1 at equal STOI.
    q.kind, q.num_quantizers = "rvq", 2
    q.ema_decay, q.kmeans_init, q.dead_code_threshold = 0.99, True, 4.0
    t = cfg.train
    # An epoch is one 0.5 s crop per utterance: many more epochs than whole-clip training.
    t.epochs, t.lr, t.lr_schedule, t.warmup_steps = 150, 1e-3, "cosine", 200
    return cfg


def _l2arctic_codec() -> RunConfig:
    cfg = _l2arctic()
    cfg.preset = "l2arctic-codec"
    m = cfg.model
    # 1-D convolutions over time, the 128 mel bins as channels, stride 4: 62.5 mel frames/s ->
    # 15.625 code frames/s.
    m.kind, m.num_downsamples, m.hidden_channels, m.residual_channels = "temporal", 2, 256, 128
    m.num_residual_layers, m.dim = 3, 64
    q = cfg.quantizer
    # 18 stages of 256 codes (8 bits): 125 bit/s per stage, 2250 bit/s with all; quantizer
    # dropout trains every prefix so that one model decodes at every rate. 1024 codes per stage
    # (14 x 10 bits) left 90% of them unused after 11 epochs (val usage 0.10): NICOLAS's 3,500
    # code frames cannot cover 1024 codes (0.97 even if uniform), 256 they can. A batch has 512
    # code positions, 2 per code: restart below 1 use per batch (l2arctic: 4 of 8).
    q.num_quantizers, q.codebook_size, q.quantizer_dropout = 18, 256, 0.5
    q.dead_code_threshold = 1.0
    # Every stage's commitment term pulls the encoder towards the first stage's codes (18 terms
    # instead of l2arctic's 2): 0.02 per stage. 200-step pilots (hidden 64): val MSE 0.0235 at
    # 18 stages vs 0.0258 with 0.25, where extra stages changed nothing.
    q.commitment_weight = 0.02
    # Codes looked up in 8 dimensions (projections in and out of the 64): on an unseen speaker
    # (5 min, NICOLAS) stage usage rose from 0.49 / 0.80-0.84 (first / later stages) to 0.64 /
    # 0.92-0.98 at equal STOI.
    q.codebook_dim = 8
    # The mel bins are channels here, so nothing makes a voice an octave away look alike:
    # random frequency warps of +-10% (vocal tract length perturbation) lifted an unseen
    # speaker's STOI 0.630 -> 0.653 at 5 min; the 2-D model, equivariant along frequency,
    # gains nothing from them (0.776 -> 0.775).
    cfg.data.freq_warp = 0.1
    t = cfg.train
    t.batch_size = 64
    return cfg


def _l2arctic_2kbps() -> RunConfig:
    cfg = _l2arctic()
    cfg.preset = "l2arctic-2kbps"
    # The 2-D model's 4x4 tiles with one stage of 16 codes: 32 rows x 15.625 columns x 4 bits
    # = 2000 bit/s. Measured against the other designs at <= 2250 bit/s (5 min leave one
    # speaker out, 50 NICOLAS utterances; README "Speech tokens at codec bit rates"): small
    # codebooks on a fine grid code an unseen voice better than large ones on a coarse grid
    # (8x8 tiles, 2 x 512 codes: STOI 0.715 against 0.770 here) or one vector per time step
    # (l2arctic-codec: 0.639), and better than 2 stages x 4 codes (0.734).
    q = cfg.quantizer
    q.num_quantizers, q.codebook_size = 1, 16
    # Codes chosen by 100 steps of analysis-by-synthesis search (vqkit.models.search) towards
    # the lowest MSE + 0.1 x (1 - mel STOI): on 40 NICOLAS utterances (15-minute model), STOI
    # 0.794x -> 0.892x the oracle, PESQ 1.66 -> 1.61, mel L1 2.57 -> 2.85 dB; weight 0.3 gave
    # 0.902x at PESQ 1.53, 1.0 0.905x at 1.47; MSE alone moved a 5-minute model 0.795x ->
    # 0.796x.
    s = cfg.search
    s.steps, s.lr, s.stoi_weight = 100, 0.02, 0.1
    return cfg


def _l2arctic_scalable() -> RunConfig:
    cfg = _l2arctic_2kbps()
    cfg.preset = "l2arctic-scalable"
    # One 2-D model for several rates: 4 residual stages of 2 codes (1 bit) on the 4x4 grid,
    # 500 bit/s per stage (500-2000 bit/s), trained with quantizer dropout so that every prefix
    # decodes (--stages N), and searched like l2arctic-2kbps. 5-minute pilots, first 150
    # NICOLAS utterances, STOI / oracle at 500 / 1000 / 1500 / 2000 bit/s: 0.672 / 0.797 /
    # 0.832 / 0.844; 8 stages of 2 codes: 0.650 / 0.760 / 0.784 / 0.844 (0.904 at 4000); 4
    # stages of 4 codes: 0.748 at 1000, 0.850 at 2000, 0.909 at 4000; l2arctic-2kbps (one stage
    # of 16) 0.876 at 2000; l2arctic-codec 0.55-0.58 at every rate in its 5-minute sweep
    # (another machine). 15 minutes (README): 0.741 / 0.826 / 0.855 / 0.885.
    q = cfg.quantizer
    q.num_quantizers, q.codebook_size, q.quantizer_dropout = 4, 2, 0.5
    return cfg


def _prior() -> RunConfig:
    # A transformer of 4 layers x 256 over the 64 codes of a cifar10 image: a few epochs on
    # the cached codes fit in minutes on 2 cores.
    cfg = RunConfig(task="prior", preset="prior")
    t = cfg.train
    t.epochs, t.batch_size, t.lr, t.lr_schedule, t.warmup_steps = 10, 64, 1e-3, "cosine", 200
    t.optimizer, t.weight_decay, t.grad_clip, t.channels_last = "adamw", 0.01, 1.0, False
    t.log_every_steps = 50
    return cfg


PRESETS = {
    "cifar10-seed": _cifar10_seed,
    "cifar10": _cifar10,
    "folder64": _folder64,
    "l2arctic-seed": _l2arctic_seed,
    "l2arctic": _l2arctic,
    "l2arctic-codec": _l2arctic_codec,
    "l2arctic-2kbps": _l2arctic_2kbps,
    "l2arctic-scalable": _l2arctic_scalable,
    "prior": _prior,
}

DEFAULT_PRESET = {"image": "cifar10", "speech": "l2arctic", "prior": "prior"}


def list_presets() -> list[str]:
    return sorted(PRESETS)


def get_preset(name: str) -> RunConfig:
    """A fresh copy of the named preset."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r} (known: {', '.join(list_presets())})")
    return copy.deepcopy(PRESETS[name]())


def resolve_config(
    task: str | None = None,
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: list[str] | None = None,
) -> RunConfig:
    """Preset, then file, then overrides; the preset defaults to the task's default."""
    if preset is None:
        preset = DEFAULT_PRESET.get(task or "image")
        if preset is None:
            raise ConfigError(f"unknown task {task!r} (known: image, speech)")
    cfg = get_preset(preset)
    if task is not None and cfg.task != task:
        raise ConfigError(f"preset {preset!r} is for {cfg.task!r}, not {task!r}")
    if config_file is not None:
        apply_dict(cfg, read_config_file(config_file), str(config_file))
    apply_overrides(cfg, overrides or [])
    return cfg.validate()
