"""The temporal speech model (l2arctic-codec), residual stages as bit rates, PESQ and STOI.

Synthetic audio only (the corpus of test_speech_training); tiny models.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_speech_training import tiny_cfg, tone, write_corpus

from vqkit.cli import main
from vqkit.codes.format import load_codes
from vqkit.config import AudioConfig, ModelConfig, QuantizerConfig, RunConfig, get_preset
from vqkit.errors import ConfigError, VQKitError
from vqkit.evaluation.speech_scores import PESQ_MAX, pesq_wb, stoi_score
from vqkit.models import TemporalVQVAE, load_model, model_for
from vqkit.quantizers import ResidualVectorQuantizer
from vqkit.rates import bitrate_bps, code_rows
from vqkit.training.train import train

CODEC_TINY = ["model.hidden_channels=16", "model.residual_channels=8", "model.dim=8",
              "model.num_residual_layers=1", "quantizer.num_quantizers=3",
              "quantizer.codebook_size=16", "quantizer.dead_code_threshold=0"]


def tiny_model(n_mels: int = 8, stages: int = 3, downsamples: int = 2) -> TemporalVQVAE:
    m = ModelConfig(kind="temporal", hidden_channels=8, residual_channels=4, dim=4,
                    num_residual_layers=1, num_downsamples=downsamples)
    q = QuantizerConfig(kind="rvq", num_quantizers=stages, codebook_size=8,
                        quantizer_dropout=1.0)
    return model_for(RunConfig(task="speech", model=m, quantizer=q,
                               audio=AudioConfig(n_mels=n_mels)))


# ---------------------------------------------------------------------------------------------
# Shapes and rates


@settings(max_examples=15, deadline=None)
@given(frames=st.integers(1, 41), downsamples=st.integers(1, 3), four=st.booleans())
def test_any_length_comes_back_with_the_same_frames(frames, downsamples, four):
    torch.manual_seed(0)
    model = tiny_model(downsamples=downsamples).eval()
    x = torch.randn(2, 1, 8, frames) if four else torch.randn(2, 8, frames)
    y, out = model(x)
    assert y.shape == x.shape  # no frame lost or invented
    steps = math.ceil(frames / 2 ** downsamples)
    assert out.codes.shape == ((2, 1, steps, 3) if four else (2, steps, 3))
    codes = model.encode(x)
    assert torch.equal(codes, out.codes)
    assert torch.equal(model.decode(codes, frames), y)


def test_wrong_inputs_are_refused():
    model = tiny_model()
    for bad in (torch.randn(2, 9, 12), torch.randn(2, 2, 8, 12), torch.randn(8, 12)):
        with pytest.raises(ValueError, match="expected input"):
            model(bad)


def test_temporal_models_code_speech_only():
    cfg = RunConfig(task="image")
    cfg.model.kind = "temporal"
    with pytest.raises(ConfigError, match="model.kind 'temporal'.*task 'speech'"):
        cfg.validate()
    with pytest.raises(ConfigError, match="model.kind"):
        RunConfig.from_dict({"task": "speech", "model": {"kind": "1d"}})


def test_codec_rate_arithmetic():
    cfg = get_preset("l2arctic-codec")
    assert cfg.model.kind == "temporal" and code_rows(cfg, 4) == 1
    per_stage = bitrate_bps(cfg, downsampling=4, bits_per_code=8)
    assert per_stage == 16000 / 256 / 4 * 8 == 125
    assert bitrate_bps(cfg, downsampling=4, bits_per_code=18 * 8) == 2250
    # the 2-D default keeps its rate: 32 rows x 15.625 columns x 2 x 9 bits
    assert bitrate_bps(get_preset("l2arctic"), downsampling=4, bits_per_code=18) == 9000
    # the 2-D low-rate preset: the same grid, one stage of 16 codes (4 bits)
    low = get_preset("l2arctic-2kbps")
    lq = model_for(low).quantizer
    assert low.model.kind == "conv2d" and code_rows(low, 4) == 32 and lq.bits_per_code == 4
    assert bitrate_bps(low, downsampling=4, bits_per_code=lq.bits_per_code) == 2000
    model = model_for(cfg)
    q = model.quantizer
    assert q.bits_per_code == 144 and model.downsampling == 4
    q.use_stages(8)
    assert q.bits_per_code == 64
    assert bitrate_bps(cfg, downsampling=4, bits_per_code=q.bits_per_code) == 1000
    with pytest.raises(ValueError, match="stages"):
        q.use_stages(19)


# ---------------------------------------------------------------------------------------------
# Quantizer dropout


def test_quantizer_dropout_trains_every_prefix():
    """Seeded: the same draws twice; over a few batches every prefix 1..N is drawn, and each
    stage's codebook gets gradients exactly in the batches that use it."""
    def draws(seed: int) -> tuple[list[int], list[list[bool]]]:
        torch.manual_seed(seed)
        rvq = ResidualVectorQuantizer(4, 8, num_quantizers=4, quantizer_dropout=1.0).train()
        ns, grads = [], []
        for _ in range(40):
            rvq.zero_grad()
            out = rvq(torch.randn(3, 4, 5, requires_grad=True))
            out.loss.backward()
            ns.append(out.codes.shape[-1])
            grads.append([s.embed.grad is not None and bool(s.embed.grad.abs().sum() > 0)
                          for s in rvq.stages])
        return ns, grads

    ns, grads = draws(0)
    assert draws(0)[0] == ns and set(ns) == {1, 2, 3, 4}
    for n, g in zip(ns, grads, strict=True):
        assert g == [i < n for i in range(4)]
    rvq = ResidualVectorQuantizer(4, 8, num_quantizers=4, quantizer_dropout=1.0).eval()
    rvq.use_stages(2)
    assert rvq(torch.randn(3, 4, 5)).codes.shape[-1] == 2  # eval: the stages asked for


