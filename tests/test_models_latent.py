"""Latent-space names (``spherevae.models.latent``) and ``ModelConfig`` (``spherevae.models.config``).

Deterministic: no randomness, no statistical checks.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from spherevae.models import LIKELIHOOD_FLAGS, LatentFactor, LatentSpec, ModelConfig, parse_latent

VALID = {
    # text: (kinds, manifold dims, ambient sizes)
    "S10": (("sphere",), (10,), (11,)),
    "S1": (("sphere",), (1,), (2,)),
    "R10": (("euclidean",), (10,), (10,)),
    "R1": (("euclidean",), (1,), (1,)),
    "S4xS4": (("sphere", "sphere"), (4, 4), (5, 5)),
    "S2xS2xS2": (("sphere",) * 3, (2, 2, 2), (3, 3, 3)),
    "S9xR5": (("sphere", "euclidean"), (9, 5), (10, 5)),
    "R3xS1": (("euclidean", "sphere"), (3, 1), (3, 2)),
    "S123": (("sphere",), (123,), (124,)),
}


@pytest.mark.parametrize("text", list(VALID))
def test_parse_valid(text):
    kinds, dims, sizes = VALID[text]
    spec = parse_latent(text)
    assert isinstance(spec, LatentSpec)
    assert tuple(f.kind for f in spec.factors) == kinds
    assert tuple(f.dim for f in spec.factors) == dims
    assert tuple(f.ambient for f in spec.factors) == sizes
    assert spec.sizes == sizes
    assert spec.ambient_dim == sum(sizes)
    assert spec.manifold_dim == sum(dims)
    assert spec.has_sphere == ("sphere" in kinds)


@pytest.mark.parametrize("text", list(VALID))
def test_round_trip(text):
    spec = parse_latent(text)
    assert str(spec) == text
    assert parse_latent(str(spec)) == spec


def test_factor_str_and_ambient():
    assert str(LatentFactor("sphere", 3)) == "S3"
    assert LatentFactor("sphere", 3).ambient == 4
    assert LatentFactor("euclidean", 3).ambient == 3


@pytest.mark.parametrize(
    "text",
    [
        "S0",
        "Sx3",
        "R0",
        "",
        "S2x",
        "T3",
        "S-1",
        "xS2",
        "S2xxS2",
        "s2",
        "S 2",
        " S2",
        "S02",
        "S2.5",
        "SS2",
    ],
)
def test_parse_invalid(text):
    with pytest.raises(ValueError, match="latent") as info:
        parse_latent(text)
    assert repr(text) in str(info.value)


def test_parse_not_a_string():
    with pytest.raises(ValueError, match="latent=10"):
        parse_latent(10)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------
# ModelConfig
# ---------------------------------------------------------------------------------------------------


def test_config_defaults_are_the_papers():
    cfg = ModelConfig()
    assert cfg.hidden_sizes == (256, 128)
    assert cfg.image_shape == (1, 28, 28)
    assert cfg.posterior == "vmf"


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"latent": "S9xR5", "posterior": "vmf", "covariance": "full", "sampler": "mh"},
        {"latent": "R10", "posterior": "normal", "covariance": "single", "network": "cnn"},
        {"latent": "S2xS2xS2", "posterior": "powerspherical", "likelihood": "gaussian"},
        {"image_shape": (1, 8, 8), "hidden_sizes": (64,), "gaussian_std": 0.5},
        {"kind": "autoencoder", "likelihood": "continuous_bernoulli"},
    ],
)
def test_config_round_trip(kwargs):
    cfg = ModelConfig(**kwargs)
    data = json.loads(json.dumps(cfg.to_dict()))
    assert ModelConfig.from_dict(data) == cfg
    assert set(data) == {f.name for f in dataclasses.fields(ModelConfig)}


def test_config_lists_become_tuples():
    cfg = ModelConfig(image_shape=[1, 8, 8], hidden_sizes=[64, 32])  # type: ignore[arg-type]
    assert cfg.image_shape == (1, 8, 8)
    assert cfg.hidden_sizes == (64, 32)


def test_config_missing_keys_take_defaults():
    assert ModelConfig.from_dict({"latent": "S4xS4"}) == ModelConfig(latent="S4xS4")


def test_config_unknown_key_rejected():
    with pytest.raises(ValueError, match="'hiden_sizes'"):
        ModelConfig.from_dict({"latent": "S2", "hiden_sizes": [3]})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"latent": "S0"}, "latent='S0'"),
        ({"posterior": "gauss"}, "posterior='gauss'"),
        ({"sampler": "wood"}, "sampler='wood'"),
        ({"covariance": "diag"}, "covariance='diag'"),
        ({"network": "resnet"}, "network='resnet'"),
        ({"likelihood": "bce"}, "likelihood='bce'"),
        ({"kind": "gan"}, "kind='gan'"),
        ({"image_shape": (28, 28)}, "image_shape"),
        ({"image_shape": (1, 0, 28)}, "image_shape"),
        ({"hidden_sizes": ()}, "hidden_sizes"),
        ({"hidden_sizes": (64, -1)}, "hidden_sizes"),
        ({"gaussian_std": 0.0}, "gaussian_std"),
        ({"n_classes": -2}, "n_classes"),
    ],
)
def test_config_invalid_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**kwargs)


@pytest.mark.parametrize("latent", ["S10", "S9xR5", "R3xS1"])
def test_normal_posterior_on_sphere_is_an_error(latent):
    with pytest.raises(ValueError, match=r"posterior='normal'.*sphere"):
        ModelConfig(latent=latent, posterior="normal")


def test_likelihood_flags():
    assert LIKELIHOOD_FLAGS == {"bce": "bernoulli", "mse": "gaussian"}
    for name in LIKELIHOOD_FLAGS.values():
        ModelConfig(likelihood=name)  # type: ignore[arg-type]


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ModelConfig().latent = "S2"  # type: ignore[misc]
