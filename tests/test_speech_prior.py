"""A prior over a speech run's codes: time order, variable lengths, the code cache from the
run's mel cache, bits per second, sampling WAVs and compressed speech files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_evaluate import untrained_run
from test_prior import prior_config
from test_speech_training import SPEAKERS, TINY, write_corpus

from vqkit.config import apply_overrides, get_preset
from vqkit.config.schema import PriorConfig
from vqkit.data.codes import CodeData
from vqkit.models.prior import CodePrior, codes_to_tokens, sample_tokens, tokens_to_codes

SPEAKER_SPLITS = ["data.train_split=speakers:AAA,BBB", "data.val_split=speakers:CCC"]


def tiny_speech_run(tmp_path, corpus) -> Path:
    """An untrained tiny 2-D speech run over ``corpus`` (train AAA, BBB; val CCC)."""
    cfg = get_preset("l2arctic")
    apply_overrides(cfg, TINY + SPEAKER_SPLITS)
    cfg.data.root = str(corpus)
    return untrained_run(tmp_path / "run", cfg)


def write_transcripts(corpus) -> None:
    """``<SPK>/transcript/utt_<u>.txt``: "Yes" for even utterances, "no" for odd ones."""
    for spk in SPEAKERS:
        (corpus / spk / "transcript").mkdir()
        for u in range(4):
            (corpus / spk / "transcript" / f"utt_{u}.txt").write_text(["Yes", "no"][u % 2])


def time_prior(rows: int = 2, stages: int = 2, frames: int = 4, seed: int = 0) -> CodePrior:
    torch.manual_seed(seed)
    return CodePrior(PriorConfig(dim=16, layers=2, heads=2, dropout=0.0, codebook_size=7,
                                 num_quantizers=stages, grid=[rows, frames], order="time")).eval()


def test_time_order_reads_frame_by_frame_with_stages_innermost():
    codes = torch.randint(0, 9, (3, 2, 5, 2))  # (B, F', T', K)
    tokens = codes_to_tokens(codes, "time")
    assert tokens[0, 0] == codes[0, 0, 0, 0] and tokens[0, 1] == codes[0, 0, 0, 1]
    assert tokens[0, 2] == codes[0, 1, 0, 0] and tokens[0, 4] == codes[0, 0, 1, 0]
    assert torch.equal(tokens_to_codes(tokens, [2, 99], 2, "time"), codes)
    one = torch.randint(0, 9, (1, 1, 6))  # temporal model, one stage: (B, 1, T')
    assert torch.equal(tokens_to_codes(codes_to_tokens(one, "time"), [1, 0], 1, "time"), one)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 15), st.integers(1, 4), st.integers(0, 2**31 - 1))
def test_time_order_prior_is_causal_for_any_length(i, frames, seed):
    model = time_prior()
    n = frames * model.frame_tokens
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, 7, (2, n), generator=g)
    i = i % n
    changed = tokens.clone()
    changed[:, i:] = torch.randint(0, 7, changed[:, i:].shape, generator=g)
    with torch.no_grad():
        a, b = model(tokens), model(changed)
    torch.testing.assert_close(a[:, :i + 1], b[:, :i + 1], rtol=0, atol=1e-6)


def test_kv_cache_equals_the_full_pass_and_lengths_are_whole_frames():
    model = time_prior()
    tokens = torch.randint(0, 7, (3, 3 * model.frame_tokens))
    with torch.no_grad():
        full = model(tokens)
        cache = model.new_cache(3)
        steps = [model.step(None if t == 0 else tokens[:, t - 1], None, cache, 3)
                 for t in range(tokens.shape[1])]
    torch.testing.assert_close(torch.stack(steps, 1), full, rtol=1e-5, atol=1e-5)
    g = torch.Generator().manual_seed(1)
    a = sample_tokens(model, 2, length=8, generator=g)
    assert a.shape == (2, 8)
    assert torch.equal(a, sample_tokens(model, 2, length=8, generator=torch.Generator()
                                        .manual_seed(1)))
    for bad in (7, 0, model.length + model.frame_tokens):
        with pytest.raises(ValueError, match="whole frames"):
            sample_tokens(model, 1, length=bad)


def test_varying_lengths_batch_by_length_and_resume_exactly():
    lengths = torch.tensor([4, 8, 4, 12, 8, 12, 4, 4])
    tokens = torch.arange(8)[:, None].repeat(1, 12)
    data = CodeData(tokens, lengths=lengths)
    batches = list(data.batches(2, epoch=3, seed=1))
    assert sorted(int(i) for t, _, _ in batches for i in t[:, 0]) == list(range(8))
    for t, _, n in batches:
        assert t.shape[1] == int(n.max()) and len(set(n.tolist())) == 1  # equal lengths here
    again = list(data.batches(2, epoch=3, seed=1, start=2))
    for (a, _, _), (b, _, _) in zip(batches[2:], again, strict=True):
        assert torch.equal(a, b)
    assert [t[:, 0].tolist() for t, _, _ in data.batches(2, epoch=4, seed=1)] != [
        t[:, 0].tolist() for t, _, _ in batches]


def test_unigram_counts_real_codes_only():
    from vqkit.evaluation.prior import unigram_bits

    train = CodeData(torch.tensor([[0, 0, 9], [0, 1, 9]]), lengths=torch.tensor([2, 2]))
    test = CodeData(torch.tensor([[1, 5]]), lengths=torch.tensor([1]))
    assert unigram_bits(train, test, 10, 1) == pytest.approx(-np.log2(2 / 14))


@pytest.fixture
def speech_runs(tmp_path, monkeypatch):
    """An untrained tiny 2-D speech run over a synthetic corpus (per-utterance hash split: every
    speaker in train and val) and a prior trained one epoch over its codes."""
    from vqkit.training.train import train

    monkeypatch.setenv("VQKIT_DATA", str(tmp_path / "vqkit-data"))
    corpus = write_corpus(tmp_path / "corpus")
    run = tiny_speech_run(tmp_path, corpus)
    train(prior_config(run, epochs=1), tmp_path / "prior", progress=False)
    return run, tmp_path / "prior", corpus


def test_speech_prior_trains_on_time_ordered_codes_and_reports_bits_per_second(speech_runs,
                                                                              tmp_path):
    from vqkit.cli import main

    run, prior, corpus = speech_runs
    cfg = json.loads((prior / "config.json").read_text())["prior"]
    # 32 mel bins / 4 = 8 code rows per frame, 2 residual stages; frames: the longest utterance
    assert cfg["order"] == "time" and cfg["grid"][0] == 8 and cfg["num_quantizers"] == 2
    assert cfg["grid"][1] > 0 and cfg["class_names"] == []
    cached = sorted(p.name.split("-")[0] for p in (prior / "code-cache").iterdir())
    assert cached == ["train", "val"]
    assert main(["evaluate", str(prior), "--split", "val", "--json", str(tmp_path / "m.json")]) == 0
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["items"] == 4 and m["raw_bits_per_code"] == 4  # 16 codes
    rate = m["codes"] / m["seconds"]
    assert m["raw_bits_per_second"] == pytest.approx(4 * rate)
    assert m["bits_per_second"] == pytest.approx(m["bits_per_code"] * rate)
    assert m["unigram_bits_per_second"] == pytest.approx(m["unigram_bits_per_code"] * rate)
    # the 4 CCC utterances: 0.3 + 0.23 u s at 16 kHz
    assert m["seconds"] == pytest.approx(sum(0.3 + 0.23 * u for u in range(4)), abs=1e-3)


@settings(max_examples=10, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=5), st.integers(0, 2**31 - 1))
def test_the_prior_coder_round_trips_utterances_of_any_length(frames, seed):
    from vqkit.codes.compress import decode_tokens, encode_tokens

    prior = time_prior(rows=2, stages=1, frames=4)
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(0, 7, f * prior.frame_tokens) for f in frames]
    words = encode_tokens(seqs, prior=prior, vocab=7)
    back = decode_tokens(words, [s.size for s in seqs], prior=prior, vocab=7)
    assert all(np.array_equal(a, b) for a, b in zip(seqs, back, strict=True))


def test_speech_compress_with_the_prior_decompresses_to_what_reconstruct_writes(
        speech_runs, tmp_path, capsys):
    import soundfile as sf

    from vqkit.cli import main

    run, prior, corpus = speech_runs
    wavs = [str(corpus / spk / "wav" / f"utt_{u}.wav") for spk, u in
            (("CCC", 3), ("AAA", 0), ("BBB", 2))]
    assert main(["compress", str(run), "--prior", str(prior), *wavs,
                 "--out", str(tmp_path / "s.vqz")]) == 0
    out = capsys.readouterr().out
    assert "bits/s" in out
    assert main(["decompress", str(tmp_path / "s.vqz"), "--out", str(tmp_path / "d")]) == 0
    assert main(["reconstruct", str(run), *wavs, "--out", str(tmp_path / "r")]) == 0
    for w in wavs:
        stem = w.rsplit("/", 1)[1][:-4]
        a, _ = sf.read(tmp_path / "d" / f"{stem}.wav", dtype="float32")
        b, _ = sf.read(tmp_path / "r" / f"{stem}.wav", dtype="float32")
        assert np.array_equal(a, b), w
    # an utterance longer than any the prior trained on: one line, compress without --prior
    from test_codes import write_tone

    long = write_tone(tmp_path / "long.wav", 3.0, 16000)
    capsys.readouterr()
    assert main(["compress", str(run), "--prior", str(prior), str(long),
                 "--out", str(tmp_path / "l.vqz")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "long" in err and "compress without --prior" in err
    assert not (tmp_path / "l.vqz").exists()
    # the achieved rate is the prior's negative log-likelihood of those codes (within 1%)
    from vqkit.codes.compress import compress_files
    from vqkit.codes.files import encode_files
    from vqkit.evaluation.prior import item_bits
    from vqkit.models import load_model

    r = compress_files(run, wavs, tmp_path / "t.vqz", prior_run=prior)
    model, _ = load_model(prior, kind="prior")
    seqs = [codes_to_tokens(torch.from_numpy(c.astype(np.int64))[None], "time")[0]
            for c in encode_files(run, wavs, device="cpu").codes]
    n = torch.tensor([len(s) for s in seqs])
    tokens = torch.zeros(len(seqs), int(n.max()), dtype=torch.long)
    for i, s in enumerate(seqs):
        tokens[i, :len(s)] = s
    nll = item_bits(model, CodeData(tokens, lengths=n), conditional=False, batch_size=8,
                    device=torch.device("cpu")).sum()
    assert r["bits"] == pytest.approx(nll, rel=0.01, abs=64)


def test_speech_samples_are_wavs_deterministic_for_a_seed(speech_runs, tmp_path, capsys):
    import soundfile as sf

    from vqkit.cli import main

    run, prior, corpus = speech_runs
    for d in ("a", "b"):
        assert main(["sample", str(prior), "--n", "3", "--seconds", "0.3", "--seed", "2",
                     "--out", str(tmp_path / d)]) == 0
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["0.wav", "1.wav", "2.wav"]
    for name in names:
        a, sr = sf.read(tmp_path / "a" / name, dtype="float32")
        b, _ = sf.read(tmp_path / "b" / name, dtype="float32")
        assert sr == 16000 and np.array_equal(a, b)
        # 0.3 s at 62.5 frames/s: 19 frames -> 5 code frames of 4 -> 20 mel frames
        assert len(a) == 19 * 256
    capsys.readouterr()
    assert main(["sample", str(prior), "--seconds", "60", "--out", str(tmp_path / "c")]) == 2
    assert "--seconds 60" in capsys.readouterr().err


def test_a_prior_over_the_temporal_models_codes(tmp_path, monkeypatch, capsys):
    """The temporal model's codes (1 row per frame, 18 stages): one frame = 18 tokens."""
    import soundfile as sf

    from vqkit.checkpoint import checkpoint_dir, save_checkpoint
    from vqkit.cli import main
    from vqkit.models import model_for
    from vqkit.training.train import train

    monkeypatch.setenv("VQKIT_DATA", str(tmp_path / "vqkit-data"))
    corpus = write_corpus(tmp_path / "corpus")
    cfg = get_preset("l2arctic-codec")
    apply_overrides(cfg, TINY + ["quantizer.num_quantizers=3"] + SPEAKER_SPLITS)
    cfg.data.root = str(corpus)
    torch.manual_seed(0)
    model = model_for(cfg).eval()
    for which in ("best", "last"):
        save_checkpoint(checkpoint_dir(tmp_path / "run", which), model=model, config=cfg,
                        state={}, meta={"step": 0, "epoch": 0})
    cfg.save(tmp_path / "run" / "config.json")
    train(prior_config(tmp_path / "run", epochs=1), tmp_path / "prior", progress=False)
    p = json.loads((tmp_path / "prior" / "config.json").read_text())["prior"]
    assert p["grid"][0] == 1 and p["num_quantizers"] == 3 and p["order"] == "time"
    wavs = [str(corpus / "CCC" / "wav" / f"utt_{u}.wav") for u in (0, 3)]
    assert main(["compress", str(tmp_path / "run"), "--prior", str(tmp_path / "prior"), *wavs,
                 "--out", str(tmp_path / "t.vqz")]) == 0
    assert main(["decompress", str(tmp_path / "t.vqz"), "--out", str(tmp_path / "d")]) == 0
    assert main(["encode", str(tmp_path / "run"), *wavs, "--out", str(tmp_path / "c.npz")]) == 0
    assert main(["decode", str(tmp_path / "run"), str(tmp_path / "c.npz"), "--out",
                 str(tmp_path / "e")]) == 0
    for u in (0, 3):
        a, _ = sf.read(tmp_path / "d" / f"utt_{u}.wav", dtype="float32")
        b, _ = sf.read(tmp_path / "e" / f"utt_{u}.wav", dtype="float32")
        assert np.array_equal(a, b)


