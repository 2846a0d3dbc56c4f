"""Accuracy of the closed forms: vMF / Power Spherical log-densities, entropies, KL divergences and their
derivatives in the concentration, against mpmath references and Monte Carlo estimates.

References. The von Mises-Fisher references are the textbook formulas evaluated in mpmath with 50
significant digits (``mp.dps = 50``; the Bessel function with 60 digits where ``mpmath.besseli``
converges, else ``tests/mp_reference.log_iv``, about 30 digits, which is only needed at large ``kappa``
where nothing cancels):

- ``log C_m(k) = v log k - (m/2) log(2 pi) - log I_v(k)``, ``v = m/2 - 1`` (``-log area`` at ``k = 0``);
- ``A = I_{m/2}(k) / I_{m/2-1}(k)``, ``A' = 1 - A^2 - (m-1) A / k`` (``1/m`` at ``k = 0``);
- ``H = -log C - k A``, ``KL(vMF || U) = k A + log C + log area(S^{m-1})``,
  ``log area = log 2 + (m/2) log pi - lgamma(m/2)``;
- derivatives: ``d log C / dk = -A``, ``dH/dk = -k A'``, ``dKL/dk = k A'``, ``d/dk log p(x) = mu.x - A``.

These formulas are themselves checked against direct quadrature of the normalising integral at small
``(m, k)``. The Power Spherical references are its closed form (De Cao and Aziz 2020) in mpmath, also
checked against quadrature.

Tolerances: float64 relative error <= 1e-8; float32 relative error <= 1e-3 or absolute error <= 1e-6,
whichever is looser; never NaN or inf. The vMF grid is ``m in {2, 3, 4, 5, 10, 64, 100, 500, 1000,
20000}`` x ``kappa in {0, 1e-6, 1e-3, 0.1, 1, 10, 100, 1e3, 1e4, 1e5, 1e6}``. Its two cells at
``m = 20000, kappa >= 1e5`` need about two minutes of mpmath quadrature and are marked ``slow``, as is a
denser grid (3 values per decade of kappa, more dimensions); everything else runs by default.
``python tests/test_closed_forms.py`` prints the table of worst errors over the full grid.

Statistical failure budget. Every Monte Carlo comparison accepts ``|estimate - exact| <= 4 SE``, whose
two-sided normal tail probability is 6.3e-5 per check. This file makes 60 such checks:

- Power Spherical, 4 cases x (entropy + mean of ``mu.x`` + KL(PS||U) + KL(PS||vMF)) = 16, plus the
  coordinates of the sample mean, 3 + 5 + 10 + 16 = 34 (``test_ps_monte_carlo``): 50 checks;
- vMF ``log_prob`` integrates to one, 2 dimensions x 3 concentrations = 6 checks
  (``test_vmf_density_integrates_to_one``);
- vMF entropy, KL(vMF||U) and KL(vMF||vMF), 4 cases x 3 = 12 checks... of which the KL(vMF||U) check
  is an affine function of the entropy check on the same samples, so 8 independent checks
  (``test_vmf_monte_carlo``) and 12 counted here to be conservative.

Total 68 checks counted, so a correct implementation fails one of them by chance with probability at
most 68 x 6.3e-5 = 4.3e-3 per fresh seed; the seeds are fixed, so a given run is deterministic.
"""

from __future__ import annotations

import math
import sys
import time
from functools import cache
from pathlib import Path

import mpmath as mp
import numpy as np
import pytest
import torch
from torch.distributions import Independent, Normal, kl_divergence

