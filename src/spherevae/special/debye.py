"""The uniform asymptotic (Debye) region, ``sqrt(v^2 + z^2) >= 18``: DLMF 10.41.3 and 10.41.4 with the
polynomials ``u_k(p)`` and ``v_k(p)`` of DLMF 10.41.10-12, generated exactly in rational arithmetic.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor

from ..tracing import builds_constants
from .layout import DEBYE_MIN_RHO, OrderPlan
from .power_sums import column_major, power_sum, powers
from .series import log_gamma

DEBYE_TERMS = (
    16  # u_0 .. u_15: at rho >= 18 the truncation error is below 1e-12 (checked vs mpmath)
)


# --------------------------------------------------------------------------------------------------
# Debye polynomials, exact rational arithmetic (generated once)
# --------------------------------------------------------------------------------------------------
# A polynomial in p with rational coefficients as (numerators, common denominator): sum_i c[i] / d p^i.
# Integers with one denominator per polynomial instead of a Fraction per coefficient: the same exact
# values, built several times faster (a Fraction normalises by a gcd at every operation).
_Poly = tuple[list[int], int]


def _poly(coeffs: list[int], den: int) -> _Poly:
    """Reduced by the common gcd, trailing zeros dropped (one coefficient at least)."""
    while len(coeffs) > 1 and coeffs[-1] == 0:
        coeffs = coeffs[:-1]
    g = math.gcd(den, *coeffs)
    return [c // g for c in coeffs], den // g


def _poly_deriv(a: _Poly) -> _Poly:
    c, d = a
    return _poly([i * c[i] for i in range(1, len(c))] or [0], d)


def _poly_mul(a: _Poly, b: _Poly) -> _Poly:
    # the Debye polynomials have one parity (every other coefficient is 0), and so do the factors they
    # are multiplied by: the zero products are skipped
    (ca, da), (cb, db) = a, b
    out = [0] * (len(ca) + len(cb) - 1)
    b_nonzero = [(j, y) for j, y in enumerate(cb) if y != 0]
    for i, x in enumerate(ca):
        if x != 0:
            for j, y in b_nonzero:
                out[i + j] += x * y
    return _poly(out, da * db)


def _poly_add(a: _Poly, b: _Poly) -> _Poly:
    (ca, da), (cb, db) = a, b
    den = math.lcm(da, db)
    fa, fb = den // da, den // db
    n = max(len(ca), len(cb))
    out = [
        (ca[i] * fa if i < len(ca) else 0) + (cb[i] * fb if i < len(cb) else 0) for i in range(n)
    ]
    return _poly(out, den)


def _poly_integral(a: _Poly) -> _Poly:
    """``int_0^p a(s) ds``: coefficient ``i`` moves to ``i + 1`` and is divided by ``i + 1``."""
    c, d = a
    scale = math.lcm(*range(1, len(c) + 1))
    return _poly([0] + [x * (scale // (i + 1)) for i, x in enumerate(c)], d * scale)


def _debye_polynomials(n_terms: int) -> tuple[list[_Poly], list[_Poly]]:
    """Return ``u_k`` and ``v_k`` (DLMF 10.41.10 and 10.41.12) as exact polynomials in ``p``."""
    one: _Poly = ([1], 1)
    us: list[_Poly] = [one]
    for _ in range(1, n_terms):
        u = us[-1]
        # u_{k+1} = 1/2 p^2 (1 - p^2) u_k' + 1/8 int_0^p (1 - 5 s^2) u_k(s) ds
        first = _poly_mul(([0, 0, 1, 0, -1], 2), _poly_deriv(u))
        integral = _poly_integral(_poly_mul(([1, 0, -5], 1), u))
        us.append(_poly_add(first, _poly_mul(([1], 8), integral)))
    vs: list[_Poly] = [one]
    for k in range(1, n_terms):
        u_prev = us[k - 1]
        # v_k = u_k + p (p^2 - 1) (1/2 u_{k-1} + p u'_{k-1})
        inner = _poly_add(_poly_mul(([1], 2), u_prev), _poly_mul(([0, 1], 1), _poly_deriv(u_prev)))
        vs.append(_poly_add(us[k], _poly_mul(([0, -1, 0, 1], 1), inner)))
    return us, vs


def _divide_by_p_power(a: _Poly, k: int) -> _Poly:
    # u_k and v_k contain only the powers p^k .. p^(3k): dividing by p^k is exact
    c, d = a
    assert all(x == 0 for x in c[:k]), "Debye polynomial not divisible by p^k"
    return c[k:], d


@lru_cache(maxsize=1)
def coefficient_tables() -> tuple[list[list[float]], list[list[float]], list[list[float]]]:
    """Coefficient tables ``[power of p][k]`` for ``u_k / p^k``, ``d_k / p^k`` and ``x_k``.

    With ``d_k = v_k - u_k``, ``x_k = u_k / p^k + 2 d_(k+1) / p^(k+1)``: the coefficients of
    ``S_u + 2 rho S_d = sum_k x_k(p) / rho^k``, whose constant term ``1 + 2 d_1 / p = p^2`` is formed
    exactly here (``d_1 = -p (1 - p^2) / 2``), not by subtracting ``1`` from a sum of order one at run
    time (see :func:`debye_values`). Each entry is the exact rational coefficient rounded once to float64 (an
    integer true division is correctly rounded).
    """
    us, vs = _debye_polynomials(DEBYE_TERMS + 1)
    ds = [_poly_add(vs[k], _poly_mul(([-1], 1), us[k])) for k in range(DEBYE_TERMS + 1)]
    degree = 2 * DEBYE_TERMS + 1  # x_k / p^0 .. p^(2k + 2)
    u_table = [[0.0] * DEBYE_TERMS for _ in range(degree)]
    d_table = [[0.0] * DEBYE_TERMS for _ in range(degree)]
    x_table = [[0.0] * DEBYE_TERMS for _ in range(degree)]
    for k in range(DEBYE_TERMS):
        u_num, u_den = _divide_by_p_power(us[k], k)
        d_num, d_den = _divide_by_p_power(ds[k], k)
        x_num, x_den = _poly_add(
            (u_num, u_den), _poly_mul(([2], 1), _divide_by_p_power(ds[k + 1], k + 1))
        )
        for j, c in enumerate(u_num):
            u_table[j][k] = c / u_den
        for j, c in enumerate(d_num):
            d_table[j][k] = c / d_den
        for j, c in enumerate(x_num):
            x_table[j][k] = c / x_den
    return u_table, d_table, x_table


_TABLE_CACHE: dict[tuple[torch.dtype, torch.device], Tensor] = {}


def _tables(dtype: torch.dtype, device: torch.device) -> Tensor:
    """The three tables of :func:`coefficient_tables` stacked ``(power of p, k, 3)`` (cached)."""
    key = (dtype, device)
    if key not in _TABLE_CACHE:
        _TABLE_CACHE[key] = _table_tensor(dtype, device)
    return _TABLE_CACHE[key]


@builds_constants
def _table_tensor(dtype: torch.dtype, device: torch.device) -> Tensor:
    return torch.tensor(coefficient_tables(), dtype=dtype, device=device).permute(1, 2, 0)


@lru_cache(maxsize=256)
@builds_constants
def collapsed_sums(
    nu: float, dtype: torch.dtype, device: torch.device, n_terms: int | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Coefficients ``C[n] = sum_{j + k = n} T[j, k] nu^j`` of the Debye sums as series in ``1 / rho``.

    For one order ``nu``, ``p^j / rho^k = nu^j / rho^(j + k)`` (``p = nu / rho``), so both double sums
    of :func:`_debye_sums` are single power series in ``1 / rho``: the same terms, summed in another
    order. ``T`` stacks the ``u``, ``v - u`` and ``x`` tables (:func:`coefficient_tables`).
    Returns the constant terms ``C[0]`` ``(3,)`` (``(1, 0, 0)``), the others ``C[1:]`` (only the first
    ``n_terms`` of them, if given) and ``nu`` as a 0-dimensional tensor.
    """
    if n_terms is not None:
        constant, coef, nu_tensor = collapsed_sums(nu, dtype, device)
        return constant, column_major(coef[:n_terms]), nu_tensor
    table = _tables(torch.float64, torch.device("cpu"))  # (power of p, k, 3)
    n_p, n_k = table.shape[:2]
    weighted = table * torch.tensor(float(nu), dtype=torch.float64).pow(
        torch.arange(n_p, dtype=torch.float64)
    ).reshape(n_p, 1, 1)
    index = (torch.arange(n_p).unsqueeze(-1) + torch.arange(n_k)).reshape(-1)
    collapsed = torch.zeros(n_p + n_k - 1, 3, dtype=torch.float64)
    collapsed.index_add_(0, index, weighted.reshape(-1, 3))
    collapsed = collapsed.to(dtype=dtype, device=device)
    return collapsed[0], column_major(collapsed[1:]), torch.tensor(nu, dtype=dtype, device=device)


