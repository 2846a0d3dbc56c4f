"""The offline datasets: ``synthetic`` (images of known points on a sphere) and ``digits``
(scikit-learn's 8 x 8 digits); the seeded split helper. Deterministic (fixed seeds).
"""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
import torch

from spherevae.data import (
    DataError,
    load_dataset,
    region_labels,
    render_sphere_points,
    sphere_points,
)
from spherevae.data.splits import permutation_split

SPLITS = ("train", "val", "test")


# ---------------------------------------------------------------------------------------- synthetic


@pytest.mark.parametrize("dim", [2, 3, 4, 5])
def test_synthetic_shapes_ranges_labels(dim: int) -> None:
    splits = load_dataset("synthetic", dim=dim, n_train=40, n_val=10, n_test=12, seed=3)
    assert splits.sizes() == {"train": 40, "val": 10, "test": 12}
    for name in SPLITS:
        split = splits.split(name)
        assert split.images.dtype == torch.float32 and split.images.shape[1:] == (1, 28, 28)
        assert split.images.min() >= 0 and split.images.max() <= 1
        assert split.latents is not None and split.latents.shape == (len(split), dim)
        torch.testing.assert_close(split.latents.norm(dim=1), torch.ones(len(split)))
        assert split.labels.dtype == torch.int64
        assert split.labels.min() >= 0 and split.labels.max() < 2 * dim
        # the label is the region: the closest of +-e_i
        anchors = torch.cat([torch.eye(dim), -torch.eye(dim)], dim=1).reshape(dim * 2, dim)
        assert torch.equal(split.labels, (split.latents @ anchors.T).argmax(dim=1))
    info = splits.info
    assert (info.latent_dim, info.num_classes, info.binary) == (dim, 2 * dim, False)
    assert info.class_names is not None and info.class_names[:2] == ("+e0", "-e0")


def test_synthetic_images_are_a_function_of_the_latents() -> None:
    splits = load_dataset("synthetic", n_train=30, n_val=5, n_test=5)
    for name in SPLITS:
        split = splits.split(name)
        assert split.latents is not None
        assert torch.equal(render_sphere_points(split.latents), split.images)


def test_synthetic_deterministic_and_seeded() -> None:
    a = load_dataset("synthetic", n_train=20, n_val=5, n_test=5, seed=7)
    b = load_dataset("synthetic", n_train=20, n_val=5, n_test=5, seed=7)
    c = load_dataset("synthetic", n_train=20, n_val=5, n_test=5, seed=8)
    for name in SPLITS:
        assert torch.equal(a.split(name).images, b.split(name).images)
        assert torch.equal(a.split(name).labels, b.split(name).labels)
    assert not torch.equal(a.train.images, c.train.images)


def test_synthetic_splits_disjoint() -> None:
    splits = load_dataset("synthetic", n_train=200, n_val=50, n_test=50, seed=1)
    rows = {
        name: {tuple(z.tolist()) for z in splits.split(name).latents}  # type: ignore[union-attr]
        for name in SPLITS
    }
    assert [len(r) for r in rows.values()] == [200, 50, 50]  # no duplicates inside a split
    for x, y in itertools.combinations(SPLITS, 2):
        assert rows[x].isdisjoint(rows[y])


def test_synthetic_geometry_is_recoverable() -> None:
    """The blob's centre of mass gives back ``z_0, z_1`` (to the truncation of the blob's tails at
    the border, under 0.5 px = 0.06 in z), and the hemisphere ``sign(z_2)`` shows in the width."""
    z = sphere_points(500, 3, torch.Generator().manual_seed(0))
    images = render_sphere_points(z)[:, 0].double()
    grid = torch.arange(28, dtype=torch.float64)
    mass = images.sum(dim=(1, 2))
    col = (images.sum(dim=1) * grid).sum(dim=1) / mass
    row = (images.sum(dim=2) * grid).sum(dim=1) / mass
    assert (col - (13.5 + 8 * z[:, 0])).abs().max() < 0.5
    assert (row - (13.5 + 8 * z[:, 1])).abs().max() < 0.5
    # mirror image through the equator: same centre, different width, so a different image
    mirrored = z * torch.tensor([1.0, 1.0, -1.0])
    away = z[:, 2].abs() > 0.2
    diff = (
        (render_sphere_points(mirrored)[:, 0] - render_sphere_points(z)[:, 0])
        .abs()
        .amax(dim=(1, 2))
    )
    assert (diff[away] > 0.05).all()
    assert (
        torch.corrcoef(torch.stack([mass, z[:, 2].double()]))[0, 1] > 0.9
    )  # wider blob, more mass