from spherevae.distributions import (
    HypersphericalUniform,
    PowerSpherical,
    ProductDistribution,
    VonMisesFisher,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mp_reference

mp.mp.dps = 50

SEED = 1234
RTOL = {torch.float64: 1e-8, torch.float32: 1e-3}
ATOL = {torch.float64: 0.0, torch.float32: 1e-6}
SE_THRESHOLD = 4.0  # two-sided normal tail 6.3e-5 per check

GRID_M = [2, 3, 4, 5, 10, 64, 100, 500, 1000, 20000]
GRID_K = [0.0, 1e-6, 1e-3, 0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6]
EXPENSIVE = {(20000, 1e5), (20000, 1e6)}  # about 10 s and 110 s of mpmath quadrature
DENSE_M = [2, 3, 4, 5, 6, 7, 10, 16, 33, 64, 100, 257, 500, 1000, 2001, 5000, 20000]
DENSE_K = [0.0] + [float(x) for x in np.logspace(-6, 6, 37)]
QUANTITIES = ["lp_mu", "logC", "H", "KL", "d_lp_mu", "d_logC", "d_H", "d_KL"]
DTYPES = [torch.float64, torch.float32]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(SEED)


# --------------------------------------------------------------------------------------------------
# mpmath references
# --------------------------------------------------------------------------------------------------


def _mpf(x: float) -> mp.mpf:
    return mp.mpf(float(x))


def _log_area(m: int) -> mp.mpf:
    """``log area(S^{m-1}) = log 2 + (m/2) log pi - lgamma(m/2)``."""
    return mp.log(2) + _mpf(m) / 2 * mp.log(mp.pi) - mp.loggamma(_mpf(m) / 2)


def _log_iv(v: float, k: float) -> mp.mpf:
    """``log I_v(k)``: mpmath's Bessel function at 60 digits, else ``mp_reference.log_iv``."""
    with mp.workdps(60):
        try:
            return mp.log(mp.besseli(_mpf(v), _mpf(k), maxterms=10**5))
        except mp.libmp.NoConvergence:
            pass
    return mp_reference.log_iv(v, k)


@cache
def vmf_reference(m: int, k: float) -> dict[str, mp.mpf]:
    """Textbook vMF quantities at ``(m, kappa)``; ``x`` below is ``mu`` for ``lp_mu`` and ``_|_ mu``
    for ``logC`` (``log_prob`` of an orthogonal unit vector is ``log C``)."""
    with mp.workdps(50):
        la = _log_area(m)
        kk = _mpf(k)
        if k == 0:
            log_c, a, a_prime = -la, mp.mpf(0), 1 / _mpf(m)
        else:
            v = _mpf(m) / 2 - 1
            log_i0, log_i1 = _log_iv(v, k), _log_iv(v + 1, k)
            log_c = v * mp.log(kk) - _mpf(m) / 2 * mp.log(2 * mp.pi) - log_i0
            a = mp.exp(log_i1 - log_i0)
            a_prime = 1 - a * a - (m - 1) * a / kk
        return {
            "lp_mu": kk + log_c,
            "logC": log_c,
            "H": -log_c - kk * a,
            "KL": kk * a + log_c + la,
            "d_lp_mu": 1 - a,
            "d_logC": -a,
            "d_H": -kk * a_prime,
            "d_KL": kk * a_prime,
            "A": a,
        }


def _log_quad_normaliser(m: int, log_f) -> mp.mpf:
    """``log int_{S^{m-1}} f(mu.x) dx = log area(S^{m-2}) + log int_{-1}^1 f(t) (1-t^2)^((m-3)/2) dt``."""
    log_area_sub = mp.log(2) + _mpf(m - 1) / 2 * mp.log(mp.pi) - mp.loggamma(_mpf(m - 1) / 2)
    half = _mpf(m - 3) / 2
    integral = mp.quad(lambda t: mp.exp(log_f(t)) * (1 - t * t) ** half, [-1, 0, 1])
    return log_area_sub + mp.log(integral)


def ps_reference(m: int, k: float, cos: float) -> dict[str, mp.mpf]:
    """Power Spherical closed forms (De Cao and Aziz 2020): ``log C``, ``log p(x)`` at ``mu.x = cos``,
    entropy and mean resultant length, and their derivatives in ``kappa``."""
    with mp.workdps(50):
        kk = _mpf(k)
        beta = _mpf(m - 1) / 2

        def log_c(kappa):
            alpha = beta + kappa
            return -(
                (alpha + beta) * mp.log(2)
                + beta * mp.log(mp.pi)
                + mp.loggamma(alpha)
                - mp.loggamma(alpha + beta)
            )

        def entropy(kappa):
            alpha = beta + kappa
            return -log_c(kappa) - kappa * (
                mp.log(2) + mp.digamma(alpha) - mp.digamma(alpha + beta)
            )

        log1p_cos = mp.log1p(_mpf(cos))
        return {
            "logC": log_c(kk),
            "lp": log_c(kk) + kk * log1p_cos,
            "H": entropy(kk),
            "d_lp": mp.diff(log_c, kk) + log1p_cos,
            "d_H": mp.diff(entropy, kk),
            "mean_t": kk / (m - 1 + kk),
        }


# --------------------------------------------------------------------------------------------------
# torch evaluation and comparison
# --------------------------------------------------------------------------------------------------


def _e(m: int, i: int, dtype: torch.dtype) -> torch.Tensor:
    x = torch.zeros(m, dtype=dtype)
    x[i] = 1
    return x


def _round_to(k: float, dtype: torch.dtype) -> float:
    """The concentration the library actually sees (references are evaluated there)."""
    return float(torch.tensor(k, dtype=dtype).double())


def vmf_torch(m: int, kappas: list[float], dtype: torch.dtype) -> dict[str, np.ndarray]:
    """The library's values and kappa-gradients, batched over ``kappas``."""
    kappa = torch.tensor(kappas, dtype=dtype, requires_grad=True)
    e1, e2 = _e(m, 0, dtype), _e(m, 1, dtype)
    dist = VonMisesFisher(e1.expand(len(kappas), m), kappa)
    values = {
        "lp_mu": dist.log_prob(e1),
        "logC": dist.log_prob(e2),
        "H": dist.entropy(),
        "KL": kl_divergence(dist, HypersphericalUniform(m, dtype=dtype)),
    }
    out = {}
    for name, value in values.items():
        assert value.dtype == dtype, name
        (grad,) = torch.autograd.grad(value.sum(), kappa, retain_graph=True)
        assert grad.dtype == dtype, name
        out[name] = value.detach().double().numpy()
        out["d_" + name] = grad.double().numpy()
    return out


def _errors(got: float, ref: mp.mpf) -> tuple[float, float]:
    """Absolute and relative error (relative is 0 for an exact match of a zero reference)."""
    ref_f = float(ref)
    if not math.isfinite(got):
        return math.inf, math.inf
    abs_err = float(abs(mp.mpf(got) - ref))
    if ref_f == 0:
        return abs_err, 0.0 if abs_err == 0 else math.inf
    return abs_err, abs_err / abs(ref_f)


def _ok(abs_err: float, rel_err: float, dtype: torch.dtype, atol: float | None = None) -> bool:
    return rel_err <= RTOL[dtype] or abs_err <= (ATOL[dtype] if atol is None else atol)


def vmf_cell_errors(m: int, kappas: list[float], dtype: torch.dtype):
    """Rows ``(m, kappa, quantity, got, ref, abs_err, rel_err)`` for every cell and quantity."""
    kappas = [_round_to(k, dtype) for k in kappas]
    got = vmf_torch(m, kappas, dtype)
    rows = []
    for i, k in enumerate(kappas):
        ref = vmf_reference(m, k)
        for q in QUANTITIES:
            abs_err, rel_err = _errors(float(got[q][i]), ref[q])
            rows.append((m, k, q, float(got[q][i]), float(ref[q]), abs_err, rel_err))
    return rows


def _assert_rows(rows, dtype: torch.dtype, atol: float | None = None) -> None:
    bad = [r for r in rows if not _ok(r[5], r[6], dtype, atol)]
    lines = [
        f"m={m} kappa={k:g} {q}: got {g!r}, ref {r!r}, rel {re:.2e}" for m, k, q, g, r, _, re in bad
    ]
    assert not bad, f"{len(bad)} of {len(rows)} values out of tolerance:\n" + "\n".join(lines[:40])


# --------------------------------------------------------------------------------------------------
# the references themselves
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("m", [2, 3, 5, 10])
@pytest.mark.parametrize("k", [0.0, 0.5, 3.0, 40.0])
def test_reference_formulas_match_quadrature(m, k):
    """The textbook closed forms used as references agree with direct quadrature (1e-20)."""
    with mp.workdps(50):
        log_z = _log_quad_normaliser(m, lambda t: _mpf(k) * t)
        assert abs(log_z + vmf_reference(m, k)["logC"]) < mp.mpf(10) ** -20
        ps = ps_reference(m, k, 0.0)
        log_z_ps = _log_quad_normaliser(m, lambda t: _mpf(k) * mp.log1p(t) if k else mp.mpf(0))
        assert abs(log_z_ps + ps["logC"]) < mp.mpf(10) ** -20
        # PS entropy: H = -log C - k E[log(1 + t)], E by quadrature against the normalised density
        if k:
            sub = mp.log(2) + _mpf(m - 1) / 2 * mp.log(mp.pi) - mp.loggamma(_mpf(m - 1) / 2)
            half = _mpf(m - 3) / 2
            e_log = mp.quad(
                lambda t: (
                    mp.log1p(t) * mp.exp(ps["logC"] + sub + k * mp.log1p(t)) * (1 - t * t) ** half
                ),
                [-1, 0, 1],
            )
            assert abs(-ps["logC"] - k * e_log - ps["H"]) < mp.mpf(10) ** -20


def test_reference_small_kappa_series():
    """``KL(vMF || U) = k^2 / (2m) + O(k^4)``: the reference keeps its digits under cancellation."""
    for m in (3, 100, 20000):
        for k in (1e-6, 1e-4):
            kl = vmf_reference(m, k)["KL"]
            assert abs(kl / (mp.mpf(k) ** 2 / (2 * m)) - 1) < 10 * k * k


# --------------------------------------------------------------------------------------------------
# vMF accuracy over the grid
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("m", GRID_M)
def test_vmf_grid(m, dtype):
    kappas = [k for k in GRID_K if (m, k) not in EXPENSIVE]
    _assert_rows(vmf_cell_errors(m, kappas, dtype), dtype)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("m", "k"), sorted(EXPENSIVE))
