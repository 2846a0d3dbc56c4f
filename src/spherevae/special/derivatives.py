"""The second derivative of the ratio ``R = I_{v+1} / I_v``, for double backward passes: from the Riccati
equation, and from the asymptotic (Hankel) series of ``1 - R`` at large ``z``.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache

import torch
from torch import Tensor

from ..tracing import builds_constants
from .power_sums import column_major, power_sum

# the asymptotic series of 1 - R in powers of 1 / z (_far_series) keeps this many terms
_FAR_TERMS = 24


# ... and serves the second derivatives from the z at which its first left-out term is below this
# fraction of its first term, and none of its terms is larger than the first
_FAR_TAIL = 1e-17


# from 25 to 2.5e21, 12% apart: below 25 the exponentially small part of I_v (relative e^(-2z)),
# which no power of 1 / z holds, is above 1e-17 of R''
_FAR_GRID = [25.0 * 10.0 ** (k / 20) for k in range(0, 20 * 20)]


@lru_cache(maxsize=64)
def _far_series(v: float) -> tuple[list[Fraction], float]:
    """Coefficients ``a_1 .. a_(K+1)`` of ``1 - R(z) ~ sum_k a_k z^-k`` (exact) and the ``z`` from which the
    first ``K = _FAR_TERMS`` serve the second derivatives (:func:`second_derivative`).

    ``c = 1 - R`` solves the Riccati equation ``c' = -c (2 - c) + (2v + 1)(1 - c) / z`` (from ``R' = 1 -
    R^2 - (2v + 1) R / z``); with ``h = v + 1/2`` the powers of ``1 / z`` give ``a_1 = h`` and ``a_(n+1) =
    (sum_(i + j = n + 1) a_i a_j + (n - 2h) a_n) / 2``: the Hankel expansion (DLMF 10.40.1) of the ratio,
    exact rationals for an order that is a float. The series diverges; it is used where its terms fall
    fast: from the first ``z`` of a grid (12% apart) at which ``(K + 1)(K + 2) |a_(K+1)| z^-K`` is below
    ``_FAR_TAIL`` of ``2 a_1`` and no weighted term ``k (k + 1) |a_k| z^(1-k)`` exceeds it (about ``4.5 v``
    for large orders, 32 for small ones, never below 25).
    """
    h = Fraction(v) + Fraction(1, 2)
    a = [h]
    for n in range(1, _FAR_TERMS + 1):
        products = sum((a[i - 1] * a[n - i] for i in range(1, n + 1)), Fraction(0))
        a.append((products + (n - 2 * h) * a[n - 1]) / 2)

    def log_abs(x: Fraction) -> float:
        return -math.inf if x == 0 else math.log(abs(x.numerator)) - math.log(x.denominator)

    logs = [log_abs(x) + math.log(k * (k + 1)) for k, x in enumerate(a, start=1)]
    for z in _FAR_GRID:
        log_z = math.log(z)
        rel = [logs[k - 1] - (k - 1) * log_z - logs[0] for k in range(1, _FAR_TERMS + 2)]
        if rel[-1] <= math.log(_FAR_TAIL) and max(rel[:-1]) <= 1e-12:
            return a, z
    return a, math.inf


@lru_cache(maxsize=64)
@builds_constants
def _far_coefficients(v: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``(K, 3)``: ``k (k + 1) a_k``, ``k^2 a_k`` and ``k (k + 1) (k + 2) a_k`` (:func:`_far_series`),
    each rounded once."""
    a, _ = _far_series(v)
    rows = [
        [float(k * (k + 1) * x), float(k * k * x), float(k * (k + 1) * (k + 2) * x)]
        for k, x in enumerate(a[:-1], start=1)
    ]
    return column_major(torch.tensor(rows, dtype=dtype, device=device))


