"""vqkit: Vector-Quantized VAEs for images and speech."""

from vqkit.config import RunConfig, get_preset, list_presets
from vqkit.errors import VQKitError

__version__ = "0.1.0"

__all__ = ["RunConfig", "VQKitError", "get_preset", "list_presets", "__version__"]
