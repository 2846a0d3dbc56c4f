"""High-precision references computed with mpmath, for the accuracy tests (test-only dependency).

``mpmath.besseli`` cannot converge for some large arguments; there Hankel's expansion is used where it
converges to full precision (``4 v^2 <= z``), and otherwise the integral representation (DLMF 10.32.2)
``I_v(z) = (z/2)^v / (sqrt(pi) Gamma(v + 1/2)) * int_{-1}^{1} (1 - t^2)^(v - 1/2) e^{z t} dt``
is integrated on pieces that follow the peak at ``t = 1 - O(1/z)`` (Gauss-Legendre, tanh-sinh at the
end point). In a box where ``mp.besseli`` is known to fail slowly the quadrature is used at once.
"""

from __future__ import annotations

import math
from functools import cache

import mpmath as mp

_DPS = 40


def _besseli_known_to_fail(v: float, z: float) -> bool:
    """Where ``mp.besseli`` was seen to spend 10 to 60 s before raising ``NoConvergence`` (measured at
    ``v in {3000, 5000, 1e4}``, ``z`` from ``1e5`` to ``3e6``): go straight to the quadrature there."""
    return v >= 3000 and 1e5 <= z <= 3e6 and 4 * v * v > z


@cache  # some (v, z) take seconds (quadrature) and the tests ask for the same pairs repeatedly
def log_iv(v: float, z: float) -> mp.mpf:
    """``log I_v(z)`` to about 30 significant digits (``z > 0``)."""
    with mp.workdps(_DPS):
        v_, z_ = mp.mpf(v), mp.mpf(z)
        if _besseli_known_to_fail(v, z):
            return _log_iv_quadrature(v_, z_)
        try:
            return mp.log(mp.besseli(v_, z_, maxterms=10**5))
        except mp.libmp.NoConvergence:
            pass
        if 4 * v * v <= z:
            return _log_iv_hankel(v_, z_)
        return _log_iv_quadrature(v_, z_)


def _log_iv_quadrature(v_: mp.mpf, z_: mp.mpf) -> mp.mpf:
    """``log I_v(z)`` from the integral representation (DLMF 10.32.2), integrated on pieces.

    Where the integrand has an interior peak (``v > 1/2``) the pieces are a quarter of its Laplace width.
    Every piece but the one at ``s = 0`` is integrated with Gauss-Legendre: there it reaches the full 40
    digits for ``v >= 300`` (checked against ``mp.besseli`` at 70 digits where that converges; this
    path is only taken for ``v`` in the thousands), whereas tanh-sinh on the same pieces stalled at 17 to
    20 digits of ``log I_v``, too few for ``R' = 1 - R^2 - (2v+1) R / z`` at large ``z``.
    """
    with mp.workdps(_DPS):
        # in s = 1 - t the scaled integrand is (s (2 - s))^(v - 1/2) e^{-z s}, peaked at s = O(v / z)
        def f(s: mp.mpf) -> mp.mpf:
            base = s * (2 - s)
            return base ** (v_ - mp.mpf(1) / 2) * mp.exp(-z_ * s) if base > 0 else mp.mpf(0)

        # cut the interval around the peak s* of the integrand, in steps of its Laplace width
        a = v_ - mp.mpf(1) / 2
        cuts = {mp.mpf(0), mp.mpf(2)} | {c / z_ for c in (1e-3, 1e-2, 0.1, 0.3, 1, 3, 10, 30, 100)}
        if a > 0:
            # phi'(s) = a (1/s - 1/(2-s)) - z = 0  <=>  z s^2 - 2 (z + a) s + 2 a = 0 (root in (0, 1))
            peak = 2 * a / ((z_ + a) + mp.sqrt((z_ + a) ** 2 - 2 * a * z_))
            width = 1 / mp.sqrt(a / peak**2 + a / (2 - peak) ** 2)
            cuts |= {peak + k * width / 4 for k in range(-240, 241)}
        cuts = sorted(c for c in cuts if 0 <= c <= 2)
        # tanh-sinh for the first piece, where (s (2 - s))^(v - 1/2) is not smooth at s = 0; the
        # integrand is analytic on all the others, and there Gauss-Legendre converges fastest
        integral = mp.quad(f, cuts[:2], method="tanh-sinh") + mp.quad(
            f, cuts[1:], method="gauss-legendre"
        )
        return (
            v_ * mp.log(z_ / 2)
            - mp.log(mp.sqrt(mp.pi))
            - mp.loggamma(v_ + mp.mpf(1) / 2)
            + mp.log(integral)
            + z_
        )


def _log_iv_hankel(v: mp.mpf, z: mp.mpf) -> mp.mpf:
    """Hankel's expansion (DLMF 10.40.1); for ``4 v^2 <= z`` its terms fall by ``v^2 / (2 k z)`` or faster
    until they are far below the working precision, long before the series starts to diverge."""
    total, term, k = mp.mpf(1), mp.mpf(1), 0
    while abs(term) > mp.mpf(10) ** (-_DPS):
        k += 1
        term *= -(4 * v * v - (2 * k - 1) ** 2) / (8 * k * z)
        total += term
    return z - mp.log(mp.sqrt(2 * mp.pi * z)) + mp.log(total)


