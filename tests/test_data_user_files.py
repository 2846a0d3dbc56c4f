"""Datasets whose files are in no registry: binarised MNIST ``.amat``, OMNIGLOT ``chardata.mat`` and
Caltech 101 Silhouettes ``.mat``, read from small files written here in the original layouts; the
messages when they are missing; and the labelled stand-in for static MNIST.

Orientation checks use asymmetric test images (an "L" shape), so that a transposed or flipped read
fails. Downloads are replaced by failing fakes (no network). Deterministic.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

import data_fixtures as fx
from spherevae.data import DataError, SourceUnavailable, load_dataset, mnist, omniglot, static_mnist
from spherevae.data import caltech as caltech_module
from spherevae.data.binarize import static_binarize
from spherevae.data.files import sha256_file
from spherevae.data.static_mnist import read_amat


def _l_shape() -> np.ndarray:
    """A 28 x 28 binary "L": a vertical bar in column 3 (rows 2..20) and a foot in row 20."""
    image = np.zeros((28, 28), dtype=np.uint8)
    image[2:21, 3] = 1
    image[20, 3:12] = 1
    return image


def _binary_images(n: int, seed: int) -> np.ndarray:
    images = np.random.default_rng(seed).integers(0, 2, (n, 28, 28), dtype=np.uint8)
    images[0] = _l_shape()
    return images


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return fx.forbid_network(monkeypatch)


# ---------------------------------------------------------------------------------------- .amat


def test_read_amat_row_major(tmp_path: Path) -> None:
    images = _binary_images(3, seed=0)
    path = tmp_path / "x.amat"
    fx.write_amat(path, images)
    loaded = read_amat(path)
    assert loaded.dtype == np.uint8 and loaded.shape == (3, 28, 28)
    np.testing.assert_array_equal(loaded, images)


def test_read_amat_tolerates_crlf_and_no_final_newline(tmp_path: Path) -> None:
    images = _binary_images(2, seed=1)
    path = tmp_path / "x.amat"
    lines = [" ".join(map(str, image.reshape(-1))) for image in images]
    path.write_bytes("\r\n".join(lines).encode())
    np.testing.assert_array_equal(read_amat(path), images)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0 1 2" + " 0" * 781 + "\n", "line 1: unexpected byte b'2'"),
        ("0 " * 784 + "\n" + "0 " * 783 + "\n", "line 2: 783 values; expected 784"),
        ("01" + " 0" * 782 + "\n", "line 1: values must be single 0/1 characters"),
        ("0.5" + " 0" * 783 + "\n", "unexpected byte b'.'"),
        ("\n\n", "holds no image"),
    ],
)
def test_read_amat_rejects_malformed(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.amat"
    path.write_text(text)
    with pytest.raises(DataError, match=re.escape(message)):
        read_amat(path)


def _write_static_files(folder: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, np.ndarray]:
    images = {
        "train": _binary_images(6, 1),
        "val": _binary_images(3, 2),
        "test": _binary_images(4, 3),
    }
    for split, name in static_mnist.AMAT_FILES.items():
        fx.write_amat(folder / name, images[split])
    checksums = {name: sha256_file(folder / name) for name in static_mnist.AMAT_FILES.values()}
    monkeypatch.setattr(static_mnist, "AMAT_SHA256", checksums)
    return images


def test_static_mnist_from_amat_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    images = _write_static_files(tmp_path / "static_mnist", monkeypatch)
    splits = load_dataset("static_mnist", data_dir=tmp_path)
    assert splits.sizes() == {"train": 6, "val": 3, "test": 4}
    for split in ("train", "val", "test"):
        expected = torch.from_numpy(images[split]).float().unsqueeze(1)
        torch.testing.assert_close(splits.split(split).images, expected, rtol=0, atol=0)
        assert (splits.split(split).labels == -1).all()  # the .amat files carry no labels
    info = splits.info
    assert info.binary and not info.labelled and info.num_classes == 0
    assert "Larochelle & Murray" in info.source and "stand-in" not in info.source
    assert info.substitute == ""
    # the files are used whether or not a stand-in would be allowed
    allowed = load_dataset("static_mnist", data_dir=tmp_path, allow_substitute=True)
    assert allowed.info == info


def test_static_mnist_amat_checksum_is_enforced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_static_files(tmp_path / "static_mnist", monkeypatch)
    monkeypatch.setattr(
        static_mnist, "AMAT_SHA256", dict.fromkeys(static_mnist.AMAT_SHA256, "7" * 64)
    )
    with pytest.raises(DataError, match=r"checksum mismatch for .*binarized_mnist_train\.amat"):
        load_dataset("static_mnist", data_dir=tmp_path)


def test_static_mnist_standin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _offline: list[str]
) -> None:
    arrays = fx.fake_idx_arrays(seed=4)
    monkeypatch.setattr(mnist, "IDX_SHA256", fx.checksums_of(arrays))
    monkeypatch.setattr(mnist, "N_VALIDATION", fx.N_VAL)
    fx.write_idx_folder(tmp_path / "mnist", arrays, gz=True)
    # only when asked for: else an error that says how to ask, and how to have the real files
    with pytest.raises(DataError, match=r"no binarized_mnist_train\.amat in .*--allow-substitute"):
        load_dataset("static_mnist", data_dir=tmp_path)
    splits = load_dataset("static_mnist", data_dir=tmp_path, allow_substitute=True)
    # the official .amat download was tried first (and failed: offline)
    assert _offline[0] == static_mnist.AMAT_URL + "binarized_mnist_train.amat"
    info = splits.info
    assert info.substitute == static_mnist.STANDIN_NOTE
    assert info.source.startswith("fixed-seed binarisation of MNIST")
    assert "stand-in" in info.source and "binarized_mnist_train.amat" in info.source
    assert info.binary and info.labelled and info.num_classes == 10
    assert splits.sizes() == {"train": fx.N_TRAIN - fx.N_VAL, "val": fx.N_VAL, "test": fx.N_TEST}
    # exactly the documented recipe: one default_rng(0) stream, training images then test images
    rng = np.random.default_rng(0)
    train = static_binarize(arrays.train_images.astype(np.float32) / 255, rng)
    test = static_binarize(arrays.test_images.astype(np.float32) / 255, rng)
    expected = {"train": train[: -fx.N_VAL], "val": train[-fx.N_VAL :], "test": test}
    for split, array in expected.items():
        got = splits.split(split).images
        torch.testing.assert_close(
            got, torch.from_numpy(array).float().unsqueeze(1), rtol=0, atol=0
        )
    torch.testing.assert_close(splits.test.labels, torch.from_numpy(arrays.test_labels).long())
    again = load_dataset("static_mnist", data_dir=tmp_path, allow_substitute=True)
    assert torch.equal(again.train.images, splits.train.images)


def test_static_mnist_without_amat_or_mnist(tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailable, match="MNIST: no source could provide the data"):
        load_dataset("static_mnist", data_dir=tmp_path, download=False, allow_substitute=True)


# ---------------------------------------------------------------------------------------- OMNIGLOT


def _chardata(n_train: int, n_test: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    train = rng.random((n_train, 28, 28))
    train[0] = _l_shape()
    test = rng.random((n_test, 28, 28))
    train_y, test_y = rng.integers(0, 50, n_train), rng.integers(0, 50, n_test)

    def columns(images: np.ndarray) -> np.ndarray:  # one column per image, column-major pixels
        return np.stack([image.reshape(-1, order="F") for image in images], axis=1)

    return {
        "data": columns(train),
        "target": np.eye(50)[:, train_y],
        "testdata": columns(test),
        "testtarget": np.eye(50)[:, test_y],
        "targetchar": rng.integers(1, 20, (1, n_train)).astype(
            float
        ),  # present in the real file, unused
        "_images": train,
        "_test_images": test,
        "_labels": train_y,
        "_test_labels": test_y,
    }


def _save(path: Path, content: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(str(path), {k: v for k, v in content.items() if not k.startswith("_")})


def test_omniglot_from_chardata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(omniglot, "N_VALIDATION", 3)
    content = _chardata(n_train=10, n_test=4, seed=0)
    _save(tmp_path / "omniglot" / "chardata.mat", content)
    splits = load_dataset("omniglot", data_dir=tmp_path)
    assert splits.sizes() == {"train": 7, "val": 3, "test": 4}
    images = torch.from_numpy(content["_images"]).float().unsqueeze(1)
    torch.testing.assert_close(splits.train.images, images[:7])  # the "L" is image 0, upright
    torch.testing.assert_close(splits.val.images, images[7:])  # last 3 of the file's training set
    torch.testing.assert_close(
        splits.test.images, torch.from_numpy(content["_test_images"]).float().unsqueeze(1)
    )
    assert splits.train.labels.tolist() == content["_labels"][:7].tolist()
    assert splits.test.labels.tolist() == content["_test_labels"].tolist()
    info = splits.info
    assert info.num_classes == 50 and not info.binary and str(tmp_path) in info.source


def test_omniglot_binary_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(omniglot, "N_VALIDATION", 2)
    content = _chardata(n_train=5, n_test=2, seed=1)
    content["data"] = (content["data"] > 0.5).astype(float)
    content["testdata"] = (content["testdata"] > 0.5).astype(float)
    _save(tmp_path / "omniglot" / "chardata.mat", content)
    assert load_dataset("omniglot", data_dir=tmp_path).info.binary


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"testtarget": None}, "has no variable 'testtarget'"),
        ({"data": np.zeros((783, 5))}, "'data' should be (784, N)"),
        ({"data": np.full((784, 5), 2.0)}, "'data' values should lie in [0, 1]"),
    ],
)
def test_omniglot_malformed(
    tmp_path: Path, change: dict[str, np.ndarray | None], message: str
) -> None:
    content: dict[str, np.ndarray] = _chardata(n_train=5, n_test=2, seed=2)
    for key, value in change.items():
        if value is None:
            del content[key]
        else:
            content[key] = value
    _save(tmp_path / "omniglot" / "chardata.mat", content)
    with pytest.raises(DataError, match=re.escape(message)):
        load_dataset("omniglot", data_dir=tmp_path)


def test_omniglot_missing_file_message(tmp_path: Path, _offline: list[str]) -> None:
    with pytest.raises(DataError) as info:
        load_dataset("omniglot", data_dir=tmp_path)
    message = str(info.value)
    assert _offline == list(omniglot.URLS)  # the official download was tried
    assert f"Download it from {omniglot.URLS[0]}" in message
    assert f"save it as {tmp_path / 'omniglot' / 'chardata.mat'}" in message


def test_not_a_mat_file(tmp_path: Path) -> None:
    path = tmp_path / "omniglot" / "chardata.mat"
    path.parent.mkdir()
    path.write_bytes(b"this is not MATLAB")
    with pytest.raises(DataError, match=r"not a readable MATLAB \.mat file"):
        load_dataset("omniglot", data_dir=tmp_path)


# ---------------------------------------------------------------------------------------- Caltech


def _silhouettes(seed: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Split-1 layout; returns (file variables, the upright images as the loader should give them)."""
    rng = np.random.default_rng(seed)
    content: dict[str, np.ndarray] = {}
    upright: dict[str, np.ndarray] = {}
    for prefix, n in (("train", 6), ("val", 3), ("test", 4)):
        images = rng.integers(0, 2, (n, 28, 28)).astype(np.uint8)
        images[0] = _l_shape()
        upright[prefix] = images
        # stored the way the loader reads the file: flipped (1 - x), column-major, one per row
        content[f"{prefix}_data"] = np.stack(
            [(1 - image).reshape(-1, order="F") for image in images]
        ).astype(float)
        content[f"{prefix}_labels"] = rng.integers(1, 102, (n, 1)).astype(float)
    names = np.empty((1, 101), dtype=object)
    for i in range(101):
        names[0, i] = np.array([f"class{i}"])
    content["classnames"] = names
    return content, upright


