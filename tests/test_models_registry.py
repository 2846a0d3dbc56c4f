"""Your own networks and your own vectors: ``register_network`` and ``image_shape=(D,)``.

A registered network is built from the config like the built-in ones, trains, is saved by name and
rebuilt by ``from_pretrained`` where the name is registered; an unregistered name is an error that
says how to register it. Vector data (``image_shape=(D,)``) go through the MLP and the likelihoods
with one event axis. Deterministic (fixed seeds).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from spherevae.models import VAE, AutoEncoder, ModelConfig, from_pretrained, register_network

IMAGE = (1, 6, 6)


class TinyEncoder(nn.Module):
    """A one-convolution encoder: (B, C, H, W) -> (B, 12)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        channels = config.image_shape[0]
        self.conv = nn.Conv2d(channels, 3, 3, padding=1)
        self.out_features = 12
        self.dense = nn.Linear(3 * config.image_shape[1] * config.image_shape[2], 12)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.dense(torch.relu(self.conv(x)).flatten(-3))
        return out


class TinyDecoder(nn.Module):
    """(..., latent_size) -> (..., C, H, W) logits."""

    def __init__(self, config: ModelConfig, latent_size: int) -> None:
        super().__init__()
        self.shape = config.image_shape
        self.dense = nn.Linear(latent_size, int(torch.tensor(self.shape).prod()))

    def forward(self, z: Tensor) -> Tensor:
        out: Tensor = self.dense(z)
        return out.reshape(*out.shape[:-1], *self.shape)


@pytest.fixture(autouse=True)
def _registered() -> None:
    torch.manual_seed(0)
    register_network("tiny-conv", encoder=TinyEncoder, decoder=TinyDecoder)


@pytest.mark.parametrize("latent", ["S3", "S2xS2", "R2"])
def test_a_registered_network_trains_saves_and_reloads(latent: str, tmp_path: Path) -> None:
    posterior = "normal" if latent.startswith("R") else "vmf"
    config = ModelConfig(image_shape=IMAGE, network="tiny-conv", latent=latent, posterior=posterior)
    model = VAE(config)
    assert isinstance(model.encoder, TinyEncoder) and isinstance(model.decoder, TinyDecoder)
    x = torch.rand(5, *IMAGE).round()
    out = model.elbo(x)
    out.loss.backward()
    assert all(p.grad is not None for p in model.encoder.parameters())
    model.save_pretrained(tmp_path / "m")
    loaded = VAE.from_pretrained(tmp_path / "m")
    assert loaded.config.network == "tiny-conv"
    torch.testing.assert_close(loaded.encode(x).mean, model.encode(x).mean, rtol=0, atol=0)
    z = model.prior().sample((4,))
    torch.testing.assert_close(loaded.decode(z), model.decode(z), rtol=0, atol=0)


def test_conditional_models_widen_the_registered_networks() -> None:
    config = ModelConfig(image_shape=IMAGE, network="tiny-conv", latent="S3", n_classes=4)
    model = VAE(config)
    assert model.decoder.dense.in_features == 4 + 4  # z in R^4 and the one-hot label
    assert model.head.factors[0].direction.in_features == 12 + 4  # features and the label
    x, y = torch.rand(3, *IMAGE).round(), torch.tensor([0, 3, 1])
    assert model.elbo(x, y=y).loss.isfinite()


def test_an_auto_encoder_with_a_registered_network() -> None:
    config = ModelConfig(image_shape=IMAGE, network="tiny-conv", latent="S3", kind="autoencoder")
    model = AutoEncoder(config)
    assert model.reconstruct(torch.rand(2, *IMAGE)).shape == (2, *IMAGE)


def test_an_unregistered_network_is_a_clear_error(tmp_path: Path) -> None:
    """A model saved with a registered network, loaded in a fresh process that did not register it:
    the error names the network and how to register it (and runs no code from the folder)."""
    VAE(ModelConfig(image_shape=IMAGE, network="tiny-conv", latent="S3")).save_pretrained(
        tmp_path / "m"
    )
    code = (
        f"from spherevae.models import from_pretrained\nfrom_pretrained({str(tmp_path / 'm')!r})\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert "network='tiny-conv'" in last and "register_network('tiny-conv'" in last, last


@pytest.mark.parametrize(
    ("name", "encoder", "match"),
    [
        ("mlp", TinyEncoder, "built in"),
        ("", TinyEncoder, "non-empty"),
        ("a b", TinyEncoder, "letters"),
        ("ok", "not callable", "encoder must be a callable"),
    ],
)
def test_bad_registrations(name: str, encoder: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        register_network(name, encoder=encoder, decoder=TinyDecoder)  # type: ignore[arg-type]


def test_an_encoder_without_out_features_is_refused() -> None:
    class NoWidth(nn.Module):
        def __init__(self, config: ModelConfig) -> None:
            super().__init__()

    register_network("no-width", encoder=NoWidth, decoder=TinyDecoder)
    with pytest.raises(ValueError, match="out_features"):
        VAE(ModelConfig(image_shape=IMAGE, network="no-width", latent="S3"))


@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli", "continuous_bernoulli"])
def test_vectors_train_with_the_mlp(likelihood: str, tmp_path: Path) -> None:
    config = ModelConfig(image_shape=(20,), hidden_sizes=(16,), latent="S4", likelihood=likelihood)
    model = VAE(config)
    x = torch.rand(7, 20)
    out = model.elbo(x)
    assert out.reconstruction.shape == (7,) and out.kl.shape == (7,)
    out.loss.backward()
    assert model.decode(model.prior().sample((3,))).shape == (3, 20)
    assert model.log_marginal_likelihood(x, n_samples=4).shape == (7,)
    # the likelihood sums over the vector's 20 values, not over a batch axis
    params = model.decode(model.encode(x).mean)
    manual = model.likelihood.distribution(params).base_dist.log_prob(x).sum(-1)
    torch.testing.assert_close(model.likelihood.log_prob(x, params), manual)
    model.save_pretrained(tmp_path / "v")
    assert from_pretrained(tmp_path / "v").config.image_shape == (20,)


def test_vectors_refuse_the_cnn_and_other_shapes() -> None:
    with pytest.raises(ValueError, match="network='cnn' needs images"):
        ModelConfig(image_shape=(20,), network="cnn")
    with pytest.raises(ValueError, match=r"\(C, H, W\) for images or \(D,\) for vectors"):
        ModelConfig(image_shape=(4, 5))