# ---------------------------------------------------------------------------------------------
# PESQ and STOI


def _speechlike(seconds: float = 2.0, sr: int = 16000) -> np.ndarray:
    import soxr

    y = np.concatenate([tone(0.5, 110 + 40 * k, seed=k) for k in range(int(seconds * 2))])
    return soxr.resample(y, 8000, sr).astype(np.float32)


def test_scores_of_identical_signals_are_the_maxima_and_noise_lowers_them():
    pytest.importorskip("pesq")
    clean = _speechlike()
    noisy = clean + 0.2 * np.std(clean) * np.random.default_rng(0).standard_normal(
        len(clean)).astype(np.float32)
    noisier = clean + np.std(clean) * np.random.default_rng(1).standard_normal(
        len(clean)).astype(np.float32)
    assert pesq_wb(clean, clean) == pytest.approx(PESQ_MAX, abs=0.01)
    assert stoi_score(clean, clean, 16000) == pytest.approx(1.0, abs=1e-6)
    p1, p2 = pesq_wb(clean, noisy), pesq_wb(clean, noisier)
    s1, s2 = stoi_score(clean, noisy, 16000), stoi_score(clean, noisier, 16000)
    assert PESQ_MAX - 0.3 > p1 > p2 >= 1.0 and 1.0 > s1 > s2 > 0.0
    assert math.isnan(pesq_wb(clean, clean, 8000))  # wideband PESQ is 16 kHz only
    assert stoi_score(clean[:1600], clean[:1600], 16000) is None  # too short for STOI


# ---------------------------------------------------------------------------------------------
# End to end: train, evaluate the curve, encode -> decode == reconstruct at each rate


@pytest.fixture(scope="module")
def codec_run(tmp_path_factory) -> tuple[Path, Path]:
    corpus = write_corpus(tmp_path_factory.mktemp("codec") / "corpus")
    run = tmp_path_factory.mktemp("run") / "codec"
    cfg = tiny_cfg(corpus, "l2arctic-codec", CODEC_TINY + ["train.epochs=2"])
    train(cfg, run, progress=False)
    return corpus, run


