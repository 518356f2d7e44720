"""Attacks and faults: each ends in one line (exit 2) or a clean stop, nothing is lost, and
nothing is written or deleted outside the folder the user named."""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from PIL import Image
from test_codes import make_run, smooth_image

from vqkit.checkpoint import CheckpointError, load_checkpoint
from vqkit.cli import main
from vqkit.rundir import RunLock

TINY = ["--set", "model.hidden_channels=16", "--set", "model.residual_channels=8",
        "--set", "model.dim=8", "--set", "quantizer.codebook_size=16",
        "--set", "train.log_every_steps=1", "--batch-size", "8", "--no-progress"]


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    code = main(args)
    err = capsys.readouterr().err.strip()
    return code, err


def one_line(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in err, (n, err)


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def trained(cifar_root, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "image", "--data", str(cifar_root), "--out", str(run), "--epochs", "1",
                 *TINY]) == 0
    capsys.readouterr()
    return run


def wav_bytes(y: np.ndarray, sr: int = 8000, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="WAV", subtype=subtype)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# Writes and deletes outside the target


def test_zip_member_speaker_dotdot_is_refused_and_nothing_is_written(tmp_path, capsys):
    src = tmp_path / "evil.zip"
    with zipfile.ZipFile(src, "w") as z:
        z.writestr("../wav/evil.wav", wav_bytes(np.full(8000, 0.1, np.float32)))
        z.writestr("GOOD/wav/ok.wav", wav_bytes(np.full(8000, 0.1, np.float32)))
    before = tree(tmp_path)
    code, err = run_cli(["subset", "--source", str(src), "--out", str(tmp_path / "out" / "in"),
                         "--max-per-speaker", "0"], capsys)
    one_line(code, err, "'..'")
    assert tree(tmp_path) - before <= {"out", "out/in"}  # at most the empty target itself


def test_metadata_speaker_names_cannot_place_cache_entries_outside(tmp_path, capsys):
    data = tmp_path / "data"
    (data / "A" / "wav").mkdir(parents=True)
    (data / "A" / "wav" / "u.wav").write_bytes(wav_bytes(np.full(8000, 0.1, np.float32)))
    header = ("speaker,utt_id,path,duration_s,sample_rate,transcript,first_language,gender,"
              "split\n")
    (data / "metadata.csv").write_text(header + "..,../../x,A/wav/u.wav,1.0,8000,,u,u,train\n")
    before = tree(tmp_path)
    code, err = run_cli(["cache", "--data", str(data), "--out", str(tmp_path / "c" / "cache"),
                         "--workers", "1", "--no-progress"], capsys)
    one_line(code, err, "refusing")
    assert not {p for p in tree(tmp_path) - before if p.endswith(".npy")}


