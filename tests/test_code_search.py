"""Encoder-side code search (vqkit.models.search) and its STOI stand-in
(vqkit.audio.intelligibility): never worse than plain encoding, same code format, and
``encode`` -> ``decode`` still equals ``reconstruct``."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_codes import make_run, reconstructed, wav_files  # noqa: F401 (fixture)

from vqkit.audio.intelligibility import MelStoi, stoi_bands
from vqkit.cli import main
from vqkit.codes.format import load_codes
from vqkit.config import AudioConfig, ModelConfig, QuantizerConfig, RunConfig, get_preset
from vqkit.errors import ConfigError
from vqkit.models import load_model
from vqkit.models.search import CodeSearch, search_for, search_objective
from vqkit.models.vqvae import build_model

AUDIO = AudioConfig()  # 16 kHz, 128 mels, hop 256: 24 frames per STOI segment


def speech_db(seed: int, frames: int) -> torch.Tensor:
    """(1, 128, frames) dB: a random low-rank envelope over time, 30-70 dB of range."""
    g = torch.Generator().manual_seed(seed)
    spec = torch.rand(128, 3, generator=g) @ torch.rand(3, frames, generator=g)
    return (-80 + 60 * spec / spec.max())[None]


# ---------------------------------------------------------------------------------------------
# The STOI stand-in


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), frames=st.integers(30, 120),
       gain=st.floats(-20, 20))
def test_mel_stoi_is_one_for_identical_spectra_and_ignores_gain(seed, frames, gain):
    db = speech_db(seed, frames)
    stoi = MelStoi(AUDIO)
    assert stoi(db, db).item() == pytest.approx(1.0, abs=1e-3)
    assert stoi(db + gain, db).item() == pytest.approx(1.0, abs=1e-3)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), noise_db=st.floats(3, 20))
def test_mel_stoi_falls_with_noise_and_more_noise_lowers_it_more(seed, noise_db):
    db = speech_db(seed, 60)
    noise = torch.randn(db.shape, generator=torch.Generator().manual_seed(seed))
    stoi = MelStoi(AUDIO)
    some, more = stoi(db + noise_db * noise, db).item(), stoi(db + 2 * noise_db * noise, db).item()
    assert some < 0.99 and more < some


def test_mel_stoi_scores_each_item_alone_and_has_a_gradient():
    db = torch.cat([speech_db(0, 50), speech_db(1, 50)])
    hat = (db + torch.randn(db.shape)).requires_grad_(True)
    stoi = MelStoi(AUDIO)
    both = stoi(hat, db)
    assert both.shape == (2,)
    assert both[1].item() == pytest.approx(stoi(hat[1:], db[1:]).item(), abs=1e-6)
    both.sum().backward()
    assert hat.grad is not None and hat.grad.abs().sum() > 0


def test_mel_stoi_of_silence_or_one_frame_is_zero_and_bad_shapes_are_refused():
    stoi = MelStoi(AUDIO)
    assert stoi(speech_db(0, 1), speech_db(0, 1)).item() == 0
    with pytest.raises(ValueError, match="two"):
        stoi(speech_db(0, 10), speech_db(0, 11))


def test_stoi_bands_cover_150_hz_to_4_khz_and_refuse_mels_outside_them():
    bands = stoi_bands(AUDIO)
    assert bands.shape == (15, 128) and (bands.sum(1) >= 1).all()
    assert bands.sum(0).max() == 1  # a bin lies in one band at most
    assert stoi_bands(AudioConfig(sample_rate=8000)).shape[0] == 15
    with pytest.raises(ConfigError, match="miss every STOI band"):
        stoi_bands(AudioConfig(fmin=5000.0))


# ---------------------------------------------------------------------------------------------
# The search


def tiny_image_model(seed: int = 0):
    torch.manual_seed(seed)
    m = ModelConfig(hidden_channels=16, residual_channels=8, dim=8, num_residual_layers=1)
    return build_model(m, QuantizerConfig(codebook_size=16)).eval()


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 1000), steps=st.integers(1, 12), lr=st.floats(0.005, 0.5))
def test_search_is_never_worse_than_the_nearest_codes_and_leaves_weights_alone(seed, steps, lr):
    model = tiny_image_model(seed)
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    objective = search_objective(RunConfig(task="image"))
    with torch.no_grad():
        plain = objective(model(x)[0], x)
    model.search = CodeSearch(steps, lr, objective)
    with torch.no_grad():
        x_hat, out = model(x)
    assert (objective(x_hat, x) <= plain + 1e-7).all()
    assert all(p.grad is None for p in model.parameters()) and not model.training
    assert torch.equal(model.encode(x), out.codes)  # encode and forward search alike
    model.train()  # training never searches
    assert torch.equal(model(x)[1].codes, build_plain_codes(model, x))


def build_plain_codes(model, x):
    return model.quantizer.encode(model.encoder(x))


def test_search_finds_better_codes_on_an_input_the_encoder_gets_wrong():
    model = tiny_image_model(1)
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(3)) * 2 - 1
    objective = search_objective(RunConfig(task="image"))
    with torch.no_grad():
        plain_codes, plain = model.encode(x), objective(model(x)[0], x)
        model.search = CodeSearch(30, 0.05, objective)
        searched = objective(model(x)[0], x)
    assert (searched < plain).all()
    assert not torch.equal(model.encode(x), plain_codes)


def test_search_config_and_its_one_line_errors():
    cfg = get_preset("l2arctic-2kbps")
    assert search_for(cfg).steps == cfg.search.steps > 0 and cfg.search.stoi_weight > 0
    assert search_for(cfg, 0) is None
    with pytest.raises(ConfigError, match="search-steps must be >= 0"):
        search_for(cfg, -1)
    image = get_preset("cifar10")
    assert image.search.steps == 0 and search_for(image) is None
    image.search.stoi_weight = 0.1
    with pytest.raises(ConfigError, match="stoi_weight scores speech"):
        image.validate()


# ---------------------------------------------------------------------------------------------
# Through the CLI: same code format, encode -> decode == reconstruct


def test_searched_codes_decode_to_the_searched_reconstruction(tmp_path, wav_files, capsys):  # noqa: F811
    run = make_run(tmp_path / "run", "l2arctic-2kbps")
    inputs = list(map(str, wav_files))
    for steps in (0, 6):
        flags = ["--search-steps", str(steps)]
        codes = tmp_path / f"c{steps}.npz"
        assert main(["encode", str(run), *inputs, "--out", str(codes), *flags]) == 0
        assert main(["decode", str(run), str(codes), "--out", str(tmp_path / f"d{steps}")]) == 0
        assert main(["reconstruct", str(run), *inputs, "--out", str(tmp_path / f"r{steps}"),
                     *flags]) == 0
        capsys.readouterr()
        assert load_codes(codes).meta["search_steps"] == steps
        for p in wav_files:
            a, _ = sf.read(tmp_path / f"d{steps}" / f"{p.stem}.wav", dtype="float32")
            b, _ = sf.read(reconstructed(tmp_path / f"r{steps}", p.stem, ".wav"),
                           dtype="float32")
            assert np.array_equal(a, b), (steps, p.name)
    plain, searched = load_codes(tmp_path / "c0.npz"), load_codes(tmp_path / "c6.npz")
    assert plain.rate() == searched.rate()  # same bits
    assert any(not np.array_equal(a, b) for a, b in zip(plain.codes, searched.codes, strict=True))
    # the preset's own search is what load_model attaches by default
    model, cfg = load_model(run)
    assert model.search is not None and model.search.steps == cfg.search.steps
    assert main(["encode", str(run), inputs[0], "--out", str(tmp_path / "x.npz"),
                 "--search-steps", "-1"]) == 2
    assert "search-steps must be >= 0" in capsys.readouterr().err


def test_scalable_preset_searches_each_rate_and_decodes_it_exactly(tmp_path, wav_files,  # noqa: F811
                                                                  capsys):
    """l2arctic-scalable: one 2-D model, N residual stages of tiny codebooks; at each stage count
    the searched codes decode to the searched reconstruction at that count, and the code file's
    rate is N x the per-stage rate."""
    cfg = get_preset("l2arctic-scalable")
    q = cfg.quantizer
    assert cfg.model.kind == "conv2d" and q.quantizer_dropout > 0 and cfg.search.steps > 0
    stages = q.num_quantizers
    run = make_run(tmp_path / "run", "l2arctic-scalable", codebook_size=q.codebook_size)
    inputs = list(map(str, wav_files))
    per_stage = 32 * (16000 / 256 / 4) * np.log2(q.codebook_size)  # rows x columns/s x bits
    for n in sorted({1, 2, stages}):
        flags = ["--stages", str(n), "--search-steps", "4"]
        codes = tmp_path / f"c{n}.npz"
        assert main(["encode", str(run), *inputs, "--out", str(codes), *flags]) == 0
        of = f" of {stages}" if n != stages else ""
        assert f"bits per code ({n}{of} stages x {q.codebook_size} codes" in capsys.readouterr().out
        assert main(["decode", str(run), str(codes), "--out", str(tmp_path / f"d{n}")]) == 0
        assert main(["reconstruct", str(run), *inputs, "--out", str(tmp_path / f"r{n}"),
                     *flags]) == 0
        capsys.readouterr()
        cf = load_codes(codes)
        assert cf.codes[0].shape[-1] == n and cf.bits_per_code == n * np.log2(q.codebook_size)
        assert cf.meta["nominal_bps"] == pytest.approx(n * per_stage)
        for p in wav_files:
            a, _ = sf.read(tmp_path / f"d{n}" / f"{p.stem}.wav", dtype="float32")
            b, _ = sf.read(reconstructed(tmp_path / f"r{n}", p.stem, ".wav"), dtype="float32")
            assert np.array_equal(a, b), (n, p.name)
