import json
import math

import pytest
import torch
from safetensors.torch import load_file

from vqkit.checkpoint import load_checkpoint
from vqkit.cli import main
from vqkit.data.cifar10 import load_cifar10
from vqkit.data.images import ImageData
from vqkit.errors import VQKitError
from vqkit.models import load_model
from vqkit.training.schedule import lr_factor
from vqkit.training.train import train


def data_for(root):
    return (ImageData(load_cifar10(root, "train")[0]), ImageData(load_cifar10(root, "val")[0]))


@pytest.mark.parametrize("preset", ["cifar10-seed", "cifar10"])
def test_training_lowers_the_loss(cifar_root, tiny_image_config, tmp_path, preset):
    cfg = tiny_image_config(preset, epochs=12, lr=3e-3, lr_schedule="constant")
    cfg.data.root = str(cifar_root)
    res = train(cfg, tmp_path / "run", progress=False)
    first, last = res.history[0], res.history[-1]
    assert last["train_recon"] < 0.7 * first["train_recon"]
    assert last["val_recon"] < first["val_recon"]
    assert res.epoch == 12 and res.step == 12 * 8  # 64 train images / batch 8
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert sum(r["kind"] == "epoch" for r in lines) == 12
    assert (tmp_path / "run" / "loss_vs_epochs.png").stat().st_size > 1000
    assert (tmp_path / "run" / "config.json").exists()


def test_resumed_training_equals_uninterrupted(cifar_root, tiny_image_config, tmp_path):
    """Stop mid-epoch, resume, and end with bit-identical weights and optimizer state."""
    cfg = tiny_image_config("cifar10", epochs=3)  # EMA, k-means, dead-code restart, cosine lr
    cfg.quantizer.dead_code_threshold = 2.0  # make restarts (which draw random numbers) happen
    data = data_for(cifar_root)
    full = train(cfg, tmp_path / "full", progress=False, data=data)
    cfg.train.max_steps = 11  # 8 steps per epoch: stops inside epoch 2
    part = train(cfg, tmp_path / "part", progress=False, data=data)
    assert part.step == 11 and part.stopped == "max_steps"
    resumed = train(None, tmp_path / "part", resume=True, overrides={"max_steps": 0},
                    progress=False, data=data)
    assert resumed.step == full.step == 24
    a = load_file(tmp_path / "full" / "checkpoints" / "last" / "model.safetensors")
    b = load_file(tmp_path / "part" / "checkpoints" / "last" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    sa = load_checkpoint(tmp_path / "full").state
    sb = load_checkpoint(tmp_path / "part").state
    assert sa["images_seen"] == sb["images_seen"]
    assert torch.equal(sa["rng_cpu"], sb["rng_cpu"])


def test_checkpoint_write_is_atomic(cifar_root, tiny_image_config, tmp_path, monkeypatch):
    cfg = tiny_image_config("cifar10-seed", epochs=1)
    data = data_for(cifar_root)
    train(cfg, tmp_path / "run", progress=False, data=data)
    before = load_file(tmp_path / "run" / "checkpoints" / "last" / "model.safetensors")

    import vqkit.checkpoint as ck

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ck.torch, "save", boom)
    with pytest.raises(OSError):
        train(None, tmp_path / "run", resume=True, overrides={"epochs": 2}, progress=False,
              data=data)
    after = load_checkpoint(tmp_path / "run")  # the old checkpoint is intact and loadable
    for k, v in before.items():
        assert torch.equal(after.model_state[k], v)
    assert after.meta["epoch"] == 1


def test_refuses_to_overwrite_a_run(cifar_root, tiny_image_config, tmp_path):
    cfg = tiny_image_config("cifar10-seed", epochs=1)
    data = data_for(cifar_root)
    train(cfg, tmp_path / "run", progress=False, data=data)
    with pytest.raises(VQKitError, match="--resume"):
        train(cfg, tmp_path / "run", progress=False, data=data)


