"""Datasets for hyperspherical VAEs: loading, verification, binarisation and batching.

Entry point: :func:`load_dataset` (by name) returns :class:`DatasetSplits` with fixed train /
validation / test splits of ``float32`` images ``(N, C, H, W)`` in ``[0, 1]`` (or vectors
``(N, D)``), ``int64`` labels and a :class:`DatasetInfo` (name, image shape, whether already binary,
the source actually read). Your own data: ``npz:PATH``, ``folder:PATH`` (PNG/JPEG images) and
``csv:PATH``.
For training: :class:`DynamicBinarizer` (a fresh Bernoulli draw per batch) and :func:`make_loader`.

Files are cached in a data folder (``data_dir``, else ``$SPHEREVAE_DATA_DIR``, else
``$XDG_CACHE_HOME/spherevae`` or ``~/.cache/spherevae``) and verified by SHA-256. Every problem is
reported as a :class:`DataError` (a :class:`ValueError`).
"""

from .binarize import DynamicBinarizer, dynamic_binarize, evaluation_images, static_binarize
from .caltech import load_caltech
from .csvfile import load_csv_dataset
from .digits import load_digits
from .errors import DataError, SourceUnavailable
from .fashion_mnist import load_fashion_mnist
from .files import DATA_DIR_ENV, default_data_dir
from .folder import load_folder_dataset
from .idx import parse_idx, read_idx
from .loaders import make_loader
from .mnist import load_mnist
from .npz import load_npz_dataset
from .omniglot import load_omniglot
from .registry import (
    DATASET_NAMES,
    DATASETS_WITH_SUBSTITUTE,
    USER_DATA_PREFIXES,
    dataset_options,
    load_dataset,
)
from .splits import UNLABELLED, DatasetInfo, DatasetSplits, Split
from .static_mnist import load_static_mnist
from .synthetic import load_synthetic, region_labels, render_sphere_points, sphere_points

__all__ = [
    "DATASETS_WITH_SUBSTITUTE",
    "DATASET_NAMES",
    "DATA_DIR_ENV",
    "UNLABELLED",
    "USER_DATA_PREFIXES",
    "DataError",
    "DatasetInfo",
    "DatasetSplits",
    "DynamicBinarizer",
    "SourceUnavailable",
    "Split",
    "dataset_options",
    "default_data_dir",
    "dynamic_binarize",
    "evaluation_images",
    "load_caltech",
    "load_csv_dataset",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_folder_dataset",
    "load_mnist",
    "load_npz_dataset",
    "load_omniglot",
    "load_static_mnist",
    "load_synthetic",
    "make_loader",
    "parse_idx",
    "read_idx",
    "region_labels",
    "render_sphere_points",
    "sphere_points",
    "static_binarize",
]
