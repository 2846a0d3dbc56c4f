r"""Latent points coloured by label, drawn in the geometry of their space.

* ``S^1``: the unit circle;
* ``S^2``: a shaded 3-D sphere (points on the far side fainter, or hidden), and the Hammer and
  Mollweide equal-area maps (:mod:`spherevae.plots.projections`);
* ``S^d``, ``d > 2``: a projection named in the panel's title: principal axes of the unit vectors to
  ``S^2`` shown on the Hammer map, or t-SNE / UMAP with the cosine distance;
* ``R^1``, ``R^2`` directly, ``R^d`` through PCA;
* a product space: one panel per factor, the coordinates split by ``LatentSpec.sizes``.

All figures are built on a fresh :class:`~matplotlib.figure.Figure` (no pyplot state).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, cast

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LightSource
from matplotlib.figure import Figure
from mpl_toolkits.mplot3d.axes3d import Axes3D  # type: ignore[import-untyped]
from numpy.typing import NDArray
from torch import Tensor

from ..models import LatentFactor, LatentSpec
from ._common import (
    FloatArray,
    as_array,
    label_colours,
    label_legend,
    resolve_latent,
    split_factors,
)
from .projections import (
    MAP_HALF_HEIGHT,
    MAP_HALF_WIDTH,
    embed_2d,
    graticule,
    pca_sphere,
    project_map,
)

__all__ = [
    "MIN_TSNE_POINTS",
    "draw_circle",
    "draw_map",
    "draw_sphere",
    "latent_figure",
    "sphere_views",
    "tsne_figure",
    "view_direction",
]

MIN_TSNE_POINTS = 10
"""The fewest points :func:`tsne_figure` embeds (with fewer, the perplexity is too small to mean much)."""

SphereView = Literal["sphere", "hammer", "mollweide"]
HighDim = Literal["pca", "tsne", "umap"]
Labels = Tensor | NDArray[np.integer] | None

_BACK_ALPHA = (
    0.15  # far-side points: visible enough to show density, faint enough to read as "behind"
)


def view_direction(elev: float, azim: float) -> FloatArray:
    """Unit vector from the centre towards a 3-D axes' camera (matplotlib's ``elev``, ``azim`` in degrees)."""
    e, a = math.radians(elev), math.radians(azim)
    return np.array([math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e)])


def draw_sphere(
    ax: Axes3D,
    points: FloatArray,
    colours: Sequence[str],
    *,
    elev: float = 20.0,
    azim: float = -60.0,
    hide_back: bool = False,
    size: float = 6.0,
    resolution: int = 24,
) -> None:
    """Shaded unit sphere with ``points`` ``(N, 3)`` on it, seen from ``(elev, azim)``.

    Matplotlib's 3-D axes sort whole collections, not single points, by depth, so the front/back split
    is done here: with ``computed_zorder=False`` on the axes the far-side points are drawn first (faint,
    or not at all with ``hide_back``), then the translucent sphere, then the near-side points.
    """
    view = view_direction(elev, azim)
    front = points @ view >= 0
    colour_arr = np.asarray(colours)
    u, v = np.meshgrid(
        np.linspace(0, 2 * np.pi, 2 * resolution + 1), np.linspace(0, np.pi, resolution + 1)
    )
    light = LightSource(azdeg=azim + 60, altdeg=elev + 30)
    if not hide_back and (~front).any():
        ax.scatter(
            *points[~front].T, c=colour_arr[~front], s=size, alpha=_BACK_ALPHA, depthshade=False
        )
    ax.plot_surface(
        np.cos(u) * np.sin(v),
        np.sin(u) * np.sin(v),
        np.cos(v),
        color="0.85",
        alpha=0.35,
        linewidth=0,
        shade=True,
        lightsource=light,
        antialiased=False,
    )
    if front.any():
        ax.scatter(*points[front].T, c=colour_arr[front], s=size, alpha=0.9, depthshade=False)
    ax.view_init(elev=elev, azim=azim)
    ax.set_box_aspect((1, 1, 1))
    lim = (-1.0, 1.0)
    ax.set_xlim(lim)
    ax.set_ylim(lim)
    ax.set_zlim(lim)
    ax.set_axis_off()


def draw_map(
    ax: Axes,
    points: FloatArray,
    colours: Sequence[str],
    kind: Literal["hammer", "mollweide"] = "hammer",
    size: float = 4.0,
) -> None:
    """Points on ``S^2`` ``(N, 3)`` on an equal-area map with a 30-degree graticule."""
    for i, (gx, gy) in enumerate(graticule(kind)):
        ax.plot(gx, gy, color="0.4" if i == 0 else "0.85", linewidth=0.8 if i == 0 else 0.5)
    x, y = project_map(points, kind)
    ax.scatter(x, y, c=list(colours), s=size, alpha=0.8, linewidths=0)
    ax.set_xlim(-MAP_HALF_WIDTH * 1.02, MAP_HALF_WIDTH * 1.02)
    ax.set_ylim(-MAP_HALF_HEIGHT * 1.04, MAP_HALF_HEIGHT * 1.04)
    ax.set_aspect("equal")
    ax.set_axis_off()


def draw_circle(ax: Axes, xy: FloatArray, colours: Sequence[str], size: float = 6.0) -> None:
    """Points ``(N, 2)`` with the unit circle; radial jitter is not added, so overlapping points stack."""
    t = np.linspace(0, 2 * np.pi, 361)
    ax.plot(np.cos(t), np.sin(t), color="0.75", linewidth=0.8)
    ax.scatter(xy[:, 0], xy[:, 1], c=list(colours), s=size, alpha=0.8, linewidths=0)
    ax.set_xlim(-1.15, 1.15)
    ax.set_ylim(-1.15, 1.15)
    ax.set_aspect("equal")


def _draw_plane(ax: Axes, xy: FloatArray, colours: Sequence[str], xlabel: str, ylabel: str) -> None:
    ax.scatter(xy[:, 0], xy[:, 1], c=list(colours), s=5, alpha=0.8, linewidths=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


def _add_panel(figure: Figure, position: tuple[int, int, int], three_d: bool) -> Axes | Axes3D:
    if three_d:
        return cast(Axes3D, figure.add_subplot(*position, projection="3d", computed_zorder=False))
    return figure.add_subplot(*position)


def _panel_kinds(factor: LatentFactor, s2_views: Sequence[SphereView]) -> list[str]:
    if factor.is_sphere and factor.dim == 2:
        return list(s2_views)
    return ["flat"]


def _draw_factor(
    ax: Axes | Axes3D,
    coords: FloatArray,
    factor: LatentFactor,
    colours: Sequence[str],
    *,
    s2_view: SphereView,
    high_dim: HighDim,
    seed: int,
) -> str:
    """Draw one factor's coordinates ``(N, ambient)``; return the panel title (what was drawn, and how)."""
    name = f"S^{factor.dim}" if factor.is_sphere else f"R^{factor.dim}"
    if factor.is_sphere and factor.dim == 1:
        assert not isinstance(ax, Axes3D)
        draw_circle(ax, coords, colours)
        ax.set_xlabel("z1")
        ax.set_ylabel("z2")
        return f"{name} (unit circle)"
    if factor.is_sphere and factor.dim == 2:
        if s2_view == "sphere":
            assert isinstance(ax, Axes3D)
            draw_sphere(ax, coords, colours)
            return f"{name} (3-D, far side faint)"
        assert not isinstance(ax, Axes3D)
        draw_map(ax, coords, colours, s2_view)
        return f"{name}, {s2_view.capitalize()} equal-area map"
    assert not isinstance(ax, Axes3D)
    if factor.is_sphere:
        if high_dim == "pca":
            unit, share = pca_sphere(coords, k=3)
            draw_map(ax, unit, colours, "hammer")
            return (
                f"{name}: top-3 principal axes of the unit vectors\n"
                f"({100 * share.sum():.0f}% of sum |z|^2), renormalised; Hammer map"
            )
        xy = embed_2d(coords, high_dim, seed=seed)
        _draw_plane(ax, xy, colours, f"{high_dim} 1", f"{high_dim} 2")
        return f"{name}: {'t-SNE' if high_dim == 'tsne' else 'UMAP'}, cosine distance"
    if factor.dim == 1:
        # a 1-D factor: values along x, points spread vertically by a fixed jitter so they do not overlap
        jitter = np.random.default_rng(seed).uniform(-1, 1, len(coords))
        _draw_plane(ax, np.c_[coords[:, 0], jitter], colours, "z", "jitter (no meaning)")
        ax.set_yticks([])
        return name
    if factor.dim == 2:
        _draw_plane(ax, coords, colours, "z1", "z2")
        ax.set_aspect("equal", adjustable="datalim")
        return name
    centred = coords - coords.mean(0)
    _, s, vh = np.linalg.svd(centred, full_matrices=False)
    variance = float((s[:2] ** 2).sum() / max(float((s**2).sum()), 1e-300))
    _draw_plane(ax, centred @ vh[:2].T, colours, "PC 1", "PC 2")
    return f"{name}: PCA ({100 * variance:.0f}% of variance)"


