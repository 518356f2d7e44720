"""An autoregressive prior over a VQ-VAE's codes: a small decoder-only transformer.

Images (``order = "raster"``): the code grid of an item, (H', W') or (H', W', K) for K residual
stages, is read in raster order and stage by stage within a position: token
``t = (row * W' + col) * K + stage``; one learned position per token. Speech (``order =
"time"``): codes (F', T', K) (F' rows per code frame: n_mels / 4 for the 2-D model, 1 for the
temporal one) are read frame by frame, token ``t = (frame * F' + row) * K + stage``; a position
is a learned frame embedding plus a learned embedding of the token within its frame, and an
item may hold any whole number of frames up to ``grid[1]``. The model sees
a start token (the class, or "no class") and the tokens before ``t``, and gives the logits of
token ``t``. :meth:`CodePrior.forward` scores whole sequences (causal
attention); :meth:`CodePrior.step` decodes one token at a time with a key/value cache, and gives
the same logits as the full forward pass.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vqkit.config.schema import PriorConfig

__all__ = ["CodePrior", "KVCache", "codes_to_tokens", "sample_tokens", "tokens_to_codes"]


def codes_to_tokens(codes: Tensor, order: str = "raster") -> Tensor:
    """Codes (B, H', W') or (B, H', W', K) -> tokens (B, H' * W' * K), stages innermost:
    raster order, or (``order="time"``, codes (B, F', T'[, K])) frame by frame."""
    if order == "time":
        codes = codes.transpose(1, 2)
    return codes.reshape(codes.shape[0], -1)


def tokens_to_codes(tokens: Tensor, grid: tuple[int, int] | list[int], stages: int,
                    order: str = "raster") -> Tensor:
    """The inverse of :func:`codes_to_tokens`: (B, L) -> (B, H', W') or (B, H', W', K); for
    ``order="time"``, ``grid[1]`` is ignored (the frames are ``L / (grid[0] * K)``)."""
    k = (stages,) if stages > 1 else ()
    if order == "time":
        rows = int(grid[0])
        frames = tokens.shape[1] // (rows * stages)
        return tokens.reshape(tokens.shape[0], frames, rows, *k).transpose(1, 2)
    return tokens.reshape((tokens.shape[0], *grid) + k)


class KVCache:
    """Keys and values of the tokens decoded so far, per layer: (B, heads, L, head_dim)."""

    def __init__(self, layers: int, batch: int, heads: int, length: int, head_dim: int,
                 *, dtype: torch.dtype, device: torch.device) -> None:
        shape = (batch, heads, length, head_dim)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
        self.length = 0  # tokens held


class Block(nn.Module):
    """Pre-norm transformer block: causal self-attention, then a 4x MLP."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.drop = nn.Dropout(dropout)

    def _qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(d, dim=-1)
        return tuple(z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))

    def _out(self, x: Tensor, att: Tensor) -> Tensor:
        b, _, t, _ = att.shape
        x = x + self.drop(self.proj(att.transpose(1, 2).reshape(b, t, -1)))
        return x + self.drop(self.mlp(self.norm2(x)))

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self._qkv(x)
        att = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        return self._out(x, att)

    def step(self, x: Tensor, cache: KVCache, layer: int) -> Tensor:
        """x (B, 1, dim) at position ``cache.length``; appends its key and value."""
        q, k, v = self._qkv(x)
        t = cache.length
        cache.k[layer][:, :, t:t + 1] = k
        cache.v[layer][:, :, t:t + 1] = v
        keys, values = cache.k[layer][:, :, :t + 1], cache.v[layer][:, :, :t + 1]
        w = (q @ keys.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        return self._out(x, w.softmax(-1) @ values)


class CodePrior(nn.Module):
    """p(tokens | class) = prod_t p(token_t | class, tokens before t).

    ``cfg`` must describe the codes (``codebook_size``, ``num_quantizers``, ``grid``);
    ``class_names`` (when ``class_conditional``) sets the classes; index ``num_classes`` is
    "no class".
    """

    def __init__(self, cfg: PriorConfig) -> None:
        super().__init__()
        if not (cfg.codebook_size and cfg.num_quantizers and all(cfg.grid)):
            raise ValueError("prior config does not describe the codes (codebook_size, "
                             "num_quantizers, grid)")
        self.cfg = cfg
        self.vocab, self.stages = cfg.codebook_size, cfg.num_quantizers
        self.length = cfg.grid[0] * cfg.grid[1] * self.stages
        self.time_order = cfg.order == "time"
        # tokens per step of the sequence that an item's length is a multiple of
        self.frame_tokens = cfg.grid[0] * self.stages if self.time_order else self.length
        self.num_classes = len(cfg.class_names) if cfg.class_conditional else 0
        self.start = nn.Embedding(self.num_classes + 1, cfg.dim)
        self.tok = nn.Embedding(self.vocab, cfg.dim)
        if self.time_order:
            self.pos_frame = nn.Parameter(torch.randn(cfg.grid[1], cfg.dim) * 0.02)
            self.pos_inner = nn.Parameter(torch.randn(self.frame_tokens, cfg.dim) * 0.02)
        else:
            self.pos = nn.Parameter(torch.randn(self.length, cfg.dim) * 0.02)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg.dim, cfg.heads, cfg.dropout)
                                    for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, self.vocab)
        self.apply(_init)

    @property
    def no_class(self) -> int:
        return self.num_classes

    def positions(self, lo: int, hi: int) -> Tensor:
        """Position embeddings of tokens ``lo .. hi - 1`` (hi - lo, dim)."""
        if not self.time_order:
            return self.pos[lo:hi]
        t = torch.arange(lo, hi, device=self.tok.weight.device)
        return self.pos_frame[t // self.frame_tokens] + self.pos_inner[t % self.frame_tokens]

    def check_length(self, n: int) -> None:
        """ValueError unless ``n`` tokens are an item this prior models."""
        if self.time_order:
            if not (0 < n <= self.length and n % self.frame_tokens == 0):
                raise ValueError(f"the prior codes sequences of whole frames of "
                                 f"{self.frame_tokens} tokens, at most {self.length} tokens; "
                                 f"got {n}")
        elif n != self.length:
            raise ValueError(f"the prior codes sequences of {self.length} tokens, got {n}")

    def class_index(self, labels: Tensor | None, batch: int, device: torch.device) -> Tensor:
        """Start-token indices: the labels, with "no class" for label -1, None or an
        unconditional model."""
        if labels is None or not self.num_classes:
            return torch.full((batch,), self.no_class, dtype=torch.long, device=device)
        labels = labels.to(device=device, dtype=torch.long)
        return torch.where(labels < 0, torch.full_like(labels, self.no_class), labels)

    def forward(self, tokens: Tensor, labels: Tensor | None = None) -> Tensor:
        """tokens (B, L) long -> logits (B, L, vocab); logits[:, t] depends only on the class
        and tokens[:, :t]."""
        b, n = tokens.shape
        start = self.start(self.class_index(labels, b, tokens.device))[:, None]
        x = torch.cat([start, self.tok(tokens[:, :-1])], dim=1) + self.positions(0, n)
        x = self.drop(x)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))

    def new_cache(self, batch: int, *, dtype: torch.dtype | None = None,
                  device: torch.device | None = None) -> KVCache:
        p = self.tok.weight
        return KVCache(len(self.blocks), batch, self.cfg.heads, self.length,
                       self.cfg.dim // self.cfg.heads, dtype=dtype or p.dtype,
                       device=device or p.device)

    def step(self, prev: Tensor | None, labels: Tensor | None, cache: KVCache,
             batch: int = 1) -> Tensor:
        """Logits (B, vocab) of token ``cache.length``, given the token before it (``prev``,
        (B,) long; None for the first token) and the cache of the earlier ones."""
        t = cache.length
        if t >= self.length:
            raise ValueError(f"the sequence is complete ({self.length} tokens)")
        if prev is None:
            x = self.start(self.class_index(labels, batch, self.tok.weight.device))
        else:
            x = self.tok(prev)
        x = (x + self.positions(t, t + 1))[:, None]
        for i, block in enumerate(self.blocks):
            x = block.step(x, cache, i)
        cache.length += 1
        return self.head(self.norm(x))[:, 0]