def test_vmf_grid_expensive_cells(m, k, dtype):
    _assert_rows(vmf_cell_errors(m, [k], dtype), dtype)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("m", DENSE_M)
def test_vmf_dense_grid(m, dtype):
    # m >= 10000 with kappa > 5e4 costs minutes of quadrature per cell: only the coarse grid has it
    kappas = [k for k in DENSE_K if not (m >= 10000 and k > 5e4)]
    _assert_rows(vmf_cell_errors(m, kappas, dtype), dtype)


def _region_boundaries(m: int) -> list[float]:
    """Concentrations on both sides of the switches of ``spherevae.special``: the series region
    ``k^2 <= 32 (v + 1)`` (orders ``v`` and ``v + 1``) and the Debye threshold ``sqrt(v^2 + k^2) = 20``."""
    v = m / 2 - 1
    edges = [math.sqrt(32 * (v + 1)), math.sqrt(32 * (v + 2))]
    edges += [math.sqrt(400 - a * a) for a in (v, v + 1) if a < 20]
    return sorted(e * f for e in edges for f in (1 - 1e-6, 1 + 1e-6))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("m", [2, 3, 5, 10, 64, 1000])
def test_vmf_region_boundaries(m, dtype):
    _assert_rows(vmf_cell_errors(m, _region_boundaries(m), dtype), dtype)


# --------------------------------------------------------------------------------------------------
# known failure cases of earlier implementations
# --------------------------------------------------------------------------------------------------

LITERATURE_KL = [(50, 0.1), (100, 1.0), (200, 10.0), (500, 100.0), (1000, 1000.0)]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("m", "k"), LITERATURE_KL)
def test_kl_known_failure_cases(m, k, dtype):
    """KL(vMF || U) where the textbook formula in float32 returns garbage, negatives or NaN."""
    k = _round_to(k, dtype)
    dist = VonMisesFisher(_e(m, 0, dtype), torch.tensor(k, dtype=dtype))
    kl = kl_divergence(dist, HypersphericalUniform(m, dtype=dtype))
    assert kl.dtype == dtype and torch.isfinite(kl)
    ref = vmf_reference(m, k)["KL"]
    assert kl.item() > 0
    abs_err, rel_err = _errors(kl.item(), ref)
    assert _ok(abs_err, rel_err, dtype), (kl.item(), float(ref), rel_err)
    assert rel_err <= RTOL[dtype]  # relative accuracy even where KL is small (m=50, k=0.1: 1e-4)


