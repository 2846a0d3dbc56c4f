"""Every family and sampler at large concentrations, up to the largest finite value of the dtype.

What is checked, for ``kappa`` in ``{1e5, 1e7, 1e10, 1e15, 1e20, 1e50, 1e100, 1e300, the largest
float64}`` (float64) and ``{1e5, 1e7, 1e10, 1e15, 1e20, 1e30, 3e38}`` (float32), ``m`` in ``{2, 3, 5, 11,
64, 1024}`` (and ``m = 20000`` in the ``slow`` grid):

- the Bessel functions of ``spherevae.special`` and their first and second derivatives;
- von Mises-Fisher: ``log_prob`` at the mode and at two angles of order ``1 / sqrt(kappa)``, entropy,
  ``KL(q || uniform)``, mean, variance, and the derivative in ``kappa`` of each;
- Power Spherical: the same;
- ``KL(vMF || vMF)`` and ``KL(PS || vMF)`` for equal and orthogonal mean directions, with their
  derivatives in both concentrations;
- the law of the samples: for every sampler, ``kappa (1 - mu . z)`` against its limit law
  ``Gamma((m - 1) / 2)`` (the Power Spherical: ``(kappa + beta)(1 - mu . z) / 2`` against
  ``Gamma(beta)``), a Kolmogorov-Smirnov test; the reparameterisation gradient of the sample's angle
  against its limit ``-theta / (2 kappa)``;
- ``kappa = inf`` and ``NaN``: a ``ValueError`` naming the concentration with validation on; with it
  off, NaN in gives NaN out for every quantity and sample, ``inf`` gives samples at the mode and
  no finite value that is not the limit.

References: ``tests/mp_reference.large_z`` (Hankel's expansion at a working precision raised by the
digits that cancel) and ``tests/mp_reference.power_spherical``; the log-densities at the float inputs
themselves (their components as exact numbers), in the form the library defines them in (``kappa mu .
x - log Z`` up to ``kappa = 1e6``, ``-kappa |x - mu|^2 / 2 - (log Z - kappa)`` beyond: the two agree on
the sphere, and differ at the float inputs by ``kappa`` times their rounding off it).

Tolerances: relative error at most ``1e-8`` in float64 and ``1e-5`` in float32, measured as ``|got -
ref| / max(|ref|, tiny)`` with ``tiny`` the dtype's smallest normal number: where the exact value is
below it (``A' ~ (m - 1) / (2 kappa^2)`` underflows from ``kappa`` of about ``1e154`` in float64), the
correctly rounded result is a subnormal number or 0, and only an absolute error of ``tol * tiny`` is
asked for.

Statistical failure budget: every Kolmogorov-Smirnov test fails below ``p = 1e-4``; there are 56 of
them by default (42 von Mises-Fisher, 14 Power Spherical) and 72 more in the ``slow`` grid, so a correct
sampler fails one of them by chance with probability at most ``1.3e-2`` per fresh seed. The seeds are
fixed: a given run is deterministic. The limit laws are exact to ``O(m^2 / kappa)`` (TV distance),
below ``1e-3`` at the smallest ``kappa`` tested for each ``m``, far below what ``n = 2000`` samples
resolve.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator

import mpmath as mp
import numpy as np
import pytest
import scipy.stats
import torch
from torch import Tensor
from torch.distributions import kl_divergence

import mp_reference as ref
from spherevae import special
from spherevae.distributions import HypersphericalUniform, PowerSpherical, VonMisesFisher

F32, F64 = torch.float32, torch.float64
TOL = {F64: 1e-8, F32: 1e-5}
DTYPES = [pytest.param(F64, id="float64"), pytest.param(F32, id="float32")]
KAPPAS = {
    F64: (1e5, 1e7, 1e10, 1e15, 1e20, 1e50, 1e100, 1e300, sys.float_info.max),
    F32: (1e5, 1e7, 1e10, 1e15, 1e20, 1e30, 3e38),
}
DIMS = (2, 3, 5, 11, 64, 1024)
SLOW_DIMS = (20000,)
# the log-densities at 1 - mu . x = f h / kappa (h = (m - 1) / 2, the mean of kappa (1 - mu . x) in the
# limit) for these f: away from f = 1, where d log p / dkappa = (1 - A) - (1 - mu . x) vanishes and no
# evaluation keeps its relative digits (those of 1 - A are lost in the difference)
ANGLES = (0.25, 4.0)
SAMPLERS = ("rejection", "inverse_cdf", "mh")
# the forms of log_prob and of the KLs to a vMF change at this concentration (see their docstrings)
MODE_FORM_FROM = 1e6


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Small tensors: intra-op threads would only add synchronisation on a busy runner."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _rounded(kappas: tuple[float, ...], dtype: torch.dtype) -> list[float]:
    """The concentrations the library sees (references are evaluated there)."""
    return torch.tensor(kappas, dtype=dtype).double().tolist()


def _error(got: float, want: mp.mpf, dtype: torch.dtype) -> float:
    """``|got - want| / max(|want|, tiny)``; NaN and inf give inf."""
    if not math.isfinite(got):
        return math.inf
    with mp.workdps(40):
        scale = max(abs(want), mp.mpf(torch.finfo(dtype).tiny))
        return float(abs(mp.mpf(got) - want) / scale)


def _check(rows: list[tuple[str, float, float, mp.mpf]], dtype: torch.dtype) -> None:
    """``rows``: ``(quantity, kappa, got, reference)``; all within the dtype's tolerance."""
    bad = [
        f"{name} at kappa={k:g}: got {got!r}, reference {mp.nstr(want, 17)}, error {err:.2e}"
        for name, k, got, want in rows
        if not (err := _error(got, want, dtype)) <= TOL[dtype]
    ]
    assert not bad, f"{len(bad)} of {len(rows)} values out of tolerance:\n" + "\n".join(bad[:30])


