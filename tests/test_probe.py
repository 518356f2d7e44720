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
