"""Speech: normalisation, sources (crops, clips, masks), train/evaluate/reconstruct end to end.

All data is synthetic audio written here: 3 speakers x 4 utterances of 0.3-1 s at 8 kHz
(harmonic chirps with silent margins), resampled to 16 kHz by the frontend.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
from safetensors.torch import load_file

from vqkit.audio.normalize import (
    SILENCE,
    clip_frames,
    denormalize_mel,
    normalize_mel_db,
    pad_frames,
    pad_or_cut_frames,
)
from vqkit.audio.pipeline import (
    batch_model_input,
    model_output_to_wav,
    prepare_mel_db,
    wav_to_model_input,
)
from vqkit.cli import main
from vqkit.config import AudioConfig, get_preset
from vqkit.data.source import BatchSource
from vqkit.data.speech import auto_cache_dir, load_speech_data, open_speech_cache, select_ids
from vqkit.errors import DataError
from vqkit.evaluation.artifacts import read_evaluation
from vqkit.evaluation.speech import real_codes
from vqkit.training.train import train
from vqkit.training.vqvae_task import reconstruction_loss

SPEAKERS = ("AAA", "BBB", "CCC")
SR_IN = 8000
TINY = ["model.hidden_channels=16", "model.residual_channels=8", "model.dim=8",
        "quantizer.codebook_size=16", "audio.n_mels=32", "audio.griffin_lim_iters=8",
        "train.batch_size=4", "train.warmup_steps=0"]
SPLITS = ["data.train_split=speakers:AAA,BBB", "data.val_split=speakers:CCC"]


def tone(duration_s: float, f0: float, seed: int) -> np.ndarray:
    """A harmonic chirp from f0 to 1.5 f0 with 50 ms of near-silence at both ends."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration_s * SR_IN)) / SR_IN
    f = f0 * (1 + 0.5 * t / duration_s)
    phase = 2 * np.pi * np.cumsum(f) / SR_IN
    y = sum(np.sin(k * phase) / k for k in range(1, 6))
    env = np.clip(np.minimum(t - 0.05, duration_s - 0.05 - t) / 0.05, 0, 1)
    return (0.3 * y * env + 1e-4 * rng.standard_normal(len(t))).astype(np.float32)


def write_corpus(root: Path) -> Path:
    for s, spk in enumerate(SPEAKERS):
        wav = root / spk / "wav"
        wav.mkdir(parents=True, exist_ok=True)
        for u in range(4):
            y = tone(0.3 + 0.23 * u, 110 + 50 * s + 20 * u, seed=10 * s + u)
            sf.write(wav / f"utt_{u}.wav", y, SR_IN, subtype="PCM_16")
    return root


def tiny_cfg(root: Path | str, preset: str = "l2arctic", extra: list[str] | None = None):
    from vqkit.config import apply_overrides

    cfg = get_preset(preset)
    apply_overrides(cfg, TINY + SPLITS + (extra or []))
    cfg.data.root = str(root)
    return cfg


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("speech") / "corpus")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VQKIT_DATA", str(tmp_path / "vqkit-data"))


@pytest.fixture(scope="module")
def trained_run(corpus, tmp_path_factory) -> Path:
    """A tiny l2arctic run: 2 epochs of 2 steps on speakers AAA, BBB."""
    run = tmp_path_factory.mktemp("run") / "run"
    cfg = tiny_cfg(corpus, extra=["train.epochs=2"])
    train(cfg, run, progress=False)
    return run


# ---------------------------------------------------------------------------------------------
# Normalisation


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_fixed_db_is_an_exact_inverse(kind):
    cfg = AudioConfig(normalization="fixed_db", min_db=-90.0, max_db=30.0)
    db = np.random.default_rng(0).uniform(-90, 30, size=(2, 16, 40)).astype(np.float32)
    x = torch.from_numpy(db) if kind == "torch" else db
    norm, stats = normalize_mel_db(x, cfg)
    assert stats is None and type(norm) is type(x)
    assert float(norm.min()) >= -1 and float(norm.max()) <= 1
    back = denormalize_mel(norm, cfg)
    np.testing.assert_allclose(np.asarray(back), db, atol=1e-4)
    # outside the range: clamped to it, silence is -1
    norm, _ = normalize_mel_db(np.array([[-120.0, 50.0]], np.float32), cfg)
    assert norm.tolist() == [[-1.0, 1.0]]


