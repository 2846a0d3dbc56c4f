"""Caltech 101 Silhouettes 28 x 28 (Marlin et al. 2010): ``caltech101_silhouettes_28_split1.mat``.

The file is in no package registry: it is read from
``<data_dir>/caltech/caltech101_silhouettes_28_split1.mat``, downloaded there from the official
location when possible. No checksum of it is pinned, so its content is validated instead.

Layout of the file, as read by :func:`read_silhouettes`:

* ``train_data`` ``(4100, 784)``, ``val_data`` ``(2264, 784)``, ``test_data`` ``(2307, 784)``:
  binary images, one per row; each row is the 28 x 28 image in column-major (MATLAB) order, so a
  row-major reshape must be transposed.
* ``train_labels``, ``val_labels``, ``test_labels``: ``(N, 1)`` class numbers ``1..101``.
* ``classnames``: ``1 x 101`` cell array of class names.

Pixel values are flipped (``1 - x``) as in Tomczak & Welling's loader, whose convention the
published Caltech 101 Silhouettes likelihoods follow.

References:
    B. M. Marlin, K. Swersky, B. Chen, N. de Freitas, "Inductive principles for restricted
    Boltzmann machine learning", AISTATS 2010.
    J. M. Tomczak, M. Welling, "VAE with a VampPrior", AISTATS 2018.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from . import fetch
from .errors import DataError
from .files import load_mat, mat_array, resolve_data_dir
from .splits import DatasetInfo, DatasetSplits, make_split

__all__ = ["FILENAME", "URLS", "load_caltech", "read_silhouettes"]

FILENAME = "caltech101_silhouettes_28_split1.mat"
URLS = ("https://people.cs.umass.edu/~marlin/data/caltech101_silhouettes_28_split1.mat",)

_SIDE = 28
_PARTS = {"train": "train", "val": "val", "test": "test"}  # split name -> variable prefix


def _class_names(mat: dict[str, Any]) -> tuple[str, ...] | None:
    if "classnames" not in mat:
        return None
    # a MATLAB cell array of strings loads as an object array of 1-element string arrays
    return tuple(str(np.asarray(cell).ravel()[0]) for cell in np.asarray(mat["classnames"]).ravel())


def read_silhouettes(
    path: Path,
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], tuple[str, ...] | None]:
    """Read the split-1 ``.mat`` file.

    Returns:
        ``({"train" | "val" | "test": (images, labels)}, class_names)``: images ``uint8``
        ``(N, 28, 28)`` in ``{0, 1}`` (flipped, see the module docstring), labels ``int64``
        ``0..100`` (the file's ``1..101`` minus one); ``class_names`` is ``None`` if absent.

    Raises:
        DataError: a variable is missing or has the wrong shape or values.
    """
    mat = load_mat(path)
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split, prefix in _PARTS.items():
        rows = mat_array(mat, f"{prefix}_data", path)
        labels = mat_array(mat, f"{prefix}_labels", path).reshape(-1)
        if rows.shape[1] != _SIDE * _SIDE or labels.shape[0] != rows.shape[0]:
            raise DataError(
                f"{path}: {prefix}_data should be (N, 784) with N {prefix}_labels, got "
                f"{rows.shape} and {labels.shape[0]} labels"
            )
        if not np.isin(rows, (0, 1)).all():
            raise DataError(f"{path}: {prefix}_data should hold only 0 and 1")
        if labels.size and labels.min() < 1:
            raise DataError(f"{path}: {prefix}_labels should be class numbers starting at 1")
        # rows are column-major images: reshape row-major, then transpose each image
        images = rows.reshape(-1, _SIDE, _SIDE).transpose(0, 2, 1)
        parts[split] = ((1 - images).astype(np.uint8), labels.astype(np.int64) - 1)
    return parts, _class_names(mat)


def load_caltech(
    data_dir: str | os.PathLike[str] | None = None, *, download: bool = True
) -> DatasetSplits:
    """Caltech 101 Silhouettes 28 x 28, split 1: 4,100 / 2,264 / 2,307 binary images, 101 classes.

    Splits: the file's own ``train`` / ``val`` / ``test`` sets.

    Args:
        data_dir: data folder; the file is ``<data_dir>/caltech/caltech101_silhouettes_28_split1.mat``.
        download: try the official download when the file is missing.

    Returns:
        Images ``float32`` ``(N, 1, 28, 28)`` in ``{0, 1}``, labels ``int64`` in ``0..100``.

    Raises:
        SourceUnavailable: the file is missing; the message says where to download it and where
            to put it.
        DataError: the file is malformed.
    """
    folder = resolve_data_dir(data_dir) / "caltech"
    path = fetch.find_or_download(
        folder / FILENAME, URLS, sha256=None, download_ok=download, what="caltech"
    )
    parts, class_names = read_silhouettes(path)
    splits = {name: make_split(x, y, scale=1.0) for name, (x, y) in parts.items()}
    n_classes = (
        len(class_names) if class_names else int(max(y.max() for _, y in parts.values()) + 1)
    )
    return DatasetSplits(
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        info=DatasetInfo(
            name="caltech",
            image_shape=(1, _SIDE, _SIDE),
            binary=True,
            source=f"Caltech 101 Silhouettes 28x28 split 1 (Marlin et al. 2010) from {path}",
            num_classes=n_classes,
            class_names=class_names,
            splits=(
                f"train {len(splits['train'])} / val {len(splits['val'])} / test "
                f"{len(splits['test'])} = the file's split 1"
            ),
        ),
    )