def test_kl_gradient_large_kappa_float32():
    """dKL/dk at m=3, k=5000 is k A'(k) = +2.0e-4; the cancelling float32 formula gives the wrong sign."""
    kappa = torch.tensor(5000.0, dtype=torch.float32, requires_grad=True)
    dist = VonMisesFisher(_e(3, 0, torch.float32), kappa)
    (grad,) = torch.autograd.grad(kl_divergence(dist, HypersphericalUniform(3)), kappa)
    ref = float(vmf_reference(3, 5000.0)["d_KL"])
    assert 1.99e-4 < ref < 2.01e-4
    assert grad.item() > 0
    assert abs(grad.item() - ref) <= 1e-3 * ref, (grad.item(), ref)


@pytest.mark.parametrize(("m", "k"), [(10, 1e-3), (3, 1e-2), (1000, 1e-1), (20000, 1.0)])
def test_small_kappa_kl_float32(m, k):
    """KL ~ k^2 / (2m) at small k keeps relative accuracy 1e-3 in float32 (no absolute-error escape)."""
    k = _round_to(k, torch.float32)
    dist = VonMisesFisher(_e(m, 0, torch.float32), torch.tensor(k))
    kl = kl_divergence(dist, HypersphericalUniform(m)).item()
    ref = float(vmf_reference(m, k)["KL"])
    assert abs(kl - ref) <= 1e-3 * ref, (kl, ref)
    assert abs(kl - k * k / (2 * m)) <= 1e-3 * ref  # the leading term of the series


# --------------------------------------------------------------------------------------------------
# kappa = 0 is the uniform distribution
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("m", [2, 3, 5, 64, 20000])
def test_kappa_zero_is_uniform(m, dtype):
    kappa = torch.zeros((), dtype=dtype, requires_grad=True)
    loc = _e(m, 0, dtype)
    x = torch.nn.functional.normalize(torch.arange(1.0, m + 1, dtype=torch.float64), dim=0).to(
        dtype
    )
    dist = VonMisesFisher(loc, kappa)
    uniform = HypersphericalUniform(m, dtype=dtype)
    log_area = uniform.log_surface_area()
    lp, h, kl = dist.log_prob(x), dist.entropy(), kl_divergence(dist, uniform)
    # the vMF's formulas at kappa = 0 and the uniform's are different code paths: they agree to a few
    # ulps, not bitwise (vectorised and scalar kernels of log and lgamma round differently)
    ulps = 4 * torch.finfo(dtype).eps
    assert abs(kl.item()) <= ulps * abs(log_area.item())
    torch.testing.assert_close(lp, -log_area, rtol=ulps, atol=0)
    torch.testing.assert_close(h, log_area, rtol=ulps, atol=0)
    torch.testing.assert_close(lp, uniform.log_prob(x), rtol=ulps, atol=0)
    torch.testing.assert_close(h, uniform.entropy(), rtol=ulps, atol=0)
    # first derivatives: 0, 0, mu.x - A(0) = mu.x; second: A'(0) = 1/m with the signs below
    expected = {"KL": (kl, 0.0, 1 / m), "H": (h, 0.0, -1 / m), "lp": (lp, float(x[0]), -1 / m)}
    for name, (value, d1, d2) in expected.items():
        (g1,) = torch.autograd.grad(value, kappa, create_graph=True)
        (g2,) = torch.autograd.grad(g1, kappa)
        assert torch.isfinite(g1) and torch.isfinite(g2), name
        tol = 4 * torch.finfo(dtype).eps
        assert abs(g1.item() - d1) <= tol * max(1.0, abs(d1)), (name, g1.item(), d1)
        assert abs(g2.item() - d2) <= RTOL[dtype] * abs(d2), (name, g2.item(), d2)
    assert torch.equal(dist.mean, torch.zeros(m, dtype=dtype))


# --------------------------------------------------------------------------------------------------
# Power Spherical closed forms
# --------------------------------------------------------------------------------------------------

PS_M = [2, 3, 5, 10, 100, 1000, 20000]
PS_K = [0.0, 1e-3, 0.5, 1.0, 10.0, 100.0, 1e4, 1e6]
PS_COS = [1.0, 0.0, -0.6]
# d log C / dk = -(log 2 + digamma(alpha) - digamma(alpha + beta)) is a difference of terms of size
# log m that nearly cancel at small kappa and large m (-3.1e-10 at m = 20000, kappa = 0.5): float64
# keeps an absolute, not a relative, accuracy there
PS_ATOL64 = 1e-13


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("m", PS_M)
def test_ps_closed_forms(m, dtype):
    kappas = [_round_to(k, dtype) for k in PS_K]
    kappa = torch.tensor(kappas, dtype=dtype, requires_grad=True)
    dist = PowerSpherical(_e(m, 0, dtype).expand(len(kappas), m), kappa)
    rows = []
    for c in PS_COS:
        x = torch.zeros(m, dtype=dtype)
        x[0], x[1] = c, math.sqrt(1 - c * c)
        cos = float(x[0])
        lp = dist.log_prob(x)
        (d_lp,) = torch.autograd.grad(lp.sum(), kappa)
        for i, k in enumerate(kappas):
            ref = ps_reference(m, k, cos)
            for q, val in (("lp", lp[i]), ("d_lp", d_lp[i])):
                rows.append(
                    (m, k, f"{q}(cos={c})", val.item(), float(ref[q]), *_errors(val.item(), ref[q]))
                )
    h = dist.entropy()
    (d_h,) = torch.autograd.grad(h.sum(), kappa)
    mean_t = (dist.mean * _e(m, 0, dtype)).sum(-1)
    for i, k in enumerate(kappas):
        ref = ps_reference(m, k, 0.0)
        for q, val in (("H", h[i]), ("d_H", d_h[i]), ("mean_t", mean_t[i])):
            rows.append((m, k, q, val.item(), float(ref[q]), *_errors(val.item(), ref[q])))
    assert h.dtype == lp.dtype == dtype
    _assert_rows(rows, dtype, atol=max(ATOL[dtype], PS_ATOL64))


