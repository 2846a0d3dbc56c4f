"""Synthetic images of known points on a sphere, for tests and for checking latent geometry.

Each image is a deterministic, smooth and one-to-one function of a point ``z`` on ``S^{m-1}``
(``2 <= m <= 5``): a Gaussian blob on a 28 x 28 canvas whose parameters are affine in ``z``:

* centre ``(row, column) = (13.5 + 8 z_1, 13.5 + 8 z_0)`` pixels;
* width ``s = 2.5 + z_2`` pixels (``m >= 3``; else ``2.5``);
* elongation: widths ``s e^{0.35 z_3}`` along columns and ``s e^{-0.35 z_3}`` along rows
  (``m >= 4``);
* peak intensity ``0.75 + 0.25 z_4`` (``m >= 5``; else ``1``).

Because the map from ``z`` to the blob's parameters is affine and injective, and a blob is
determined by its parameters, a model with an ``S^{m-1}`` latent space can in principle recover the
points up to a homeomorphism; the true points are kept (:attr:`Split.latents`) so that tests can
compare. Points are uniform on the sphere; the label of a point is the closest of the ``2m``
directions ``+-e_i`` (class ``2 i`` for ``+e_i``, ``2 i + 1`` for ``-e_i``), i.e. the region of the
sphere it falls in.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

from .errors import DataError
from .splits import DatasetInfo, DatasetSplits, Split

__all__ = ["MAX_DIM", "load_synthetic", "region_labels", "render_sphere_points", "sphere_points"]

MAX_DIM = 5
"""Largest ambient dimension ``m`` (the blob has five parameters)."""

_SIDE = 28
_CENTRE, _SHIFT = 13.5, 8.0
_WIDTH, _WIDTH_SLOPE = 2.5, 1.0
_ELONGATION = 0.35
_PEAK, _PEAK_SLOPE = 0.75, 0.25


def _check_dim(dim: int) -> None:
    if isinstance(dim, bool) or not isinstance(dim, int) or not 2 <= dim <= MAX_DIM:
        raise DataError(
            f"dim (ambient dimension of the latent sphere) must be an integer in 2..{MAX_DIM}, "
            f"got dim={dim!r}"
        )


def sphere_points(n: int, dim: int, generator: torch.Generator) -> Tensor:
    """``n`` points uniform on ``S^{dim-1}``: normalised standard Gaussian vectors.

    Returns:
        ``float32`` tensor ``(n, dim)`` of unit vectors.
    """
    _check_dim(dim)
    # float64 so that the norm is 1 to float32 rounding after the cast
    g = torch.randn(n, dim, generator=generator, dtype=torch.float64)
    points: Tensor = (g / g.norm(dim=1, keepdim=True)).to(torch.float32)
    return points


def region_labels(points: Tensor) -> Tensor:
    """Region of each point: index of the closest of ``+e_0, -e_0, +e_1, -e_1, ...``.

    Args:
        points: ``(n, m)`` unit vectors.

    Returns:
        ``int64`` ``(n,)`` in ``0 .. 2m - 1``: ``2 i`` if the point is closest to ``+e_i``,
        ``2 i + 1`` if closest to ``-e_i``.
    """
    axis = points.abs().argmax(dim=1)
    negative = points.gather(1, axis.unsqueeze(1)).squeeze(1) < 0
    labels: Tensor = 2 * axis + negative.to(torch.int64)
    return labels


def render_sphere_points(points: Tensor) -> Tensor:
    """Render points of ``S^{m-1}`` as blob images (the map is given in the module docstring).

    Args:
        points: ``(n, m)`` unit vectors, ``2 <= m <= 5``.

    Returns:
        ``float32`` tensor ``(n, 1, 28, 28)`` with values in ``[0, 1]``.
    """
    if points.dim() != 2:
        raise DataError(f"points must have shape (n, m), got {tuple(points.shape)}")
    dim = points.shape[1]
    _check_dim(dim)
    z = points.to(torch.float32)
    # coordinates past m act as 0: the parameter they drive keeps its base value
    z = torch.cat([z, z.new_zeros(len(z), MAX_DIM - dim)], dim=1)

    def coord(i: int) -> Tensor:
        return z[:, i]

    col = _CENTRE + _SHIFT * coord(0)
    row = _CENTRE + _SHIFT * coord(1)
    width = _WIDTH + _WIDTH_SLOPE * coord(2)
    width_col = width * torch.exp(_ELONGATION * coord(3))
    width_row = width * torch.exp(-_ELONGATION * coord(3))
    peak = _PEAK + _PEAK_SLOPE * coord(4) if dim >= 5 else torch.ones_like(coord(0))
    grid = torch.arange(_SIDE, dtype=torch.float32)
    # separable Gaussian: outer product of a row profile and a column profile
    rows = torch.exp(-0.5 * ((grid - row[:, None]) / width_row[:, None]) ** 2)
    cols = torch.exp(-0.5 * ((grid - col[:, None]) / width_col[:, None]) ** 2)
    images = peak[:, None, None] * rows[:, :, None] * cols[:, None, :]
    return images.unsqueeze(1).clamp_(0.0, 1.0)


def load_synthetic(
    *, dim: int = 3, n_train: int = 5000, n_val: int = 1000, n_test: int = 1000, seed: int = 0
) -> DatasetSplits:
    """Blob images of uniform points on ``S^{dim-1}`` with their true latents (module docstring).

    Splits (fixed by ``seed``): ``n_train + n_val + n_test`` points are drawn in one stream from
    ``torch.Generator().manual_seed(seed)``; the first ``n_train`` are train, the next ``n_val``
    validation, the last ``n_test`` test. Same arguments, same tensors, on every machine.

    Args:
        dim: ambient dimension ``m`` of the latent sphere ``S^{m-1}`` (``2..5``; ``3`` is the
            ordinary sphere).
        n_train: number of training images.
        n_val: number of validation images.
        n_test: number of test images.
        seed: random seed.

    Returns:
        Images ``float32`` ``(N, 1, 28, 28)`` in ``[0, 1]``, labels ``int64`` in ``0..2 dim - 1``
        (region, :func:`region_labels`), latents ``float32`` ``(N, dim)``.
    """
    _check_dim(dim)
    sizes = {"n_train": n_train, "n_val": n_val, "n_test": n_test}
    for key, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DataError(f"{key} must be a positive integer, got {key}={value!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DataError(f"seed must be an integer, got seed={seed!r}")
    generator = torch.Generator().manual_seed(seed)
    points = sphere_points(n_train + n_val + n_test, dim, generator)
    images, labels = render_sphere_points(points), region_labels(points)
    bounds = [0, n_train, n_train + n_val, n_train + n_val + n_test]
    train, val, test = (
        Split(images[a:b], labels[a:b], points[a:b]) for a, b in itertools.pairwise(bounds)
    )
    names = tuple(f"{sign}e{i}" for i in range(dim) for sign in "+-")
    return DatasetSplits(
        train=train,
        val=val,
        test=test,
        info=DatasetInfo(
            name="synthetic",
            image_shape=(1, _SIDE, _SIDE),
            binary=False,
            source=(
                f"synthetic blobs rendered from {sum(sizes.values())} uniform points on "
                f"S^{dim - 1} (torch seed {seed})"
            ),
            num_classes=2 * dim,
            class_names=names,
            latent_dim=dim,
            splits=f"train {n_train} / val {n_val} / test {n_test}: consecutive draws, seed {seed}",
        ),
    )
