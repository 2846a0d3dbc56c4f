"""Fashion-MNIST (Xiao et al. 2017): the original IDX files, from the data folder, the official
site or Debian's ``dataset-fashion-mnist`` package.

Sources, in order (all checked against the SHA-256 of the decompressed official files):

1. the ``.npz`` cache written by a previous load (``<data_dir>/fashion_mnist/fashion_mnist.npz``);
2. the four IDX files (plain or ``.gz``) in ``<data_dir>/fashion_mnist/``;
3. an installed Debian package (``/usr/share/datasets/fashion-mnist``);
4. the official ``.gz`` files (Zalando's S3 bucket);
5. Debian: ``apt-get download dataset-fashion-mnist`` + ``dpkg -x`` (nothing installed); its four
   ``.gz`` files are re-compressed by Debian but decompress to the official bytes.

References:
    H. Xiao, K. Rasul, R. Vollgraf, "Fashion-MNIST: a novel image dataset for benchmarking machine
    learning algorithms", arXiv:1708.07747, 2017.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import fetch
from .files import resolve_data_dir
from .idx_dataset import (
    IDX_FILES,
    IdxArrays,
    Source,
    download_idx_files,
    idx_splits,
    load_idx_arrays,
    read_idx_folder,
)
from .splits import DatasetSplits

__all__ = ["IDX_SHA256", "N_VALIDATION", "fashion_mnist_arrays", "load_fashion_mnist"]

IDX_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
"""SHA-256 of the decompressed official IDX files (their MD5s are the published ``f4a8712d...``,
``9018921c...``, ``8181f547...``, ``15d48437...``)."""

OFFICIAL_URLS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
DEBIAN_PACKAGE = "dataset-fashion-mnist"
DEBIAN_VERSION = "0.0~git20200523.55506a9-1"
DEBIAN_DEB_SHA256 = "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0"
DEBIAN_FOLDER = "usr/share/datasets/fashion-mnist"
SYSTEM_FOLDER = Path("/") / DEBIAN_FOLDER

N_VALIDATION = 10_000
"""The last ``N_VALIDATION`` training images are the validation set (train 50k / val 10k)."""

CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip


def _from_debian(folder: Path) -> IdxArrays:
    members = {f"{DEBIAN_FOLDER}/{name}.gz": folder / f"{name}.gz" for name in IDX_FILES}
    fetch.apt_download(
        DEBIAN_PACKAGE, DEBIAN_VERSION, members, sha256=DEBIAN_DEB_SHA256, what="Fashion-MNIST"
    )
    return read_idx_folder(
        folder, f"Fashion-MNIST IDX files from Debian {DEBIAN_PACKAGE} {DEBIAN_VERSION}"
    )


def fashion_mnist_arrays(
    data_dir: str | os.PathLike[str] | None = None, *, download: bool = True
) -> IdxArrays:
    """The exact Fashion-MNIST arrays (``uint8``), from the cache, local files or the network.

    Args:
        data_dir: data folder; Fashion-MNIST lives in its ``fashion_mnist/`` subfolder.
        download: allow the network sources (official site, ``apt-get download``).

    Raises:
        SourceUnavailable: no source worked (the message lists each attempt).
        DataError: a file fails its checksum.
    """
    folder = resolve_data_dir(data_dir) / "fashion_mnist"
    system = SYSTEM_FOLDER
    sources: list[Source] = [
        (f"IDX files in {folder}", lambda: read_idx_folder(folder, f"Fashion-MNIST IDX files in {folder}")),
        (f"installed Debian package ({system})", lambda: read_idx_folder(system, f"Fashion-MNIST IDX files in {system} (Debian {DEBIAN_PACKAGE})")),
    ]  # fmt: skip
    if download:
        sources += [
            ("official download", lambda: download_idx_files(OFFICIAL_URLS, folder, IDX_SHA256, "Fashion-MNIST")),
            (f"apt-get download {DEBIAN_PACKAGE}", lambda: _from_debian(folder)),
        ]  # fmt: skip
    return load_idx_arrays(
        what="Fashion-MNIST",
        cache=folder / "fashion_mnist.npz",
        checksums=IDX_SHA256,
        sources=sources,
    )


def load_fashion_mnist(
    data_dir: str | os.PathLike[str] | None = None, *, download: bool = True
) -> DatasetSplits:
    """Fashion-MNIST as train / validation / test splits of grey images in ``[0, 1]``.

    Splits (fixed): train = the first 50,000 images of the official training set, validation =
    its last 10,000 (:data:`N_VALIDATION`), test = the official 10,000 test images; file order
    kept. Labels are the ten classes of :data:`CLASS_NAMES` (``0`` = T-shirt/top).

    Args:
        data_dir: data folder (see :func:`fashion_mnist_arrays`).
        download: allow the network sources.

    Returns:
        Images ``float32`` ``(N, 1, 28, 28)`` = pixel / 255, labels ``int64`` ``(N,)`` in 0..9.
    """
    raw = fashion_mnist_arrays(data_dir, download=download)
    return idx_splits(raw, name="fashion_mnist", class_names=CLASS_NAMES, n_validation=N_VALIDATION)
