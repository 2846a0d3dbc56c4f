"""A plain deterministic auto-encoder with the same networks as :class:`~spherevae.models.VAE`.

For comparison with the VAE: the encoder's features go through a linear map to a latent point (each
sphere block normalised to unit length, Euclidean blocks left raw), the decoder maps it back, and the
loss is the reconstruction term only: ``loss = mean_b -log p(x_b|z_b)`` (no prior, no KL, no noise).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .config import ModelConfig
from .heads import PointHead
from .likelihoods import build_likelihood
from .networks import build_networks
from .pretrained import load_kind, save_pretrained

__all__ = ["AutoEncoder", "AutoEncoderResult"]


class AutoEncoderResult(NamedTuple):
    """What :meth:`AutoEncoder.loss` returns.

    Attributes:
        loss: scalar, ``mean_b -reconstruction_b``.
        reconstruction: ``(B,)``, ``log p(x_b|z_b)`` summed over pixels.
        z: ``(B, latent_dim)``, the latent points.
    """

    loss: Tensor
    reconstruction: Tensor
    z: Tensor


class AutoEncoder(nn.Module):
    """Deterministic auto-encoder built from a :class:`ModelConfig` with ``kind="autoencoder"``.

    ``posterior``, ``sampler`` and ``covariance`` are not used (there is no posterior).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.kind != "autoencoder":
            raise ValueError(
                f"AutoEncoder needs a config with kind='autoencoder', got kind={config.kind!r} "
                f"(use VAE, or dataclasses.replace(config, kind='autoencoder'))"
            )
        self.config = config
        self.latent = config.latent_spec
        networks = build_networks(config, self.latent.ambient_dim)
        self.encoder, self.decoder = networks.encoder, networks.decoder
        self.head = PointHead(networks.features, self.latent)
        self.likelihood = build_likelihood(
            config.likelihood, config.gaussian_std, event_dims=len(config.image_shape)
        )

    @property
    def latent_dim(self) -> int:
        return self.latent.ambient_dim

    def encode(self, x: Tensor) -> Tensor:
        """Latent points ``(B, latent_dim)`` for ``x`` ``(B, C, H, W)``; sphere blocks have unit norm."""
        z: Tensor = self.head(self.encoder(x))
        return z

    def decode(self, z: Tensor) -> Tensor:
        """Likelihood parameters: ``(..., latent_dim) -> (..., C, H, W)``."""
        params: Tensor = self.decoder(z)
        return params

    def log_likelihood(self, x: Tensor, params: Tensor) -> Tensor:
        """``log p(x|z)`` summed over pixels, ``(..., B)``."""
        return self.likelihood.log_prob(x, params)

    def loss(self, x: Tensor) -> AutoEncoderResult:
        """Reconstruction loss of a batch ``x`` ``(B, C, H, W)``."""
        z = self.encode(x)
        reconstruction = self.log_likelihood(x, self.decode(z))
        return AutoEncoderResult(-reconstruction.mean(), reconstruction, z)

    def objective(self, reconstruction: Tensor, *, batch_size: int | None = None) -> Tensor:
        """The training objective of a batch: ``sum_b -reconstruction_b / batch_size``.

        ``batch_size`` is the whole batch's size when ``reconstruction`` is one process's share of a
        batch split over processes (default ``B``: the mean); the shares' parts sum to the whole
        batch's objective.
        """
        n = len(reconstruction) if batch_size is None else batch_size
        return -reconstruction.sum() / n

    def forward(self, x: Tensor) -> AutoEncoderResult:
        """Same as :meth:`loss`."""
        return self.loss(x)

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """Expected images ``E[x|z(x)]``, ``(B, C, H, W)``."""
        return self.likelihood.mean(self.decode(self.encode(x)))

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``config.json`` and ``model.safetensors``."""
        return save_pretrained(self, self.config, directory)

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike[str], device: torch.device | str = "cpu"
    ) -> AutoEncoder:
        """Rebuild an auto-encoder saved by :meth:`save_pretrained` (errors as ``VAE.from_pretrained``)."""
        model = load_kind(directory, "autoencoder", device)
        assert isinstance(model, cls)
        return model