def log_ive(v: float, z: float) -> mp.mpf:
    """``log(I_v(z) e^{-z})``; ``-inf`` at ``z = 0`` for ``v > 0``."""
    with mp.workdps(_DPS):
        if z == 0:
            return mp.mpf(0) if v == 0 else mp.ninf
        return log_iv(v, z) - mp.mpf(z)


def ive_ratio(v: float, z: float) -> mp.mpf:
    """``I_{v+1}(z) / I_v(z)``."""
    with mp.workdps(_DPS):
        if z == 0:
            return mp.mpf(0)
        return mp.exp(log_iv(v + 1, z) - log_iv(v, z))


def log_iv_normalized(v: float, z: float) -> mp.mpf:
    """``log(Gamma(v+1) (2/z)^v I_v(z))``."""
    with mp.workdps(_DPS):
        if z == 0:
            return mp.mpf(0)
        v_, z_ = mp.mpf(v), mp.mpf(z)
        if z * z <= 4 * (v + 1):  # small values: sum the series directly, no subtraction
            return _log_hyp0f1_small(v_, z_)
        return mp.loggamma(v_ + 1) - v_ * mp.log(z_ / 2) + log_iv(v, z)


def _log_hyp0f1_small(v: mp.mpf, z: mp.mpf) -> mp.mpf:
    """``log 0F1(; v+1; z^2/4) = log1p(sum_{j>=1} (z^2/4)^j / (j! (v+1)_j))`` for ``z^2 <= 4 (v+1)``.

    The tail is summed on its own, so the result keeps full relative precision however small ``z`` is
    (``log(hyp0f1(...))`` rounds ``1 + tail`` to the working precision first and returns 0 once
    ``z^2 / (4 (v+1))`` is below ``10^-40``).
    """
    quarter_z2 = z * z / 4
    term, tail, j = mp.mpf(1), mp.mpf(0), 0
    while True:
        j += 1
        term *= quarter_z2 / (j * (v + j))
        tail += term
        if term <= tail * mp.mpf(10) ** (-_DPS):
            return mp.log1p(tail)


def ive_ratio_derivative(v: float, z: float) -> mp.mpf:
    """``d/dz I_{v+1}(z) / I_v(z) = 1 - R^2 - (2v + 1) R / z``, in high precision; ``1 / (2(v+1))`` at 0.

    At large ``z`` the three terms cancel to ``O(1 / z^2)``; the 40-digit working precision leaves more
    than 20 correct digits for ``z <= 1e7``.
    """
    with mp.workdps(_DPS):
        if z == 0:
            return 1 / (2 * (mp.mpf(v) + 1))
        r = ive_ratio(v, z)
        return 1 - r * r - (2 * mp.mpf(v) + 1) * r / mp.mpf(z)


# --------------------------------------------------------------------------------------------------
# large arguments: every quantity from Hankel's expansion at a working precision that grows with z
# --------------------------------------------------------------------------------------------------
def _hankel_log10_max_term(v: float, z: float) -> float | None:
    """``log10`` of the largest term of Hankel's series (DLMF 10.40.1) of order ``v`` at ``z``, and
    ``None`` if its terms do not fall below ``10^-(digits)`` before they start to grow for good
    (``k`` near ``2 z``): the series then cannot give ``I_v(z)`` to full precision."""
    log_term, best = 0.0, 0.0
    k = 0
    four_v2 = 4 * v * v
    while True:
        k += 1
        factor = abs(four_v2 - (2 * k - 1) ** 2) / (8 * k * z)
        if factor == 0:  # a half-integer order: the series ends
            return best
        log_term += math.log10(factor)
        best = max(best, log_term)
        # the sum is about exp(-v^2 / (2 z)) while the largest term is about its inverse: stop where
        # the terms are far below the sum
        if log_term < -best - 3 * math.log10(z) - 100:
            return best
        if k > 2 * z + 10 or k > 10**6:
            return None


def _hankel_sum(v: mp.mpf, z: mp.mpf) -> mp.mpf:
    """``sum_k (-1)^k a_k(v) / z^k`` of DLMF 10.40.1 to the working precision (``I_v(z) = e^z / sqrt(2 pi z)``
    times it, up to a relative ``e^(-2z)``)."""
    total, term, k = mp.mpf(1), mp.mpf(1), 0
    eps = mp.mpf(10) ** (-mp.mp.dps - 5)
    four_v2 = 4 * v * v
    while True:
        k += 1
        term *= -(four_v2 - (2 * k - 1) ** 2) / (8 * k * z)
        total += term
        if term == 0 or abs(term) < eps * abs(total):
            return total


