"""A faithful re-implementation of the thesis notebook's CIFAR-10 VQ-VAE, for benchmarks only.

It keeps what the notebook did, including what vqkit does differently on purpose:
per-image dataset objects through a ``DataLoader`` (``ToTensor`` + ``Normalize(0.5, 1.0)`` done
image by image, as torchvision's transforms would), a quantizer that builds a one-hot matrix
(N x 512) and multiplies it with the codebook, and ``.item()`` on every step for the loss log.
torchvision cannot be installed beside the CPU torch used here, so its two transforms are
written out with identical arithmetic.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset


class CIFAR10Images(Dataset):
    """torchvision.datasets.CIFAR10-like: HWC uint8 array, one PIL image per item."""

    def __init__(self, images_nchw: np.ndarray) -> None:
        self.data = np.ascontiguousarray(images_nchw.transpose(0, 2, 3, 1))  # (N, 32, 32, 3)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int):
        img = Image.fromarray(self.data[i])
        # transforms.ToTensor(): HWC uint8 -> CHW float in [0, 1]
        x = torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).float().div(255)
        # transforms.Normalize((0.5, 0.5, 0.5), (1.0, 1.0, 1.0))
        mean = torch.tensor([0.5, 0.5, 0.5]).view(3, 1, 1)
        std = torch.tensor([1.0, 1.0, 1.0]).view(3, 1, 1)
        return (x - mean) / std, 0


class VectorQuantizer(nn.Module):
    def __init__(self, num_embeddings: int, embedding_dim: int, commitment_cost: float) -> None:
        super().__init__()
        self._embedding_dim = embedding_dim
        self._num_embeddings = num_embeddings
        self._embedding = nn.Embedding(num_embeddings, embedding_dim)
        self._embedding.weight.data.uniform_(-1 / num_embeddings, 1 / num_embeddings)
        self._commitment_cost = commitment_cost

    def forward(self, inputs):
        inputs = inputs.permute(0, 2, 3, 1).contiguous()
        input_shape = inputs.shape
        flat_input = inputs.view(-1, self._embedding_dim)
        distances = (torch.sum(flat_input**2, dim=1, keepdim=True)
                     + torch.sum(self._embedding.weight**2, dim=1)
                     - 2 * torch.matmul(flat_input, self._embedding.weight.t()))
        encoding_indices = torch.argmin(distances, dim=1).unsqueeze(1)
        encodings = torch.zeros(encoding_indices.shape[0], self._num_embeddings,
                                device=inputs.device)
        encodings.scatter_(1, encoding_indices, 1)
        quantized = torch.matmul(encodings, self._embedding.weight).view(input_shape)
        e_latent_loss = F.mse_loss(quantized.detach(), inputs)
        q_latent_loss = F.mse_loss(quantized, inputs.detach())
        loss = q_latent_loss + self._commitment_cost * e_latent_loss
        quantized = inputs + (quantized - inputs).detach()
        avg_probs = torch.mean(encodings, dim=0)
        perplexity = torch.exp(-torch.sum(avg_probs * torch.log(avg_probs + 1e-10)))
        return loss, quantized.permute(0, 3, 1, 2).contiguous(), perplexity, encodings


class Residual(nn.Module):
    def __init__(self, in_channels, num_hiddens, num_residual_hiddens):
        super().__init__()
        self._block = nn.Sequential(
            nn.ReLU(True),
            nn.Conv2d(in_channels, num_residual_hiddens, 3, 1, 1, bias=False),
            nn.ReLU(True),
            nn.Conv2d(num_residual_hiddens, num_hiddens, 1, 1, bias=False),
        )

    def forward(self, x):
        return x + self._block(x)


class ResidualStack(nn.Module):
    def __init__(self, in_channels, num_hiddens, num_residual_layers, num_residual_hiddens):
        super().__init__()
        self._layers = nn.ModuleList(
            [Residual(in_channels, num_hiddens, num_residual_hiddens)
             for _ in range(num_residual_layers)])

    def forward(self, x):
        for layer in self._layers:
            x = layer(x)
        return F.relu(x)


class Encoder(nn.Module):
    def __init__(self, in_channels, num_hiddens, num_residual_layers, num_residual_hiddens):
        super().__init__()
        self._conv_1 = nn.Conv2d(in_channels, num_hiddens // 2, 4, 2, 1)
        self._conv_2 = nn.Conv2d(num_hiddens // 2, num_hiddens, 4, 2, 1)
        self._conv_3 = nn.Conv2d(num_hiddens, num_hiddens, 3, 1, 1)
        self._residual_stack = ResidualStack(num_hiddens, num_hiddens, num_residual_layers,
                                             num_residual_hiddens)

    def forward(self, inputs):
        x = F.relu(self._conv_1(inputs))
        x = F.relu(self._conv_2(x))
        x = self._conv_3(x)
        return self._residual_stack(x)


class Decoder(nn.Module):
    def __init__(self, in_channels, num_hiddens, num_residual_layers, num_residual_hiddens,
                 out_channels=3):
        super().__init__()
        self._conv_1 = nn.Conv2d(in_channels, num_hiddens, 3, 1, 1)
        self._residual_stack = ResidualStack(num_hiddens, num_hiddens, num_residual_layers,
                                             num_residual_hiddens)
        self._conv_trans_1 = nn.ConvTranspose2d(num_hiddens, num_hiddens // 2, 4, 2, 1)
        self._conv_trans_2 = nn.ConvTranspose2d(num_hiddens // 2, out_channels, 4, 2, 1)

    def forward(self, inputs):
        x = self._conv_1(inputs)
        x = self._residual_stack(x)
        x = F.relu(self._conv_trans_1(x))
        return self._conv_trans_2(x)


class Model(nn.Module):
    """``channels`` = 3 for the image notebook, 1 for the speech notebook (a mel spectrogram)."""

    def __init__(self, num_hiddens=128, num_residual_layers=2, num_residual_hiddens=32,
                 num_embeddings=512, embedding_dim=64, commitment_cost=0.25, channels=3):
        super().__init__()
        self._encoder = Encoder(channels, num_hiddens, num_residual_layers, num_residual_hiddens)
        self._pre_vq_conv = nn.Conv2d(num_hiddens, embedding_dim, 1, 1)
        self._vq_vae = VectorQuantizer(num_embeddings, embedding_dim, commitment_cost)
        self._decoder = Decoder(embedding_dim, num_hiddens, num_residual_layers,
                                num_residual_hiddens, out_channels=channels)

    def forward(self, x):
        z = self._pre_vq_conv(self._encoder(x))
        loss, quantized, perplexity, encodings = self._vq_vae(z)
        x_recon = self._decoder(quantized)
        return loss, x_recon, perplexity, encodings


def make_loader(images_nchw: np.ndarray, batch_size: int = 32, seed: int = 0) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    return DataLoader(CIFAR10Images(images_nchw), batch_size=batch_size, shuffle=True,
                      generator=g)


def train_steps(model, optimizer, loader, max_images: int = 0, max_seconds: float = 0.0,
                scheduler=None, log: list | None = None) -> tuple[int, int, int]:
    """The notebooks' loop: recon MSE + VQ loss, Adam step, ``.item()`` logs every step, and
    (speech) ``scheduler.step()`` after each epoch. Batches are ``(data, label)``. Stops after
    ``max_images`` images or ``max_seconds`` of wall-clock, whichever is set and comes first.
    Returns (images seen, steps, whole epochs)."""
    model.train()
    seen = steps = epochs = 0
    t0 = time.time()

    def done() -> bool:
        return bool((max_images and seen >= max_images)
                    or (max_seconds and time.time() - t0 >= max_seconds))

    while not done():
        for data, _ in loader:
            vq_loss, data_recon, perplexity, _ = model(data)
            recon_error = F.mse_loss(data_recon, data)
            loss = recon_error + vq_loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if log is not None:
                log.append((recon_error.item(), perplexity.item()))
            seen += data.shape[0]
            steps += 1
            if done():
                break
        else:
            epochs += 1
            if scheduler is not None:
                scheduler.step()
    return seen, steps, epochs


class EvalAdapter(nn.Module):
    """Gives a notebook model vqkit's evaluation interface: forward -> (recon, output)."""

    downsampling = 4

    def __init__(self, model: Model) -> None:
        super().__init__()
        self.model = model
        self.quantizer = SimpleNamespace(codebook_size=512, num_quantizers=1, bits_per_code=9.0)

    def forward(self, x):
        _, recon, _, enc = self.model(x)
        codes = enc.argmax(1).view(x.shape[0], x.shape[2] // 4, x.shape[3] // 4)
        return recon, SimpleNamespace(codes=codes)
