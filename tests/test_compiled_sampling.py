"""The compiled von Mises-Fisher draws (``VonMisesFisher(..., compiled=True)``, ``spherevae.distributions.von_mises_fisher.kernels``).

The claim under test: with the switch on, draws of at most 32 samples a row follow the same law and
carry the same gradients as the eager path (not the same random numbers for a seed). What is checked:

1. law: ``theta = arccos(mu.z)`` of compiled draws (batches of 64 rows, one sample each, the rows
   cycling through concentrations on both sides of the rejection sampler's gamma-proposal threshold
   and of the Bessel functions' series/Debye switch) against the exact CDF of
   ``tests/test_vmf_sampling.py`` (one-sample KS test per concentration); the tangent direction
   (coordinate along a fixed unit vector orthogonal to ``mu``: ``(1 + s) / 2 ~ Beta((m-2)/2, (m-2)/2)``,
   a KS test; at ``m = 2`` the sign, a z-test); the rejection kernel's acceptance rate against the
   exact rate of each row's proposal;
2. gradients: the kernel's slope ``dtheta/dkappa`` against the eager quadrature
   :func:`_vmf_gradient.dtheta_dkappa_direct` at the same ``t`` (relative ``1e-9`` for float64
   parameters, ``1e-6`` for float32), and ``z``, ``loc.grad``, ``kappa.grad`` of ``rsample`` against
   the eager placement given the same ``t`` and Gaussian draw;
3. the Bessel terms the kernel computes, as cached on the distribution, against
   :func:`spherevae.special.bessel_terms` (relative ``1e-13``) and the entropy read from them;
4. the exact fallbacks: rejection samples without an accepted candidate (forced with one candidate a
   sample), unconverged Newton iterations (forced with one step) and far-tail quantiles (forced by
   lowering the threshold) against the eager samplers;
5. the switch and the routing (more than 32 samples a row, MPS and ``m = 3`` rejection stay eager);
6. a compiler failure: a warning, an eager draw, the feature off from then on;
7. the trainer (``train.compiled_sampling``) and the command line (``--compiled-sampling``).

Compiling: every ``(kernel, m, slope precision)`` compiles on first use (seconds; ``torch.compile``
caches on disk). The default run shares four kernels (rejection at ``m = 11`` with float64 and float32
slopes, Metropolis-Hastings at ``m = 5``, the inverse CDF at ``m = 11``, all at the batch shapes used
here) and compiles three more for the forced fallbacks; the broader grids are marked ``slow``.

Statistics as in ``tests/test_vmf_sampling.py``: KS tests fail at ``p <= 1e-4`` (false-failure
probability ``1e-4`` each), z-checks at ``|z| >= 4`` (``6.3e-5``); all seeds are fixed, so a run is
reproducible, and the budget is the probability that a correct implementation fails for a given
choice of seeds (union bound). Everything else is a deterministic comparison.

Failure budget:

- default run: KS tests: 3 cells x 2 concentrations + 3 tangent + 2 (rejection fallback) = 11;
  z-checks: 2 acceptance rates; ``11 * 1e-4 + 2 * 6.3e-5 = 1.2e-3``;
- slow run: KS tests: 11 cells x 4 concentrations + 9 tangent (cells with ``m >= 3``) = 53;
  z-checks: 2 tangent signs (``m = 2``) + 3 rejection cells x 4 acceptance rates = 14;
  ``53 * 1e-4 + 14 * 6.3e-5 = 6.2e-3``.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from scipy import stats

from spherevae.distributions import VonMisesFisher
from spherevae.distributions.sphere import place_on_sphere
from spherevae.distributions.von_mises_fisher import (
    DEFAULT_MH_STEPS,
    gradient,
    kernels,
    proposals,
    rejection,
)
from spherevae.distributions.von_mises_fisher import distribution as vmf_module
from spherevae.distributions.von_mises_fisher import inverse_cdf as inversion
from spherevae.special import bessel_terms, series
from test_training import _images
from test_vmf_sampling import (
    KS_ALPHA,
    Z_MAX,
    _gamma_acceptance,
    _seed,
    _theta_and_t,
    _unit_vector,
    _wood_acceptance,
    theta_law,
)

F64, F32 = torch.float64, torch.float32
ROWS = 64  # a training batch: 64 rows, one sample each
ROWS_F32 = 16  # the float32 cases: the trainer test's batch size (the same compiled kernel)
N_LAW = 20_000  # samples per concentration in a KS test
SLOPE_DRAWS = 20  # draws of ROWS samples compared with the eager slope

pytestmark = pytest.mark.skipif(
    not any(shutil.which(cxx) for cxx in ("g++", "c++", "clang++")),
    reason="torch.compile needs a C++ compiler on the CPU",
)


def _kappas_around_thresholds(m: int) -> tuple[float, ...]:
    """Four concentrations: small, both sides of the gamma-proposal threshold (``m >= 4``; else 2 and
    20), and large; together they straddle the Bessel series/Debye switch near 18 as well."""
    threshold = proposals.gamma_threshold(m)
    if math.isinf(threshold):
        return (0.1, 2.0, 20.0, 1000.0)
    return (0.1, 0.5 * threshold, 2.0 * threshold, 1000.0)


# (sampler, m, concentrations of the rows) of the default run; every pair of concentrations straddles
# the gamma-proposal threshold of its m (35.2 at m = 11, 5.4 at m = 5) and the series switch (17.4-18)
DEFAULT_CELLS = [
    ("rejection", 11, (10.0, 100.0)),
    ("mh", 5, (2.0, 20.0)),
    ("inverse_cdf", 11, (10.0, 100.0)),
]
SLOW_CELLS = [
    (sampler, m, _kappas_around_thresholds(m))
    for sampler, ms in (
        ("rejection", (4, 5, 11)),
        ("mh", (2, 3, 5, 11)),
        ("inverse_cdf", (2, 3, 5, 11)),
    )
    for m in ms
]


# ---------------------------------------------------------------------------------------------------
# fixtures and helpers
# ---------------------------------------------------------------------------------------------------
@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Single-threaded, as ``tests/test_vmf_sampling.py``: these small kernels gain nothing from threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seeded(request: pytest.FixtureRequest) -> None:
    """torch seeded from the test's id."""
    torch.manual_seed(_seed(request.node.nodeid))


