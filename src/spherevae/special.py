r"""Modified Bessel functions of the first kind in log space, for any order and argument.

Public functions (all pure torch, batched and broadcasting, differentiable twice in ``z``):

- :func:`log_ive` ``(v, z) = log(I_v(z) exp(-z))``, the log of the exponentially scaled Bessel function;
- :func:`ive_ratio` ``(v, z) = I_{v+1}(z) / I_v(z)``, the ratio that gives the mean resultant length of
  a von Mises-Fisher distribution, ``A_m(kappa) = ive_ratio(m/2 - 1, kappa)``;
- :func:`log_iv_normalized` ``(v, z) = log(Gamma(v+1) (2/z)^v I_v(z))``, the log of the power series
  ``0F1(; v+1; z^2/4)``; it is 0 at ``z = 0``, about ``z^2 / (4(v+1))`` for small ``z``, and its
  derivative is exactly ``ive_ratio(v, z)``. The vMF log-normaliser, entropy and KL are written with it,
  so that they keep every digit at small concentration, where the textbook formula subtracts two
  large numbers;
- :func:`log_ive_normalized` ``(v, z) = log_iv_normalized(v, z) - z`` and :func:`ive_ratio_complement`
  ``(v, z) = 1 - ive_ratio(v, z)``, formed without those subtractions: at large ``z`` they are about
  ``-(v + 1/2) log z`` and ``(v + 1/2) / z``, and the subtraction keeps no digit of them from ``z`` of
  about ``1e16`` on. The vMF log-density near its mode and the KL divergences at large concentration
  are written with them.

Method (chosen for accuracy over ``v in [0, 1e4]`` and every ``z`` from 0 to the largest float):

1. Series region, ``z^2 / (4 (v + 1)) <= 8`` or ``sqrt(v^2 + z^2) < 18``: the power series
   ``I_v(z) = (z/2)^v / Gamma(v+1) * sum_j (z^2/4)^j / (j! (v+1)_j)`` has positive terms only, so it is
   summed with no cancellation; the ratio is the quotient of the series of orders ``v+1`` and ``v``.
2. Elsewhere, the uniform asymptotic (Debye) expansion, DLMF 10.41.3 and 10.41.4, with the polynomials
   ``u_k(p)`` and ``v_k(p)`` of DLMF 10.41.10-12 generated exactly in rational arithmetic at import.
   Since ``u_k(p)`` is divisible by ``p^k`` and ``p / v = 1 / rho`` with ``rho = sqrt(v^2 + z^2)``, the
   expansion is a series in ``1 / rho`` that holds uniformly in ``p`` (so also at ``v = 0``, where it
   reduces to the Hankel expansion); it is used where ``rho >= 18``, and the series everywhere else
   (180 terms, summed in one vectorised ``cumprod``, suffice for every ``z^2 / (4(v+1)) <= 81``).
   The ratio itself comes from ``I_v / I_{v+1} = I'_{v+1} / I_{v+1} + (v+1)/z`` (a sum of positive
   terms, no cancellation) and ``1 - R`` is formed from a difference series whose coefficients are
   subtracted exactly, so that ``A'(kappa) = 1 - A^2 - (m-1) A / kappa`` keeps its digits at large
   ``kappa`` (the subtraction that gives the wrong sign in float32 in earlier code). The logarithm
   comes from the same expansion at order ``v + 1``: ``log I_v = log I_{v+1} - log R``.

One evaluation gives every quantity of one ``(v, z)`` pair at once (:func:`bessel_terms`); the
von Mises-Fisher distribution shares it between its sampler's gradient, its log-density and its KL
divergences (:func:`kl_to_uniform`, value ``z R - log 0F1`` and derivative ``z R' = R N`` from the same
terms; :func:`term_of` for the others). At the
batch sizes of training every tensor operation costs microseconds of dispatch, more than its
arithmetic, so the evaluation is written in few operations: cached coefficients for an order given as a
number, both regions merged in one operation, power sums formed directly where that is cheaper.

All arithmetic runs in float64 (float32 on Apple MPS, which has no float64) and the result is cast back
to the input dtype. Results: ``log_ive(v, 0) = 0`` for ``v = 0`` and ``-inf`` for ``v > 0`` (the exact
value, ``I_v(0) = 0``); ``ive_ratio(v, 0) = 0``; ``log_iv_normalized(v, 0) = 0``. Values too small for
the dtype (``R'`` of about ``(v + 1/2) / z^2`` from ``z`` of about ``1e154`` on in float64) underflow to
subnormal numbers or 0, no earlier: products are formed in the order that keeps them representable.

Derivatives (custom autograd; every first derivative is evaluated without cancellation):
``d/dz log_ive = v/z - (1 - R)``, ``d/dz log_iv_normalized = R``, ``d/dz log_ive_normalized = -(1 -
R)``, ``d/dz R = (1 - R)(1 + R) - (2v + 1) R / z = (R / z) N``, with ``R / z -> 1 / (2(v+1))`` and ``N ->
1`` at ``z = 0``; the second derivative ``R''`` from the Riccati equation, ``(R / z)((2v + 1)(1 - N) / z -
2 R N)``, and at large ``z`` from the asymptotic series (step 3), whose terms do not cancel. Third
derivatives are not provided, nor derivatives in ``v`` (a fixed order in every use here).

References:
    NIST Digital Library of Mathematical Functions, sections 10.25, 10.29, 10.40, 10.41.
    D. E. Amos (1974), Computation of modified Bessel functions and their ratios, Math. Comp. 28.
    F. W. J. Olver (1997), Asymptotics and Special Functions, chapter 10.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from fractions import Fraction
from functools import lru_cache
from typing import Any, NamedTuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = [
    "ive_ratio",
    "ive_ratio_complement",
    "log_iv_normalized",
    "log_ive",
    "log_ive_normalized",
]

_SERIES_MAX_C = 8.0  # the series is also used wherever c = z^2 / (4 (v + 1)) <= 8 ...
_DEBYE_MIN_RHO = 18.0  # ... and wherever sqrt(v^2 + z^2) < 18; there c < 18^2 / 4 = 81
# term j of the series is at most c^j / j!; at j = 180, c = 81 the tail is below e^-44 of the sum
_SERIES_TERMS = 180
_DEBYE_TERMS = (
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
def _debye_coefficient_tables() -> tuple[list[list[float]], list[list[float]], list[list[float]]]:
    """Coefficient tables ``[power of p][k]`` for ``u_k / p^k``, ``d_k / p^k`` and ``x_k``.

    With ``d_k = v_k - u_k``, ``x_k = u_k / p^k + 2 d_(k+1) / p^(k+1)``: the coefficients of
    ``S_u + 2 rho S_d = sum_k x_k(p) / rho^k``, whose constant term ``1 + 2 d_1 / p = p^2`` is formed
    exactly here (``d_1 = -p (1 - p^2) / 2``), not by subtracting ``1`` from a sum of order one at run
    time (see :func:`_debye`). Each entry is the exact rational coefficient rounded once to float64 (an
    integer true division is correctly rounded).
    """
    us, vs = _debye_polynomials(_DEBYE_TERMS + 1)
    ds = [_poly_add(vs[k], _poly_mul(([-1], 1), us[k])) for k in range(_DEBYE_TERMS + 1)]
    degree = 2 * _DEBYE_TERMS + 1  # x_k / p^0 .. p^(2k + 2)
    u_table = [[0.0] * _DEBYE_TERMS for _ in range(degree)]
    d_table = [[0.0] * _DEBYE_TERMS for _ in range(degree)]
    x_table = [[0.0] * _DEBYE_TERMS for _ in range(degree)]
    for k in range(_DEBYE_TERMS):
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
    """The three tables of :func:`_debye_coefficient_tables` stacked ``(power of p, k, 3)`` (cached)."""
    key = (dtype, device)
    if key not in _TABLE_CACHE:
        _TABLE_CACHE[key] = torch.tensor(
            _debye_coefficient_tables(), dtype=dtype, device=device
        ).permute(1, 2, 0)
    return _TABLE_CACHE[key]


def _powers(x: Tensor, n: int) -> Tensor:
    """``[x^0, ..., x^(n-1)]`` along a new last axis."""
    ones = torch.ones_like(x).unsqueeze(-1)
    if n == 1:
        return ones
    return torch.cat([ones, torch.cumprod(x.unsqueeze(-1).expand(*x.shape, n - 1), dim=-1)], dim=-1)


# torch.compiler.is_compiling exists from torch 2.3 on; before it the eager forms are traced
# (the same values, slower kernels)
_IS_COMPILING = getattr(torch.compiler, "is_compiling", None)


def is_compiling() -> bool:
    """Whether ``torch.compile`` is tracing the caller (``torch.compiler.is_compiling``; ``False`` on a
    torch without it, where the compiled kernels are not used)."""
    return bool(_IS_COMPILING()) if _IS_COMPILING is not None else False


_POWER_BLOCK = 8


def _column_major(coef: Tensor) -> Tensor:
    """``coef`` ``(n, c)`` with the same values, stored so that ``coef.t()`` is contiguous (for
    :func:`_power_sum`'s transposed product)."""
    return coef.t().contiguous().t()


def _block_coefficients(coef: Tensor) -> tuple[Tensor, int]:
    """``coef`` ``(n, c)`` laid out for :func:`_power_sum`: ``(8, n_blocks * c)`` and ``n_blocks``.

    Row ``i - 1``, column ``(b, l)`` holds ``coef[8 b + i - 1, l]`` (zero past ``n``).
    """
    n, c = coef.shape
    n_blocks = -(-n // _POWER_BLOCK)
    if n_blocks * _POWER_BLOCK > n:
        coef = torch.cat([coef, coef.new_zeros(n_blocks * _POWER_BLOCK - n, c)])
    blocked = coef.reshape(n_blocks, _POWER_BLOCK, c).transpose(0, 1).reshape(_POWER_BLOCK, -1)
    return blocked, n_blocks


# a power sum forms all n powers per element (one cumprod, one matrix product) when there are few terms
# or few elements, and the blocked form otherwise (measured on a CPU: the direct form is faster up to
# 64 terms at any batch size, and up to 180 terms at 64 elements; the blocked one at 180 terms and more
# than a few hundred elements)
_DIRECT_POWERS_MAX_TERMS = 64
_DIRECT_POWERS_MAX_ELEMENTS = 16384
# from this many elements the direct form's product runs as (c, n) @ (n, elements): a matrix product
# with c = 2 columns is about twice as slow as its transpose with 2 rows on a CPU (measured: 33 against
# 15 us at 1024 elements and 49 terms, 510 against 237 us at 16384), while at 64 elements it is 1 us
# faster as it is
_TRANSPOSED_PRODUCT_MIN_ELEMENTS = 256


def _power_sum(x: Tensor, coef: Tensor, blocked: tuple[Tensor, int] | None = None) -> Tensor:
    """``sum_{j=1..n} x^j coef[j - 1]`` for ``x`` of shape ``(...)`` and ``coef`` ``(n, c)``: ``(..., c)``.

    With few terms or few elements, the powers ``x^1 .. x^n`` are formed at once (four tensor
    operations: at small sizes each operation's dispatch costs more than its arithmetic). Otherwise
    blocked (Paterson and Stockmeyer): with ``j = 8 b + i`` and ``y = x^8`` the sum is
    ``sum_b y^b (sum_{i=1..8} x^i coef[8 b + i - 1])``, whose inner sums for every block are one
    matrix product with the powers ``x^1 .. x^8``; ``blocked = _block_coefficients(coef)`` if the
    caller has it cached. The same terms are added either way, but the blocked form never holds ``n``
    powers per element: on a CPU such a tensor (hundreds of KB at batch 1024 and 180 terms) costs
    more in page faults than all the arithmetic. Under ``torch.compile``, Horner's rule (the terms are
    then added in another order: equal to rounding).
    """
    n = coef.shape[0]
    if is_compiling():
        # traced by torch.compile: Horner's rule, n fused multiply-adds per element in one generated
        # loop, where the cumulative product and the matrix product would be two library calls; the
        # columns lead (c, ...), so that the loop runs along the elements of x, not along the c = 2
        # columns
        row = x.unsqueeze(0)
        columns = coef.reshape(n, coef.shape[1], *([1] * x.dim()))
        acc = columns[n - 1].expand(coef.shape[1], *x.shape)
        for j in range(n - 2, -1, -1):
            acc = torch.addcmul(columns[j], acc, row)
        return (acc * row).movedim(0, -1)
    if n <= _DIRECT_POWERS_MAX_TERMS or x.numel() * n <= _DIRECT_POWERS_MAX_ELEMENTS:
        powers = torch.cumprod(x.unsqueeze(-1).expand(*x.shape, n), dim=-1)
        if x.numel() < _TRANSPOSED_PRODUCT_MIN_ELEMENTS:
            return powers @ coef
        # (c, n) @ (n, elements), transposed back as a view; the cached coefficients are stored
        # column-major (_column_major), so that their transpose needs no copy
        coef_t = coef.t()
        if not coef_t.is_contiguous():
            coef_t = coef_t.contiguous()
        sums = (coef_t @ powers.view(-1, n).t()).t()
        return sums if x.dim() == 1 else sums.reshape(*x.shape, coef.shape[1])
    coef_blocked, n_blocks = blocked if blocked is not None else _block_coefficients(coef)
    c = coef.shape[1]
    low = torch.cumprod(x.unsqueeze(-1).expand(*x.shape, _POWER_BLOCK), dim=-1)  # x^1 .. x^8
    blocks = (low @ coef_blocked).reshape(*x.shape, n_blocks, c)
    if n_blocks == 1:
        return blocks[..., 0, :]
    y = low[..., -1:]  # x^8
    y_pows = torch.cumprod(y.expand(*x.shape, n_blocks - 1), dim=-1)  # y^1 .. y^(n_blocks - 1)
    return blocks[..., 0, :] + (blocks[..., 1:, :] * y_pows.unsqueeze(-1)).sum(-2)


@lru_cache(maxsize=256)
def _debye_collapsed(
    nu: float, dtype: torch.dtype, device: torch.device, n_terms: int | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Coefficients ``C[n] = sum_{j + k = n} T[j, k] nu^j`` of the Debye sums as series in ``1 / rho``.

    For one order ``nu``, ``p^j / rho^k = nu^j / rho^(j + k)`` (``p = nu / rho``), so both double sums
    of :func:`_debye_sums` are single power series in ``1 / rho``: the same terms, summed in another
    order. ``T`` stacks the ``u``, ``v - u`` and ``x`` tables (:func:`_debye_coefficient_tables`).
    Returns the constant terms ``C[0]`` ``(3,)`` (``(1, 0, 0)``), the others ``C[1:]`` (only the first
    ``n_terms`` of them, if given) and ``nu`` as a 0-dimensional tensor.
    """
    if n_terms is not None:
        constant, coef, nu_tensor = _debye_collapsed(nu, dtype, device)
        return constant, _column_major(coef[:n_terms]), nu_tensor
    table = _tables(torch.float64, torch.device("cpu"))  # (power of p, k, 3)
    n_p, n_k = table.shape[:2]
    weighted = table * torch.tensor(float(nu), dtype=torch.float64).pow(
        torch.arange(n_p, dtype=torch.float64)
    ).reshape(n_p, 1, 1)
    index = (torch.arange(n_p).unsqueeze(-1) + torch.arange(n_k)).reshape(-1)
    collapsed = torch.zeros(n_p + n_k - 1, 3, dtype=torch.float64)
    collapsed.index_add_(0, index, weighted.reshape(-1, 3))
    collapsed = collapsed.to(dtype=dtype, device=device)
    return collapsed[0], _column_major(collapsed[1:]), torch.tensor(nu, dtype=dtype, device=device)


# the collapsed Debye sums drop their terms beyond the n-th where, from the smallest rho of the batch
# on, the left-out terms add less than this to S_u, to rho S_d (both of order 1 in the results) and to
# rho (S_u + 2 rho S_d), whose terms enter the elasticity of the ratio, of order 1 / rho at large rho
_DEBYE_TAIL = 1e-17


# _debye_radii evaluates the left-out terms on this grid of rho (ratio 1.045 between neighbours), from
# the start of the Debye region to 1e20, beyond which the first power alone suffices
_DEBYE_RADIUS_GRID = torch.logspace(
    math.log10(_DEBYE_MIN_RHO), 20.0, 1000, dtype=torch.float64
).tolist()


@lru_cache(maxsize=64)
def _debye_radii(nu: float) -> tuple[float, ...]:
    """Entry ``n - 1``: a ``rho`` from which the first ``n`` powers of ``1 / rho`` of the collapsed Debye
    sums of order ``nu`` suffice (:func:`_debye_terms`); non-increasing in ``n``.

    With ``C[k]`` the coefficients of :func:`_debye_collapsed`, the left-out terms are bounded by
    ``sum_(k > n) |C_u[k]| rho^-k`` in ``S_u``, ``sum_(k > n) |C_d[k]| rho^(1-k)`` in ``rho S_d`` and
    ``sum_(k > n) |C_x[k]| rho^(1-k)`` in ``rho X``, ``X = S_u + 2 rho S_d`` (see :func:`_debye`), all
    falling with ``rho`` (``k >= 2``). They are evaluated for every ``n`` at once on a grid of ``rho``
    (``_DEBYE_RADIUS_GRID``, 4.5% apart: a grid point is at most 4.5% beyond the exact radius), and
    the radius is the first grid point from which the larger stays below ``_DEBYE_TAIL``. The last
    entry (every term) is 0: that is the sum as it always is. About a millisecond, once per order.
    """
    _, coef, _ = _debye_collapsed(nu, torch.float64, torch.device("cpu"))
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


def _debye_terms(nu: float, rho_min: float) -> int:
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
    ``X`` from the coefficients ``x_k`` of :func:`_debye_coefficient_tables`, whose constant term ``p^2``
    is exact (the ``1`` of ``S_u`` and the ``-1`` of ``2 rho S_d`` cancel in the coefficients, not in the
    sums). For one order given as a Python number, as one power series in ``1 / rho``
    (:func:`_debye_collapsed`), of which only the terms that matter from ``rho_min`` on (a lower bound
    of ``rho`` over ``z``, if given) are summed (:func:`_debye_terms`); or those of ``plan``
    (:func:`order_plan`, whose ``v + 1`` is ``nu``).
    """
    if not isinstance(nu, Tensor):
        if plan is not None:
            constant, coef, nu_tensor = plan.debye_constant, plan.debye_coef, plan.debye_nu
        else:
            n_terms = None if rho_min is None else _debye_terms(nu, rho_min)
            constant, coef, nu_tensor = _debye_collapsed(nu, z.dtype, z.device, n_terms)
        rho = torch.hypot(z, nu_tensor)
        sums = _power_sum(rho.reciprocal(), coef) + constant
        s_u, s_d, s_x = sums.unbind(-1)  # one operation for the three
        return rho, s_u, s_d, s_x
    table = _tables(z.dtype, z.device)  # (power of p, k, 3)
    n_p, n_k = table.shape[:2]
    rho = torch.hypot(nu, z)
    p = nu / rho
    by_k = (_powers(p, n_p) @ table.reshape(n_p, -1)).unflatten(-1, (n_k, 3))
    sums = (by_k * _powers(1.0 / rho, n_k).unsqueeze(-1)).sum(-2)
    s_u, s_d, s_x = sums.unbind(-1)
    return rho, s_u, s_d, s_x


_SERIES_SCALE = 81.0  # largest c = z^2 / (4 (v + 1)) in the series region


# _series_terms(c) is the fewest n with c^n / (n+1)! < 1e-17, i.e. with c below the threshold
# (1e-17 (n+1)!)^(1/n); the thresholds grow with n, so the answer is one bisection
_SERIES_TERM_THRESHOLDS = [
    math.exp((math.log(1e-17) + math.lgamma(n + 2)) / n) for n in range(1, _SERIES_TERMS)
]


def _series_terms(c_max: float, v: float | None = None) -> int:
    """Fewest terms ``n`` whose tail ``c^(n+1) / (n+1)!`` is below ``1e-17`` of the first term ``c``.

    Term ``j`` of the tail series is at most ``c^j / j!`` (since ``(v+1)_j >= (v+1)^j``), and the sum is at
    least its first term ``c``; so ``n`` terms leave a relative error below ``c^n / (n+1)! < 1e-17``.
    ``c <= 81`` needs the full 180; ``c <= 1`` (small arguments, the usual case for small kappa) 19.
    Given the order ``v`` (a number), also the bound of :func:`_series_order_thresholds`, which keeps
    the factor ``(v+1)^j / (v+1)_j`` and needs fewer terms for small orders (27 instead of 51 at ``v =
    4``, ``c = 9.8``); the smaller count of the two.
    """
    if c_max <= 0.0:
        return 1
    n = bisect.bisect_right(_SERIES_TERM_THRESHOLDS, c_max) + 1
    if v is not None:
        n = min(n, bisect.bisect_right(_series_order_thresholds(v), c_max) + 1)
    return n


@lru_cache(maxsize=256)
def _series_order_thresholds(v: float) -> list[float]:
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
    for n in range(1, _SERIES_TERMS):
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


def _series_coefficients(v: Tensor, n_terms: int = _SERIES_TERMS) -> Tensor:
    """``d_j = (81 (v+1))^j / (j! (v+1)_j)`` for orders ``v`` and ``v + 1``: ``v.shape + (terms, 2)``.

    A ``cumprod`` of ``81 (v + 1) / (i (v' + i))``; every factor is at most ``81 / i``, so ``d_j <= 81^j / j!``
    stays below ``e^81`` and nothing overflows, whatever the order.
    """
    j = torch.arange(1, n_terms + 1, dtype=v.dtype, device=v.device).unsqueeze(-1)
    scale = (_SERIES_SCALE * (v + 1)).unsqueeze(-1).unsqueeze(-1)  # (..., 1, 1)
    orders = torch.stack([v, v + 1], dim=-1).unsqueeze(-2)  # (..., 1, 2)
    return torch.cumprod(scale / (j * (orders + j)), dim=-2)


@lru_cache(maxsize=256)
def _series_cached(
    v: float, n_terms: int, dtype: torch.dtype, device: torch.device
) -> tuple[Tensor, tuple[Tensor, int]]:
    """:func:`_series_coefficients` of one order given as a number, also laid out for the blocked
    :func:`_power_sum`. Cached: a training loop evaluates the same order at every step, with a handful
    of term counts."""
    coef = _series_coefficients(torch.tensor(v, dtype=dtype, device=device), n_terms)
    return _column_major(coef), _block_coefficients(coef)


@lru_cache(maxsize=256)
def _lgamma(x: float) -> float:
    """``lgamma(x)`` as torch computes it in float64 (a number order and its tensor agree bitwise)."""
    return float(torch.lgamma(torch.tensor(x, dtype=torch.float64)))


def _series_threshold(v: float) -> float:
    """For one order ``v``: the series region ``c <= 8`` or ``sqrt(v^2 + z^2) < 18`` is ``z <= this``."""
    by_c = math.sqrt(4 * _SERIES_MAX_C * (v + 1))
    by_rho = math.sqrt(_DEBYE_MIN_RHO**2 - v * v) if v < _DEBYE_MIN_RHO else 0.0
    return max(by_c, by_rho)


# Up to this many elements the CPU evaluates both regions on every element when both occur, and merges
# them with torch.where: at these sizes the dozen indexing operations of a split cost more than
# evaluating each region on every element.
_MERGE_BY_WHERE_MAX_ELEMENTS = 512

# Rows of the stacked values that the region functions return, in this order (the first four always,
# the last four with the logarithms)
_RATIO, _COMPLEMENT, _RATIO_OVER_Z, _ELASTICITY = range(4)
_LOG_IVE, _LOG_NORMALIZED, _LOG_SCALED, _KL = range(4, 8)
_ROWS_WITHOUT_LOG, _ROWS_WITH_LOG = 4, 8


def _series(
    v: Tensor | float,
    z: Tensor,
    with_log: bool,
    n_terms: int = _SERIES_TERMS,
    plan: OrderPlan | None = None,
) -> Tensor:
    """Power-series values (valid for ``c = z^2 / (4(v+1)) <= 81``), stacked ``(4 or 8, *z.shape)``.

    Rows: ``R``, ``1 - R``, ``R / z``, the elasticity ``N = z R' / R`` and, ``with_log``, ``log_ive``,
    ``g = log_normalized``, ``g - z`` and ``KL = z R - g`` (see :class:`BesselTerms`); ``N = (1 - R)(1 +
    R) / (R / z) - (2v + 1)`` from ``R' = (1 - R)(1 + R) - (2v + 1) R / z``, 1 at ``z = 0``.
    ``0F1(; v+1; z^2/4) - 1 = sum_{j >= 1} (c / 81)^j d_j``, with powers of ``c / 81 <= 1``; ``v`` is
    one order as a Python number (the usual case: the coefficients are cached), one order as a
    0-dimensional tensor (the sums are then one power sum, :func:`_power_sum`), or one order per
    element of ``z``. ``n_terms`` (see :func:`_series_terms`) may be fewer than 180 where every ``c`` is
    known to be small. A number and a float64 tensor of the same order give bitwise equal results.
    ``plan``: the constants of the order ``v`` (a number) from :func:`order_plan`, whose series terms
    then replace ``n_terms``.
    """
    c_scaled = z * z / ((4 * _SERIES_SCALE) * (v + 1))  # c / 81
    if plan is not None:
        tails = _power_sum(c_scaled, plan.series_coef, plan.series_blocked)
        lgamma: Tensor | float = plan.lgamma
    elif not isinstance(v, Tensor):
        tails = _power_sum(c_scaled, *_series_cached(v, n_terms, z.dtype, z.device))
        lgamma = _lgamma(v + 1)
    else:
        if v.dim() == 0:
            tails = _power_sum(c_scaled, _series_coefficients(v, n_terms))
        else:
            coef = _series_coefficients(v, n_terms)
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


def _debye(
    v: Tensor | float,
    z: Tensor,
    with_log: bool,
    rho_min: float | None = None,
    plan: OrderPlan | None = None,
) -> Tensor:
    """Uniform-expansion values (valid for ``sqrt(v^2 + z^2) >= 18``, so ``z > 0``), stacked like :func:`_series`.

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

    ``g - z = log_ive - v log z + v log 2 + lgamma(v + 1)`` (``g`` the log of ``0F1``) is formed without
    adding ``z``, and ``KL = z R - g = -(g - z) - z (1 - R)`` with ``z (1 - R) = R (mu^2 / (rho + z) + mu +
    rho delta)``: both keep their relative accuracy at any ``z``, where ``z R`` and ``g`` agree to every
    digit from ``z`` of about ``1e16`` on. ``rho_min``: a lower bound of ``sqrt(mu^2 + z^2)`` over
    ``z``, if known (fewer terms of the sums, :func:`_debye_terms`). ``plan``: the constants of the
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
    # (rho - z)(1 + R) + X / S_u - (1 - R)(mu + rho delta), in four operations
    elasticity = (
        torch.addcmul(rho_minus_z, rho_minus_z, ratio)
        .addcdiv_(s_x, s_u)
        .addcmul_(complement, rho_delta + mu, value=-1)
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
        # log 0F1 - z = log I_v e^-z - v log z + (v log 2 + lgamma(v + 1))
        if isinstance(v, Tensor):
            constant: Tensor | float = v * math.log(2) + torch.lgamma(v + 1)
        else:
            constant = v * math.log(2) + (_lgamma(v + 1) if plan is None else plan.lgamma)
        log_scaled = log_ive - v * torch.log(z) + constant
        kl = torch.addcmul(log_scaled, ratio, numerator).neg_()
        rows += [log_ive, log_scaled + z, log_scaled, kl]
    return torch.stack(rows)


def _broadcast_shape(v: torch.Size, z: torch.Size) -> torch.Size:
    """``torch.broadcast_shapes(v, z)``, without its cost (Python reference code, about 20 us) in the
    usual cases: one order (``v`` 0-dimensional) or equal shapes."""
    if len(v) == 0 or v == z:
        return z
    return torch.Size(torch.broadcast_shapes(v, z))


def _compute_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64


class _BesselValues:
    """Every quantity for one broadcast ``(v, z)`` pair, in the working dtype.

    On the CPU each region is evaluated on its own elements only. On accelerators both regions are
    evaluated everywhere (with harmless placeholder arguments) and merged with ``torch.where``, which
    never waits on the device: no host round trip at run time. The regions return their values stacked
    in rows (:func:`_series`), so that a merge is one operation for all of them: at the batch sizes of
    training every tensor operation costs microseconds of dispatch, more than its arithmetic.
    """

    def __init__(
        self, v: Tensor, z: Tensor, with_log: bool = True, v_number: float | None = None
    ) -> None:
        """``v_number``: the order ``v`` as a Python number, when it is one (its series coefficients are
        then cached, the Debye sums are one power series, :func:`_debye_collapsed`, and the regions are
        told apart by one comparison). On the CPU a 0-dimensional ``v`` is read as a number."""
        shape = _broadcast_shape(v.shape, z.shape)
        # views only where needed (each is an operation): a single order broadcasts as it is
        self.v = v if v.dim() == 0 else v.expand(shape)
        self.z = z if z.shape == shape else z.expand(shape)
        z = self.z if self.z.dim() == 1 else self.z.reshape(-1)
        on_cpu = z.device.type == "cpu"
        if v_number is None and v.dim() == 0 and on_cpu:
            v_number = float(v)  # no wait on the CPU; a number and a 0-dim order give equal results
        v_full = self.v if v_number is not None else self.v.expand(shape).reshape(-1)
        n_rows = _ROWS_WITH_LOG if with_log else _ROWS_WITHOUT_LOG
        if z.numel() == 0:
            values = z.new_empty(n_rows, 0)
        elif on_cpu:
            values = self._on_cpu(v_full, z, with_log, v_number)
        else:
            values = self._everywhere(v, v_full, z, with_log, v_number)
        if values.shape[1:] != shape:
            values = values.reshape(n_rows, *shape)
        rows = values.unbind(0)
        self.ratio, self.complement, self.ratio_over_z, self.elasticity = rows[:_ROWS_WITHOUT_LOG]
        if with_log:
            self.log_ive, self.log_normalized, self.log_scaled, self.kl = rows[_ROWS_WITHOUT_LOG:]

    @staticmethod
    def _in_series(v: Tensor, z: Tensor) -> Tensor:
        return (z * z <= (4 * _SERIES_MAX_C) * (v + 1)) | (torch.hypot(v, z) < _DEBYE_MIN_RHO)

    @staticmethod
    def _on_cpu(v: Tensor, z: Tensor, with_log: bool, v_number: float | None) -> Tensor:
        """Each region on its own elements; a region with no element is not evaluated at all."""
        if v_number is not None:
            # one order: the series region is z <= threshold, and the extremes of z decide whether
            # both regions occur
            threshold = _series_threshold(v_number)
            z_min, z_max = (float(x) for x in torch.aminmax(z))
            if z_min < 0:
                raise ValueError(f"Bessel argument z must be >= 0, got z={z_min}")
            c_max = z_max * z_max / (4 * (v_number + 1))
            if z_max <= threshold:
                return _series(v_number, z, with_log, _series_terms(c_max, v_number))
            if z_min > threshold:
                return _debye(v_number, z, with_log, math.hypot(v_number + 1, z_min))
            if z.numel() <= _MERGE_BY_WHERE_MAX_ELEMENTS:
                return _BesselValues._everywhere(v, v, z, with_log, v_number)
            in_series = z <= threshold
        else:
            if bool((z < 0).any()):
                raise ValueError(f"Bessel argument z must be >= 0, got z={z[z < 0][0].item()}")
            in_series = _BesselValues._in_series(v, z)
            n_series = int(in_series.sum())
            if n_series == z.numel():
                c_max = float((z * z / (4 * (v + 1))).max())
                return _series(v, z, with_log, _series_terms(c_max))
            if n_series == 0:
                return _debye(v, z, with_log)
        series_idx = in_series.nonzero().squeeze(-1)
        debye_idx = (~in_series).nonzero().squeeze(-1)
        z_s, z_d = z[series_idx], z[debye_idx]
        v_s: Tensor | float = v[series_idx] if v_number is None else v_number
        v_d: Tensor | float = v[debye_idx] if v_number is None else v_number
        c_max = float((z_s * z_s / (4 * (v_s + 1))).max())
        values = z.new_empty(_ROWS_WITH_LOG if with_log else _ROWS_WITHOUT_LOG, z.numel())
        n_terms = _series_terms(c_max, v_number)
        values[:, series_idx] = _series(v_s, z_s, with_log, n_terms)
        values[:, debye_idx] = _debye(v_d, z_d, with_log)
        return values

    @staticmethod
    def _everywhere(
        v: Tensor, v_full: Tensor, z: Tensor, with_log: bool, v_number: float | None
    ) -> Tensor:
        """Both regions on every element, merged with ``torch.where`` (no host round trip).

        With one order given as a number, the series needs only the terms for the largest ``c`` of its
        region, ``c`` at the threshold; else all 180.
        """
        if v_number is not None:
            return merged_values(z, with_log, order_plan(v_number, z.dtype, z.device))
        in_series = _BesselValues._in_series(v_full, z)
        z_series = torch.where(in_series, z, 0.0)
        z_debye = torch.where(in_series, _DEBYE_MIN_RHO, z)
        series = _series(v if v.dim() == 0 else v_full, z_series, with_log, _SERIES_TERMS)
        return torch.where(in_series, series, _debye(v_full, z_debye, with_log))


class OrderPlan(NamedTuple):
    """What the evaluation at one order ``v`` (a Python number) needs that does not depend on ``z``.

    ``threshold``: the series region is ``z <= threshold`` (:func:`_series_threshold`);
    ``series_coef`` and ``series_blocked``: the series coefficients (:func:`_series_cached`) with the
    terms for ``c`` at the threshold, the largest of the region; ``lgamma = lgamma(v + 1)``;
    ``debye_*``: the collapsed Debye sums of order ``v + 1`` (:func:`_debye_collapsed`) with the terms
    for ``rho`` from ``hypot(v + 1, threshold)`` on, the smallest of the Debye region.
    """

    v: float
    threshold: float
    series_coef: Tensor
    series_blocked: tuple[Tensor, int]
    lgamma: float
    debye_constant: Tensor
    debye_coef: Tensor
    debye_nu: Tensor


@lru_cache(maxsize=256)
def order_plan(v: float, dtype: torch.dtype, device: torch.device) -> OrderPlan:
    """The :class:`OrderPlan` of the order ``v`` (cached per order, dtype and device)."""
    threshold = _series_threshold(v)
    n_series = _series_terms(threshold * threshold / (4 * (v + 1)), v)
    coef, blocked = _series_cached(v, n_series, dtype, device)
    mu = v + 1
    n_debye = _debye_terms(mu, math.hypot(mu, threshold))
    constant, debye_coef, nu = _debye_collapsed(mu, dtype, device, n_debye)
    return OrderPlan(v, threshold, coef, blocked, _lgamma(mu), constant, debye_coef, nu)


def merged_values(z: Tensor, with_log: bool, plan: OrderPlan) -> Tensor:
    """Both regions on every element of ``z`` for the order of ``plan``, merged by ``torch.where``.

    No data-dependent branch and no host round trip: what accelerators run, and what
    ``torch.compile`` can fuse into one kernel (``spherevae.distributions._fused``). The Debye
    region's placeholder argument 18 keeps its values finite where the series is taken. Returns the
    rows of :func:`_series`, ``(4 or 8, *z.shape)``.
    """
    in_series = z <= plan.threshold
    z_series = torch.where(in_series, z, 0.0)
    z_debye = torch.where(in_series, _DEBYE_MIN_RHO, z)
    series = _series(plan.v, z_series, with_log, plan=plan)
    return torch.where(in_series, series, _debye(plan.v, z_debye, with_log, plan=plan))


def _check_order(v: float) -> None:
    if not (math.isfinite(v) and v >= 0):
        raise ValueError(f"Bessel order v must be finite and >= 0, got v={v}")


def _prepare(v: Tensor | float, z: Tensor | float) -> tuple[Tensor, Tensor, torch.dtype]:
    """Validate (on the CPU only, to never wait on an accelerator), upcast; return the output dtype."""
    z_t = torch.as_tensor(z)
    if not z_t.is_floating_point():
        z_t = z_t.to(torch.get_default_dtype())
    work = _compute_dtype(z_t.device)
    if isinstance(v, Tensor):
        v_t = v.to(z_t.device)
        out_dtype = (
            torch.promote_types(z_t.dtype, v_t.dtype) if v_t.is_floating_point() else z_t.dtype
        )
    else:  # a Python number: straight to the working dtype (no rounding to float32), no promotion
        _check_order(v)
        v_t = _order_tensor(float(v), work, z_t.device)
        out_dtype = z_t.dtype
    v64, z64 = v_t.to(work), z_t.to(work)
    if v64.device.type == "cpu" and isinstance(v, Tensor):
        bad_v = (v64 < 0) | ~v64.isfinite()
        if bool(bad_v.any()):
            raise ValueError(
                f"Bessel order v must be finite and >= 0, got v={v64[bad_v][0].item()}"
            )
    # z < 0 is rejected by _BesselValues, which reads the extremes of z on the CPU anyway
    return v64, z64, out_dtype


@lru_cache(maxsize=64)
def _order_tensor(v: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A number order as a 0-dimensional tensor, made once (read only: autograd saves it, nobody
    writes to it)."""
    return torch.tensor(v, dtype=dtype, device=device)


def _ratio_derivative(ratio_over_z: Tensor, elasticity: Tensor) -> Tensor:
    """``dR/dz = (R / z) N`` from the elasticity ``N = z R' / R`` (formed without cancellation)."""
    return ratio_over_z * elasticity


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
    first ``K = _FAR_TERMS`` serve the second derivatives (:func:`_second_derivative`).

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
def _far_coefficients(v: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``(K, 2)``: ``k (k + 1) a_k`` and ``k^2 a_k`` (:func:`_far_series`), each rounded once."""
    a, _ = _far_series(v)
    rows = [[float(k * (k + 1) * x), float(k * k * x)] for k, x in enumerate(a[:-1], start=1)]
    return _column_major(torch.tensor(rows, dtype=dtype, device=device))


def _second_derivative(
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
    if v_number is None and v.dim() == 0 and v.device.type == "cpu":
        v_number = float(v)
    if v_number is None:
        return riccati
    _, z_far = _far_series(v_number)
    if math.isinf(z_far):
        return riccati
    y = torch.clamp(z, min=z_far).reciprocal()
    sums = _power_sum(y, _far_coefficients(v_number, z.dtype, z.device))  # sum_k w_k a_k y^k
    far = (-(y * y) * sums[..., 0]) if not scaled else (-y * sums[..., 1])
    return torch.where(z >= z_far, far, riccati)


class _RatioDerivative(torch.autograd.Function):
    """``R'(z)`` (or, ``scaled``, ``z R'(z)``) from saved no-grad values, with the derivative
    :func:`_second_derivative`: the first derivative of :class:`_IveRatio` (and of
    :class:`_KlToUniform`) as a function of ``z``, for a double backward. Not differentiable again."""

    @staticmethod
    def forward(
        ctx: Any,
        v: Tensor,
        z: Tensor,
        ratio: Tensor,
        ratio_over_z: Tensor,
        elasticity: Tensor,
        scaled: bool,
        v_number: float | None,
    ) -> Tensor:
        ctx.save_for_backward(v, z, ratio, ratio_over_z, elasticity)
        ctx.scaled, ctx.v_number = scaled, v_number
        return (ratio if scaled else ratio_over_z) * elasticity

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[None, Tensor, None, None, None, None, None]:
        v, z, ratio, ratio_over_z, elasticity = ctx.saved_tensors
        second = _second_derivative(v, z, ratio, ratio_over_z, elasticity, ctx.v_number, ctx.scaled)
        return None, grad * second, None, None, None, None, None


def _first_derivative(ctx: Any, grad: Tensor) -> Tensor:
    """``grad R'`` at the saved ``z`` of an autograd function that saved ``(v, z, ratio, ratio_over_z,
    elasticity)``: through a function of ``z`` (:class:`_RatioDerivative`) when the backward is recorded
    (a double backward), else as ``(grad (R / z)) N``, in that order: ``R' = (R / z) N`` underflows from
    ``z`` of about ``1e154`` on, where ``grad R'`` need not (``z`` times it, the KL's derivative)."""
    v, z, ratio, ratio_over_z, elasticity = ctx.saved_tensors
    if torch.is_grad_enabled():
        derivative: Tensor = _RatioDerivative.apply(
            v, z, ratio, ratio_over_z, elasticity, False, ctx.v_number
        )
        return grad * derivative
    product: Tensor = (grad * ratio_over_z) * elasticity
    return product


def _save_ratio_terms(ctx: Any, v: Tensor, z: Tensor, vals: Any, v_number: float | None) -> None:
    # the inputs themselves (not copies), so that a double backward reaches z
    ctx.save_for_backward(v, z, vals.ratio, vals.ratio_over_z, vals.elasticity)
    ctx.v_number = v_number


class _IveRatio(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, v: Tensor, z: Tensor, v_number: float | None = None) -> Tensor:
        vals = _BesselValues(v, z, with_log=False, v_number=v_number)
        _save_ratio_terms(ctx, v, z, vals, v_number)
        return vals.ratio

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, Tensor, None]:
        return None, _first_derivative(ctx, grad), None


class _IveRatioComplement(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, v: Tensor, z: Tensor, v_number: float | None = None) -> Tensor:
        vals = _BesselValues(v, z, with_log=False, v_number=v_number)
        _save_ratio_terms(ctx, v, z, vals, v_number)
        return vals.complement

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, Tensor, None]:
        return None, -_first_derivative(ctx, grad), None


class _LogIvNormalized(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, v: Tensor, z: Tensor, v_number: float | None = None) -> Tensor:
        vals = _BesselValues(v, z, v_number=v_number)
        ctx.save_for_backward(v, z, vals.ratio)
        ctx.v_number = v_number
        return vals.log_normalized

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, Tensor, None]:
        v, z, ratio = ctx.saved_tensors
        if torch.is_grad_enabled():  # a double backward: R as a function of z
            ratio = _IveRatio.apply(v, z, ctx.v_number)
        return None, grad * ratio, None


class _LogIveNormalized(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, v: Tensor, z: Tensor, v_number: float | None = None) -> Tensor:
        vals = _BesselValues(v, z, v_number=v_number)
        ctx.save_for_backward(v, z, vals.complement)
        ctx.v_number = v_number
        return vals.log_scaled

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, Tensor, None]:
        v, z, complement = ctx.saved_tensors
        if torch.is_grad_enabled():  # a double backward: 1 - R as a function of z
            complement = _IveRatioComplement.apply(v, z, ctx.v_number)
        return None, -(grad * complement), None


class _LogIve(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, v: Tensor, z: Tensor, v_number: float | None = None) -> Tensor:
        vals = _BesselValues(v, z, v_number=v_number)
        ctx.save_for_backward(v, z, vals.complement)
        ctx.v_number = v_number
        return vals.log_ive

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, Tensor, None]:
        v, z, complement = ctx.saved_tensors
        if torch.is_grad_enabled():  # a double backward: 1 - R as a function of z
            complement = _IveRatioComplement.apply(v, z, ctx.v_number)
        z_safe = torch.where(z > 0, z, torch.ones_like(z))
        # d/dz log I_v(z) e^-z = v / z - (1 - R); at z = 0 this is +inf for v > 0 (log I_v -> -inf)
        # and -1 for v = 0
        v_over_z = torch.where(z > 0, v / z_safe, torch.where(v > 0, math.inf, 0.0))
        return None, grad * (v_over_z - complement), None


def _number(v: Tensor | float) -> float | None:
    return float(v) if isinstance(v, int | float) else None


def _apply(fn: Any, v: Tensor | float, z: Tensor | float) -> Tensor:
    v64, z64, out_dtype = _prepare(v, z)
    # broadcast outside the autograd function, so autograd reduces gradients over broadcast axes;
    # a single order stays 0-dimensional (its series coefficients are computed once)
    shape = _broadcast_shape(v64.shape, z64.shape)
    z64 = z64.expand(shape)
    if v64.dim() > 0:
        v64 = v64.expand(shape)
    out: Tensor = fn.apply(v64, z64, _number(v))
    return out.to(out_dtype)


def log_ive(v: Tensor | float, z: Tensor | float) -> Tensor:
    r"""Log of the exponentially scaled modified Bessel function, ``log(I_v(z) e^{-z})``.

    Its derivative in ``z`` is ``v / z - (1 - R)`` (``R`` = :func:`ive_ratio`, ``1 - R`` formed without
    cancellation).

    Args:
        v: order, ``>= 0``; tensor or float, broadcast against ``z``. Not differentiated.
        z: argument, ``>= 0``; tensor of any shape. Differentiable (twice).

    Returns:
        Tensor of the broadcast shape, in ``z``'s floating dtype (promoted with ``v``'s if ``v`` is a
        floating tensor; a Python number never promotes). Exact value ``-inf`` at ``z = 0``,
        ``v > 0``; finite everywhere else.

    Raises:
        ValueError: if ``v`` is negative or not finite, or ``z`` is negative.

    Examples:
        >>> round(float(log_ive(0.0, torch.tensor(1.0, dtype=torch.float64))), 12)
        -0.764897507861
    """
    return _apply(_LogIve, v, z)


def ive_ratio(v: Tensor | float, z: Tensor | float) -> Tensor:
    r"""Ratio of modified Bessel functions, ``I_{v+1}(z) / I_v(z)``, in ``[0, 1)``.

    For a von Mises-Fisher distribution on ``S^{m-1}``, ``A_m(kappa) = ive_ratio(m/2 - 1, kappa)`` is
    ``E[mu . x]``. Its derivative is ``1 - R^2 - (2v + 1) R / z`` (``= A_m'`` with ``m - 1 = 2v + 1``),
    formed as ``(R / z) N`` from the elasticity ``N = z R' / R`` that the evaluation forms without
    cancellation (:func:`_debye`); its second derivative, in a double backward, from the asymptotic
    series of :func:`_far_series` at large ``z``.

    Args:
        v: order, ``>= 0``; tensor or float, broadcast against ``z``.
        z: argument, ``>= 0``. Differentiable (twice).

    Returns:
        Tensor of the broadcast shape, in ``z``'s floating dtype (promoted with ``v``'s if ``v`` is a
        floating tensor; a Python number never promotes); 0 at ``z = 0``.

    Examples:
        >>> round(float(ive_ratio(0.5, torch.tensor(2.0, dtype=torch.float64))), 12)
        0.536882412668
    """
    return _apply(_IveRatio, v, z)


def ive_ratio_complement(v: Tensor | float, z: Tensor | float) -> Tensor:
    r"""``1 - I_{v+1}(z) / I_v(z)``, formed without cancellation: about ``(v + 1/2) / z`` at large ``z``,
    where ``1 - ive_ratio(v, z)`` keeps no digit (from ``z`` of about ``1e16`` on, none at all).

    Its derivative is ``-R'`` (see :func:`ive_ratio`). Arguments and result as :func:`ive_ratio`; 1 at
    ``z = 0``.
    """
    return _apply(_IveRatioComplement, v, z)


def log_iv_normalized(v: Tensor | float, z: Tensor | float) -> Tensor:
    r"""``log(Gamma(v+1) (2/z)^v I_v(z)) = log 0F1(; v+1; z^2/4)``, which is ``>= 0`` and 0 at ``z = 0``.

    Its derivative in ``z`` is :func:`ive_ratio`. With it the vMF log-normaliser on ``S^{m-1}`` is
    ``log area(S^{m-1}) + log_iv_normalized(m/2 - 1, kappa)``, exact at ``kappa = 0`` and with full
    relative accuracy at small ``kappa``.

    Args:
        v: order, ``>= 0``; tensor or float, broadcast against ``z``.
        z: argument, ``>= 0``. Differentiable (twice).

    Returns:
        Tensor of the broadcast shape, in ``z``'s floating dtype (promoted with ``v``'s if ``v`` is a
        floating tensor; a Python number never promotes).
    """
    return _apply(_LogIvNormalized, v, z)


def log_ive_normalized(v: Tensor | float, z: Tensor | float) -> Tensor:
    r"""``log(Gamma(v+1) (2/z)^v I_v(z) e^{-z}) = log 0F1(; v+1; z^2/4) - z``, which is ``<= 0``.

    :func:`log_iv_normalized` less ``z``, formed without the subtraction at large ``z`` (from the
    uniform expansion of ``log I_v(z) e^{-z}``), where ``log 0F1`` and ``z`` agree in all their leading
    digits: about ``-(v + 1/2) log z`` there. The vMF log-density is ``-kappa (1 - mu . x) - (log area +
    log_ive_normalized(m/2 - 1, kappa))``. Its derivative in ``z`` is ``-(1 - R)`` (see
    :func:`ive_ratio_complement`). Arguments and result as :func:`log_iv_normalized`; 0 at ``z = 0``.
    """
    return _apply(_LogIveNormalized, v, z)


class BesselTerms(NamedTuple):
    """No-grad values of one order ``v`` at arguments ``z``, in the working dtype, shape of ``z``.

    ``ratio = R = I_{v+1}(z) / I_v(z)``; ``complement = 1 - R``, formed without cancellation;
    ``ratio_over_z = R / z`` (``1 / (2(v + 1))`` at ``z = 0``); ``log_normalized = g = log 0F1(; v+1;
    z^2/4)`` (0 at ``z = 0``), or ``None`` when not asked for; ``elasticity = N = z R' / R`` (1 at ``z =
    0``, about ``(v + 1/2) / z`` at large ``z``), formed without cancellation, so that ``R' = (R / z) N``
    and ``z R' = R N`` keep their digits and never underflow before the true values do;
    ``log_scaled = g - z`` and ``kl = z R - g`` (``KL(vMF || uniform)``), each formed without
    cancellation at small and at large ``z`` (``None`` without the logarithms).
    """

    ratio: Tensor
    complement: Tensor
    ratio_over_z: Tensor
    log_normalized: Tensor | None
    elasticity: Tensor
    log_scaled: Tensor | None
    kl: Tensor | None

    def ratio_derivative(self, v: float | None = None) -> Tensor:
        """``dR/dz = (R / z) N`` (the variance ``A'`` of ``w = mu . x`` for a vMF), from the elasticity
        (no cancellation); ``v``, the order, is not needed."""
        return _ratio_derivative(self.ratio_over_z, self.elasticity)

    def map(self, fn: Callable[[Tensor], Tensor]) -> BesselTerms:
        """The terms with ``fn`` applied to each (a reshape, an index): ``None`` stays ``None``."""
        fields = [None if x is None else fn(x) for x in self]
        return BesselTerms(*fields)  # type: ignore[arg-type]

    @staticmethod
    def from_rows(values: Tensor) -> BesselTerms:
        """The terms from the stacked rows ``(8, ...)`` of :func:`merged_values` (with the log)."""
        rows = values.unbind(0)  # one operation for all rows
        return BesselTerms(
            rows[_RATIO],
            rows[_COMPLEMENT],
            rows[_RATIO_OVER_Z],
            rows[_LOG_NORMALIZED],
            rows[_ELASTICITY],
            rows[_LOG_SCALED],
            rows[_KL],
        )


def bessel_terms(v: float, z: Tensor, with_log: bool = True) -> BesselTerms:
    """:class:`BesselTerms` of the order ``v`` (a number) at ``z >= 0``, from one Bessel evaluation.

    For the von Mises-Fisher distribution (``v = m/2 - 1``), which needs ``A = R``, ``1 - A`` and ``A'`` in
    its samplers and their gradient and ``A``, the log-normaliser and the KL divergence to the uniform
    distribution in its closed forms, at the same concentrations. ``z`` is detached.
    """
    v64, z64, _ = _prepare(v, z.detach() if z.requires_grad else z)  # a detach is an operation
    with torch.no_grad():
        vals = _BesselValues(v64, z64, with_log=with_log, v_number=float(v))
    if not with_log:
        return BesselTerms(
            vals.ratio, vals.complement, vals.ratio_over_z, None, vals.elasticity, None, None
        )
    return BesselTerms(
        vals.ratio,
        vals.complement,
        vals.ratio_over_z,
        vals.log_normalized,
        vals.elasticity,
        vals.log_scaled,
        vals.kl,
    )


def mean_resultant_terms(v: Tensor | float, z: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(R, 1 - R, R / z, dR/dz)`` for ``R = ive_ratio(v, z)``, in the working dtype, without autograd.

    For the samplers, which need the mean ``A = R`` and the variance ``A' = dR/dz`` of ``w = mu . x``
    with their digits intact at large ``z`` (``1 - R`` and ``dR/dz`` are formed without cancellation).
    ``R / z`` is its limit ``1 / (2(v + 1))`` at ``z = 0``.
    """
    v64, z64, _ = _prepare(v, z)
    with torch.no_grad():
        vals = _BesselValues(v64, z64.detach(), with_log=False, v_number=_number(v))
    deriv = _ratio_derivative(vals.ratio_over_z, vals.elasticity)
    return vals.ratio, vals.complement, vals.ratio_over_z, deriv


class _KlToUniform(torch.autograd.Function):
    """``z R(z) - log 0F1(; v+1; z^2/4)`` from precomputed :class:`BesselTerms`, derivative ``z R'(z)``.

    The KL divergence of a vMF on ``S^{m-1}`` (``v = m/2 - 1``, ``z = kappa``) to the uniform
    distribution: one Bessel evaluation gives its value (the terms' ``kl``, formed without
    cancellation at small and large ``z``) and its derivative ``z R' = R N`` (from the elasticity, no
    cancellation, no underflow), where the two functions :func:`ive_ratio` and
    :func:`log_iv_normalized` would evaluate and differentiate twice. ``z`` is in any floating dtype;
    the arithmetic runs in the terms' (working) dtype and the result is cast back. Under a double
    backward ``z R'`` is a function of ``z`` (:class:`_RatioDerivative`) whose derivative is ``R' + z
    R''`` (``R'(0) = 1 / (2(v + 1))`` at ``z = 0``).
    """

    @staticmethod
    def forward(
        ctx: Any,
        z: Tensor,
        v: float,
        kl: Tensor,
        ratio: Tensor,
        ratio_over_z: Tensor,
        elasticity: Tensor,
    ) -> Tensor:
        ctx.save_for_backward(z, ratio, ratio_over_z, elasticity)
        ctx.v = v
        return kl.to(z.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None, None, None]:
        z, ratio, ratio_over_z, elasticity = ctx.saved_tensors
        if torch.is_grad_enabled():  # a double backward: z R' as a differentiable function of z
            z_work = z.to(ratio.dtype)
            derivative: Tensor = _RatioDerivative.apply(
                _order_tensor(float(ctx.v), ratio.dtype, ratio.device),
                z_work,
                ratio,
                ratio_over_z,
                elasticity,
                True,
                ctx.v,
            )
            return (grad * derivative).to(z.dtype), None, None, None, None, None
        # z R' = R N, in the terms' dtype
        return (torch.mul(ratio, elasticity).mul_(grad)).to(z.dtype), None, None, None, None, None


def kl_to_uniform(v: float, z: Tensor, terms: BesselTerms | None = None) -> Tensor:
    """``z R(z) - log 0F1(; v+1; z^2/4)``: ``KL(vMF(mu, z) || uniform)`` on ``S^{m-1}``, ``v = m/2 - 1``.

    Both terms are ``O(z^2 / (v + 1))`` at small ``z``, so no digits are lost there; at large ``z`` it is
    ``-(g - z) - z (1 - R)`` (:func:`_debye`), about ``(v + 1/2) (log(z / (2 pi)) - 1) + log area``
    less terms of order ``1 / z``; exactly 0 at ``z = 0``. Differentiable twice in ``z`` (derivative
    ``z R'(z)``, formed without cancellation).

    Args:
        v: the order, a number ``>= 0``.
        z: arguments ``>= 0``, any floating dtype (the result has it).
        terms: ``bessel_terms(v, z)`` if already computed (with the logarithms).
    """
    if terms is None or terms.kl is None:
        terms = bessel_terms(v, z)
    assert terms.kl is not None
    out: Tensor = _KlToUniform.apply(
        z, v, terms.kl, terms.ratio, terms.ratio_over_z, terms.elasticity
    )
    return out


_TERM_NAMES = ("ratio", "complement", "log_normalized", "log_scaled")


class _FromTerms(torch.autograd.Function):
    """One of ``R``, ``1 - R``, ``g`` and ``g - z`` of precomputed :class:`BesselTerms` as a function of
    ``z``, with the derivative ``R'``, ``-R'``, ``R`` and ``-(1 - R)`` from the same terms (a function
    of ``z`` again under a double backward)."""

    @staticmethod
    def forward(
        ctx: Any,
        z: Tensor,
        v: float,
        name: str,
        value: Tensor,
        ratio: Tensor,
        complement: Tensor,
        ratio_over_z: Tensor,
        elasticity: Tensor,
    ) -> Tensor:
        ctx.save_for_backward(z, ratio, complement, ratio_over_z, elasticity)
        ctx.v, ctx.name = v, name
        return value.to(z.dtype, copy=True)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None, None, None, None, None]:
        z, ratio, complement, ratio_over_z, elasticity = ctx.saved_tensors
        v, name = ctx.v, ctx.name
        derivative: Tensor
        if torch.is_grad_enabled():  # a double backward: the derivative as a function of z
            z_work = z.to(ratio.dtype)
            order = _order_tensor(float(v), ratio.dtype, ratio.device)
            if name in ("ratio", "complement"):
                derivative = _RatioDerivative.apply(
                    order, z_work, ratio, ratio_over_z, elasticity, False, v
                )
            elif name == "log_normalized":
                derivative = _IveRatio.apply(order, z_work, v)
            else:
                derivative = _IveRatioComplement.apply(order, z_work, v)
        elif name in ("ratio", "complement"):
            # (grad (R / z)) N: R' itself underflows from z of about 1e154 on, grad R' need not
            scaled = (grad.to(ratio.dtype) * ratio_over_z) * elasticity
            out = scaled if name == "ratio" else -scaled
            return out.to(z.dtype), None, None, None, None, None, None, None
        else:
            derivative = ratio if name == "log_normalized" else complement
        if name in ("complement", "log_scaled"):
            derivative = -derivative
        return (grad * derivative).to(z.dtype), None, None, None, None, None, None, None


def term_of(terms: BesselTerms, name: str, v: float, z: Tensor) -> Tensor:
    """``terms.<name>`` (``"ratio"``, ``"complement"``, ``"log_normalized"`` or ``"log_scaled"``) of
    ``bessel_terms(v, z)`` as a differentiable function of ``z`` (twice), in ``z``'s dtype: the value
    the terms hold, and its derivative from them, without a Bessel evaluation of its own."""
    if name not in _TERM_NAMES:
        raise ValueError(f"name must be one of {_TERM_NAMES}, got {name!r}")
    value = getattr(terms, name)
    if value is None:
        raise ValueError(f"the terms have no {name} (bessel_terms(..., with_log=False))")
    out: Tensor = _FromTerms.apply(
        z,
        v,
        name,
        value,
        terms.ratio,
        terms.complement,
        terms.ratio_over_z,
        terms.elasticity,
    )
    return out