# --------------------------------------------------------------------------------------------------
# Monte Carlo checks
# --------------------------------------------------------------------------------------------------


def _check_mc(samples: torch.Tensor, exact: float, what: str) -> None:
    """``|mean(samples) - exact| <= 4 SE`` (one statistical check, failure probability 6.3e-5)."""
    samples = samples.double()
    n = samples.numel()
    est = samples.mean().item()
    se = samples.std().item() / math.sqrt(n)
    assert math.isfinite(est) and math.isfinite(se), what
    assert abs(est - exact) <= SE_THRESHOLD * se + 1e-12, (
        f"{what}: MC {est!r} +- {se:.3g} vs exact {exact!r} ({(est - exact) / se:+.2f} SE)"
    )


def _random_unit(m: int, gen: torch.Generator) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(m, generator=gen, dtype=torch.float64), dim=0)


PS_MC_CASES = [(3, 1.0), (5, 10.0), (10, 50.0), (16, 300.0)]
N_MC = 40_000


@pytest.mark.parametrize(("m", "k"), PS_MC_CASES)
def test_ps_monte_carlo(m, k):
    """Entropy, mean, KL(PS||U) and KL(PS||vMF) against Monte Carlo (4 + m checks)."""
    gen = torch.Generator().manual_seed(SEED + m)
    loc, loc_q = _random_unit(m, gen), _random_unit(m, gen)
    p = PowerSpherical(loc, torch.tensor(k, dtype=torch.float64))
    q = VonMisesFisher(loc_q, torch.tensor(k / 3, dtype=torch.float64))
    x = p.sample((N_MC,))
    log_p = p.log_prob(x)
    _check_mc(-log_p, p.entropy().item(), "PS entropy")
    _check_mc(x @ loc, k / (m - 1 + k), "PS E[mu.x]")
    for i in range(m):  # each coordinate of the mean vector
        _check_mc(x[:, i], p.mean[i].item(), f"PS mean[{i}]")
    torch.testing.assert_close(p.mean, k / (m - 1 + k) * loc)
    uniform = HypersphericalUniform(m, dtype=torch.float64)
    _check_mc(log_p - uniform.log_prob(x), kl_divergence(p, uniform).item(), "KL(PS||U)")
    _check_mc(log_p - q.log_prob(x), kl_divergence(p, q).item(), "KL(PS||vMF)")


@pytest.mark.parametrize("m", [3, 5])
@pytest.mark.parametrize("k", [0.5, 2.0, 5.0])
def test_vmf_density_integrates_to_one(m, k):
    """Importance sampling from the uniform distribution: ``E_U[p(x)] area = 1`` (bounded weights)."""
    loc = _random_unit(m, torch.Generator().manual_seed(SEED + m))
    dist = VonMisesFisher(loc, torch.tensor(k, dtype=torch.float64))
    uniform = HypersphericalUniform(m, dtype=torch.float64)
    x = uniform.sample((100_000,))
    weights = torch.exp(dist.log_prob(x) + uniform.log_surface_area())
    _check_mc(weights, 1.0, f"integral of vMF density (m={m}, k={k})")


VMF_MC_CASES = [
    (3, 2.0, "rejection"),
    (5, 10.0, "inverse_cdf"),
    (20, 50.0, "mh"),
    (100, 300.0, "rejection"),
]


@pytest.mark.parametrize(("m", "k", "sampler"), VMF_MC_CASES)
def test_vmf_monte_carlo(m, k, sampler):
    """Entropy, KL(vMF||U) and KL(vMF||vMF) against Monte Carlo over the vMF's own samples."""
    gen = torch.Generator().manual_seed(SEED + m)
    loc, loc_q = _random_unit(m, gen), _random_unit(m, gen)
    p = VonMisesFisher(loc, torch.tensor(k, dtype=torch.float64), sampler=sampler)
    q = VonMisesFisher(loc_q, torch.tensor(2 * k, dtype=torch.float64))
    x = p.sample((N_MC,))
    log_p = p.log_prob(x)
    uniform = HypersphericalUniform(m, dtype=torch.float64)
    _check_mc(-log_p, p.entropy().item(), "vMF entropy")
    _check_mc(log_p - uniform.log_prob(x), kl_divergence(p, uniform).item(), "KL(vMF||U)")
    _check_mc(log_p - q.log_prob(x), kl_divergence(p, q).item(), "KL(vMF||vMF)")


VARIANCE_CASES = [(3, 2.0), (10, 30.0), (40, 400.0)]


