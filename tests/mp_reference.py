"""High-precision references computed with mpmath, for the accuracy tests (test-only dependency).

``mpmath.besseli`` cannot converge for some large arguments; there Hankel's expansion is used where it
converges to full precision (``4 v^2 <= z``), and otherwise the integral representation (DLMF 10.32.2)
``I_v(z) = (z/2)^v / (sqrt(pi) Gamma(v + 1/2)) * int_{-1}^{1} (1 - t^2)^(v - 1/2) e^{z t} dt``
is integrated with tanh-sinh quadrature on pieces that follow the peak at ``t = 1 - O(1/z)``.
"""

from __future__ import annotations

import mpmath as mp

_DPS = 40


def log_iv(v: float, z: float) -> mp.mpf:
    """``log I_v(z)`` to about 30 significant digits (``z > 0``)."""
    with mp.workdps(_DPS):
        v_, z_ = mp.mpf(v), mp.mpf(z)
        try:
            return mp.log(mp.besseli(v_, z_, maxterms=10**5))
        except mp.libmp.NoConvergence:
            pass
        if 4 * v * v <= z:
            return _log_iv_hankel(v_, z_)

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
            cuts |= {peak + k * width for k in range(-60, 61)}
        cuts = sorted(c for c in cuts if 0 <= c <= 2)
        integral = mp.quad(f, cuts)
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
            return mp.log(mp.hyp0f1(v_ + 1, z_ * z_ / 4))
        return mp.loggamma(v_ + 1) - v_ * mp.log(z_ / 2) + log_iv(v, z)
