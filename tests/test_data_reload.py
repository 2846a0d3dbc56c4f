"""Runs on your own data (``npz:``, ``folder:``, ``csv:``) reload it from their record: ``eval``,
``plot``, ``report`` and ``train --resume`` re-check the digest ``run.json`` keeps and refuse data
that changed (exit status 2, one line naming the path); ``sample`` needs no data. Tiny data written
here, 1 epoch; deterministic."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spherevae.cli import main

FAST = ["-hd", "8", "--epochs", "1", "--device", "cpu", "--no-compiled-sampling"]


def _npz(root: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    path = root / "data.npz"
    np.savez(path, x=rng.random((30, 1, 4, 4)).astype(np.float32))
    return path, path


def _folder(root: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(1)
    for i in range(30):
        folder = root / "images" / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return root / "images", root / "images" / "a" / "1.png"


def _csv(root: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(2)
    path = root / "data.csv"
    rows = [f"{v[0]:.4f},{v[1]:.4f},{v[2]:.4f}" for v in rng.normal(0, 3, (30, 3))]
    path.write_text("p,q,r\n" + "\n".join(rows) + "\n")
    return path, path


def _change(file: Path) -> None:
    """Change the data without breaking it: a file stays readable and of the same layout."""
    if file.suffix == ".png":
        pixels = np.asarray(Image.open(file)).copy()
        pixels[0, 0] = 255 - pixels[0, 0]
        Image.fromarray(pixels).save(file)
    elif file.suffix == ".npz":
        x = np.load(file)["x"]
        np.savez(file, x=x[::-1])
    else:
        file.write_text(file.read_text().replace("\n", "\n0,0,0\n", 1))


@pytest.mark.parametrize("kind", ["npz", "folder", "csv"])
def test_changed_data_is_refused_on_reload(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    data, file = {"npz": _npz, "folder": _folder, "csv": _csv}[kind](tmp_path)
    run_dir = tmp_path / "run"
    argv = ["train", "--dataset", f"{kind}:{data}", "--latent", "S2", *FAST]
    assert main([*argv, "--out", str(run_dir)]) == 0
    recorded = json.loads((run_dir / "run.json").read_text())["dataset_sha256"]
    backup = tmp_path / "backup"
    shutil.copytree(data, backup) if data.is_dir() else shutil.copy(data, backup)
    _change(file)
    capsys.readouterr()
    for command in (
        ["eval", str(run_dir), "--ll-samples", "2"],
        ["plot", str(run_dir), "latent_means"],
        ["report", str(run_dir)],
        ["train", "--resume", str(run_dir), "--epochs", "2"],
    ):
        status = main(command)
        err = capsys.readouterr().err.strip().splitlines()
        assert status == 2 and len(err) == 1, (command, err)
        assert f"{data} changed since the run recorded it (sha256 {recorded}" in err[0], err
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"
    assert main(["sample", str(run_dir), "--n", "4"]) == 0  # reads no data
    samples = run_dir / ("samples.csv" if kind == "csv" else "plots/samples.png")
    assert samples.is_file()
    if kind == "csv":  # vectors: one sample a row, read back as a data set of their own
        assert samples.read_text().splitlines()[0] == "x0,x1,x2"
        assert len(samples.read_text().splitlines()) == 5
    # the data as they were: the run goes on
    if data.is_dir():
        shutil.rmtree(data)
        shutil.copytree(backup, data)
    else:
        shutil.copy(backup, data)
    assert main(["train", "--resume", str(run_dir), "--epochs", "2"]) == 0
    assert main(["eval", str(run_dir), "--ll-samples", "2"]) == 0


def test_the_command_line_knows_every_user_data_prefix() -> None:
    from spherevae import cli
    from spherevae.data import USER_DATA_PREFIXES

    assert cli.USER_DATA_PREFIXES == USER_DATA_PREFIXES