def test_render_circle() -> None:
    """On ``S^1`` the blob moves on a circle of radius 8 px around the canvas centre."""
    angles = torch.linspace(0, 2 * torch.pi, 9)[:-1]
    z = torch.stack([angles.cos(), angles.sin()], dim=1)
    images = render_sphere_points(z)[:, 0]
    peak = images.flatten(1).argmax(dim=1)
    rows, cols = peak // 28, peak % 28
    radius = ((rows - 13.5) ** 2 + (cols - 13.5) ** 2).sqrt()
    assert ((radius - 8).abs() <= 1).all()


def test_region_labels_by_hand() -> None:
    z = torch.tensor([[0.9, 0.1, 0.0], [-0.9, 0.1, 0.0], [0.0, -0.6, 0.5], [0.1, 0.2, -0.97]])
    assert region_labels(z).tolist() == [0, 1, 3, 5]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"dim": 1},
            "dim (ambient dimension of the latent sphere) must be an integer in 2..5, got dim=1",
        ),
        ({"dim": 6}, "got dim=6"),
        ({"dim": 3.0}, "got dim=3.0"),
        ({"n_train": 0}, "n_train must be a positive integer, got n_train=0"),
        ({"n_test": True}, "n_test=True"),
        ({"seed": "1"}, "seed='1'"),
    ],
)
def test_synthetic_bad_options(options: dict[str, object], message: str) -> None:
    with pytest.raises(DataError, match=re.escape(message)):
        load_dataset("synthetic", **options)


# ---------------------------------------------------------------------------------------- digits


def test_digits() -> None:
    from sklearn.datasets import load_digits as sklearn_load_digits

    splits = load_dataset("digits")
    assert splits.sizes() == {"train": 1197, "val": 300, "test": 300}
    assert splits.info.image_shape == (1, 8, 8) and not splits.info.binary
    images = torch.cat([splits.split(n).images for n in SPLITS])
    labels = torch.cat([splits.split(n).labels for n in SPLITS])
    assert images.dtype == torch.float32 and images.min() == 0 and images.max() == 1
    assert labels.dtype == torch.int64
    assert torch.bincount(labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    # together the splits are exactly scikit-learn's 1797 images (/16), each used once
    reference = sklearn_load_digits()
    ours = sorted(map(tuple, (images.flatten(1) * 16).round().int().tolist()))
    theirs = sorted(map(tuple, reference.data.astype(int).tolist()))
    assert ours == theirs
    again = load_dataset("digits")
    assert torch.equal(again.test.images, splits.test.images)  # fixed split


def test_permutation_split() -> None:
    parts = permutation_split(100, (60, 25, 15), seed=0)
    assert [len(p) for p in parts] == [60, 25, 15]
    assert sorted(np.concatenate(parts).tolist()) == list(range(100))
    assert all((np.diff(p) > 0).all() for p in parts)  # sorted: original order kept
    assert all(
        np.array_equal(a, b)
        for a, b in zip(parts, permutation_split(100, (60, 25, 15), 0), strict=True)
    )
    assert not np.array_equal(parts[0], permutation_split(100, (60, 25, 15), 1)[0])
    with pytest.raises(DataError, match="sum to at most n=10"):
        permutation_split(10, (5, 5, 5), seed=0)
