"""Your own data as a ``.npz`` file: ``--dataset npz:PATH`` or ``load_dataset("npz:PATH")``.

The file holds arrays (read with ``allow_pickle=False``: no code runs):

- ``x``: ``(N, C, H, W)`` images or ``(N, D)`` vectors; ``uint8`` images are divided by 255, other
  images must lie in ``[0, 1]``; vectors may take any finite values;
- ``y`` (optional): ``(N,)`` integer labels ``0..k-1``;
- ``x_val``/``y_val`` and ``x_test``/``y_test`` (optional): the validation and test splits. Without
  them, ``x`` is split by a fixed-seed permutation (``numpy.random.default_rng(0)``): 80% train,
  10% validation, 10% test (at least one example each), the same on every machine.

The data set's record (``DatasetInfo.source``) names the file and its SHA-256, which ``run.json``
keeps, so a run says exactly which data trained it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .errors import DataError
from .files import check_recorded_sha256, sha256_file
from .splits import DatasetInfo, DatasetSplits, Split, split_80_10_10

__all__ = ["NPZ_PREFIX", "SPLIT_SEED", "load_npz_dataset"]

NPZ_PREFIX = "npz:"
#: the seed of the permutation that splits ``x`` when the file has no validation and test arrays
SPLIT_SEED = 0


def _values(path: Path, key: str, array: np.ndarray) -> np.ndarray:
    """``array`` as float32 data, checked: shape, finiteness, and ``[0, 1]`` for images."""
    if array.ndim not in (2, 4) or array.shape[0] == 0:
        raise DataError(
            f"{path}: {key} must have shape (N, C, H, W) or (N, D) with N >= 1, got {array.shape}"
        )
    if array.dtype == np.uint8:
        return (array.astype(np.float32) / 255).astype(np.float32)
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise DataError(f"{path}: {key} must hold real numbers, got dtype {array.dtype}")
    values = array.astype(np.float32)
    if not np.isfinite(values).all():
        raise DataError(f"{path}: {key} holds NaN or infinite values")
    if array.ndim == 4 and (values.min() < 0 or values.max() > 1):
        raise DataError(
            f"{path}: {key} images must lie in [0, 1] (or be uint8), got values in "
            f"[{values.min():g}, {values.max():g}]"
        )
    return values


def _labels(path: Path, key: str, array: np.ndarray | None, n: int) -> np.ndarray | None:
    if array is None:
        return None
    if array.shape != (n,) or not np.issubdtype(array.dtype, np.integer):
        raise DataError(
            f"{path}: {key} must be {n} integer labels (one per example), got dtype "
            f"{array.dtype} and shape {array.shape}"
        )
    if array.min() < 0:
        raise DataError(f"{path}: {key} must be labels 0..k-1, got {array.min()}")
    return array.astype(np.int64)


def load_npz_dataset(path: str | Path, *, expected_sha256: str | None = None) -> DatasetSplits:
    """The data of a ``.npz`` file as train / validation / test splits (layout in the module doc).

    Args:
        path: the file.
        expected_sha256: the digest the file must have (a run's record), checked before it is read.

    Raises:
        DataError: naming the file, if it cannot be read, its arrays do not fit the layout, or its
            digest is not ``expected_sha256``.
    """
    file = Path(path).expanduser()
    try:
        digest = sha256_file(file)
    except OSError as err:
        raise DataError(f"cannot read {file}: {err.strerror or err}") from None
    check_recorded_sha256(file, digest, expected_sha256)
    try:
        with np.load(file, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read {file} as a .npz file: {err}") from None
    if "x" not in arrays:
        raise DataError(f"{file}: no array 'x' (the examples); it holds {sorted(arrays)}")
    given = {"val": "x_val" in arrays, "test": "x_test" in arrays}
    if given["val"] != given["test"]:
        raise DataError(f"{file}: give both x_val and x_test, or neither (then x is split)")
    parts: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for name, suffix in (("train", ""), ("val", "_val"), ("test", "_test")):
        if name != "train" and not given["val"]:
            continue
        x = _values(file, f"x{suffix}", arrays[f"x{suffix}"])
        parts[name] = (x, _labels(file, f"y{suffix}", arrays.get(f"y{suffix}"), len(x)))
    x, y = parts["train"]
    if not given["val"]:
        index, rule = split_80_10_10(len(x), SPLIT_SEED, f"{file}: x")
        parts = {
            name: (x[i], None if y is None else y[i])
            for name, i in zip(("train", "val", "test"), index, strict=True)
        }
        rule = "x " + rule
    else:
        rule = "x / x_val / x_test as given"
    shapes = {name: part[0].shape[1:] for name, part in parts.items()}
    if len(set(shapes.values())) != 1:
        raise DataError(f"{file}: the splits' examples differ in shape: {shapes}")
    labelled = {name: part[1] is not None for name, part in parts.items()}
    if len(set(labelled.values())) != 1:
        raise DataError(f"{file}: give labels for every split or for none, got {labelled}")
    all_labels = [part[1] for part in parts.values() if part[1] is not None]
    num_classes = int(max(int(lab.max()) for lab in all_labels) + 1) if all_labels else 0
    splits = {
        name: Split(
            torch.from_numpy(np.ascontiguousarray(xs)),
            torch.from_numpy(ys) if ys is not None else torch.full((len(xs),), -1),
        )
        for name, (xs, ys) in parts.items()
    }
    values = np.concatenate([part[0].ravel() for part in parts.values()])
    info = DatasetInfo(
        name=f"{NPZ_PREFIX}{file}",
        image_shape=tuple(int(s) for s in shapes["train"]),
        binary=bool(np.isin(values, (0.0, 1.0)).all()),
        source=f"the .npz file {file} (sha256 {digest})",
        num_classes=num_classes,
        class_names=tuple(str(i) for i in range(num_classes)) if num_classes else None,
        labelled=bool(all_labels),
        splits=rule,
        sha256=digest,
    )
    return DatasetSplits(splits["train"], splits["val"], splits["test"], info)
