"""Basic figures written by ``spherevae train``: image grids, training curves and latent means."""

from __future__ import annotations

import os

from matplotlib.figure import Figure
from torch import Tensor

from ..io import atomic_path
from ..models import LatentSpec
from ._common import image_canvas, imshow_pixels
from .curves import training_curves
from .sphere import latent_figure

__all__ = ["image_grid", "latent_scatter", "save_figure", "training_curves"]


def save_figure(figure: Figure, path: str | os.PathLike[str], dpi: int = 100) -> None:
    """Write ``figure`` as a PNG at ``path`` atomically."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")


def image_grid(images: Tensor, *, ncols: int = 10, title: str | None = None) -> Figure:
    """Images ``(N, C, H, W)`` with values in ``[0, 1]`` as a grid, ``ncols`` per row: grey levels
    for one channel, true colours for RGB, RGBA and grey with alpha (see
    :func:`~spherevae.plots._common.display_pixels`)."""
    if images.dim() != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
    n = images.shape[0]
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    canvas = image_canvas(images, ncols)  # white gaps
    figure = Figure(figsize=(ncols * 0.6 + 0.4, nrows * 0.6 + (0.6 if title else 0.2)))
    ax = figure.add_subplot()
    imshow_pixels(ax, canvas)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return figure


def latent_scatter(
    points: Tensor,
    labels: Tensor | None = None,
    *,
    title: str = "",
    latent: LatentSpec | str | None = None,
) -> Figure:
    """Latent points ``(N, d)`` coloured by label (see :func:`spherevae.plots.sphere.latent_figure`).

    Without ``latent``, unit vectors are drawn as one sphere ``S^(d-1)`` (``S^1`` a circle, ``S^2`` a
    shaded 3-D sphere, higher spheres through the principal axes of the unit vectors onto a Hammer map,
    which the title says) and other points as ``R^d``; with ``latent`` (e.g. ``"S2xR2"``) each factor
    gets its own panel.
    """
    return latent_figure(points, labels, latent=latent, title=title)
