"""Accuracy of the per-sample inversion of the vMF marginal CDF (``spherevae.distributions.von_mises_fisher.inverse_cdf``).

The reference is independent of the package: mpmath integrates the density ``exp(-kappa (1 - cos
theta)) sin^(m-2) theta`` in ``theta`` at 30 digits, from the sample to the end of ``[0, pi]`` on its
side (``u < 1/2``: from 0, else to ``pi``), on pieces that follow the integrand's local length scale,
and takes the total mass from mpmath's Bessel function (``mp_reference``); Newton steps at that precision (in the log of
the distance to the end, from the tested value) then give the reference quantile. The relative error
of ``t = 1 - cos theta`` must be below ``1e-9`` over ``m`` in ``{2, ..., 20000}``, ``kappa`` in
``{1e-3, ..., 1e6}`` and ``u`` in ``[1e-12, 1 - 1e-12]``; the default run checks a subset of cells,
``pytest -m slow`` the full grid. At ``m = 3`` the CDF inverts in closed form, checked at many
quantiles.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import mpmath as mp
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from mp_reference import log_iv_normalized
from spherevae.distributions.von_mises_fisher import inverse_cdf
from spherevae.distributions.von_mises_fisher.inverse_cdf import (
    invert_theta_cdf,
    sample_inverse_cdf,
)
from spherevae.special import bessel_terms

DPS = 30
QUANTILES = [1e-12, 1e-8, 1e-4, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 1 - 1e-4, 1 - 1e-8, 1 - 1e-12]
DIMS = [2, 3, 4, 5, 11, 64, 256, 1024, 20000]
KAPPAS = [1e-3, 0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6]
# the default run: cells chosen for their shapes (flat, power-law ends, log-convex m = 2 tail near pi,
# exponential and Gaussian tails, the largest kappa and m)
DEFAULT_CELLS = [(2, 10.0), (3, 1e-3), (3, 1e6), (5, 1.0), (11, 30.0), (256, 1e4), (20000, 1e2)]
TOLERANCE = 1e-9


def _log_p(theta: mp.mpf, kappa: mp.mpf, m: int) -> mp.mpf:
    value = -kappa * (1 - mp.cos(theta))
    return value + (m - 2) * mp.log(mp.sin(theta)) if m > 2 else value


def _tail(theta: mp.mpf, kappa: mp.mpf, m: int, direction: int) -> tuple[mp.mpf, mp.mpf]:
    """``(int from theta to the end in direction of p / p(theta), log p(theta))`` (``-1``: to 0).

    Pieces of a quarter of the local length scale ``1 / (|l'| + sqrt(|l''|))`` (``l = log p``), growing
    by half each, until the end or until ``p`` has fallen by ``exp(-90)``.
    """
    end = mp.mpf(0) if direction < 0 else mp.pi
    log_p0 = _log_p(theta, kappa, m)
    sin, cos = mp.sin(theta), mp.cos(theta)
    d1 = -kappa * sin + ((m - 2) * cos / sin if m > 2 else 0)
    d2 = -kappa * cos - ((m - 2) / sin**2 if m > 2 else 0)
    step = min(mp.pi, 1 / (abs(d1) + mp.sqrt(abs(d2)) + mp.mpf(10) ** -30)) / 4
    points = [theta]
    while True:
        nxt = points[-1] + direction * step
        if (nxt - end) * direction >= 0:
            points.append(end)
            break
        points.append(nxt)
        if _log_p(nxt, kappa, m) - log_p0 < -90:
            break
        step *= 1.5

    def f(x: mp.mpf) -> mp.mpf:
        if m > 2 and not 0 < x < mp.pi:
            return mp.mpf(0)
        return mp.exp(_log_p(x, kappa, m) - log_p0)

    return abs(mp.quad(f, points)), log_p0


def _log_total(kappa: mp.mpf, m: int) -> mp.mpf:
    """``log Z = log(sqrt(pi) Gamma((m-1)/2) / Gamma(m/2)) + log 0F1(; m/2; kappa^2/4) - kappa``.

    With mpmath's Bessel function (``mp_reference``, which falls back on its own quadrature where
    ``mp.besseli`` does not converge). Splitting the quadrature of the tails at the mode instead lost up
    to 0.3 in ``log Z`` at ``m = 20000, kappa = 1e6``, where the package agrees with this form to 7e-11.
    """
    v = m / 2 - 1
    return (
        mp.log(mp.sqrt(mp.pi))
        + mp.loggamma(mp.mpf(m - 1) / 2)
        - mp.loggamma(mp.mpf(m) / 2)
        + log_iv_normalized(v, float(kappa))
        - kappa
    )


def reference_t(theta: float, kappa: float, m: int, u: float, log_z: mp.mpf) -> mp.mpf:
    """The quantile ``t`` at 30 digits: Newton steps in ``log phi`` from ``theta`` (module docstring)."""
    with mp.workdps(DPS):
        kappa_, u_ = mp.mpf(kappa), mp.mpf(u)
        on_left = u_ < 0.5
        direction = -1 if on_left else 1
        log_target = mp.log(u_ if on_left else 1 - u_) + log_z
        phi = mp.mpf(theta) if on_left else mp.pi - mp.mpf(theta)
        for _ in range(4):
            th = phi if on_left else mp.pi - phi
            tail, log_p0 = _tail(th, kappa_, m, direction)
            g = mp.log(tail) + log_p0 - log_target
            phi = phi * mp.exp(-g * tail / phi)
        th = phi if on_left else mp.pi - phi
        return 2 * mp.sin(th / 2) ** 2


def _worst_errors(
    m: int,
    kappas: list[float],
    invert: Callable[..., torch.Tensor] = invert_theta_cdf,
    quantiles: list[float] = QUANTILES,
) -> dict[tuple[float, float], float]:
    """Relative error of ``t`` per ``(kappa, u)`` against the mpmath reference."""
    kappa = torch.tensor(kappas, dtype=torch.float64)
    u = torch.tensor(quantiles, dtype=torch.float64).expand(len(kappas), -1).contiguous()
    t = invert(kappa, m, u)
    errors = {}
    with mp.workdps(DPS):
        for i, k in enumerate(kappas):
            log_z = _log_total(mp.mpf(k), m)
            for j, q in enumerate(quantiles):
                value = float(t[i, j])
                theta = 2 * math.asin(math.sqrt(value / 2))
                ref = reference_t(theta, k, m, q, log_z)
                errors[(k, q)] = float(abs((mp.mpf(value) - ref) / ref))
    return errors


@pytest.mark.parametrize(("m", "kappa"), DEFAULT_CELLS)
def test_against_mpmath(m: int, kappa: float) -> None:
    errors = _worst_errors(m, [kappa])
    bad = {key: err for key, err in errors.items() if not err <= TOLERANCE}
    assert not bad, f"m={m}: relative errors above {TOLERANCE}: {bad}"


@pytest.mark.slow
@pytest.mark.parametrize("m", DIMS)
def test_against_mpmath_full_grid(m: int) -> None:
    errors = _worst_errors(m, KAPPAS)
    bad = {key: err for key, err in errors.items() if not err <= TOLERANCE}
    assert not bad, f"m={m}: relative errors above {TOLERANCE}: {bad}"


@pytest.mark.parametrize("kappa", [1e-3, 0.5, 10.0, 300.0, 1e4])
def test_closed_form_m3(kappa: float) -> None:
    """At ``m = 3`` ``F(t) = (1 - e^{-kappa t}) / (1 - e^{-2 kappa})``: ``t = -log1p(u expm1(-2 kappa)) / kappa``,
    and for ``u >= 1/2`` ``t = -log(e^{-2 kappa} + (1 - u)(1 - e^{-2 kappa})) / kappa``, which keeps its
    digits where ``1 + u expm1(-2 kappa)`` is a small difference."""
    u = torch.cat(
        [
            torch.logspace(-13, -1, 40, dtype=torch.float64),
            torch.linspace(0.02, 0.98, 97, dtype=torch.float64),
            1 - torch.logspace(-13, -1, 40, dtype=torch.float64),
            torch.tensor([0.5], dtype=torch.float64),
        ]
    )[None]
    kappa_t = torch.tensor([kappa], dtype=torch.float64)
    lower = -torch.log1p(u * math.expm1(-2 * kappa)) / kappa
    upper = -torch.log(math.exp(-2 * kappa) - (1 - u) * math.expm1(-2 * kappa)) / kappa
    exact = torch.where(u < 0.5, lower, upper)
    t = invert_theta_cdf(kappa_t, 3, u)
    rel = ((t - exact).abs() / exact).max().item()
    assert rel <= 1e-11


# the far right tail (1 - u below 2^-24), which is solved by bisection before Newton's steps: there
# the start can overshoot to theta = pi and Newton's iteration failed (t off by up to 100% at m = 3,
# kappa in [13.5, 25]; no convergence at m = 2, kappa in [11.5, 28])
FAR_TAIL = [1e-8, 1e-9, 1e-10, 1e-11, 1e-12, 1e-13, 2.0**-53]


def test_far_right_tail_m3_closed_form() -> None:
    """``m = 3`` over a dense range of ``kappa``, where the former iteration failed, against the closed form."""
    kappa = torch.linspace(5.0, 40.0, 71, dtype=torch.float64)
    q = torch.tensor(FAR_TAIL, dtype=torch.float64)
    u = (1 - q).expand(kappa.numel(), -1).contiguous()
    q_held = 1 - u  # the 1 - u that u represents
    k = kappa[:, None]
    exact = -torch.log(torch.exp(-2 * k) - q_held * torch.expm1(-2 * k)) / k
    t = invert_theta_cdf(kappa, 3, u)
    rel = ((t - exact).abs() / exact).max().item()
    assert rel <= 1e-11, f"worst relative error {rel:.3g}"


@pytest.mark.parametrize(("m", "kappa"), [(2, 16.0), (4, 20.0), (5, 14.0), (20000, 2000.0)])
def test_far_right_tail_against_mpmath(m: int, kappa: float) -> None:
    """The far right tail at cells where the former iteration failed (``m = 2, 4, 5``) and where a
    bisection bracket reaching past the mode missed it (``m = 20000``)."""
    errors = _worst_errors(m, [kappa], quantiles=[1 - q for q in FAR_TAIL])
    bad = {key: err for key, err in errors.items() if not err <= TOLERANCE}
    assert not bad, f"m={m}: relative errors above {TOLERANCE}: {bad}"


@pytest.mark.parametrize("m", [2, 4, 5])
def test_far_right_tail_is_monotone(m: int) -> None:
    """``t`` grows with ``u`` through the hand-over from Newton's steps to bisection, over dense ``kappa``."""
    kappa = torch.linspace(5.0, 40.0, 71, dtype=torch.float64)
    q = torch.tensor([1e-6, 2.0**-23, 1e-7, 2.0**-25, *FAR_TAIL], dtype=torch.float64)
    t = invert_theta_cdf(kappa, m, (1 - q).expand(kappa.numel(), -1).contiguous())
    assert torch.isfinite(t).all() and (t.diff(dim=-1) >= 0).all()