def test_utterance_minmax_round_trip_needs_its_stats():
    cfg = AudioConfig(normalization="utterance_minmax", top_db=80.0)
    rng = np.random.default_rng(1)
    db = rng.uniform(-60, 20, size=(16, 30)).astype(np.float32)
    db[0, 0] = -100.0  # below max - top_db: clamped
    norm, (lo, hi) = normalize_mel_db(db, cfg)
    assert norm.min() == -1 and norm.max() == 1
    assert hi == pytest.approx(db.max()) and lo == pytest.approx(db.max() - 80)
    back = denormalize_mel(norm, cfg, (lo, hi))
    np.testing.assert_allclose(back, np.maximum(db, db.max() - 80), atol=1e-3)
    with pytest.raises(ValueError, match="min, max"):
        denormalize_mel(norm, cfg)
    # batched: each item its own stats
    both = torch.from_numpy(np.stack([db, db + 10]))
    norm, (lo, hi) = normalize_mel_db(both, cfg)
    assert torch.allclose(hi, torch.tensor([db.max(), db.max() + 10]))
    assert torch.allclose(denormalize_mel(norm, cfg, (lo, hi))[1], torch.from_numpy(
        np.maximum(db + 10, db.max() - 70)), atol=1e-3)


def test_clip_frames_and_padding_are_multiples_of_4():
    cfg = get_preset("l2arctic-seed").audio
    assert clip_frames(cfg) == 316  # 1 + 80000 // 256 = 313, rounded up
    assert clip_frames(AudioConfig(clip_s=0.0)) == 0
    x = np.zeros((8, 13), np.float32)
    assert pad_frames(x, 4).shape == (8, 16)
    assert (pad_frames(x, 4)[:, 13:] == SILENCE).all()
    assert pad_or_cut_frames(torch.zeros(8, 20), 12).shape == (8, 12)


def test_seed_clip_is_normalised_with_its_padding_like_the_thesis():
    cfg = get_preset("l2arctic-seed").audio
    db = np.random.default_rng(2).uniform(-40, 10, size=(128, 50)).astype(np.float32)
    norm, info = prepare_mel_db(db, cfg, n_samples=49 * 256)
    # the zero-padded 5 s clip has -100 dB frames, clamped at max - top_db: that is the minimum
    assert info.stats == pytest.approx((db.max() - 80, db.max()), abs=1e-4)
    assert norm.shape == (128, 50) and info.n_frames == 50 and info.n_samples == 49 * 256
    long = np.zeros((128, 400), np.float32)
    norm, info = prepare_mel_db(long, cfg, n_samples=399 * 256)
    assert norm.shape == (128, 313) and info.n_samples == 80000


# ---------------------------------------------------------------------------------------------
# Sources


def test_sources_crop_clip_and_whole_shapes(corpus):
    cfg = tiny_cfg(corpus, extra=["audio.crop_frames=8"])
    tr = load_speech_data(cfg, "speakers:AAA,BBB", training=True)
    va = load_speech_data(cfg, "speakers:CCC", training=False)
    assert len(tr) == 8 and len(va) == 4
    assert isinstance(tr, BatchSource) and isinstance(va, BatchSource)
    for x, mask in tr.batches(4, epoch=0, seed=0):
        assert x.shape == (4, 1, 32, 8) and mask.shape == (4, 1, 1, 8)
    real = 0
    for x, mask in va.batches(3):
        assert x.shape[-1] % 4 == 0 and x.shape[-1] - int(mask.sum(-1).max()) < 4
        assert (x[~mask.expand_as(x)] == SILENCE).all()
        real += int(mask.sum())
    assert real == va.n_frames  # every real frame once, padding never
    seed_cfg = tiny_cfg(corpus, "l2arctic-seed")
    x = next(load_speech_data(seed_cfg, "speakers:AAA", training=True).batches(4, epoch=0))
    assert isinstance(x, torch.Tensor) and x.shape == (4, 1, 32, 316)  # thesis: no mask
    x, mask = next(load_speech_data(seed_cfg, "speakers:AAA", training=False).batches(4))
    assert x.shape == (4, 1, 32, 316) and int(mask.sum()) < 4 * 100


