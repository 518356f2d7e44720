"""The linear probe itself: a seeded logistic regression on standardised features."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["fit_linear_probe"]


def fit_linear_probe(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor,
                     y_test: torch.Tensor, *, classes: int, steps: int = 300,
                     weight_decay: float = 1e-4, seed: int = 0) -> dict[str, float]:
    """Standardise with the training statistics, fit a logistic regression (full-batch L-BFGS,
    seeded) and return ``train_accuracy`` and ``accuracy`` (held out)."""
    mean, std = x_train.mean(0), x_train.std(0).clamp_min(1e-6)
    xa, xb = (x_train - mean) / std, (x_test - mean) / std
    g = torch.Generator().manual_seed(seed)
    w = (torch.randn(xa.shape[1], classes, generator=g) * 0.01).requires_grad_()
    b = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=steps, history_size=20,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(xa @ w + b, y_train) + weight_decay * (w ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        acc = lambda x, y: float(((x @ w + b).argmax(1) == y).float().mean())  # noqa: E731
        return {"train_accuracy": acc(xa, y_train), "accuracy": acc(xb, y_test)}