def test_corrupt_checkpoint_is_a_clear_error(cifar_root, tiny_image_config, tmp_path):
    cfg = tiny_image_config("cifar10-seed", epochs=1)
    train(cfg, tmp_path / "run", progress=False, data=data_for(cifar_root))
    (tmp_path / "run" / "checkpoints" / "last" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(VQKitError, match="model.safetensors"):
        load_model(tmp_path / "run", "last")


def test_lr_schedules(tiny_image_config):
    cfg = tiny_image_config("cifar10-seed", epochs=10, lr_schedule="step", lr_step_epochs=2,
                            lr_gamma=0.5)
    assert [lr_factor(cfg.train, s, 10) for s in (0, 19, 20, 45)] == [1.0, 1.0, 0.5, 0.25]
    cfg.train.lr_schedule, cfg.train.warmup_steps = "cosine", 10
    assert lr_factor(cfg.train, 0, 10) == pytest.approx(0.1, rel=1e-3)
    assert lr_factor(cfg.train, 50, 10) == pytest.approx(0.5)
    assert lr_factor(cfg.train, 100, 10) == pytest.approx(0.0, abs=1e-12)


def test_time_budget_anneals_the_cosine_and_resumes_from_its_progress(
        cifar_root, tiny_image_config, tmp_path, monkeypatch):
    """Given max_minutes, the cosine reaches its end when the budget does, not at the epochs."""
    import vqkit.training.state as state_module

    calls = []

    def fake_elapsed_s(start_time, device):  # 6 s per step: a 1-minute budget is 10 steps
        calls.append(1)
        return 6.0 * len(calls)

    monkeypatch.setattr(state_module, "_elapsed_s", fake_elapsed_s)
    cfg = tiny_image_config("cifar10", epochs=100, max_minutes=1.0)  # 800 steps by epochs
    data = data_for(cifar_root)
    res = train(cfg, tmp_path / "run", progress=False, data=data)
    assert res.stopped == "max_minutes" and res.step == 10
    lrs = [json.loads(x)["lr"] for x in (tmp_path / "run" / "metrics.jsonl").read_text()
           .splitlines() if json.loads(x)["kind"] == "step"]
    assert len(lrs) == 10 and all(a > b for a, b in zip(lrs, lrs[1:], strict=False))
    assert lrs[4] == pytest.approx(cfg.train.lr * 0.5)  # half the budget: half the cosine
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)
    assert load_checkpoint(tmp_path / "run").state["lr_progress"] == pytest.approx(1.0)
    # the budget's end (mid-epoch) is validated and may become the best checkpoint
    stop = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert stop["kind"] == "stop" and stop["step"] == 10
    best = load_checkpoint(tmp_path / "run", "best").state
    assert best["best_val"] == min(stop["val_recon"], res.history[0]["val_recon"])
    assert best["step"] == (10 if stop["val_recon"] < res.history[0]["val_recon"] else 8)
    # resumed without a budget, the schedule does not jump back to its step-based value
    resumed = train(None, tmp_path / "run", resume=True, overrides={"max_steps": 12},
                    progress=False, data=data)
    assert resumed.step == 12
    assert load_checkpoint(tmp_path / "run").state["lr_progress"] == pytest.approx(1.0)
    steps = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text()
             .splitlines() if json.loads(x)["kind"] == "step"]
    assert steps[-1]["step"] == 12 and steps[-1]["lr"] == pytest.approx(0.0, abs=1e-12)
    # without a budget the clock plays no part
    assert lr_factor(cfg.train, 400, 8) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))


