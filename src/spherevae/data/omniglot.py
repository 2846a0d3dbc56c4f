"""OMNIGLOT 28 x 28 (Lake et al. 2015) as prepared by Burda et al. (2016): ``chardata.mat``.

``chardata.mat`` (from the IWAE repository) is in no package registry: it is read from
``<data_dir>/omniglot/chardata.mat``, downloaded there from the official location when possible.
No checksum of it is pinned, so its content is validated instead (variables, shapes, range).

Layout of the file, as read by :func:`read_chardata`:

* ``data``: ``(784, 24345)`` training images, one image per column, each column the 28 x 28 image
  in column-major (Fortran, MATLAB) order: pixel ``(row i, column j)`` is ``data[i + 28 j, n]``;
  grey values in ``[0, 1]``.
* ``target``: ``(50, 24345)`` one-hot alphabet labels of the training images.
* ``testdata`` ``(784, 8070)`` and ``testtarget`` ``(50, 8070)``: the same for the test images.
* other variables (e.g. per-character labels) are ignored.

References:
    B. M. Lake, R. Salakhutdinov, J. B. Tenenbaum, "Human-level concept learning through
    probabilistic program induction", Science 350(6266), 2015.
    Y. Burda, R. Grosse, R. Salakhutdinov, "Importance weighted autoencoders", ICLR 2016.
    J. M. Tomczak, M. Welling, "VAE with a VampPrior", AISTATS 2018 (the 1,345-image validation
    set).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from . import fetch
from .errors import DataError
from .files import load_mat, mat_array, resolve_data_dir
from .splits import DatasetInfo, DatasetSplits, make_split, split_off_last

__all__ = ["FILENAME", "N_VALIDATION", "URLS", "Chardata", "load_omniglot", "read_chardata"]

FILENAME = "chardata.mat"
URLS = ("https://raw.githubusercontent.com/yburda/iwae/master/datasets/OMNIGLOT/chardata.mat",)
N_VALIDATION = 1345
"""The last ``N_VALIDATION`` training images (file order) are the validation set."""

_SIDE = 28


def _images_and_labels(
    mat: dict[str, Any], image_key: str, label_key: str, path: Path
) -> tuple[np.ndarray, np.ndarray]:
    columns = mat_array(mat, image_key, path)
    onehot = mat_array(mat, label_key, path)
    if columns.shape[0] != _SIDE * _SIDE or onehot.shape[1] != columns.shape[1]:
        raise DataError(
            f"{path}: {image_key!r} should be (784, N) and {label_key!r} (classes, N), got "
            f"{columns.shape} and {onehot.shape}"
        )
    if columns.size and (columns.min() < 0 or columns.max() > 1):
        raise DataError(f"{path}: {image_key!r} values should lie in [0, 1]")
    # column n, read in Fortran order, is image n: (784, N) -> (28, 28, N) -> (N, 28, 28)
    images = np.moveaxis(columns.reshape(_SIDE, _SIDE, -1, order="F"), -1, 0)
    return images.astype(np.float32), onehot.argmax(axis=0).astype(np.int64)


class Chardata(NamedTuple):
    """Contents of ``chardata.mat``: images ``float32`` ``(N, 28, 28)`` in ``[0, 1]``, labels
    ``int64`` alphabet indices (the argmax of the one-hot ``target`` columns)."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    num_classes: int


def read_chardata(path: Path) -> Chardata:
    """Read ``chardata.mat`` (layout in the module docstring).

    Raises:
        DataError: a variable is missing or has the wrong shape or range.
    """
    mat = load_mat(path)
    train, train_y = _images_and_labels(mat, "data", "target", path)
    test, test_y = _images_and_labels(mat, "testdata", "testtarget", path)
    n_classes = mat_array(mat, "target", path).shape[0]
    if mat_array(mat, "testtarget", path).shape[0] != n_classes:
        raise DataError(f"{path}: 'target' and 'testtarget' have different numbers of classes")
    return Chardata(train, train_y, test, test_y, int(n_classes))


def load_omniglot(
    data_dir: str | os.PathLike[str] | None = None, *, download: bool = True
) -> DatasetSplits:
    """OMNIGLOT 28 x 28 from ``chardata.mat``: 23,000 / 1,345 / 8,070 images of 50 alphabets.

    Splits (fixed): test = the file's test set (``testdata``); validation = the last 1,345 images
    (:data:`N_VALIDATION`) of the file's training set in file order, train = the rest. (Tomczak &
    Welling use the same sizes but take the 1,345 after an unseeded shuffle.) The images are grey;
    binarise them dynamically for a Bernoulli decoder, as Burda et al. do.

    Args:
        data_dir: data folder; the file is ``<data_dir>/omniglot/chardata.mat``.
        download: try the official download when the file is missing.

    Returns:
        Images ``float32`` ``(N, 1, 28, 28)`` in ``[0, 1]``, labels ``int64`` (alphabet index).

    Raises:
        SourceUnavailable: the file is missing; the message says where to download it and where
            to put it.
        DataError: the file is malformed.
    """
    folder = resolve_data_dir(data_dir) / "omniglot"
    path = fetch.find_or_download(
        folder / FILENAME, URLS, sha256=None, download_ok=download, what="omniglot"
    )
    data = read_chardata(path)
    train, test = data.train_images, data.test_images
    (tr, tr_y), (va, va_y) = split_off_last(train, data.train_labels, N_VALIDATION, what="omniglot")
    return DatasetSplits(
        train=make_split(tr, tr_y, scale=1.0),
        val=make_split(va, va_y, scale=1.0),
        test=make_split(test, data.test_labels, scale=1.0),
        info=DatasetInfo(
            name="omniglot",
            image_shape=(1, _SIDE, _SIDE),
            binary=bool(np.isin(train, (0.0, 1.0)).all() and np.isin(test, (0.0, 1.0)).all()),
            source=f"OMNIGLOT chardata.mat (Burda et al. 2016) from {path}",
            num_classes=data.num_classes,
            splits=(
                f"train {len(tr)} / val {len(va)} = first / last images of the file's training "
                f"set, test {len(test)} = the file's test set"
            ),
        ),
    )
