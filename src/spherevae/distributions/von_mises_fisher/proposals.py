r"""The two proposals for ``t = 1 - w`` shared by the rejection sampler and Metropolis-Hastings.

- Wood (1994): ``t = 2 b e / (1 - (1 - b) e)``, ``e ~ Beta((m-1)/2, (m-1)/2)`` (drawn as ``e = (1 + Z /
  sqrt(Z^2 + 2 G)) / 2`` from ``G ~ Gamma((m-1)/2)`` and ``Z ~ N(0, 1)``), with the cancellation-free
  envelope constant ``b = (m-1) / (2 kappa + sqrt(4 kappa^2 + (m-1)^2))`` and ``x0 = (1 - b) / (1 +
  b)``; the log acceptance ratio is ``kappa (w - x0) + (m-1) log((1 - x0 w) / (1 - x0^2))``
  (:func:`wood_log_ratio`).
- The gamma proposal, from ``m = 4`` on and at large ``kappa`` (:func:`gamma_threshold`): ``t = G /
  kappa``, ``G ~ Gamma((m-1)/2)``, accepted with probability ``(1 - t/2)^((m-3)/2)``
  (:func:`gamma_log_ratio`), whose acceptance rate tends to 1 while Wood's stays near 0.7.

References:
    A. T. A. Wood (1994), Simulation of the von Mises Fisher distribution, Comm. Statist. Simul. 23.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

# the gamma proposal takes over from Wood's at kappa = a (a - 1) / log 2 + this * a (gamma_threshold)
_GAMMA_SWITCH_SLOPE = 1.27


def wood_constants(kappa: Tensor, m: int) -> tuple[Tensor, Tensor, Tensor]:
    """Wood's ``b``, ``x0`` and ``1 - x0``, all without cancellation."""
    b = (m - 1) / (2 * kappa + torch.sqrt(4 * kappa * kappa + (m - 1) ** 2))
    return b, (1 - b) / (1 + b), 2 * b / (1 + b)


def symmetric_beta_parts(gamma: Tensor, normal: Tensor) -> tuple[Tensor, Tensor]:
    """``(E, F)``, proportional to ``(e, 1 - e)`` with ``e ~ Beta(a, a)``, from ``G ~ Gamma(a)`` and ``Z ~ N(0, 1)``.

    With ``R = sqrt(Z^2 + 2 G)``, ``e = (1 + Z / R) / 2`` is ``Beta(a, a)``: ``(2 e - 1)^2 = (Z^2 / 2) /
    (Z^2 / 2 + G) ~ Beta(1/2, a)``, which is the law of ``(2 e - 1)^2`` under ``Beta(a, a)``, and the
    sign of ``Z`` is symmetric and independent of ``Z^2``. Returned unnormalised, ``E = 2 R e = R + Z``
    and ``F = 2 R (1 - e) = R - Z``; the smaller of the two is formed as ``2 G / (R + |Z|)`` (since
    ``R^2 - Z^2 = 2 G``), so it keeps its digits when it is tiny. Overwrites ``gamma``.
    """
    large = torch.addcmul(gamma, normal, normal, value=0.5).sqrt_().mul_(math.sqrt(2.0))  # R
    large.add_(normal.abs())  # R + |Z|
    small = gamma.mul_(2).div_(large)  # R - |Z|
    positive = normal >= 0
    return torch.where(positive, large, small), torch.where(positive, small, large)


