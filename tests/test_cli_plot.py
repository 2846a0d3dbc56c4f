"""``spherevae plot`` on tiny runs (1 epoch, 64 training images of digits): the walks over an R^2
prior, MP4 output and its missing extra, a conditional model's figures per class, auto-encoders."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from spherevae.cli import main
from spherevae.plots import animation

TINY = ["--dataset", "digits", "-hd", "32", "--epochs", "1", "--train-limit", "64"]
TINY += ["--device", "cpu", "--seed", "3"]


def _train(root: Path, name: str, *args: str) -> Path:
    run_dir = root / name
    assert main(["train", *TINY, *args, "--out", str(run_dir)]) == 0
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    return {
        "R2": _train(root, "r2", "--latent", "R2", "--posterior", "normal"),
        "conditional": _train(root, "cvae", "--latent", "S2", "--conditional"),
    }


@pytest.mark.slow  # 10-15 s; the S2 run of tests/test_cli.py checks the frames by default
def test_spiral_of_an_r2_run(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = runs["R2"]
    assert main(["plot", str(run_dir), "spiral"]) == 0
    path = run_dir / "plots" / "spiral.gif"
    assert capsys.readouterr().out.split() == [str(path)]
    with Image.open(path) as gif:
        assert gif.n_frames >= 60
        assert gif.size[0] >= 600 and gif.size[1] >= 300


def test_mp4_without_the_video_extra_exits_3(
    runs: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(animation, "video_available", lambda: False)
    plots = runs["R2"] / "plots"
    before = sorted(p.name for p in plots.iterdir())
    assert main(["plot", str(runs["R2"]), "curves", "spiral", "--format", "mp4"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'spherevae[video]'" in err[0], err
    assert sorted(p.name for p in plots.iterdir()) == before  # nothing drawn


@pytest.mark.slow
def test_mp4_walks_of_an_r2_run(runs: dict[str, Path]) -> None:
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    run_dir = runs["R2"]
    what = ["spiral", "interpolation_animation"]
    assert main(["plot", str(run_dir), *what, "--format", "mp4"]) == 0
    for name in what:
        frames, _ = imageio_ffmpeg.count_frames_and_secs(str(run_dir / "plots" / f"{name}.mp4"))
        assert frames >= 60, name


def test_conditional_figures_are_drawn_per_class(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = runs["conditional"]
    assert main(["plot", str(run_dir), "decoded_grid", "interpolation"]) == 0
    out = capsys.readouterr().out
    assert "skipped" not in out
    with Image.open(run_dir / "plots" / "decoded_grid.png") as grid:
        width, height = grid.size
    assert height > 1.2 * width  # ten panels in 5 rows of 2; one panel is wider than high
    with Image.open(run_dir / "plots" / "interpolation.png") as strip:
        assert strip.size[1] > 360  # ten rows of tiles, one per class


def test_latent_tsne_of_a_2d_latent_is_skipped_with_the_reason(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plot", str(runs["R2"]), "latent_tsne"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("latent_tsne: skipped (latent R2 has 2 coordinates")
    assert not (runs["R2"] / "plots" / "latent_tsne.png").exists()


def test_latent_means_of_an_s2_run_has_the_map(runs: dict[str, Path]) -> None:
    with Image.open(runs["conditional"] / "plots" / "latent_means.png") as image:
        width, height = image.size  # drawn by train: the sphere and, beside it, the Hammer map
    assert width > 1.8 * height
