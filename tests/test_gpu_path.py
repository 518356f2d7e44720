"""The GPU code path, exercised on the CPU: no host sync per training step, quantizers in fp32
under bf16 autocast, the sync-free dead-code restart equal to the counting one."""

from __future__ import annotations

import copy
import traceback

import pytest
import torch

import vqkit.quantizers.vq as vq_module
from vqkit.data.cifar10 import load_cifar10
from vqkit.data.images import ImageData
from vqkit.quantizers import VectorQuantizer
from vqkit.training.train import train


def test_sync_free_restart_assigns_what_the_counting_restart_assigns():
    torch.manual_seed(0)
    q = VectorQuantizer(8, 32, ema_decay=0.99, dead_code_threshold=1.0).train()
    q.usage_count[::3] = 0.0  # a third of the codes are dead
    flat = torch.randn(100, 8)
    a, b = copy.deepcopy(q), copy.deepcopy(q)
    torch.manual_seed(5)
    dead_a = a.expire_codes_(flat)
    torch.manual_seed(5)
    dead_b = b._expire_without_sync_(flat, b.usage_count < b.dead_code_threshold)
    assert torch.equal(dead_a, dead_b) and int(dead_a.sum()) == 11
    for name in ("embed", "embed_sum", "cluster_size", "usage_count"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_quantizers_stay_fp32_under_bf16_autocast():
    torch.manual_seed(0)
    q = VectorQuantizer(8, 16).eval()
    x = torch.randn(2, 8, 4, 4)
    want = q.encode(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = q(x.to(torch.bfloat16))
        got = q.encode(x.to(torch.bfloat16))
    assert out.quantized.dtype == torch.float32
    # bf16 input rounds x: the codes may differ only where two codes are nearly tied
    assert (got == want).float().mean() > 0.9


@pytest.fixture
def data(cifar_root):
    return (ImageData(load_cifar10(cifar_root, "train")[0]),
            ImageData(load_cifar10(cifar_root, "val")[0]))


def test_bf16_training_runs_and_learns(tiny_image_config, data, tmp_path):
    cfg = tiny_image_config("cifar10", epochs=6, lr=3e-3, precision="bf16",
                            lr_schedule="constant")
    res = train(cfg, tmp_path / "run", progress=False, data=data)
    assert res.history[-1]["train_recon"] < 0.8 * res.history[0]["train_recon"]


def test_no_host_read_between_log_steps(tiny_image_config, data, tmp_path, monkeypatch):
    """With the CPU's free host reads switched off (as on a GPU), training steps between two log
    steps never read a tensor back (item, float, int, bool of a tensor would wait for a GPU)."""
    monkeypatch.setattr(vq_module, "host_reads_are_free", lambda device: False)
    cfg = tiny_image_config("cifar10", epochs=2, log_every_steps=1000,
                            checkpoint_every_minutes=0.0)
    cfg.quantizer.dead_code_threshold = 2.0
    reads: list[int] = []
    import vqkit.training.loop as loop

    real_step = loop.train_step

    def counting_step(r, batch):
        n = len(reads)
        out = real_step(r, batch)
        if r.state.step >= 1:  # after the first step's one-off k-means initialisation
            assert len(reads) == n, "a training step read a tensor back to the host"
        return out

    for name in ("item", "__float__", "__int__", "__bool__", "tolist"):
        real = getattr(torch.Tensor, name)

        def spy(self, *a, _real=real, **k):
            # torch's own CPU Adam reads its host-side step counter; on a GPU vqkit uses the
            # fused Adam, which keeps it on the device (schedule.build_optimizer)
            if not any("/torch/optim/" in f.filename for f in traceback.extract_stack()):
                reads.append(1)
            return _real(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, spy)
    monkeypatch.setattr(loop, "train_step", counting_step)
    res = train(cfg, tmp_path / "run", progress=False, data=data)
    assert res.step == 16


def test_compile_wraps_encoder_and_decoder_and_keeps_checkpoint_keys(tiny_image_config, data,
                                                                      tmp_path, monkeypatch):
    compiled = []

    def fake_compile(fn, **kw):
        compiled.append(fn.__qualname__)
        return fn

    monkeypatch.setattr(torch, "compile", fake_compile)
    cfg = tiny_image_config("cifar10", epochs=1, compile=True)
    train(cfg, tmp_path / "run", progress=False, data=data)
    assert compiled == ["Encoder.forward", "Decoder.forward"]
    from vqkit.models import load_model

    load_model(tmp_path / "run")  # same keys as an uncompiled model
