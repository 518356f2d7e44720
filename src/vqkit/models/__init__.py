"""Models: the 2-D VQ-VAE, the temporal (1-D) and frame-code ones for speech, loading a
trained one."""

from vqkit.models.frames import FrameVQVAE
from vqkit.models.loading import load_model, model_for, set_stages
from vqkit.models.temporal import TemporalVQVAE
from vqkit.models.vqvae import VQVAE, build_model

__all__ = ["VQVAE", "FrameVQVAE", "TemporalVQVAE", "build_model", "load_model", "model_for",
           "set_stages"]
