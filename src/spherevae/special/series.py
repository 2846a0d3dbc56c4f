"""The power-series region: ``I_v(z) = (z/2)^v / Gamma(v+1) sum_j (z^2/4)^j / (j! (v+1)_j)``, where
``z^2 / (4 (v + 1)) <= 8`` or ``sqrt(v^2 + z^2) < 18`` (see :mod:`spherevae.special`).
"""

from __future__ import annotations

import bisect
import math
from functools import lru_cache

import torch
from torch import Tensor

from ..tracing import builds_constants
from .layout import DEBYE_MIN_RHO, SERIES_MAX_C, SERIES_TERMS, OrderPlan
from .power_sums import block_coefficients, column_major, power_sum

_SERIES_SCALE = 81.0  # largest c = z^2 / (4 (v + 1)) in the series region


# series_terms_needed(c) is the fewest n with c^n / (n+1)! < 1e-17, i.e. with c below the threshold
# (1e-17 (n+1)!)^(1/n); the thresholds grow with n, so the answer is one bisection
_SERIES_TERM_THRESHOLDS = [
    math.exp((math.log(1e-17) + math.lgamma(n + 2)) / n) for n in range(1, SERIES_TERMS)
]


def series_terms_needed(c_max: float, v: float | None = None) -> int:
    """Fewest terms ``n`` whose tail ``c^(n+1) / (n+1)!`` is below ``1e-17`` of the first term ``c``.

    Term ``j`` of the tail series is at most ``c^j / j!`` (since ``(v+1)_j >= (v+1)^j``), and the sum is at
    least its first term ``c``; so ``n`` terms leave a relative error below ``c^n / (n+1)! < 1e-17``.
    ``c <= 81`` needs the full 180; ``c <= 1`` (small arguments, the usual case for small kappa) 19.
    Given the order ``v`` (a number), also the bound of :func:`series_order_thresholds`, which keeps
    the factor ``(v+1)^j / (v+1)_j`` and needs fewer terms for small orders (27 instead of 51 at ``v =
    4``, ``c = 9.8``); the smaller count of the two.
    """
    if c_max <= 0.0:
        return 1
    n = bisect.bisect_right(_SERIES_TERM_THRESHOLDS, c_max) + 1
    if v is not None:
        n = min(n, bisect.bisect_right(series_order_thresholds(v), c_max) + 1)
    return n


@lru_cache(maxsize=256)
def series_order_thresholds(v: float) -> list[float]:
    """``c`` up to which ``n`` terms of the series of order ``v`` suffice (entry ``n - 1``), non-decreasing.

    Term ``j`` is ``T_j = c^j (v+1)^j / (j! (v+1)_j)`` (``(z^2/4)^j / (j! (v+1)_j)`` with ``c = z^2 / (4
    (v+1))``), and ``T_(j+1) / T_j = c (v+1) / ((j+1)(v+1+j))`` falls with ``j``: beyond ``T_(n+1)`` the
    terms shrink at least by ``q = c (v+1) / ((n+2)(v+n+2))``, so the tail after ``n`` terms is at most
    ``T_(n+1) / (1 - q)``. With ``T_(n+1) / T_1 = c^n (v+1)^(n+1) / ((n+1)! (v+1)_(n+1)) <= 0.5e-17``
    and ``q <= 1/2`` it is below ``1e-17`` of the first term (the sum's lower bound). Each condition
    caps ``c`` for each ``n``; the list holds, for each ``n``, the smallest cap of any ``n' >= n``, so
    that it is non-decreasing (a bisection finds the answer) and never claims more than the bound.
    The series of order ``v + 1`` (the ratio's numerator) has smaller ratios of terms, so its tail is
    covered too.
    """
    log_v1 = math.log(v + 1)
    caps = []
    for n in range(1, SERIES_TERMS):
        log_rest = (
            math.log(0.5e-17)
            - (n + 1) * log_v1
            + math.lgamma(n + 2)
            + math.lgamma(v + n + 2)
            - math.lgamma(v + 1)
        )
        caps.append(min(math.exp(log_rest / n), (n + 2) * (v + n + 2) / (2 * (v + 1))))
    for i in range(len(caps) - 2, -1, -1):
        caps[i] = min(caps[i], caps[i + 1])
    return caps


def series_coefficients(v: Tensor, n_terms: int = SERIES_TERMS) -> Tensor:
    """``d_j = (81 (v+1))^j / (j! (v+1)_j)`` for orders ``v`` and ``v + 1``: ``v.shape + (terms, 2)``.

    A ``cumprod`` of ``81 (v + 1) / (i (v' + i))``; every factor is at most ``81 / i``, so ``d_j <= 81^j / j!``
    stays below ``e^81`` and nothing overflows, whatever the order.
    """
    j = torch.arange(1, n_terms + 1, dtype=v.dtype, device=v.device).unsqueeze(-1)
    scale = (_SERIES_SCALE * (v + 1)).unsqueeze(-1).unsqueeze(-1)  # (..., 1, 1)
    orders = torch.stack([v, v + 1], dim=-1).unsqueeze(-2)  # (..., 1, 2)
    return torch.cumprod(scale / (j * (orders + j)), dim=-2)