def test_a_speech_prior_resumes_exactly(speech_runs, tmp_path):
    from vqkit.models import load_model
    from vqkit.training.train import train

    run = speech_runs[0]

    def cfg(**kw):
        return prior_config(run, batch_size=3, **kw)

    train(cfg(), tmp_path / "whole", progress=False)
    # 8 utterances, batches of 3: step 4 stops inside the second epoch
    assert train(cfg(max_steps=4), tmp_path / "part", progress=False).stopped == "max_steps"
    train(None, tmp_path / "part", resume=True, progress=False)
    a, _ = load_model(tmp_path / "whole", "last")
    b, _ = load_model(tmp_path / "part", "last")
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), k


@pytest.mark.parametrize("kind", ["transcript", "speaker"])
def test_a_speech_prior_conditioned_on_transcripts_or_speakers(tmp_path, monkeypatch, capsys,
                                                               kind):
    from vqkit.cli import main
    from vqkit.training.train import train

    monkeypatch.setenv("VQKIT_DATA", str(tmp_path / "vqkit-data"))
    corpus = write_corpus(tmp_path / "corpus")
    write_transcripts(corpus)
    pcfg = prior_config(tiny_speech_run(tmp_path, corpus), epochs=1)
    pcfg.prior.speech_classes = kind
    train(pcfg, tmp_path / "prior", progress=False)
    names = json.loads((tmp_path / "prior" / "config.json").read_text())["prior"]["class_names"]
    assert names == (["no", "yes"] if kind == "transcript" else ["AAA", "BBB"])
    val = next((tmp_path / "prior" / "code-cache").glob("val-*.npz"))
    with np.load(val) as z:  # CCC: transcripts known, the speaker unseen in training
        assert z["labels"].tolist() == ([1, 0, 1, 0] if kind == "transcript" else [-1] * 4)
    assert main(["evaluate", str(tmp_path / "prior"), "--split", "val", "--json",
                 str(tmp_path / "m.json")]) == 0
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["class_conditional"]
    if kind == "transcript":
        assert m["bits_per_code"] != m["bits_per_code_unconditional"]
    else:  # speakers unseen in training are "no class"
        assert m["bits_per_code"] == pytest.approx(m["bits_per_code_unconditional"])
    assert main(["sample", str(tmp_path / "prior"), "--n", "2", "--seconds", "0.2",
                 "--class", names[0], "--out", str(tmp_path / "s")]) == 0
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["0.wav", "1.wav"]
