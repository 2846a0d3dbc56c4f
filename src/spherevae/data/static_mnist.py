"""Statically binarised MNIST: Larochelle & Murray's ``.amat`` files, or a labelled stand-in.

The original files (``binarized_mnist_{train,valid,test}.amat``, 50,000 / 10,000 / 10,000 lines of
784 whitespace-separated ``0``/``1`` values, row-major 28 x 28, no labels) are in no package
registry. They are read from ``<data_dir>/static_mnist/`` (downloaded there from the official
location when possible) and checked against the SHA-256 values that TensorFlow Datasets records
for them (``tensorflow_datasets/url_checksums/binarized_mnist.txt``).

When they cannot be had, :func:`load_static_mnist` refuses, unless asked for a **stand-in**
(``allow_substitute=True``; ``--allow-substitute`` or ``data.allow_substitute: true`` for a run): one fixed-seed
Bernoulli draw of the exact MNIST (pixel on with probability ``pixel / 255``, drawn with
``numpy.random.default_rng(0)``, first over the 60,000 training images then over the 10,000 test
images), split 50,000 / 10,000 / 10,000 like the original. It has MNIST's labels, its on-pixel rate
(0.131) is close to the original's, but it is *not* the same sample: likelihoods on it are
comparable to published ``.amat`` numbers only approximately, :attr:`DatasetInfo.source` says
so, and :attr:`DatasetInfo.substitute` says what stood in (a run records it in ``run.json``, and
``eval`` and the report repeat it).

References:
    H. Larochelle, I. Murray, "The neural autoregressive distribution estimator", AISTATS 2011.
    R. Salakhutdinov, I. Murray, "On the quantitative analysis of deep belief networks", ICML 2008.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import fetch, mnist
from .binarize import static_binarize
from .errors import DataError, SourceUnavailable
from .files import resolve_data_dir
from .splits import DatasetInfo, DatasetSplits, make_split, split_off_last

__all__ = [
    "AMAT_FILES",
    "AMAT_SHA256",
    "STANDIN_NOTE",
    "STANDIN_SEED",
    "load_static_mnist",
    "read_amat",
]

AMAT_FILES = {
    "train": "binarized_mnist_train.amat",
    "val": "binarized_mnist_valid.amat",
    "test": "binarized_mnist_test.amat",
}
AMAT_URL = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/"
AMAT_SHA256 = {
    "binarized_mnist_train.amat": "ad693b29f94c14277b095f5238ddefbbdaaae0939789dd2f4f0205278cee3e4d",
    "binarized_mnist_valid.amat": "1de3d397c40fe8eeb33dafd4099a1f665ec01e96d9be234aaeeac8a34930e2e2",
    "binarized_mnist_test.amat": "e6687bfea3f820c174f33b7865140b2a2dd2930ef786f35d45795fc193b5ab2c",
}
"""SHA-256 of the original files as recorded by TensorFlow Datasets."""

STANDIN_SEED = 0
"""Seed of the stand-in's ``numpy.random.default_rng``."""

STANDIN_NOTE = (
    "static_mnist stand-in: a fixed-seed binarisation of MNIST, not Larochelle & Murray's files; "
    "likelihoods are not comparable with published static MNIST results"
)
"""What :attr:`DatasetInfo.substitute` says of the stand-in."""

_SIDE = 28
_CHUNK = 10_000  # images binarised at a time: bounds the float32 temporaries to ~60 MB


def read_amat(path: Path, *, side: int = _SIDE) -> np.ndarray:
    """Read a binarised-MNIST ``.amat`` file: one image per line, ``side * side`` values ``0``/``1``.

    Vectorised over the bytes (a line-by-line parse of the 78 MB training file takes seconds): every
    byte must be ``0``, ``1`` or whitespace, no two digits may touch (values are single
    characters), and every non-blank line must hold exactly ``side * side`` values.

    Returns:
        ``uint8`` array ``(N, side, side)`` with values in ``{0, 1}``, rows in file order.

    Raises:
        DataError: the file does not have this format (the message names the line).
    """
    data = path.read_bytes()
    raw = np.frombuffer(data, dtype=np.uint8)
    digit = (raw == ord("0")) | (raw == ord("1"))
    space = (raw == ord(" ")) | (raw == ord("\t")) | (raw == ord("\n")) | (raw == ord("\r"))
    bad = np.flatnonzero(~(digit | space))
    if bad.size:
        line = data.count(b"\n", 0, int(bad[0])) + 1
        raise DataError(
            f"{path}, line {line}: unexpected byte {data[bad[0] : bad[0] + 1]!r}; an .amat file "
            "holds only 0/1 values separated by whitespace"
        )
    touching = np.flatnonzero(digit[1:] & digit[:-1])
    if touching.size:
        line = data.count(b"\n", 0, int(touching[0])) + 1
        raise DataError(f"{path}, line {line}: values must be single 0/1 characters")
    starts = np.concatenate([[0], np.flatnonzero(raw == ord("\n")) + 1])
    starts = starts[starts < raw.size]
    counts = np.add.reduceat(digit, starts, dtype=np.int64) if raw.size else starts
    line_numbers = np.flatnonzero(counts) + 1
    counts = counts[counts > 0]  # blank lines (e.g. a trailing one) hold no image
    if counts.size == 0:
        raise DataError(f"{path} holds no image")
    wrong = np.flatnonzero(counts != side * side)
    if wrong.size:
        raise DataError(
            f"{path}, line {line_numbers[wrong[0]]}: {counts[wrong[0]]} values; expected "
            f"{side * side} per line"
        )
    images: np.ndarray = (raw[digit] - ord("0")).reshape(-1, side, side)
    return images


