import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vqkit.config import ModelConfig, QuantizerConfig, get_preset
from vqkit.models import build_model


def small(**model):
    cfg = ModelConfig(hidden_channels=16, residual_channels=8, dim=8, **model)
    return build_model(cfg, QuantizerConfig(codebook_size=16))


def test_thesis_model_maps_32x32_to_8x8_codes():
    c = get_preset("cifar10-seed")
    m = build_model(c.model, c.quantizer).eval()
    x = torch.rand(2, 3, 32, 32) - 0.5
    recon, out = m(x)
    assert recon.shape == x.shape
    assert out.codes.shape == (2, 8, 8) and out.codes.dtype == torch.long
    assert out.quantized.shape == (2, 64, 8, 8)
    assert int(out.codes.min()) >= 0 and int(out.codes.max()) < 512


@settings(max_examples=10, deadline=None)
@given(h=st.integers(1, 6), w=st.integers(1, 6), downs=st.integers(1, 3))
def test_fully_convolutional(h, w, downs):
    m = small(num_downsamples=downs).eval()
    f = 2**downs
    x = torch.rand(1, 3, h * f, w * f)
    recon, out = m(x)
    assert recon.shape == x.shape and out.codes.shape == (1, h, w)
    assert torch.equal(m.decode(m.encode(x)), recon)


def test_encode_decode_match_forward_in_eval():
    m = small().eval()
    x = torch.rand(3, 3, 16, 24)
    recon, out = m(x)
    assert torch.equal(m.encode(x), out.codes)
    assert torch.equal(m.decode(out.codes), recon)


@pytest.mark.parametrize("shape", [(2, 3, 30, 32), (2, 1, 32, 32), (3, 32, 32)])
def test_bad_shapes_raise_clear_errors(shape):
    with pytest.raises(ValueError, match="expected|divisible"):
        small()(torch.rand(*shape))


def test_gradients_reach_encoder_through_quantizer():
    m = small().train()
    x = torch.rand(4, 3, 16, 16)
    recon, out = m(x)
    ((recon - x) ** 2).mean().backward()
    first = m.encoder.net[0].weight.grad
    assert first is not None and first.abs().sum() > 0
