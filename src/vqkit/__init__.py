"""vqkit: Vector-Quantized VAEs for images and speech."""

import os

# Idle OpenMP threads sleep instead of spinning: on a machine shared with other jobs, spinning
# threads take cores the others need and wait on their own descheduled peers (a training beside
# two others fell 4x). Set before torch loads its OpenMP runtime; an explicit setting wins.
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

from vqkit.config import RunConfig, get_preset, list_presets
from vqkit.errors import VQKitError

__version__ = "0.1.0"

__all__ = ["RunConfig", "VQKitError", "get_preset", "list_presets", "__version__"]