def _e(m: int, i: int, dtype: torch.dtype) -> Tensor:
    x = torch.zeros(m, dtype=dtype)
    x[i] = 1
    return x


def _angle_points(m: int, kappas: list[float], f: float, dtype: torch.dtype) -> Tensor:
    """``(B, m)`` points with ``1 - mu . x = f (m - 1) / (2 kappa)`` to ``mu = e1``, in ``dtype``."""
    t = torch.tensor([f * (m - 1) / (2 * k) for k in kappas], dtype=F64)
    x = torch.zeros(len(kappas), m, dtype=F64)
    x[:, 0] = 1 - t
    x[:, 1] = torch.sqrt(t * (2 - t))
    return x.to(dtype)


def _grad(value: Tensor, wrt: Tensor, create_graph: bool = False) -> Tensor:
    (grad,) = torch.autograd.grad(value.sum(), wrt, retain_graph=True, create_graph=create_graph)
    return grad


# --------------------------------------------------------------------------------------------------
# special functions
# --------------------------------------------------------------------------------------------------
SPECIAL_ORDERS = (0.0, 0.5, 1.5, 4.5, 31.0, 511.0)


@pytest.mark.parametrize("v", SPECIAL_ORDERS, ids=lambda v: f"v={v:g}")
@pytest.mark.parametrize("dtype", DTYPES)
def test_bessel_functions_at_large_z(dtype: torch.dtype, v: float) -> None:
    """``log_ive``, ``ive_ratio``, its complement, ``log_iv_normalized``, ``log_ive_normalized`` and
    the first and second derivatives of the ratio: relative errors within the tolerance."""
    zs = _rounded(KAPPAS[dtype], dtype)
    z = torch.tensor(zs, dtype=dtype, requires_grad=True)
    ratio = special.ive_ratio(v, z)
    d_ratio = _grad(ratio, z, create_graph=True)
    d2_ratio = _grad(d_ratio, z)
    got = {
        "log_ive": special.log_ive(v, z),
        "ratio": ratio,
        "complement": special.ive_ratio_complement(v, z),
        "log_normalized": special.log_iv_normalized(v, z),
        "log_scaled": special.log_ive_normalized(v, z),
        "ratio_derivative": d_ratio,
        "ratio_second_derivative": d2_ratio,
        "d_log_scaled": _grad(special.log_ive_normalized(v, z), z),
    }
    lists = {name: values.detach().double().tolist() for name, values in got.items()}
    rows = []
    for i, k in enumerate(zs):
        want = ref.large_z(v, k)
        for name, values in lists.items():
            w = -want["complement"] if name == "d_log_scaled" else want[name]
            rows.append((name, k, values[i], w))
    _check(rows, dtype)