def test_num_threads_is_applied(cifar_root, tiny_image_config, tmp_path):
    before = torch.get_num_threads()
    try:
        cfg = tiny_image_config("cifar10-seed", epochs=1, num_threads=1)
        train(cfg, tmp_path / "run", progress=False, data=data_for(cifar_root))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_cli_train_resume_evaluate(cifar_root, tmp_path, capsys):
    out = tmp_path / "run"
    common = ["--set", "model.hidden_channels=16", "--set", "model.residual_channels=8",
              "--set", "model.dim=8", "--set", "quantizer.codebook_size=16"]
    assert main(["train", "image", "--preset", "cifar10", "--data", str(cifar_root),
                 "--out", str(out), "--max-steps", "5", "--batch-size", "8", "--epochs", "2",
                 "--no-progress", *common]) == 0
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    assert "2 epochs, 16 steps" in capsys.readouterr().out
    js = tmp_path / "eval.json"
    assert main(["evaluate", str(out), "--split", "val", "--json", str(js)]) == 0
    m = json.loads(js.read_text())
    for k in ("mse", "psnr", "ssim", "perplexity", "codebook_usage", "n_images"):
        assert k in m
    assert m["n_images"] == 16 and 0 < m["codebook_usage"] <= 1 and m["psnr"] > 0
    assert (out / "original_and_reconstructed.png").stat().st_size > 1000
    assert main(["evaluate", str(out), "--split", "test"]) == 0


def test_cli_errors_are_one_line(cifar_root, tmp_path, capsys):
    assert main(["train", "image", "--data", str(tmp_path / "nope"), "--out",
                 str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope" in err and "Traceback" not in err
    (cifar_root / "cifar-10-batches-py" / "data_batch_5").unlink()
    assert main(["train", "image", "--data", str(cifar_root), "--out", str(tmp_path / "r")]) == 2
    assert "data_batch_5" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "missing-run")]) == 2
    assert main(["train", "image", "--out", str(tmp_path / "r"), "--set", "train.lr=x"]) == 2
    assert main([]) == 1


def test_evaluate_reports_the_checkpoint_it_used(cifar_root, tiny_image_config, tmp_path):
    from vqkit.evaluation.evaluate import evaluate

    cfg = tiny_image_config("cifar10-seed", epochs=1, max_steps=3)  # stops before an epoch ends
    train(cfg, tmp_path / "run", progress=False, data=data_for(cifar_root))
    m = evaluate(tmp_path / "run", data=str(cifar_root), which="best")
    assert m["checkpoint"] == "last"
    assert oct((tmp_path / "run" / "config.json").stat().st_mode & 0o777) != "0o600"


def test_best_checkpoint_has_the_lowest_val_reconstruction(cifar_root, tiny_image_config,
                                                           tmp_path):
    cfg = tiny_image_config("cifar10", epochs=4)
    res = train(cfg, tmp_path / "run", progress=False, data=data_for(cifar_root))
    recons = [r["val_recon"] for r in res.history]
    best_epoch = 1 + recons.index(min(recons))
    assert load_checkpoint(tmp_path / "run", "best").meta["epoch"] == best_epoch
    assert res.best_val == min(recons) and res.best_metric == "val_recon"


def test_image_batches_cover_each_image_once_per_epoch_and_resume_mid_epoch(cifar_root):
    """What the loop relies on: an epoch is a permutation of the split drawn from (seed, epoch),
    ``start`` resumes it at a batch, and ranks split every batch between them."""
    from vqkit.data.source import BatchSource

    train_data, _ = data_for(cifar_root)
    assert isinstance(train_data, BatchSource)
    assert train_data.num_batches(8) == 8 and train_data.num_batches(10) == 7  # 64 images
    flat = train_data.images.float().div(255).sub(0.5).flatten(1)

    def ids(batches):  # which image each row is (images are distinct)
        return [int(((flat - row.flatten()) ** 2).sum(1).argmin()) for b in batches for row in b]

    epoch0 = ids(train_data.batches(10, epoch=0, seed=3))
    assert sorted(epoch0) == list(range(64))
    assert ids(train_data.batches(10, epoch=0, seed=3)) == epoch0  # same (seed, epoch)
    assert ids(train_data.batches(10, epoch=1, seed=3)) != epoch0  # reshuffled
    assert ids(train_data.batches(10, epoch=0, seed=3, start=4)) == epoch0[40:]
    ranks = [ids(train_data.batches(10, epoch=0, seed=3, rank=r, world_size=2)) for r in (0, 1)]
    assert sorted(ranks[0] + ranks[1]) == list(range(64)) and not set(ranks[0]) & set(ranks[1])
    assert ids(train_data.batches(10)) == list(range(64))  # unshuffled: in order