@pytest.fixture
def fresh_kernels() -> Iterator[None]:
    """No compiled kernel and no record of a failed compile, before and after this test (a patched
    module constant that a kernel reads then takes effect; a simulated failure does not outlive it)."""
    kernels.clear_kernels()
    yield
    kernels.clear_kernels()


class DrawSpy:
    """Records every call of ``kernels.sample`` (the compiled path): its arguments (``(sampler, kappa,
    m, n, mh_steps, slope, loc, gauss)``), its draw, and the state of torch's generator right after
    it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[tuple[Any, ...], kernels.Draw, torch.Tensor]] = []
        real = kernels.sample

        def spy(*args: Any) -> kernels.Draw:
            draw = real(*args)
            self.calls.append((args, draw, torch.get_rng_state()))
            return draw

        monkeypatch.setattr(kernels, "sample", spy)


@pytest.fixture
def draw_spy(monkeypatch: pytest.MonkeyPatch) -> DrawSpy:
    """A :class:`DrawSpy` on the compiled path for this test."""
    return DrawSpy(monkeypatch)


def _counting(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[tuple[Any, ...]]:
    """Wrap ``module.name`` so that its calls' arguments are recorded; returns the record."""
    calls: list[tuple[Any, ...]] = []
    real = getattr(module, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def _row_kappas(kappas: tuple[float, ...], rows: int, dtype: torch.dtype = F64) -> torch.Tensor:
    """``rows`` concentrations cycling through ``kappas`` (row ``i`` has ``kappas[i % len(kappas)]``)."""
    return torch.tensor(kappas, dtype=F64).repeat(rows // len(kappas)).to(dtype)


def _slope_kappas(rows: int) -> torch.Tensor:
    """Concentrations from 1e-3 to 1e4 (log-spaced), across every switch of the samplers and Bessel terms."""
    return torch.logspace(-3, 4, rows, dtype=F64)


def _theta_from_t(t: np.ndarray) -> np.ndarray:
    """``theta = arccos(1 - t) = 2 asin(sqrt(t / 2))`` (no cancellation near 0)."""
    return 2 * np.arcsin(np.sqrt(np.clip(t / 2, 0.0, 1.0)))


def _ks(theta: np.ndarray, m: int, kappa: float) -> float:
    """p-value of the one-sample KS test of ``theta`` against its exact law."""
    return float(stats.kstest(theta, theta_law(m, kappa).cdf).pvalue)


def _compiled_rsample(
    sampler: str, m: int, kappas: tuple[float, ...], calls: int, spy: DrawSpy, grad: bool
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor | None]]:
    """``calls`` compiled draws of one sample for each of ``ROWS`` rows with the mean ``mu`` of
    ``tests/test_vmf_sampling.py`` and concentrations cycling through ``kappas``; ``grad``: the
    concentrations require a gradient (the slope is then computed in the kernel too).

    Returns ``z`` ``(calls, ROWS, m)``, ``mu`` and the acceptance rates of the draws.
    """
    mu = _unit_vector(m, _seed("loc", m))
    kappa = _row_kappas(kappas, ROWS).requires_grad_(grad)
    loc = mu.expand(ROWS, m)
    out, rates = [], []
    before = len(spy.calls)
    for _ in range(calls):
        q = VonMisesFisher(loc, kappa, sampler=sampler, compiled=True)
        out.append(q.rsample().detach())
        rates.append(q.acceptance_rate)
    assert len(spy.calls) - before == calls, "the draws did not take the compiled path"
    return torch.stack(out), mu, rates


def _tangent_coordinate(z: torch.Tensor, mu: torch.Tensor) -> np.ndarray:
    """``s = v . e`` of the unit tangent direction ``v`` of each sample and a fixed unit ``e`` orthogonal
    to ``mu``; uniform directions give ``(1 + s) / 2 ~ Beta((m-2)/2, (m-2)/2)`` (``+-1`` at ``m = 2``)."""
    m = mu.shape[0]
    e = _unit_vector(m, _seed("tangent", m))
    e = e - (e @ mu) * mu
    e = e / torch.linalg.vector_norm(e)
    flat = z.reshape(-1, m).to(F64)
    v = flat - (flat @ mu)[:, None] * mu
    return ((v @ e) / torch.linalg.vector_norm(v, dim=-1)).numpy()


def _check_law(sampler: str, m: int, kappas: tuple[float, ...], spy: DrawSpy, grad: bool) -> None:
    """KS test of ``theta`` per concentration, of the tangent direction, and (rejection) a z-check of
    the acceptance rate of each concentration against its proposal's exact rate."""
    groups = len(kappas)
    calls = N_LAW * groups // ROWS
    torch.manual_seed(_seed("law", sampler, m, kappas, grad))
    z, mu, rates = _compiled_rsample(sampler, m, kappas, calls, spy, grad)
    theta, _ = _theta_and_t(z.reshape(-1, m), mu)
    theta = theta.reshape(calls, ROWS)
    assert np.all(np.isfinite(theta))
    for j, kappa in enumerate(kappas):
        p = _ks(theta[:, j::groups].ravel(), m, kappa)
        print(f"STAT ks {sampler} m={m} kappa={kappa:g} p={p:.3g}")
        assert p > KS_ALPHA, f"KS test of the kappa = {kappa:g} rows: p = {p:.3g}"
    s = _tangent_coordinate(z, mu)
    if m == 2:
        z_sign = (np.sum(s > 0) - s.size / 2) / math.sqrt(s.size / 4)
        assert abs(z_sign) < Z_MAX, f"tangent side at m = 2: z = {z_sign:.2f}"
    else:
        half = (m - 2) / 2
        p = float(stats.kstest((1 + s) / 2, stats.beta(half, half).cdf).pvalue)
        print(f"STAT tangent {sampler} m={m} p={p:.3g}")
        assert p > KS_ALPHA, f"KS test of the tangent direction: p = {p:.3g}"
    if sampler == "inverse_cdf":
        assert all(rate is None for rate in rates)
        return
    rate = torch.stack([r for r in rates if r is not None])
    assert rate.shape == (calls, ROWS) and bool(((rate >= 0) & (rate <= 1)).all())
    if sampler == "mh":
        assert 0.0 < float(rate.mean()) < 1.0
        return
    # each row proposes from Wood's envelope below the threshold, t = G / kappa from it on;
    # the rate is over rejection.first_round_candidates(ROWS) candidates of each row
    k = rejection.first_round_candidates(ROWS)
    threshold = proposals.gamma_threshold(m)
    for j, kappa in enumerate(kappas):
        exact = _gamma_acceptance(m, kappa) if kappa >= threshold else _wood_acceptance(m, kappa)
        trials = rate[:, j::groups].numel() * k
        se = math.sqrt(exact * (1 - exact) / trials)
        z_rate = (float(rate[:, j::groups].mean()) - exact) / se
        assert abs(z_rate) < Z_MAX, f"acceptance at kappa = {kappa:g}: z = {z_rate:.2f}"


# ---------------------------------------------------------------------------------------------------
# 1. law
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("sampler", "m", "kappas"), DEFAULT_CELLS)
def test_compiled_draws_follow_the_law(
    sampler: str, m: int, kappas: tuple[float, ...], draw_spy: DrawSpy
) -> None:
    """A training batch (64 rows, one sample each, the concentrations alternating across both
    thresholds), 20000 samples a concentration; gradients on, as in training."""
    _check_law(sampler, m, kappas, draw_spy, grad=True)