def test_large_z_reference_agrees_with_the_bessel_references() -> None:
    """Where ``mp.besseli`` (or the quadrature of ``mp_reference.log_iv``) also converges, the Hankel
    path of ``large_z`` gives the same ``log I_v``, ``R`` and ``R'`` (to 1e-20: the other paths' 40
    digits lose some in ``R' = 1 - R^2 - (2v + 1) R / z``)."""
    for v, z in ((0.0, 1e5), (4.5, 1e5), (511.0, 1e5), (511.0, 1e7), (9999.0, 1e7)):
        big = ref.large_z(v, z)
        with mp.workdps(40):
            assert abs(big["log_ive"] / ref.log_ive(v, z) - 1) < 1e-30, (v, z)
            assert abs(big["ratio"] / ref.ive_ratio(v, z) - 1) < 1e-30, (v, z)
            want = ref.ive_ratio_derivative(v, z)
            assert abs(big["ratio_derivative"] / want - 1) < 1e-20, (v, z)


# --------------------------------------------------------------------------------------------------
# von Mises-Fisher closed forms
# --------------------------------------------------------------------------------------------------
def _vmf_values(m: int, kappas: list[float], dtype: torch.dtype) -> dict[str, np.ndarray]:
    kappa = torch.tensor(kappas, dtype=dtype, requires_grad=True)
    q = VonMisesFisher(_e(m, 0, dtype).expand(len(kappas), m), kappa)
    variance = q.variance
    values = {
        "log_prob_mode": q.log_prob(_e(m, 0, dtype)),
        **{f"log_prob_{s}": q.log_prob(_angle_points(m, kappas, s, dtype)) for s in ANGLES},
        "entropy": q.entropy(),
        "kl": kl_divergence(q, HypersphericalUniform(m, dtype=dtype)),
        "mean": q.mean[:, 0],
        "var_axis": variance[:, 0],
        "var_tangent": variance[:, 1],
    }
    out = {}
    for name, value in values.items():
        assert value.dtype == dtype, name
        out[name] = value.detach().double().numpy()
        out["d_" + name] = _grad(value, kappa).double().numpy()
    return out


def _vmf_references(
    m: int, k: float, points: dict[float, tuple[float, float]]
) -> dict[str, mp.mpf]:
    """The quantities of :func:`_vmf_values` at ``kappa = k`` (``points``: the float components of the
    angle points)."""
    v = m / 2 - 1
    big = ref.large_z(v, k)
    with mp.workdps(60):
        kk = mp.mpf(k)
        area = mp.log(2) + mp.mpf(m) / 2 * mp.log(mp.pi) - mp.loggamma(mp.mpf(m) / 2)
        r, c = big["ratio"], big["complement"]
        dr, d2r = big["ratio_derivative"], big["ratio_second_derivative"]
        out = {
            "log_prob_mode": -(area + big["log_scaled"]),
            "d_log_prob_mode": c,
            "entropy": area - big["kl"],
            "d_entropy": -kk * dr,
            "kl": big["kl"],
            "d_kl": kk * dr,
            "mean": r,
            "d_mean": dr,
            "var_axis": dr,
            "d_var_axis": d2r,
            "var_tangent": r / kk,
            "d_var_tangent": dr / kk - r / kk**2,
        }
        for s, (x0, x1) in points.items():
            if k > MODE_FORM_FROM:
                t = ((1 - mp.mpf(x0)) ** 2 + mp.mpf(x1) ** 2) / 2
                out[f"log_prob_{s}"] = -kk * t - (area + big["log_scaled"])
                out[f"d_log_prob_{s}"] = c - t
            else:
                out[f"log_prob_{s}"] = kk * mp.mpf(x0) - (area + big["log_normalized"])
                out[f"d_log_prob_{s}"] = mp.mpf(x0) - r
    return out


