"""Your own vectors in a CSV file: ``--dataset csv:PATH`` or ``load_dataset("csv:PATH")``.

The file is UTF-8 text (a byte-order mark is allowed), comma-separated, with quotes as Python's
:mod:`csv` reads them:

- the **first line is a header** naming the columns (a first line of numbers is refused: it would
  be a lost example);
- every other column must hold numbers (surrounding spaces allowed): the columns in header order
  give the vectors ``(N, D)`` as ``float32``; empty cells, text, NaN and infinite values are
  refused, naming the line and column;
- ``label_column=NAME`` (``--label-column NAME``, optional) names the column of integer labels
  ``0..k-1`` (written ``3`` or ``3.0``), which is not part of the vectors; without it the data are
  unlabelled.

The vectors may take any real values; a likelihood that needs values in ``[0, 1]`` gives way to a
Gaussian when they leave it (see :func:`spherevae.training.run.train_run`). The rows are split
80 / 10 / 10 by the permutation ``numpy.random.default_rng(0)`` (:func:`~.splits.split_80_10_10`),
the same on every machine. ``DatasetInfo.sha256`` is the file's SHA-256.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from .errors import DataError
from .files import check_recorded_sha256, sha256_file
from .splits import DatasetInfo, DatasetSplits, split_user_data

__all__ = ["CSV_PREFIX", "SPLIT_SEED", "load_csv_dataset"]

CSV_PREFIX = "csv:"
#: the seed of the permutation that splits the rows
SPLIT_SEED = 0


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _rows(file: Path) -> list[list[str]]:
    try:
        with file.open(encoding="utf-8-sig", newline="") as f:
            return [row for row in csv.reader(f) if row and any(cell.strip() for cell in row)]
    except OSError as err:
        raise DataError(f"cannot read {file}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise DataError(f"cannot read {file} as a CSV file: not UTF-8 text") from None
    except csv.Error as err:
        raise DataError(f"cannot read {file} as a CSV file: {err}") from None


def load_csv_dataset(
    path: str | Path, *, label_column: str | None = None, expected_sha256: str | None = None
) -> DatasetSplits:
    """The rows of a CSV file as train / validation / test splits of vectors (layout in the module
    doc).

    Args:
        path: the file.
        label_column: the header name of the column of integer labels; ``None``: unlabelled.
        expected_sha256: the digest the file must have (a run's record), checked before it is read.

    Raises:
        DataError: naming the file (and line and column where it applies): unreadable, empty, no
            header, a cell that is not a finite number, a row of another length, a label column
            that is not there or holds no integer labels, or a digest other than
            ``expected_sha256``.
    """
    file = Path(path).expanduser()
    try:
        digest = sha256_file(file)
    except OSError as err:
        raise DataError(f"cannot read {file}: {err.strerror or err}") from None
    check_recorded_sha256(file, digest, expected_sha256)
    rows = _rows(file)
    if not rows:
        raise DataError(f"{file}: empty (a header line naming the columns, then one row a line)")
    header = [name.strip() for name in rows[0]]
    if all(_number(name) is not None for name in header):
        raise DataError(
            f"{file}: line 1 holds numbers; the first line must be a header naming the columns"
        )
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise DataError(f"{file}: column {duplicates[0]!r} is named twice in the header")
    if label_column is not None and label_column not in header:
        raise DataError(
            f"{file}: no label column {label_column!r} (--label-column); the columns are "
            f"{', '.join(repr(h) for h in header)}"
        )
    label_at = header.index(label_column) if label_column is not None else None
    features = [i for i in range(len(header)) if i != label_at]
    if not features:
        raise DataError(f"{file}: no columns left for the vectors besides the label column")
    if len(rows) == 1:
        raise DataError(f"{file}: holds a header and no data rows")
    values = np.empty((len(rows) - 1, len(header)), dtype=np.float64)
    for r, row in enumerate(rows[1:]):
        if len(row) != len(header):
            raise DataError(
                f"{file}: a row has {len(row)} fields, the header {len(header)} "
                f"(data row {r + 1}: {','.join(row)[:60]!r})"
            )
        for c, cell in enumerate(row):
            number = _number(cell.strip())
            if number is None:
                what = "empty" if not cell.strip() else f"not a number: {cell.strip()[:40]!r}"
                raise DataError(
                    f"{file}: column {header[c]!r} must be numeric; data row {r + 1} is {what}"
                )
            if not math.isfinite(number):
                raise DataError(
                    f"{file}: column {header[c]!r} holds NaN or infinite values (data row {r + 1})"
                )
            values[r, c] = number
    x = values[:, features].astype(np.float32)
    if not np.isfinite(x).all():
        raise DataError(f"{file}: values too large for float32 (beyond 3.4e38)")
    labels = None
    if label_at is not None:
        column = values[:, label_at]
        bad = np.flatnonzero((column != np.round(column)) | (column < 0))
        if len(bad):
            raise DataError(
                f"{file}: label column {label_column!r} must hold integers 0..k-1; data row "
                f"{bad[0] + 1} holds {column[bad[0]]:g}"
            )
        labels = column.astype(np.int64)
    splits, rule = split_user_data(x, labels, SPLIT_SEED, str(file))
    num_classes = int(labels.max()) + 1 if labels is not None else 0
    columns = f"{len(features)} value columns"
    info = DatasetInfo(
        name=f"{CSV_PREFIX}{file}",
        image_shape=(len(features),),
        binary=bool(np.isin(x, (0.0, 1.0)).all()),
        source=(
            f"the CSV file {file} (sha256 {digest}; {columns}"
            + (f"; labels from column {label_column}" if label_column is not None else "")
            + ")"
        ),
        num_classes=num_classes,
        class_names=tuple(str(i) for i in range(num_classes)) if num_classes else None,
        labelled=labels is not None,
        splits=f"the rows in file order {rule}",
        sha256=digest,
    )
    return DatasetSplits(splits["train"], splits["val"], splits["test"], info)
