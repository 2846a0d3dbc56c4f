r"""Decoded grids: what the decoder draws at regularly spaced latent points, each image at its point.

* ``S^2``: a latitude-longitude grid, laid out on the (longitude, latitude) plane;
* ``S^1``: a ring of equally spaced angles, the images around the circle;
* ``R^2``: a square grid, the images at their coordinates (Kingma and Welling 2014, fig. 4, use
  Gaussian quantiles instead; a square keeps the distances readable).

For a product space one factor is traversed and the others are held at a base point. A conditional
model is drawn once per class: one panel per label, the same grid decoded with that label.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor

from ._common import FloatArray, Model, decode_images, is_conditional, place_images

__all__ = [
    "decode_factor_grid",
    "decoded_grid",
    "latlon_grid",
    "place_in_factor",
    "ring_points",
    "square_grid",
]


def latlon_grid(n_lat: int = 7, n_lon: int = 12) -> tuple[Tensor, FloatArray, FloatArray]:
    """Cell centres of an ``n_lat x n_lon`` latitude-longitude grid on ``S^2``.

    Latitudes ``-90 + 180 (i + 1/2) / n_lat`` degrees (the poles, where every longitude meets, are not
    repeated), longitudes ``-180 + 360 (j + 1/2) / n_lon``; the point is
    ``(cos lat cos lon, cos lat sin lon, sin lat)`` (north pole ``e_2``, as in
    :func:`spherevae.plots.projections.lonlat`).

    Returns:
        ``points`` ``(n_lat * n_lon, 3)`` float64 unit vectors in row-major order (latitude rows from
        the south), and their ``lon``, ``lat`` in degrees ``(n_lat * n_lon,)``.
    """
    lat = -90 + 180 * (np.arange(n_lat) + 0.5) / n_lat
    lon = -180 + 360 * (np.arange(n_lon) + 0.5) / n_lon
    lat_g, lon_g = np.meshgrid(lat, lon, indexing="ij")
    phi, lam = np.radians(lat_g.ravel()), np.radians(lon_g.ravel())
    points = np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)], axis=1)
    return torch.from_numpy(points), lon_g.ravel(), lat_g.ravel()


def ring_points(n: int = 16) -> tuple[Tensor, FloatArray]:
    """``n`` equally spaced points ``(cos a, sin a)`` on ``S^1``, ``a = 2 pi k / n``; returns them and ``a``."""
    angle = 2 * np.pi * np.arange(n) / n
    return torch.from_numpy(np.stack([np.cos(angle), np.sin(angle)], axis=1)), angle


def square_grid(n: int = 8, extent: float = 2.0) -> Tensor:
    """An ``n x n`` grid on ``[-extent, extent]^2`` (row-major, ``y`` from the top), ``(n*n, 2)`` float64.

    ``extent = 2`` covers about 95% of each coordinate of a standard Gaussian prior.
    """
    ticks = np.linspace(-extent, extent, n)
    y, x = np.meshgrid(ticks[::-1], ticks, indexing="ij")
    return torch.from_numpy(np.stack([x.ravel(), y.ravel()], axis=1))


def _base_point(model: Model) -> Tensor:
    """``e_0`` on each sphere factor and ``0`` on each Euclidean one: a fixed point of the space."""
    parts = []
    for factor in model.latent.factors:
        part = torch.zeros(factor.ambient, dtype=torch.float64)
        if factor.is_sphere:
            part[0] = 1.0
        parts.append(part)
    return torch.cat(parts)


def place_in_factor(model: Model, factor: int, grid: Tensor, base: Tensor | None = None) -> Tensor:
    """Latent points ``(N, latent_dim)``: ``grid`` ``(N, ambient of factor)`` in factor ``factor``,
    the other factors at ``base`` (default: ``e_0`` on spheres, 0 on ``R^d``), float64."""
    spec = model.latent
    full = (_base_point(model) if base is None else base.detach().to(torch.float64).cpu()).clone()
    if full.shape != (spec.ambient_dim,):
        raise ValueError(f"base must have shape ({spec.ambient_dim},), got {tuple(full.shape)}")
    start = sum(spec.sizes[:factor])
    z = full.expand(len(grid), -1).clone()
    z[:, start : start + spec.sizes[factor]] = grid.to(torch.float64)
    return z


def decode_factor_grid(
    model: Model, factor: int, grid: Tensor, base: Tensor | None = None, label: int | None = None
) -> Tensor:
    """Decode ``grid`` ``(N, ambient of factor)`` placed in factor ``factor``, the others at ``base``.

    Args:
        base: ``(latent_dim,)`` point whose other factors are kept (default: ``e_0`` on spheres, 0 on
            ``R^d``).
        label: the class to decode every point with (a conditional model needs one; others none).

    Returns:
        ``(N, C, H, W)`` expected images in ``[0, 1]``.
    """
    z = place_in_factor(model, factor, grid, base)
    y = None if label is None else torch.full((len(z),), label, dtype=torch.long)
    return decode_images(model, z, y)


def decoded_grid(
    model: Model,
    *,
    factor: int = 0,
    n: int | None = None,
    base: Tensor | None = None,
    extent: float = 2.0,
    title: str | None = None,
    classes: Sequence[int] | None = None,
) -> Figure:
    """Images decoded on a regular grid of one latent factor, each drawn at its latent position.

    Args:
        model: a VAE or auto-encoder whose factor ``factor`` is ``S^1``, ``S^2`` or ``R^2``.
        factor: index of the factor to traverse (0 for a single space).
        n: grid size: ``S^2`` ``n`` latitudes and ``2n`` longitudes (default 6), ``S^1`` ``n`` angles
            (default 16), ``R^2`` ``n x n`` (default 8).
        base: ``(latent_dim,)``, the values of the other factors (see :func:`decode_factor_grid`).
        extent: half-width of the ``R^2`` grid.
        classes: a conditional model's classes, one panel each (the same grid decoded with each
            label); required for a conditional model, refused for others.

    Returns:
        A figure with one axes (one per class with ``classes``) holding one image per grid point.
    """
    spec = model.latent
    if not 0 <= factor < len(spec.factors):
        raise ValueError(f"factor must be in 0..{len(spec.factors) - 1}, got factor={factor}")
    f = spec.factors[factor]
    name = f"S^{f.dim}" if f.is_sphere else f"R^{f.dim}"
    if str(f) not in ("S1", "S2", "R2"):
        raise ValueError(
            f"decoded grids are drawn for S^1, S^2 and R^2 factors; factor {factor} of {spec} is {name}"
        )
    if is_conditional(model) and not classes:
        raise ValueError("a conditional model is drawn per class: give classes")
    if classes is not None and not is_conditional(model):
        raise ValueError("classes are drawn for a conditional model; this one is not")
    where = "" if len(spec.factors) == 1 else f" (factor {factor} of {spec}, others fixed)"
    width, height = {"S2": (11.0, 6.0), "S1": (6.5, 6.5), "R2": (7.0, 7.0)}[str(f)]
    labels: list[int | None] = list(classes) if classes else [None]
    ncols = min(len(labels), 5 if str(f) != "S2" else 2)
    nrows = math.ceil(len(labels) / ncols)
    scale = 1.0 if len(labels) == 1 else 0.55
    figure = Figure(
        figsize=(width * scale * ncols, height * scale * nrows + 0.4),
        layout="constrained" if classes else None,
    )
    axes = figure.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, label in zip(axes, labels, strict=False):
        kind = _draw_grid(ax, model, factor, n, base, extent, label)
        if label is not None:
            ax.set_title(f"class {label}", fontsize="small")
    for ax in axes[len(labels) :]:
        ax.set_axis_off()
    default = f"decoded {kind} on {name}{where}"
    if classes:
        default += ", one panel per class"
        figure.suptitle(title if title is not None else default, fontsize="medium")
    else:
        axes[0].set_title(title if title is not None else default, fontsize="small")
    return figure


def _draw_grid(
    ax: Axes,
    model: Model,
    factor: int,
    n: int | None,
    base: Tensor | None,
    extent: float,
    label: int | None,
) -> str:
    """Draw the decoded grid of factor ``factor`` (``S1``, ``S2`` or ``R2``) on ``ax``; return its kind."""
    f = model.latent.factors[factor]
    if f.is_sphere and f.dim == 2:
        n_lat = n or 6
        grid, lon, lat = latlon_grid(n_lat, 2 * n_lat)
        images = decode_factor_grid(model, factor, grid, base, label)
        place_images(ax, images, np.c_[lon, lat], 360 / (2 * n_lat) * 0.94, 180 / n_lat * 0.94)
        ax.set_xlim(-180, 180)
        ax.set_ylim(-90, 90)
        ax.set_xticks(np.arange(-180, 181, 60))
        ax.set_yticks(np.arange(-90, 91, 30))
        ax.set_xlabel("longitude atan2(z1, z0) (degrees)")
        ax.set_ylabel("latitude asin(z2) (degrees)")
        return "latitude-longitude grid"
    if f.is_sphere:
        k = n or 16
        grid, angle = ring_points(k)
        images = decode_factor_grid(model, factor, grid, base, label)
        # images centred on the unit circle, as wide as the arc between neighbours allows
        size = min(0.6, 2 * math.sin(math.pi / k) * 0.92)
        t = np.linspace(0, 2 * np.pi, 361)
        ax.plot(np.cos(t), np.sin(t), color="0.8", linewidth=0.8, zorder=0)
        place_images(ax, images, np.c_[np.cos(angle), np.sin(angle)], size)
        lim = 1 + size
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_xlabel("z1")
        ax.set_ylabel("z2")
        return "ring"
    k = n or 8
    grid = square_grid(k, extent)
    images = decode_factor_grid(model, factor, grid, base, label)
    step = 2 * extent / max(k - 1, 1)
    place_images(ax, images, grid.numpy(), step * 0.95)
    ax.set_xlim(-extent - step / 2, extent + step / 2)
    ax.set_ylim(-extent - step / 2, extent + step / 2)
    ax.set_aspect("equal")
    ax.set_xlabel("z1")
    ax.set_ylabel("z2")
    return "square grid"
