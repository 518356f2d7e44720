import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vqkit.config import (
    RunConfig,
    apply_overrides,
    get_preset,
    list_presets,
    resolve_config,
)
from vqkit.errors import ConfigError


def test_seed_presets_are_the_thesis_settings():
    c = get_preset("cifar10-seed")
    assert (c.train.batch_size, c.train.lr, c.train.epochs) == (32, 3e-4, 10)
    assert c.quantizer.kind == "vq" and c.quantizer.ema_decay == 0
    q = c.quantizer
    assert (q.codebook_size, c.model.dim, q.commitment_weight) == (512, 64, 0.25)
    s = get_preset("l2arctic-seed")
    assert (s.train.batch_size, s.train.lr, s.train.epochs) == (16, 2e-4, 50)
    assert (s.train.lr_schedule, s.train.lr_step_epochs, s.train.lr_gamma) == ("step", 20, 0.5)
    assert (s.audio.sample_rate, s.audio.n_mels, s.audio.n_fft, s.audio.hop_length) == (
        16000, 128, 1024, 256)
    assert s.audio.clip_s == 5.0 and s.audio.normalization == "utterance_minmax"


def test_presets_are_fresh_copies():
    a = get_preset("cifar10")
    a.quantizer.levels.append(3)
    assert get_preset("cifar10").quantizer.levels == [8, 8, 8]
    assert set(list_presets()) >= {"cifar10", "cifar10-seed", "l2arctic", "l2arctic-seed"}


def test_overrides_are_typed():
    c = apply_overrides(get_preset("cifar10"), [
        "train.lr=1e-3", "train.epochs=3", "quantizer.cosine=true", "quantizer.levels=8,5,5,5",
        "quantizer.kind=fsq", "train.max_minutes=2"])
    assert c.train.lr == 1e-3 and c.train.epochs == 3 and c.quantizer.cosine is True
    assert c.quantizer.levels == [8, 5, 5, 5] and c.quantizer.kind == "fsq"
    assert c.train.max_minutes == 2.0 and isinstance(c.train.max_minutes, float)


@pytest.mark.parametrize("bad", [
    "train.lr=fast", "train.epochs=2.5", "train.nope=1", "nosection.lr=1", "train.lr",
    "quantizer.cosine=maybe", "quantizer.levels=[8,x]", "a.b.c=1"])
def test_bad_overrides_raise(bad):
    with pytest.raises(ConfigError):
        apply_overrides(get_preset("cifar10"), [bad])


def test_file_then_overrides_and_round_trip(tmp_path):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"train": {"lr": 0.01, "batch_size": 7}}))
    c = resolve_config("image", "cifar10-seed", f, ["train.batch_size=9"])
    assert c.train.lr == 0.01 and c.train.batch_size == 9
    c.save(tmp_path / "saved.json")
    assert RunConfig.load(tmp_path / "saved.json") == c
    t = tmp_path / "c.toml"
    t.write_text('[quantizer]\nkind = "rvq"\nnum_quantizers = 4\n')
    assert resolve_config("image", None, t).quantizer.num_quantizers == 4


def test_bad_files_and_task_mismatch(tmp_path):
    f = tmp_path / "c.json"
    f.write_text("{not json")
    with pytest.raises(ConfigError, match="c.json"):
        resolve_config("image", None, f)
    f.write_text(json.dumps({"train": {"unknown_key": 1}}))
    with pytest.raises(ConfigError, match="unknown_key"):
        resolve_config("image", None, f)
    with pytest.raises(ConfigError, match="speech"):
        resolve_config("image", "l2arctic")
    with pytest.raises(ConfigError, match="unknown preset"):
        get_preset("nope")


@given(lr=st.floats(1e-6, 1.0), bs=st.integers(1, 4096), flag=st.booleans())
def test_override_strings_round_trip(lr, bs, flag):
    c = apply_overrides(get_preset("cifar10"),
                        [f"train.lr={lr!r}", f"train.batch_size={bs}", f"quantizer.cosine={flag}"])
    assert (c.train.lr, c.train.batch_size, c.quantizer.cosine) == (lr, bs, flag)