def test_caltech_from_split1_mat(tmp_path: Path) -> None:
    content, upright = _silhouettes(seed=0)
    _save(tmp_path / "caltech" / caltech_module.FILENAME, content)
    splits = load_dataset("caltech", data_dir=tmp_path)
    assert splits.sizes() == {"train": 6, "val": 3, "test": 4}
    for split in ("train", "val", "test"):
        expected = torch.from_numpy(upright[split]).float().unsqueeze(1)
        torch.testing.assert_close(splits.split(split).images, expected, rtol=0, atol=0)
        labels = content[f"{split}_labels"].reshape(-1).astype(int) - 1
        assert splits.split(split).labels.tolist() == labels.tolist()  # 1..101 -> 0..100
    info = splits.info
    assert info.binary and info.num_classes == 101
    assert info.class_names is not None and info.class_names[:2] == ("class0", "class1")


def test_caltech_malformed(tmp_path: Path) -> None:
    content, _ = _silhouettes(seed=1)
    content["val_data"] = content["val_data"] * 0.5
    _save(tmp_path / "caltech" / caltech_module.FILENAME, content)
    with pytest.raises(DataError, match="val_data should hold only 0 and 1"):
        load_dataset("caltech", data_dir=tmp_path)


def test_caltech_missing_file_message(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_dataset("caltech", data_dir=tmp_path, download=False)
    message = str(info.value)
    assert "caltech101_silhouettes_28_split1.mat" in message
    assert "people.cs.umass.edu/~marlin" in message
    assert str(tmp_path / "caltech") in message
