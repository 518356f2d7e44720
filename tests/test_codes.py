"""Code files: format, fingerprints, rates, and encode -> decode == reconstruct."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from vqkit.checkpoint import checkpoint_dir, save_checkpoint
from vqkit.cli import main
from vqkit.codes import (
    code_dtype,
    decode_file,
    encode_files,
    load_codes,
    model_fingerprint,
    save_codes,
)
from vqkit.config import get_preset
from vqkit.data.image_files import model_output_to_pixels, pad_to_multiple, read_image
from vqkit.data.images import images_to_model_input
from vqkit.errors import DataError, VQKitError
from vqkit.models import build_model, load_model
from vqkit.rates import bitrate_bps, bits_per_code, bits_per_pixel, bits_per_second, frame_rate_hz
from vqkit.utils import unique_stems


def make_run(path, preset="cifar10", seed=0, **quantizer):
    """A run directory holding an untrained tiny model as its best checkpoint (no training:
    encode/decode only need weights)."""
    cfg = get_preset(preset)
    m = cfg.model
    m.hidden_channels, m.residual_channels, m.dim = 16, 8, 8
    cfg.quantizer.codebook_size = 32
    for k, v in quantizer.items():
        setattr(cfg.quantizer, k, v)
    torch.manual_seed(seed)
    model = build_model(cfg.model, cfg.quantizer).eval()
    for which in ("best", "last"):
        save_checkpoint(checkpoint_dir(path, which), model=model, config=cfg, state={},
                        meta={"step": 0, "epoch": 0})
    cfg.save(path / "config.json")
    return path


def smooth_image(h, w, seed, channels=3):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(-(-h // 8), -(-w // 8), channels))
    up = np.repeat(np.repeat(base, 8, axis=0), 8, axis=1)[:h, :w]
    return np.clip(up + rng.normal(0, 10, up.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def image_files(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    paths = []
    for name, (h, w), fmt in [("a.png", (32, 32), "PNG"), ("b.png", (16, 24), "PNG"),
                              ("c.jpg", (40, 64), "JPEG")]:
        Image.fromarray(smooth_image(h, w, len(paths))).save(d / name, format=fmt)
        paths.append(d / name)
    return paths


def reconstruct_png(run, path):
    """What reconstruction means for one image: the model's forward pass in eval, rounded to
    uint8 (the same conversions as `vqkit reconstruct`)."""
    model, cfg = load_model(run)
    img = read_image(path, cfg.model.in_channels)
    x = images_to_model_input(pad_to_multiple(img, model.downsampling)[None])
    with torch.no_grad():
        x_hat, _ = model(x)
    h, w = img.shape[1:]
    return model_output_to_pixels(x_hat[0])[:h, :w]


def test_encode_decode_images_equals_reconstruction(tmp_path, image_files, capsys):
    run = make_run(tmp_path / "run")
    out = tmp_path / "codes.npz"
    assert main(["encode", str(run), *map(str, image_files), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    # 32 codes -> 5 bits per position, downsampling 4: 5 / 16 bits per pixel for every image
    assert "0.3125 bits/pixel" in printed and "uint8" in printed
    cf = load_codes(out)
    assert cf.names == ["a", "b", "c"]
    assert [c.shape for c in cf.codes] == [(8, 8), (4, 6), (10, 16)]
    assert all(c.dtype == np.uint8 for c in cf.codes)
    assert cf.rate() == pytest.approx(5 / 16)
    assert main(["decode", str(run), str(out), "--out", str(tmp_path / "dec")]) == 0
    for p in image_files:
        decoded = np.asarray(Image.open(tmp_path / "dec" / f"{p.stem}.png"))
        assert np.array_equal(decoded, reconstruct_png(run, p)), p.name
    # the codes themselves are the model's
    model, _ = load_model(run)
    x = images_to_model_input(read_image(image_files[0])[None])
    assert np.array_equal(cf.codes[0], model.encode(x)[0].numpy())


def reconstructed(folder, stem, suffix):
    """The reconstruction `vqkit reconstruct` wrote for ``stem`` (``<stem><suffix>``)."""
    for name in (f"{stem}{suffix}", f"{stem}.reconstruction{suffix}"):
        if (folder / name).is_file():
            return folder / name
    raise AssertionError(f"no reconstruction of {stem} in {sorted(folder.iterdir())}")


def test_decode_matches_vqkit_reconstruct_on_images(tmp_path, image_files):
    run = make_run(tmp_path / "run")
    odd = tmp_path / "in" / "odd.png"  # not a multiple of 4: padded for the model, cropped back
    Image.fromarray(smooth_image(30, 21, 5)).save(odd)
    inputs = [*map(str, image_files), str(odd)]
    assert main(["encode", str(run), *inputs, "--out", str(tmp_path / "c.npz")]) == 0
    assert main(["decode", str(run), str(tmp_path / "c.npz"), "--out", str(tmp_path / "dec")]) == 0
    assert main(["reconstruct", str(run), *inputs, "--out", str(tmp_path / "rec")]) == 0
    for p in [*image_files, odd]:
        a = np.asarray(Image.open(tmp_path / "dec" / f"{p.stem}.png"))
        b = np.asarray(Image.open(reconstructed(tmp_path / "rec", p.stem, ".png")))
        assert a.shape == b.shape and np.array_equal(a, b), p.name
    assert load_codes(tmp_path / "c.npz").codes[-1].shape == (8, 6)


def test_residual_codes_keep_their_stage_axis(tmp_path, image_files):
    run = make_run(tmp_path / "run", kind="rvq", num_quantizers=3, codebook_size=300)
    cf = encode_files(run, image_files[:1], out=tmp_path / "c.npz")
    assert cf.codes[0].shape == (8, 8, 3) and cf.codes[0].dtype == np.uint16
    assert cf.rate() == pytest.approx(64 * 3 * math.log2(300) / 1024)
    paths = decode_file(run, tmp_path / "c.npz", tmp_path / "dec")
    assert np.array_equal(np.asarray(Image.open(paths[0])),
                          reconstruct_png(run, image_files[0]))


def test_a_mismatched_model_is_refused(tmp_path, image_files, capsys):
    run = make_run(tmp_path / "run")
    other = make_run(tmp_path / "other", seed=1)
    encode_files(run, image_files[:1], out=tmp_path / "c.npz")
    assert main(["decode", str(other), str(tmp_path / "c.npz"), "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "c.npz" in err and "made by model" in err
    assert not (tmp_path / "d" / "a.png").exists()


def test_fingerprint_tracks_weights_and_config(tmp_path):
    run = make_run(tmp_path / "run")
    model, cfg = load_model(run)
    fp = model_fingerprint(model, cfg)
    assert fp == model_fingerprint(*load_model(run)) and len(fp) == 64
    cfg.train.lr = 123.0  # training settings do not change what codes mean
    assert model_fingerprint(model, cfg) == fp
    cfg.quantizer.commitment_weight = 0.5
    assert model_fingerprint(model, cfg) != fp
    cfg.quantizer.commitment_weight = 0.25
    with torch.no_grad():
        model.quantizer.embed[0, 0] += 1e-6
    assert model_fingerprint(model, cfg) != fp


def test_input_errors_name_the_file(tmp_path, image_files):
    run = make_run(tmp_path / "run")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a png")
    with pytest.raises(DataError, match="junk.png"):
        encode_files(run, [junk])
    with pytest.raises(DataError, match=r"x\.wav"):
        encode_files(run, [tmp_path / "x.wav"])
    with pytest.raises(DataError, match="missing.png"):
        encode_files(run, [tmp_path / "missing.png"])


def test_corrupt_code_files_are_clear_errors(tmp_path, image_files):
    run = make_run(tmp_path / "run")
    good = tmp_path / "c.npz"
    encode_files(run, image_files, out=good)
    data = good.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="trunc.npz"):
        load_codes(tmp_path / "trunc.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(DataError, match="other.npz.*not a vqkit code file"):
        load_codes(tmp_path / "other.npz")
    with np.load(good) as z:
        parts = dict(z)
    parts["codes"] = parts["codes"][:-1]
    np.savez(tmp_path / "short.npz", **parts)
    with pytest.raises(DataError, match="short.npz"):
        load_codes(tmp_path / "short.npz")
    meta = json.loads(str(parts["meta"]))
    meta["format_version"] = 99
    with pytest.raises(DataError, match="missing.npz"):
        load_codes(tmp_path / "missing.npz")
    np.savez(tmp_path / "v99.npz", **{**parts, "meta": np.array(json.dumps(meta))})
    with pytest.raises(VQKitError, match="v99.npz.*format 99"):
        decode_file(run, tmp_path / "v99.npz", tmp_path / "dec")


@settings(max_examples=25, deadline=None)
@given(size=st.integers(2, 70000), n=st.integers(1, 4), k=st.integers(0, 3), seed=st.integers(0, 9))
def test_save_load_roundtrip(tmp_path_factory, size, n, k, seed):
    rng = np.random.default_rng(seed)
    shapes = [tuple(rng.integers(1, 5, size=2)) + ((k,) if k else ()) for _ in range(n)]
    codes = [rng.integers(0, size, size=s) for s in shapes]
    path = tmp_path_factory.mktemp("c") / "codes.npz"
    items = [{"height": 4, "width": 4} for _ in codes]
    save_codes(path, codes, [f"i{j}" for j in range(n)], "f" * 64,
               {"task": "image", "codebook_size": size, "num_quantizers": max(1, k),
                "bits_per_code": max(1, k) * math.log2(size), "items": items})
    cf = load_codes(path)
    assert cf.fingerprint == "f" * 64 and cf.names == [f"i{j}" for j in range(n)]
    for a, b in zip(codes, cf.codes, strict=True):
        assert b.dtype == code_dtype(size) and np.array_equal(a, b)
    assert code_dtype(size).itemsize == (1 if size <= 256 else 2 if size <= 65536 else 4)


def test_rates():
    # cifar10 preset: 8x8 codes of 512 entries for a 32x32 image
    assert bits_per_pixel(64, 9, 32 * 32) == pytest.approx(0.5625)
    # l2arctic preset: 128 mels / 4 x (16000 / 256 / 4) frames per second, 9 bits each
    assert bits_per_second(32 * 15.625, 9, 1.0) == pytest.approx(4500)
    assert bits_per_code(512) == 9.0 and bits_per_code(512, 2) == 18.0
    assert frame_rate_hz(get_preset("l2arctic")) == 62.5
    # the thesis (l2arctic-seed): one stage of 512 codes, 4500 bit/s; the default: two stages
    for preset, bps in (("l2arctic-seed", 4500.0), ("l2arctic", 9000.0)):
        cfg = get_preset(preset)
        q = build_model(cfg.model, cfg.quantizer).quantizer
        assert q.bits_per_code == bits_per_code(cfg.quantizer.codebook_size,
                                                cfg.quantizer.num_quantizers)
        assert bitrate_bps(cfg, downsampling=4, bits_per_code=q.bits_per_code) == bps
        assert bitrate_bps(cfg.audio, downsampling=4, bits_per_code=q.bits_per_code) == bps


def test_unique_stems():
    assert unique_stems(["a/x.png", "b/x.png", "x.wav", "y.jpg", "c/y"]) == [
        "x", "x-2", "x-3", "y", "y-2"]
    assert unique_stems([]) == []


def test_encode_and_reconstruct_refuse_a_bad_image_with_one_message(tmp_path, capsys):
    run = make_run(tmp_path / "run")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a png")
    assert main(["encode", str(run), str(junk), "--out", str(tmp_path / "c.npz")]) == 2
    encode_err = capsys.readouterr().err
    assert main(["reconstruct", str(run), str(junk), "--out", str(tmp_path / "rec")]) == 2
    reconstruct_err = capsys.readouterr().err
    for err in (encode_err, reconstruct_err):
        assert err.count("\n") == 1 and f"{junk}: not a readable image (" in err
    assert encode_err.split(": error: ")[1] == reconstruct_err.split(": error: ")[1]
    with pytest.raises(DataError, match=r"missing\.png: no such file"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(DataError, match="takes 2 channels"):
        read_image(junk, channels=2)


# ---------------------------------------------------------------------------------------------
# Speech


def write_tone(path, seconds, sample_rate, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = 150 + 100 * seed
    y = 0.3 * np.sin(2 * np.pi * (f0 * t + 200 * t**2)) + 0.01 * rng.normal(size=t.shape)
    y = np.stack([y, 0.5 * y], axis=1) if channels == 2 else y
    sf.write(path, y.astype(np.float32), sample_rate)
    return path


@pytest.fixture
def wav_files(tmp_path):
    d = tmp_path / "wavs"
    d.mkdir()
    return [write_tone(d / "one.wav", 0.7, 16000, seed=0),
            write_tone(d / "two.wav", 1.3, 22050, channels=2, seed=1),
            write_tone(d / "three.flac", 0.45, 8000, seed=2)]


@pytest.mark.parametrize("preset", ["l2arctic", "l2arctic-seed"])
def test_encode_decode_audio_equals_reconstruct(tmp_path, wav_files, preset, capsys):
    run = make_run(tmp_path / "run", preset)
    inputs = list(map(str, wav_files))
    assert main(["encode", str(run), *inputs, "--out", str(tmp_path / "c.npz")]) == 0
    printed = capsys.readouterr().out
    assert "bits/s" in printed and "uint8" in printed
    cf = load_codes(tmp_path / "c.npz")
    sr = 16000
    for code, item, seconds in zip(cf.codes, cf.meta["items"], (0.7, 1.3, 0.45), strict=True):
        frames = 1 + int(seconds * sr) // 256
        if preset == "l2arctic":  # whole utterance, padded to a multiple of 4 frames; 2 stages
            assert code.shape == (32, -(-frames // 4), 2)
        else:  # the thesis: every utterance padded to a 5 s clip, one stage
            assert code.shape == (32, -(-(1 + 5 * sr // 256) // 4))
        assert item["duration_s"] == pytest.approx(seconds, abs=1e-3)
    # 128 / 4 mel rows x 62.5 / 4 columns per second x 5 bits x 2 stages = 5000 bits/s, plus
    # padding
    if preset == "l2arctic":
        assert 5000 <= cf.rate() < 5000 * 1.15
        assert cf.meta["nominal_bps"] == pytest.approx(5000)
    assert main(["decode", str(run), str(tmp_path / "c.npz"), "--out", str(tmp_path / "dec")]) == 0
    assert main(["reconstruct", str(run), *inputs, "--out", str(tmp_path / "rec")]) == 0
    for p in wav_files:
        a, sr_a = sf.read(tmp_path / "dec" / f"{p.stem}.wav", dtype="float32")
        b, sr_b = sf.read(reconstructed(tmp_path / "rec", p.stem, ".wav"), dtype="float32")
        assert sr_a == sr_b == sr and a.shape == b.shape and np.array_equal(a, b), p.name


def test_speech_codes_refuse_images(tmp_path, image_files):
    run = make_run(tmp_path / "run", "l2arctic")
    with pytest.raises(DataError, match=r"a\.png: a speech run encodes"):
        encode_files(run, image_files[:1])
