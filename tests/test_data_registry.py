"""``load_dataset`` by name, its option checking, and the ``Split`` / ``DatasetSplits`` containers.

Deterministic; no network (file-based datasets are only asked for with ``download=False`` in an
empty folder).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from spherevae.data import (
    DATASET_NAMES,
    DataError,
    DatasetInfo,
    DatasetSplits,
    SourceUnavailable,
    Split,
    dataset_options,
    load_dataset,
)


def test_names() -> None:
    assert DATASET_NAMES == (
        "mnist", "fashion_mnist", "static_mnist", "omniglot", "caltech", "digits", "synthetic",
    )  # fmt: skip


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(DataError) as info:
        load_dataset("cifar10")
    message = str(info.value)
    assert "name='cifar10'" in message
    assert all(name in message for name in DATASET_NAMES)
    assert isinstance(info.value, ValueError)


def test_options() -> None:
    assert dataset_options("synthetic") == ("dim", "n_train", "n_val", "n_test", "seed")
    assert dataset_options("mnist") == ()
    assert dataset_options("digits") == ()
    with pytest.raises(
        DataError, match=re.escape("dataset 'synthetic' has no option colour; valid options: dim")
    ):
        load_dataset("synthetic", colour=1)
    with pytest.raises(
        DataError, match=re.escape("dataset 'mnist' has no option dim; valid options: none")
    ):
        load_dataset("mnist", dim=3)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "omniglot", "caltech"])
def test_file_datasets_offline_in_empty_folder(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("spherevae.data.fashion_mnist.SYSTEM_FOLDER", tmp_path / "no-system-copy")
    with pytest.raises(SourceUnavailable) as info:
        load_dataset(name, data_dir=tmp_path, download=False)
    assert str(tmp_path) in str(info.value)


def test_digits_ignores_data_dir() -> None:
    assert load_dataset("digits", data_dir="/nonexistent", download=False).sizes()["val"] == 300


def _split(n: int, side: int = 4) -> Split:
    return Split(torch.zeros(n, 1, side, side), torch.zeros(n, dtype=torch.int64))


def test_containers_validate() -> None:
    info = DatasetInfo(name="x", image_shape=(1, 4, 4), binary=False, source="test", num_classes=1)
    splits = DatasetSplits(train=_split(3), val=_split(2), test=_split(1), info=info)
    assert splits.sizes() == {"train": 3, "val": 2, "test": 1}
    assert splits.split("val") is splits.val
    with pytest.raises(DataError, match="unknown split name='valid'"):
        splits.split("valid")
    with pytest.raises(DataError, match=re.escape("test images have shape (1, 5, 5)")):
        DatasetSplits(train=_split(3), val=_split(2), test=_split(1, side=5), info=info)
    with pytest.raises(DataError, match="float32"):
        Split(torch.zeros(2, 1, 4, 4, dtype=torch.float64), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(DataError, match="int64"):
        Split(torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.int32))
    with pytest.raises(DataError, match=re.escape("shape (2,)")):
        Split(torch.zeros(2, 1, 4, 4), torch.zeros(3, dtype=torch.int64))
    with pytest.raises(DataError, match=re.escape("(2, m)")):
        Split(torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.int64), torch.zeros(3, 3))