@pytest.mark.slow
@pytest.mark.parametrize(("sampler", "m", "kappas"), SLOW_CELLS)
def test_compiled_draws_follow_the_law_full_grid(
    sampler: str, m: int, kappas: tuple[float, ...], draw_spy: DrawSpy
) -> None:
    """Four concentrations a batch (small, both sides of the threshold, large), without gradients (the
    kernels without the slope)."""
    _check_law(sampler, m, kappas, draw_spy, grad=False)


# ---------------------------------------------------------------------------------------------------
# 2. gradients
# ---------------------------------------------------------------------------------------------------
def _check_slopes(sampler: str, m: int, precision: str, rows: int) -> None:
    """The kernel's slopes against the eager quadrature of the same precision at the same ``t``."""
    kappa = _slope_kappas(rows)
    draws = [
        kernels.sample(sampler, kappa, m, 1, DEFAULT_MH_STEPS, precision)
        for _ in range(SLOPE_DRAWS)
    ]
    t = torch.cat([d.t for d in draws], dim=1)
    slope = torch.cat([d.slope for d in draws if d.slope is not None], dim=1)
    assert t.shape == slope.shape == (rows, SLOPE_DRAWS)
    single = precision == "single"
    want = gradient.dtheta_dkappa_direct(
        t, kappa, m, bessel_terms(m / 2 - 1, kappa).complement, single
    )
    torch.testing.assert_close(slope, want, rtol=1e-6 if single else 1e-9, atol=0.0)


@pytest.mark.parametrize(("sampler", "m", "kappas"), DEFAULT_CELLS)
def test_kernel_slope_matches_the_eager_quadrature(
    sampler: str, m: int, kappas: tuple[float, ...]
) -> None:
    """``dtheta/dkappa`` from the kernel (float64 parameters) equals
    :func:`_vmf_gradient.dtheta_dkappa_direct` at the returned ``t`` within ``1e-9``, for
    concentrations from 1e-3 to 1e4."""
    _check_slopes(sampler, m, "double", ROWS)


def test_kernel_slope_for_float32_parameters() -> None:
    """The kernel's single-precision slope rule equals the eager one within ``1e-6``."""
    _check_slopes("rejection", 11, "single", ROWS_F32)


@pytest.mark.slow
@pytest.mark.parametrize(("sampler", "m", "kappas"), SLOW_CELLS)
def test_kernel_slope_full_grid(sampler: str, m: int, kappas: tuple[float, ...]) -> None:
    _check_slopes(sampler, m, "double", ROWS)


@pytest.mark.slow
@pytest.mark.parametrize(("sampler", "m"), [("rejection", 5), ("mh", 11), ("inverse_cdf", 2)])
def test_kernel_slope_for_float32_parameters_full_grid(sampler: str, m: int) -> None:
    _check_slopes(sampler, m, "single", ROWS_F32)


