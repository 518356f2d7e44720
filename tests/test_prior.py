"""The code prior: causal masking, the key/value cache, sampling, training through the loop,
the code cache and exact resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from vqkit.config import get_preset
from vqkit.config.schema import PriorConfig
from vqkit.errors import VQKitError
from vqkit.models.prior import CodePrior, codes_to_tokens, sample_tokens, tokens_to_codes


def tiny_prior(stages: int = 1, classes: int = 3, seed: int = 0) -> CodePrior:
    torch.manual_seed(seed)
    cfg = PriorConfig(dim=16, layers=2, heads=2, dropout=0.0, codebook_size=11,
                      num_quantizers=stages, grid=[2, 3],
                      class_names=[f"k{i}" for i in range(classes)])
    return CodePrior(cfg).eval()


@given(st.integers(0, 11), st.integers(1, 2), st.integers(0, 2**31 - 1))
def test_a_codes_probability_never_depends_on_itself_or_later_codes(i, stages, seed):
    model = tiny_prior(stages)
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, 11, (2, model.length), generator=g)
    i = i % model.length
    changed = tokens.clone()
    changed[:, i:] = torch.randint(0, 11, changed[:, i:].shape, generator=g)
    labels = torch.tensor([0, -1])
    with torch.no_grad():
        a, b = model(tokens, labels), model(changed, labels)
    torch.testing.assert_close(a[:, :i + 1], b[:, :i + 1], rtol=0, atol=1e-6)


def test_the_class_changes_the_probabilities():
    model = tiny_prior()
    tokens = torch.randint(0, 11, (1, model.length))
    with torch.no_grad():
        a, b = model(tokens, torch.tensor([0])), model(tokens, torch.tensor([1]))
    assert not torch.allclose(a[:, 0], b[:, 0])


@pytest.mark.parametrize("stages", [1, 2])
def test_kv_cache_decoding_equals_the_full_forward_pass(stages):
    model = tiny_prior(stages)
    tokens = torch.randint(0, 11, (3, model.length))
    labels = torch.tensor([2, -1, 0])
    with torch.no_grad():
        full = model(tokens, labels)
        cache = model.new_cache(3)
        steps = [model.step(None if t == 0 else tokens[:, t - 1], labels, cache, 3)
                 for t in range(model.length)]
    torch.testing.assert_close(torch.stack(steps, 1), full, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError):
        model.step(tokens[:, -1], labels, cache, 3)


def test_tokens_round_trip_to_code_grids():
    codes = torch.randint(0, 9, (4, 2, 3, 2))
    assert torch.equal(tokens_to_codes(codes_to_tokens(codes), [2, 3], 2), codes)
    assert codes_to_tokens(codes)[0, 1] == codes[0, 0, 0, 1]  # stages innermost


def test_sampling_is_deterministic_for_a_seed_and_respects_top_k():
    model = tiny_prior()

    def draw(seed: int, **kw):
        return sample_tokens(model, 5, labels=torch.tensor([0, 1, 2, -1, 0]),
                             generator=torch.Generator().manual_seed(seed), **kw)

    a = draw(3)
    assert torch.equal(a, draw(3)) and not torch.equal(a, draw(4))
    assert a.shape == (5, model.length) and int(a.max()) < 11
    # top-1 sampling is greedy decoding: the argmax of the full forward at every position
    greedy = draw(5, top_k=1)
    with torch.no_grad():
        logits = model(greedy, torch.tensor([0, 1, 2, -1, 0]))
    assert torch.equal(logits.argmax(-1), greedy)


@pytest.mark.parametrize("guidance", [0.0, 3.0])
def test_guided_sampling_draws_from_the_guided_logits(guidance):
    model = tiny_prior()
    labels = torch.tensor([0, 1, 2])
    greedy = sample_tokens(model, 3, labels=labels, top_k=1, guidance=guidance,
                           generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        cond, uncond = model(greedy, labels), model(greedy, torch.full((3,), -1))
    assert torch.equal((uncond + guidance * (cond - uncond)).argmax(-1), greedy)
    if guidance == 0.0:  # no class at all: the unconditional model's greedy decoding
        assert torch.equal(greedy, sample_tokens(model, 3, top_k=1))


@pytest.fixture
def vq_run(tmp_path, cifar_root, tiny_image_config):
    from vqkit.training.train import train

    cfg = tiny_image_config(epochs=1, batch_size=16, num_threads=1)
    cfg.data.root = str(cifar_root)
    train(cfg, tmp_path / "vq", progress=False)
    return tmp_path / "vq"


def prior_config(vq_run, **train):
    cfg = get_preset("prior")
    cfg.prior.run, cfg.prior.dim, cfg.prior.layers, cfg.prior.heads = str(vq_run), 16, 1, 2
    t = cfg.train
    t.batch_size, t.epochs, t.log_every_steps, t.warmup_steps, t.num_threads = 4, 2, 1, 0, 1
    for k, v in train.items():
        setattr(t, k, v)
    return cfg


def test_prior_trains_through_the_loop_and_resumes_exactly(tmp_path, vq_run):
    from vqkit.models import load_model
    from vqkit.training.train import train

    whole = train(prior_config(vq_run), tmp_path / "whole", progress=False)
    assert whole.best_metric == "val_bits_per_code" and whole.step == 2 * 64 // 4
    cached = sorted(p.name for p in (tmp_path / "whole" / "code-cache").iterdir())
    assert [n.split("-")[0] for n in cached] == ["train", "val"]
    part = train(prior_config(vq_run, max_steps=3), tmp_path / "part", progress=False)
    assert part.stopped == "max_steps"
    train(None, tmp_path / "part", resume=True, progress=False)
    a, _ = load_model(tmp_path / "whole", "last")
    b, cfg = load_model(tmp_path / "part", "last")
    assert cfg.prior.grid == [8, 8] and cfg.prior.class_names[0] == "c0"
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), k


def test_a_changed_vqvae_invalidates_the_cache_and_is_refused_on_resume(tmp_path, vq_run):
    from vqkit.training.train import train

    train(prior_config(vq_run, epochs=1), tmp_path / "p", progress=False)
    old = {p.name for p in (tmp_path / "p" / "code-cache").iterdir()}
    train(None, vq_run, resume=True, overrides={"epochs": 2}, progress=False)  # new weights
    with pytest.raises(VQKitError, match="changed since the prior was trained"):
        train(None, tmp_path / "p", resume=True, overrides={"epochs": 2}, progress=False)
    train(prior_config(vq_run, epochs=1), tmp_path / "p2", progress=False)
    new = {p.name for p in (tmp_path / "p2" / "code-cache").iterdir()}
    assert not old & new
    saved = json.loads((tmp_path / "p2" / "config.json").read_text())["prior"]
    assert saved["vqvae_sha256"][:16] in next(iter(new))


def test_unigram_baseline_is_the_cross_entropy_of_training_frequencies():
    from vqkit.data.codes import CodeData
    from vqkit.evaluation.prior import unigram_bits

    train = CodeData(torch.tensor([[0, 0], [0, 1]]))  # counts 3, 1 of vocab 2 -> (4/6, 2/6)
    test = CodeData(torch.tensor([[1, 1]]))
    assert unigram_bits(train, test, 2, 1) == pytest.approx(-np.log2(2 / 6))
    # two stages: one table each (stage 0 all 0s, stage 1 all 1s)
    assert unigram_bits(CodeData(torch.tensor([[0, 1]] * 6)), CodeData(torch.tensor([[0, 1]])),
                        2, 2) == pytest.approx(-np.log2(7 / 8))


def test_cli_trains_evaluates_and_samples_a_prior(tmp_path, vq_run, capsys):
    from vqkit.cli import main

    out = tmp_path / "prior"
    assert main(["train", "prior", str(vq_run), "--out", str(out), "--epochs", "1",
                 "--batch-size", "16", "--no-progress", "--set", "prior.dim=16",
                 "--set", "prior.layers=1", "--set", "train.num_threads=1"]) == 0
    assert "bits per code" in capsys.readouterr().out
    assert main(["evaluate", str(out), "--split", "val", "--json", str(tmp_path / "m.json")]) == 0
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["raw_bits_per_code"] == 5 and m["items"] == 16 and m["codes_per_item"] == 64
    assert m["bits_per_image"] == pytest.approx(64 * m["bits_per_code"])
    assert 0 < m["unigram_bits_per_code"] <= 5.1
    for seed_dir in ("a", "b"):
        assert main(["sample", str(out), "--n", "9", "--seed", "4", "--class", "c2",
                     "--top-k", "8", "--out", str(tmp_path / seed_dir)]) == 0
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == [f"{i}.png" for i in range(9)] + ["grid.png"]
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    capsys.readouterr()
    data = Path(json.loads((vq_run / "config.json").read_text())["data"]["root"])
    data.rename(data.with_name("moved"))  # sampling needs the runs, not the data
    assert main(["sample", str(out), "--n", "2", "--guidance", "3", "--out",
                 str(tmp_path / "g")]) == 0
    data.with_name("moved").rename(data)
    assert main(["sample", str(out), "--class", "nope", "--out", str(tmp_path / "c")]) == 2
    assert main(["train", "prior", "--out", str(tmp_path / "x")]) == 2
    assert main(["train", "prior", str(out), "--out", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and "nope" in err[0] and "a prior run" in err[2]