def test_terms_passed_in_give_the_same_values() -> None:
    kappa = torch.tensor([0.0, 0.3, 7.0, 2e3], dtype=torch.float64)
    u = torch.rand(4, 50, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    own = invert_theta_cdf(kappa, 11, u)
    shared = invert_theta_cdf(kappa, 11, u, bessel_terms(4.5, kappa))
    torch.testing.assert_close(own, shared, rtol=1e-14, atol=0.0)


@pytest.mark.parametrize("m", [2, 3, 11])
def test_ends_and_dtypes(m: int) -> None:
    """``u = 0`` and ``1`` give finite ``t`` at the ends; float32 inputs work and stay float32."""
    kappa = torch.tensor([1e-3, 1.0, 50.0, 1e5], dtype=torch.float64)
    u = torch.tensor([0.0, 1e-300, 0.5, 1 - 2**-53, 1.0], dtype=torch.float64).expand(4, -1)
    t = invert_theta_cdf(kappa, m, u)
    assert t.shape == (4, 5) and t.dtype == torch.float64
    assert torch.isfinite(t).all() and (t >= 0).all() and (t <= 2).all()
    assert (t.diff(dim=-1) >= 0).all()  # monotone in u
    u32 = torch.tensor([1e-30, 0.25, 0.5, 1 - 2**-24], dtype=torch.float32).expand(4, -1)
    t32 = invert_theta_cdf(kappa.float(), m, u32)
    assert t32.dtype == torch.float32 and torch.isfinite(t32).all()
    t64 = invert_theta_cdf(kappa, m, u32.double())
    torch.testing.assert_close(t32, t64.float(), rtol=1e-6, atol=0.0)


def test_sample_shapes_and_mean() -> None:
    """Draws of shape ``(B, n)`` whose mean matches ``E[t] = 1 - A`` (a coarse check: the statistical
    tests of all samplers are in ``test_vmf_sampling.py``)."""
    torch.manual_seed(0)
    kappa = torch.tensor([2.0, 40.0], dtype=torch.float64)
    t = sample_inverse_cdf(kappa, 11, 20000)
    assert t.shape == (2, 20000)
    terms = bessel_terms(4.5, kappa)
    z = (t.mean(-1) - terms.complement) / (t.std(-1) / math.sqrt(20000))
    assert (z.abs() < 5).all(), z


class _CountOps(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        self.count += 1
        return func(*args, **(kwargs or {}))


def test_training_size_operation_count() -> None:
    """At training sizes (64 rows, one sample) dispatch sets the time: at most 185 tensor operations
    (179 measured, three of them the far-tail check; 403 for the former grid), a guard against
    regressions."""
    torch.manual_seed(0)
    kappa = torch.rand(64, dtype=torch.float64) * 50 + 5
    terms = bessel_terms(4.5, kappa)
    sample_inverse_cdf(kappa, 11, 1, terms)  # rules cached
    with _CountOps() as counter:
        sample_inverse_cdf(kappa, 11, 1, terms)
    assert counter.count <= 185


# ---------------------------------------------------------------------------------------------------
# the table path (inverse_cdf.table_inversion): exact knots per row, then steps from the nearer knot
# ---------------------------------------------------------------------------------------------------
# its quantiles: the far left tail down to the smallest positive torch.rand, and the right tail up to
# the table's last knot (beyond it the per-sample path serves; tested above)
TABLE_QUANTILES = [2.0**-53, 3e-16, 1e-12, 1e-8, 1e-4, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99]
TABLE_QUANTILES += [1 - 1e-4, 1 - 1e-6, 1 - 1e-7, 1 - 5e-8]


def _table_invert(kappa: torch.Tensor, m: int, u: torch.Tensor) -> torch.Tensor:
    """The table path forced, whatever the size (``invert_theta_cdf`` picks it for large draws only)."""
    terms = bessel_terms(m / 2 - 1, kappa)
    log_z = inverse_cdf.log_total_mass(kappa, m, terms)
    variance = terms.ratio_derivative(m / 2 - 1)
    return inverse_cdf.table_inversion(kappa, m, u, terms.complement, variance, log_z)


def _many_quantiles() -> torch.Tensor:
    """Both tails (log-spaced) and the bulk, plus random quantiles between the knots."""
    return torch.cat(
        [
            torch.logspace(-15.9, -1, 60, dtype=torch.float64),
            torch.linspace(0.1, 0.9, 81, dtype=torch.float64),
            1 - torch.logspace(-1, -9, 60, dtype=torch.float64),
            torch.rand(400, dtype=torch.float64, generator=torch.Generator().manual_seed(3)),
        ]
    )


@pytest.mark.parametrize(("m", "kappa"), DEFAULT_CELLS)
def test_table_against_mpmath(m: int, kappa: float) -> None:
    errors = _worst_errors(m, [kappa], _table_invert, TABLE_QUANTILES)
    bad = {key: err for key, err in errors.items() if not err <= TOLERANCE}
    assert not bad, f"m={m}: table path, relative errors above {TOLERANCE}: {bad}"


@pytest.mark.slow
@pytest.mark.parametrize("m", DIMS)
def test_table_against_mpmath_full_grid(m: int) -> None:
    errors = _worst_errors(m, KAPPAS, _table_invert, TABLE_QUANTILES)
    bad = {key: err for key, err in errors.items() if not err <= TOLERANCE}
    assert not bad, f"m={m}: table path, relative errors above {TOLERANCE}: {bad}"


@pytest.mark.parametrize("m", [2, 3, 5, 11, 64, 1024])
def test_table_matches_per_sample(m: int) -> None:
    """Rows with different ``kappa`` in one call, 600 quantiles each: the same ``t`` as the per-sample
    path to ``1e-9`` (both are within ``1.2e-10`` of the exact values; measured ``4e-12`` apart)."""
    kappa = torch.tensor([1e-3, 0.7, 5.0, 31.0, 400.0, 2e4, 1e6], dtype=torch.float64)
    u = _many_quantiles().expand(len(kappa), -1).contiguous()
    table = _table_invert(kappa, m, u)
    per_sample = invert_theta_cdf(kappa, m, u)  # 661 quantiles a row: table path
    direct = inverse_cdf.newton_inversion(
        kappa, m, u, *_prepared(kappa, m)
    )  # the per-sample path forced
    torch.testing.assert_close(per_sample, table, rtol=0.0, atol=0.0)
    rel = ((table - direct).abs() / direct).max().item()
    assert rel <= TOLERANCE, rel


def _prepared(kappa: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    terms = bessel_terms(m / 2 - 1, kappa)
    log_z = inverse_cdf.log_total_mass(kappa, m, terms)
    return terms.complement, terms.ratio_derivative(m / 2 - 1), log_z


def test_table_m3_closed_form() -> None:
    """At ``m = 3`` against the closed form, ``kappa`` dense over ``[0.5, 60]`` (tails included)."""
    kappa = torch.linspace(0.5, 60.0, 120, dtype=torch.float64)
    u = _many_quantiles().expand(len(kappa), -1).contiguous()
    k = kappa[:, None]
    lower = -torch.log1p(u * torch.expm1(-2 * k)) / k
    upper = -torch.log(torch.exp(-2 * k) - (1 - u) * torch.expm1(-2 * k)) / k
    exact = torch.where(u < 0.5, lower, upper)
    t = _table_invert(kappa, 3, u)
    assert ((t - exact).abs() / exact).max().item() <= 1e-11


def test_size_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """The table path serves more than 64 samples a row and 4096 in all, with the same values."""
    calls: list[tuple[int, ...]] = []
    table = inverse_cdf.table_inversion

    def counted(*args: torch.Tensor | int) -> torch.Tensor:
        calls.append(tuple(args[2].shape))  # type: ignore[union-attr]
        return table(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(inverse_cdf, "table_inversion", counted)
    kappa = torch.linspace(5.0, 55.0, 64, dtype=torch.float64)
    gen = torch.Generator().manual_seed(5)
    for n in (64, 65):
        u = torch.rand(64, n, dtype=torch.float64, generator=gen)
        t = invert_theta_cdf(kappa, 11, u)
        direct = inverse_cdf.newton_inversion(kappa, 11, u, *_prepared(kappa, 11))
        assert ((t - direct).abs() / direct).max().item() <= TOLERANCE
    assert calls == [(64, 65)]
    invert_theta_cdf(kappa[:1], 11, torch.rand(1, 4000, dtype=torch.float64))  # 4000 in all
    assert calls == [(64, 65)]


@pytest.mark.parametrize("m", [2, 3, 11])
def test_table_ends(m: int) -> None:
    """``u = 0``, quantiles beyond the last knot and ``1``: the per-sample path's values, finite and
    monotone (the table hands them over)."""
    kappa = torch.tensor([1e-3, 1.0, 20.0, 1e5], dtype=torch.float64)
    ends = [0.0, 1e-300, 2.0**-53, 0.5, 1 - 2.0**-24, 1 - 2.0**-25, 1 - 2.0**-53, 1.0]
    u = torch.tensor(ends, dtype=torch.float64).expand(4, -1).contiguous()
    t = _table_invert(kappa, m, u)
    direct = inverse_cdf.newton_inversion(kappa, m, u, *_prepared(kappa, m))
    assert torch.isfinite(t).all() and (t.diff(dim=-1) >= 0).all()
    torch.testing.assert_close(t, direct, rtol=TOLERANCE, atol=0.0)


@pytest.mark.parametrize("m", [2, 3, 11])
def test_table_hands_over_only_out_of_range(m: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a draw the per-sample path serves only the quantiles outside the knots (here the zeros put
    in): every other sample converges within the table's steps (a cost guard: the hand-over is exact
    but a thousand times dearer a sample)."""
    handed: list[int] = []
    newton = inverse_cdf.newton_inversion

    def counted(*args: torch.Tensor | int) -> torch.Tensor:
        handed.append(args[2].numel())  # type: ignore[union-attr]
        return newton(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(inverse_cdf, "newton_inversion", counted)
    gen = torch.Generator().manual_seed(7)
    kappa = torch.cat(
        [
            torch.logspace(-3, 6, 40, dtype=torch.float64),
            torch.rand(24, dtype=torch.float64, generator=gen) * 50 + 5,
        ]
    )
    u = torch.rand(64, 500, dtype=torch.float64, generator=gen)
    u[::7, 3] = 0.0
    _table_invert(kappa, m, u)
    assert handed == [10]