def _check_rsample_gradients(
    spy: DrawSpy, sampler: str, m: int, rows: int, n: int, dtype: torch.dtype
) -> None:
    """``z``, ``loc.grad`` and ``kappa.grad`` of a loss through a compiled ``rsample`` (whose kernel
    also places the samples) against the eager placement given the same ``t``, the same Gaussian draw
    and the eager slope."""
    gen = torch.Generator().manual_seed(_seed("grad", sampler, m, rows, n, str(dtype)))
    loc = torch.nn.functional.normalize(torch.randn(rows, m, generator=gen, dtype=F64), dim=-1)
    loc = loc.to(dtype).requires_grad_()
    kappa = torch.logspace(-2, 3.5, rows, dtype=F64).to(dtype).requires_grad_()
    weights = torch.randn(n, rows, m, generator=gen, dtype=F64).to(dtype)
    shape = torch.Size((n, rows))
    z = VonMisesFisher(loc, kappa, sampler=sampler, compiled=True).rsample((n,))
    grad_loc, grad_kappa = torch.autograd.grad((z * weights).sum(), (loc, kappa))
    assert len(spy.calls) == 1, "the draw did not take the compiled path"
    args, draw, _ = spy.calls[0]
    single = dtype != F64
    assert args[5] == ("single" if single else "double")
    gauss = args[7]  # the Gaussian the kernel placed the samples with
    assert gauss.shape == (n, rows, m) and draw.placed is not None
    # the eager reference: the same t and Gaussian, the eager slope and placement
    kappa64 = kappa.detach().to(F64)
    slope = gradient.dtheta_dkappa_direct(
        draw.t, kappa64, m, bessel_terms(m / 2 - 1, kappa64).complement, single
    )
    loc_e = loc.detach().clone().requires_grad_()
    kappa_e = kappa.detach().clone().requires_grad_()
    z_e = place_on_sphere(draw.t.t().to(dtype), loc_e, shape, kappa_e, slope.t(), gauss.clone())
    want_loc, want_kappa = torch.autograd.grad((z_e * weights).sum(), (loc_e, kappa_e))
    if single:
        tol: dict[str, float] = {"rtol": 1e-5, "atol": 1e-6}
        kappa_tol = {"rtol": 1e-5, "atol": 1e-5 * float(want_kappa.abs().max())}
    else:
        tol = {"rtol": 1e-12, "atol": 1e-14}
        kappa_tol = {"rtol": 1e-9, "atol": 1e-12 * float(want_kappa.abs().max())}
    torch.testing.assert_close(z.detach(), z_e.detach(), **tol)
    torch.testing.assert_close(grad_loc, want_loc, **tol)
    torch.testing.assert_close(grad_kappa, want_kappa, **kappa_tol)


@pytest.mark.parametrize("dtype", [F64, F32], ids=str)
def test_rsample_gradients_match_the_eager_placement(dtype: torch.dtype, draw_spy: DrawSpy) -> None:
    """End to end at a training step's shape (one sample a row): float64 (64 rows) and float32
    (16 rows) parameters, concentrations from 1e-2 to 3e3."""
    rows = ROWS if dtype == F64 else ROWS_F32
    _check_rsample_gradients(draw_spy, "rejection", 11, rows, 1, dtype)


@pytest.mark.slow
@pytest.mark.parametrize(("rows", "n"), [(16, 4), (2, 32)])
def test_rsample_gradients_with_several_samples_a_row(rows: int, n: int, draw_spy: DrawSpy) -> None:
    """Several samples a row, up to the limit of 32 (the placement sums their gradients per row)."""
    _check_rsample_gradients(draw_spy, "rejection", 11, rows, n, F64)


