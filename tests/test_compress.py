"""Compressed files: the range coder on random sequences, compress -> decompress == reconstruct,
in another process, and refusals (mismatched model, truncated file) as one line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from test_codes import make_run, write_tone

from vqkit.cli import main
from vqkit.codes.compress import decode_tokens, encode_tokens, read_compressed
from vqkit.config.schema import PriorConfig
from vqkit.errors import DataError
from vqkit.models.prior import CodePrior


def prior_for(vocab: int, grid=(2, 2), stages: int = 1, seed: int = 0) -> CodePrior:
    torch.manual_seed(seed)
    return CodePrior(PriorConfig(dim=16, layers=1, heads=2, dropout=0.0, codebook_size=vocab,
                                 num_quantizers=stages, grid=list(grid))).eval()


@given(st.integers(2, 600), st.integers(1, 2), st.lists(st.integers(0, 40), max_size=4),
       st.integers(0, 2**31 - 1))
def test_unigram_coder_round_trips_random_sequences(vocab, stages, lengths, seed):
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(0, vocab, n) for n in lengths]
    words = encode_tokens(seqs, vocab=vocab, stages=stages)
    back = decode_tokens(words, lengths, vocab=vocab, stages=stages)
    assert all(np.array_equal(a, b) for a, b in zip(seqs, back, strict=True))


@given(st.integers(2, 300), st.integers(1, 2), st.integers(0, 40), st.integers(0, 2**31 - 1))
def test_prior_coder_round_trips_random_sequences(vocab, stages, items, seed):
    prior = prior_for(vocab, stages=stages, seed=seed % 7)
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(0, vocab, prior.length) for _ in range(items)]
    words = encode_tokens(seqs, prior=prior, vocab=vocab, stages=stages)
    back = decode_tokens(words, [prior.length] * items, prior=prior, vocab=vocab, stages=stages)
    assert all(np.array_equal(a, b) for a, b in zip(seqs, back, strict=True))


def test_an_items_probabilities_do_not_depend_on_the_other_items_of_its_chunk():
    from vqkit.codes.compress import _PriorModel

    prior, rng = prior_for(30), np.random.default_rng(0)
    a = rng.integers(0, 30, (32, prior.length))
    b = a.copy()
    b[1:] = rng.integers(0, 30, b[1:].shape)
    fa, fb = (np.stack(list(_PriorModel(prior).chunk(x))) for x in (a, b))
    assert np.array_equal(fa[:, 0], fb[:, 0])


def test_a_likely_sequence_costs_fewer_bits_under_the_prior():
    prior = prior_for(50)
    with torch.no_grad():  # the prior's own greedy sequence: likely under it
        cache, prev, seq = prior.new_cache(1), None, []
        for _ in range(prior.length):
            prev = prior.step(prev, None, cache, 1).argmax(-1)
            seq.append(int(prev))
    seqs = [np.array(seq)] * 20
    assert (encode_tokens(seqs, prior=prior, vocab=50).size
            < encode_tokens([np.arange(4)] * 20, prior=prior, vocab=50).size)


def train_tiny_runs(tmp_path, cifar_root, tiny_image_config, seed: int = 0):
    """A tiny VQ-VAE (one epoch), a tiny prior over its codes, and three 32 x 32 PNGs."""
    from vqkit.config import get_preset
    from vqkit.training.train import train

    cfg = tiny_image_config(epochs=1, batch_size=16, num_threads=1, seed=seed)
    cfg.data.root = str(cifar_root)
    train(cfg, tmp_path / "vq", progress=False)
    pcfg = get_preset("prior")
    pcfg.prior.run, pcfg.prior.dim, pcfg.prior.layers, pcfg.prior.heads = (
        str(tmp_path / "vq"), 16, 1, 2)
    t = pcfg.train
    t.batch_size, t.epochs, t.warmup_steps, t.num_threads, t.seed = 16, 1, 0, 1, seed
    train(pcfg, tmp_path / "prior", progress=False)
    rng = np.random.default_rng(seed)
    (tmp_path / "in").mkdir(exist_ok=True)
    images = []
    for i in range(3):
        base = rng.integers(0, 256, (4, 4, 3)).repeat(8, 0).repeat(8, 1).astype(np.uint8)
        Image.fromarray(base).save(tmp_path / "in" / f"im{i}.png")
        images.append(tmp_path / "in" / f"im{i}.png")
    return tmp_path / "vq", tmp_path / "prior", images


@pytest.fixture
def runs(tmp_path, cifar_root, tiny_image_config):
    return train_tiny_runs(tmp_path, cifar_root, tiny_image_config)


def test_compress_decompress_equals_reconstruct_in_another_process(tmp_path, runs, capsys):
    vq, prior, images = runs
    out = tmp_path / "x.vqz"
    assert main(["compress", str(vq), "--prior", str(prior), *map(str, images),
                 "--out", str(out)]) == 0
    assert "bits/pixel" in capsys.readouterr().out
    torch.set_num_threads(2)  # the coder runs on one thread whatever the caller set
    try:
        assert main(["compress", str(vq), "--prior", str(prior), *map(str, images),
                     "--out", str(tmp_path / "y.vqz")]) == 0
    finally:
        torch.set_num_threads(1)
    assert out.read_bytes() == (tmp_path / "y.vqz").read_bytes()
    code = ("import sys; from vqkit.cli import main; "
            f"sys.exit(main(['decompress', {str(out)!r}, '--out', {str(tmp_path / 'd')!r}]))")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    assert main(["reconstruct", str(vq), *map(str, images), "--out", str(tmp_path / "r")]) == 0
    for p in images:
        a = np.asarray(Image.open(tmp_path / "d" / f"{p.stem}.png"))
        b = np.asarray(Image.open(tmp_path / "r" / f"{p.stem}.png"))
        assert np.array_equal(a, b), p
    header, _ = read_compressed(out)
    assert header["prior"]["run"] == str(prior) and len(header["names"]) == len(images)


def test_without_a_prior_the_adaptive_unigram_codes_the_file(tmp_path, runs):
    vq, _, images = runs
    assert main(["compress", str(vq), *map(str, images), "--out", str(tmp_path / "u.vqz")]) == 0
    assert main(["decompress", str(tmp_path / "u.vqz"), "--out", str(tmp_path / "d")]) == 0
    assert sorted(p.stem for p in (tmp_path / "d").iterdir()) == sorted(p.stem for p in images)


def test_a_mismatched_model_and_a_truncated_file_are_one_line_errors(tmp_path, runs, capsys,
                                                                    tiny_image_config,
                                                                    cifar_root):
    vq, prior, images = runs
    out = tmp_path / "x.vqz"
    assert main(["compress", str(vq), "--prior", str(prior), *map(str, images[:2]),
                 "--out", str(out)]) == 0
    other_vq, other_prior, _ = train_tiny_runs(tmp_path / "other", cifar_root,
                                               tiny_image_config, seed=1)
    capsys.readouterr()
    for extra in (["--run", str(other_vq)], ["--prior", str(other_prior)]):
        assert main(["decompress", str(out), "--out", str(tmp_path / "d"), *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "x.vqz" in err and "compressed it" in err
        assert not (tmp_path / "d").exists()
    assert main(["compress", str(vq), "--prior", str(other_prior), str(images[0]),
                 "--out", str(tmp_path / "z.vqz")]) == 2
    assert "another VQ-VAE" in capsys.readouterr().err
    data = out.read_bytes()
    for cut in (len(data) - 3, len(data) // 2, 6, 2):
        (tmp_path / "t.vqz").write_bytes(data[:cut])
        assert main(["decompress", str(tmp_path / "t.vqz"), "--out", str(tmp_path / "d")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "t.vqz" in err, err
    flipped = bytearray(data)
    flipped[-1] ^= 1
    (tmp_path / "f.vqz").write_bytes(bytes(flipped))
    with pytest.raises(DataError, match="checksum"):
        read_compressed(tmp_path / "f.vqz")


def test_speech_codes_compress_without_a_prior_to_what_decode_writes(tmp_path, capsys):
    import soundfile as sf

    (tmp_path / "wavs").mkdir()
    wav_files = [write_tone(tmp_path / "wavs" / "one.wav", 0.7, 16000),
                 write_tone(tmp_path / "wavs" / "two.flac", 0.45, 8000, seed=2)]
    run = make_run(tmp_path / "run", "l2arctic")
    inputs = list(map(str, wav_files))
    assert main(["compress", str(run), *inputs, "--out", str(tmp_path / "s.vqz")]) == 0
    assert "bits/s" in capsys.readouterr().out
    assert main(["decompress", str(tmp_path / "s.vqz"), "--out", str(tmp_path / "d")]) == 0
    assert main(["encode", str(run), *inputs, "--out", str(tmp_path / "c.npz")]) == 0
    assert main(["decode", str(run), str(tmp_path / "c.npz"), "--out", str(tmp_path / "e")]) == 0
    for p in wav_files:
        a, _ = sf.read(tmp_path / "d" / f"{p.stem}.wav", dtype="float32")
        b, _ = sf.read(tmp_path / "e" / f"{p.stem}.wav", dtype="float32")
        assert np.array_equal(a, b), p.name