def latent_figure(
    points: Tensor | FloatArray,
    labels: Labels = None,
    *,
    latent: LatentSpec | str | None = None,
    s2_view: SphereView | Sequence[SphereView] = "sphere",
    high_dim: HighDim = "pca",
    title: str = "",
    seed: int = 0,
) -> Figure:
    """Latent points ``(N, d)`` coloured by label, one panel per factor of the latent space.

    Args:
        points: ``(N, d)`` latent vectors (e.g. posterior modes), the factors' coordinates concatenated.
        labels: ``(N,)`` integer labels, or ``None``.
        latent: the latent space (``"S2"``, ``"S1xR2"``, a :class:`LatentSpec`); default ``S^(d-1)``
            for unit vectors, else ``R^d``.
        s2_view: how ``S^2`` factors are drawn: ``"sphere"`` (3-D), ``"hammer"`` or ``"mollweide"``,
            or several of them, one panel each (``("sphere", "hammer")``: the 3-D view and, beside
            it, the map that shows the far side too).
        high_dim: projection for spheres ``S^d`` with ``d > 2``: ``"pca"`` (to ``S^2``, Hammer map),
            ``"tsne"`` or ``"umap"`` (cosine distance).
        title: figure title.
        seed: seed of t-SNE/UMAP and of the jitter of 1-D factors.

    Returns:
        A figure with one axes per factor and view (plus none for legends: the legend sits on the
        last panel).
    """
    z = as_array(points)
    if z.ndim != 2:
        raise ValueError(f"points must have shape (N, d), got {z.shape}")
    spec = resolve_latent(latent, z)
    colours = label_colours(labels, len(z))
    views: list[SphereView] = [s2_view] if isinstance(s2_view, str) else list(s2_view)
    unknown = [v for v in views if v not in ("sphere", "hammer", "mollweide")]
    if not views or unknown:
        raise ValueError(
            f"s2_view must be 'sphere', 'hammer', 'mollweide' or several of them, got {s2_view!r}"
        )
    panels = [
        (factor, coords, kind)
        for factor, coords in zip(spec.factors, split_factors(z, spec), strict=True)
        for kind in _panel_kinds(factor, views)
    ]
    n = len(panels)
    figure = Figure(figsize=(4.2 * n + 1.0, 4.4))
    last: Axes | Axes3D | None = None
    for i, (factor, coords, kind) in enumerate(panels):
        ax = _add_panel(figure, (1, n, i + 1), kind == "sphere")
        view = cast(SphereView, kind if kind != "flat" else views[0])
        panel_title = _draw_factor(
            ax, coords, factor, colours, s2_view=view, high_dim=high_dim, seed=seed
        )
        ax.set_title(panel_title, fontsize="small")
        last = ax
    if last is not None:
        label_legend(last, labels)
    if title:
        figure.suptitle(title)
    return figure