def _vmf_rows(m: int, dtype: torch.dtype) -> list[tuple[str, float, float, mp.mpf]]:
    kappas = _rounded(KAPPAS[dtype], dtype)
    got = _vmf_values(m, kappas, dtype)
    points = {s: _angle_points(m, kappas, s, dtype).double()[:, :2].tolist() for s in ANGLES}
    rows = []
    for i, k in enumerate(kappas):
        want = _vmf_references(m, k, {s: tuple(points[s][i]) for s in ANGLES})
        rows += [(name, k, float(got[name][i]), want[name]) for name in want]
    return rows


@pytest.mark.parametrize("m", DIMS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_vmf_closed_forms(dtype: torch.dtype, m: int) -> None:
    _check(_vmf_rows(m, dtype), dtype)


@pytest.mark.slow
@pytest.mark.parametrize("m", SLOW_DIMS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_vmf_closed_forms_high_dimension(dtype: torch.dtype, m: int) -> None:
    _check(_vmf_rows(m, dtype), dtype)


# --------------------------------------------------------------------------------------------------
# Power Spherical closed forms
# --------------------------------------------------------------------------------------------------
def _ps_rows(m: int, dtype: torch.dtype) -> list[tuple[str, float, float, mp.mpf]]:
    kappas = _rounded(KAPPAS[dtype], dtype)
    kappa = torch.tensor(kappas, dtype=dtype, requires_grad=True)
    p = PowerSpherical(_e(m, 0, dtype).expand(len(kappas), m), kappa)
    variance = p.variance
    angle_points = {s: _angle_points(m, kappas, s, dtype) for s in ANGLES}
    values = {
        "log_prob_mode": p.log_prob(_e(m, 0, dtype)),
        **{f"log_prob_{s}": p.log_prob(x) for s, x in angle_points.items()},
        "entropy": p.entropy(),
        "kl": kl_divergence(p, HypersphericalUniform(m, dtype=dtype)),
        "mean": p.mean[:, 0],
        "var_axis": variance[:, 0],
        "var_tangent": variance[:, 1],
    }
    got = {}
    for name, value in values.items():
        assert value.dtype == dtype, name
        got[name] = value.detach().double().tolist()
        got["d_" + name] = _grad(value, kappa).double().tolist()
    rows = []
    for i, k in enumerate(kappas):
        w = ref.power_spherical(m, k)
        with mp.workdps(60):
            kk, b = mp.mpf(k), mp.mpf(m - 1) / 2
            want = {
                "log_prob_mode": w["log_prob_mode"],
                "d_log_prob_mode": w["P"],
                "entropy": w["log_area"] - w["kl"],
                "d_entropy": -w["d_kl"],
                "kl": w["kl"],
                "d_kl": w["d_kl"],
                "mean": w["mean"],
                "d_mean": w["d_mean"],
                "var_axis": w["var_axis"],
                "d_var_axis": w["d_var_axis"],
                "var_tangent": w["var_tangent"],
                "d_var_tangent": w["d_var_tangent"],
            }
            for s, x in angle_points.items():
                x0, x1 = (mp.mpf(c) for c in x.double()[i, :2].tolist())
                if k > MODE_FORM_FROM:
                    half = ((1 - x0) ** 2 + x1**2) / 4
                    want[f"log_prob_{s}"] = w["log_prob_mode"] + kk * mp.log1p(-half)
                    want[f"d_log_prob_{s}"] = w["P"] + mp.log1p(-half)
                else:
                    log_c = w["D"] - (kk + 2 * b) * mp.log(2) - b * mp.log(mp.pi)
                    want[f"log_prob_{s}"] = log_c + kk * mp.log(1 + x0)
                    want[f"d_log_prob_{s}"] = w["P"] - mp.log(2) + mp.log(1 + x0)
        rows += [(name, k, float(got[name][i]), want[name]) for name in want]
    return rows


@pytest.mark.parametrize("m", DIMS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_power_spherical_closed_forms(dtype: torch.dtype, m: int) -> None:
    _check(_ps_rows(m, dtype), dtype)


@pytest.mark.slow
@pytest.mark.parametrize("m", SLOW_DIMS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_power_spherical_closed_forms_high_dimension(dtype: torch.dtype, m: int) -> None:
    _check(_ps_rows(m, dtype), dtype)


# --------------------------------------------------------------------------------------------------
# KL divergences between families
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["vmf", "ps"])
@pytest.mark.parametrize("m", DIMS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_kl_to_a_vmf(dtype: torch.dtype, m: int, family: str) -> None:
    """``KL(p || vMF(mu2, kappa / 4))`` for ``p`` a vMF or Power Spherical of concentration ``kappa`` and
    mean direction ``e1``, with ``mu2 = e1`` (a KL of order ``m``, the difference of terms of size
    ``kappa``) and ``mu2 = e2`` (of order ``kappa``); with the derivatives in both concentrations.
    (Not ``kappa / 2``: a Power Spherical of concentration ``kappa`` is within ``O(m / kappa)`` of the
    vMF of ``kappa / 2``, and a KL of that size has no relative digits to test.)

    ``KL = KL(p || U) + (g(k2) - k2) + k2 ((1 - c) + c (1 - A))`` (``c = mu1 . mu2``, ``A`` the mean
    resultant length of ``p``), so ``dKL/dk1 = dKL(p || U)/dk1 - k2 c A'`` and ``dKL/dk2 = -(1 - A2) + (1
    - c) + c (1 - A)``."""
    kappas = _rounded(KAPPAS[dtype], dtype)
    halves = _rounded(tuple(k / 4 for k in kappas), dtype)
    rows = []
    for j, cos in ((0, 1), (1, 0)):
        k1 = torch.tensor(kappas, dtype=dtype, requires_grad=True)
        k2 = torch.tensor(halves, dtype=dtype, requires_grad=True)
        loc = _e(m, 0, dtype).expand(len(kappas), m)
        p = VonMisesFisher(loc, k1) if family == "vmf" else PowerSpherical(loc, k1)
        kl = kl_divergence(p, VonMisesFisher(_e(m, j, dtype).expand(len(kappas), m), k2))
        assert kl.dtype == dtype
        d1, d2 = torch.autograd.grad(kl.sum(), (k1, k2))
        kl = kl.detach()
        for i, (a, b) in enumerate(zip(kappas, halves, strict=True)):
            big2 = ref.large_z(m / 2 - 1, b)
            with mp.workdps(60):
                ka, kb = mp.mpf(a), mp.mpf(b)
                if family == "vmf":
                    big1 = ref.large_z(m / 2 - 1, a)
                    kl_u, d_kl_u = big1["kl"], ka * big1["ratio_derivative"]
                    one_minus_mean, d_mean = big1["complement"], big1["ratio_derivative"]
                else:
                    w = ref.power_spherical(m, a)
                    kl_u, d_kl_u = w["kl"], w["d_kl"]
                    one_minus_mean, d_mean = w["one_minus_mean"], w["d_mean"]
                value = kl_u + big2["log_scaled"] + kb * ((1 - cos) + cos * one_minus_mean)
                d_first = d_kl_u - kb * cos * d_mean
                d_second = -big2["complement"] + (1 - cos) + cos * one_minus_mean
            name = f"mu2=e{j + 1}"
            rows += [
                (f"KL {name}", a, float(kl[i]), value),
                (f"dKL/dk1 {name}", a, float(d1[i]), d_first),
                (f"dKL/dk2 {name}", a, float(d2[i]), d_second),
            ]
    _check(rows, dtype)


# --------------------------------------------------------------------------------------------------
# the law of the samples
# --------------------------------------------------------------------------------------------------
LAW_KAPPAS = {F64: (1e7, 1e20, 1e300, sys.float_info.max), F32: (1e20, 3e38)}
LAW_DIMS = (2, 3, 5, 64)
LAW_N = 2000
KS_P_MIN = 1e-4


def _one_minus_cos(z: Tensor) -> np.ndarray:
    """``1 - e1 . z`` in float64 from the tangent part (``|z_perp|^2 / (1 + z_0)``): no cancellation where
    ``z`` is within rounding of ``e1``."""
    z64 = z.double()
    perp = (z64[..., 1:] ** 2).sum(-1)
    return (perp / (1 + z64[..., 0])).reshape(-1).numpy()


def _ks_p(values: np.ndarray, shape: float) -> float:
    return float(scipy.stats.kstest(values, scipy.stats.gamma(shape).cdf).pvalue)


def _law_cases(dims: tuple[int, ...]) -> list[tuple[torch.dtype, float, int]]:
    return [(dtype, k, m) for dtype in (F64, F32) for k in LAW_KAPPAS[dtype] for m in dims]


def _vmf_law(sampler: str, dtype: torch.dtype, kappa: float, m: int) -> None:
    torch.manual_seed(1000 * m + int(math.log10(kappa)) + SAMPLERS.index(sampler))
    k = torch.tensor(kappa, dtype=dtype)
    q = VonMisesFisher(_e(m, 0, dtype), k, sampler=sampler)  # type: ignore[arg-type]
    z = q.sample((LAW_N,))
    assert torch.isfinite(z).all()
    s = float(k.double()) * _one_minus_cos(z)
    p = _ks_p(s, (m - 1) / 2)
    assert p >= KS_P_MIN, f"{sampler}, m={m}, kappa={kappa:g} ({dtype}): KS p-value {p:.3g}"


# the default grid: every sampler in float64, the rejection sampler in float32 too (the float32 draws
# of the other samplers are in the slow grid below)
_DEFAULT_LAW_CASES = [
    (sampler, dtype, kappa, m)
    for sampler in SAMPLERS
    for dtype, kappa, m in _law_cases(LAW_DIMS)
    if sampler == "rejection" or dtype == F64
]


@pytest.mark.parametrize(
    ("sampler", "dtype", "kappa", "m"),
    _DEFAULT_LAW_CASES,
    ids=[f"{s}-{str(d)[6:]}-kappa={k:g}-m={m}" for s, d, k, m in _DEFAULT_LAW_CASES],
)
def test_vmf_sample_law_at_large_kappa(
    sampler: str, dtype: torch.dtype, kappa: float, m: int
) -> None:
    """``kappa (1 - mu . z)`` is ``Gamma((m - 1) / 2)``-distributed (to ``O(m^2 / kappa)``)."""
    _vmf_law(sampler, dtype, kappa, m)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("dtype", "kappa", "m"),
    _law_cases((11, 1024)) + [(F32, k, m) for k in LAW_KAPPAS[F32] for m in LAW_DIMS],
)
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_vmf_sample_law_at_large_kappa_more(
    sampler: str, dtype: torch.dtype, kappa: float, m: int
) -> None:
    if m == 1024 and kappa < 1e10:
        pytest.skip("the limit law is 1e-2 away at m = 1024, kappa = 1e7")
    _vmf_law(sampler, dtype, kappa, m)


@pytest.mark.parametrize(
    ("dtype", "kappa", "m"),
    [(F64, k, m) for k in LAW_KAPPAS[F64] for m in (2, 5, 64)]
    + [(F32, k, m) for k in LAW_KAPPAS[F32] for m in (2, 5)],
)
def test_power_spherical_sample_law_at_large_kappa(
    dtype: torch.dtype, kappa: float, m: int
) -> None:
    """``(1 - mu . z) / 2 ~ Beta(beta, alpha)``: ``alpha (1 - mu . z) / 2`` is ``Gamma(beta)`` to
    ``O(beta / alpha)``."""
    torch.manual_seed(7 * m + int(math.log10(kappa)))
    k = torch.tensor(kappa, dtype=dtype)
    z = PowerSpherical(_e(m, 0, dtype), k).sample((LAW_N,))
    assert torch.isfinite(z).all()
    beta = (m - 1) / 2
    s = (float(k.double()) + beta) * _one_minus_cos(z) / 2
    p = _ks_p(s, beta)
    assert p >= KS_P_MIN, f"m={m}, kappa={kappa:g} ({dtype}): KS p-value {p:.3g}"


@pytest.mark.parametrize("kappa", [1e7, 1e20, 1e100], ids=lambda k: f"kappa={k:g}")
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_vmf_sample_gradient_at_large_kappa(sampler: str, kappa: float) -> None:
    """In the limit ``theta = sqrt(2 G / kappa)`` for a fixed ``G``: ``dtheta/dkappa = -theta / (2 kappa)``,
    to ``O(m / kappa)``; the reparameterisation gradient of every sampler gives it (relative 1e-6)."""
    torch.manual_seed(3)
    m = 5
    k = torch.tensor(kappa, dtype=F64, requires_grad=True)
    z = VonMisesFisher(_e(m, 0, F64), k, sampler=sampler).rsample((8,))  # type: ignore[arg-type]
    theta = torch.atan2(torch.linalg.vector_norm(z[:, 1:], dim=-1), z[:, 0])
    grads = [_grad(theta[i], k) for i in range(theta.shape[0])]
    for th, g in zip(theta.detach().tolist(), grads, strict=True):
        want = -th / (2 * kappa)
        assert abs(float(g) / want - 1) <= 1e-6, (th, float(g), want)


# --------------------------------------------------------------------------------------------------
# inf and NaN
# --------------------------------------------------------------------------------------------------
def _family(name: str):  # type: ignore[no-untyped-def]
    if name == "ps":
        return lambda loc, k, **kw: PowerSpherical(loc, k, **kw)
    return lambda loc, k, **kw: VonMisesFisher(loc, k, sampler=name, **kw)


FAMILIES = [pytest.param(_family(name), id=name) for name in (*SAMPLERS, "ps")]


@pytest.mark.parametrize("value", [math.inf, math.nan], ids=["inf", "nan"])
@pytest.mark.parametrize("make", FAMILIES)
def test_non_finite_concentration_is_rejected(make, value: float) -> None:  # type: ignore[no-untyped-def]
    loc = _e(5, 0, F64)
    with pytest.raises(ValueError, match="concentration must be finite"):
        make(loc, torch.tensor([1.0, value], dtype=F64), validate_args=True)


def _outputs(dist, m: int, dtype: torch.dtype) -> dict[str, Tensor]:  # type: ignore[no-untyped-def]
    return {
        "sample": dist.rsample((4,)),
        "log_prob": dist.log_prob(_e(m, 0, dtype)),
        "entropy": dist.entropy(),
        "kl": kl_divergence(dist, HypersphericalUniform(m, dtype=dtype)),
        "mean": dist.mean,
        "variance": dist.variance,
    }


@pytest.mark.parametrize("m", [2, 3, 5])
@pytest.mark.parametrize("make", FAMILIES)
def test_nan_concentration_without_validation_gives_nan(make, m: int) -> None:  # type: ignore[no-untyped-def]
    """With validation off, a NaN concentration makes every output of its row NaN (never a finite
    value), and leaves the other rows as they are."""
    torch.manual_seed(0)
    kappa = torch.tensor([3.0, math.nan, 1e30], dtype=F64)
    dist = make(_e(m, 0, F64).expand(3, m), kappa, validate_args=False)
    for name, out in _outputs(dist, m, F64).items():
        bad_row = out[..., 1, :] if name in ("sample",) else out[1]
        good_rows = out[..., [0, 2], :] if name == "sample" else out[[0, 2]]
        assert torch.isnan(bad_row).all(), f"{name}: {bad_row}"
        assert torch.isfinite(good_rows).all(), f"{name}: {good_rows}"


@pytest.mark.parametrize("m", [2, 3, 5])
@pytest.mark.parametrize("make", FAMILIES)
def test_infinite_concentration_without_validation(make, m: int) -> None:  # type: ignore[no-untyped-def]
    """With validation off, ``kappa = inf`` raises nothing and draws the mode itself (the limit, a point
    mass); every other output of its row is its limit (mean ``loc``, variance 0) or not finite (a
    point mass has no density, an infinite KL, entropy ``-inf``): never a finite value that is not the
    limit. The other rows are unaffected."""
    torch.manual_seed(0)
    kappa = torch.tensor([3.0, math.inf], dtype=F64)
    loc = _e(m, 0, F64).expand(2, m)
    out = _outputs(make(loc, kappa, validate_args=False), m, F64)
    assert torch.equal(out["sample"][:, 1], loc[1].expand(4, m))
    limits = {"mean": loc[1], "variance": torch.zeros(m, dtype=F64)}
    for name, value in out.items():
        if name == "sample":
            continue
        row = value[1]
        ok = ~torch.isfinite(row)
        if name in limits:
            ok |= row == limits[name]
        assert ok.all(), f"{name}: {row}"
        assert torch.isfinite(value[0]).all(), f"{name}: {value[0]}"
