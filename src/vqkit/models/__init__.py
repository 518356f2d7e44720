"""Models: the 2-D VQ-VAE, the temporal (1-D) one for speech, loading a trained one."""

from vqkit.models.loading import load_model, model_for, set_stages
from vqkit.models.temporal import TemporalVQVAE
from vqkit.models.vqvae import VQVAE, build_model

__all__ = ["VQVAE", "TemporalVQVAE", "build_model", "load_model", "model_for", "set_stages"]
