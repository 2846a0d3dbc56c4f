r"""GIF animations: the latent sphere turning, a spiral walk with its decoded image, training epochs.

Frames are drawn by a callback on one :class:`~matplotlib.figure.Figure` and grabbed by matplotlib's
:class:`~matplotlib.animation.PillowWriter` (Pillow ships with matplotlib). The writer picks the image
format from the file name, so it writes into a private temporary ``.gif``; the bytes are then moved
into place with :func:`spherevae.io.atomic_path`, so a reader never sees half a GIF.

Pillow merges consecutive identical frames when it writes a GIF; every animation here changes its
title (or the view) on every frame, so the file holds exactly ``frames`` frames.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import cast

import numpy as np
import torch
from matplotlib.animation import PillowWriter
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from mpl_toolkits.mplot3d.axes3d import Axes3D  # type: ignore[import-untyped]
from numpy.typing import NDArray
from torch import Tensor

from ..io import atomic_path
from ._common import (
    FloatArray,
    Model,
    as_array,
    display_pixels,
    imshow_pixels,
    label_colours,
    label_legend,
    resolve_latent,
    split_factors,
)
from .sphere import draw_circle, draw_sphere

__all__ = [
    "latent_evolution_gif",
    "plane_spiral",
    "rotating_sphere_gif",
    "save_gif",
    "sphere_spiral",
    "spiral_decoding_gif",
]

Labels = Tensor | NDArray[np.integer] | None


def save_gif(
    figure: Figure,
    draw_frame: Callable[[int], None],
    frames: int,
    path: str | os.PathLike[str],
    *,
    fps: int = 8,
    dpi: int = 72,
) -> Path:
    """Call ``draw_frame(i)`` for ``i = 0 .. frames - 1`` and write the frames of ``figure`` as a GIF.

    Returns:
        ``path`` as a :class:`~pathlib.Path`; the file appears atomically, complete.
    """
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got frames={frames}")
    target = Path(path)
    writer = PillowWriter(fps=fps)
    with tempfile.TemporaryDirectory() as tmp_dir:
        scratch = Path(tmp_dir) / "animation.gif"
        with writer.saving(figure, str(scratch), dpi):
            for i in range(frames):
                draw_frame(i)
                writer.grab_frame()
        with atomic_path(target) as tmp, open(scratch, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return target


def sphere_spiral(frames: int, turns: float = 3.0) -> Tensor:
    """A loxodrome-like spiral on ``S^2`` from near the south pole to near the north pole.

    Latitude rises linearly from ``-80`` to ``80`` degrees while the longitude makes ``turns`` turns:
    ``(cos lat cos lon, cos lat sin lon, sin lat)``. Returns ``(frames, 3)`` float64 unit vectors.
    """
    s = np.linspace(0, 1, frames)
    lat = np.radians(-80 + 160 * s)
    lon = 2 * np.pi * turns * s
    pts = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], 1)
    return torch.from_numpy(pts)


def plane_spiral(frames: int, turns: float = 3.0, radius: float = 2.5) -> Tensor:
    """An Archimedean spiral ``r = radius s``, angle ``2 pi turns s``, ``s in [0, 1]``: ``(frames, 2)``."""
    s = np.linspace(0, 1, frames)
    r, a = radius * s, 2 * np.pi * turns * s
    return torch.from_numpy(np.stack([r * np.cos(a), r * np.sin(a)], 1))


def rotating_sphere_gif(
    points: Tensor | FloatArray,
    path: str | os.PathLike[str],
    labels: Labels = None,
    *,
    frames: int = 24,
    elev: float = 20.0,
    fps: int = 8,
    title: str = "latent means on S^2",
) -> Path:
    """Points on ``S^2`` ``(N, 3)`` on a shaded sphere that turns once about the vertical axis."""
    z = as_array(points)
    if z.ndim != 2 or z.shape[1] != 3:
        raise ValueError(f"points must have shape (N, 3), got {z.shape}")
    z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    colours = label_colours(labels, len(z))
    figure = Figure(figsize=(4.5, 4.5))
    ax = cast(Axes3D, figure.add_subplot(projection="3d", computed_zorder=False))

    def draw(i: int) -> None:
        ax.cla()
        azim = -60 + 360 * i / frames
        draw_sphere(ax, z, colours, elev=elev, azim=azim)
        ax.set_title(f"{title} (azimuth {azim % 360:.0f} deg)", fontsize="small")

    return save_gif(figure, draw, frames, path, fps=fps)


def spiral_decoding_gif(
    model: Model,
    path: str | os.PathLike[str],
    *,
    factor: int = 0,
    frames: int = 24,
    turns: float = 3.0,
    fps: int = 8,
    base: Tensor | None = None,
) -> Path:
    """A point walking a spiral in an ``S^2`` or ``R^2`` factor, with its decoded image beside it.

    On ``S^2``: :func:`sphere_spiral` on a 3-D sphere; on ``R^2``: :func:`plane_spiral`. Other factors
    of a product stay at ``base`` (see :func:`spherevae.plots.decoded.decode_factor_grid`).
    """
    from .decoded import decode_factor_grid

    f = model.latent.factors[factor]
    # the moving point takes `frames` steps; the drawn curve is the same spiral, finely sampled
    if f.is_sphere and f.dim == 2:
        path_pts, curve = sphere_spiral(frames, turns), sphere_spiral(400, turns).numpy()
    elif not f.is_sphere and f.dim == 2:
        path_pts, curve = plane_spiral(frames, turns), plane_spiral(400, turns).numpy()
    else:
        raise ValueError(f"spiral animations need an S^2 or R^2 factor, factor {factor} is {f}")
    images = display_pixels(decode_factor_grid(model, factor, path_pts, base))
    xyz = path_pts.numpy()
    figure = Figure(figsize=(8, 4))
    right = figure.add_subplot(1, 2, 2)
    shown = imshow_pixels(right, images[0], interpolation="nearest")
    right.set_axis_off()
    if f.is_sphere:
        left3 = cast(Axes3D, figure.add_subplot(1, 2, 1, projection="3d", computed_zorder=False))
        draw_sphere(left3, np.zeros((0, 3)), [], elev=25.0, resolution=16)
        left3.plot(curve[:, 0], curve[:, 1], curve[:, 2], color="0.45", linewidth=0.8)
        (marker3,) = left3.plot(xyz[:1, 0], xyz[:1, 1], xyz[:1, 2], "o", color="#d62728")
        left: Axes = left3
    else:
        left = figure.add_subplot(1, 2, 1)
        left.plot(curve[:, 0], curve[:, 1], color="0.45", linewidth=0.8)
        (marker2,) = left.plot(xyz[:1, 0], xyz[:1, 1], "o", color="#d62728")
        left.set_aspect("equal")
        left.set_xlabel("z1")
        left.set_ylabel("z2")

    def draw(i: int) -> None:
        if f.is_sphere:
            marker3.set_data_3d(xyz[i : i + 1, 0], xyz[i : i + 1, 1], xyz[i : i + 1, 2])
        else:
            marker2.set_data(xyz[i : i + 1, 0], xyz[i : i + 1, 1])
        shown.set_data(images[i])
        left.set_title(f"spiral on {f}, step {i + 1}/{frames}", fontsize="small")
        right.set_title("decoded E[x|z]", fontsize="small")

    return save_gif(figure, draw, frames, path, fps=fps)


def latent_evolution_gif(
    latents: Tensor,
    path: str | os.PathLike[str],
    labels: Labels = None,
    *,
    latent: str | None = None,
    max_frames: int = 36,
    fps: int = 4,
    epochs: list[int] | None = None,
) -> Path:
    """Latent means of fixed images after each epoch, ``(E, N, d)``, as one frame per epoch.

    This is what training stores in ``RUN_DIR/latents.pt`` (``{"latents": (E, N, d), "labels":
    (N,)}``, with ``train.track_latents > 0``). The first factor of the space is drawn: ``S^2`` on the
    3-D sphere, ``S^1`` on the circle, ``R^2`` on a plane with limits fixed over all epochs, and
    higher-dimensional factors through the principal axes of the last epoch (the same axes for every
    frame, so the motion is the model's and not the projection's). At most ``max_frames`` epochs are
    shown, evenly spaced, the last one included.

    Args:
        epochs: the epoch number of each row of ``latents`` (default ``1 .. E``), for the titles.
    """
    if latents.dim() != 3:
        raise ValueError(f"latents must have shape (E, N, d), got {tuple(latents.shape)}")
    data = as_array(latents)
    n_epochs, n, _ = data.shape
    spec = resolve_latent(latent, data[-1])
    factor = spec.factors[0]
    coords = np.stack([split_factors(frame, spec)[0] for frame in data])  # (E, N, ambient)
    epoch_numbers = epochs if epochs is not None else list(range(1, n_epochs + 1))
    keep = np.unique(np.linspace(0, n_epochs - 1, min(max_frames, n_epochs)).round().astype(int))
    colours = label_colours(labels, n)
    three_d = factor.is_sphere and factor.dim == 2
    if factor.is_sphere and factor.dim > 2:
        # fixed principal axes (of the last epoch) for every frame
        _, _, vh = np.linalg.svd(coords[-1], full_matrices=False)
        proj = coords @ vh[:3].T
        coords = proj / np.maximum(np.linalg.norm(proj, axis=-1, keepdims=True), 1e-12)
        three_d = True
        how = f"{factor} through the top-3 principal axes of the last epoch, renormalised"
    elif not factor.is_sphere and factor.dim != 2:
        centred = coords - coords[-1].mean(0)
        _, _, vh = np.linalg.svd(centred[-1], full_matrices=False)
        coords = centred @ vh[: min(2, factor.dim)].T
        if coords.shape[-1] == 1:
            coords = np.concatenate([coords, np.zeros_like(coords)], -1)
        how = f"{factor} through PCA of the last epoch"
    else:
        how = str(factor)
    figure = Figure(figsize=(5.5, 5))
    ax: Axes = (
        cast(Axes3D, figure.add_subplot(projection="3d", computed_zorder=False))
        if three_d
        else figure.add_subplot()
    )
    lo, hi = coords.min((0, 1)), coords.max((0, 1))
    pad = 0.05 * (hi - lo + 1e-9)

    def draw(k: int) -> None:
        i = int(keep[k])
        ax.cla()
        if three_d:
            draw_sphere(cast(Axes3D, ax), coords[i], colours, azim=-60 + 90 * k / max(len(keep), 1))
        elif factor.is_sphere:
            draw_circle(ax, coords[i], colours)
        else:
            ax.scatter(coords[i, :, 0], coords[i, :, 1], c=colours, s=6, linewidths=0)
            ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
            ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
        label_legend(ax, labels)
        ax.set_title(f"epoch {epoch_numbers[i]} ({how})", fontsize="small")

    return save_gif(figure, draw, len(keep), path, fps=fps)
