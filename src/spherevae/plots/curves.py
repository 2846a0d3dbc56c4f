"""Training curves of one run, curves averaged over seeds for several groups (e.g. samplers), and
final results (mean and spread over seeds) against a setting such as the latent dimension."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from ._common import FloatArray

__all__ = ["result_lines", "seed_band_curves", "seed_statistics", "training_curves"]

History = Sequence[Mapping[str, float]]
"""One run's per-epoch rows, e.g. ``[{"epoch": 1, "train_loss": ..., "val_negative_elbo": ...}, ...]``."""


def training_curves(history: History) -> Figure:
    """Train and validation negative ELBO, reconstruction and KL against the epoch (three panels)."""
    figure = Figure(figsize=(12, 3.5))
    axes = figure.subplots(1, 3)
    epochs = [row["epoch"] for row in history]
    panels = [
        ("objective (nats)", "train_loss", "val_negative_elbo", "train loss", "val -ELBO"),
        ("rec NLL (nats)", "train_reconstruction_nll", "val_reconstruction_nll", "train", "val"),
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


def seed_statistics(
    runs: Sequence[History], key: str
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Mean and standard deviation of ``key`` over seeds, per epoch.

    Epochs are matched by their ``"epoch"`` value; an epoch that only some runs reached (early stopping)
    is averaged over those runs, and missing or NaN values are skipped.

    Returns:
        ``epochs``, ``mean``, ``std`` (sample standard deviation, ``ddof = 1``; 0 for a single run) and
        ``count``, each ``(n_epochs,)``.
    """
    table: dict[float, list[float]] = {}
    for run in runs:
        for row in run:
            value = row.get(key, math.nan)
            if not math.isnan(value):
                table.setdefault(float(row["epoch"]), []).append(float(value))
    epochs = np.array(sorted(table), dtype=np.float64)
    values = [np.array(table[e]) for e in epochs]
    mean = np.array([v.mean() for v in values], dtype=np.float64)
    std = np.array([v.std(ddof=1) if len(v) > 1 else 0.0 for v in values], dtype=np.float64)
    count = np.array([len(v) for v in values], dtype=np.float64)
    return epochs, mean, std, count


def seed_band_curves(
    groups: Mapping[str, Sequence[History]],
    keys: Sequence[str] = ("val_negative_elbo", "val_reconstruction_nll", "val_kl"),
    *,
    train_keys: Sequence[str] | None = None,
    title: str = "",
) -> Figure:
    """Mean curve and a one-standard-deviation band over seeds for each group, one panel per key.

    Args:
        groups: group name (e.g. a sampler) to its runs, one history per seed.
        keys: the metrics to draw (solid lines, with bands).
        train_keys: optional metrics drawn dashed in the same panels, one per key (for example the
            training objective beside the validation one), in each group's colour, without band.

    Returns:
        A figure with ``len(keys)`` axes, each holding one line and one band per group (and one
        dashed line per group with ``train_keys``).

    Raises:
        ValueError: if ``train_keys`` does not have one entry per key.
    """
    if train_keys is not None and len(train_keys) != len(keys):
        raise ValueError(
            f"train_keys must have one entry per key ({len(keys)}), got train_keys={list(train_keys)}"
        )
    figure = Figure(figsize=(4.2 * len(keys), 3.5), layout="constrained")
    axes = figure.subplots(1, len(keys), squeeze=False)[0]
    for j, (ax, key) in enumerate(zip(axes, keys, strict=True)):
        for name, runs in groups.items():
            epochs, mean, std, _ = seed_statistics(runs, key)
            (line,) = ax.plot(epochs, mean, label=f"{name} (n={len(runs)}) {key}")
            ax.fill_between(epochs, mean - std, mean + std, color=line.get_color(), alpha=0.2)
            if train_keys is not None:
                t_epochs, t_mean, _, _ = seed_statistics(runs, train_keys[j])
                ax.plot(
                    t_epochs,
                    t_mean,
                    linestyle="--",
                    color=line.get_color(),
                    label=f"{name} {train_keys[j]}",
                )
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        extra = "" if train_keys is None else f"; {train_keys[j]} dashed"
        ax.set_title(f"{key}: mean +- 1 sd over seeds{extra}", fontsize="small")
    axes[0].legend(fontsize="x-small")
    if title:
        figure.suptitle(title)
    return figure


Point = tuple[float, float, float]
"""``(x, mean, standard deviation)`` of one result over seeds (standard deviation 0 for one seed)."""


def result_lines(
    panels: Mapping[str, Mapping[str, Sequence[Point]]],
    *,
    xlabel: str,
    ylabel: str,
    references: Mapping[str, Mapping[str, Sequence[tuple[float, float]]]] | None = None,
    title: str = "",
) -> Figure:
    """Results against a setting: one panel per entry of ``panels``, one line per series in it.

    Each series is a line through its points' means with error bars of one standard deviation over
    seeds. ``references`` (same panel names) adds points drawn as open markers without lines, for
    example published values beside ours.

    Args:
        panels: panel title to series name to ``(x, mean, sd)`` points.
        references: panel title to series name to ``(x, value)`` points.

    Raises:
        ValueError: if ``panels`` is empty or a reference names a panel that is not in ``panels``.
    """
    if not panels:
        raise ValueError("panels must name at least one panel, got {}")
    unknown = sorted(set(references or {}) - set(panels))
    if unknown:
        raise ValueError(f"references name panels that are not in panels: {unknown}")
    figure = Figure(figsize=(5.0 * len(panels), 3.8), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, (panel, series) in zip(axes, panels.items(), strict=True):
        for name, points in series.items():
            ordered = sorted(points)
            x = [p[0] for p in ordered]
            ax.errorbar(
                x,
                [p[1] for p in ordered],
                yerr=[p[2] for p in ordered],
                marker="o",
                capsize=3,
                label=name,
            )
        for name, marks in (references or {}).get(panel, {}).items():
            ax.plot(
                [p[0] for p in marks],
                [p[1] for p in marks],
                linestyle="none",
                marker="D",
                markerfacecolor="none",
                label=name,
            )
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(panel, fontsize="small")
        ax.legend(fontsize="x-small")
    if title:
        figure.suptitle(title)
    return figure
