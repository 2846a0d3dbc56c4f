"""``make_loader``: batch sizes, seeded shuffling, custom samplers, errors. Deterministic."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data.distributed import DistributedSampler

from spherevae.data import DataError, load_dataset, make_loader


def _data(n: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.arange(n, dtype=torch.float32).reshape(n, 1, 1, 1).expand(
        n, 1, 2, 2
    ).clone(), torch.arange(n)


def _order(loader: torch.utils.data.DataLoader[tuple[torch.Tensor, ...]]) -> list[int]:
    return [int(i) for _, labels in loader for i in labels]


def test_sequential_batches() -> None:
    x, y = _data()
    loader = make_loader(x, y, batch_size=4)
    batches = list(loader)
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    assert _order(loader) == list(range(10))
    images, labels = batches[0]
    assert images.shape == (4, 1, 2, 2) and torch.equal(images[:, 0, 0, 0], labels.float())
    assert [len(b[1]) for b in make_loader(x, y, batch_size=4, drop_last=True)] == [4, 4]
    assert len(make_loader(x, y, batch_size=4)) == 3


def test_shuffle_is_seeded_and_changes_per_epoch() -> None:
    x, y = _data(50)
    loader = make_loader(x, y, batch_size=8, shuffle=True, seed=1)
    epoch1, epoch2 = _order(loader), _order(loader)
    assert sorted(epoch1) == list(range(50)) and sorted(epoch2) == list(range(50))
    assert epoch1 != list(range(50)) and epoch1 != epoch2
    again = make_loader(x, y, batch_size=8, shuffle=True, seed=1)
    assert _order(again) == epoch1 and _order(again) == epoch2  # same seed: same epochs
    assert _order(make_loader(x, y, batch_size=8, shuffle=True, seed=2)) != epoch1


def test_images_only() -> None:
    x, _ = _data()
    batches = list(make_loader(x, batch_size=3))
    assert all(len(b) == 1 for b in batches) and sum(len(b[0]) for b in batches) == 10


def test_custom_sampler() -> None:
    x, y = _data(10)
    sampler = DistributedSampler(
        torch.utils.data.TensorDataset(y), num_replicas=2, rank=1, shuffle=False
    )
    assert _order(make_loader(x, y, batch_size=2, sampler=sampler)) == [1, 3, 5, 7, 9]
    with pytest.raises(DataError, match="shuffle=False with a sampler"):
        make_loader(x, y, batch_size=2, sampler=sampler, shuffle=True)


def test_loader_over_a_dataset_split() -> None:
    split = load_dataset("synthetic", n_train=20, n_val=4, n_test=4).train
    images, labels = next(iter(make_loader(split.images, split.labels, batch_size=16)))
    assert images.shape == (16, 1, 28, 28) and labels.dtype == torch.int64


@pytest.mark.parametrize("batch_size", [0, -1, 2.0, True])
def test_bad_batch_size(batch_size: object) -> None:
    x, y = _data()
    with pytest.raises(DataError, match="batch_size must be a positive integer"):
        make_loader(x, y, batch_size=batch_size)  # type: ignore[arg-type]


def test_length_mismatch() -> None:
    x, y = _data()
    with pytest.raises(DataError, match="10 images and 9 labels"):
        make_loader(x, y[:9], batch_size=2)


def test_iterating_leaves_the_global_generator_alone() -> None:
    # a training loop draws its latent samples from the global generator: making batches must not
    # shift that stream, or the same run would train differently with another loader
    x = torch.rand(10, 1, 2, 2)
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    for shuffle in (False, True):
        for _ in make_loader(x, batch_size=4, shuffle=shuffle, seed=1):
            pass
    torch.testing.assert_close(torch.rand(3), expected)
