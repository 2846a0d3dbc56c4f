"""Encoder/decoder networks (``spherevae.models.networks``): shapes for MLP and CNN, 28x28 and 8x8.

Deterministic (fixed seed, shape checks only).
"""

from __future__ import annotations

import pytest
import torch

from spherevae.models import (
    ConvDecoder,
    ConvEncoder,
    MLPDecoder,
    MLPEncoder,
    ModelConfig,
    build_networks,
)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("image_shape", [(1, 28, 28), (1, 8, 8), (3, 5, 7), (1, 1, 2)])
@pytest.mark.parametrize("hidden", [(256, 128), (32,), (16, 8, 4)])
def test_mlp_shapes(image_shape, hidden):
    enc, dec = MLPEncoder(image_shape, hidden), MLPDecoder(6, image_shape, hidden)
    x = torch.rand(4, *image_shape)
    h = enc(x)
    assert h.shape == (4, hidden[-1]) == (4, enc.out_features)
    assert dec(torch.randn(4, 6)).shape == (4, *image_shape)
    # any leading shape: (n_samples, B, latent) decodes in one call
    assert dec(torch.randn(3, 4, 6)).shape == (3, 4, *image_shape)


def test_mlp_decoder_mirrors_encoder():
    enc, dec = MLPEncoder((1, 8, 8), (256, 128)), MLPDecoder(6, (1, 8, 8), (256, 128))
    enc_widths = [m.out_features for m in enc.modules() if isinstance(m, torch.nn.Linear)]
    dec_widths = [m.out_features for m in dec.modules() if isinstance(m, torch.nn.Linear)]
    assert enc_widths == [256, 128]
    assert dec_widths == [128, 256, 64]


@pytest.mark.parametrize("channels", [1, 3])
def test_cnn_shapes(channels):
    shape = (channels, 28, 28)
    enc, dec = ConvEncoder(shape, 64), ConvDecoder(5, shape, 64)
    h = enc(torch.rand(4, *shape))
    assert h.shape == (4, 64) == (4, enc.out_features)
    assert dec(torch.randn(4, 5)).shape == (4, *shape)
    assert dec(torch.randn(2, 4, 5)).shape == (2, 4, *shape)


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 32, 32), (3, 28, 27)])
def test_cnn_rejects_other_sizes(shape):
    with pytest.raises(ValueError, match=r"28x28.*image_shape"):
        ConvEncoder(shape)
    with pytest.raises(ValueError, match=r"28x28.*image_shape"):
        ConvDecoder(3, shape)
    with pytest.raises(ValueError, match="28x28"):
        build_networks(ModelConfig(image_shape=shape, network="cnn", hidden_sizes=(64,)), 3)


def _config(network: str, shape: tuple[int, ...], hidden: tuple[int, ...]) -> ModelConfig:
    return ModelConfig(image_shape=shape, network=network, hidden_sizes=hidden)


def test_build_networks():
    enc, dec, features = build_networks(_config("mlp", (1, 8, 8), (32, 16)), 3)
    assert isinstance(enc, MLPEncoder) and isinstance(dec, MLPDecoder) and features == 16
    enc, dec, features = build_networks(_config("cnn", (1, 28, 28), (32, 16)), 3)
    assert isinstance(enc, ConvEncoder) and isinstance(dec, ConvDecoder)
    assert enc.out_features == features == 32
    with pytest.raises(ValueError, match=r"network='rnn'.*register_network"):
        _config("rnn", (1, 8, 8), (32,))


def test_gradients_reach_every_parameter():
    for network, shape in [("mlp", (1, 8, 8)), ("cnn", (1, 28, 28))]:
        enc, dec, _ = build_networks(_config(network, shape, (16,)), 3)
        z = torch.randn(2, 3)
        (enc(torch.rand(2, *shape)).sum() + dec(z).sum()).backward()
        for p in [*enc.parameters(), *dec.parameters()]:
            assert p.grad is not None and torch.isfinite(p.grad).all()
