"""Linear probes: the classifier learns what is linearly there, and the run probe's features."""

from __future__ import annotations

import torch

from vqkit.cli import main
from vqkit.probing import fit_linear_probe, image_features


def test_the_probe_separates_separable_classes_and_not_noise():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(300) % 3
    x = torch.randn(300, 5, generator=g)
    x[:, 0] += 6 * y  # class in one direction
    r = fit_linear_probe(x[:200], y[:200], x[200:], y[200:], classes=3)
    assert r["accuracy"] > 0.95
    noise = torch.randn(300, 5, generator=g)
    r = fit_linear_probe(noise[:200], y[:200], noise[200:], y[200:], classes=3)
    assert r["accuracy"] < 0.6


def test_features_of_a_run(tmp_path, cifar_root, tiny_image_config, capsys):
    from vqkit.models import load_model
    from vqkit.training.train import train

    cfg = tiny_image_config(epochs=1, batch_size=16, num_threads=1)
    cfg.data.root = str(cifar_root)
    train(cfg, tmp_path / "vq", progress=False)
    model, _ = load_model(tmp_path / "vq")
    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    f = image_features(model, images, batch_size=2)
    assert f["code_embeddings"].shape == (5, 8) and f["pixels"].shape == (5, 3072)
    torch.testing.assert_close(f["bag_of_codes"].sum(1), torch.ones(5))  # a histogram each
    assert main(["probe", str(tmp_path / "vq"), "--max-train", "32", "--max-items", "16",
                 "--json", str(tmp_path / "p.json")]) == 0
    out = capsys.readouterr().out
    assert "bag_of_codes" in out and "pixels" in out and (tmp_path / "p.json").exists()


def test_speech_probes_read_transcripts_and_speakers(tmp_path, monkeypatch, capsys):
    import json

    from test_evaluate import untrained_run
    from test_speech_training import SPEAKERS, TINY, write_corpus

    from vqkit.codes.speech_cache import load_speech_codes
    from vqkit.config import apply_overrides, get_preset
    from vqkit.models import load_model
    from vqkit.probing.speech import speech_features, speech_labels

    monkeypatch.setenv("VQKIT_DATA", str(tmp_path / "vqkit-data"))
    corpus = write_corpus(tmp_path / "corpus")
    for spk in SPEAKERS:
        (corpus / spk / "transcript").mkdir()
        for u in range(4):
            (corpus / spk / "transcript" / f"utt_{u}.txt").write_text(["yes", "no"][u % 2] + "\n")
    cfg = get_preset("l2arctic")
    apply_overrides(cfg, TINY)
    cfg.data.root = str(corpus)
    run = untrained_run(tmp_path / "run", cfg)
    model, cfg = load_model(run)
    sc = load_speech_codes(model, cfg, "speakers:AAA,CCC", torch.device("cpu"))
    labels = speech_labels(sc)
    assert labels["transcript"] == ["yes", "no"] * 4
    assert labels["speaker"] == ["AAA"] * 4 + ["CCC"] * 4
    f = speech_features(model, sc)
    # 8 dims x 8 code rows, mean and std; 2 stages x 16 codes; 32 mel bins, mean and std
    assert f["code_embeddings"].shape == (8, 2 * 8 * 8) and f["mels"].shape == (8, 64)
    torch.testing.assert_close(f["bag_of_codes"].sum(1), torch.ones(8))
    torch.testing.assert_close(f["mels"][0, :32], torch.from_numpy(sc.mels[0]).mean(1))
    split = "speakers:" + ",".join(SPEAKERS)
    assert main(["probe", str(run), "--train-split", split, "--split", split,
                 "--json", str(tmp_path / "p.json")]) == 0
    out = capsys.readouterr().out
    assert "transcript (2 classes" in out and "speaker (3 classes" in out and "mels" in out
    r = json.loads((tmp_path / "p.json").read_text())
    assert r["tasks"]["speaker"]["mels_train_accuracy"] == 1.0  # tones of distinct pitch
    (corpus / "AAA" / "transcript" / "utt_0.txt").unlink()
    assert main(["probe", str(run), "--train-split", split, "--split", split]) == 0
    assert "transcript: no transcripts" in capsys.readouterr().out