@pytest.mark.parametrize(("m", "k"), VARIANCE_CASES)
@pytest.mark.parametrize("family", [VonMisesFisher, PowerSpherical], ids=lambda f: f.__name__)
def test_variance_monte_carlo(family, m, k):
    """``variance`` (the diagonal of the covariance) against ``mean((x_i - E[x_i])^2)`` over samples.

    One 4-SE check per coordinate: 2 x (3 + 10 + 40) = 106 checks, so a correct implementation fails
    by chance with probability at most 106 x 6.3e-5 = 6.7e-3 per fresh seed (the seed is fixed). The
    variance computed with a concentration that requires grad (the differentiable path) must equal the
    one computed without.
    """
    gen = torch.Generator().manual_seed(SEED + 7 * m)
    loc = _random_unit(m, gen)
    kappa = torch.tensor(k, dtype=torch.float64, requires_grad=True)
    dist = family(loc, kappa)
    variance = dist.variance
    assert variance.requires_grad
    with torch.no_grad():
        torch.testing.assert_close(variance.detach(), dist.variance, rtol=1e-12, atol=0.0)
        x = dist.sample((N_MC,))
        squared = (x - dist.mean) ** 2
    for i in range(m):
        _check_mc(
            squared[:, i], variance[i].item(), f"{family.__name__} variance[{i}] (m={m}, k={k})"
        )


# --------------------------------------------------------------------------------------------------
# gradcheck / gradgradcheck (float64)
# --------------------------------------------------------------------------------------------------

# concentrations per dimension covering the series region (k^2 <= 32 (v+1)), the Debye expansion with
# backward recurrence (sqrt(v^2 + k^2) < 20) and the plain Debye expansion
GRADCHECK_POINTS = {
    3: [0.01, 0.5, 6.5, 7.5, 15.0, 60.0],
    5: [0.3, 8.0, 9.5, 25.0, 200.0],
    64: [1.0, 30.0, 40.0, 500.0],
    1000: [5.0, 150.0, 2500.0],
}
# the directions (loc, value) are checked at smaller dimensions: gradgradcheck perturbs every coordinate
DIRECTION_M = {3: 3, 5: 5, 64: 8, 1000: 8}


FAST = [True, pytest.param(False, marks=pytest.mark.slow, id="full")]


def _gc(fn, inputs, fast: bool) -> None:
    """First and second derivatives against finite differences. Fast mode (the default suite) checks a
    random projection ``u^T J v`` of the Jacobian; the full Jacobians are compared under ``slow``."""
    assert torch.autograd.gradcheck(fn, inputs, fast_mode=fast)
    assert torch.autograd.gradgradcheck(fn, inputs, fast_mode=fast)