def test_crops_are_a_function_of_seed_epoch_and_batch(corpus):
    cfg = tiny_cfg(corpus, extra=["audio.crop_frames=8"])
    tr = load_speech_data(cfg, "speakers:AAA,BBB,CCC", training=True)
    full = [x for x, _ in tr.batches(4, epoch=3, seed=7)]
    again = [x for x, _ in tr.batches(4, epoch=3, seed=7)]
    tail = [x for x, _ in tr.batches(4, epoch=3, seed=7, start=1)]
    other = [x for x, _ in tr.batches(4, epoch=4, seed=7)]
    assert len(full) == 3
    assert all(torch.equal(a, b) for a, b in zip(full, again, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(full[1:], tail, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(full, other, strict=True))
    # ranks split each batch
    r0 = [x for x, _ in tr.batches(4, epoch=3, seed=7, rank=0, world_size=2)]
    r1 = [x for x, _ in tr.batches(4, epoch=3, seed=7, rank=1, world_size=2)]
    assert torch.equal(torch.cat([r0[0][:1], r1[0][:1]]), full[0][:2])


def test_masked_metrics_count_only_real_frames():
    rng = np.random.default_rng(3)
    a, b = (rng.uniform(-1, 1, (8, n)).astype(np.float32) for n in (5, 12))
    x, mask = batch_model_input([a, b], multiple=4)
    assert x.shape == (2, 1, 8, 12) and mask.sum().item() == 17
    x_hat = x + 0.1
    x_hat[..., 5:] = torch.where(mask.expand_as(x)[..., 5:], x_hat[..., 5:], 5.0)  # bad padding
    masked = reconstruction_loss(x_hat, x, mask)
    unpadded = torch.cat([((x_hat[0, 0, :, :5] - x[0, 0, :, :5]) ** 2).flatten(),
                          ((x_hat[1, 0] - x[1, 0]) ** 2).flatten()]).mean()
    assert masked == pytest.approx(float(unpadded), rel=1e-6)
    assert float(reconstruction_loss(x_hat, x)) > 10 * float(masked)
    codes = torch.arange(2 * 2 * 3).reshape(2, 2, 3)  # (B, H', W'), 4 frames per column
    assert sorted(real_codes(codes, mask, 4).tolist()) == [0, 1, 3, 4, 6, 7, 8, 9, 10, 11]


def test_splits_by_speaker_and_by_hash(corpus):
    cache, root = open_speech_cache(tiny_cfg(corpus))
    assert root == corpus
    assert select_ids(cache, "speakers:aaa") == [f"AAA/utt_{u}" for u in range(4)]
    with pytest.raises(DataError, match="unknown speaker"):
        select_ids(cache, "speakers:ZZZ")
    # no metadata: train/val/test by a hash of the id, disjoint and covering everything
    parts = []
    for split in ("train", "val", "test"):
        try:
            parts.append(set(select_ids(cache, split)))
        except DataError:  # a tiny corpus may leave a split empty
            parts.append(set())
    assert sum(map(len, parts)) == len(cache) == 12 and set().union(*parts) == set(cache.ids())
    assert len(parts[0]) >= 6


def test_read_only_audio_folder_caches_elsewhere(tmp_path):
    data = write_corpus(tmp_path / "ro")
    mode = data.stat().st_mode
    os.chmod(data, mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        cfg = tiny_cfg(data)
        where = auto_cache_dir(data, cfg)
        assert str(where).startswith(os.environ["VQKIT_DATA"])
        cache, _ = open_speech_cache(cfg)
        assert cache.root == where and len(cache) == 12
        assert not (data / ".vqkit-cache").exists()
    finally:
        os.chmod(data, mode)


# ---------------------------------------------------------------------------------------------
# Training, evaluation, reconstruction


def test_train_cli_from_audio_folder_and_from_cache(corpus, tmp_path, capsys):
    base = ["train", "speech", "--preset", "l2arctic", "--max-steps", "3", "--no-progress"]
    sets = [a for s in TINY + SPLITS for a in ("--set", s)]
    assert main([*base, "--data", str(corpus), "--out", str(tmp_path / "a"), *sets]) == 0
    assert (corpus / ".vqkit-cache").is_dir()  # automatic cache beside the audio
    assert (f"note: training split: 8 of 8 recordings are at {SR_IN} Hz and were resampled up "
            f"to 16000 Hz" in capsys.readouterr().err)
    cache = tmp_path / "cache"
    assert main(["cache", "--data", str(corpus), "--out", str(cache), "--workers", "1",
                 "--set", "audio.n_mels=32", "--no-progress"]) == 0
    assert main([*base, "--data", str(cache), "--out", str(tmp_path / "b"), *sets]) == 0
    for run in ("a", "b"):
        epochs = [json.loads(x) for x in (tmp_path / run / "metrics.jsonl").read_text()
                  .splitlines() if '"epoch"' in x and '"kind": "epoch"' in x]
        assert len(epochs) == 1 and np.isfinite(epochs[0]["val_recon"])
    a = load_file(tmp_path / "a" / "checkpoints" / "last" / "model.safetensors")
    b = load_file(tmp_path / "b" / "checkpoints" / "last" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)  # same mels, same run


def test_speech_resume_equals_uninterrupted(corpus, tmp_path):
    cfg = tiny_cfg(corpus, extra=["train.epochs=3", "quantizer.dead_code_threshold=2.0",
                                  "audio.crop_frames=8"])
    data = (load_speech_data(cfg, cfg.data.train_split, training=True),
            load_speech_data(cfg, cfg.data.val_split, training=False))
    full = train(cfg, tmp_path / "full", progress=False, data=data)
    cfg.train.max_steps = 3  # 2 steps per epoch: stops inside epoch 2
    part = train(cfg, tmp_path / "part", progress=False, data=data)
    assert part.stopped == "max_steps"
    resumed = train(None, tmp_path / "part", resume=True, progress=False, data=data)
    assert resumed.step == full.step == 6
    a = load_file(tmp_path / "full" / "checkpoints" / "last" / "model.safetensors")
    b = load_file(tmp_path / "part" / "checkpoints" / "last" / "model.safetensors")
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_evaluate_cli_reports_all_metrics_and_writes_figures(trained_run, corpus, tmp_path):
    out = tmp_path / "eval.json"
    assert main(["evaluate", str(trained_run), "--split", "speakers:CCC", "--json",
                 str(out)]) == 0
    m = json.loads(out.read_text())
    for key in ("mel_mse", "mel_l1_db", "perplexity", "codebook_usage", "stoi", "stoi_oracle",
                "n_utterances"):
        assert key in m and np.isfinite(m[key]), key
    assert m["n_utterances"] == 4 and m["stoi_utterances"] >= 2
    # two epochs of a tiny model: far below the vocoder's ceiling, which is itself high
    assert 0 <= m["stoi"] < m["stoi_oracle"] and 0.5 <= m["stoi_oracle"] <= 1.0
    assert 0 < m["codebook_usage"] <= 1 and m["mel_l1_db"] > 0
    for name in ("speech_reconstruction.png", "speech_loss.png"):
        assert (trained_run / name).stat().st_size > 5000


def test_reconstruct_writes_three_files_per_input(trained_run, corpus, tmp_path):
    ins = [corpus / "CCC" / "wav" / "utt_0.wav", corpus / "AAA" / "wav" / "utt_0.wav"]
    assert main(["reconstruct", str(trained_run), *map(str, ins), "--out",
                 str(tmp_path / "o")]) == 0
    names = sorted(p.name for p in (tmp_path / "o").iterdir())
    assert names == sorted(f"utt_0{s}.{k}" for s in ("", "-2")
                           for k in ("wav", "griffinlim.wav", "comparison.png"))
    n_in = sf.info(str(ins[0])).frames
    for name in ("utt_0.wav", "utt_0.griffinlim.wav"):
        info = sf.info(str(tmp_path / "o" / name))
        assert info.samplerate == 16000 and info.frames == n_in * 2  # resampled 8 -> 16 kHz


@pytest.mark.parametrize("bad", ["missing.wav", "notes.txt"])
def test_reconstruct_bad_input_is_one_line_exit_2(trained_run, tmp_path, capsys, bad):
    path = tmp_path / bad
    if bad.endswith(".txt"):
        path.write_text("not audio\n")
    code = main(["reconstruct", str(trained_run), str(path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and str(path) in err


def test_wav_pipeline_round_trip_with_json_info():
    """wav -> model input is the normalised mel of the wave (padding = silence), and model
    input -> wav (Griffin-Lim) gives back a wave whose mel is close to the original's."""
    from vqkit.audio.mel import mel_db_from_audio
    from vqkit.audio.normalize import normalize_mel_db

    cfg = get_preset("l2arctic")
    y = tone(0.7, 150, seed=1)
    y = soxr.resample(y, SR_IN, cfg.audio.sample_rate).astype(np.float32)
    x, info = wav_to_model_input(y, cfg)
    info = json.loads(json.dumps(info))  # as stored beside codes
    n = 1 + len(y) // 256
    assert info["n_frames"] == n and info["n_samples"] == len(y) and info["stats"] is None
    assert x.shape == (1, 1, 128, -(-n // 4) * 4)
    expected, _ = normalize_mel_db(mel_db_from_audio(y, cfg.audio), cfg.audio)
    assert np.allclose(x[0, 0, :, :n].numpy(), expected, atol=1e-6)
    assert (x[0, 0, :, n:] == -1).all()
    out = model_output_to_wav(x, cfg, info)
    assert out.shape == y.shape and out.dtype == np.float32
    loud = expected > -0.6  # bins within ~50 dB of the top: where the tone is
    back, _ = normalize_mel_db(mel_db_from_audio(out, cfg.audio), cfg.audio)
    err_db = np.abs(back - expected)[loud].mean() * (cfg.audio.max_db - cfg.audio.min_db) / 2
    assert err_db < 3.0, err_db
    seed = get_preset("l2arctic-seed")
    x, info = wav_to_model_input(y, seed)
    assert x.shape[-1] == 316 and len(info["stats"]) == 2


def test_stoi_groups_score_identical_signals_at_the_top_and_noise_lower():
    from vqkit.evaluation.speech import StoiGroups

    sr = 16000
    rng = np.random.default_rng(0)
    clips = [soxr.resample(tone(0.45, 120 + 30 * k, seed=k), SR_IN, sr).astype(np.float32)
             for k in range(5)]
    groups = StoiGroups(sr)
    for c in clips:
        noisy = c + 0.3 * rng.standard_normal(len(c)).astype(np.float32) * float(np.std(c))
        groups.add(c, noisy, c)  # reconstruction: noisy; "oracle": the clean clip itself
    groups.finish()
    # 0.45 s clips: a group closes at >= 1 s (3 clips); the last 2 clips (0.9 s) are scored on
    # finish only if pystoi finds enough frames in them
    assert groups.utterances in (3, 5) and len(groups.stoi) == len(groups.stoi_oracle) >= 1
    assert all(o > 0.99 for o in groups.stoi_oracle)
    assert all(0.2 < s < 0.95 for s in groups.stoi)


def test_evaluate_says_what_the_split_is_and_warns_about_trained_speakers(trained_run, corpus,
                                                                            capsys):
    """Held out (CCC): the definition and its speakers, the upsampling named, no overlap
    warning; a trained speaker (AAA): a warning; the hash split: every speaker mixed."""
    assert main(["evaluate", str(trained_run), "--split", "speakers:CCC"]) == 0
    out, err = capsys.readouterr()
    assert "every utterance of speaker(s) CCC" in out and "speakers: CCC (4)" in out
    assert f"at {SR_IN} Hz and were resampled up to 16000 Hz" in err
    assert "training split" not in err
    about = read_evaluation(trained_run / "eval" / "speakers-CCC").about
    assert about["speakers"] == {"CCC": 4} and about["sample_rates"] == {str(SR_IN): 4}

    assert main(["evaluate", str(trained_run), "--split", "speakers:AAA"]) == 0
    out, err = capsys.readouterr()
    assert "4 of 4 utterances of split 'speakers:AAA' are in the training split" in err
    assert "speaker(s) AAA of split 'speakers:AAA' were in the training split too" in err
    assert "Traceback" not in err


def test_the_hash_split_is_described_as_mixing_speakers(corpus):
    from vqkit.evaluation.about import about_speech

    about = about_speech(tiny_cfg(corpus), None, "train")
    assert about["definition"].startswith("80% of the utterances by a hash of their id")
    assert set(about["speakers"]) == set(SPEAKERS)


def test_every_metric_evaluate_writes_is_documented(trained_run):
    """`vqkit evaluate --help` explains each key of a speech evaluation's metrics."""
    from vqkit.evaluation.about import METRIC_HELP
    assert main(["evaluate", str(trained_run), "--split", "speakers:CCC"]) == 0
    metrics = read_evaluation(trained_run / "eval" / "speakers-CCC").metrics
    assert "search_steps" in metrics
    assert sorted(set(metrics) - set(METRIC_HELP)) == []
