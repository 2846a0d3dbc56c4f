r"""Animations: the latent sphere turning, walks through the latent space with the decoded image
beside the moving point (a spiral, the geodesic between two test images), training epochs.

Frames are drawn by a callback on one :class:`~matplotlib.figure.Figure` and rendered by the Agg
canvas. A ``.gif`` is written by Pillow (which ships with matplotlib); an ``.mp4``
(H.264) by the ffmpeg binary of the optional ``imageio-ffmpeg`` package
(``pip install 'spherevae[video]'``). Both are written into a private temporary file and then moved
into place with :func:`spherevae.io.atomic_path`, so a reader never sees half a file.

Pillow merges consecutive identical frames when it writes a GIF; every animation here changes its
title (or the view) on every frame, so the file holds exactly ``frames`` frames.

A walk is drawn over what the model's prior says about the walked factor: on ``R^2`` the standard
normal density shaded on the plane, on ``S^2`` (a uniform prior) the shaded sphere; the encoded test
points, when given, are drawn on it in their label colours.
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import cast

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from mpl_toolkits.mplot3d.axes3d import Axes3D  # type: ignore[import-untyped]
from numpy.typing import NDArray
from PIL import Image
from torch import Tensor

from ..io import atomic_path
from ..models import LatentFactor
from ._common import (
    FloatArray,
    Model,
    as_array,
    decode_images,
    encode_points,
    image_canvas,
    imshow_pixels,
    is_conditional,
    label_colours,
    label_legend,
    resolve_latent,
    split_factors,
)
from .sphere import draw_circle, draw_sphere, view_direction

__all__ = [
    "ANIMATION_FORMATS",
    "VIDEO_EXTRA_MESSAGE",
    "interpolation_animation",
    "latent_evolution_gif",
    "latent_walk_animation",
    "plane_spiral",
    "rotating_sphere_gif",
    "save_animation",
    "save_gif",
    "sphere_spiral",
    "spiral_decoding_gif",
    "video_available",
]

ANIMATION_FORMATS = ("gif", "mp4")
"""The file formats of the animations, by file suffix."""

VIDEO_EXTRA_MESSAGE = (
    "MP4 output needs the video extra (the imageio-ffmpeg package): pip install 'spherevae[video]'"
)

# H.264 in yuv420p codes the picture in 16 x 16 blocks: frames are padded (white) to a multiple
_MACRO_BLOCK = 16

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

    The frames share one palette of at most 256 colours and are not dithered: the flat areas of a
    figure stay flat, and each frame stores only what changed, so the file stays small.

    Returns:
        ``path`` as a :class:`~pathlib.Path`; the file appears atomically, complete.
    """
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got frames={frames}")
    target = Path(path)
    rendered = list(_rendered_frames(figure, draw_frame, frames, dpi))
    # one palette for every frame, from the first, middle and last: Pillow then stores only what
    # changed from one frame to the next (the moving point, the title, the decoded image)
    sample = np.concatenate([rendered[0], rendered[len(rendered) // 2], rendered[-1]])
    palette = _gif_palette(sample)
    images = [
        Image.fromarray(rgb).quantize(palette=palette, dither=Image.Dither.NONE) for rgb in rendered
    ]
    with atomic_path(target) as tmp:
        images[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=round(1000 / fps),
            loop=0,
        )
    return target


def _gif_palette(sample: NDArray[np.uint8]) -> Image.Image:
    """A 256-colour palette image for the pixels ``sample``: white, black and the label colours
    exactly (so that the paper stays white and the legend matches the points), 30 greys, the rest
    by median cut of ``sample``."""
    exact = ["#ffffff", "#000000", *dict.fromkeys(label_colours(np.arange(20), 20))]
    fixed = [round(255 * c) for colour in exact for c in to_rgb(colour)]
    # a ramp of greys: decoded grey images of later frames find a grey, not a label colour
    greys = [level for v in range(4, 240, 8) for level in (v, v, v)]  # none close to white
    fixed += greys
    free = 256 - len(fixed) // 3
    cut = Image.fromarray(sample).quantize(
        free, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
    )
    palette = Image.new("P", (1, 1))
    palette.putpalette(fixed + (cut.getpalette() or [])[: 3 * free])
    return palette


def _rendered_frames(
    figure: Figure, draw_frame: Callable[[int], None], frames: int, dpi: int
) -> Iterator[NDArray[np.uint8]]:
    """``(H, W, 3)`` RGB pixels of ``figure`` at ``dpi`` after each ``draw_frame(i)``."""
    canvas = FigureCanvasAgg(figure)
    figure.set_dpi(dpi)
    for i in range(frames):
        draw_frame(i)
        canvas.draw()
        yield np.array(canvas.buffer_rgba())[..., :3]


def video_available() -> bool:
    """Whether MP4 animations can be written (the optional ``imageio-ffmpeg`` package is installed)."""
    return importlib.util.find_spec("imageio_ffmpeg") is not None


def save_animation(
    figure: Figure,
    draw_frame: Callable[[int], None],
    frames: int,
    path: str | os.PathLike[str],
    *,
    fps: int = 8,
    dpi: int = 72,
) -> Path:
    """Like :func:`save_gif`, in the format of ``path``'s suffix: ``.gif`` or ``.mp4`` (H.264).

    Raises:
        ValueError: another suffix, or ``frames < 1``.
        ImportError: ``.mp4`` without the optional ``imageio-ffmpeg`` package (the message names
            the ``video`` extra).
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".gif":
        return save_gif(figure, draw_frame, frames, path, fps=fps, dpi=dpi)
    if suffix != ".mp4":
        raise ValueError(f"animations are written as .gif or .mp4 files, got {path}")
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got frames={frames}")
    if not video_available():
        raise ImportError(VIDEO_EXTRA_MESSAGE)
    import imageio_ffmpeg

    target = Path(path)
    with tempfile.TemporaryDirectory() as tmp_dir:
        scratch = Path(tmp_dir) / "animation.mp4"
        writer = None
        try:
            for rgb in _rendered_frames(figure, draw_frame, frames, dpi):
                padded = _padded(rgb)
                if writer is None:
                    writer = imageio_ffmpeg.write_frames(
                        str(scratch),
                        (padded.shape[1], padded.shape[0]),
                        fps=fps,
                        macro_block_size=_MACRO_BLOCK,
                        ffmpeg_log_level="error",
                    )
                    writer.send(None)  # starts ffmpeg
                writer.send(np.ascontiguousarray(padded).tobytes())
        finally:
            if writer is not None:
                writer.close()
        with atomic_path(target) as tmp, open(scratch, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return target


def _padded(rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """``(H, W, 3)`` padded with white to a multiple of the codec's block size on both sides."""
    h, w = rgb.shape[:2]
    out = np.full(
        (-(-h // _MACRO_BLOCK) * _MACRO_BLOCK, -(-w // _MACRO_BLOCK) * _MACRO_BLOCK, 3),
        255,
        dtype=np.uint8,
    )
    out[:h, :w] = rgb
    return out


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

    return save_animation(figure, draw, frames, path, fps=fps)


def _walked_factor(model: Model, factor: int, what: str) -> LatentFactor:
    """Factor ``factor`` of the model's latent space, checked to be ``S^2`` or ``R^2``."""
    factors = model.latent.factors
    if not 0 <= factor < len(factors):
        raise ValueError(f"factor must be in 0..{len(factors) - 1}, got factor={factor}")
    f = factors[factor]
    if f.dim != 2:
        raise ValueError(f"{what} need an S^2 or R^2 factor, factor {factor} is {f}")
    return f


def spiral_decoding_gif(
    model: Model,
    path: str | os.PathLike[str],
    *,
    factor: int = 0,
    frames: int = 72,
    turns: float = 3.0,
    fps: int = 12,
    base: Tensor | None = None,
    points: Tensor | None = None,
    labels: Labels = None,
    classes: Sequence[int] | None = None,
) -> Path:
    """A point walking a spiral in an ``S^2`` or ``R^2`` factor, with its decoded image beside it.

    On ``S^2``: :func:`sphere_spiral` on the shaded sphere; on ``R^2``: :func:`plane_spiral` over the
    prior's density. Other factors of a product stay at ``base`` (see
    :func:`spherevae.plots.decoded.place_in_factor`). ``points``, ``labels`` and ``classes`` are
    those of :func:`latent_walk_animation`; the format follows ``path``'s suffix (``.gif``,
    ``.mp4``).
    """
    from .decoded import place_in_factor

    f = _walked_factor(model, factor, "spiral animations")
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got frames={frames}")
    if f.is_sphere:
        steps, curve = sphere_spiral(frames, turns), sphere_spiral(400, turns)
    else:
        steps, curve = plane_spiral(frames, turns), plane_spiral(400, turns)
    return latent_walk_animation(
        model,
        place_in_factor(model, factor, steps, base),
        path,
        factor=factor,
        curve=curve,
        points=points,
        labels=labels,
        classes=classes,
        title=f"spiral on {f}",
        fps=fps,
    )


def interpolation_animation(
    model: Model,
    x_a: Tensor,
    x_b: Tensor,
    path: str | os.PathLike[str],
    *,
    frames: int = 60,
    factor: int = 0,
    y: Tensor | None = None,
    points: Tensor | None = None,
    labels: Labels = None,
    classes: Sequence[int] | None = None,
    fps: int = 12,
) -> Path:
    """The geodesic between the encodings of two images, walked in ``frames`` steps, with the decoded
    image beside the moving point (drawn in factor ``factor``, ``S^2`` or ``R^2``).

    Args:
        x_a: the start image ``(C, H, W)``.
        x_b: the end image ``(C, H, W)``.
        y: a conditional model's labels of ``x_a`` and ``x_b``, ``(2,)``: each is encoded with its
            own; the path is then decoded with every class of ``classes``.
        points: encoded test points ``(N, latent_dim)`` drawn on the prior (see
            :func:`latent_walk_animation`).
        labels: ``(N,)`` labels of ``points``.
        classes: a conditional model's classes, the path decoded with each of them.
    """
    from .interpolation import geodesic

    _walked_factor(model, factor, "interpolation animations")
    if frames < 2:
        raise ValueError(f"frames must be >= 2 (the two ends), got frames={frames}")
    ends = torch.stack([x_a, x_b])
    z = encode_points(model, ends, y).double().cpu()
    z_path = geodesic(z[0], z[1], torch.linspace(0, 1, frames, dtype=torch.float64), model.latent)
    curve = geodesic(z[0], z[1], torch.linspace(0, 1, 400, dtype=torch.float64), model.latent)
    start = sum(model.latent.sizes[:factor])
    return latent_walk_animation(
        model,
        z_path,
        path,
        factor=factor,
        curve=curve[:, start : start + model.latent.sizes[factor]],
        points=points,
        labels=labels,
        classes=classes,
        title=f"geodesic between two test images on {model.latent}",
        fps=fps,
    )


def latent_walk_animation(
    model: Model,
    z_path: Tensor,
    path: str | os.PathLike[str],
    *,
    factor: int = 0,
    curve: Tensor | None = None,
    points: Tensor | None = None,
    labels: Labels = None,
    classes: Sequence[int] | None = None,
    title: str = "walk",
    fps: int = 12,
    dpi: int = 72,
) -> Path:
    """One frame per point of ``z_path`` ``(T, latent_dim)``: the point in its ``S^2`` or ``R^2``
    factor (left) and the image decoded there (right).

    The left panel shows the walked factor over its prior: the shaded sphere for ``S^2`` (points on
    the far side faint, the moving point hollow there), the standard normal density shaded on the
    plane for ``R^2``; ``curve`` (default: ``z_path``'s factor) is the path drawn in grey.

    Args:
        points: encoded test points ``(N, latent_dim)`` drawn on the prior in their label colours.
        labels: ``(N,)`` labels of ``points``.
        classes: a conditional model's classes: the right panel shows the point decoded with each
            of them (required for a conditional model, refused for others).

    Returns:
        ``path``, a ``.gif`` or ``.mp4`` (see :func:`save_animation`) of ``T`` frames.
    """
    spec = model.latent
    f = _walked_factor(model, factor, "latent walks")
    if is_conditional(model) and not classes:
        raise ValueError("a conditional model is decoded per class: give classes")
    if classes is not None and not is_conditional(model):
        raise ValueError("classes are decoded by a conditional model; this one is not")
    if z_path.dim() != 2 or z_path.shape[1] != spec.ambient_dim or len(z_path) < 1:
        raise ValueError(
            f"z_path must have shape (T, {spec.ambient_dim}) with T >= 1, got {tuple(z_path.shape)}"
        )
    frames = len(z_path)
    start, size = sum(spec.sizes[:factor]), spec.sizes[factor]
    xyz = as_array(z_path)[:, start : start + size]
    line = xyz if curve is None else as_array(curve)
    # the decoded images, all at once: (T, k, C, H, W) with k classes (1 without)
    k = len(classes) if classes else 1
    z_all = z_path.repeat_interleave(k, dim=0)
    y = torch.tensor(list(classes), dtype=torch.long).repeat(frames) if classes else None
    decoded = decode_images(model, z_all, y)
    decoded = decoded.reshape(frames, k, *decoded.shape[1:])
    ncols = min(k, 5)
    pictures = [image_canvas(decoded[i], ncols=ncols) for i in range(frames)]

    figure = Figure(figsize=(9.0, 4.5))
    right = figure.add_subplot(1, 2, 2)
    shown = imshow_pixels(right, pictures[0], interpolation="nearest")
    right.set_axis_off()
    what = (
        "decoded E[x|z]"
        if not classes
        else (f"decoded E[x|z, y], one per class ({', '.join(map(str, classes))})")
    )
    right.set_title(what, fontsize="small")
    background = None if points is None else as_array(points)[:, start : start + size]
    colours = label_colours(labels, 0 if background is None else len(background))
    if f.is_sphere:
        left3 = cast(Axes3D, figure.add_subplot(1, 2, 1, projection="3d", computed_zorder=False))
        elev, azim = 25.0, -60.0
        view = view_direction(elev, azim)
        shown_pts = np.zeros((0, 3)) if background is None else background
        shown_pts = shown_pts / np.maximum(np.linalg.norm(shown_pts, axis=1, keepdims=True), 1e-12)
        draw_sphere(left3, shown_pts, colours, elev=elev, azim=azim, size=4.0, resolution=20)
        for side, style in ((False, ":"), (True, "-")):
            seg = np.where(((line @ view) >= 0)[:, None] == side, line, np.nan)
            left3.plot(seg[:, 0], seg[:, 1], seg[:, 2], style, color="0.3", linewidth=0.9)
        (marker3,) = left3.plot(xyz[:1, 0], xyz[:1, 1], xyz[:1, 2], "o", color="#d62728")
        front = xyz @ view >= 0
        left: Axes = left3
    else:
        left = figure.add_subplot(1, 2, 1)
        reach = max(3.0, 1.05 * float(np.abs(line).max()))
        ticks = np.linspace(-reach, reach, 161)
        gx, gy = np.meshgrid(ticks, ticks)
        density = np.exp(-(gx**2 + gy**2) / 2) / (2 * math.pi)
        # filled bands, not a smooth ramp: GIF frames of flat colour stay small (no dithering)
        image = left.contourf(gx, gy, density, levels=np.linspace(0, 0.16, 9), cmap="Blues")
        figure.colorbar(image, ax=left, fraction=0.046, pad=0.02, label="prior density N(0, I)")
        if background is not None:
            left.scatter(
                background[:, 0], background[:, 1], c=colours, s=4, alpha=0.7, linewidths=0
            )
        left.plot(line[:, 0], line[:, 1], color="0.3", linewidth=0.9)
        (marker2,) = left.plot(xyz[:1, 0], xyz[:1, 1], "o", color="#d62728")
        left.set_xlim(-reach, reach)
        left.set_ylim(-reach, reach)
        left.set_aspect("equal")
        left.set_xlabel("z1")
        left.set_ylabel("z2")
    label_legend(right, labels)

    def draw(i: int) -> None:
        if f.is_sphere:
            marker3.set_data_3d(xyz[i : i + 1, 0], xyz[i : i + 1, 1], xyz[i : i + 1, 2])
            # behind the sphere the point is drawn hollow: it is seen through the surface
            marker3.set_markerfacecolor("#d62728" if front[i] else "none")
        else:
            marker2.set_data(xyz[i : i + 1, 0], xyz[i : i + 1, 1])
        shown.set_data(pictures[i])
        left.set_title(f"{title}, step {i + 1}/{frames}", fontsize="small")

    return save_animation(figure, draw, frames, path, fps=fps, dpi=dpi)


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

    return save_animation(figure, draw, len(keep), path, fps=fps)
