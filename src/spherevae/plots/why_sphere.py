r"""Why a sphere: in high dimension a Gaussian's mass lies on a thin shell, and the unit ball is empty.

* The volume of the unit ball in ``R^n`` is ``V_n = pi^{n/2} / Gamma(n/2 + 1)`` (2, pi, 4 pi / 3 for
  ``n = 1, 2, 3``); it peaks at ``n = 5`` and tends to 0 faster than exponentially.
* The norm ``r = |x|`` of ``x ~ N(0, I_n)`` has the chi density
  ``p(r) = r^{n-1} e^{-r^2/2} / (2^{n/2-1} Gamma(n/2))``, mean close to ``sqrt(n - 1/2)`` and standard
  deviation close to ``1/sqrt 2`` whatever ``n``: the samples sit on a shell of radius about
  ``sqrt n`` whose relative thickness shrinks like ``1/sqrt(2n)``. A standard Gaussian prior in high
  dimension is thus nearly a uniform distribution on a sphere of radius ``sqrt n``, while its density
  peaks at the origin where no sample ever falls; Davidson et al. (2018) take the sphere itself as the
  latent space (the "soap bubble" argument; see also Vershynin 2018, ch. 3.1).

References:
    T. R. Davidson et al. (2018), Hyperspherical variational auto-encoders, UAI.
    R. Vershynin (2018), High-dimensional probability, Cambridge University Press.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from numpy.typing import NDArray

from ._common import FloatArray, as_array

__all__ = ["chi_log_density", "gaussian_norms", "unit_ball_volume", "why_sphere"]


def unit_ball_volume(n: int | float | NDArray[np.integer] | NDArray[np.floating]) -> FloatArray:
    """``V_n = pi^{n/2} / Gamma(n/2 + 1)``, the volume of the unit ball in ``R^n`` (any ``n >= 0``).

    Examples:
        >>> [round(float(v), 6) for v in unit_ball_volume([1, 2, 3, 20])]  # 2, pi, 4 pi / 3, ...
        [2.0, 3.141593, 4.18879, 0.025807]
    """
    n_arr = np.asarray(n, dtype=np.float64)
    lgamma = np.vectorize(math.lgamma, otypes=[np.float64])
    out: FloatArray = np.exp(0.5 * n_arr * math.log(math.pi) - lgamma(0.5 * n_arr + 1))
    return out


def chi_log_density(r: FloatArray, n: int) -> FloatArray:
    """``log p(r)`` of the chi distribution with ``n`` degrees of freedom, the law of ``|N(0, I_n)|``."""
    r = np.asarray(r, dtype=np.float64)
    with np.errstate(divide="ignore"):
        # n = 1: r^0 = 1 also at r = 0 (0 * log 0 would be nan)
        power = (n - 1) * np.log(r) if n > 1 else np.zeros_like(r)
    out: FloatArray = power - r**2 / 2 - (n / 2 - 1) * math.log(2) - math.lgamma(n / 2)
    return out


def _norm_panel(ax: Axes, d: int, n: int, generator: torch.Generator) -> None:
    """Histogram of ``n`` norms of ``N(0, I_d)`` draws, the chi density, and ``sqrt d`` (dashed)."""
    r = as_array(torch.randn(n, d, generator=generator, dtype=torch.float64).norm(dim=1))
    right = float(r.max()) + 0.3
    # from 0: the empty stretch between the origin (the density's peak) and the shell is the point
    ax.hist(r, bins=50, range=(0.0, right), density=True, color="0.7", label=f"{n} samples")
    grid = np.linspace(0.0, right, 400)
    ax.plot(grid, np.exp(chi_log_density(grid, d)), color="#1f77b4", label="chi density")
    ax.axvline(math.sqrt(d), color="#d62728", linestyle="--", label="sqrt(d)")
    ax.set_xlim(0.0, right)
    ax.set_xlabel("|x|")


def gaussian_norms(dims: Sequence[int] = (2, 10, 20, 100), n: int = 5000, seed: int = 0) -> Figure:
    """Histograms of ``|x|``, ``x ~ N(0, I_d)``, one panel per ``d``, with ``sqrt d`` and the chi density.

    Returns:
        A figure with ``len(dims)`` axes, each with one histogram, the exact chi density and a
        vertical line at ``sqrt d``.
    """
    generator = torch.Generator().manual_seed(seed)
    figure = Figure(figsize=(3.2 * len(dims), 3.0), layout="constrained")
    axes = figure.subplots(1, len(dims), squeeze=False)[0]
    for ax, d in zip(axes, dims, strict=True):
        _norm_panel(ax, d, n, generator)
        ax.set_title(f"d = {d}", fontsize="small")
    axes[0].set_ylabel("density")
    axes[0].legend(fontsize="x-small")
    figure.suptitle("Norms of standard Gaussian samples concentrate at sqrt(d)")
    return figure


def why_sphere(
    max_dim: int = 30, dims: Sequence[int] = (2, 10, 20, 100), n: int = 5000, seed: int = 0
) -> Figure:
    """Volume of the unit ball against ``n = 1 .. max_dim`` and the Gaussian norm histograms, one figure.

    Returns:
        A figure with ``1 + len(dims)`` axes: the volume (log scale) and one histogram per ``d``.
    """
    figure = Figure(figsize=(3.0 * (len(dims) + 1) + 0.5, 3.2), layout="constrained")
    axes = figure.subplots(1, len(dims) + 1, squeeze=False)[0]
    dims_n = np.arange(1, max_dim + 1)
    ax = axes[0]
    ax.semilogy(dims_n, unit_ball_volume(dims_n), marker=".", color="#1f77b4")
    peak = int(dims_n[np.argmax(unit_ball_volume(dims_n))])
    ax.axvline(peak, color="0.7", linestyle=":", label=f"peak at n = {peak}")
    ax.set_xlabel("dimension n")
    ax.set_ylabel("volume of the unit n-ball")
    ax.set_title("V_n = pi^(n/2) / Gamma(n/2 + 1)", fontsize="small")
    ax.legend(fontsize="x-small")
    generator = torch.Generator().manual_seed(seed)
    for ax, d in zip(axes[1:], dims, strict=True):
        _norm_panel(ax, d, n, generator)
        ax.set_title(f"|x|, x ~ N(0, I_{d}); dashed: sqrt({d})", fontsize="small")
    figure.suptitle("Why a sphere: Gaussian samples in high dimension lie on a shell")
    return figure
