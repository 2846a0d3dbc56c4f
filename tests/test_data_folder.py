"""Your own images in a folder: ``--dataset folder:PATH``. Class folders give labels in sorted order,
channels follow the richest image, sizes must agree unless resized, the digest covers paths and
bytes, and bad folders are refused with exit status 2 and one line naming the path. Tiny images
written here; deterministic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from spherevae.cli import main
from spherevae.data import DataError, load_dataset
from spherevae.data.folder import folder_sha256

FAST = ["-hd", "8", "--epochs", "1", "--device", "cpu", "--no-compiled-sampling"]


def _write(path: Path, pixels: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(pixels)
    (image if mode is None else image.convert(mode)).save(path)


def _classes(root: Path, names: tuple[str, ...] = ("zebra", "ant", "mole"), n: int = 10) -> None:
    """``n`` random 6 x 5 RGB images per class folder, saved as PNG."""
    rng = np.random.default_rng(0)
    for name in names:
        for i in range(n):
            _write(root / name / f"{i:02d}.png", rng.integers(0, 256, (6, 5, 3), dtype=np.uint8))


def _pixels(path: Path) -> torch.Tensor:
    array = np.asarray(Image.open(path), dtype=np.float32) / 255
    return torch.from_numpy(array if array.ndim == 2 else array.transpose(2, 0, 1))


def _rows(splits_images: torch.Tensor) -> set[bytes]:
    return {img.numpy().tobytes() for img in splits_images}


def test_class_folders_give_sorted_labels(tmp_path: Path) -> None:
    _classes(tmp_path)
    splits = load_dataset(f"folder:{tmp_path}")
    info = splits.info
    assert info.class_names == ("ant", "mole", "zebra") and info.num_classes == 3
    assert info.image_shape == (3, 6, 5) and info.labelled
    assert splits.sizes() == {"train": 24, "val": 3, "test": 3}
    assert info.sha256 == folder_sha256(tmp_path) and info.sha256 in info.source
    # every image is its file's pixels, with the label of its folder
    files = {
        name: [_pixels(p) for p in sorted((tmp_path / name).iterdir())] for name in info.class_names
    }
    for split in ("train", "val", "test"):
        part = splits.split(split)
        for image, label in zip(part.images, part.labels, strict=True):
            name = info.class_names[int(label)]
            assert any(torch.equal(image, f) for f in files[name])
    everything = torch.cat([splits.split(s).images for s in ("train", "val", "test")])
    assert len(_rows(everything)) == 30  # each image once
    again = load_dataset(f"folder:{tmp_path}")
    assert torch.equal(again.test.images, splits.test.images)  # the same split every time


def test_images_without_class_folders_are_unlabelled(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for i in range(5):
        _write(tmp_path / f"{i}.png", rng.integers(0, 256, (4, 4), dtype=np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")  # ignored
    splits = load_dataset(f"folder:{tmp_path}")
    assert not splits.info.labelled and splits.info.class_names is None
    assert splits.info.image_shape == (1, 4, 4) and sum(splits.sizes().values()) == 5
    assert bool((splits.train.labels == -1).all())


def test_channels_follow_the_richest_image(tmp_path: Path) -> None:
    grey = np.arange(16, dtype=np.uint8).reshape(4, 4) * 16
    _write(tmp_path / "a.png", grey)
    _write(tmp_path / "b.jpg", np.full((4, 4, 3), 200, dtype=np.uint8))
    _write(tmp_path / "c.png", np.zeros((4, 4), dtype=np.uint8))
    splits = load_dataset(f"folder:{tmp_path}")
    assert splits.info.image_shape == (3, 4, 4)  # one colour image makes the folder RGB
    images = torch.cat([splits.split(s).images for s in ("train", "val", "test")])
    wanted = torch.from_numpy(grey / np.float32(255)).float()
    assert any(torch.equal(img, wanted.expand(3, 4, 4)) for img in images)  # grey in R, G and B
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 3] = 128
    _write(tmp_path / "d.png", rgba)
    splits = load_dataset(f"folder:{tmp_path}")
    assert splits.info.image_shape == (4, 4, 4)  # transparency adds an alpha channel
    images = torch.cat([splits.split(s).images for s in ("train", "val", "test")])
    alphas = sorted({round(float(img[3].mean()), 3) for img in images})
    assert alphas == [round(128 / 255, 3), 1.0]  # opaque images get alpha 1
    grey_alpha = tmp_path / "grey"
    _write(grey_alpha / "a.png", grey)
    _write(grey_alpha / "b.png", np.stack([grey, np.full_like(grey, 255)], -1))  # LA
    _write(grey_alpha / "c.png", grey)
    assert load_dataset(f"folder:{grey_alpha}").info.image_shape == (2, 4, 4)


def test_sixteen_bit_grey_png(tmp_path: Path) -> None:
    values = np.array([[0, 65535], [32768, 1000]], dtype=np.uint16)
    for i in range(3):
        Image.fromarray(values).save(tmp_path / f"{i}.png")
    splits = load_dataset(f"folder:{tmp_path}")
    assert splits.info.image_shape == (1, 2, 2)
    expected = torch.from_numpy((values / 65535).astype(np.float32))
    torch.testing.assert_close(splits.train.images[0, 0], expected)


def test_mixed_sizes_need_image_size(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    for i, shape in enumerate([(6, 4), (6, 4), (9, 7)]):
        _write(tmp_path / f"{i}.png", rng.integers(0, 256, shape, dtype=np.uint8))
    with pytest.raises(
        DataError, match=r"images differ in size: 0\.png is 6x4 \(HxW\), 2\.png is 9x7"
    ):
        load_dataset(f"folder:{tmp_path}")
    splits = load_dataset(f"folder:{tmp_path}", image_size=(3, 5))
    assert splits.info.image_shape == (1, 3, 5) and "resized to 3x5" in splits.info.source
    images = torch.cat([splits.split(s).images for s in ("train", "val", "test")])
    assert bool(((images >= 0) & (images <= 1)).all())


def test_digest_covers_names_and_bytes(tmp_path: Path) -> None:
    _classes(tmp_path, ("a", "b"), n=3)
    digest = folder_sha256(tmp_path)
    (tmp_path / "b" / "00.png").rename(tmp_path / "b" / "00x.png")  # the same order
    assert folder_sha256(tmp_path) != digest
    (tmp_path / "b" / "00x.png").rename(tmp_path / "b" / "00.png")
    assert folder_sha256(tmp_path) == digest
    (tmp_path / "a" / "x.txt").write_text("ignored")
    assert folder_sha256(tmp_path) == digest
    with (tmp_path / "a" / "01.png").open("ab") as f:
        f.write(b"\0")
    assert folder_sha256(tmp_path) != digest
    with pytest.raises(DataError, match="changed since the run recorded it"):
        load_dataset(f"folder:{tmp_path}", expected_sha256=digest)


def _bad_folder(tmp_path: Path, case: str) -> tuple[Path, Path]:
    """A folder with the problem ``case``; returns it and the path the message must name."""
    root = tmp_path / "data"
    root.mkdir()
    grey = np.zeros((4, 4), dtype=np.uint8)
    if case == "no images":
        (root / "readme.txt").write_text("hello")
        return root, root
    if case == "not an image":
        for i in range(3):
            _write(root / f"{i}.png", grey)
        (root / "1.png").write_bytes(b"this is not a PNG")
        return root, root / "1.png"
    if case == "mixed sizes":
        _write(root / "a.png", grey)
        _write(root / "b.png", np.zeros((5, 4), dtype=np.uint8))
        _write(root / "c.png", grey)
        return root, root
    if case == "top and classes":
        _write(root / "a.png", grey)
        _write(root / "cls" / "b.png", grey)
        return root, root
    if case == "empty class":
        _write(root / "cls" / "b.png", grey)
        (root / "other").mkdir()
        return root, root / "other"
    if case == "too few":
        _write(root / "a.png", grey)
        return root, root
    if case == "missing":
        return root / "nothing", root / "nothing"
    raise AssertionError(case)


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("no images", "no images"),
        ("not an image", "not a readable PNG or JPEG image"),
        ("mixed sizes", "--image-size H W"),
        ("top and classes", "both directly in it and in subfolders"),
        ("empty class", "a class folder without images"),
        ("too few", "at least 3 examples"),
        ("missing", "no such folder"),
    ],
)
def test_bad_folders_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, fragment: str
) -> None:
    folder, named = _bad_folder(tmp_path, case)
    status = main(["train", "--dataset", f"folder:{folder}", *FAST, "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and fragment in err[0] and str(named) in err[0], err
    assert not (tmp_path / "r").exists()


def _has_colour(png: Path) -> bool:
    rgb = np.asarray(Image.open(png).convert("RGB"), dtype=np.int16)
    return bool((np.abs(rgb[..., 0] - rgb[..., 1]) > 30).any())


def test_rgb_folder_trains_evaluates_and_draws_in_colour(tmp_path: Path) -> None:
    _classes(tmp_path / "data")
    run_dir = tmp_path / "run"
    argv = ["train", "--dataset", f"folder:{tmp_path / 'data'}", "--latent", "S2", *FAST]
    assert main([*argv, "--out", str(run_dir)]) == 0
    info = json.loads((run_dir / "run.json").read_text())
    assert info["class_names"] == ["ant", "mole", "zebra"]
    assert info["dataset_sha256"] == folder_sha256(tmp_path / "data")
    assert info["dynamic_binarization"] is True  # [0, 1] images under the default Bernoulli
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["model"]["image_shape"] == [3, 6, 5]
    assert config["model"]["likelihood"] == "bernoulli"
    assert main(["eval", str(run_dir), "--ll-samples", "2"]) == 0
    assert main(["plot", str(run_dir), "decoded_grid", "interpolation"]) == 0
    for name in ("reconstructions", "prior_samples", "decoded_grid", "interpolation"):
        assert _has_colour(run_dir / "plots" / f"{name}.png"), name


def test_image_size_is_recorded_and_used_again(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    for i, shape in enumerate([(8, 8), (10, 6), (7, 9), (8, 8)]):
        _write(tmp_path / "data" / f"{i}.png", rng.integers(0, 256, shape, dtype=np.uint8))
    run_dir = tmp_path / "run"
    argv = ["train", "--dataset", f"folder:{tmp_path / 'data'}", "--image-size", "5", "4", *FAST]
    assert main([*argv, "--latent", "S2", "--out", str(run_dir)]) == 0
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["data"]["image_size"] == [5, 4] and config["model"]["image_shape"] == [1, 5, 4]
    assert main(["eval", str(run_dir), "--ll-samples", "2"]) == 0  # reloaded at 5 x 4


def test_figures_draw_colour_channels_in_colour() -> None:
    from spherevae.plots import display_pixels

    x = torch.rand(2, 4, 3, 5)
    grey = display_pixels(x[:, :1])
    assert grey.shape == (2, 3, 5) and np.allclose(grey, x[:, 0].double().numpy())
    rgb = display_pixels(x[:, :3])
    assert rgb.shape == (2, 3, 5, 4) and np.allclose(rgb[..., 3], 1)
    assert np.allclose(rgb[..., :3], x[:, :3].permute(0, 2, 3, 1).double().numpy())
    rgba = display_pixels(x)
    assert np.allclose(rgba, x.permute(0, 2, 3, 1).double().numpy())
    grey_alpha = display_pixels(x[:, :2])
    assert np.allclose(grey_alpha[..., 1], x[:, 0].double().numpy())  # grey in R, G and B
    assert np.allclose(grey_alpha[..., 3], x[:, 1].double().numpy())
    assert display_pixels(torch.rand(2, 5, 3, 3)).shape == (2, 3, 3)  # not colours: channel 0
