"""Encoder and decoder networks for images of shape ``(C, H, W)`` (and vectors ``(D,)``).

An encoder maps ``(B, C, H, W)`` images to ``(B, out_features)`` features (a posterior head then turns
them into a distribution); a decoder maps latent vectors ``(..., latent_dim)`` to the likelihood's
parameters ``(..., C, H, W)`` (e.g. Bernoulli logits), with any leading shape, so that ``n_samples``
draws of ``z`` for a batch decode in one call.

- MLP (:class:`MLPEncoder`, :class:`MLPDecoder`): ReLU layers of widths ``hidden_sizes``, default
  ``(256, 128)`` as in Davidson et al. (2018); the decoder mirrors them. Any image size, and vectors.
- CNN (:class:`ConvEncoder`, :class:`ConvDecoder`): two stride-2 convolutions (28 -> 14 -> 7) and a
  dense layer, and the transpose. 28x28 images only.
- Your own, registered by name (:func:`~spherevae.models.register_network`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from torch import Tensor, nn

from .registry import network_factories

if TYPE_CHECKING:
    from .config import ModelConfig

__all__ = [
    "ConvDecoder",
    "ConvEncoder",
    "MLPDecoder",
    "MLPEncoder",
    "Networks",
    "build_networks",
]

ImageShape = tuple[int, ...]  # (C, H, W) for images, (D,) for vectors


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    """Linear layers between consecutive ``sizes``, each followed by a ReLU."""
    layers: list[nn.Module] = []
    for n_in, n_out in itertools.pairwise(sizes):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """Flatten, then ReLU layers of widths ``hidden_sizes``: ``(B, *image_shape) -> (B, hidden_sizes[-1])``."""

    def __init__(self, image_shape: ImageShape, hidden_sizes: Sequence[int] = (256, 128)) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.out_features = int(hidden_sizes[-1])
        self.net = _mlp([math.prod(image_shape), *hidden_sizes])

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.net(x.flatten(-len(self.image_shape)))
        return out


class MLPDecoder(nn.Module):
    """ReLU layers of widths ``reversed(hidden_sizes)``, then a linear map to ``C*H*W`` parameters.

    Shapes: ``(..., latent_dim) -> (..., *image_shape)``.
    """

    def __init__(
        self, latent_dim: int, image_shape: ImageShape, hidden_sizes: Sequence[int] = (256, 128)
    ) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        widths = [latent_dim, *reversed(hidden_sizes)]
        self.net = nn.Sequential(_mlp(widths), nn.Linear(widths[-1], math.prod(image_shape)))

    def forward(self, z: Tensor) -> Tensor:
        out: Tensor = self.net(z)
        return out.reshape(*out.shape[:-1], *self.image_shape)


def _check_28(image_shape: ImageShape) -> None:
    if tuple(image_shape[1:]) != (28, 28):
        raise ValueError(
            f"the convolutional networks are built for 28x28 images, got image_shape={tuple(image_shape)}; "
            f"use network='mlp' for other sizes"
        )


class ConvEncoder(nn.Module):
    """``(B, C, 28, 28) -> (B, width)``: conv 4x4/2 to 32x14x14, conv 4x4/2 to 64x7x7, dense ``width``.

    Raises:
        ValueError: if the image is not 28x28.
    """

    def __init__(self, image_shape: ImageShape, width: int = 256) -> None:
        super().__init__()
        _check_28(image_shape)
        self.image_shape = tuple(image_shape)
        self.out_features = int(width)
        self.net = nn.Sequential(
            nn.Conv2d(image_shape[0], 32, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, width),
            nn.ReLU(),
        )

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.net(x)
        return out


class ConvDecoder(nn.Module):
    """``(..., latent_dim) -> (..., C, 28, 28)``, the transpose of :class:`ConvEncoder`.

    Raises:
        ValueError: if the image is not 28x28.
    """

    def __init__(self, latent_dim: int, image_shape: ImageShape, width: int = 256) -> None:
        super().__init__()
        _check_28(image_shape)
        self.image_shape = tuple(image_shape)
        self.dense = nn.Sequential(
            nn.Linear(latent_dim, width), nn.ReLU(), nn.Linear(width, 64 * 7 * 7), nn.ReLU()
        )
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(32, image_shape[0], 4, stride=2, padding=1),
        )

    def forward(self, z: Tensor) -> Tensor:
        lead = z.shape[:-1]
        h: Tensor = self.dense(z.reshape(-1, z.shape[-1]))
        out: Tensor = self.deconv(h.view(-1, 64, 7, 7))
        return out.reshape(*lead, *self.image_shape)


class Networks(NamedTuple):
    """A model's encoder and decoder, and the width of the encoder's features."""

    encoder: nn.Module
    decoder: nn.Module
    features: int


def build_networks(config: ModelConfig, latent_dim: int) -> Networks:
    """The encoder and decoder named by ``config.network``, for ``config.image_shape`` and a decoder
    input of ``latent_dim`` coordinates.

    Raises:
        ValueError: for an unknown network, ``"cnn"`` with an image that is not 28x28, or a
            registered encoder without an integer ``out_features``.
    """
    shape, hidden = config.image_shape, config.hidden_sizes
    if config.network == "mlp":
        mlp = MLPEncoder(shape, hidden)
        return Networks(mlp, MLPDecoder(latent_dim, shape, hidden), mlp.out_features)
    if config.network == "cnn":
        conv = ConvEncoder(shape, hidden[0])
        return Networks(conv, ConvDecoder(latent_dim, shape, hidden[0]), conv.out_features)
    factories = network_factories(config.network)
    encoder, decoder = factories.encoder(config), factories.decoder(config, latent_dim)
    features = getattr(encoder, "out_features", None)
    if not isinstance(features, int) or isinstance(features, bool) or features < 1:
        raise ValueError(
            f"the encoder of network={config.network!r} must expose out_features, the width of "
            f"its features (an integer >= 1), got {features!r}"
        )
    return Networks(encoder, decoder, features)
