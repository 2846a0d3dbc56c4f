r"""Samples of the von Mises-Fisher samplers and of the Power Spherical, against their exact laws.

For a distribution on ``S^{m-1}`` whose density depends on ``x`` only through ``w = mu . x``
(von Mises-Fisher, Power Spherical), the slice ``{x : mu . x = w}`` is a sphere ``S^{m-2}`` of radius
``sqrt(1 - w^2)``, and the surface measure splits as ``dx = (1 - w^2)^{(m-3)/2} dw dS^{m-2}``
(e.g. Mardia and Jupp 2000, eq. 9.3.12). The marginal density of ``w`` is therefore

``p(w) = area(S^{m-2}) (1 - w^2)^{(m-3)/2} p_x(x_w)``,  ``w in (-1, 1)``,

for any point ``x_w`` with ``mu . x_w = w``. :func:`marginal_log_density` evaluates this with the
distributions' own normalised ``log_prob``, so no normaliser is re-derived here:

* vMF: ``p(w) = area(S^{m-2}) / (area(S^{m-1}) 0F1(; m/2; kappa^2/4)) e^{kappa w} (1-w^2)^{(m-3)/2}``,
  equal to ``(kappa/2)^{m/2-1} e^{kappa w} (1-w^2)^{(m-3)/2} / (Gamma(1/2) Gamma((m-1)/2) I_{m/2-1}(kappa))``;
* Power Spherical: ``(1 + w)/2 ~ Beta((m-1)/2 + kappa, (m-1)/2)``.

References:
    A. T. A. Wood (1994), Simulation of the von Mises Fisher distribution, Comm. Stat. Sim. Comp. 23.
    K. V. Mardia, P. E. Jupp (2000), Directional statistics, Wiley.
    T. R. Davidson et al. (2018), Hyperspherical variational auto-encoders, UAI.
    N. De Cao, W. Aziz (2020), The Power Spherical distribution, ICML INNF+ workshop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import numpy as np
import torch
from matplotlib.figure import Figure
from mpl_toolkits.mplot3d.axes3d import Axes3D  # type: ignore[import-untyped]
from torch import Tensor
from torch.distributions import Distribution

from ..distributions import PowerSpherical, VonMisesFisher
from ..distributions.sphere import log_sphere_area
from ._common import FloatArray, as_array
from .sphere import draw_sphere

__all__ = [
    "SAMPLER_NAMES",
    "make_distribution",
    "marginal_log_density",
    "sample_w",
    "sampler_histograms",
    "sampler_spheres",
]

SAMPLER_NAMES: tuple[str, ...] = ("rejection", "inverse_cdf", "mh", "powerspherical")
"""The three von Mises-Fisher samplers and the Power Spherical (which has one exact sampler)."""

_TITLES = {
    "rejection": "vMF, rejection (Wood 1994)",
    "inverse_cdf": "vMF, inverse CDF",
    "mh": "vMF, Metropolis-Hastings",
    "powerspherical": "Power Spherical",
}


def _north(m: int) -> Tensor:
    loc = torch.zeros(m, dtype=torch.float64)
    loc[-1] = 1.0  # the last axis: on S^2 that is the 3-D plot's vertical, so w is the height
    return loc


def make_distribution(name: str, m: int, kappa: float) -> VonMisesFisher | PowerSpherical:
    """The distribution ``name`` (one of :data:`SAMPLER_NAMES`) on ``S^{m-1}`` with ``mu = e_m``, float64."""
    loc = _north(m)
    if name == "powerspherical":
        return PowerSpherical(loc, kappa)
    if name in ("rejection", "inverse_cdf", "mh"):
        return VonMisesFisher(loc, kappa, sampler=name)  # type: ignore[arg-type]
    raise ValueError(f"sampler must be one of {SAMPLER_NAMES}, got {name!r}")


def marginal_log_density(distribution: Distribution, w: Tensor) -> Tensor:
    """``log p(w)`` of ``w = mu . x`` under a rotationally symmetric ``distribution`` on ``S^{m-1}``.

    ``log p(w) = log area(S^{m-2}) + ((m-3)/2) log(1 - w^2) + log p_x(w mu + sqrt(1 - w^2) v)`` for a
    unit ``v`` orthogonal to ``mu`` (module docstring). Normalised on ``(-1, 1)``: at ``m = 2`` it is
    infinite (integrably) at ``w = +-1``, at ``m > 3`` it vanishes there.

    Args:
        distribution: a :class:`~spherevae.distributions.VonMisesFisher` or
            :class:`~spherevae.distributions.PowerSpherical` with ``batch_shape ()``.
        w: any shape, values in ``[-1, 1]``.

    Returns:
        ``w``'s shape, float64.
    """
    if not isinstance(distribution, VonMisesFisher | PowerSpherical):
        raise TypeError(
            f"expected VonMisesFisher or PowerSpherical, got {type(distribution).__name__}"
        )
    if distribution.batch_shape != torch.Size():
        raise ValueError(f"batch_shape must be (), got {tuple(distribution.batch_shape)}")
    mu = distribution.loc.detach().to(torch.float64)
    m = mu.shape[-1]
    # a unit vector orthogonal to mu: Gram-Schmidt on the axis least aligned with mu
    e = torch.zeros_like(mu)
    e[int(mu.abs().argmin())] = 1.0
    v = e - (e @ mu) * mu
    v = v / v.norm()
    w64 = w.detach().to(torch.float64).clamp(-1.0, 1.0)
    one_minus_w2 = (1 - w64) * (1 + w64)  # factored: no cancellation near w = +-1
    x = w64.unsqueeze(-1) * mu + one_minus_w2.sqrt().unsqueeze(-1) * v
    x = x / x.norm(dim=-1, keepdim=True)
    with torch.no_grad():
        log_px = distribution.log_prob(x).to(torch.float64)
    return log_sphere_area(m - 1) + 0.5 * (m - 3) * torch.log(one_minus_w2) + log_px


def sample_w(name: str, m: int, kappa: float, n: int, seed: int = 0) -> Tensor:
    """``n`` draws of ``w = mu . x`` from sampler ``name`` on ``S^{m-1}`` (float64, seeded)."""
    dist = make_distribution(name, m, kappa)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        x = dist.sample((n,))
    return x @ dist.loc


def sampler_spheres(
    kappas: Sequence[float] = (1.0, 10.0, 100.0),
    samplers: Sequence[str] = SAMPLER_NAMES,
    n: int = 400,
    seed: int = 0,
) -> Figure:
    """Samples on ``S^2`` (``mu`` = north pole): one row per sampler, one column per ``kappa``.

    Returns:
        A figure with ``len(samplers) * len(kappas)`` 3-D axes.
    """
    figure = Figure(figsize=(3.0 * len(kappas), 3.0 * len(samplers)))
    for i, name in enumerate(samplers):
        for j, kappa in enumerate(kappas):
            dist = make_distribution(name, 3, kappa)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed + 1000 * i + j)
                x = as_array(dist.sample((n,)))
            ax = cast(
                Axes3D,
                figure.add_subplot(
                    len(samplers),
                    len(kappas),
                    i * len(kappas) + j + 1,
                    projection="3d",
                    computed_zorder=False,
                ),
            )
            draw_sphere(ax, x, ["#d62728"] * n, elev=15.0, size=3.0, resolution=16)
            ax.set_title(f"{_TITLES.get(name, name)}\nkappa = {kappa:g}", fontsize="small")
    figure.subplots_adjust(left=0, right=1, bottom=0, top=0.95, wspace=0, hspace=0.15)
    return figure


def sampler_histograms(
    m: int = 3,
    kappas: Sequence[float] = (1.0, 10.0, 100.0),
    samplers: Sequence[str] = SAMPLER_NAMES,
    n: int = 20000,
    bins: int = 50,
    seed: int = 0,
) -> Figure:
    """Histograms of ``w = mu . x`` against the exact density, one panel per (sampler, ``kappa``).

    The horizontal range of a column is the central range holding all but ``1e-4`` of the exact mass
    (from a cumulative quadrature of the density), so concentrated distributions are not squeezed
    against ``w = 1``.

    Returns:
        A figure with ``len(samplers) * len(kappas)`` axes, each holding one histogram and one line.
    """
    figure = Figure(figsize=(3.4 * len(kappas), 2.4 * len(samplers)), layout="constrained")
    axes = figure.subplots(len(samplers), len(kappas), squeeze=False)
    for j, kappa in enumerate(kappas):
        lo, hi = _central_range(make_distribution("rejection", m, kappa), 1e-4)
        grid = torch.linspace(lo, hi, 400, dtype=torch.float64)
        for i, name in enumerate(samplers):
            dist = make_distribution(name, m, kappa)
            density = marginal_log_density(dist, grid).exp()
            w = as_array(sample_w(name, m, kappa, n, seed=seed + 1000 * i + j))
            ax = axes[i, j]
            ax.hist(w, bins=bins, range=(lo, hi), density=True, color="0.7", label=f"{n} samples")
            ax.plot(
                as_array(grid), as_array(density), color="#d62728", linewidth=1.2, label="exact"
            )
            ax.set_title(f"{_TITLES.get(name, name)}, kappa = {kappa:g}", fontsize="small")
            if i == len(samplers) - 1:
                ax.set_xlabel("w = mu . x")
            if j == 0:
                ax.set_ylabel("density")
            if i == 0 and j == 0:
                ax.legend(fontsize="x-small")
    figure.suptitle(f"Marginal of w = mu . x on S^{m - 1}")
    return figure


def _central_range(dist: Distribution, tail: float) -> tuple[float, float]:
    """``(w_lo, w_hi)`` with exact mass ``tail/2`` below ``w_lo`` and above ``w_hi``.

    The CDF is a trapezoid sum of the density in ``theta = arccos(w)``, where the density
    ``p(cos theta) sin theta`` is bounded at ``m = 2`` too.
    """
    theta = torch.linspace(0, math.pi, 4001, dtype=torch.float64)
    # at m = 2 the density is infinite at w = +-1 and inf * sin(0) is nan: those end points carry no mass
    dens = marginal_log_density(dist, torch.cos(theta)).exp() * torch.sin(theta)
    dens = dens.nan_to_num(nan=0.0, posinf=0.0)
    cdf_from_top = torch.cat(
        [torch.zeros(1, dtype=torch.float64), torch.cumulative_trapezoid(dens, theta)]
    )
    cdf_from_top = cdf_from_top / cdf_from_top[-1]
    theta_np: FloatArray = as_array(theta)
    cdf_np = as_array(cdf_from_top)
    w_hi = math.cos(float(np.interp(tail / 2, cdf_np, theta_np)))
    w_lo = math.cos(float(np.interp(1 - tail / 2, cdf_np, theta_np)))
    return max(-1.0, w_lo), min(1.0, w_hi)