def wood_row_constants(kappa: Tensor, m: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-row constants of Wood's sampler: ``1 / b``, ``x0``, ``1 - x0`` and the test's offset (:func:`wood_offset`).

    With ``h = (m - 1) / 2`` and ``u = kappa + sqrt(kappa^2 + h^2)``, ``b = h / u`` (the cancellation-free
    form of :func:`wood_constants`) and ``1 - x0 = 2 b / (1 + b) = 2 h / (u + h)``: thirteen tensor
    operations on ``kappa``'s shape for all four. ``x0 = 1 - (1 - x0)`` loses relative digits where
    ``x0`` is tiny (small ``kappa``), but it enters the test only through ``x0 t`` and ``log1p(x0)``,
    which need its absolute accuracy alone.
    """
    h = (m - 1) / 2
    u = (kappa * kappa).add_(h * h).sqrt_().add_(kappa)
    one_minus_x0 = (u + h).reciprocal_().mul_(2 * h)
    x0 = 1 - one_minus_x0
    return u.mul_(1 / h), x0, one_minus_x0, wood_offset(kappa, m, x0, one_minus_x0)


def wood_t(gamma: Tensor, normal: Tensor, inv_b: Tensor) -> Tensor:
    """``t = 1 - w`` of Wood's proposal from ``G ~ Gamma((m-1)/2)`` and ``Z ~ N(0, 1)``; overwrites ``gamma``.

    ``t = 2 b e / ((1 - e) + b e) = 2 e / ((1 - e) / b + e)`` with ``e ~ Beta((m-1)/2, (m-1)/2)``, written
    with ``(E, F)`` proportional to ``(e, 1 - e)`` (:func:`symmetric_beta_parts`), so that ``t`` keeps
    its digits for ``e`` close to 0 or 1; ``inv_b = 1 / b``.
    """
    e, one_minus_e = symmetric_beta_parts(gamma, normal)
    return torch.addcmul(e, one_minus_e, inv_b).reciprocal_().mul_(e).mul_(2)


def wood_proposal(inv_b: Tensor, m: int, shape: torch.Size) -> Tensor:
    """``t = 1 - w`` for Wood's proposal ``w = (1 - (1 + b) e) / (1 - (1 - b) e)``, ``e ~ Beta((m-1)/2, (m-1)/2)``.

    ``inv_b = 1 / b`` as :func:`wood_row_constants` gives it. One gamma and one normal variate per
    candidate (:func:`wood_t`) instead of the two gamma variates of ``G1 / (G1 + G2)``: on a CPU a
    gamma variate costs several times a normal one.
    """
    gamma = gamma_variates(m, shape, inv_b)
    return wood_t(gamma, torch.randn_like(gamma), inv_b)


def gamma_variates(m: int, shape: tuple[int, ...], like: Tensor) -> Tensor:
    """``Gamma((m - 1) / 2)`` variates of ``shape`` (``torch._standard_gamma``), in ``like``'s dtype and
    on its device: the variates of Wood's and of the gamma proposal."""
    return torch._standard_gamma(
        torch.full(shape, (m - 1) / 2, dtype=like.dtype, device=like.device)
    )


def wood_offset(kappa: Tensor, m: int, x0: Tensor, one_minus_x0: Tensor) -> Tensor:
    """The part of Wood's log-ratio that depends on the row only: ``kappa (1 - x0) - (m - 1) log((1 - x0)(1 + x0))``."""
    log_product = torch.log(one_minus_x0).add_(torch.log1p(x0))
    return torch.sub(kappa * one_minus_x0, log_product, alpha=m - 1)


def wood_log_ratio(
    t: Tensor, kappa: Tensor, m: int, x0: Tensor, one_minus_x0: Tensor, offset: Tensor
) -> Tensor:
    """``s(w) - c`` of Wood's test, ``kappa (w - x0) + (m - 1) log((1 - x0 w) / (1 - x0^2))``, at ``w = 1 - t``.

    Written as ``offset - kappa t + (m - 1) log((1 - x0) + x0 t)`` with the per-row
    ``offset = wood_offset(kappa, m, x0, 1 - x0)``: four operations per round of candidates.
    """
    log_term = torch.addcmul(one_minus_x0, x0, t).log_()
    return torch.addcmul(offset, kappa, t, value=-1).add_(log_term, alpha=m - 1)


def gamma_threshold(m: int) -> float:
    """Concentration from which :func:`wood_rejection` uses the gamma proposal rather than Wood's.

    The exact acceptance rates cross there: the gamma proposal's is ``sqrt(2 pi kappa) ive(m/2 - 1,
    kappa)`` (see :func:`gamma_log_ratio`), rising to 1 like ``exp(-a (a - 1) / (2 kappa))`` with ``a =
    (m - 1) / 2``, while Wood's falls towards about ``1 / sqrt 2``: equal near ``kappa = a (a - 1) / log 2``.
    The crossing computed by quadrature of Wood's rate, fitted over ``m`` in ``[4, 1024]`` as ``a (a -
    1) / log 2 + 1.27 a``, is matched to 3e-5 (relative). The rule only sets the cost: each row's sample
    is exact with either proposal. ``inf`` below ``m = 4``, where the proposal is not used (at ``m = 2``
    its density ratio to the target is unbounded; ``m = 3`` has the closed form).
    """
    if m < 4:
        return math.inf
    a = (m - 1) / 2
    return a * (a - 1) / math.log(2.0) + _GAMMA_SWITCH_SLOPE * a


def gamma_log_ratio(t: Tensor, m: int) -> Tensor:
    """``(a - 1) log(1 - t / 2)``, the log acceptance probability of a candidate ``t = G / kappa`` of the gamma proposal.

    In ``t = 1 - w`` the target density is proportional to ``exp(-kappa t) t^(a-1) (2 - t)^(a-1)`` on
    ``[0, 2]`` (``a = (m - 1) / 2``); the proposal ``t = G / kappa``, ``G ~ Gamma(a)``, has density
    proportional to ``exp(-kappa t) t^(a-1)`` on ``[0, inf)``. Their ratio is proportional to ``(2 -
    t)^(a-1)``, bounded by ``2^(a-1)`` for ``a >= 1``, so a candidate is accepted with probability ``(1 -
    t / 2)^(a-1)`` and one outside ``[0, 2]`` never: there ``log1p(-t / 2)`` is NaN, and ``log U <= NaN``
    is false. The overall acceptance rate is the ratio of the normalising constants, ``sqrt(2 pi kappa)
    ive(m/2 - 1, kappa)``, which tends to 1 as ``kappa`` grows. Needs ``m >= 4`` (``a - 1 > 0``:
    ``xlog1py`` returns 0 for a zero factor, also where ``t > 2``).
    """
    log_ratio: Tensor = torch.special.xlog1py((m - 3) / 2, t * -0.5)
    return log_ratio


WOOD, GAMMA, MIXED = "wood", "gamma", "mixed"
