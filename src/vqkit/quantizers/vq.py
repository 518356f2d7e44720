"""Vector quantizer: nearest code in a learned codebook.

Options (all off by default, which gives the thesis's VQ): EMA codebook updates, k-means
initialisation on the first training batch, restart of dead codes from the current batch's
encoder outputs, cosine similarity, a lower-dimensional codebook behind learned projections,
and the rotation trick instead of the straight-through estimator.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vqkit.distributed import all_reduce_sum_, broadcast_
from vqkit.quantizers.base import (
    Quantizer,
    QuantizerOutput,
    channels_first,
    channels_last,
    full_precision,
    rotate_to,
    straight_through,
)
from vqkit.quantizers.stats import code_statistics


def host_reads_are_free(device: torch.device) -> bool:
    """Whether reading a value back (``int(t)``) costs nothing: on the CPU; on a GPU it waits
    for all queued work."""
    return device.type == "cpu"


def nearest_code(x: Tensor, embed: Tensor) -> Tensor:
    """Index of the nearest row of ``embed`` (K, D) for each row of ``x`` (N, D), by squared
    Euclidean distance, without materialising one-hot matrices."""
    # |x - e|^2 = |x|^2 - 2 x.e + |e|^2; |x|^2 is the same for every code, so it is left out.
    dist = torch.addmm((embed * embed).sum(1), x, embed.t(), beta=1.0, alpha=-2.0)
    return dist.argmin(dim=1)


def kmeans(x: Tensor, k: int, iters: int, cosine: bool = False) -> Tensor:
    """Lloyd's k-means on rows of ``x`` (N, D), initialised from random rows; empty clusters keep
    their previous centre. Returns (k, D) centres."""
    n = x.shape[0]
    idx = torch.randperm(n, device=x.device)[:k] if n >= k else torch.randint(
        0, n, (k,), device=x.device)
    centres = x[idx].clone()
    for _ in range(iters):
        codes = nearest_code(x, centres) if not cosine else (x @ centres.t()).argmax(1)
        counts = torch.bincount(codes, minlength=k).to(x.dtype)
        sums = torch.zeros_like(centres).index_add_(0, codes, x)
        new = sums / counts.clamp_min(1).unsqueeze(1)
        if cosine:
            new = F.normalize(new, dim=1)
        centres = torch.where(counts.unsqueeze(1) > 0, new, centres)
    return centres


def _forget_initted(module: nn.Module, incompatible_keys: Any) -> None:
    """After loading a state dict, read the ``initted`` buffer again."""
    module._initted_seen = False


class VectorQuantizer(Quantizer):
    """Nearest-neighbour vector quantizer.

    Parameters
    ----------
    dim : int
        Channels of the input features.
    codebook_size : int
        Number of codes K.
    codebook_dim : int, optional
        Dimension of the codebook; when it differs from ``dim``, learned linear projections map
        in and out of it (a low-dimensional lookup uses the codebook more fully).
    commitment_weight : float
        Weight (beta) of ``|x - sg(q)|^2``; 0 disables it.
    codebook_weight : float
        Weight of ``|sg(x) - q|^2`` when the codebook is learned by gradient.
    ema_decay : float
        0 learns the codebook by gradient; in (0, 1) updates it as an exponential moving average
        of the inputs assigned to each code (and drops the codebook loss).
    kmeans_init : bool
        Initialise the codebook by k-means on the first training batch.
    kmeans_iters : int
    dead_code_threshold : float
        Codes whose moving-average count per batch falls below this are re-seeded from the
        current batch's inputs; 0 disables restarts.
    cosine : bool
        Compare l2-normalised inputs and codes (codes are then unit vectors).
    rotation_trick : bool
        Pass gradients with the rotation trick instead of straight-through.
    usage_window : int
        Training batches counted by :meth:`window_usage`.
    """

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        *,
        codebook_dim: int | None = None,
        commitment_weight: float = 0.25,
        codebook_weight: float = 1.0,
        ema_decay: float = 0.0,
        kmeans_init: bool = False,
        kmeans_iters: int = 10,
        dead_code_threshold: float = 0.0,
        cosine: bool = False,
        rotation_trick: bool = False,
        usage_window: int = 100,
        usage_decay: float = 0.99,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        if codebook_size < 2:
            raise ValueError(f"codebook_size must be >= 2, got {codebook_size}")
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
        if dead_code_threshold < 0:
            raise ValueError(f"dead_code_threshold must be >= 0, got {dead_code_threshold}")
        if commitment_weight < 0 or codebook_weight < 0:
            raise ValueError("loss weights must be >= 0")
        self.dim = dim
        self.codebook_size = codebook_size
        self.codebook_dim = codebook_dim or dim
        self.commitment_weight = commitment_weight
        self.codebook_weight = codebook_weight
        self.ema_decay = ema_decay
        self.kmeans_init = kmeans_init
        self.kmeans_iters = kmeans_iters
        self.dead_code_threshold = dead_code_threshold
        self.cosine = cosine
        self.rotation_trick = rotation_trick
        self.usage_decay = usage_decay
        self.eps = eps

        self._init_projections(dim, self.codebook_dim)

        embed = torch.empty(codebook_size, self.codebook_dim).uniform_(
            -1 / codebook_size, 1 / codebook_size)
        if cosine:
            embed = F.normalize(embed, dim=1)
        if ema_decay > 0:
            self.register_buffer("embed", embed)
            # Counts start at 1 with sums equal to the codes, so a code unused at first keeps
            # its value under the EMA instead of being divided by a near-zero count.
            self.register_buffer("cluster_size", torch.ones(codebook_size))
            self.register_buffer("embed_sum", embed.clone())
        else:
            self.embed = nn.Parameter(embed)
        # Moving-average count of each code per training batch, for dead-code detection. Codes
        # start with the grace period a restarted code gets, so that a threshold above 1 does
        # not declare every code dead on the first batch (discarding the k-means init).
        self.register_buffer(
            "usage_count", torch.full((codebook_size,), max(1.0, 2 * dead_code_threshold)))
        self.register_buffer("initted", torch.tensor(not kmeans_init))
        self._initted_seen = False  # once True, the buffer is not read again (a device sync)
        self.register_load_state_dict_post_hook(_forget_initted)
        self._init_usage_window(usage_window)

    # -- codebook -----------------------------------------------------------------------------
    def codebook(self) -> Tensor:
        """The codes as used for lookup, shape (K, codebook_dim); unit vectors in cosine mode."""
        return F.normalize(self.embed, dim=1) if self.cosine else self.embed

    def _prepare(self, x: Tensor) -> Tensor:
        """(B, D, *S) -> (N, codebook_dim) rows, projected and (cosine) normalised."""
        flat = self.project_in(channels_last(x)).reshape(-1, self.codebook_dim)
        return F.normalize(flat, dim=1) if self.cosine else flat

    def _lookup(self, flat: Tensor) -> Tensor:
        embed = self.codebook()
        if self.cosine:
            return (flat @ embed.t()).argmax(dim=1)
        return nearest_code(flat, embed)

    @torch.no_grad()
    def init_codebook_(self, flat: Tensor) -> None:
        """k-means on the first batch (rank 0's result is broadcast to every rank)."""
        centres = kmeans(flat.float(), self.codebook_size, self.kmeans_iters, self.cosine)
        broadcast_(centres)
        self.embed.data.copy_(centres)
        if self.ema_decay > 0:
            self.embed_sum.copy_(centres)
            self.cluster_size.fill_(1.0)
        self.initted.fill_(True)

    @torch.no_grad()
    def expire_codes_(self, flat: Tensor) -> Tensor:
        """Re-seed codes whose moving-average count is below the threshold with random rows of
        the current batch (the j-th dead code takes row ``randperm(N)[j]``); returns the mask of
        restarted codes."""
        dead = self.usage_count < self.dead_code_threshold
        n = flat.shape[0]
        if not host_reads_are_free(flat.device) and n >= self.codebook_size:
            return self._expire_without_sync_(flat, dead)
        n_dead = int(dead.sum())  # on the CPU reading it costs nothing
        if n_dead == 0:
            return dead
        pick = torch.randperm(n, device=flat.device)[:n_dead] if n >= n_dead else torch.randint(
            0, n, (n_dead,), device=flat.device)
        new = flat[pick].float()
        # Every rank restarts the same codes (the counts are all-reduced) with rank 0's samples.
        broadcast_(new)
        self.embed.data[dead] = new.to(self.embed.dtype)
        if self.ema_decay > 0:
            self.embed_sum[dead] = new
            self.cluster_size[dead] = 1.0
        # A restarted code gets a grace period before it can be declared dead again.
        self.usage_count[dead] = max(1.0, 2 * self.dead_code_threshold)
        return dead

    def _expire_without_sync_(self, flat: Tensor, dead: Tensor) -> Tensor:
        """:meth:`expire_codes_` without reading the number of dead codes back from the device
        (a GPU would wait for it every step): the same rows go to the same codes, chosen with
        masks. It draws the permutation even when no code is dead, so it is kept off the CPU,
        whose results stay bit for bit those of the counting path."""
        perm = torch.randperm(flat.shape[0], device=flat.device)
        rank_among_dead = (torch.cumsum(dead.long(), 0) - 1).clamp_min(0)
        new = flat[perm[rank_among_dead]].float()  # row for every code; used where dead
        broadcast_(new)
        mask = dead.unsqueeze(1)
        self.embed.data.copy_(torch.where(mask, new.to(self.embed.dtype), self.embed.data))
        if self.ema_decay > 0:
            self.embed_sum.copy_(torch.where(mask, new, self.embed_sum))
            self.cluster_size.copy_(torch.where(dead, 1.0, self.cluster_size))
        grace = max(1.0, 2 * self.dead_code_threshold)
        self.usage_count.copy_(torch.where(dead, grace, self.usage_count))
        return dead

    @torch.no_grad()
    def ema_update_(self, flat: Tensor, codes: Tensor, counts: Tensor) -> None:
        """EMA of per-code counts and sums, Laplace-smoothed counts, codes = sums / counts."""
        d = self.ema_decay
        sums = torch.zeros_like(self.embed_sum).index_add_(0, codes, flat.float())
        all_reduce_sum_(sums)
        self.cluster_size.mul_(d).add_(counts, alpha=1 - d)
        self.embed_sum.mul_(d).add_(sums, alpha=1 - d)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.codebook_size * self.eps) * n
        embed = self.embed_sum / smoothed.unsqueeze(1)
        self.embed.copy_(F.normalize(embed, dim=1) if self.cosine else embed)

    # -- interface ----------------------------------------------------------------------------
    @full_precision
    def forward(self, x: Tensor) -> QuantizerOutput:
        """Quantize ``x`` of shape (B, dim, *S)."""
        flat = self._prepare(x)
        if self.training:
            if not self._initted_seen and bool(self.initted):  # read the buffer until True
                self._initted_seen = True
            if not self._initted_seen:
                self.init_codebook_(flat.detach())
                self._initted_seen = True
            if self.dead_code_threshold > 0:
                self.expire_codes_(flat.detach())
        codes = self._lookup(flat.detach())
        counts, perplexity = code_statistics(codes, self.codebook_size)
        if self.training:
            all_reduce_sum_(counts)
            with torch.no_grad():
                self.usage_count.mul_(self.usage_decay).add_(counts, alpha=1 - self.usage_decay)
            self.record_usage_(counts.unsqueeze(0))
            if self.ema_decay > 0:
                self.ema_update_(flat.detach(), codes, counts)
        q = F.embedding(codes, self.codebook())

        losses: dict[str, Tensor] = {}
        if self.ema_decay == 0 and self.codebook_weight > 0:
            losses["codebook"] = self.codebook_weight * F.mse_loss(q, flat.detach())
        else:
            losses["codebook"] = flat.new_zeros(())
        losses["commitment"] = self.commitment_weight * F.mse_loss(flat, q.detach())

        # In eval the output is exactly decode(encode(x)); estimators only matter for training.
        if self.training and flat.requires_grad:
            q = rotate_to(flat, q) if self.rotation_trick else straight_through(flat, q)
        quantized = self._unflatten(q, x)
        metrics = {
            "perplexity": perplexity.detach(),
            "usage": (counts > 0).float().mean(),
        }
        return QuantizerOutput(quantized, codes.view(x.shape[0], *x.shape[2:]), losses, metrics)

    def _unflatten(self, q: Tensor, like: Tensor) -> Tensor:
        q = q.view(like.shape[0], *like.shape[2:], self.codebook_dim)
        return channels_first(self.project_out(q))

    @torch.no_grad()
    @full_precision
    def encode(self, x: Tensor) -> Tensor:
        """Codes (B, *S) for features (B, dim, *S)."""
        return self._lookup(self._prepare(x)).view(x.shape[0], *x.shape[2:])

    def decode(self, codes: Tensor) -> Tensor:
        """Features (B, dim, *S) for codes (B, *S)."""
        q = F.embedding(codes.long(), self.codebook())
        return channels_first(self.project_out(q))