def test_encode_decode_equals_reconstruct_at_each_stage_count(codec_run, tmp_path, capsys):
    corpus, run = codec_run
    wav = corpus / "CCC" / "wav" / "utt_3.wav"
    for n in (1, 2, 3):
        codes = tmp_path / f"c{n}.npz"
        assert main(["encode", str(run), str(wav), "--stages", str(n), "--out", str(codes)]) == 0
        out = capsys.readouterr().out
        assert main(["decode", str(run), str(codes), "--out", str(tmp_path / f"d{n}")]) == 0
        assert main(["reconstruct", str(run), str(wav), "--stages", str(n),
                     "--out", str(tmp_path / f"r{n}")]) == 0
        capsys.readouterr()
        a, _ = sf.read(tmp_path / f"d{n}" / "utt_3.wav")
        b, _ = sf.read(tmp_path / f"r{n}" / "utt_3.wav")
        assert np.array_equal(a, b)
        cf = load_codes(codes)
        assert cf.meta["stages"] == n and cf.codes[0].shape[-1] == n
        assert cf.bits_per_code == 4 * n  # 16 codes = 4 bits per stage
        # printed rate == the bits of the codes stored over the file's seconds
        stored = cf.codes[0].size * 4 / cf.meta["items"][0]["duration_s"]
        assert f"rate {stored:.4g} bits/s" in out and cf.rate() == pytest.approx(stored)
    # decoding the first stages of a 3-stage file == reconstructing at that many
    assert main(["decode", str(run), str(tmp_path / "c3.npz"), "--stages", "1",
                 "--out", str(tmp_path / "d31")]) == 0
    a, _ = sf.read(tmp_path / "d31" / "utt_3.wav")
    b, _ = sf.read(tmp_path / "r1" / "utt_3.wav")
    assert np.array_equal(a, b)
    assert main(["decode", str(run), str(tmp_path / "c2.npz"), "--stages", "3",
                 "--out", str(tmp_path / "x")]) == 2
    assert "stores 2 stage(s)" in capsys.readouterr().err


def test_a_one_stage_residual_model_decodes_its_own_code_files(tmp_path, capsys):
    """l2arctic-2kbps: a 2-D model whose RVQ has one stage keeps a stage axis of 1 in its
    codes; decode takes them back (it used to refuse the shape) and equals reconstruct."""
    corpus = write_corpus(tmp_path / "corpus")
    run = tmp_path / "run"
    train(tiny_cfg(corpus, "l2arctic-2kbps", ["train.epochs=1"]), run, progress=False)
    wav = corpus / "CCC" / "wav" / "utt_3.wav"
    assert main(["encode", str(run), str(wav), "--out", str(tmp_path / "c.npz")]) == 0
    cf = load_codes(tmp_path / "c.npz")
    assert cf.codes[0].shape[-1] == 1 and cf.bits_per_code == 4
    assert main(["decode", str(run), str(tmp_path / "c.npz"), "--out", str(tmp_path / "d")]) == 0
    assert main(["reconstruct", str(run), str(wav), "--out", str(tmp_path / "r")]) == 0
    capsys.readouterr()
    a, _ = sf.read(tmp_path / "d" / "utt_3.wav")
    b, _ = sf.read(tmp_path / "r" / "utt_3.wav")
    assert np.array_equal(a, b)


def test_evaluate_prints_and_saves_the_rate_quality_curve(codec_run, capsys):
    _, run = codec_run
    assert main(["evaluate", str(run), "--split", "speakers:CCC", "--curve"]) == 0
    out = capsys.readouterr().out
    assert "rate-quality curve" in out and "Griffin-Lim oracle: STOI" in out
    saved = json.loads((run / "eval" / "speakers-CCC" / "metrics.json").read_text())
    rows = saved["metrics"]["rate_curve"]
    assert [r["stages"] for r in rows] == [1, 2, 3]
    assert [r["bitrate_bps"] for r in rows] == [
        pytest.approx(62.5 / 4 * 4 * n) for n in (1, 2, 3)]
    assert all(len(r["usage_per_stage"]) == r["stages"] for r in rows)
    assert len({r["stoi_oracle"] for r in rows}) == 1  # one oracle for the whole curve
    assert saved["metrics"]["stages"] == 3
    assert main(["report", str(run)]) == 0  # the report plots STOI and PESQ against kbps
    assert "STOI and PESQ against kbps" in (run / "report.html").read_text()
    assert main(["evaluate", str(run), "--split", "speakers:CCC", "--stages", "9"]) == 2
    assert "--stages must be in [1, 3]" in capsys.readouterr().err


def test_stages_on_a_model_without_residual_stages_is_one_line(codec_run, tmp_path, capsys):
    corpus, _ = codec_run
    run = tmp_path / "vq"
    train(tiny_cfg(corpus, "l2arctic-codec", CODEC_TINY + [
        "quantizer.kind=vq", "train.max_steps=1"]), run, progress=False)
    assert load_model(run)[0].quantizer.num_quantizers == 1
    with pytest.raises(VQKitError, match="residual VQ"):
        load_model(run, stages=1)
