"""Run configuration: defaults, YAML loading, validation with dotted paths, round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from spherevae.config import (
    ConfigError,
    RunConfig,
    config_from_dict,
    config_to_dict,
    load_config,
)


def test_defaults_round_trip() -> None:
    config = RunConfig()
    assert config_from_dict(config_to_dict(config)) == config
    assert config.model.hidden_sizes == (256, 128)
    assert config.train.lr == 1e-3


def test_partial_dict_keeps_defaults_and_types() -> None:
    config = config_from_dict({"model": {"latent": "S4xS4"}, "train": {"epochs": 3}})
    assert config.model.latent == "S4xS4"
    assert config.train.epochs == 3
    assert config.data.batch_size == RunConfig().data.batch_size


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"train": {"epchs": 3}}, "train.epchs: unknown key"),
        ({"model": {"hiden_sizes": [3]}}, "model.hiden_sizes: unknown key"),
        ({"dat": {}}, "dat: unknown key"),
        ({"data": {"batch_size": 0}}, "data.batch_size"),
        ({"train": {"epochs": -1}}, "train.epochs"),
        ({"train": {"lr": "fast"}}, "train.lr"),
        ({"model": {"latent": "S0"}}, "latent='S0'"),
        ({"data": {"binarize": "sometimes"}}, "data.binarize"),
    ],
)
def test_bad_values_are_named(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        config_from_dict(raw, source="cfg.yaml")


def test_load_yaml(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("model:\n  latent: S2\ntrain:\n  epochs: 2\n  lr: 0.002\n")
    config = load_config(path)
    assert (config.model.latent, config.train.epochs, config.train.lr) == ("S2", 2, 0.002)


def test_load_yaml_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("train:\n  epochz: 2\n")
    with pytest.raises(ConfigError, match=r"typo\.yaml: train\.epochz: unknown key"):
        load_config(typo)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("3\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(scalar)
