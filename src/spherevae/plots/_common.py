"""Helpers shared by the figure modules: tensors to arrays, label colours, model access, image layout."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.image import AxesImage
from matplotlib.lines import Line2D
from numpy.typing import NDArray
from torch import Tensor

from ..models import VAE, AutoEncoder, LatentSpec, parse_latent

__all__ = [
    "FloatArray",
    "Model",
    "as_array",
    "decode_images",
    "display_pixels",
    "encode_points",
    "image_canvas",
    "imshow_pixels",
    "is_conditional",
    "label_colours",
    "label_legend",
    "model_device_dtype",
    "place_images",
    "resolve_latent",
    "split_factors",
]

Model = VAE | AutoEncoder
"""A trained (or untrained) model: anything with ``latent``, ``encode``, ``decode`` and ``likelihood``."""

FloatArray = NDArray[np.float64]

# Discrete palette for labels: tab10 then tab20's lighter shades, so that up to 20 classes stay distinct.
_PALETTE = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#aec7e8",
    "#ffbb78",
    "#98df8a",
    "#ff9896",
    "#c5b0d5",
    "#c49c94",
    "#f7b6d2",
    "#c7c7c7",
    "#dbdb8d",
    "#9edae5",
]
_NO_LABEL = "#1f77b4"


def as_array(x: Tensor | NDArray[np.floating] | Sequence[float]) -> FloatArray:
    """A detached float64 NumPy copy of ``x`` (tensors may live on any device)."""
    if isinstance(x, Tensor):
        return np.asarray(x.detach().to("cpu", torch.float64).numpy(), dtype=np.float64)
    return np.asarray(x, dtype=np.float64)


def label_colours(labels: Tensor | NDArray[np.integer] | None, n: int) -> list[str]:
    """One colour per point: ``_PALETTE[label mod 20]``, or a single colour without labels."""
    if labels is None:
        return [_NO_LABEL] * n
    values = np.asarray(
        labels.detach().cpu().numpy() if isinstance(labels, Tensor) else labels
    ).astype(np.int64)
    if values.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {tuple(values.shape)}")
    return [_PALETTE[int(v) % len(_PALETTE)] for v in values]


def label_legend(
    ax: Axes, labels: Tensor | NDArray[np.integer] | None, max_entries: int = 20
) -> None:
    """A legend with one marker per distinct label (nothing without labels or with too many)."""
    if labels is None:
        return
    values = np.unique(
        np.asarray(labels.detach().cpu().numpy() if isinstance(labels, Tensor) else labels)
    )
    if len(values) > max_entries:
        return
    handles = [
        Line2D([], [], linestyle="", marker="o", markersize=4, color=_PALETTE[int(v) % 20])
        for v in values
    ]
    ax.legend(
        handles,
        [str(int(v)) for v in values],
        title="label",
        fontsize="x-small",
        title_fontsize="x-small",
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        frameon=False,
    )


def resolve_latent(latent: LatentSpec | str | None, points: FloatArray) -> LatentSpec:
    """The latent space of ``points`` ``(N, d)``.

    A given name (``"S2"``, ``"S1xR2"``) is parsed and checked against ``d``. Without one, points of
    unit norm (to 1e-3) are read as one sphere ``S^(d-1)``, others as ``R^d``.
    """
    d = points.shape[1]
    if latent is None:
        norms = np.linalg.norm(points, axis=1)
        on_sphere = d >= 2 and len(points) > 0 and bool(np.all(np.abs(norms - 1) < 1e-3))
        return parse_latent(f"S{d - 1}" if on_sphere else f"R{d}")
    spec = parse_latent(latent) if isinstance(latent, str) else latent
    if spec.ambient_dim != d:
        raise ValueError(
            f"latent {spec} has {spec.ambient_dim} coordinates but the points have {d}"
        )
    return spec


def split_factors(points: FloatArray, spec: LatentSpec) -> list[FloatArray]:
    """The coordinates of each factor: ``(N, sum(sizes))`` to ``[(N, sizes[0]), ...]``."""
    edges = np.cumsum((0, *spec.sizes))
    return [points[:, a:b] for a, b in itertools.pairwise(edges)]


def model_device_dtype(model: Model) -> tuple[torch.device, torch.dtype]:
    weight = next(model.parameters())
    return weight.device, weight.dtype


def is_conditional(model: Model) -> bool:
    """Whether ``model`` is a class-conditional VAE (its encoder and decoder take labels)."""
    return isinstance(model, VAE) and model.n_classes > 0


def _labels_for(model: Model, y: Tensor | None, n: int) -> Tensor | None:
    """``y`` checked against the model: a conditional model needs ``(n,)`` labels, others none."""
    if not is_conditional(model):
        if y is not None:
            raise ValueError("labels y are given, but the model is not conditional")
        return None
    if y is None:
        raise ValueError("a conditional model needs the labels y of the points")
    if y.shape != (n,):
        raise ValueError(f"y must have shape ({n},), got {tuple(y.shape)}")
    return y.to(model_device_dtype(model)[0])


@torch.no_grad()
def encode_points(model: Model, images: Tensor, y: Tensor | None = None) -> Tensor:
    """Latent position of each image: the posterior mode (``mu`` on spheres) or the auto-encoder code.

    A conditional VAE needs the images' labels ``y`` ``(N,)``; other models take none.
    """
    device, dtype = model_device_dtype(model)
    x = images.to(device, dtype)
    labels = _labels_for(model, y, len(x))
    q = model.encode(x, labels) if isinstance(model, VAE) else model.encode(x)
    z: Tensor = q if isinstance(q, Tensor) else q.mode
    return z


@torch.no_grad()
def decode_images(model: Model, z: Tensor, y: Tensor | None = None) -> Tensor:
    """Expected images ``E[x|z]``: ``(N, latent_dim) -> (N, C, H, W)`` in ``[0, 1]`` (clamped).

    A conditional VAE needs the labels ``y`` ``(N,)`` to decode with (``E[x|z, y]``).
    """
    device, dtype = model_device_dtype(model)
    labels = _labels_for(model, y, len(z))
    zz = z.to(device, dtype)
    params = model.decode(zz, labels) if isinstance(model, VAE) else model.decode(zz)
    images: Tensor = model.likelihood.mean(params)
    return images.detach().float().cpu().clamp(0, 1)


def display_pixels(images: Tensor) -> FloatArray:
    """Images ``(N, C, H, W)`` in ``[0, 1]`` as :func:`imshow_pixels` draws them.

    ``C = 1``: ``(N, H, W)`` grey levels (drawn with ``gray_r``: ink 1 dark on white paper 0, the
    convention of the digit data sets). Colour: ``(N, H, W, 4)`` RGBA in true colours, ``C = 3`` as
    RGB with alpha 1, ``C = 4`` as RGBA, ``C = 2`` as grey with alpha. Any other ``C`` (an array of
    channels that are no colours): the first channel, as grey levels.
    """
    if images.dim() != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
    x = as_array(images.clamp(0, 1))
    c = x.shape[1]
    if c == 2:
        x = x[:, [0, 0, 0, 1]]
    elif c == 3:
        x = np.concatenate([x, np.ones_like(x[:, :1])], axis=1)
    elif c != 4:
        return x[:, 0]
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def imshow_pixels(ax: Axes, pixels: FloatArray, **kwargs: Any) -> AxesImage:
    """Draw the output of :func:`display_pixels` (or a canvas of it): grey levels with ``gray_r``
    from 0 to 1, RGBA as it is."""
    if pixels.ndim == 2:
        kwargs = {"cmap": "gray_r", "vmin": 0, "vmax": 1, **kwargs}
    return ax.imshow(pixels, **kwargs)


def image_canvas(images: Tensor, ncols: int, gap: int = 1) -> FloatArray:
    """Images ``(N, C, H, W)`` tiled ``ncols`` per row with ``gap`` blank pixels between them.

    Pixels as :func:`display_pixels` gives them: ``(rows, cols)`` grey levels whose gaps are 0 (white
    under ``gray_r``), or ``(rows, cols, 4)`` RGBA whose gaps are transparent (the white paper).
    """
    pixels = display_pixels(images)
    n, h, w = pixels.shape[:3]
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    canvas = np.zeros((nrows * (h + gap) - gap, ncols * (w + gap) - gap, *pixels.shape[3:]))
    for i in range(n):
        r, c = divmod(i, ncols)
        canvas[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = pixels[i]
    return canvas


def place_images(
    ax: Axes, images: Tensor, centres: FloatArray, width: float, height: float | None = None
) -> None:
    """Draw image ``i`` of ``(N, C, H, W)`` centred at ``centres[i] = (x, y)`` in data coordinates
    (grey or colour as :func:`display_pixels` says)."""
    height = width if height is None else height
    pixels = display_pixels(images)
    for (x, y), img in zip(centres, pixels, strict=True):
        imshow_pixels(
            ax,
            img,
            extent=(x - width / 2, x + width / 2, y - height / 2, y + height / 2),
            interpolation="nearest",
        )
