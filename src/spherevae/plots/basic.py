"""Basic figures written by ``spherevae train``: image grids, training curves and latent means."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from ..io import atomic_path

__all__ = ["image_grid", "latent_scatter", "save_figure", "training_curves"]


def save_figure(figure: Figure, path: str | os.PathLike[str], dpi: int = 100) -> None:
    """Write ``figure`` as a PNG at ``path`` atomically."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")


def image_grid(images: Tensor, *, ncols: int = 10, title: str | None = None) -> Figure:
    """Images ``(N, C, H, W)`` with values in ``[0, 1]`` as a grid, ``ncols`` per row (grey levels)."""
    if images.dim() != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
    n, _, h, w = images.shape
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    canvas = np.zeros((nrows * (h + 1) - 1, ncols * (w + 1) - 1))  # white gaps under gray_r
    pixels = images[:, 0].detach().float().clamp(0, 1).cpu().numpy()
    for i in range(n):
        r, c = divmod(i, ncols)
        canvas[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = pixels[i]
    figure = Figure(figsize=(ncols * 0.6 + 0.4, nrows * 0.6 + (0.6 if title else 0.2)))
    ax = figure.add_subplot()
    ax.imshow(canvas, cmap="gray_r", vmin=0, vmax=1)  # ink (1) dark on white paper (0)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return figure


def training_curves(history: Sequence[Mapping[str, float]]) -> Figure:
    """Train and validation negative ELBO, reconstruction and KL against the epoch (three panels)."""
    figure = Figure(figsize=(12, 3.5))
    axes = figure.subplots(1, 3)
    epochs = [row["epoch"] for row in history]
    panels = [
        ("objective (nats)", "train_loss", "val_loss", "train loss", "val -ELBO"),
        ("-reconstruction (nats)", "train_reconstruction", "val_reconstruction", "train", "val"),
        ("KL (nats)", "train_kl", "val_kl", "train", "val"),
    ]
    for ax, (label, train_key, val_key, train_name, val_name) in zip(axes, panels, strict=True):
        ax.plot(epochs, [row[train_key] for row in history], label=train_name)
        val = [row.get(val_key, math.nan) for row in history]
        if any(not math.isnan(v) for v in val):
            ax.plot(epochs, val, label=val_name, marker=".")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.legend()
    figure.tight_layout()
    return figure


def latent_scatter(points: Tensor, labels: Tensor | None = None, *, title: str = "") -> Figure:
    """Latent points ``(N, d)`` coloured by label.

    ``d = 2``: the plane (on ``S^1`` the unit circle is drawn); ``d = 3``: a 3-D view with the unit
    sphere's wireframe; ``d > 3``: the first two principal components of the points renormalised to
    unit length, and the axes say so.
    """
    z = points.detach().double().cpu()
    colour = labels.cpu().numpy() if labels is not None else None
    on_sphere = bool(torch.allclose(z.norm(dim=-1), torch.ones(len(z), dtype=z.dtype), atol=1e-3))
    figure = Figure(figsize=(5.5, 5))
    if z.shape[1] == 3:
        ax = figure.add_subplot(projection="3d")
        u, v = np.meshgrid(np.linspace(0, 2 * np.pi, 25), np.linspace(0, np.pi, 13))
        ax.plot_wireframe(
            np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v), color="0.85", linewidth=0.4
        )
        scatter = ax.scatter(*z.numpy().T, c=colour, cmap="tab10", s=4, depthshade=False)
        ax.set_box_aspect((1, 1, 1))
    else:
        ax = figure.add_subplot()
        xy = z.numpy()
        xlabel, ylabel = "z1", "z2"
        if z.shape[1] > 2:
            centred = z - z.mean(0)
            _, _, vh = torch.linalg.svd(centred, full_matrices=False)
            xy = (z @ vh[:2].T).numpy()
            if on_sphere:
                xy = xy / np.clip(np.linalg.norm(xy, axis=1, keepdims=True), 1e-12, None)
            xlabel, ylabel = "PC 1", "PC 2"
            title = (title + " " if title else "") + (
                "(PCA of the unit vectors, renormalised)" if on_sphere else "(PCA)"
            )
        if on_sphere:
            t = np.linspace(0, 2 * np.pi, 200)
            ax.plot(np.cos(t), np.sin(t), color="0.8", linewidth=0.8)
        scatter = ax.scatter(xy[:, 0], xy[:, 1], c=colour, cmap="tab10", s=4)
        ax.set_aspect("equal")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    if colour is not None:
        figure.colorbar(scatter, ax=ax, shrink=0.7, label="label")
    ax.set_title(title)
    return figure