def _unit_batch(m: int, n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(
        torch.randn(n, m, generator=gen, dtype=torch.float64), dim=-1
    )


def _kappas(m: int) -> torch.Tensor:
    return torch.tensor(GRADCHECK_POINTS[m], dtype=torch.float64, requires_grad=True)


@pytest.mark.parametrize("fast", FAST, ids=lambda f: "fast" if f is True else f)
@pytest.mark.parametrize("m", sorted(GRADCHECK_POINTS))
def test_gradcheck_vmf_log_prob(m, fast):
    kappa = _kappas(m)
    n = kappa.numel()
    loc = _unit_batch(m, n, 1)
    x = _unit_batch(m, n, 2)
    _gc(lambda k: VonMisesFisher(loc, k).log_prob(x), (kappa,), fast)
    # value and loc (off the sphere under the perturbations: no validation)
    md = DIRECTION_M[m]
    loc_d, x_d = _unit_batch(md, n, 1).requires_grad_(), _unit_batch(md, n, 2).requires_grad_()
    _gc(
        lambda k, mu, v: VonMisesFisher(mu, k, validate_args=False).log_prob(v),
        (kappa, loc_d, x_d),
        fast,
    )


@pytest.mark.parametrize("fast", FAST, ids=lambda f: "fast" if f is True else f)
@pytest.mark.parametrize("m", sorted(GRADCHECK_POINTS))
def test_gradcheck_kl_vmf_uniform_and_entropy(m, fast):
    kappa = _kappas(m)
    loc = _unit_batch(m, kappa.numel(), 3)
    uniform = HypersphericalUniform(m, dtype=torch.float64)
    _gc(lambda k: kl_divergence(VonMisesFisher(loc, k), uniform), (kappa,), fast)
    _gc(lambda k: VonMisesFisher(loc, k).entropy(), (kappa,), fast)


@pytest.mark.parametrize("fast", FAST, ids=lambda f: "fast" if f is True else f)
@pytest.mark.parametrize("m", sorted(GRADCHECK_POINTS))
def test_gradcheck_kl_vmf_vmf(m, fast):
    k1 = _kappas(m)
    k2 = (k1.detach().flip(0) * 1.3).requires_grad_()
    n = k1.numel()

    def kl(a, b, mu1, mu2):
        return kl_divergence(
            VonMisesFisher(mu1, a, validate_args=False), VonMisesFisher(mu2, b, validate_args=False)
        )

    _gc(lambda a, b: kl(a, b, _unit_batch(m, n, 4), _unit_batch(m, n, 5)), (k1, k2), fast)
    md = DIRECTION_M[m]
    loc1, loc2 = _unit_batch(md, n, 4).requires_grad_(), _unit_batch(md, n, 5).requires_grad_()
    _gc(kl, (k1, k2, loc1, loc2), fast)


@pytest.mark.parametrize("fast", FAST, ids=lambda f: "fast" if f is True else f)
@pytest.mark.parametrize("m", [2, 3, 10, 500])
def test_gradcheck_ps_log_prob(m, fast):
    # 0.001 rather than 0: gradcheck needs both sides of every point
    kappa = torch.tensor([1e-3, 0.01, 1.0, 30.0, 400.0], dtype=torch.float64, requires_grad=True)
    n = kappa.numel()
    md = min(m, 8)
    loc, x = _unit_batch(md, n, 6).requires_grad_(), _unit_batch(md, n, 7).requires_grad_()
    _gc(
        lambda k, mu, v: PowerSpherical(mu, k, validate_args=False).log_prob(v),
        (kappa, loc, x),
        fast,
    )
    loc_m = _unit_batch(m, n, 6)
    _gc(lambda k: PowerSpherical(loc_m, k).entropy(), (kappa,), fast)
    _gc(
        lambda k: kl_divergence(
            PowerSpherical(loc_m, k), HypersphericalUniform(m, dtype=torch.float64)
        ),
        (kappa,),
        fast,
    )


# --------------------------------------------------------------------------------------------------
# ProductDistribution
# --------------------------------------------------------------------------------------------------


def _product_pair():
    gen = torch.Generator().manual_seed(SEED)
    f64 = torch.float64

    def unit(m):
        return torch.nn.functional.normalize(torch.randn(3, m, generator=gen, dtype=f64), dim=-1)

    def conc():
        return 0.5 + 20 * torch.rand(3, generator=gen, dtype=f64)

    normal_loc, normal_scale = torch.randn(3, 2, dtype=f64), 0.5 + torch.rand(3, 2, dtype=f64)
    p = ProductDistribution(
        [
            VonMisesFisher(unit(5), conc()),
            PowerSpherical(unit(3), conc()),
            VonMisesFisher(unit(3), conc(), sampler="inverse_cdf"),
            Independent(Normal(normal_loc, normal_scale), 1),
        ]
    )
    q = ProductDistribution(
        [
            HypersphericalUniform(5, dtype=f64),
            VonMisesFisher(unit(3), conc()),
            VonMisesFisher(unit(3), conc()),
            Independent(Normal(normal_loc + 1, 2 * normal_scale), 1),
        ]
    )
    return p, q


def test_product_sums_and_concatenates():
    p, q = _product_pair()
    assert p.event_shape == torch.Size((13,))
    x = p.sample((4,))
    parts = torch.split(x, [5, 3, 3, 2], dim=-1)
    expected = sum(c.log_prob(xi) for c, xi in zip(p.components, parts, strict=True))
    torch.testing.assert_close(p.log_prob(x), expected, rtol=1e-14, atol=0)
    torch.testing.assert_close(
        p.entropy(), sum(c.entropy() for c in p.components), rtol=1e-14, atol=0
    )
    torch.testing.assert_close(p.mean, torch.cat([c.mean for c in p.components], dim=-1))
    torch.testing.assert_close(p.variance, torch.cat([c.variance for c in p.components], dim=-1))
    kl = kl_divergence(p, q)
    expected_kl = sum(kl_divergence(a, b) for a, b in zip(p.components, q.components, strict=True))
    assert kl.shape == torch.Size((3,))
    torch.testing.assert_close(kl, expected_kl, rtol=1e-14, atol=0)


def test_product_kl_monte_carlo_consistency():
    """KL(product || product) is also the mean of log p - log q over p's samples (not a statistical
    check: the comparison is with 8 SE and only guards against a gross error in the sum)."""
    p, q = _product_pair()
    x = p.sample((20_000,))
    diff = (p.log_prob(x) - q.log_prob(x)).double()
    est, se = diff.mean(0), diff.std(0) / math.sqrt(x.shape[0])
    assert ((est - kl_divergence(p, q)).abs() <= 8 * se).all()


def test_product_mismatched_factor_dims():
    e3, e5 = _e(3, 0, torch.float64), _e(5, 0, torch.float64)
    p = ProductDistribution([VonMisesFisher(e3, 1.0), VonMisesFisher(e5, 1.0)])
    q = ProductDistribution([VonMisesFisher(e5, 1.0), VonMisesFisher(e3, 1.0)])  # same total, 8
    with pytest.raises(ValueError, match=r"\[3, 5\].*\[5, 3\]"):
        kl_divergence(p, q)
    r = ProductDistribution([HypersphericalUniform(3), HypersphericalUniform(4)])
    with pytest.raises(ValueError):
        kl_divergence(p, r)


# --------------------------------------------------------------------------------------------------
# table of worst errors over the full grid: python tests/test_closed_forms.py
# --------------------------------------------------------------------------------------------------


def _print_worst_table() -> None:
    for dtype in DTYPES:
        worst: dict[str, dict[str, tuple]] = {q: {} for q in QUANTITIES}
        n_bad = 0
        t0 = time.time()
        for m in GRID_M:
            for row in vmf_cell_errors(m, GRID_K, dtype):
                _, _, q, _, _, abs_err, rel_err = row
                n_bad += not _ok(abs_err, rel_err, dtype)
                for key, val in (("rel", rel_err), ("abs", abs_err)):
                    if key not in worst[q] or val > worst[q][key][6 if key == "rel" else 5]:
                        worst[q][key] = row
        print(
            f"\n{dtype}: {len(GRID_M) * len(GRID_K)} cells, {n_bad} values out of tolerance "
            f"({time.time() - t0:.0f} s)"
        )
        print(
            f"{'quantity':9s} {'worst rel':>10s} {'at (m, kappa)':>16s}   {'worst abs':>10s} {'at (m, kappa)':>16s}"
        )
        for q in QUANTITIES:
            r, a = worst[q]["rel"], worst[q]["abs"]
            print(
                f"{q:9s} {r[6]:10.2e} {f'({r[0]}, {r[1]:g})':>16s}   {a[5]:10.2e} {f'({a[0]}, {a[1]:g})':>16s}"
            )


if __name__ == "__main__":
    _print_worst_table()


# --------------------------------------------------------------------------------------------------
# the Bessel terms a vMF shares between its sampler and its KL divergence
# --------------------------------------------------------------------------------------------------


# Cached and fresh Bessel terms reach the KL through different code paths (a sum against a matrix
# product, fused against separate kernels), whose float64 results may differ by a few ulps from one
# machine to another of the same kind. 1e-13 (about 450 ulps) still catches any term that is stale
# or wrong, which moves the KL by far more.
CROSS_PATH_RTOL = 1e-13


def _fresh_kl(loc: torch.Tensor, kappa: torch.Tensor, m: int) -> torch.Tensor:
    return kl_divergence(VonMisesFisher(loc, kappa), HypersphericalUniform(m, dtype=kappa.dtype))


def test_shared_terms_give_the_same_kl_and_gradients():
    """KL and its gradient after ``rsample`` (which caches the terms) equal a fresh distribution's."""
    m = 11
    kappa = torch.tensor([0.5, 12.0, 30.0, 3e3], dtype=torch.float64, requires_grad=True)
    loc = torch.nn.functional.normalize(torch.randn(4, m, dtype=torch.float64), dim=-1)
    q = VonMisesFisher(loc, kappa)
    q.rsample((3,))  # computes and caches the terms (kappa needs a gradient)
    assert q.cached_bessel_terms() is not None
    kl = kl_divergence(q, HypersphericalUniform(m, dtype=torch.float64))
    fresh = _fresh_kl(loc, kappa, m)
    torch.testing.assert_close(kl, fresh, rtol=CROSS_PATH_RTOL, atol=0.0)
    (g,) = torch.autograd.grad(kl.sum(), kappa)
    (g_fresh,) = torch.autograd.grad(fresh.sum(), kappa)
    torch.testing.assert_close(g, g_fresh, rtol=CROSS_PATH_RTOL, atol=0.0)
    torch.testing.assert_close(q.entropy(), VonMisesFisher(loc, kappa).entropy())


def test_shared_terms_follow_in_place_changes_and_expand():
    """Terms are recomputed when the concentration changes in place (an optimiser step on a leaf) and
    are not carried into ``expand`` (a new batch shape)."""
    m = 5
    kappa = torch.tensor([2.0, 40.0], dtype=torch.float64, requires_grad=True)
    loc = torch.nn.functional.normalize(torch.randn(2, m, dtype=torch.float64), dim=-1)
    uniform = HypersphericalUniform(m, dtype=torch.float64)
    q = VonMisesFisher(loc, kappa)
    before = kl_divergence(q, uniform)
    with torch.no_grad():
        kappa.mul_(3.0)
    after = kl_divergence(q, uniform)
    torch.testing.assert_close(after, _fresh_kl(loc, kappa, m), rtol=CROSS_PATH_RTOL, atol=0.0)
    assert not torch.allclose(before, after)
    wide = q.expand(torch.Size((3, 2)))
    assert wide.cached_bessel_terms() is None
    torch.testing.assert_close(kl_divergence(wide, uniform), after.expand(3, 2))
    # inference tensors have no version counter: nothing is cached, values are still right
    with torch.inference_mode():
        q_inf = VonMisesFisher(loc, kappa.detach().clone())
        torch.testing.assert_close(kl_divergence(q_inf, uniform), after.detach())
        assert q_inf.cached_bessel_terms() is None


@pytest.mark.parametrize("kl_first", [False, True], ids=["sample_first", "kl_first"])
def test_product_factors_share_one_bessel_evaluation(kl_first):
    """``S^4 x S^4``: the stacked sampler and the factors' KL divergences use the same terms (one
    evaluation), and the KL and its gradients equal those of fresh factors."""
    m, b = 5, 3
    kappas = [
        torch.tensor([1.0, 8.0, 25.0], dtype=torch.float64, requires_grad=True),
        torch.tensor([0.1, 17.0, 900.0], dtype=torch.float64, requires_grad=True),
    ]
    locs = [torch.nn.functional.normalize(torch.randn(b, m, dtype=torch.float64), dim=-1)] * 2
    p = ProductDistribution([VonMisesFisher(loc, k) for loc, k in zip(locs, kappas, strict=True)])
    prior = ProductDistribution([HypersphericalUniform(m, dtype=torch.float64)] * 2)
    if kl_first:
        kl = kl_divergence(p, prior)
        z = p.rsample()
    else:
        z = p.rsample()
        kl = kl_divergence(p, prior)
    for c in p.components:
        assert c.cached_bessel_terms() is not None
    fresh = sum(_fresh_kl(loc, k, m) for loc, k in zip(locs, kappas, strict=True))
    torch.testing.assert_close(kl, fresh, rtol=CROSS_PATH_RTOL, atol=0.0)
    grads = torch.autograd.grad((kl.sum() + z.sum()), kappas)
    want = torch.autograd.grad(fresh.sum(), kappas)
    for g, w in zip(grads, want, strict=True):
        assert torch.isfinite(g).all()
        assert not torch.equal(g, w)  # the sample's gradient is added
    grads_kl = torch.autograd.grad(kl_divergence(p, prior).sum(), kappas)
    for g, w in zip(grads_kl, want, strict=True):
        torch.testing.assert_close(g, w, rtol=CROSS_PATH_RTOL, atol=0.0)