def _init(m: nn.Module) -> None:
    if isinstance(m, (nn.Linear, nn.Embedding)):
        nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)


def filter_logits(logits: Tensor, temperature: float = 1.0, top_k: int = 0) -> Tensor:
    """Logits divided by ``temperature``, keeping only the ``top_k`` largest (0: all)."""
    logits = logits / max(temperature, 1e-6)
    if 0 < top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, -math.inf)
    return logits


@torch.no_grad()
def sample_tokens(model: CodePrior, n: int, *, labels: Tensor | None = None,
                  temperature: float = 1.0, top_k: int = 0, guidance: float = 1.0,
                  generator: torch.Generator | None = None, length: int | None = None) -> Tensor:
    """``n`` token sequences (n, L) drawn incrementally (key/value cache), ``L = length`` or the
    prior's whole length; the same ``generator`` state gives the same samples. ``guidance`` != 1
    (classifier-free guidance, class-conditional models with ``labels``) draws from
    ``u + guidance * (c - u)``, ``c`` and ``u`` the class and "no class" logits: above 1 the
    samples look more like their class."""
    model.eval()
    length = model.length if length is None else length
    model.check_length(length)
    guided = guidance != 1.0 and labels is not None and model.num_classes > 0
    if guided:
        labels = torch.cat([labels, torch.full_like(labels, -1)])
    batch = 2 * n if guided else n
    cache = model.new_cache(batch)
    prev, out = None, []
    for _ in range(length):
        logits = model.step(prev, labels, cache, batch).float()
        if guided:
            cond, uncond = logits[:n], logits[n:]
            logits = uncond + guidance * (cond - uncond)
        logits = filter_logits(logits, temperature, top_k)
        token = torch.multinomial(logits.softmax(-1).cpu(), 1, generator=generator)[:, 0]
        token = token.to(model.tok.weight.device)
        out.append(token)
        prev = torch.cat([token, token]) if guided else token
    return torch.stack(out, dim=1)