def test_m3_rejection_keeps_the_closed_form_and_its_gradients(draw_spy: DrawSpy) -> None:
    """Rejection at ``m = 3`` stays the eager closed form (``t`` carries the gradient): with the switch
    on, the same seed gives the same ``z`` and gradients as with it off."""
    gen = torch.Generator().manual_seed(3)
    loc0 = torch.nn.functional.normalize(torch.randn(ROWS, 3, generator=gen, dtype=F64), dim=-1)
    kappa0 = torch.logspace(-2, 3, ROWS, dtype=F64)
    weights = torch.randn(ROWS, 3, generator=gen, dtype=F64)
    results = []
    for enabled in (True, False):
        loc, kappa = loc0.clone().requires_grad_(), kappa0.clone().requires_grad_()
        torch.manual_seed(5)
        z = VonMisesFisher(loc, kappa, compiled=enabled).rsample()
        results.append((z.detach(), *torch.autograd.grad((z * weights).sum(), (loc, kappa))))
    assert draw_spy.calls == []
    for got, want in zip(results[0], results[1], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------------------------------------
# 3. Bessel terms
# ---------------------------------------------------------------------------------------------------
def _check_cached_terms(
    sampler: str, m: int, spy: DrawSpy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One compiled draw with gradients on 64 rows (concentrations 1e-3 to 1e4): the cached terms against
    ``bessel_terms`` (relative ``1e-13``), then the entropy from them against the eager entropy."""
    v = m / 2 - 1
    kappa = _slope_kappas(ROWS).requires_grad_()
    threshold = series.series_threshold(v)
    assert bool((kappa < threshold).any()) and bool((kappa > threshold).any())
    loc = _unit_vector(m, _seed("loc", m)).expand(ROWS, m)
    want_entropy = VonMisesFisher(loc, kappa.detach()).entropy()  # eager, before any patching
    q = VonMisesFisher(loc, kappa, sampler=sampler, compiled=True)
    q.rsample()
    assert len(spy.calls) == 1, "the draw did not take the compiled path"
    cached = q.cached_bessel_terms()
    assert cached is not None, "the kernel's Bessel terms were not cached"
    want = bessel_terms(v, kappa.detach())
    for name in ("ratio", "complement", "ratio_over_z", "log_normalized"):
        torch.testing.assert_close(
            getattr(cached, name), getattr(want, name), rtol=1e-13, atol=0.0, msg=name
        )

    # the entropy reads the cached terms: no Bessel evaluation of its own
    def no_bessel(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("bessel_terms evaluated again after a compiled draw")

    monkeypatch.setattr(vmf_module, "bessel_terms", no_bessel)
    torch.testing.assert_close(q.entropy().detach(), want_entropy, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("sampler", "m", "kappas"), DEFAULT_CELLS)
def test_cached_bessel_terms_and_entropy(
    sampler: str,
    m: int,
    kappas: tuple[float, ...],
    draw_spy: DrawSpy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a compiled draw the distribution holds the kernel's Bessel terms (concentrations 1e-3 to
    1e4, both sides of the series/Debye switch): equal to ``bessel_terms`` within ``1e-13``, and the
    entropy computed from them equals the eager one."""
    _check_cached_terms(sampler, m, draw_spy, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize(("sampler", "m", "kappas"), SLOW_CELLS)
def test_cached_bessel_terms_full_grid(
    sampler: str,
    m: int,
    kappas: tuple[float, ...],
    draw_spy: DrawSpy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _check_cached_terms(sampler, m, draw_spy, monkeypatch)


# ---------------------------------------------------------------------------------------------------
# 4. exact fallbacks
# ---------------------------------------------------------------------------------------------------
@pytest.mark.usefixtures("fresh_kernels")
def test_rejection_fallback_keeps_the_law_and_the_slopes(monkeypatch: pytest.MonkeyPatch) -> None:
    """One candidate a sample (``_first_round_candidates`` forced to 1): about 30% of the Wood rows'
    samples and 10% of the gamma rows' have no accepted candidate and are drawn by the eager sampler.
    The law still holds (KS test per concentration, 20000 samples each) and the slopes equal the eager
    quadrature at the returned ``t``, the fallback's samples included."""
    monkeypatch.setattr(rejection, "first_round_candidates", lambda total: 1)
    handed_over = _counting(monkeypatch, rejection, "wood_rejection")
    m, kappas = 11, (10.0, 100.0)
    kappa = _row_kappas(kappas, ROWS)
    calls = N_LAW * len(kappas) // ROWS
    torch.manual_seed(_seed("rejection fallback"))
    draws = [
        kernels.sample("rejection", kappa, m, 1, DEFAULT_MH_STEPS, "double") for _ in range(calls)
    ]
    t = torch.cat([d.t for d in draws], dim=1)  # (ROWS, calls)
    slope = torch.cat([d.slope for d in draws if d.slope is not None], dim=1)
    n_handed = sum(args[0].numel() for args in handed_over)
    assert n_handed > 0.1 * t.numel(), f"only {n_handed} samples took the fallback"
    theta = _theta_from_t(t.numpy())
    for j, k in enumerate(kappas):
        p = _ks(theta[j :: len(kappas)].ravel(), m, k)
        print(f"STAT ks rejection-fallback m={m} kappa={k:g} p={p:.3g}")
        assert p > KS_ALPHA, f"KS test of the kappa = {k:g} rows with the fallback: p = {p:.3g}"
    want = gradient.dtheta_dkappa_direct(t, kappa, m, bessel_terms(m / 2 - 1, kappa).complement)
    torch.testing.assert_close(slope, want, rtol=1e-9, atol=0.0)


@pytest.mark.usefixtures("fresh_kernels")
@pytest.mark.parametrize("sampler", ["rejection", "inverse_cdf"])
def test_samples_changed_after_the_kernel_are_placed_again(
    sampler: str, monkeypatch: pytest.MonkeyPatch, draw_spy: DrawSpy
) -> None:
    """The kernel places its samples on the sphere; where a fallback changes ``t`` afterwards (rejection
    without an accepted candidate, or an inversion redone eagerly), ``rsample`` places them again: every
    row's ``z`` then has ``mu . z = 1 - t`` for the returned ``t`` (float64, to rounding)."""
    if sampler == "rejection":
        monkeypatch.setattr(rejection, "first_round_candidates", lambda total: 1)
    else:
        monkeypatch.setattr(kernels, "NEWTON_STEPS", 1)
    m = 11
    kappa = _row_kappas((10.0, 100.0), ROWS).requires_grad_()
    loc = torch.nn.functional.normalize(torch.randn(ROWS, m, dtype=F64), dim=-1).requires_grad_()
    torch.manual_seed(_seed("placed again", sampler))
    z = VonMisesFisher(loc, kappa, sampler=sampler, compiled=True).rsample()
    (_, draw, _) = draw_spy.calls[0]
    assert draw.placed is None, "no fallback ran: the test checks nothing"
    w = (z.detach() * loc.detach()).sum(-1)  # z: (B, m), one sample a row
    torch.testing.assert_close(1 - w, draw.t[:, 0], rtol=1e-9, atol=1e-12)


def _check_inversion_against_eager(
    m: int, kappa: torch.Tensor, seeds: range, invert: Callable[..., torch.Tensor]
) -> None:
    """Compiled inverse-CDF draws against ``invert`` (the eager inversion) at the same quantiles (the
    compiled path draws ``torch.rand(B, n)`` first): ``t`` within ``1e-9``, slopes within ``1e-9``."""
    terms = bessel_terms(m / 2 - 1, kappa)
    for seed in seeds:
        torch.manual_seed(seed)
        draw = kernels.sample("inverse_cdf", kappa, m, 1, DEFAULT_MH_STEPS, "double")
        torch.manual_seed(seed)
        u = torch.rand(kappa.shape[0], 1, dtype=F64)
        want_t = invert(kappa, m, u, terms)
        torch.testing.assert_close(draw.t, want_t, rtol=1e-9, atol=0.0)
        assert draw.slope is not None
        want_slope = gradient.dtheta_dkappa_direct(want_t, kappa, m, terms.complement)
        torch.testing.assert_close(draw.slope, want_slope, rtol=1e-9, atol=0.0)


def test_inverse_cdf_kernel_matches_the_eager_inversion(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel's Newton steps give the eager inversion's ``t`` at the same quantiles, and at training
    concentrations (``m = 11``, ``kappa`` in ``[5, 300]``) without the eager redo, so that the kernel's
    own iteration is what is compared."""
    real = inversion.invert_theta_cdf
    redone = _counting(monkeypatch, inversion, "invert_theta_cdf")
    kappa = torch.logspace(math.log10(5.0), math.log10(300.0), ROWS, dtype=F64)
    _check_inversion_against_eager(11, kappa, range(10), real)
    assert redone == [], "the kernel's Newton steps did not converge at training concentrations"


@pytest.mark.usefixtures("fresh_kernels")
def test_inverse_cdf_unconverged_draws_are_redone_eagerly(monkeypatch: pytest.MonkeyPatch) -> None:
    """With one Newton step in the kernel (``kernels.NEWTON_STEPS = 1``) the convergence check fails and
    the eager iteration redoes the draw: ``t`` and the slopes equal the eager inversion's."""
    monkeypatch.setattr(kernels, "NEWTON_STEPS", 1)
    real = inversion.invert_theta_cdf
    redone = _counting(monkeypatch, inversion, "invert_theta_cdf")
    _check_inversion_against_eager(11, _slope_kappas(ROWS), range(3), real)
    assert len(redone) == 3, "the unconverged draws were not redone"


@pytest.mark.usefixtures("fresh_kernels")
def test_inverse_cdf_far_tail_takes_the_eager_inversion(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the far-tail threshold lowered to ``u = 1/2`` about half the quantiles are "far": the eager
    inversion (with its bisection) serves the draw, and ``t`` and the slopes equal the eager path's for
    the same seed."""
    monkeypatch.setattr(inversion, "NEWTON_MAX_U", 0.5)
    real = inversion.invert_theta_cdf
    bisected = _counting(monkeypatch, inversion, "bisect_right_tail")
    seeds = range(3)
    _check_inversion_against_eager(11, _slope_kappas(ROWS), seeds, real)
    # the compiled draws and the references each bisected once a draw
    assert len(bisected) == 2 * len(seeds), "the far tail was not bisected"


# ---------------------------------------------------------------------------------------------------
# 5. the switch and the routing
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [1, 0, "yes", None, np.bool_(True), torch.tensor(True)])
def test_compiled_must_be_a_bool(bad: object) -> None:
    loc = _unit_vector(5, 1).expand(2, 5)
    with pytest.raises(ValueError, match=r"\bcompiled\b"):
        VonMisesFisher(loc, torch.ones(2, dtype=F64), compiled=bad)  # type: ignore[arg-type]


def test_compiled_is_kept_by_expand(draw_spy: DrawSpy) -> None:
    """``expand`` keeps the choice: the expanded distribution draws through the kernel too."""
    loc = _unit_vector(5, 1).expand(1, 5)
    q = VonMisesFisher(loc, torch.full((1,), 5.0, dtype=F64), compiled=True).expand((4,))
    assert q.compiled and q.rsample().shape == (4, 5)
    assert len(draw_spy.calls) == 1


def test_routing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only draws of at most 32 samples a row on a CPU or CUDA device, of a distribution built with
    ``compiled=True``, take the compiled path (``kernels.sample`` made to raise shows which do); rejection at ``m = 3`` never does."""

    def refuse(*args: Any) -> None:
        raise AssertionError("compiled path taken")

    monkeypatch.setattr(kernels, "sample", refuse)
    m = 11
    loc = _unit_vector(m, 1).expand(4, m)
    kappa = torch.tensor([1.0, 10.0, 100.0, 1000.0], dtype=F64, requires_grad=True)
    for sampler in ("rejection", "mh", "inverse_cdf"):
        eager = VonMisesFisher(loc, kappa, sampler=sampler)
        assert eager.rsample((4, 8)).shape == (4, 8, 4, m)  # compiled=False: eager
        q = VonMisesFisher(loc, kappa, sampler=sampler, compiled=True)
        z = q.rsample((3, 11))  # 33 samples a row: eager
        assert z.shape == (3, 11, 4, m) and bool(torch.isfinite(z).all())
        z.sum().backward()
        with pytest.raises(AssertionError, match="compiled path taken"):
            q.rsample((4, 8))  # 32 samples a row
        with pytest.raises(AssertionError, match="compiled path taken"):
            q.rsample()
    loc3 = _unit_vector(3, 1).expand(4, 3)
    assert VonMisesFisher(loc3, kappa, compiled=True).rsample().shape == (4, 3)  # closed form
    with pytest.raises(AssertionError, match="compiled path taken"):
        VonMisesFisher(loc3, kappa, sampler="mh", compiled=True).rsample()
    # MPS (float32 numerics) stays eager; CUDA is routed like the CPU
    assert not kernels.applies(torch.device("mps"), 1)
    assert kernels.applies(torch.device("cuda"), 1)
    assert kernels.applies(torch.device("cpu"), 32)
    assert not kernels.applies(torch.device("cpu"), 33)


# ---------------------------------------------------------------------------------------------------
# 6. a compiler that fails
# ---------------------------------------------------------------------------------------------------
@pytest.mark.usefixtures("fresh_kernels")
@pytest.mark.parametrize("where", ["call", "compile"])
def test_compile_failure_warns_and_runs_eagerly(
    where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``torch.compile`` giving a callable that raises (as without a C++ compiler), or raising itself
    (as on a Python that its torch version does not support): one RuntimeWarning naming the error, the
    draw is made eagerly (shape, unit norms, finite gradients), and the kernels are not tried again in
    the process (no further warning, no compiled call), even for distributions built with
    ``compiled=True``."""

    def failing_compile(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[..., Any]:
        def broken(*a: Any, **k: Any) -> Any:
            raise RuntimeError("simulated compiler failure: no C++ compiler\nsecond line")

        if where == "compile":
            broken()
        return broken

    monkeypatch.setattr(kernels.torch, "compile", failing_compile)
    m = 11
    loc = _unit_vector(m, 2).expand(8, m)
    kappa = torch.logspace(-1, 3, 8, dtype=F64, requires_grad=True)
    q = VonMisesFisher(loc, kappa, compiled=True)
    with pytest.warns(RuntimeWarning, match="simulated compiler failure") as record:
        z = q.rsample()
    assert len(record) == 1 and "compil" in str(record[0].message).lower()
    assert z.shape == (8, m) and bool(torch.isfinite(z).all())
    norms = torch.linalg.vector_norm(z.detach(), dim=-1)
    torch.testing.assert_close(norms, torch.ones(8, dtype=F64))
    (grad,) = torch.autograd.grad((z * loc).sum(), kappa)
    assert bool(torch.isfinite(grad).all()) and bool((grad != 0).all())
    assert not kernels.compiling_works()
    spy = DrawSpy(monkeypatch)
    z2 = VonMisesFisher(
        loc, kappa, sampler="mh", compiled=True
    ).rsample()  # a warning would be an error here
    assert spy.calls == [] and z2.shape == (8, m)


@pytest.mark.usefixtures("fresh_kernels")
def test_a_kernel_failing_later_runs_eagerly_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """A compiled kernel that fails on a later call (as when torch gives up recompiling it for new
    shapes): one RuntimeWarning, that call and the kernel's later ones run eagerly with the right
    result, and the other kernels stay compiled."""
    calls = {"n": 0}
    real_compile = torch.compile

    def flaky_compile(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[..., Any]:
        compiled = real_compile(fn, *args, **kwargs)

        def flaky(*a: Any) -> Any:
            calls["n"] += 1
            if calls["n"] == 2:
                raise RuntimeError("simulated recompile limit")
            return compiled(*a)

        return flaky

    monkeypatch.setattr(kernels.torch, "compile", flaky_compile)
    m = 11
    loc = _unit_vector(m, 3).expand(16, m)
    kappa = torch.logspace(-1, 3, 16, dtype=F64)
    VonMisesFisher(loc, kappa, compiled=True).rsample()  # compiles
    with pytest.warns(RuntimeWarning, match="simulated recompile limit.*runs eagerly"):
        z = VonMisesFisher(loc, kappa, compiled=True).rsample()
    assert kernels.compiling_works()
    w = (z * loc).sum(-1)
    assert bool(((w >= -1) & (w <= 1)).all()) and z.shape == (16, m)
    n_before = calls["n"]
    VonMisesFisher(
        loc, kappa, compiled=True
    ).rsample()  # eager now: the flaky callable is not called again
    assert calls["n"] == n_before


@pytest.mark.usefixtures("fresh_kernels")
def test_mh_kernels_are_bound_to_their_number_of_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Metropolis-Hastings draws with different ``mh_steps`` get kernels of their own (torch would
    otherwise recompile one kernel for every number of steps, up to its limit)."""
    m = 5
    loc = _unit_vector(m, 4).expand(8, m)
    kappa = torch.full((8,), 5.0, dtype=F64)
    bound: list[dict[str, Any]] = []
    real = kernels.kernel

    def recording(fn: Callable[..., Any], **constants: Any) -> Callable[..., Any]:
        bound.append(constants)
        return real(fn, **constants)

    monkeypatch.setattr(kernels, "kernel", recording)
    for steps in (5, 6):
        VonMisesFisher(loc, kappa, sampler="mh", mh_steps=steps, compiled=True).rsample()
    assert {constants.get("steps") for constants in bound} == {5, 6}


# ---------------------------------------------------------------------------------------------------
# 7. trainer and command line
# ---------------------------------------------------------------------------------------------------
def _recording_switch(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Record the settings with which the trainer turns its model's compiled sampling on and off
    (``spherevae.models.heads.set_compiled_sampling``)."""
    from spherevae.training import trainer as trainer_module

    seen: list[bool] = []
    real = trainer_module.set_compiled_sampling

    def recording(model: torch.nn.Module, enabled: bool) -> None:
        seen.append(enabled)
        real(model, enabled)

    monkeypatch.setattr(trainer_module, "set_compiled_sampling", recording)
    return seen


def test_training_steps_with_compiled_sampling(
    monkeypatch: pytest.MonkeyPatch, draw_spy: DrawSpy
) -> None:
    """Two epochs of a VAE with an ``S^10`` latent and ``train.compiled_sampling: true`` (6 batches of
    16 an epoch): every training step draws through the kernel (float32 slopes), the validation passes
    stay eager, the losses are finite, and the model draws eagerly again afterwards."""
    from spherevae.config import config_from_dict
    from spherevae.models import VAE
    from spherevae.models.heads import VonMisesFisherHead
    from spherevae.training.seed import seed_everything
    from spherevae.training.trainer import Trainer

    seen = _recording_switch(monkeypatch)
    config = config_from_dict(
        {
            "data": {"batch_size": ROWS_F32, "eval_batch_size": 32},
            "model": {"image_shape": [1, 8, 8], "latent": "S10", "hidden_sizes": [16]},
            "train": {"epochs": 2, "lr": 3e-3, "seed": 3, "compiled_sampling": True},
        }
    )
    seed_everything(config.train.seed)
    trainer = Trainer(
        config,
        VAE(config.model),
        _images(96, 0),
        _images(40, 1),
        dynamic_binarize=True,
        device=torch.device("cpu"),
    )
    state = trainer.fit()
    assert seen == [True, False, True, False]
    assert len(draw_spy.calls) == 2 * 96 // ROWS_F32
    assert all(
        args[2] == 11 and args[3] == 1 and args[5] == "single" for args, _, _ in draw_spy.calls
    )
    heads = [m for m in trainer.model.modules() if isinstance(m, VonMisesFisherHead)]
    assert heads and not any(head.compiled_sampling for head in heads)
    assert len(state.history) == 2
    for row in state.history:
        assert math.isfinite(row["train_loss"]) and math.isfinite(row["val_negative_elbo"]), row


def test_the_default_is_on_for_cpu_devices() -> None:
    """``train.compiled_sampling`` defaults to ``"auto"``, which the trainer turns on for a CPU; an
    explicit ``false`` stays off, and a value that is neither a boolean nor ``"auto"`` is an error
    naming the key."""
    from spherevae.config import ConfigError, config_from_dict
    from spherevae.models import VAE
    from spherevae.training.trainer import Trainer

    def trainer(train: dict[str, object]) -> Trainer:
        config = config_from_dict(
            {
                "model": {"image_shape": [1, 8, 8], "latent": "S10", "hidden_sizes": [16]},
                "train": train,
            }
        )
        images = _images(8, 0)
        return Trainer(
            config,
            VAE(config.model),
            images,
            images,
            dynamic_binarize=True,
            device=torch.device("cpu"),
        )

    assert config_from_dict({}).train.compiled_sampling == "auto"
    assert trainer({}).compiled_sampling is True
    assert trainer({"compiled_sampling": False}).compiled_sampling is False
    with pytest.raises(ConfigError, match="compiled_sampling"):
        config_from_dict({"train": {"compiled_sampling": "sometimes"}})


def test_compiling_in_a_fresh_process() -> None:
    """The first compile in a process loads torch's compiler, which (torch 2.13) warns about torch's
    own internals (a deprecation in torch.jit) and turns off the argument validation of every
    ``torch.distributions.Distribution``. A program that turns warnings into errors still gets its
    kernels compiled, and validation stays as it was: checked in a fresh interpreter, where nothing
    has loaded the compiler yet."""
    code = (
        "import torch\n"
        "from torch.distributions import Distribution\n"
        "from spherevae.distributions import VonMisesFisher\n"
        "from spherevae.distributions.von_mises_fisher import kernels\n"
        "loc = torch.nn.functional.normalize(torch.randn(8, 11, dtype=torch.float64), dim=-1)\n"
        "kappa = torch.full((8,), 10.0, dtype=torch.float64)\n"
        "VonMisesFisher(loc, kappa, compiled=True).rsample()\n"
        "print(kernels.compiling_works(), Distribution._validate_args)\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"], done.stderr


def test_cli_flag_is_recorded_in_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``spherevae train --compiled-sampling`` writes ``compiled_sampling: true`` and the trainer runs its
    epochs with the switch on, ``--no-compiled-sampling`` writes ``false`` and runs them with it off;
    without either flag the written config says ``auto``."""
    from spherevae.cli import main

    fast = ["--dataset", "digits", "-hd", "16", "--seed", "7", "--device", "cpu", "--latent", "S2"]
    fast += ["--epochs", "1", "--train-limit", "64"]
    seen = _recording_switch(monkeypatch)
    on, off = tmp_path / "on", tmp_path / "off"
    assert main(["train", *fast, "--compiled-sampling", "--out", str(on)]) == 0
    assert seen == [True, False]
    assert "compiled_sampling: true" in (on / "config.yaml").read_text()
    assert main(["train", *fast, "--no-compiled-sampling", "--out", str(off)]) == 0
    assert seen == [True, False, False, False]
    assert "compiled_sampling: false" in (off / "config.yaml").read_text()
    default = tmp_path / "default"
    assert main(["train", *fast, "--out", str(default)]) == 0
    assert seen == [True, False, False, False, True, False]
    assert "compiled_sampling: auto" in (default / "config.yaml").read_text()
