"""Models: the convolutional VQ-VAE, and loading a trained one from a run."""

from vqkit.models.loading import load_model, model_for
from vqkit.models.vqvae import VQVAE, build_model

__all__ = ["VQVAE", "build_model", "load_model", "model_for"]
