"""Behaviour of the quantizers: lookup, gradient estimators, codebook updates, FSQ grid, RVQ
stages, and the shared interface through the factory."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from vqkit.config import QuantizerConfig
from vqkit.errors import ConfigError
from vqkit.quantizers import (
    FiniteScalarQuantizer,
    ResidualVectorQuantizer,
    VectorQuantizer,
    build_quantizer,
    rotate_to,
    straight_through,
)
from vqkit.quantizers.base import channels_last
from vqkit.quantizers.stats import (
    code_histogram,
    code_statistics,
    histogram_stats,
    histogram_summary,
)
from vqkit.quantizers.vq import nearest_code

FAST = settings(max_examples=25, deadline=None)


def clustered(n: int, dim: int, k: int, seed: int = 0, spread: float = 4.0) -> torch.Tensor:
    """(n, dim) points around k well-separated centres."""
    g = torch.Generator().manual_seed(seed)
    centres = spread * torch.randn(k, dim, generator=g)
    return centres[torch.randint(0, k, (n,), generator=g)] + 0.1 * torch.randn(n, dim, generator=g)


def as_features(rows: torch.Tensor, b: int) -> torch.Tensor:
    """(b * t, D) rows -> (b, D, t) channel-first features."""
    return rows.view(b, -1, rows.shape[1]).transpose(1, 2).contiguous()


def expected_rotation_grad(e: torch.Tensor, q: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """s * R^T g per row, R = I - 2 w w^T + 2 q_hat e_hat^T, s = |q| / |e| (arXiv 2410.06424)."""
    out = []
    for ei, qi, gi in zip(e, q, g, strict=True):
        eh, qh = ei / ei.norm(), qi / qi.norm()
        w = (eh + qh) / (eh + qh).norm()
        eye = torch.eye(len(ei), dtype=ei.dtype)
        r = eye - 2 * torch.outer(w, w) + 2 * torch.outer(qh, eh)
        out.append(qi.norm() / ei.norm() * r.t() @ gi)
    return torch.stack(out)


# -- VectorQuantizer ---------------------------------------------------------------------------


@FAST
@given(
    n=st.integers(1, 40), k=st.integers(2, 16), d=st.integers(1, 8), seed=st.integers(0, 10**6)
)
def test_nearest_code_matches_brute_force(n, k, d, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    embed = torch.randn(k, d, generator=g, dtype=torch.float64)
    expected = torch.cdist(x, embed).argmin(dim=1)
    assert torch.equal(nearest_code(x, embed), expected)


@FAST
@given(b=st.integers(1, 3), t=st.integers(1, 6), seed=st.integers(0, 10**6))
def test_vq_encode_is_nearest_codebook_row(b, t, seed):
    torch.manual_seed(seed)
    vq = VectorQuantizer(3, 8).double().eval()
    vq.embed.data.normal_()
    x = torch.randn(b, 3, t, dtype=torch.float64)
    expected = torch.cdist(channels_last(x).reshape(-1, 3), vq.embed).argmin(1).view(b, t)
    assert torch.equal(vq.encode(x), expected)


def test_straight_through_copies_gradient():
    torch.manual_seed(0)
    x = torch.randn(5, 3, requires_grad=True)
    q = torch.randn(5, 3)
    g = torch.randn(5, 3)
    out = straight_through(x, q)
    assert torch.allclose(out, q)
    out.backward(g)
    assert torch.equal(x.grad, g)


def test_vq_straight_through_gradient_reaches_input_unchanged():
    torch.manual_seed(0)
    vq = VectorQuantizer(4, 8).train()
    x = torch.randn(2, 4, 3, 3, requires_grad=True)
    out = vq(x)
    g = torch.randn_like(out.quantized)
    out.quantized.backward(g)
    assert torch.equal(x.grad, g)
    # The forward value is the chosen code.
    assert torch.allclose(out.quantized, vq.decode(out.codes), atol=1e-6)


def test_rotate_to_value_and_analytic_gradient():
    torch.manual_seed(0)
    e = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    q = torch.randn(6, 4, dtype=torch.float64)
    g = torch.randn(6, 4, dtype=torch.float64)
    out = rotate_to(e, q)
    assert torch.allclose(out, q, atol=1e-10)
    out.backward(g)
    expected = expected_rotation_grad(e.detach(), q, g)
    assert torch.allclose(e.grad, expected, atol=1e-10)
    assert not torch.allclose(e.grad, g, atol=1e-3)  # not the straight-through gradient


def test_vq_rotation_trick_gradient():
    torch.manual_seed(0)
    vq = VectorQuantizer(3, 8, rotation_trick=True).double().train()
    vq.embed.data.normal_()
    x = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    out = vq(x)
    assert torch.allclose(out.quantized, vq.decode(out.codes), atol=1e-10)
    g = torch.randn_like(out.quantized)
    out.quantized.backward(g)
    e = channels_last(x.detach()).reshape(-1, 3)
    q = vq.embed.detach()[out.codes.reshape(-1)]
    expected = expected_rotation_grad(e, q, channels_last(g).reshape(-1, 3))
    assert torch.allclose(channels_last(x.grad).reshape(-1, 3), expected, atol=1e-10)
    assert not torch.allclose(x.grad, g, atol=1e-3)


def test_ema_statistics_follow_the_formula():
    torch.manual_seed(0)
    d, k = 0.9, 4
    vq = VectorQuantizer(3, k, ema_decay=d).train()
    vq.embed.copy_(torch.randn(k, 3))
    vq.embed_sum.copy_(vq.embed)
    old_sum = vq.embed_sum.clone()
    x = torch.randn(2, 3, 5)
    codes = vq.encode(x).reshape(-1)
    rows = channels_last(x).reshape(-1, 3)
    counts = torch.bincount(codes, minlength=k).float()
    sums = torch.stack([rows[codes == i].sum(0) for i in range(k)])

    out = vq(x)

    assert torch.equal(out.codes.reshape(-1), codes)  # lookup before the update
    cluster = d * 1.0 + (1 - d) * counts
    embed_sum = d * old_sum + (1 - d) * sums
    n = cluster.sum()
    smoothed = (cluster + vq.eps) / (n + k * vq.eps) * n
    assert torch.allclose(vq.cluster_size, cluster, atol=1e-6)
    assert torch.allclose(vq.embed_sum, embed_sum, atol=1e-6)
    assert torch.allclose(vq.embed, embed_sum / smoothed[:, None], atol=1e-5)
    assert out.losses["codebook"].item() == 0.0  # EMA drops the codebook loss


def test_ema_does_not_update_in_eval():
    vq = VectorQuantizer(3, 4, ema_decay=0.9).eval()
    before = (vq.embed.clone(), vq.embed_sum.clone(), vq.cluster_size.clone())
    vq(torch.randn(2, 3, 5))
    after = (vq.embed, vq.embed_sum, vq.cluster_size)
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_dead_code_restart_touches_only_dead_codes():
    torch.manual_seed(0)
    vq = VectorQuantizer(4, 8, codebook_dim=3, dead_code_threshold=0.5).train()
    dead = torch.tensor([1, 4, 6])
    vq.usage_count.fill_(1.0)
    vq.usage_count[dead] = 0.1
    before = vq.embed.detach().clone()
    x = torch.randn(2, 4, 6)
    with torch.no_grad():
        projected = vq.project_in(channels_last(x)).reshape(-1, 3)
    vq(x)
    changed = (vq.embed.detach() != before).any(1).nonzero().flatten()
    assert torch.equal(changed, dead)
    for row in vq.embed.detach()[dead]:
        assert (projected == row).all(1).any(), "restarted code is not an input row"


def test_no_restart_without_threshold():
    vq = VectorQuantizer(4, 8).train()
    vq.usage_count.zero_()
    before = vq.embed.detach().clone()
    vq(torch.randn(2, 4, 6))
    assert torch.equal(vq.embed.detach(), before)


def test_kmeans_init_once_on_first_training_batch():
    torch.manual_seed(0)
    rows = clustered(256, 2, 4)
    x = as_features(rows, 4)
    vq = VectorQuantizer(2, 4, kmeans_init=True)

    def mse() -> float:
        return F.mse_loss(vq.decode(vq.encode(x)), x).item()

    vq.eval()
    start, err0 = vq.embed.detach().clone(), mse()
    vq(x)
    assert not bool(vq.initted) and torch.equal(vq.embed.detach(), start)

    vq.train()
    vq(x)
    assert bool(vq.initted)
    after = vq.embed.detach().clone()
    assert not torch.equal(after, start)
    assert mse() < 0.1 * err0  # codes moved onto the data
    # Codes are (means of) data rows: each lies near some data point.
    assert torch.cdist(after, rows).min(1).values.max() < 5.0

    vq(as_features(clustered(256, 2, 4, seed=1), 4))  # later batches do not re-initialise
    assert torch.equal(vq.embed.detach(), after)


def test_kmeans_init_survives_a_dead_code_threshold_above_one():
    torch.manual_seed(0)
    rows = clustered(256, 2, 4)
    x = as_features(rows, 4)
    plain = VectorQuantizer(2, 4, kmeans_init=True).train()
    torch.manual_seed(1)
    plain(x)
    with_restart = VectorQuantizer(2, 4, kmeans_init=True, dead_code_threshold=2.0).train()
    torch.manual_seed(1)
    with_restart(x)
    assert torch.equal(plain.embed.detach(), with_restart.embed.detach())


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_cosine_codes_and_outputs_are_unit_vectors(ema_decay):
    torch.manual_seed(0)
    vq = VectorQuantizer(4, 8, cosine=True, ema_decay=ema_decay)
    x = torch.randn(2, 4, 5)
    vq.train()
    vq(x)
    vq.eval()
    cb = vq.codebook()
    assert torch.allclose(cb.norm(dim=1), torch.ones(8), atol=1e-5)
    out = vq(x)
    assert torch.allclose(out.quantized.norm(dim=1), torch.ones(2, 5), atol=1e-5)
    sim = F.normalize(channels_last(x).reshape(-1, 4), dim=1) @ cb.t()
    assert torch.equal(out.codes.reshape(-1), sim.argmax(1))


def test_low_dim_codebook_gradients_reach_projections():
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 16, codebook_dim=2).train()
    assert vq.codebook().shape == (16, 2)
    x = torch.randn(2, 8, 3, 3, requires_grad=True)
    out = vq(x)
    assert out.quantized.shape == x.shape
    (out.quantized.square().sum() + out.loss).backward()
    for p in (vq.project_in.weight, vq.project_out.weight, vq.embed, x):
        assert p.grad is not None and p.grad.abs().sum() > 0


# -- FiniteScalarQuantizer -----------------------------------------------------------------------

levels_strategy = st.lists(st.integers(2, 9), min_size=1, max_size=5)


@FAST
@given(levels=levels_strategy, seed=st.integers(0, 10**6))
def test_fsq_codes_vectors_round_trip(levels, seed):
    fsq = FiniteScalarQuantizer(len(levels), levels)
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, fsq.codebook_size, (3, 7), generator=g)
    vectors = fsq.codes_to_vectors(codes)
    assert vectors.shape == (3, 7, len(levels))
    assert vectors.abs().max() <= 1
    assert torch.equal(fsq.vectors_to_codes(vectors), codes)
    assert torch.equal(fsq.codes_to_vectors(fsq.vectors_to_codes(vectors)), vectors)
    # Every code is reachable and distinct.
    all_codes = torch.arange(fsq.codebook_size)
    assert torch.equal(fsq.vectors_to_codes(fsq.codes_to_vectors(all_codes)), all_codes)


@FAST
@given(levels=levels_strategy, scale=st.floats(0.1, 10.0), seed=st.integers(0, 10**6))
def test_fsq_outputs_lie_on_the_level_grid(levels, scale, seed):
    torch.manual_seed(seed)
    fsq = FiniteScalarQuantizer(len(levels), levels).eval()
    out = fsq(scale * torch.randn(4, len(levels), 9))
    q = out.quantized
    assert q.abs().max() <= 1
    assert out.codes.min() >= 0 and out.codes.max() < fsq.codebook_size
    for i, n in enumerate(levels):
        steps = q[:, i] * (n // 2)
        assert torch.equal(steps, steps.round())
        assert steps.min() >= -(n // 2) and steps.max() <= n - 1 - n // 2


@pytest.mark.parametrize("levels", [[2], [3, 4], [8, 5, 5, 5], [7, 6]])
def test_fsq_uses_exactly_the_given_number_of_levels(levels):
    d = len(levels)
    fsq = FiniteScalarQuantizer(d, levels).eval()
    x = torch.linspace(-8, 8, 2001).repeat(d, 1).unsqueeze(0)  # (1, d, 2001)
    q = fsq(x).quantized
    for i, n in enumerate(levels):
        assert q[0, i].unique().numel() == n


def test_fsq_codebook_size_and_validation():
    assert FiniteScalarQuantizer(4, [8, 5, 5, 5]).codebook_size == 1000
    assert FiniteScalarQuantizer(3, [8, 8, 8]).codebook_size == 512
    assert FiniteScalarQuantizer(3, [8, 8, 8]).bits_per_code == pytest.approx(9.0)
    for bad in ([], [1, 5], [8, 0], [4, -3]):
        with pytest.raises(ValueError):
            FiniteScalarQuantizer(4, bad)


def test_fsq_training_gradient_and_projection():
    torch.manual_seed(0)
    fsq = FiniteScalarQuantizer(6, [8, 5, 5, 5]).train()
    x = torch.randn(2, 6, 4, requires_grad=True)
    out = fsq(x)
    assert out.quantized.shape == x.shape and out.codes.shape == (2, 4)
    assert out.losses["codebook"].item() == 0 and out.losses["commitment"].item() == 0
    out.quantized.square().sum().backward()
    for p in (fsq.project_in.weight, fsq.project_out.weight, x):
        assert p.grad is not None and p.grad.abs().sum() > 0
    assert 0 < fsq.window_usage() <= 1


# -- ResidualVectorQuantizer ---------------------------------------------------------------------


def test_rvq_error_falls_as_stages_are_added():
    torch.manual_seed(0)
    x = as_features(torch.randn(512, 4), 8)
    rvq = ResidualVectorQuantizer(4, 16, num_quantizers=4, kmeans_init=True).train()
    out = rvq(x)  # k-means on each stage's residual of this batch
    assert out.codes.shape == (8, 64, 4)
    rvq.eval()
    errs = [F.mse_loss(rvq.decode(rvq.encode(x, num_quantizers=n)), x).item()
            for n in range(1, 5)]
    assert all(b <= a + 1e-6 for a, b in zip(errs, errs[1:], strict=False)), errs
    assert errs[-1] < 0.6 * errs[0], errs


def test_rvq_decodes_a_prefix_of_stages():
    torch.manual_seed(0)
    rvq = ResidualVectorQuantizer(4, 8, num_quantizers=3).eval()
    for stage in rvq.stages:
        stage.embed.data.normal_()
    x = torch.randn(2, 4, 5)
    codes = rvq.encode(x)
    assert codes.shape == (2, 5, 3)
    assert torch.equal(rvq.encode(x, num_quantizers=2), codes[..., :2])
    prefix = rvq.decode(codes[..., :2])
    assert prefix.shape == x.shape
    expected = rvq.stages[0].decode(codes[..., 0]) + rvq.stages[1].decode(codes[..., 1])
    assert torch.equal(prefix, expected)
    for n in (0, 4):
        with pytest.raises(ValueError):
            rvq.encode(x, num_quantizers=n)
    assert rvq.bits_per_code == pytest.approx(9.0)


def test_rvq_quantizer_dropout_uses_fewer_stages_sometimes():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 3)
    rvq = ResidualVectorQuantizer(4, 8, num_quantizers=4, quantizer_dropout=1.0).train()
    used = {rvq(x).codes.shape[-1] for _ in range(30)}
    assert min(used) < 4 and len(used) > 1
    out = rvq(x)
    assert {f"usage_stage{i}" for i in range(4)} <= set(out.metrics)
    rvq.eval()
    assert {rvq(x).codes.shape[-1] for _ in range(5)} == {4}
    never = ResidualVectorQuantizer(4, 8, num_quantizers=4).train()
    assert {never(x).codes.shape[-1] for _ in range(5)} == {4}


@pytest.mark.parametrize("rotation_trick", [False, True])
def test_rvq_gradient_reaches_input_once(rotation_trick):
    torch.manual_seed(0)
    rvq = ResidualVectorQuantizer(
        4, 8, num_quantizers=3, rotation_trick=rotation_trick).double().train()
    for stage in rvq.stages:
        stage.embed.data.normal_()
    x = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    out = rvq(x)
    assert torch.allclose(out.quantized, rvq.decode(out.codes), atol=1e-10)
    g = torch.randn_like(x)
    out.quantized.backward(g)
    if rotation_trick:
        total = channels_last(rvq.decode(out.codes)).reshape(-1, 4).detach()
        expected = expected_rotation_grad(
            channels_last(x.detach()).reshape(-1, 4), total, channels_last(g).reshape(-1, 4))
        assert torch.allclose(channels_last(x.grad).reshape(-1, 4), expected, atol=1e-10)
    else:
        assert torch.equal(x.grad, g)  # once, not once per stage


def test_rvq_losses_sum_over_stages_and_commitment_reaches_input():
    torch.manual_seed(0)
    rvq = ResidualVectorQuantizer(4, 8, num_quantizers=3).train()
    x = torch.randn(2, 4, 3, requires_grad=True)
    out = rvq(x)
    out.loss.backward()
    assert x.grad.abs().sum() > 0
    assert all(s.embed.grad is not None and s.embed.grad.abs().sum() > 0 for s in rvq.stages)
    assert rvq.window_counts.shape[1:] == (3, 8)
    assert rvq.window_usage() > 0
    metrics = out.metrics
    stage_usage = torch.stack([metrics[f"usage_stage{i}"] for i in range(3)])
    assert torch.allclose(metrics["usage"], stage_usage.mean())


def test_rvq_low_dim_projections_learn():
    torch.manual_seed(0)
    rvq = ResidualVectorQuantizer(8, 8, num_quantizers=2, codebook_dim=3).train()
    x = torch.randn(2, 8, 4, requires_grad=True)
    out = rvq(x)
    (out.quantized.square().sum() + out.loss).backward()
    for p in (rvq.project_in.weight, rvq.project_out.weight, x):
        assert p.grad is not None and p.grad.abs().sum() > 0


# -- every kind through the factory --------------------------------------------------------------

CONFIGS = [
    QuantizerConfig(kind="vq", codebook_size=16),
    QuantizerConfig(kind="vq", codebook_size=16, ema_decay=0.9, kmeans_init=True,
                    dead_code_threshold=1.0),
    QuantizerConfig(kind="vq", codebook_size=16, cosine=True, codebook_dim=3,
                    rotation_trick=True),
    QuantizerConfig(kind="fsq", levels=[8, 5, 5, 5]),
    QuantizerConfig(kind="fsq", levels=[3, 4]),
    QuantizerConfig(kind="rvq", codebook_size=16, num_quantizers=3, kmeans_init=True),
    QuantizerConfig(kind="rvq", codebook_size=16, num_quantizers=2, ema_decay=0.9,
                    quantizer_dropout=0.5, codebook_dim=2),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.kind}")
def test_factory_quantizers_share_the_interface(cfg):
    torch.manual_seed(0)
    q = build_quantizer(cfg, 4)
    x = torch.randn(2, 4, 4, 4)
    q.train()
    for _ in range(2):
        q(x)
    q.eval()
    out = q(x)
    assert out.quantized.shape == x.shape
    assert torch.equal(out.quantized, q.decode(q.encode(x)))
    assert torch.equal(out.codes, q.encode(x))
    assert out.codes.dtype == torch.int64
    assert out.codes.min() >= 0 and out.codes.max() < q.codebook_size
    k = getattr(q, "num_quantizers", 1)
    assert out.codes.shape == ((2, 4, 4, k) if cfg.kind == "rvq" else (2, 4, 4))
    assert {"codebook", "commitment"} <= set(out.losses)
    assert all(v.dim() == 0 for v in out.losses.values())
    assert {"perplexity", "usage"} <= set(out.metrics)
    assert 1 <= out.metrics["perplexity"] <= q.codebook_size
    assert 0 < out.metrics["usage"] <= 1
    assert q.bits_per_code == pytest.approx(k * math.log2(q.codebook_size))


@pytest.mark.parametrize(
    "cfg",
    [
        QuantizerConfig(kind="pq"),
        QuantizerConfig(kind="vq", codebook_size=1),
        QuantizerConfig(kind="vq", ema_decay=1.0),
        QuantizerConfig(kind="vq", dead_code_threshold=-1.0),
        QuantizerConfig(kind="fsq", levels=[]),
        QuantizerConfig(kind="fsq", levels=[8, 1]),
        QuantizerConfig(kind="rvq", num_quantizers=0),
        QuantizerConfig(kind="rvq", num_quantizers=2, quantizer_dropout=1.5),
        QuantizerConfig(kind="rvq", num_quantizers=2, ema_decay=-0.1),
    ],
)
def test_factory_rejects_bad_configs(cfg):
    with pytest.raises(ConfigError):
        build_quantizer(cfg, 4)


def test_code_statistics_batch_and_split():
    codes = torch.tensor([[0, 0, 1, 3], [3, 3, 3, 3]])  # one stage, 8 codes
    counts, ppl = code_statistics(codes, 5)  # per batch: float32, on the codes' device
    assert counts.dtype == torch.float32 and counts.tolist() == [2, 1, 0, 5, 0]
    p = torch.tensor([2, 1, 5], dtype=torch.float64) / 8
    assert float(ppl) == pytest.approx(math.exp(-(p * p.log()).sum()), rel=1e-6)
    hist = code_histogram(codes, 5)  # a split: int64 (K, codebook_size)
    assert hist.dtype == torch.long and hist.tolist() == [[2, 1, 0, 5, 0]]
    perplexity, usage = histogram_stats(hist)
    assert perplexity == pytest.approx(float(ppl), rel=1e-6) and usage == 3 / 5
    # two stages with a missing third one (quantizer dropout): stage means
    rvq = torch.stack([codes, codes.flip(1) % 2], dim=-1)  # (B, S, K=2)
    hist = code_histogram(rvq, 5, num_quantizers=3)
    assert hist.shape == (3, 5) and hist[1].tolist() == [2, 6, 0, 0, 0] and hist[2].sum() == 0
    s = histogram_summary(hist[:2].numpy())
    ppl2 = math.exp(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)))
    assert s["perplexity"] == pytest.approx((float(ppl) + ppl2) / 2)
    assert s["usage"] == pytest.approx((3 / 5 + 2 / 5) / 2) and s["used"] == 2.5
    assert s["total"] == 8 and s["codebook_size"] == 5
    uniform = histogram_summary([[1, 1, 0, 0]])
    assert uniform["perplexity"] == pytest.approx(2.0) and uniform["entropy_bits"] == 1.0
    same = histogram_stats(torch.tensor([[1, 1, 0, 0]]))
    assert (uniform["perplexity"], uniform["usage"]) == same
