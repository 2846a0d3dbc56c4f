"""``spherevae.fit``: a run directory from Python data, the same as the CLI's, resumable."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

import spherevae
from spherevae.cli import main
from spherevae.data.files import sha256_file
from spherevae.fitting import data_arrays
from spherevae.models import VAE, ModelConfig

SETTINGS = {"batch_size": 16, "eval_batch_size": 32, "lr": 3e-3, "seed": 2, "device": "cpu"}
SETTINGS["compiled_sampling"] = False


def _data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    proto = (torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(99)) > 0.5).float()
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    return (0.8 * proto[y] + 0.2 * torch.rand(n, 1, 8, 8, generator=g)).clamp(0, 1), y


def _model(seed: int = 0) -> VAE:
    torch.manual_seed(seed)
    return VAE(ModelConfig(image_shape=(1, 8, 8), latent="S2", hidden_sizes=(16,)))


def _quiet(line: str) -> None:
    pass


def test_fit_writes_a_run_that_the_cli_reads(tmp_path: Path) -> None:
    out = tmp_path / "run"
    train, val = _data(64, 0), _data(24, 1)
    assert spherevae.fit(_model(), train, val, out=out, epochs=2, log=_quiet, **SETTINGS) == out
    for name in ("config.yaml", "run.json", "metrics.csv", "checkpoints/last.pt", "data.npz"):
        assert (out / name).is_file(), name
    assert (out / "model" / "model.safetensors").is_file()
    assert (out / "plots" / "reconstructions.png").is_file()
    assert len((out / "metrics.csv").read_text().splitlines()) == 3
    info = json.loads((out / "run.json").read_text())
    assert info["dataset_sha256"] == sha256_file(out / "data.npz")
    assert info["splits"] == {"train": 64, "val": 24, "test": 24}
    with np.load(out / "data.npz") as stored:
        np.testing.assert_array_equal(stored["x"], train[0].numpy())
        np.testing.assert_array_equal(stored["y_val"], val[1].numpy())
    # the run keeps its data: a copy elsewhere evaluates and plots from itself
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)
    shutil.rmtree(out)
    assert main(["eval", str(moved), "--ll-samples", "4"]) == 0
    assert "log_likelihood" in (moved / "eval_test.json").read_text()
    assert main(["plot", str(moved), "latent_means"]) == 0
    assert main(["report", str(moved)]) == 0
    # continued by the CLI into a new directory, the run takes its data along
    longer = tmp_path / "longer"
    assert main(["train", "--resume", str(moved), "--epochs", "3", "--out", str(longer)]) == 0
    assert (longer / "data.npz").read_bytes() == (moved / "data.npz").read_bytes()
    assert len((longer / "metrics.csv").read_text().splitlines()) == 4
    # the data are checked against the record: changed data are refused, not used
    with np.load(moved / "data.npz") as stored:
        arrays = {k: stored[k] for k in stored.files}
    arrays["x"][0] = 1 - arrays["x"][0]
    np.savez(moved / "data.npz", **arrays)
    assert main(["eval", str(moved)]) == 2


def test_fit_again_resumes_bit_identically(tmp_path: Path) -> None:
    data = _data(64, 0)
    straight = _model()
    spherevae.fit(straight, data, out=tmp_path / "a", epochs=2, log=_quiet, **SETTINGS)
    spherevae.fit(_model(), data, out=tmp_path / "b", epochs=1, log=_quiet, **SETTINGS)
    resumed = _model(seed=5)  # other initial weights: the checkpoint's are loaded into it
    lines: list[str] = []
    spherevae.fit(resumed, data, out=tmp_path / "b", epochs=2, log=lines.append, **SETTINGS)
    assert any("resuming" in line for line in lines)
    a, b = (tmp_path / d / "metrics.csv" for d in "ab")
    assert a.read_text() == b.read_text()
    for name, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name
    with pytest.raises(ValueError, match="other data"):
        spherevae.fit(_model(), _data(64, 7), out=tmp_path / "b", epochs=2, **SETTINGS)
    with pytest.raises(ValueError, match=r"cannot change train\.seed"):
        spherevae.fit(_model(), data, out=tmp_path / "b", **{**SETTINGS, "seed": 9})


class _Pairs(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]


def test_every_kind_of_data_is_stored_alike(tmp_path: Path) -> None:
    x, y = _data(40, 0)
    expected = data_arrays((x, y), None, (1, 8, 8))
    kinds = [
        (x.numpy(), y.numpy()),
        _Pairs(x, y),
        DataLoader(TensorDataset(x, y), batch_size=7),
    ]
    for kind in kinds:
        got = data_arrays(kind, None, (1, 8, 8))
        assert got.keys() == expected.keys() == {"x", "y"}
        for key in got:
            np.testing.assert_array_equal(got[key], expected[key])
    unlabelled = data_arrays(DataLoader(x, batch_size=9), None, (1, 8, 8))
    assert unlabelled.keys() == {"x"}


def test_bad_input_is_refused_naming_it(tmp_path: Path) -> None:
    x, y = _data(40, 0)
    with pytest.raises(ValueError, match="unknown setting epoch=3"):
        spherevae.fit(_model(), x, out=tmp_path / "a", epoch=3)
    with pytest.raises(ValueError, match=r"model's shape \(1, 8, 8\).*\(40, 64\)"):
        spherevae.fit(_model(), x.reshape(40, 64), out=tmp_path / "a")
    with pytest.raises(ValueError, match="max_data_bytes=100"):
        spherevae.fit(_model(), x, out=tmp_path / "a", max_data_bytes=100)
    with pytest.raises(TypeError, match="got list"):
        spherevae.fit(_model(), [x], out=tmp_path / "a")
    with pytest.raises(ValueError, match="labels for both"):
        spherevae.fit(_model(), (x, y), x, out=tmp_path / "a")
    assert not (tmp_path / "a").exists()
    vectors = torch.randn(40, 5)  # real values: a Bernoulli model does not fit them
    torch.manual_seed(0)
    model = VAE(ModelConfig(image_shape=(5,), latent="S2", hidden_sizes=(8,)))
    with pytest.raises(ValueError, match="likelihood='bernoulli' \\(the data need 'gaussian'\\)"):
        spherevae.fit(model, vectors, out=tmp_path / "v", epochs=1, log=_quiet, **SETTINGS)
