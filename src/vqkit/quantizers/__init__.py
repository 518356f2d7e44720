"""Quantizers sharing one interface (:class:`Quantizer` -> :class:`QuantizerOutput`)."""

from vqkit.quantizers.base import Quantizer, QuantizerOutput, rotate_to, straight_through
from vqkit.quantizers.factory import build_quantizer
from vqkit.quantizers.vq import VectorQuantizer

__all__ = [
    "Quantizer",
    "QuantizerOutput",
    "VectorQuantizer",
    "build_quantizer",
    "rotate_to",
    "straight_through",
]