def sphere_views(
    points: Tensor | FloatArray,
    labels: Labels = None,
    *,
    title: str = "",
    hide_back: bool = False,
    elev: float = 20.0,
    azim: float = -60.0,
) -> Figure:
    """Points on ``S^2`` ``(N, 3)`` three ways: shaded 3-D sphere, Hammer map, Mollweide map.

    Longitude is ``atan2(z_1, z_0)`` and latitude ``asin(z_2)`` on both maps (north pole ``e_2``).
    """
    z = as_array(points)
    if z.ndim != 2 or z.shape[1] != 3:
        raise ValueError(f"points must have shape (N, 3), got {z.shape}")
    z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    colours = label_colours(labels, len(z))
    figure = Figure(figsize=(14, 4.4))
    ax3 = cast(Axes3D, figure.add_subplot(1, 3, 1, projection="3d", computed_zorder=False))
    draw_sphere(ax3, z, colours, elev=elev, azim=azim, hide_back=hide_back)
    ax3.set_title("S^2 (far side " + ("hidden)" if hide_back else "faint)"), fontsize="small")
    for j, kind in enumerate(("hammer", "mollweide")):
        ax = figure.add_subplot(1, 3, 2 + j)
        draw_map(ax, z, colours, kind)  # type: ignore[arg-type]
        ax.set_title(f"{kind.capitalize()} equal-area map", fontsize="small")
        if j == 1:
            label_legend(ax, labels)
    if title:
        figure.suptitle(title)
    return figure


