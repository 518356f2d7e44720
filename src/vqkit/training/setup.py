"""What a model kind brings to :func:`vqkit.training.train.train` besides its loop
:class:`~vqkit.training.loop.Task`: the model, the data, and what to do after each epoch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from vqkit.data.source import BatchSource
from vqkit.training.loop import Task

__all__ = ["Setup"]


@dataclass
class Setup:
    model: nn.Module  # on the training device, not yet wrapped for DDP
    task: Task
    data: tuple[BatchSource, BatchSource]  # (train, val)
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None  # rank 0, after the record
    writer: Any = None  # a TensorBoard writer, closed when training ends