# the collapsed Debye sums drop their terms beyond the n-th where, from the smallest rho of the batch
# on, the left-out terms add less than this to S_u, to rho S_d (both of order 1 in the results) and to
# rho (S_u + 2 rho S_d), whose terms enter the elasticity of the ratio, of order 1 / rho at large rho
_DEBYE_TAIL = 1e-17


# _debye_radii evaluates the left-out terms on this grid of rho (ratio 1.045 between neighbours), from
# the start of the Debye region to 1e20, beyond which the first power alone suffices
_DEBYE_RADIUS_GRID = torch.logspace(
    math.log10(DEBYE_MIN_RHO), 20.0, 1000, dtype=torch.float64
).tolist()


@lru_cache(maxsize=64)
def _debye_radii(nu: float) -> tuple[float, ...]:
    """Entry ``n - 1``: a ``rho`` from which the first ``n`` powers of ``1 / rho`` of the collapsed Debye
    sums of order ``nu`` suffice (:func:`debye_terms_needed`); non-increasing in ``n``.

    With ``C[k]`` the coefficients of :func:`collapsed_sums`, the left-out terms are bounded by
    ``sum_(k > n) |C_u[k]| rho^-k`` in ``S_u``, ``sum_(k > n) |C_d[k]| rho^(1-k)`` in ``rho S_d`` and
    ``sum_(k > n) |C_x[k]| rho^(1-k)`` in ``rho X``, ``X = S_u + 2 rho S_d`` (see :func:`debye_values`), all
    falling with ``rho`` (``k >= 2``). They are evaluated for every ``n`` at once on a grid of ``rho``
    (``_DEBYE_RADIUS_GRID``, 4.5% apart: a grid point is at most 4.5% beyond the exact radius), and
    the radius is the first grid point from which the larger stays below ``_DEBYE_TAIL``. The last
    entry (every term) is 0: that is the sum as it always is. About a millisecond, once per order.
    """
    _, coef, _ = collapsed_sums(nu, torch.float64, torch.device("cpu"))
    n_coef = coef.shape[0]
    rho = torch.tensor(_DEBYE_RADIUS_GRID, dtype=torch.float64)
    power = torch.arange(1, n_coef + 1, dtype=torch.float64)  # row k - 1: the power rho^-k
    # (grid, k, 3): |C_u[k]| rho^-k, |C_d[k]| rho^(1-k) and |C_x[k]| rho^(1-k), from logarithms (no
    # overflow of rho^k)
    log_terms = (
        coef.abs().log()
        - (power.unsqueeze(-1) - torch.tensor([0.0, 1.0, 1.0])) * rho.log()[:, None, None]
    )
    terms = log_terms.exp()
    # tails[:, n - 1]: the terms beyond the n-th, summed from the smallest up
    tails = terms.flip(1).cumsum(1).flip(1).amax(-1)  # (grid, k): tails[:, j] sums k >= j + 1
    left_out = torch.cat([tails[:, 1:], torch.zeros_like(tails[:, :1])], dim=1)  # beyond n = j + 1
    ok = left_out <= _DEBYE_TAIL  # (grid, n); a tail falls with rho, so ok holds from some point on
    # first grid index from which every larger rho is fine too (inf where no grid point is)
    fine_after = ok.flip(0).int().cumprod(0).flip(0).bool()
    first = torch.where(fine_after.any(0), fine_after.int().argmax(0), rho.numel())
    grid = [*_DEBYE_RADIUS_GRID, math.inf]
    radii = [grid[i] for i in first.tolist()]
    radii[-1] = 0.0
    for n in range(n_coef - 2, -1, -1):  # non-increasing in n
        radii[n] = max(radii[n], radii[n + 1])
    return tuple(radii)