@cache
def large_z(v: float, z: float) -> dict[str, mp.mpf]:
    """Every quantity at a large ``z`` (``z >= 1e4``, any order for which Hankel's series converges):
    ``log_ive``, ``ratio`` ``R``, ``complement`` ``1 - R``, ``ratio_derivative`` ``R'``,
    ``ratio_second_derivative`` ``R''``, ``log_scaled`` ``log 0F1(; v+1; z^2/4) - z``, ``log_normalized``
    and ``kl`` ``z R - log 0F1``, each to about 30 significant digits.

    The working precision is raised by the digits that cancel: those of the largest term of Hankel's
    series (large orders at moderate ``z``), and ``3 log10 z`` for ``R''``, whose Riccati form ``-2 R R'
    - (2v + 1)(R' / z - R / z^2)`` subtracts terms ``z`` times larger than ``R'``, which is itself ``z``
    times smaller than the terms of ``1 - R^2 - (2v + 1) R / z``. Raises ``ValueError`` where the series
    cannot converge (``z`` too small for the order). Checked against the quadrature and ``mp.besseli``
    paths of :func:`log_iv` where those converge (``tests/test_large_concentrations.py``)."""
    if z < 1e4:
        raise ValueError(f"large_z needs z >= 1e4, got {z}")
    largest = [_hankel_log10_max_term(order, z) for order in (v, v + 1)]
    if None in largest:
        raise ValueError(f"Hankel's series does not converge at v={v}, z={z}")
    # digits lost: those of the largest term over the sum, about twice the largest term's
    extra = 2 * max(x for x in largest if x is not None)
    with mp.workdps(_DPS + int(extra) + int(3 * math.log10(z)) + 20):
        v_, z_ = mp.mpf(v), mp.mpf(z)
        s0, s1 = _hankel_sum(v_, z_), _hankel_sum(v_ + 1, z_)
        log_ive = mp.log(s0) - mp.log(2 * mp.pi * z_) / 2
        r = s1 / s0
        complement = (s0 - s1) / s0
        dr = 1 - r * r - (2 * v_ + 1) * r / z_
        d2r = -2 * r * dr - (2 * v_ + 1) * (dr / z_ - r / z_**2)
        log_scaled = mp.loggamma(v_ + 1) - v_ * mp.log(z_ / 2) + log_ive
        out = {
            "log_ive": log_ive,
            "ratio": r,
            "complement": complement,
            "ratio_derivative": dr,
            "ratio_second_derivative": d2r,
            "log_scaled": log_scaled,
            "log_normalized": log_scaled + z_,
            "kl": -log_scaled - z_ * complement,
        }
    with mp.workdps(_DPS):
        return {key: +value for key, value in out.items()}  # rounded to the usual precision


@cache
def power_spherical(m: int, kappa: float) -> dict[str, mp.mpf]:
    """The Power Spherical closed forms at ``kappa`` on ``S^{m-1}``, to about 30 significant digits:
    ``D = lgamma(alpha + beta) - lgamma(alpha)``, ``P = digamma(alpha + beta) - digamma(alpha)``, ``T =
    trigamma(alpha) - trigamma(alpha + beta)`` (``beta = (m - 1) / 2``, ``alpha = kappa + beta``), the KL
    divergence to the uniform distribution ``log area - beta log(4 pi) + D - kappa P`` and its derivative
    ``kappa T``, the log-density at the mode ``D - beta log(4 pi)``, the mean ``kappa / (m - 1 + kappa)`` and
    the variances ``Var(mu . x) = 4 alpha beta / (S^2 (S + 1))`` and ``(1 - E[(mu . x)^2]) / (m - 1) = 2 alpha
    / (S (S + 1))`` (``S = alpha + beta``) with their derivatives in ``kappa``. The working precision is
    raised by the digits the differences cancel (``2 log10 kappa``)."""
    with mp.workdps(_DPS + 2 * int(math.log10(max(kappa, 10.0))) + 20):
        b, k = mp.mpf(m - 1) / 2, mp.mpf(kappa)
        a = k + b
        s = a + b
        d = mp.loggamma(s) - mp.loggamma(a)
        p = mp.digamma(s) - mp.digamma(a)
        t = mp.psi(1, a) - mp.psi(1, s)
        area = mp.log(2) + mp.mpf(m) / 2 * mp.log(mp.pi) - mp.loggamma(mp.mpf(m) / 2)
        kl = area - b * mp.log(4 * mp.pi) + d - k * p
        out = {
            "D": d,
            "P": p,
            "T": t,
            "kl": kl,
            "d_kl": k * t,
            "log_prob_mode": d - b * mp.log(4 * mp.pi),
            "mean": k / (2 * b + k),
            "one_minus_mean": 2 * b / (2 * b + k),
            "d_mean": 2 * b / (2 * b + k) ** 2,
            "var_axis": 4 * a * b / (s * s * (s + 1)),
            "d_var_axis": 4
            * b
            * (1 / (s * s * (s + 1)) - 2 * a / (s**3 * (s + 1)) - a / (s * s * (s + 1) ** 2)),
            "var_tangent": 2 * a / (s * (s + 1)),
            "d_var_tangent": 2 * (s * (s + 1) - a * (2 * s + 1)) / (s * (s + 1)) ** 2,
            "log_area": area,
        }
    with mp.workdps(_DPS):
        return {key: +value for key, value in out.items()}