def tsne_figure(
    points: Tensor | FloatArray,
    labels: Labels = None,
    *,
    latent: LatentSpec | str | None = None,
    seed: int = 0,
    title: str = "",
) -> Figure:
    """t-SNE (van der Maaten and Hinton 2008; scikit-learn's, fixed ``seed``) of all the coordinates
    of latent points ``(N, d)``, coloured by label.

    The distance is the cosine one on a single sphere, the Euclidean one otherwise (on a product of
    spheres, the root of the summed squared chord lengths). The panel title states what was embedded.

    Raises:
        ValueError: fewer than :data:`MIN_TSNE_POINTS` points, or ``d < 3`` (a 2-D latent is drawn as
            it is; t-SNE of it would only distort it).
    """
    z = as_array(points)
    if z.ndim != 2:
        raise ValueError(f"points must have shape (N, d), got {z.shape}")
    spec = resolve_latent(latent, z)
    if z.shape[1] < 3:
        raise ValueError(
            f"t-SNE needs at least 3 coordinates, latent {spec} has {z.shape[1]}: draw it as it is"
        )
    if len(z) < MIN_TSNE_POINTS:
        raise ValueError(f"t-SNE needs at least {MIN_TSNE_POINTS} points, got {len(z)}")
    single_sphere = len(spec.factors) == 1 and spec.factors[0].is_sphere
    metric: Literal["cosine", "euclidean"] = "cosine" if single_sphere else "euclidean"
    xy = embed_2d(z, "tsne", seed=seed, metric=metric)
    figure = Figure(figsize=(5.6, 4.6))
    ax = figure.add_subplot()
    _draw_plane(ax, xy, label_colours(labels, len(z)), "t-SNE 1", "t-SNE 2")
    ax.set_title(
        f"t-SNE of all {z.shape[1]} coordinates of {spec} ({len(z)} points, {metric} distance, "
        f"seed {seed})",
        fontsize="small",
    )
    label_legend(ax, labels)
    if title:
        figure.suptitle(title)
    return figure
