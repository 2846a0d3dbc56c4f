r"""The marginal law of ``w = mu . x`` under a von Mises-Fisher distribution, as the samplers and the
gradient use it.

On ``S^{m-1}`` the density of ``w`` is proportional to ``exp(kappa w) (1 - w^2)^{(m-3)/2}`` on
``[-1, 1]``. In the angle ``theta = arccos w`` it is proportional to
``exp(-kappa t) sin^{m-2} theta`` with ``t = 1 - cos theta = 2 sin^2(theta / 2)``, smooth on
``[0, pi]`` for every ``m >= 2`` (no endpoint singularity, unlike the density of ``w`` at ``m = 2``),
so quadrature is done in ``theta`` (:func:`quadrature`, Gauss-Legendre panels). Every sampler returns
``t = 1 - w`` rather than ``w``: for large ``kappa`` the value ``1 - w`` is tiny and would lose its
digits in ``w``. Beyond :func:`limit_concentration` the law of ``kappa t`` is a gamma law to rounding,
and the samplers draw at that limit and scale (:func:`clamp_concentration`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ...tracing import builds_constants, is_compiling

GL_NODES = 8  # points of the Gauss-Legendre rule of each grid cell


def theta_from_t(t: Tensor) -> Tensor:
    return 2 * torch.asin(torch.sqrt(torch.clamp(t / 2, 0.0, 1.0)))


def angle_terms(theta: Tensor) -> tuple[Tensor, Tensor]:
    """``(1 - cos theta, sin theta)`` from one sine: ``2 h^2`` and ``2 h sqrt(1 - h^2)``, ``h = sin(theta/2)``.

    ``1 - cos theta`` keeps its digits near ``theta = 0``, where ``w = cos theta`` is close to 1.
    """
    h = torch.sin(0.5 * theta)
    return 2 * h * h, 2 * h * torch.sqrt((1 - h * h).clamp(min=0.0))


def log_density(one_minus_cos: Tensor, sin: Tensor, kappa: Tensor, m: int) -> Tensor:
    """Unnormalised ``log p(theta) = -kappa (1 - cos theta) + (m - 2) log sin theta``."""
    log_p = -kappa * one_minus_cos
    return log_p if m == 2 else log_p + (m - 2) * torch.log(sin)


def log_density_theta(theta: Tensor, kappa: Tensor, m: int) -> Tensor:
    return log_density(*angle_terms(theta), kappa, m)


_RULE_CACHE: dict[tuple[int, torch.dtype, torch.device], tuple[Tensor, Tensor]] = {}


def gauss_legendre_rule(k: int, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """``k``-point Gauss-Legendre rule on ``[0, 1]`` (nodes ``(1 + x) / 2``, weights ``w``, which sum to 2).

    Cached per dtype and device: a rule is built (and copied to the device) once, not on every call.
    """
    key = (k, dtype, device)
    if key not in _RULE_CACHE:
        _RULE_CACHE[key] = _build_rule(k, dtype, device)
    return _RULE_CACHE[key]


@builds_constants
def _build_rule(k: int, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    x, w = np.polynomial.legendre.leggauss(k)
    nodes = torch.tensor((1 + x) / 2, dtype=dtype, device=device)
    return nodes, torch.tensor(w, dtype=dtype, device=device)


def quadrature(
    start: Tensor,
    half_length: Tensor,
    k: int,
    kappa: Tensor,
    m: int,
    log_ref: Tensor,
    one_minus_mean: Tensor | None,
) -> Tensor:
    """``int_start^(start + 2 half_length) s(phi) exp(log p(phi) - log_ref) dphi``, ``k``-point Gauss-Legendre.

    Oriented (``half_length < 0`` integrates to the left). ``s = cos phi - A`` when
    ``one_minus_mean = 1 - A`` is given, else 1; ``log_ref`` is on the scale of
    :func:`_reduced_log_density`. The nodes enter only through ``sin^2(phi / 2)``, so the half-angles
    ``phi / 2 = start / 2 + half_length (1 + x) / 2`` are formed directly (one fused op), and
    ``log sin phi`` comes from one logarithm of ``s (1 - s)``. Evaluated in place: two node-sized
    buffers in all, and the weights are applied by one matrix-vector product. On a CPU each fresh
    temporary of that size costs page faults that outweigh the arithmetic.

    Args:
        start, half_length: ``(...)`` ends and oriented half-lengths of the intervals.
        kappa, log_ref, one_minus_mean: broadcastable against ``(..., 1)``.

    Returns:
        ``(...)`` integrals.
    """
    nodes, weights = gauss_legendre_rule(k, start.dtype, start.device)
    half_t = torch.addcmul((0.5 * start).unsqueeze(-1), half_length.unsqueeze(-1), nodes)
    half_t.sin_().square_()  # sin^2(phi / 2) = (1 - cos phi) / 2
    if m > 2:
        log_p = torch.addcmul(half_t, half_t, half_t, value=-1).log_().mul_(0.5 * (m - 2))
        log_p.addcmul_(half_t, kappa, value=-2)
    else:
        log_p = half_t * (-2 * kappa)
    dens = log_p.sub_(log_ref).exp_()
    if one_minus_mean is not None:
        dens.mul_(half_t.mul_(-2).add_(one_minus_mean))  # cos phi - A = (1 - A) - (1 - cos phi)
    return weighted_sum(dens, weights).mul_(half_length)


def weighted_sum(values: Tensor, weights: Tensor) -> Tensor:
    """``values @ weights`` for ``values`` ``(..., k)`` and ``weights`` ``(k,)`` or ``(k, c)``: one matrix
    product in eager mode, a product and a sum under ``torch.compile``, which fuses them into the loop
    that forms ``values`` (a matrix product would be a library call of its own)."""
    if not is_compiling():
        return values @ weights
    if weights.dim() == 1:
        return (values * weights).sum(-1)
    return (values.unsqueeze(-1) * weights).sum(-2)


def log_density_derivatives(
    kappa: Tensor, sin: Tensor, cos: Tensor, m: int
) -> tuple[Tensor, Tensor]:
    """``(-dl/dtheta, -d^2 l/dtheta^2)`` of ``l = log p`` at ``theta``, from ``sin theta`` and ``cos theta``.

    ``-dl/dtheta = kappa sin - (m - 2) cos / sin`` and ``-d^2 l / dtheta^2 = kappa cos + (m - 2) /
    sin^2``; fresh tensors of the broadcast shape.
    """
    neg_slope = kappa * sin
    neg_curvature = kappa * cos
    if m > 2:
        inv_sin = sin.reciprocal()
        neg_slope.addcmul_(cos, inv_sin, value=-(m - 2))
        neg_curvature.addcmul_(inv_sin, inv_sin, value=m - 2)
    return neg_slope, neg_curvature


def decay_length(
    kappa: Tensor, sin: Tensor, cos: Tensor, m: int, side: Tensor, decay: float
) -> Tensor:
    """How far from ``theta`` towards ``side`` (``-1``: towards 0, ``+1``: towards pi) ``log p`` falls by ``decay``.

    With ``l = log p``, ``lambda = -dl/dx`` and ``c = -d^2 l / dx^2`` at ``theta`` (``x`` the distance
    away from it, both clamped at 0), the length is the root ``D = 2K / (lambda + sqrt(lambda^2 +
    2 c K))`` of ``lambda D + c D^2 / 2 = K`` (``K = decay``): the quadratic model of ``l``, which
    decays no faster than ``l`` itself on the stretches where the density is log-concave
    (:func:`log_density_derivatives`). Not finite where ``sin`` underflows or the density is flat (callers bound it by the
    distance to the end of ``[0, pi]``).

    Shapes: ``kappa`` broadcastable against ``sin``, ``cos`` and ``side``; returns their shape.
    """
    neg_slope, c = log_density_derivatives(kappa, sin, cos, m)
    lam = neg_slope.mul_(side).clamp_(min=0.0)
    c.clamp_(min=0.0)
    root = torch.addcmul(c.mul_(2 * decay), lam, lam).sqrt_()
    return root.add_(lam).reciprocal_().mul_(2 * decay)


def limit_concentration(m: int) -> float:
    """The ``kappa`` from which the law of ``t = 1 - mu . x`` on ``S^{m-1}`` is ``G / (kappa + (a - 1) / 2)``,
    ``G ~ Gamma(a)``, ``a = (m - 1) / 2``, to rounding: ``max(1e6, s* sqrt(|a - 1| 2^50))`` with ``s* = a +
    12 sqrt(a) + 40``.

    In ``s = kappa t`` the density is proportional to ``exp(-s) s^(a-1) (1 - s / (2 kappa))^(a-1)`` on ``[0,
    2 kappa]``, and ``(a - 1) log(1 - s / (2 kappa)) = -(a - 1) (s / (2 kappa) + s^2 / (8 kappa^2) + ...)``:
    the first term only changes the rate of the gamma law to ``1 + (a - 1) / (2 kappa)``, the second moves
    the density by at most ``|a - 1| s*^2 / (8 kappa^2) <= 2^-53`` up to ``s*``, beyond every quantile a
    draw can reach (``u <= 1 - 2^-53``), and the mass beyond ``2 kappa`` is ``e^(-2 kappa)``. From this
    ``kappa`` on the samplers draw at the limit and scale ``t`` (:func:`clamp_concentration`), which keeps
    their arithmetic where it is exact: Wood's envelope constants overflow beyond ``kappa`` of about
    ``1e154``, and the inverse CDF, which works in the angle, keeps ``1e-10`` of ``t`` up to ``kappa`` of
    about ``1e12`` only (the limit is at most ``6.2e11`` for ``m <= 1024``, ``3.8e13`` at ``m = 20000``).
    """
    a = (m - 1) / 2
    s_max = a + 12 * math.sqrt(a) + 40
    return max(1e6, s_max * math.sqrt(abs(a - 1) * 2.0**50))


def clamp_concentration(kappa: Tensor, m: int) -> tuple[Tensor, Tensor]:
    """``(kappa_draw, scale)``: ``kappa`` clamped to the limit ``K`` of :func:`limit_concentration`, and
    ``(K + c) / (max(kappa, K) + c)``, ``c = (m - 3) / 4`` (exactly 1 within the limit, 0 at ``kappa = inf``,
    NaN at NaN): draws of ``t`` at ``kappa_draw`` times ``scale`` are draws at ``kappa``, to rounding."""
    limit = limit_concentration(m)
    shift = (m - 3) / 4
    return kappa.clamp(max=limit), torch.div(limit + shift, kappa.clamp(min=limit).add_(shift))