def _standin(data_dir: str | os.PathLike[str] | None, download: bool, why: str) -> DatasetSplits:
    raw = mnist.mnist_arrays(data_dir, download=download)
    rng = np.random.default_rng(STANDIN_SEED)
    # chunks draw the same stream as one big call (numpy's generators continue where they stopped)
    train, test = (
        np.concatenate(
            [
                static_binarize(images[i : i + _CHUNK].astype(np.float32) / np.float32(255), rng)
                for i in range(0, len(images), _CHUNK)
            ]
        )
        for images in (raw.train_images, raw.test_images)
    )
    (tr, tr_y), (va, va_y) = split_off_last(
        train, raw.train_labels, mnist.N_VALIDATION, what="static_mnist"
    )
    return DatasetSplits(
        train=make_split(tr, tr_y, scale=1.0),
        val=make_split(va, va_y, scale=1.0),
        test=make_split(test, raw.test_labels, scale=1.0),
        info=DatasetInfo(
            name="static_mnist",
            image_shape=(1, _SIDE, _SIDE),
            binary=True,
            source=(
                f"fixed-seed binarisation of MNIST (numpy default_rng({STANDIN_SEED}), pixel on "
                "with probability pixel/255; stand-in: Larochelle & Murray's .amat files not "
                f"found: {why}); MNIST read as: {raw.source}"
            ),
            num_classes=10,
            class_names=mnist.CLASS_NAMES,
            splits=(
                f"train {len(tr)} / val {len(va)} = first / last images of the binarised MNIST "
                f"training set, test {len(test)} = the binarised MNIST test set"
            ),
            substitute=STANDIN_NOTE,
        ),
    )


def load_static_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    allow_substitute: bool = False,
) -> DatasetSplits:
    """Statically binarised MNIST, 50,000 / 10,000 / 10,000 binary images.

    With the three ``.amat`` files (in ``<data_dir>/static_mnist/`` or downloadable) the splits are
    the files' (train / valid / test), and the data have no labels (labels are ``-1``,
    ``info.labelled`` is ``False``). Without them, and only with ``allow_substitute``, the labelled
    stand-in described in the module docstring is returned: ``info.source`` starts with
    ``"fixed-seed binarisation of MNIST"`` and ``info.substitute`` is :data:`STANDIN_NOTE`.

    Args:
        data_dir: data folder (default: :func:`~spherevae.data.files.default_data_dir`).
        download: try the official download (of the ``.amat`` files, and of MNIST for the
            stand-in).
        allow_substitute: use the stand-in when the ``.amat`` files cannot be had (else refuse).

    Returns:
        Images ``float32`` ``(N, 1, 28, 28)`` with values in ``{0, 1}``.

    Raises:
        DataError: an ``.amat`` file is malformed or fails its checksum, the files cannot be had
            and ``allow_substitute`` is false, or the stand-in needs MNIST and it cannot be
            obtained.
    """
    folder = resolve_data_dir(data_dir) / "static_mnist"
    arrays: dict[str, np.ndarray] = {}
    for split, name in AMAT_FILES.items():
        try:
            path = fetch.find_or_download(
                folder / name,
                [AMAT_URL + name],
                sha256=AMAT_SHA256[name],
                download_ok=download,
                what="static_mnist",
            )
        except SourceUnavailable:
            tried = " and could not be downloaded" if download else ""
            why = f"no {name} in {folder}{tried}"
            if not allow_substitute:
                raise DataError(
                    f"static_mnist: {why}; put Larochelle & Murray's binarized_mnist_"
                    f"{{train,valid,test}}.amat there, or allow the stand-in with --allow-substitute "
                    f"(config data.allow_substitute: true): a fixed-seed binarisation of MNIST "
                    f"whose likelihoods are not comparable with published ones"
                ) from None
            return _standin(data_dir, download, why)
        arrays[split] = read_amat(path)
    return DatasetSplits(
        **{split: make_split(x, None, scale=1.0) for split, x in arrays.items()},
        info=DatasetInfo(
            name="static_mnist",
            image_shape=(1, _SIDE, _SIDE),
            binary=True,
            source=f"Larochelle & Murray's binarised MNIST .amat files in {folder}",
            num_classes=0,
            labelled=False,
            splits=(
                f"train {len(arrays['train'])} / val {len(arrays['val'])} / test "
                f"{len(arrays['test'])} = the files' train / valid / test"
            ),
        ),
    )