@lru_cache(maxsize=256)
@builds_constants
def series_coefficients_cached(
    v: float, n_terms: int, dtype: torch.dtype, device: torch.device
) -> tuple[Tensor, tuple[Tensor, int]]:
    """:func:`series_coefficients` of one order given as a number, also laid out for the blocked
    :func:`power_sum`. Cached: a training loop evaluates the same order at every step, with a handful
    of term counts."""
    coef = series_coefficients(torch.tensor(v, dtype=dtype, device=device), n_terms)
    return column_major(coef), block_coefficients(coef)


@lru_cache(maxsize=256)
def log_gamma(x: float) -> float:
    """``lgamma(x)`` as torch computes it in float64 (a number order and its tensor agree bitwise)."""
    return float(torch.lgamma(torch.tensor(x, dtype=torch.float64)))


def series_threshold(v: float) -> float:
    """For one order ``v``: the series region ``c <= 8`` or ``sqrt(v^2 + z^2) < 18`` is ``z <= this``."""
    by_c = math.sqrt(4 * SERIES_MAX_C * (v + 1))
    by_rho = math.sqrt(DEBYE_MIN_RHO**2 - v * v) if v < DEBYE_MIN_RHO else 0.0
    return max(by_c, by_rho)


def series_values(
    v: Tensor | float,
    z: Tensor,
    with_log: bool,
    n_terms: int = SERIES_TERMS,
    plan: OrderPlan | None = None,
) -> Tensor:
    """Power-series values (valid for ``c = z^2 / (4(v+1)) <= 81``), stacked ``(4 or 8, *z.shape)``.

    Rows: ``R``, ``1 - R``, ``R / z``, the elasticity ``N = z R' / R`` and, ``with_log``, ``log_ive``,
    ``g = log_normalized``, ``g - z`` and ``KL = z R - g`` (see :class:`BesselTerms`); ``N = (1 - R)(1 +
    R) / (R / z) - (2v + 1)`` from ``R' = (1 - R)(1 + R) - (2v + 1) R / z``, 1 at ``z = 0``.
    ``0F1(; v+1; z^2/4) - 1 = sum_{j >= 1} (c / 81)^j d_j``, with powers of ``c / 81 <= 1``; ``v`` is
    one order as a Python number (the usual case: the coefficients are cached), one order as a
    0-dimensional tensor (the sums are then one power sum, :func:`power_sum`), or one order per
    element of ``z``. ``n_terms`` (see :func:`series_terms_needed`) may be fewer than 180 where every ``c`` is
    known to be small. A number and a float64 tensor of the same order give bitwise equal results.
    ``plan``: the constants of the order ``v`` (a number) from :func:`order_plan`, whose series terms
    then replace ``n_terms``.
    """
    c_scaled = z * z / ((4 * _SERIES_SCALE) * (v + 1))  # c / 81
    if plan is not None:
        tails = power_sum(c_scaled, plan.series_coef, plan.series_blocked)
        lgamma: Tensor | float = plan.lgamma
    elif not isinstance(v, Tensor):
        tails = power_sum(c_scaled, *series_coefficients_cached(v, n_terms, z.dtype, z.device))
        lgamma = log_gamma(v + 1)
    else:
        if v.dim() == 0:
            tails = power_sum(c_scaled, series_coefficients(v, n_terms))
        else:
            coef = series_coefficients(v, n_terms)
            powers = torch.cumprod(c_scaled.unsqueeze(-1).expand(*z.shape, n_terms), dim=-1)
            tails = (powers.unsqueeze(-1) * coef).sum(-2)
        lgamma = torch.lgamma(v + 1)
    tail_v, tail_v1 = tails[..., 0], tails[..., 1]
    ratio_over_z = (1 + tail_v1) / ((2 * (v + 1)) * (1 + tail_v))
    ratio = z * ratio_over_z
    complement = 1 - ratio
    # (1 - R)(1 + R) / (R / z) - (2v + 1), in three operations
    elasticity = torch.addcmul(complement, complement, ratio).div_(ratio_over_z).sub_(2 * v + 1)
    rows = [ratio, complement, ratio_over_z, elasticity]
    if with_log:
        log_normalized = torch.log1p(tail_v)
        # xlogy(v, z) - v log 2 rather than xlogy(v, z / 2): z / 2 underflows for subnormal z
        log_half_z_pow = torch.xlogy(v, z) - v * math.log(2)
        rows += [
            log_normalized + log_half_z_pow - lgamma - z,
            log_normalized,
            log_normalized - z,
            z * ratio - log_normalized,
        ]
    return torch.stack(rows)