def debye_terms_needed(nu: float, rho_min: float) -> int:
    """Fewest powers of ``1 / rho`` of the collapsed Debye sums of order ``nu`` for every ``rho >= rho_min``."""
    radii = _debye_radii(nu)
    # radii is non-increasing: the first entry at or below rho_min
    lo, hi = 0, len(radii) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if radii[mid] <= rho_min else (mid + 1, hi)
    return lo + 1


def _debye_sums(
    nu: Tensor | float, z: Tensor, rho_min: float | None = None, plan: OrderPlan | None = None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``rho = sqrt(nu^2 + z^2)``, ``S_u = sum_k u_k(p) / nu^k``, ``S_d = sum_k (v_k - u_k)(p) / nu^k`` and
    ``X = S_u + 2 rho S_d``.

    Written as series in ``1/rho`` with ``p = nu / rho`` (``u_k(p) / nu^k = (u_k(p) / p^k) / rho^k``);
    ``X`` from the coefficients ``x_k`` of :func:`coefficient_tables`, whose constant term ``p^2``
    is exact (the ``1`` of ``S_u`` and the ``-1`` of ``2 rho S_d`` cancel in the coefficients, not in the
    sums). For one order given as a Python number, as one power series in ``1 / rho``
    (:func:`collapsed_sums`), of which only the terms that matter from ``rho_min`` on (a lower bound
    of ``rho`` over ``z``, if given) are summed (:func:`debye_terms_needed`); or those of ``plan``
    (:func:`order_plan`, whose ``v + 1`` is ``nu``).
    """
    if not isinstance(nu, Tensor):
        if plan is not None:
            constant, coef, nu_tensor = plan.debye_constant, plan.debye_coef, plan.debye_nu
        else:
            n_terms = None if rho_min is None else debye_terms_needed(nu, rho_min)
            constant, coef, nu_tensor = collapsed_sums(nu, z.dtype, z.device, n_terms)
        rho = torch.hypot(z, nu_tensor)
        sums = power_sum(rho.reciprocal(), coef) + constant
        s_u, s_d, s_x = sums.unbind(-1)  # one operation for the three
        return rho, s_u, s_d, s_x
    table = _tables(z.dtype, z.device)  # (power of p, k, 3)
    n_p, n_k = table.shape[:2]
    rho = torch.hypot(nu, z)
    p = nu / rho
    by_k = (powers(p, n_p) @ table.reshape(n_p, -1)).unflatten(-1, (n_k, 3))
    sums = (by_k * powers(1.0 / rho, n_k).unsqueeze(-1)).sum(-2)
    s_u, s_d, s_x = sums.unbind(-1)
    return rho, s_u, s_d, s_x


def debye_values(
    v: Tensor | float,
    z: Tensor,
    with_log: bool,
    rho_min: float | None = None,
    plan: OrderPlan | None = None,
) -> Tensor:
    """Uniform-expansion values (valid for ``sqrt(v^2 + z^2) >= 18``, so ``z > 0``), stacked like :func:`series_values`.

    ``v`` is one order per element of ``z``, or one order as a Python number. Everything comes from
    the expansions of ``I_mu`` and ``I'_mu`` at ``mu = v + 1`` (one evaluation of the Debye sums,
    DLMF 10.41.3 and 10.41.4):
    ``I_v / I_mu = I'_mu / I_mu + mu / z = (rho S + mu) / z`` with ``S = S_v / S_u = 1 + delta``,
    ``delta = S_d / S_u``, so ``R = z / (rho S + mu)`` and ``1 - R = (mu^2 / (rho + z) + mu + rho delta) /
    (rho S + mu)`` (``rho - z = mu^2 / (rho + z)``, no cancellation); ``log I_mu(z) e^-z`` is DLMF
    10.41.3, ``mu eta - z - log(2 pi rho) / 2 + log S_u`` with ``mu eta - z = mu^2 / (rho + z) - mu
    asinh(mu / z)``, and ``log I_v = log I_mu - log R``.

    The elasticity ``N = z R' / R``: with ``R' = (1 - R)(1 + R) - (2 mu - 1) R / z`` and ``z / R = rho S +
    mu``, ``N = (rho - z)(1 + R) + (1 + 2 rho delta) - (1 - R)(mu + rho delta)``. At large ``rho`` the
    first three terms of ``R'`` are each of order ``1 / z`` and ``R'`` of order ``1 / z^2``; here the
    part that cancels, ``1 + 2 rho delta = X / S_u``, comes from ``X = S_u + 2 rho S_d`` whose constant
    term cancels exactly in its coefficients (:func:`_debye_sums`), and what is left loses at most a
    factor of about ``mu`` (terms of order ``mu^2 / rho``, a result of order ``mu / rho``), not ``rho``.

    ``g - z = log_ive - v log z + v log 2 + log_gamma(v + 1)`` (``g`` the log of ``0F1``) is formed without
    adding ``z``, and ``KL = z R - g = -(g - z) - z (1 - R)`` with ``z (1 - R) = R (mu^2 / (rho + z) + mu +
    rho delta)``: both keep their relative accuracy at any ``z``, where ``z R`` and ``g`` agree to every
    digit from ``z`` of about ``1e16`` on. ``rho_min``: a lower bound of ``sqrt(mu^2 + z^2)`` over
    ``z``, if known (fewer terms of the sums, :func:`debye_terms_needed`). ``plan``: the constants of the
    order ``v`` (a number) from :func:`order_plan`, whose Debye terms then replace ``rho_min``'s.
    """
    mu = v + 1
    rho, s_u, s_d, s_x = _debye_sums(mu, z, rho_min, plan)
    delta = s_d / s_u
    denom = rho * (1 + delta) + mu
    # rho - z = mu^2 / (rho + z), with (rho + z) / 2 as lerp(rho, z, 1/2): rho + z overflows from z of
    # about 9e307 on, and the elasticity needs rho - z (of order mu^2 / z) there too
    rho_minus_z = (0.5 * mu * mu) / torch.lerp(rho, z, 0.5)
    ratio = z / denom
    rho_delta = rho * delta
    numerator = rho_minus_z + mu + rho_delta  # z (1 - R) / R
    complement = numerator / denom
    # (rho - z)(1 + R) + X / S_u - (1 - R)(mu + rho delta), in four operations (out of place:
    # torch.func.vmap has no batching rule for the in-place forms)
    elasticity = torch.addcmul(
        torch.addcdiv(torch.addcmul(rho_minus_z, rho_minus_z, ratio), s_x, s_u),
        complement,
        rho_delta + mu,
        value=-1,
    )
    inv_z = z.reciprocal()
    rows = [ratio, complement, ratio * inv_z, elasticity]
    if with_log:
        # log I_v e^-z = (mu eta - z) + log(S_u / (R sqrt(rho))) - log(2 pi) / 2: one logarithm of a
        # product of positive factors in place of three
        log_ive = (
            rho_minus_z
            - mu * torch.asinh(mu * inv_z)
            + torch.log(s_u / (ratio * rho.sqrt()))
            - 0.5 * math.log(2 * math.pi)
        )
        # log 0F1 - z = log I_v e^-z - v log z + (v log 2 + log_gamma(v + 1))
        if isinstance(v, Tensor):
            constant: Tensor | float = v * math.log(2) + torch.lgamma(v + 1)
        else:
            constant = v * math.log(2) + (log_gamma(v + 1) if plan is None else plan.lgamma)
        log_scaled = log_ive - v * torch.log(z) + constant
        kl = torch.addcmul(log_scaled, ratio, numerator).neg_()
        rows += [log_ive, log_scaled + z, log_scaled, kl]
    return torch.stack(rows)
