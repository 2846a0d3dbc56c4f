"""scikit-learn's 8 x 8 handwritten digits (UCI "Optical Recognition of Handwritten Digits"),
offline: the data ship inside scikit-learn.

References:
    E. Alpaydin, C. Kaynak, "Optical Recognition of Handwritten Digits", UCI Machine Learning
    Repository, 1998. https://doi.org/10.24432/C50P49
"""

from __future__ import annotations

import numpy as np

from .splits import DatasetInfo, DatasetSplits, make_split, permutation_split

__all__ = ["SPLIT_SEED", "SPLIT_SIZES", "load_digits"]

SPLIT_SIZES = (1197, 300, 300)
"""Train / validation / test sizes; they add up to the 1,797 images."""
SPLIT_SEED = 0
"""Seed of the permutation that assigns images to splits."""

_LEVELS = 16.0  # pixel values are counts 0..16 of "on" cells in a 4 x 4 block of a 32 x 32 bitmap


def load_digits() -> DatasetSplits:
    """The 1,797 digits as 8 x 8 images in ``[0, 1]`` (value / 16), split 1197 / 300 / 300.

    Splits (fixed): ``numpy.random.default_rng(0).permutation(1797)``; its first 1,197 entries are
    train, the next 300 validation, the last 300 test (see
    :func:`~spherevae.data.splits.permutation_split`); each split keeps the original order.
    Images stay 8 x 8: models must accept ``(1, 8, 8)`` inputs.

    Returns:
        Images ``float32`` ``(N, 1, 8, 8)``, labels ``int64`` in ``0..9``.
    """
    # imported here: scikit-learn takes about a second to import and only this loader needs it
    from sklearn.datasets import load_digits as sklearn_load_digits

    bunch = sklearn_load_digits()
    images = np.asarray(bunch.images, dtype=np.float32)
    labels = np.asarray(bunch.target, dtype=np.int64)
    train, val, test = permutation_split(len(images), SPLIT_SIZES, SPLIT_SEED)
    return DatasetSplits(
        train=make_split(images[train], labels[train], scale=_LEVELS),
        val=make_split(images[val], labels[val], scale=_LEVELS),
        test=make_split(images[test], labels[test], scale=_LEVELS),
        info=DatasetInfo(
            name="digits",
            image_shape=(1, 8, 8),
            binary=False,
            source="scikit-learn load_digits (UCI optical recognition of handwritten digits, 8x8)",
            num_classes=10,
            class_names=tuple(str(d) for d in range(10)),
            splits=(
                f"train {SPLIT_SIZES[0]} / val {SPLIT_SIZES[1]} / test {SPLIT_SIZES[2]} from "
                f"numpy default_rng({SPLIT_SEED}).permutation(1797), original order kept"
            ),
        ),
    )