def second_derivative(
    v: Tensor,
    z: Tensor,
    ratio: Tensor,
    ratio_over_z: Tensor,
    elasticity: Tensor,
    v_number: float | None,
    scaled: bool,
) -> Tensor:
    """``R''`` (``scaled``: ``(z R')' = R' + z R''``) at ``z`` from the no-grad values there.

    From ``R' = (R / z) N`` and the Riccati equation, ``R'' = -2 R R' - (2v + 1)(R' / z - R / z^2) = (R /
    z) ((2v + 1)(1 - N) / z - 2 R N)``, 0 at ``z = 0``. Its two terms agree to about ``h / z`` of
    themselves at large ``z`` (``h = v + 1/2``), so for one order given as a number, from the ``z`` of
    :func:`_far_series` on (where that loss is at most a factor of about 5), the asymptotic series
    ``R'' = -sum_k k (k + 1) a_k z^(-k-2)`` and ``(z R')' = -sum_k k^2 a_k z^(-k-1)`` is taken instead.
    """
    positive = z > 0
    z_safe = torch.where(positive, z, 1.0)
    inner = torch.where(
        positive, (2 * v + 1) * (1 - elasticity) / z_safe - 2 * ratio * elasticity, 0.0
    )
    riccati = ratio_over_z * elasticity + ratio * inner if scaled else ratio_over_z * inner
    # R'' = -sum_k k (k + 1) a_k y^(k+2) and (z R')' = -sum_k k^2 a_k y^(k+1), y = 1 / z
    return _with_far_series(riccati, v, z, v_number, 1 if scaled else 0, -1 if scaled else -2)


def third_derivative(
    v: Tensor,
    z: Tensor,
    ratio: Tensor,
    ratio_over_z: Tensor,
    elasticity: Tensor,
    v_number: float | None,
) -> Tensor:
    """The third derivative ``R'''`` at ``z`` from the no-grad values there (what the second
    derivative of the vMF variance needs).

    Differentiating the Riccati form of :func:`second_derivative` once more, with ``(R / z)' = R (N -
    1) / z^2``: ``R''' = -2 R'^2 - 2 R R'' - (2v + 1) (R'' / z - 2 R (N - 1) / z^3)``; its limit at
    ``z = 0`` is ``-3 / (4 (v + 1)^2 (v + 2))`` (from the power series of the ratio). The terms cancel
    at small ``z``: the relative error grows like ``(2v + 1) eps / z^2`` there (about ``1e-8`` at
    ``z = 1e-4``). For one order given as a number, from the ``z`` of :func:`_far_series` on, the
    asymptotic series ``R''' = sum_k k (k + 1) (k + 2) a_k z^(-k-3)`` is taken instead.
    """
    positive = z > 0
    z_safe = torch.where(positive, z, 1.0)
    first = ratio_over_z * elasticity
    second = second_derivative(v, z, ratio, ratio_over_z, elasticity, v_number, scaled=False)
    inv = z_safe.reciprocal()
    bracket = second * inv - 2 * ratio_over_z * (elasticity - 1) * inv * inv
    riccati = -2 * first * first - 2 * ratio * second - (2 * v + 1) * bracket
    at_zero = -3 / (4 * (v + 1) ** 2 * (v + 2))
    riccati = torch.where(positive, riccati, at_zero)
    return _with_far_series(riccati, v, z, v_number, 2, 3)  # sum_k k (k+1) (k+2) a_k y^(k+3)


def _with_far_series(
    riccati: Tensor, v: Tensor, z: Tensor, v_number: float | None, column: int, power: int
) -> Tensor:
    """``riccati``, replaced from the ``z`` of :func:`_far_series` on (for one order given as a number)
    by the asymptotic series ``sign(power) y^|power| sum_k w_k a_k y^k`` (``y = 1 / z``) with the weights
    ``w_k`` of column ``column`` of :func:`_far_coefficients`."""
    if v_number is None and v.dim() == 0 and v.device.type == "cpu":
        v_number = float(v)
    if v_number is None:
        return riccati
    _, z_far = _far_series(v_number)
    if math.isinf(z_far):
        return riccati
    y = torch.clamp(z, min=z_far).reciprocal()
    sums = power_sum(y, _far_coefficients(v_number, z.dtype, z.device))  # sum_k w_k a_k y^k
    far = y.pow(abs(power)) * sums[..., column]
    return torch.where(z >= z_far, far if power > 0 else -far, riccati)
