"""Quantizers sharing one interface (:class:`Quantizer` -> :class:`QuantizerOutput`)."""

from vqkit.quantizers.base import Quantizer, QuantizerOutput, rotate_to, straight_through
from vqkit.quantizers.factory import build_quantizer
from vqkit.quantizers.fsq import FiniteScalarQuantizer
from vqkit.quantizers.rvq import ResidualVectorQuantizer
from vqkit.quantizers.vq import VectorQuantizer

__all__ = [
    "FiniteScalarQuantizer",
    "Quantizer",
    "QuantizerOutput",
    "ResidualVectorQuantizer",
    "VectorQuantizer",
    "build_quantizer",
    "rotate_to",
    "straight_through",
]
