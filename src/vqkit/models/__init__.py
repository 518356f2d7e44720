"""Models: the convolutional VQ-VAE."""

from vqkit.models.vqvae import VQVAE, build_model

__all__ = ["VQVAE", "build_model"]
