"""Your own data from a ``.npz`` file: ``--dataset npz:PATH`` trains, evaluates and plots; bad files
are refused with exit status 2 and one line naming the file. Deterministic (fixed seeds)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from spherevae.cli import main
from spherevae.data import load_dataset

FAST = ["-hd", "8", "--epochs", "1", "--device", "cpu", "--no-compiled-sampling"]


def _images(tmp_path: Path, channels: int = 1, n: int = 60) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / f"images{channels}.npz"
    x = (rng.random((n, channels, 6, 6)) * 255).astype(np.uint8)
    np.savez(path, x=x, y=rng.integers(0, 3, n))
    return path


def _vectors(tmp_path: Path, n: int = 90) -> Path:
    rng = np.random.default_rng(1)
    centres = rng.normal(0, 5, (3, 5))
    y = rng.integers(0, 3, n)
    path = tmp_path / "vectors.npz"
    np.savez(path, x=centres[y] + rng.normal(0, 1, (n, 5)), y=y)
    return path


def test_images_split_by_a_fixed_permutation(tmp_path: Path) -> None:
    path = _images(tmp_path)
    splits = load_dataset(f"npz:{path}")
    assert splits.sizes() == {"train": 48, "val": 6, "test": 6}
    assert splits.info.image_shape == (1, 6, 6) and splits.info.num_classes == 3
    again = load_dataset(f"npz:{path}")
    assert bool((again.test.images == splits.test.images).all())  # the same split every time
    x = np.load(path)["x"]
    rows = {tuple(np.round(r.ravel() * 255).astype(np.uint8)) for r in splits.test.images.numpy()}
    assert rows <= {tuple(r.ravel()) for r in x}
    assert "sha256" in splits.info.source and str(path) in splits.info.source


def test_given_splits_are_kept(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    path = tmp_path / "given.npz"
    arrays = {k: rng.random((n, 4)) for k, n in (("x", 10), ("x_val", 3), ("x_test", 4))}
    np.savez(path, **arrays)
    splits = load_dataset(f"npz:{path}")
    assert splits.sizes() == {"train": 10, "val": 3, "test": 4}
    assert not splits.info.labelled
    np.testing.assert_allclose(splits.val.images.numpy(), arrays["x_val"].astype(np.float32))


@pytest.mark.parametrize("channels", [1, 3])
def test_images_train_evaluate_and_plot(tmp_path: Path, channels: int) -> None:
    path = _images(tmp_path, channels)
    run_dir = tmp_path / "run"
    assert (
        main(["train", "--dataset", f"npz:{path}", "--latent", "S2", *FAST, "--out", str(run_dir)])
        == 0
    )
    info = json.loads((run_dir / "run.json").read_text())
    assert "sha256" in info["dataset_source"] and info["dataset"] == f"npz:{path.resolve()}"
    assert main(["eval", str(run_dir), "--ll-samples", "2"]) == 0
    assert (run_dir / "plots" / "reconstructions.png").exists()


def test_vectors_take_a_gaussian_likelihood_and_skip_image_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _vectors(tmp_path)
    run_dir = tmp_path / "run"
    argv = ["train", "--dataset", f"npz:{path}", "--latent", "S2", *FAST, "--out", str(run_dir)]
    assert main(argv) == 0
    assert "likelihood gaussian instead of bernoulli" in capsys.readouterr().out
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["model"]["likelihood"] == "gaussian" and config["model"]["image_shape"] == [5]
    assert main(["eval", str(run_dir), "--ll-samples", "2"]) == 0
    assert main(["plot", str(run_dir), "latent_means", "reconstructions"]) == 0
    assert (run_dir / "plots" / "latent_means.png").exists()
    assert not (run_dir / "plots" / "reconstructions.png").exists()
    assert "this data set holds vectors" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("arrays", "fragment"),
    [
        ({"z": np.zeros((5, 3))}, "no array 'x'"),
        ({"x": np.full((5, 3), np.nan)}, "NaN"),
        ({"x": np.zeros((5, 3)), "y": np.zeros(4, dtype=int)}, "5 integer labels"),
        ({"x": np.full((5, 1, 2, 2), 2.0)}, "[0, 1]"),
        ({"x": np.zeros((5, 3)), "x_val": np.zeros((2, 3))}, "both x_val and x_test"),
        ({"x": np.zeros((2, 3))}, "at least 3 examples"),
        ({"x": np.zeros((0, 3))}, "N >= 1"),
    ],
)
def test_bad_files_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arrays: dict[str, np.ndarray], fragment: str
) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    status = main(["train", "--dataset", f"npz:{path}", *FAST, "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and fragment in err[0] and str(path) in err[0], err
    assert not (tmp_path / "r").exists()


def test_a_file_that_is_not_npz(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "text.npz"
    path.write_text("not an archive")
    status = main(["train", "--dataset", f"npz:{path}", *FAST, "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert status == 2 and "cannot read" in err and str(path) in err
