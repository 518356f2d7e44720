"""``vqkit evaluate`` writes RUN/eval/<split>/: metrics, the split's code histogram, samples.

The runs here hold an untrained tiny model (evaluation only needs weights), so the tests check
what is written against what the model computes, not against trained quality.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from test_speech_training import TINY, write_corpus

from vqkit.audio.io import load_audio
from vqkit.audio.pipeline import wav_to_model_input
from vqkit.checkpoint import checkpoint_dir, save_checkpoint
from vqkit.cli import main
from vqkit.config import apply_overrides, get_preset
from vqkit.data.cifar10 import load_cifar10
from vqkit.data.images import images_to_model_input
from vqkit.errors import DataError, VQKitError
from vqkit.evaluation.artifacts import (
    FORMAT_VERSION,
    Evaluation,
    ImageSamples,
    evaluation_dir,
    evaluation_folders,
    read_evaluation,
    split_folder_name,
    write_evaluation,
)
from vqkit.evaluation.evaluate import evaluate
from vqkit.models import build_model, load_model
from vqkit.quantizers.stats import code_histogram, histogram_stats


def untrained_run(path, cfg, *, step=7, epoch=2):
    """A run directory whose best and last checkpoints hold an untrained model of ``cfg``."""
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.quantizer).eval()
    for which in ("best", "last"):
        save_checkpoint(checkpoint_dir(path, which), model=model, config=cfg, state={},
                        meta={"step": step, "epoch": epoch})
    cfg.save(path / "config.json")
    return path


@pytest.fixture
def image_run(tmp_path, cifar_root):
    cfg = get_preset("cifar10")
    apply_overrides(cfg, ["model.hidden_channels=16", "model.residual_channels=8",
                          "model.dim=8", "quantizer.codebook_size=32"])
    cfg.data.root = str(cifar_root)
    return untrained_run(tmp_path / "run", cfg)


def test_image_evaluation_folder_holds_metrics_histogram_and_samples(image_run, cifar_root):
    js = image_run / "eval.json"
    metrics = evaluate(image_run, split="val", json_path=js)
    assert json.loads(js.read_text()) == metrics  # the --json file is as before
    assert {"run", "split", "checkpoint", "psnr", "bits_per_pixel"} <= set(metrics)
    assert (image_run / "original_and_reconstructed.png").stat().st_size > 1000
    folder = image_run / "eval" / "val"
    assert evaluation_folders(image_run) == [folder]
    header = json.loads((folder / "metrics.json").read_text())
    assert header["format_version"] == FORMAT_VERSION and header["split"] == "val"
    assert header["checkpoint"] == {"name": "best", "step": 7, "epoch": 2}
    assert header["run"] == str(image_run) and header["data"] == str(cifar_root)
    assert {"run": str(image_run), "split": "val", "checkpoint": "best",
            **header["metrics"], "about": header["about"]} == metrics
    assert header["about"] == {"definition": "CIFAR-10 data_batch_5", "warnings": [],
                               "classes": {f"c{k}": (2 if k < 6 else 1) for k in range(10)}}
    # the histogram is every code of the split, as the model gives them
    model, _ = load_model(image_run)
    images, _ = load_cifar10(str(cifar_root), "val")
    with torch.no_grad():
        x = images_to_model_input(images)
        x_hat, out = model(x)
    counts = np.load(folder / "code_counts.npy")
    assert counts.dtype == np.int64 and counts.shape == (1, 32)
    assert np.array_equal(counts, code_histogram(out.codes, 32).numpy())
    assert counts.sum() == 16 * 8 * 8
    assert histogram_stats(counts) == (metrics["perplexity"], metrics["codebook_usage"])
    # samples: the first 16 images and their reconstructions, uint8 (N, H, W, C)
    with np.load(folder / "samples.npz", allow_pickle=False) as z:
        assert str(z["kind"]) == "image"
        originals, recons = z["originals"], z["reconstructions"]
    assert originals.dtype == recons.dtype == np.uint8 and originals.shape == (16, 32, 32, 3)
    assert np.array_equal(originals, images.permute(0, 2, 3, 1).numpy())
    expected = ((x_hat + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255).round()
    assert np.array_equal(recons, expected.astype(np.uint8))
    ev = read_evaluation(folder)
    assert ev.metrics == header["metrics"] and ev.checkpoint["step"] == 7
    assert isinstance(ev.samples, ImageSamples) and np.array_equal(ev.samples.originals,
                                                                   originals)


def test_evaluating_again_replaces_the_folder(image_run, cifar_root, capsys):
    assert main(["evaluate", str(image_run), "--split", "test", "--max-items", "4"]) == 0
    out = capsys.readouterr().out
    assert "on split 'test'" in out and f"saved in {image_run / 'eval' / 'test'}" in out
    folder = evaluation_dir(image_run, "test")
    first = json.loads((folder / "metrics.json").read_text())["metrics"]
    assert first["n_images"] == 4 and np.load(folder / "code_counts.npy").sum() == 4 * 64
    (folder / "stray.txt").write_text("left by hand")
    evaluate(image_run, split="test", max_items=8, which="last")
    again = read_evaluation(folder)
    assert again.metrics["n_images"] == 8 and again.checkpoint["name"] == "last"
    assert again.samples.originals.shape[0] == 8 and not (folder / "stray.txt").exists()
    assert sorted(p.name for p in folder.parent.iterdir()) == ["test"]  # no temporary folders


def test_split_folder_names_stay_inside_the_eval_folder(tmp_path):
    assert split_folder_name("val") == "val"
    assert split_folder_name("speakers:A,B") == "speakers-A-B"
    assert split_folder_name("speakers: hkk, bwc") == "speakers-hkk-bwc"
    assert split_folder_name("../../etc") == "etc" and split_folder_name("a/b\\c") == "a-b-c"
    for bad in ("", "..", ":/", "."):
        with pytest.raises(VQKitError, match="folder name"):
            split_folder_name(bad)
    assert evaluation_dir(tmp_path, "../x").parent == tmp_path / "eval"


def test_eval_folder_errors_name_the_file(image_run, tmp_path):
    evaluate(image_run, split="val")
    folder = image_run / "eval" / "val"
    header = json.loads((folder / "metrics.json").read_text())
    (folder / "metrics.json").write_text(json.dumps({**header, "format_version": 99}))
    with pytest.raises(DataError, match=r"metrics\.json: evaluation format 99"):
        read_evaluation(folder)
    (folder / "metrics.json").write_text(json.dumps(header))
    np.save(folder / "code_counts.npy", np.zeros(3))
    with pytest.raises(DataError, match=r"code_counts\.npy: expected \(K, codebook_size\)"):
        read_evaluation(folder)
    (folder / "samples.npz").write_bytes(b"truncated")
    np.save(folder / "code_counts.npy", np.zeros((1, 4), dtype=np.int64))
    with pytest.raises(DataError, match=r"samples\.npz: unreadable"):
        read_evaluation(folder)
    # never replaces a folder that vqkit did not write
    (tmp_path / "r" / "eval" / "val").mkdir(parents=True)
    (tmp_path / "r" / "eval" / "val" / "mine.txt").write_text("keep")
    with pytest.raises(VQKitError, match="not an evaluation folder"):
        write_evaluation(tmp_path / "r", Evaluation({"mse": 0.5}, np.ones((1, 4), np.int64),
                                                    split="val"))
    assert (tmp_path / "r" / "eval" / "val" / "mine.txt").read_text() == "keep"


# ---------------------------------------------------------------------------------------------
# Speech


def _peak_time_zeroed(wav: bytes) -> bytes:
    """WAV bytes with the time stamp of libsndfile's PEAK chunk (float WAVs) set to zero: the
    only bytes that differ between two writes of the same samples at different seconds."""
    i = wav.find(b"PEAK")
    assert i > 0
    return wav[:i + 12] + b"\0\0\0\0" + wav[i + 16:]


@pytest.fixture
def speech_run(tmp_path, monkeypatch):
    monkeypatch.setenv("VQKIT_DATA", str(tmp_path / "vqkit-data"))
    corpus = write_corpus(tmp_path / "corpus")
    cfg = get_preset("l2arctic")
    apply_overrides(cfg, TINY)
    cfg.data.root = str(corpus)
    return untrained_run(tmp_path / "run", cfg), corpus


def test_speech_samples_are_what_vqkit_reconstruct_writes(speech_run, tmp_path):
    run, corpus = speech_run
    metrics = evaluate(run, split="speakers:CCC")
    folder = run / "eval" / "speakers-CCC"
    assert (run / "speech_reconstruction.png").is_file()
    ev = read_evaluation(folder)
    assert ev.split == "speakers:CCC" and ev.metrics["n_utterances"] == 4
    assert [s.name for s in ev.samples] == ["CCC/utt_0", "CCC/utt_1", "CCC/utt_2"]
    sources = [corpus / "CCC" / "wav" / f"utt_{u}.wav" for u in range(3)]
    assert main(["reconstruct", str(run), *map(str, sources), "--out", str(tmp_path / "rec")]) == 0
    model, cfg = load_model(run)
    for i, (sample, src) in enumerate(zip(ev.samples, sources, strict=True)):
        for kind, name in (("reconstruction", f"{src.stem}.wav"),
                           ("oracle", f"{src.stem}.griffinlim.wav")):
            ours = (folder / f"sample-{i}.{kind}.wav").read_bytes()
            theirs = (tmp_path / "rec" / name).read_bytes()
            assert _peak_time_zeroed(ours) == _peak_time_zeroed(theirs), (i, kind)
        y = load_audio(src, sample_rate=16000)
        assert sample.sample_rate == 16000 and np.array_equal(sample.audio["original"], y)
        x, info = wav_to_model_input(y, cfg)
        n = info["n_frames"]
        assert np.array_equal(sample.mel, x[0, 0, :, :n].numpy())
        with torch.no_grad():
            x_hat, _ = model(x)
        assert np.array_equal(sample.mel_hat, x_hat[0, 0, :, :n].numpy())
        assert len(sample.audio["reconstruction"]) == len(y) == info["n_samples"]
    # the histogram counts the codes of real frames only: 32 / 4 mel rows x ceil(frames / 4)
    # columns per utterance, for each of the two residual stages
    counts = ev.code_counts
    assert counts.shape == (2, 16) and counts.dtype == np.int64
    frames = [1 + len(load_audio(corpus / "CCC" / "wav" / f"utt_{u}.wav", sample_rate=16000))
              // 256 for u in range(4)]
    assert (counts.sum(1) == sum(8 * math.ceil(f / 4) for f in frames)).all()
    assert histogram_stats(counts) == (metrics["perplexity"], metrics["codebook_usage"])
    with np.load(folder / "samples.npz", allow_pickle=False) as z:
        assert str(z["kind"]) == "speech" and z["mel"].shape[:2] == (3, 32)