def test_cache_manifest_path_cannot_delete_outside(tmp_path, capsys):
    data = tmp_path / "data"
    for spk in ("A", "B"):
        (data / spk / "wav").mkdir(parents=True)
        (data / spk / "wav" / "u.wav").write_bytes(wav_bytes(np.full(8000, 0.1, np.float32)))
    cache = tmp_path / "cache"
    assert main(["cache", "--data", str(data), "--out", str(cache), "--workers", "1",
                 "--no-progress"]) == 0
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    manifest = json.loads((cache / "manifest.json").read_text())
    for e in manifest["entries"]:
        e["path"] = "../victim.txt"  # tampered: the entries are now "stale"
    (cache / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(data / "B")  # B's entry is now "removed" too
    assert main(["cache", "--data", str(data), "--out", str(cache), "--workers", "1",
                 "--no-progress"]) == 0
    assert victim.read_text() == "keep me"


@given(st.dictionaries(st.sampled_from(["id", "path", "n_frames", "checksum", "key", "speaker",
                                         "utt_id", "source", "split", "source_size"]),
                       st.one_of(st.text(max_size=12), st.integers(-5, 10**6), st.none(),
                                 st.booleans(), st.lists(st.integers(), max_size=2)),
                       max_size=10),
       st.sampled_from(["entries", "bad", "params", "params_hash", "format_version"]))
@hsettings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_fuzzed_cache_manifests_never_traceback_nor_write_outside(tmp_path_factory, record, key):
    root = tmp_path_factory.mktemp("fuzz")
    data, cache = root / "data", root / "cache"
    (data / "A" / "wav").mkdir(parents=True)
    (data / "A" / "wav" / "u.wav").write_bytes(wav_bytes(np.full(4000, 0.1, np.float32)))
    assert main(["cache", "--data", str(data), "--out", str(cache), "--workers", "1",
                 "--no-progress", "--set", "audio.n_mels=32"]) == 0
    (root / "victim").write_text("x")
    manifest = json.loads((cache / "manifest.json").read_text())
    manifest[key] = [record] if key in ("entries", "bad") else record
    (cache / "manifest.json").write_text(json.dumps(manifest))
    before = tree(root)
    for args in (["cache", "--data", str(data), "--out", str(cache), "--workers", "1",
                  "--no-progress", "--set", "audio.n_mels=32"],
                 ["train", "speech", "--data", str(cache), "--out", str(root / "run"),
                  "--max-steps", "1", "--no-progress", "--set", "audio.n_mels=32",
                  "--set", "model.hidden_channels=8", "--set", "quantizer.codebook_size=8",
                  "--set", "data.val_split=train"]):
        code = main(args)
        assert code in (0, 2)
    assert (root / "victim").read_text() == "x"
    assert all(p.startswith(("cache", "run", "data")) for p in tree(root) - before)


# ---------------------------------------------------------------------------------------------
# NaN / inf


def test_diverging_training_stops_naming_the_step_and_saves_nothing_bad(cifar_root, tmp_path,
                                                                         capsys):
    run = tmp_path / "run"
    code, err = run_cli(["train", "image", "--data", str(cifar_root), "--out", str(run),
                         "--epochs", "3", "--lr", "1e6", "--preset", "cifar10-seed", *TINY],
                        capsys)
    one_line(code, err, "NaN or infinite at step")
    try:
        ckpt = load_checkpoint(run)  # if anything was saved, it is finite and verified
    except CheckpointError:
        return
    assert ckpt.meta["step"] < int(err.split("at step ")[1].split(";")[0])


@pytest.mark.parametrize("samples, needle", [
    (np.full(8000, 1e30, np.float32), "absurd"),
    (np.array([0.1], np.float32), "too short"),
    (np.array([0.1, np.nan] * 4000, np.float32), "non-finite"),
])
def test_absurd_audio_is_skipped_by_the_cache_with_its_name(tmp_path, capsys, samples, needle):
    data = tmp_path / "data"
    (data / "A" / "wav").mkdir(parents=True)
    (data / "A" / "wav" / "good.wav").write_bytes(wav_bytes(np.full(8000, 0.1, np.float32)))
    (data / "A" / "wav" / "bad.wav").write_bytes(wav_bytes(samples, subtype="FLOAT"))
    assert main(["cache", "--data", str(data), "--out", str(tmp_path / "c"), "--workers", "1",
                 "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "bad.wav" in err and needle in err
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert [e["utt_id"] for e in manifest["entries"]] == ["good"]


# ---------------------------------------------------------------------------------------------
# Silent corruption


@pytest.mark.parametrize("name", ["model.safetensors", "state.pt"])
def test_a_flipped_bit_is_one_line_naming_the_file(trained, capsys, name):
    path = trained / "checkpoints" / "last" / name
    data = bytearray(path.read_bytes())
    data[len(data) - 100] ^= 0x10  # inside the tensor data, not the header
    path.write_bytes(bytes(data))
    code, err = run_cli(["train", "--resume", str(trained), "--no-progress"], capsys)
    one_line(code, err, name, "checksum")
    if name == "model.safetensors":
        code, err = run_cli(["evaluate", str(trained), "--checkpoint", "last"], capsys)
        one_line(code, err, name, "checksum")


def test_meta_json_with_bad_bytes_is_one_line(trained, capsys):
    (trained / "checkpoints" / "last" / "meta.json").write_bytes(b'{"step": "\xff\xfe"}')
    code, err = run_cli(["evaluate", str(trained), "--checkpoint", "last"], capsys)
    one_line(code, err, "meta.json")


def test_a_config_that_no_longer_fits_the_weights_is_one_line(trained, capsys):
    cfg_path = trained / "checkpoints" / "last" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["model"]["hidden_channels"] = 24
    cfg_path.write_text(json.dumps(cfg))
    code, err = run_cli(["train", "--resume", str(trained), "--no-progress"], capsys)
    one_line(code, err, "does not fit")


# ---------------------------------------------------------------------------------------------
# Two writers, leftovers


def test_a_second_writer_is_refused_naming_the_holder(trained, cifar_root, capsys):
    with RunLock(trained):
        code, err = run_cli(["train", "--resume", str(trained), "--no-progress"], capsys)
    one_line(code, err, f"PID {os.getpid()}")
    # the lock is gone with its holder: the same command now runs
    assert main(["train", "--resume", str(trained), "--epochs", "2", "--no-progress"]) == 0


def test_stale_lock_and_temp_folders_of_dead_processes_are_taken_over(trained, capsys):
    ck = trained / "checkpoints"
    (trained / ".lock").write_text("999999\n")  # a dead holder (no flock held)
    for name in (".last.tmp-999999", ".last.old-999998"):
        (ck / name).mkdir()
        (ck / name / "model.safetensors").write_bytes(b"partial")
    assert main(["train", "--resume", str(trained), "--epochs", "2", "--no-progress"]) == 0
    assert sorted(p.name for p in ck.iterdir()) == ["best", "last"]


def test_metrics_are_trimmed_to_the_resumed_step(trained):
    log = trained / "metrics.jsonl"
    with open(log, "a") as f:  # records of steps the checkpoint never saw (a crash after them)
        f.write(json.dumps({"kind": "step", "step": 999, "loss": 1.0}) + "\n")
    assert main(["train", "--resume", str(trained), "--epochs", "2", "--no-progress"]) == 0
    steps = [json.loads(x)["step"] for x in log.read_text().splitlines()
             if json.loads(x)["kind"] == "step"]
    assert steps == sorted(steps) and len(steps) == len(set(steps)) and 999 not in steps


def test_a_failed_start_leaves_no_run_folder(tmp_path, capsys):
    run = tmp_path / "new-run"
    code, err = run_cli(["train", "image", "--data", str(tmp_path / "missing"), "--out",
                         str(run)], capsys)
    one_line(code, err, "missing")
    assert not run.exists()


# ---------------------------------------------------------------------------------------------
# Disk full


def test_disk_full_during_a_save_is_one_line_and_the_old_checkpoint_survives(
        trained, capsys, monkeypatch):
    import vqkit.checkpoint as ck

    before = load_checkpoint(trained)
    real = ck._write_synced

    def full(path, data):
        if path.name == "state.pt":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(ck, "_write_synced", full)
    code, err = run_cli(["train", "--resume", str(trained), "--epochs", "2", "--no-progress"],
                        capsys)
    one_line(code, err, "No space left on device", "checkpoints/last")
    monkeypatch.setattr(ck, "_write_synced", real)
    after = load_checkpoint(trained)
    assert after.meta["step"] == before.meta["step"]
    assert sorted(p.name for p in (trained / "checkpoints").iterdir()) == ["best", "last"]
    assert main(["train", "--resume", str(trained), "--epochs", "2", "--no-progress"]) == 0


def test_disk_full_while_caching_keeps_the_old_manifest(tmp_path, capsys, monkeypatch):
    import vqkit.audio.cache_build as cb

    data = tmp_path / "data"
    (data / "A" / "wav").mkdir(parents=True)
    (data / "A" / "wav" / "u.wav").write_bytes(wav_bytes(np.full(8000, 0.1, np.float32)))
    cache = tmp_path / "cache"
    assert main(["cache", "--data", str(data), "--out", str(cache), "--workers", "1",
                 "--no-progress"]) == 0
    manifest = (cache / "manifest.json").read_bytes()
    (data / "A" / "wav" / "v.wav").write_bytes(wav_bytes(np.full(8000, 0.2, np.float32)))

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cb.tempfile, "mkstemp", full)
    code, err = run_cli(["cache", "--data", str(data), "--out", str(cache), "--workers", "1",
                         "--no-progress"], capsys)
    one_line(code, err, "No space left on device", "usable")
    assert (cache / "manifest.json").read_bytes() == manifest
    assert not [p for p in cache.rglob("*.tmp")]


# ---------------------------------------------------------------------------------------------
# Bad values at the edge


@pytest.mark.parametrize("args, needle", [
    (["--batch-size", "0"], "at least 1"), (["--batch-size", "-4"], "at least 1"),
    (["--lr", "-1"], "above 0"), (["--epochs", "-1"], "at least 1"),
    (["--max-steps", "-5"], "at least 0"), (["--device", "cuda:9"], "cuda"),
    (["--set", "quantizer.kind=bogus"], "one of vq, fsq, rvq"),
    (["--set", "audio.win_length=4096"], "win_length"),
])
def test_bad_values_are_one_line(cifar_root, tmp_path, capsys, args, needle):
    code, err = run_cli(["train", "image", "--data", str(cifar_root), "--out",
                         str(tmp_path / "r"), *args], capsys)
    one_line(code, err, needle)
    assert not (tmp_path / "r").exists()


def test_a_config_file_with_nan_is_one_line(cifar_root, tmp_path, capsys):
    cfg = tmp_path / "c.json"
    cfg.write_text('{"train": {"lr": NaN}}')
    code, err = run_cli(["train", "image", "--config", str(cfg), "--data", str(cifar_root),
                         "--out", str(tmp_path / "r")], capsys)
    one_line(code, err, "finite", "c.json")


def test_a_symlink_loop_in_a_subset_source_is_skipped(tmp_path, capsys):
    src = tmp_path / "src"
    (src / "A" / "wav").mkdir(parents=True)
    (src / "A" / "wav" / "u.wav").write_bytes(wav_bytes(np.full(8000, 0.1, np.float32)))
    (src / "loop1").symlink_to("loop2")
    (src / "loop2").symlink_to("loop1")
    (src / "A" / "wav" / "self.wav").symlink_to("self.wav")
    assert main(["subset", "--source", str(src), "--out", str(tmp_path / "o"),
                 "--max-per-speaker", "0"]) == 0
    assert (tmp_path / "o" / "A" / "wav" / "u.wav").is_file()


def test_a_crash_between_the_two_renames_of_a_save_resumes(trained):
    """``last`` was moved aside and the new one not yet moved in: the aside copy is used, and
    the next save puts everything back in order."""
    ck = trained / "checkpoints"
    step = load_checkpoint(trained).meta["step"]
    os.replace(ck / "last", ck / ".last.old-999999")
    (ck / ".last.tmp-999999").mkdir()  # the half-written new one
    assert load_checkpoint(trained).meta["step"] == step
    assert main(["train", "--resume", str(trained), "--epochs", "2", "--no-progress"]) == 0
    assert sorted(p.name for p in ck.iterdir()) == ["best", "last"]
    assert load_checkpoint(trained).meta["epoch"] == 2


# ---------------------------------------------------------------------------------------------
# Code files from elsewhere


def _code_run(tmp_path: Path) -> tuple[Path, Path]:

    run = make_run(tmp_path / "run")
    img = tmp_path / "a.png"
    Image.fromarray(smooth_image(16, 24, 0)).save(img)
    codes = tmp_path / "codes.npz"
    assert main(["encode", str(run), str(img), "--out", str(codes)]) == 0
    return run, codes


def _rewrite(path: Path, *, meta=None, shapes=None, codes=None) -> None:
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    if meta is not None:
        arrays["meta"] = np.array(json.dumps(meta))
    if shapes is not None:
        arrays["shapes"] = np.asarray(shapes)
    if codes is not None:
        arrays["codes"] = np.asarray(codes)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.write_bytes(buf.getvalue())


def _meta(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return json.loads(str(z["meta"]))


@pytest.mark.parametrize("name", ["../../x", "/tmp/abs-x", "a/b", "..", ""])
def test_code_file_item_names_cannot_write_outside(tmp_path, capsys, name):
    run, codes = _code_run(tmp_path)
    meta = _meta(codes)
    meta["names"] = [name]
    _rewrite(codes, meta=meta)
    out = tmp_path / "out" / "in"
    before = tree(tmp_path)
    code, err = run_cli(["decode", str(run), str(codes), "--out", str(out)], capsys)
    one_line(code, err, "codes.npz")
    assert tree(tmp_path) == before
    assert not Path("/tmp/abs-x.png").exists()


@pytest.mark.parametrize("edit, needle", [
    (dict(shapes=[[0, 6]], codes=np.zeros(0, np.uint8)), "empty"),
    (dict(shapes=[[2, 0]], codes=np.zeros(0, np.uint8)), "empty"),
    ("lie", "65536"),
    ("grid", "does not describe"),
    ("items", "items"),
])
def test_bad_code_files_are_one_line(tmp_path, capsys, edit, needle):
    run, codes = _code_run(tmp_path)
    meta = _meta(codes)
    if edit == "lie":  # a codebook size the model does not have (and codes beyond its own)
        meta["codebook_size"] = 65536
        _rewrite(codes, meta=meta, codes=np.full(24, 60000, np.uint16))
    elif edit == "grid":
        meta["items"][0]["height"] = 64
        _rewrite(codes, meta=meta)
    elif edit == "items":
        meta["items"] = []
        _rewrite(codes, meta=meta)
    else:
        _rewrite(codes, **edit)
    code, err = run_cli(["decode", str(run), str(codes), "--out", str(tmp_path / "o")], capsys)
    one_line(code, err, "codes.npz")
    assert needle in err or needle == "empty" and "empty" in err, err
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


@given(meta_edit=st.dictionaries(
           st.sampled_from(["names", "items", "codebook_size", "num_quantizers", "task",
                            "format_version", "fingerprint", "bits_per_code"]),
           st.one_of(st.none(), st.integers(-3, 70000), st.text(max_size=8),
                     st.lists(st.one_of(st.text(max_size=6), st.integers(-2, 40),
                                        st.dictionaries(st.sampled_from(["height", "width"]),
                                                        st.integers(-2, 100), max_size=2)),
                              max_size=3)),
           max_size=3),
       shapes=st.one_of(st.none(), st.lists(st.lists(st.integers(-2, 9), min_size=1,
                                                     max_size=3), min_size=0, max_size=3)),
       n_codes=st.one_of(st.none(), st.integers(0, 40)))
@hsettings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_fuzzed_code_files_never_traceback_nor_write_outside(tmp_path_factory, meta_edit,
                                                             shapes, n_codes):
    root = tmp_path_factory.mktemp("codefuzz")
    run, codes = _code_run(root)
    meta = {**_meta(codes), **meta_edit}
    _rewrite(codes, meta=meta,
             shapes=None if shapes is None or any(len(s) != len(shapes[0]) for s in shapes)
             else np.asarray(shapes, dtype=np.int64).reshape(len(shapes), -1) if shapes
             else np.zeros((0, 2), np.int64),
             codes=None if n_codes is None else np.arange(n_codes, dtype=np.uint8) % 40)
    out = root / "out"
    before = tree(root)
    assert main(["decode", str(run), str(codes), "--out", str(out)]) in (0, 2)
    assert all(p.startswith("out") for p in tree(root) - before)


@pytest.mark.parametrize("samples, needle", [
    (np.full(8000, 1e30, np.float32), "absurd"),
    (np.array([0.1], np.float32), "too short"),
])
def test_absurd_audio_is_one_line_in_encode_and_reconstruct(tmp_path, capsys, samples, needle):
    from vqkit.checkpoint import checkpoint_dir, save_checkpoint
    from vqkit.config import get_preset
    from vqkit.models import model_for

    cfg = get_preset("l2arctic")
    cfg.model.hidden_channels, cfg.model.residual_channels, cfg.model.dim = 16, 8, 8
    cfg.quantizer.codebook_size = 16
    run = tmp_path / "run"
    save_checkpoint(checkpoint_dir(run, "best"), model=model_for(cfg), config=cfg, state={},
                    meta={"step": 0, "epoch": 0})
    bad = tmp_path / "bad.wav"
    bad.write_bytes(wav_bytes(samples, subtype="FLOAT"))
    for args in (["encode", str(run), str(bad), "--out", str(tmp_path / "c.npz")],
                 ["reconstruct", str(run), str(bad), "--out", str(tmp_path / "o")]):
        code, err = run_cli(args, capsys)
        one_line(code, err, "bad.wav", needle)
    assert not (tmp_path / "c.npz").exists()
