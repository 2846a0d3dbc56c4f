"""``save_pretrained`` / ``from_pretrained`` (``spherevae.models.pretrained``).

Deterministic (fixed seeds; exact comparisons of outputs before and after a round trip).
"""

from __future__ import annotations

import json
import re

import pytest
import torch

from spherevae.models import VAE, AutoEncoder, ModelConfig, from_pretrained, load_config

SEED = 99


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(SEED)


def _config(**kwargs) -> ModelConfig:
    base = {"image_shape": (1, 8, 8), "hidden_sizes": (16,)}
    return ModelConfig(**(base | kwargs))


def _perturbed(model: torch.nn.Module) -> torch.nn.Module:
    # move every parameter away from its initial value, so that a load that silently kept the
    # freshly initialised weights could not pass
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


@pytest.mark.parametrize(
    "kwargs",
    [
        {"latent": "S2"},
        {"latent": "S9xR5", "covariance": "full", "sampler": "mh"},
        {"latent": "R4", "posterior": "normal", "likelihood": "gaussian"},
        {"latent": "S2xS2", "posterior": "powerspherical", "likelihood": "continuous_bernoulli"},
        {"latent": "S3", "image_shape": (1, 28, 28), "network": "cnn"},
    ],
)
def test_vae_round_trip(tmp_path, kwargs):
    model = _perturbed(VAE(_config(**kwargs)))
    model.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]
    loaded = VAE.from_pretrained(tmp_path / "m")
    assert loaded.config == model.config
    x = torch.rand(3, *model.config.image_shape).round()
    for name, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value, rtol=0, atol=0)
    q1, q2 = model.encode(x), loaded.encode(x)
    torch.testing.assert_close(q2.mean, q1.mean, rtol=0, atol=0)
    z = q1.sample((2,))
    torch.testing.assert_close(loaded.decode(z), model.decode(z), rtol=0, atol=0)
    torch.manual_seed(1)
    a = model.elbo(x, n_samples=2)
    torch.manual_seed(1)
    b = loaded.elbo(x, n_samples=2)
    torch.testing.assert_close(b.loss, a.loss, rtol=0, atol=0)
    # the generic loader gives the same
    assert isinstance(from_pretrained(tmp_path / "m"), VAE)


def test_learned_gaussian_scale_is_saved(tmp_path):
    model = VAE(_config(likelihood="gaussian"))
    with torch.no_grad():
        model.likelihood.raw_std.fill_(-2.0)
    model.save_pretrained(tmp_path)
    torch.testing.assert_close(VAE.from_pretrained(tmp_path).likelihood.std, model.likelihood.std)


def test_autoencoder_round_trip(tmp_path):
    model = _perturbed(AutoEncoder(_config(latent="S2xR2", kind="autoencoder")))
    model.save_pretrained(tmp_path)
    loaded = AutoEncoder.from_pretrained(tmp_path)
    x = torch.rand(3, 1, 8, 8)
    torch.testing.assert_close(loaded.reconstruct(x), model.reconstruct(x), rtol=0, atol=0)
    assert isinstance(from_pretrained(tmp_path), AutoEncoder)
    with pytest.raises(ValueError, match=r"kind='autoencoder'.*not a VAE"):
        VAE.from_pretrained(tmp_path)


def test_vae_folder_is_not_an_autoencoder(tmp_path):
    VAE(_config()).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="not an auto-encoder"):
        AutoEncoder.from_pretrained(tmp_path)


def test_config_json_is_the_config(tmp_path):
    cfg = _config(latent="S9xR5")
    VAE(cfg).save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text()) == cfg.to_dict()
    assert load_config(tmp_path) == cfg


def test_save_overwrites_and_leaves_no_temporary_files(tmp_path):
    VAE(_config(latent="S2")).save_pretrained(tmp_path)
    model = _perturbed(VAE(_config(latent="S3")))
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    assert VAE.from_pretrained(tmp_path).config.latent == "S3"


@pytest.mark.parametrize("name", ["config.json", "model.safetensors"])
def test_missing_file(tmp_path, name):
    VAE(_config()).save_pretrained(tmp_path)
    (tmp_path / name).unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(name)):
        VAE.from_pretrained(tmp_path)


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        VAE.from_pretrained(tmp_path / "nothing")


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],  # truncated
        lambda b: b[:5],  # truncated inside the header length
        lambda b: b"\x00" * len(b),  # zeroed
        lambda b: b"not a safetensors file at all",
    ],
    ids=["half", "header", "zeros", "garbage"],
)
def test_corrupt_weights(tmp_path, damage):
    VAE(_config()).save_pretrained(tmp_path)
    path = tmp_path / "model.safetensors"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ValueError, match=r"model\.safetensors"):
        VAE.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"latent": "S2", ', "config.json"),  # truncated JSON
        ('{"latent": "S2", "extra": 1}', r"config.json.*'extra'"),
        ('{"latent": "S0"}', r"config.json.*latent='S0'"),
        ("[1, 2]", "config.json"),
    ],
)
def test_corrupt_config(tmp_path, text, match):
    VAE(_config()).save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(ValueError, match=match):
        VAE.from_pretrained(tmp_path)


def test_weights_that_do_not_fit_the_config(tmp_path):
    VAE(_config(latent="S2")).save_pretrained(tmp_path)
    # the config now describes a bigger latent space than the saved weights
    (tmp_path / "config.json").write_text(json.dumps(_config(latent="S5").to_dict()))
    with pytest.raises(ValueError, match=r"model.safetensors.*do not match"):
        VAE.from_pretrained(tmp_path)


def test_no_pickle_in_the_weights_file(tmp_path):
    VAE(_config()).save_pretrained(tmp_path)
    data = (tmp_path / "model.safetensors").read_bytes()
    header_len = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + header_len])
    assert header["__metadata__"]["format"] == "pt"
    assert all("dtype" in v for k, v in header.items() if k != "__metadata__")
