"""Statistical tests of the von Mises-Fisher samplers and of their reparameterisation gradients.

Every test runs for every sampler (``"rejection"``, ``"inverse_cdf"``, ``"mh"``). What is checked:

1. bias: the mean of ``t = 1 - mu.z`` against ``1 - A_m(kappa)`` (``1 - A`` keeps its digits at large
   ``kappa``, where ``mu.z`` itself would be ``1 - O(1/kappa)``);
2. goodness of fit: one-sample Kolmogorov-Smirnov test of ``theta = arccos(mu.z)`` against its exact
   CDF, computed here with ``scipy.integrate.quad`` of the density ``exp(-kappa (1 - cos theta))
   sin^(m-2) theta`` (independent of the package; its moments are checked against the package's
   special functions in ``test_reference_law_moments``);
3. unit norms in float32 and float64;
4. two-sample KS test against ``scipy.stats.vonmises_fisher`` (cells where SciPy fails are skipped);
5. unbiasedness of the gradient in ``kappa`` of ``E[mu.z] = A_m(kappa)`` (``dA/dkappa = Var(mu.z)``),
   with the per-sample gradients' variance, and a demonstration that the pathwise-only gradient of
   the rejection sampler would be biased (and that these tests would see it);
6. the tangential gradient in ``loc`` of ``E[a.z] = A a.mu``;
7. the Metropolis-Hastings chain at ``m = 3`` is a real chain (acceptance rate in (0, 1));
8. no silent garbage from the rejection sampler at ``m = 5, kappa = 1e4``;
9. batches with a different ``(loc, kappa)`` per row;
10. Wood's ``Beta((m-1)/2, (m-1)/2)`` variate drawn from one gamma and one normal variate: KS test
    against SciPy's Beta law, and full relative accuracy of the smaller of ``e`` and ``1 - e``;
11. the rejection sampler's gamma proposal ``t = G / kappa`` (large ``kappa``): its acceptance rate
    against the exact ``sqrt(2 pi kappa) ive(m/2 - 1, kappa)``, KS tests of its samples (also forced
    where it accepts rarely), of batches that mix it with Wood's proposal row by row, and of Wood's
    proposal forced at large ``kappa``; the switching rule against both exact acceptance rates.

The full grids of 1, 2, 4 and 5 are marked ``slow`` (``pytest -m slow``) and use larger samples; the
default run tests a CI subset.

Per-sample statistics: a mean is compared with its exact value through ``z = (mean - exact) / SE``
with ``SE = sample std / sqrt(N)`` and fails at ``|z| >= 4``: for a (by the CLT) Gaussian ``z`` the
two-sided false-failure probability is ``6.3e-5`` per check. KS tests fail at ``p <= 1e-4``: the
p-value is uniform under the null hypothesis, so the false-failure probability is ``1e-4`` per test.
All seeds are fixed, so a run is reproducible; the budget below is the probability that a correct
implementation fails for a given choice of seeds (union bound over the checks).

Failure budget (number of checks x false-failure probability):

- default run: z-checks: 60 means (5 m x 4 kappa x 3 samplers) + 72 kappa gradients (4 m x 3 kappa
  x 6 sampler/gradient-path cases) + 1 + 5 pathwise demonstration/contrast + 90 loc-gradient
  coordinates (3 samplers x 2 kappa x (2 + 3 + 10)) + 3 (m=5, kappa=1e4) + 15 batch rows = 246;
  KS tests: 60 exact + 60 SciPy + 1 (MH at m=3) + 5 (Beta variate) + 9 (one sample per row, 3
  samplers x 3 cells) = 135; ``246 * 6.3e-5 + 135 * 1e-4 = 0.029``; the gamma-proposal tests (11)
  add 6 z-checks (acceptance rates) and 22 KS tests (12 gamma cells, 2 at low acceptance, 4
  mixed-batch groups, 2 small straddling-draw groups, 2 forced Wood): ``252 * 6.3e-5 + 157 * 1e-4 =
  0.032`` in all;
- slow run: z-checks: 192 means (8 m x 8 kappa x 3) + 180 kappa gradients (6 m x 5 kappa x 6) =
  372; KS tests: 192 exact + 192 SciPy = 384; ``372 * 6.3e-5 + 384 * 1e-4 = 0.062``.

The remaining checks (unit norms, moments of the quadrature law, acceptance rates) are deterministic
bounds, not statistical tests. The pathwise-contrast checks additionally require ``|z| > 4`` against
the pathwise-only value ``0.1276``; it lies about 45 standard errors from the exact ``0.1474``, so
that side cannot fail by chance at any meaningful rate.
"""

from __future__ import annotations

import functools
import itertools
import math
import zlib
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch
from scipy import integrate, special, stats

from spherevae.distributions import VonMisesFisher
from spherevae.distributions.von_mises_fisher import (
    gradient,
    marginal,
    metropolis_hastings,
    proposals,
    rejection,
)
from spherevae.special import ive_ratio, mean_resultant_terms

SAMPLERS = ("rejection", "inverse_cdf", "mh")
Z_MAX = 4.0  # two-sided Gaussian tail 6.3e-5
KS_ALPHA = 1e-4

FULL_M = (2, 3, 4, 5, 10, 64, 256, 1024)
FULL_KAPPA = (1e-3, 0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5)
CI_M = (2, 3, 5, 64, 256)
CI_KAPPA = (1e-3, 1.0, 100.0, 1e5)
N_CI = 20_000
N_SLOW = 100_000

GRAD_FULL_M = (2, 3, 5, 10, 64, 256)
GRAD_FULL_KAPPA = (0.1, 1.0, 10.0, 100.0, 1000.0)
GRAD_CI_M = (2, 3, 5, 64)
GRAD_CI_KAPPA = (0.1, 10.0, 1000.0)
N_GRAD_CI = 20_000
N_GRAD_SLOW = 50_000

F64 = torch.float64


def _seed(*key: object) -> int:
    return zlib.crc32(repr(key).encode())


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Run single-threaded: these small vectorised kernels gain nothing from intra-op threads, and
    on a loaded machine the threads' synchronisation costs more than the work."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed_torch(request: pytest.FixtureRequest) -> None:
    torch.manual_seed(_seed(request.node.nodeid))


def _unit_vector(m: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(m, dtype=F64, generator=g)
    return v / torch.linalg.vector_norm(v)


def _exact(m: int, kappa: float) -> tuple[float, float, float]:
    """``A_m(kappa)``, ``1 - A_m(kappa)`` and ``A_m'(kappa) = Var(mu.z)`` from the package."""
    k = torch.tensor(kappa, dtype=F64)
    a = float(ive_ratio(m / 2 - 1, k))
    _, one_minus_a, _, a_prime = mean_resultant_terms(m / 2 - 1, k)
    return a, float(one_minus_a), float(a_prime)


def _z_score(x: np.ndarray, exact: float) -> float:
    se = float(np.std(x, ddof=1)) / math.sqrt(x.size)
    return (float(np.mean(x)) - exact) / se


def _theta_and_t(z: torch.Tensor, mu: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """``theta = arccos(mu.z)`` and ``t = 1 - mu.z`` from ``|z - mu| = 2 sin(theta/2)`` (no cancellation)."""
    d = torch.linalg.vector_norm(z.to(F64) - mu, dim=-1)
    theta = 2 * torch.asin(torch.clamp(d / 2, max=1.0))
    return theta.numpy(), (d * d / 2).numpy()


# ---------------------------------------------------------------------------------------------------
# exact law of theta = arccos(mu.z), computed independently of the package
# ---------------------------------------------------------------------------------------------------
_GL_X, _GL_W = np.polynomial.legendre.leggauss(20)


class ThetaLaw:
    """Law of ``theta`` on ``[0, pi]``, density ``exp(-kappa (1 - cos theta)) sin^(m-2) theta``.

    The density is smooth on ``[0, pi]`` for every ``m >= 2``. It is tabulated on ``cells`` equal cells
    covering the mode plus or minus 40 "standard deviations" (from the curvature of the log density
    at the mode: for large ``kappa`` the mass sits at ``theta ~ sqrt((m - 1) / kappa)``), with the
    mass of each cell from ``scipy.integrate.quad``; the CDF inside a cell adds a 20-point
    Gauss-Legendre integral from the cell's left edge. The neglected tails are checked to be far
    below double precision.
    """

    def __init__(self, m: int, kappa: float, cells: int = 400) -> None:
        self.m, self.kappa = m, kappa
        # mode: kappa sin^2 = (m - 2) cos  <=>  cos = 2 kappa / (m - 2 + sqrt((m - 2)^2 + 4 kappa^2))
        cos_mode = 2 * kappa / ((m - 2) + math.sqrt((m - 2) ** 2 + 4 * kappa * kappa))
        theta_mode = 2 * math.asin(math.sqrt(max(0.0, (1 - cos_mode) / 2)))
        curvature = kappa * cos_mode + ((m - 2) / math.sin(theta_mode) ** 2 if m > 2 else 0.0)
        sigma = 1 / math.sqrt(curvature)
        self.log_ref = self._log_p(theta_mode)
        lo, hi = max(0.0, theta_mode - 40 * sigma), min(math.pi, theta_mode + 40 * sigma)
        for end in (lo, hi):
            if 0.0 < end < math.pi:  # the tails cut off are below 1e-40 of the peak density
                assert self._log_p(end) - self.log_ref < -92, (m, kappa, end)
        self.edges = np.linspace(lo, hi, cells + 1)
        self.edges[0], self.edges[-1] = lo, hi
        pieces = list(itertools.pairwise(self.edges))
        eps_abs = 1e-16 * sigma

        def integral(f: Callable[[float], float]) -> np.ndarray:
            return np.array(
                [
                    integrate.quad(f, a, b, epsabs=eps_abs, epsrel=1e-13, limit=200)[0]
                    for a, b in pieces
                ]
            )

        mass = integral(self._p)
        self.cum = np.concatenate([[0.0], np.cumsum(mass)])
        self.total = float(self.cum[-1])
        self.mean_t = float(integral(lambda th: self._t(th) * self._p(th)).sum()) / self.total
        self.var_t = (
            float(integral(lambda th: (self._t(th) - self.mean_t) ** 2 * self._p(th)).sum())
            / self.total
        )

    @staticmethod
    def _t(theta: float) -> float:
        return 2 * math.sin(theta / 2) ** 2

    def _log_p(self, theta: float) -> float:
        log_p = -self.kappa * self._t(theta)
        if self.m > 2:
            s = math.sin(theta)
            log_p = log_p + (self.m - 2) * math.log(s) if s > 0.0 else -math.inf
        return log_p

    def _p(self, theta: float) -> float:
        return math.exp(self._log_p(theta) - self.log_ref)

    def _p_vec(self, theta: np.ndarray) -> np.ndarray:
        t = 2 * np.sin(theta / 2) ** 2
        with np.errstate(divide="ignore"):
            log_sin = np.log(np.sin(theta)) if self.m > 2 else np.zeros_like(theta)
        return np.exp(-self.kappa * t + (self.m - 2) * log_sin - self.log_ref)

    def cdf(self, theta: np.ndarray) -> np.ndarray:
        theta = np.clip(np.asarray(theta, dtype=np.float64), self.edges[0], self.edges[-1])
        j = np.clip(np.searchsorted(self.edges, theta, side="right") - 1, 0, self.edges.size - 2)
        a = self.edges[j]
        half = (theta - a) / 2
        nodes = a[:, None] + half[:, None] * (1 + _GL_X)
        partial = (self._p_vec(nodes) * _GL_W).sum(-1) * half
        return np.clip((self.cum[j] + partial) / self.total, 0.0, 1.0)


@functools.cache
def theta_law(m: int, kappa: float) -> ThetaLaw:
    return ThetaLaw(m, kappa)


# ---------------------------------------------------------------------------------------------------
# drawing
# ---------------------------------------------------------------------------------------------------
def _draw(
    sampler: str, m: int, kappa: float, n: int, dtype: torch.dtype = F64
) -> tuple[torch.Tensor, torch.Tensor, VonMisesFisher]:
    """``n`` samples ``(n, m)`` from one distribution with a random ``loc``, drawn in chunks."""
    mu = _unit_vector(m, _seed("loc", m))
    q = VonMisesFisher(mu.to(dtype), torch.tensor(kappa, dtype=dtype), sampler=sampler)
    chunk = max(1, min(n, 2**22 // m))
    z = torch.cat([q.rsample((min(chunk, n - i),)) for i in range(0, n, chunk)])
    return z, mu, q


@functools.lru_cache(maxsize=4)
def ours(sampler: str, m: int, kappa: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(theta, t)`` of ``n`` samples of our sampler (cached: three checks share one draw)."""
    torch.manual_seed(_seed("ours", sampler, m, kappa, n))
    z, mu, _ = _draw(sampler, m, kappa, n)
    return _theta_and_t(z, mu)


@functools.lru_cache(maxsize=1)
def scipy_theta(m: int, kappa: float, n: int) -> np.ndarray:
    """``theta`` of samples of ``scipy.stats.vonmises_fisher`` (its cost grows like ``n m``)."""
    mu = _unit_vector(m, _seed("loc", m))
    rng = np.random.default_rng(_seed("scipy", m, kappa, n))
    x = stats.vonmises_fisher(mu.numpy(), kappa).rvs(n, random_state=rng)
    theta, _ = _theta_and_t(torch.from_numpy(np.asarray(x, dtype=np.float64)), mu)
    return theta


def _scipy_n(n: int, m: int) -> int:
    return min(n, 2_000_000 // m)  # SciPy's sampler costs about 1 ms a sample at m = 1024


# ---------------------------------------------------------------------------------------------------
# 1, 2, 4: mean, KS against the exact law, two-sample KS against SciPy
# ---------------------------------------------------------------------------------------------------
CHECKS = ("mean", "ks", "scipy")


def _marginal_cases(ms: tuple[int, ...], kappas: tuple[float, ...], n: int) -> list:
    # the check varies fastest so that the three checks of a cell reuse one cached draw
    return [
        pytest.param(s, m, k, n, c, id=f"{s}-m{m}-k{k:g}-{c}")
        for m, k, s, c in itertools.product(ms, kappas, SAMPLERS, CHECKS)
    ]


def _check_marginal(sampler: str, m: int, kappa: float, n: int, check: str) -> None:
    theta, t = ours(sampler, m, kappa, n)
    assert np.all(np.isfinite(theta)), "non-finite samples"
    if check == "mean":
        _, one_minus_a, _ = _exact(m, kappa)
        z = _z_score(t, one_minus_a)
        print(f"STAT mean {sampler} m={m} kappa={kappa:g} z={z:+.3f}")
        assert abs(z) < Z_MAX, (
            f"mean of 1 - mu.z: {t.mean()!r} vs 1 - A = {one_minus_a!r}, z = {z:.2f}"
        )
    elif check == "ks":
        p = stats.kstest(theta, theta_law(m, kappa).cdf).pvalue
        print(f"STAT ks {sampler} m={m} kappa={kappa:g} p={p:.3g}")
        assert p > KS_ALPHA, f"KS test against the exact law of theta: p = {p:.3g}"
    else:
        try:
            ref = scipy_theta(m, kappa, _scipy_n(n, m))
        except Exception as exc:  # SciPy is not defined (or fails) in this cell: nothing to compare
            pytest.skip(f"scipy.stats.vonmises_fisher fails at m={m}, kappa={kappa}: {exc!r}")
        if not np.all(np.isfinite(ref)):
            pytest.skip(
                f"scipy.stats.vonmises_fisher returns non-finite samples at m={m}, kappa={kappa}"
            )
        p = stats.ks_2samp(theta, ref).pvalue
        print(f"STAT scipy {sampler} m={m} kappa={kappa:g} p={p:.3g}")
        assert p > KS_ALPHA, f"two-sample KS test against scipy.stats.vonmises_fisher: p = {p:.3g}"


@pytest.mark.parametrize(
    ("sampler", "m", "kappa", "n", "check"), _marginal_cases(CI_M, CI_KAPPA, N_CI)
)
def test_marginal(sampler: str, m: int, kappa: float, n: int, check: str) -> None:
    _check_marginal(sampler, m, kappa, n, check)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sampler", "m", "kappa", "n", "check"), _marginal_cases(FULL_M, FULL_KAPPA, N_SLOW)
)
def test_marginal_full_grid(sampler: str, m: int, kappa: float, n: int, check: str) -> None:
    _check_marginal(sampler, m, kappa, n, check)


def _check_reference_law(m: int, kappa: float) -> None:
    law = theta_law(m, kappa)
    a, one_minus_a, a_prime = _exact(m, kappa)
    assert law.mean_t == pytest.approx(one_minus_a, rel=1e-9, abs=1e-300)
    assert 1 - a == pytest.approx(one_minus_a, rel=1e-9)
    assert law.var_t == pytest.approx(a_prime, rel=1e-7, abs=1e-300)


@pytest.mark.parametrize("kappa", CI_KAPPA)
@pytest.mark.parametrize("m", CI_M)
def test_reference_law_moments(m: int, kappa: float) -> None:
    """The quadrature law and the package agree on ``1 - A`` and ``A' = Var(mu.z)``."""
    _check_reference_law(m, kappa)


@pytest.mark.slow
@pytest.mark.parametrize("kappa", FULL_KAPPA)
@pytest.mark.parametrize("m", FULL_M)
def test_reference_law_moments_full_grid(m: int, kappa: float) -> None:
    _check_reference_law(m, kappa)


# ---------------------------------------------------------------------------------------------------
# 3: unit norms
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_unit_norm(sampler: str, dtype: torch.dtype) -> None:
    eps = torch.finfo(dtype).eps
    for m, kappa in itertools.product((2, 3, 64, 1024), (1e-3, 10.0, 1e5)):
        z, _, _ = _draw(sampler, m, kappa, 500, dtype=dtype)
        assert z.dtype == dtype and z.shape == (500, m)
        err = (torch.linalg.vector_norm(z.to(F64), dim=-1) - 1).abs().max().item()
        assert err <= 10 * eps, f"m={m}, kappa={kappa}: | |z| - 1 | = {err:.3g} > 10 eps"


@pytest.mark.parametrize(("m", "kappa"), [(2, 1.0), (5, 10.0), (64, 1000.0)])
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_one_sample_per_row_follows_the_law(sampler: str, m: int, kappa: float) -> None:
    """A training step's layout, many rows of one sample each (the samplers' small-draw paths: the
    per-sample inversion of ``inverse_cdf``, the first-round sizing of ``rejection``): KS test of
    ``theta`` against its exact law over ``N_CI`` rows."""
    torch.manual_seed(_seed("rows", sampler, m, kappa))
    mu = _unit_vector(m, _seed("loc", m))
    q = VonMisesFisher(mu.expand(N_CI, m), torch.full((N_CI,), kappa, dtype=F64), sampler=sampler)
    theta, _ = _theta_and_t(q.rsample(), mu)
    p = stats.kstest(theta, theta_law(m, kappa).cdf).pvalue
    assert p > KS_ALPHA, f"KS test of one sample per row: p = {p:.3g}"


# ---------------------------------------------------------------------------------------------------
# 5: gradient in kappa
# ---------------------------------------------------------------------------------------------------
# The package computes dt/dkappa by a per-sample quadrature when a row draws few samples (up to
# _DIRECT_GRADIENT_MAX_SAMPLES) and from a grid of the CDF's derivative otherwise: "direct" draws 1
# sample per row, "grid" one more than that limit.
GRAD_PATHS = {"direct": 1, "grid": gradient.DIRECT_GRADIENT_MAX_SAMPLES + 1}
GRAD_CASES = [pytest.param(s, p, id=f"{s}-{p}") for s in SAMPLERS for p in GRAD_PATHS]


def kappa_gradients(
    sampler: str, m: int, kappa: float, n: int, per_row: int = 1, chunk: int = 4096
) -> np.ndarray:
    """Independent samples of the gradient in ``kappa`` of the mean of ``per_row`` draws of ``mu.z``.

    A batch of identical rows, ``kappa`` a leaf with one entry per row: each row's gradient is an
    independent sample (``n // per_row`` of them); with ``per_row = 1`` it is ``d(mu.z)/dkappa``. If
    ``rsample`` is not differentiable in ``kappa`` the gradient is reported as 0 (so that the
    unbiasedness check, not an autograd error, says what is wrong).
    """
    mu = _unit_vector(m, _seed("loc", m))
    n_rows = n // per_row
    out = []
    for i in range(0, n_rows, chunk):
        rows = min(chunk, n_rows - i)
        kappa_leaf = torch.full((rows,), kappa, dtype=F64, requires_grad=True)
        loc = mu.expand(rows, m)
        z = VonMisesFisher(loc, kappa_leaf, sampler=sampler).rsample((per_row,))
        f = (z * loc).sum() / per_row
        g = torch.autograd.grad(f, kappa_leaf, allow_unused=True)[0] if f.requires_grad else None
        out.append(torch.zeros(rows, dtype=F64) if g is None else g.detach())
    return torch.cat(out).numpy()


def _check_kappa_gradient(sampler: str, m: int, kappa: float, n: int, path: str) -> None:
    per_row = GRAD_PATHS[path]
    g = kappa_gradients(sampler, m, kappa, n, per_row)
    _, _, a_prime = _exact(m, kappa)
    var = float(np.var(g, ddof=1)) * per_row  # variance of one per-sample gradient
    z = _z_score(g, a_prime) if var > 0 else math.inf
    print(
        f"STAT grad {sampler} {path} m={m} kappa={kappa:g} mean={g.mean():.6g} exact={a_prime:.6g} "
        f"z={z:+.3f} var={var:.4g}"
    )
    assert math.isfinite(var) and var > 0, f"variance of the per-sample gradient: {var!r}"
    assert abs(z) < Z_MAX, f"mean d(mu.z)/dkappa = {g.mean()!r} vs A' = {a_prime!r}, z = {z:.2f}"


@pytest.mark.parametrize("kappa", GRAD_CI_KAPPA)
@pytest.mark.parametrize("m", GRAD_CI_M)
@pytest.mark.parametrize(("sampler", "path"), GRAD_CASES)
def test_kappa_gradient_unbiased(sampler: str, m: int, kappa: float, path: str) -> None:
    _check_kappa_gradient(sampler, m, kappa, N_GRAD_CI, path)


@pytest.mark.slow
@pytest.mark.parametrize("kappa", GRAD_FULL_KAPPA)
@pytest.mark.parametrize("m", GRAD_FULL_M)
@pytest.mark.parametrize(("sampler", "path"), GRAD_CASES)
def test_kappa_gradient_unbiased_full_grid(sampler: str, m: int, kappa: float, path: str) -> None:
    _check_kappa_gradient(sampler, m, kappa, N_GRAD_SLOW, path)


PATHWISE_M, PATHWISE_KAPPA = 5, 2.0
PATHWISE_ONLY = 0.1276  # mean pathwise-only gradient of Wood's sampler there (exact A' = 0.1474)


def test_pathwise_only_gradient_would_be_biased() -> None:
    """Differentiating Wood's accepted proposal with the Beta variate held fixed gives ``0.1276``.

    A re-implementation of Wood's sampler for this demonstration: ``w = (1 - (1 + b) e) / (1 - (1 -
    b) e)``, ``e ~ Beta((m-1)/2, (m-1)/2)``, accepted when ``kappa w + (m-1) log(1 - x0 w) - c >=
    log U``. Its pathwise gradient ``dw/db db/dkappa`` is biased: it misses the score term of the
    acceptance step; the unbiasedness check separates the two values by many standard errors.
    """
    m, n = PATHWISE_M, 20_000
    kappa = torch.tensor(PATHWISE_KAPPA, dtype=F64, requires_grad=True)
    b = (m - 1) / (2 * kappa + torch.sqrt(4 * kappa * kappa + (m - 1) ** 2))
    x0 = (1 - b) / (1 + b)
    c = kappa * x0 + (m - 1) * torch.log(1 - x0 * x0)
    half = torch.tensor((m - 1) / 2, dtype=F64)
    e = torch.distributions.Beta(half, half).sample((4 * n,))
    w = (1 - (1 + b) * e) / (1 - (1 - b) * e)
    with torch.no_grad():
        accept = kappa * w + (m - 1) * torch.log(1 - x0 * w) - c >= torch.log(
            torch.rand(4 * n, dtype=F64)
        )
    idx = torch.nonzero(accept).squeeze(-1)[:n]
    assert idx.numel() == n
    (db_dkappa,) = torch.autograd.grad(b, kappa)
    bd, ed = b.detach(), e[idx]
    dw_db = -2 * ed * (1 - ed) / (1 - (1 - bd) * ed) ** 2
    g = (dw_db * db_dkappa).numpy()
    _, _, a_prime = _exact(m, PATHWISE_KAPPA)
    assert a_prime == pytest.approx(0.1474, abs=5e-5)
    assert abs(_z_score(g, PATHWISE_ONLY)) < Z_MAX
    assert abs(_z_score(g, a_prime)) > Z_MAX


@pytest.mark.parametrize(("sampler", "path"), GRAD_CASES)
def test_kappa_gradient_is_not_the_pathwise_one(sampler: str, path: str) -> None:
    g = kappa_gradients(sampler, PATHWISE_M, PATHWISE_KAPPA, N_GRAD_CI, GRAD_PATHS[path])
    _, _, a_prime = _exact(PATHWISE_M, PATHWISE_KAPPA)
    z_exact, z_pathwise = _z_score(g, a_prime), _z_score(g, PATHWISE_ONLY)
    assert abs(z_exact) < Z_MAX, (
        f"mean gradient {g.mean()!r} vs exact {a_prime!r}: z = {z_exact:.2f}"
    )
    assert abs(z_pathwise) > Z_MAX, f"mean gradient {g.mean()!r} is the biased pathwise value"


# ---------------------------------------------------------------------------------------------------
# 6: gradient in loc
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kappa", [1.0, 100.0])
@pytest.mark.parametrize("m", [2, 3, 10])
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_loc_gradient_tangential(sampler: str, m: int, kappa: float) -> None:
    """``(I - mu mu^T) d E[a.z] / d mu = A (I - mu mu^T) a``, per coordinate within 4 SE.

    ``loc`` is a leaf with ``rows`` identical rows drawing ``per_row`` samples each: the gradient of
    each row is an independent sample of the gradient of the mean of ``per_row`` draws.
    """
    per_row = 16
    rows = N_GRAD_CI // per_row
    mu = _unit_vector(m, _seed("loc", m))
    a = torch.randn(m, dtype=F64)
    loc = mu.expand(rows, m).clone().requires_grad_(True)
    z = VonMisesFisher(loc, torch.full((rows,), kappa, dtype=F64), sampler=sampler).rsample(
        (per_row,)
    )
    (g,) = torch.autograd.grad((z @ a).sum() / per_row, loc)
    g_tan = (g - (g @ mu)[:, None] * mu).numpy()  # (rows, m): one independent gradient per row
    a_mean, _, _ = _exact(m, kappa)
    target = (a_mean * (a - (a @ mu) * mu)).numpy()
    mean = g_tan.mean(0)
    se = g_tan.std(0, ddof=1) / math.sqrt(rows)
    assert np.all(se > 0)
    z_scores = (mean - target) / se
    assert np.all(np.abs(z_scores) < Z_MAX), f"z-scores per coordinate: {z_scores}"


# ---------------------------------------------------------------------------------------------------
# 7, 8, 9: MH at m = 3, no garbage at large kappa, batches
# ---------------------------------------------------------------------------------------------------
def test_mh_runs_its_own_chain_at_m3() -> None:
    m, kappa, n = 3, 10.0, N_CI
    z, mu, q = _draw("mh", m, kappa, n)
    rate = q.acceptance_rate
    assert rate is not None and rate.shape == q.batch_shape
    assert bool(((rate > 0) & (rate < 1)).all()), f"MH acceptance rate {rate} is not in (0, 1)"
    theta, _ = _theta_and_t(z, mu)
    p = stats.kstest(theta, theta_law(m, kappa).cdf).pvalue
    assert p > KS_ALPHA, f"KS test of MH at m=3: p = {p:.3g}"
    # the rejection sampler uses the closed-form inversion there: every draw is accepted
    q_rej = VonMisesFisher(mu, torch.tensor(kappa, dtype=F64), sampler="rejection")
    q_rej.rsample((10,))
    assert q_rej.acceptance_rate is not None and bool((q_rej.acceptance_rate == 1).all())


@pytest.mark.parametrize("steps", [1, 2, 3, 4, 5, 8, 9, 25, 40])
def test_mh_jump_table_gives_the_step_by_step_chain(steps: int) -> None:
    # the table of jumps (small draws) must reproduce the sequential chain state for state and move
    # for move, including ties (log-ratios on a coarse grid, uniforms of 1 whose log is 0)
    gen = torch.Generator().manual_seed(steps)
    chains = 500
    log_ratios = torch.randint(-3, 3, (steps + 1, chains), generator=gen).to(F64) / 2
    log_u = torch.rand(steps, chains, generator=gen, dtype=F64).log()
    log_u[:, ::7] = 0.0
    state_steps, moves_steps = metropolis_hastings.chain_by_steps(log_ratios, log_u)
    state_jumps, moves_jumps = metropolis_hastings.chain_by_jumps(log_ratios, log_u)
    assert torch.equal(state_jumps, state_steps)
    assert torch.equal(moves_jumps, moves_steps)
    assert 0 < int(moves_steps.sum()) < chains * steps  # the chains both move and stay


def test_mh_uses_the_jump_table_for_training_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_steps(*args: object) -> None:
        raise AssertionError("the step-by-step chain ran for a training-size draw")

    monkeypatch.setattr(metropolis_hastings, "chain_by_steps", no_steps)
    kappa = torch.linspace(1.0, 50.0, 64, dtype=F64)
    t, rate = metropolis_hastings.metropolis_hastings(kappa, 11, 1, 25)
    assert t.shape == (64, 1) and rate.shape == (64,)
    assert bool(((t >= 0) & (t <= 2)).all()) and bool(((rate >= 0) & (rate <= 1)).all())


def test_mh_runs_many_chains_step_by_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above 128 chains (a batch of 1024 rows) the table's arithmetic costs more than the steps."""

    def no_jumps(*args: object) -> None:
        raise AssertionError("the jump table ran for 1024 chains")

    monkeypatch.setattr(metropolis_hastings, "chain_by_jumps", no_jumps)
    t, _ = metropolis_hastings.metropolis_hastings(torch.full((1024,), 10.0, dtype=F64), 11, 1, 25)
    assert t.shape == (1024, 1)


def test_mh_training_batches_follow_the_vmf_law() -> None:
    # many training-size draws (64 rows, one sample each: the jump table) pooled into one KS test
    m, kappa = 10, 10.0
    torch.manual_seed(11)
    mu = torch.randn(m, dtype=F64)
    mu = mu / mu.norm()
    q = VonMisesFisher(mu.expand(64, m), torch.full((64,), kappa, dtype=F64), sampler="mh")
    z = torch.cat([q.rsample() for _ in range(100)])
    theta, _ = _theta_and_t(z, mu)
    p = stats.kstest(theta, theta_law(m, kappa).cdf).pvalue
    assert p > KS_ALPHA, f"KS test of MH training batches at m={m}, kappa={kappa}: p = {p:.3g}"


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_no_silent_garbage_at_large_kappa(sampler: str) -> None:
    m, kappa, n = 5, 1e4, N_CI
    z, mu, _ = _draw(sampler, m, kappa, n)
    w = (z @ mu).numpy()
    assert np.all(w > 0.99), f"min mu.z = {w.min()!r}"
    _, t = _theta_and_t(z, mu)
    _, one_minus_a, _ = _exact(m, kappa)
    z_score = _z_score(t, one_minus_a)
    assert abs(z_score) < Z_MAX, (
        f"mean of 1 - mu.z: {t.mean()!r} vs {one_minus_a!r}, z = {z_score:.2f}"
    )


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_batch_rows_have_their_own_parameters(sampler: str) -> None:
    m, n = 10, N_CI
    kappas = torch.tensor([0.1, 10.0, 1000.0, 1e4, 1e5], dtype=F64)
    locs = torch.stack([_unit_vector(m, _seed("batch", i)) for i in range(kappas.numel())])
    q = VonMisesFisher(locs, kappas, sampler=sampler)
    z = q.rsample((n,))
    assert z.shape == (n, kappas.numel(), m)
    if sampler == "inverse_cdf":
        assert q.acceptance_rate is None
    else:
        assert q.acceptance_rate is not None and q.acceptance_rate.shape == q.batch_shape
    for i, kappa in enumerate(kappas.tolist()):
        _, t = _theta_and_t(z[:, i], locs[i])
        _, one_minus_a, _ = _exact(m, kappa)
        z_score = _z_score(t, one_minus_a)
        assert abs(z_score) < Z_MAX, f"row {i} (kappa={kappa}): z = {z_score:.2f}"


@pytest.mark.parametrize(("kappa", "mode"), [(1.5, "wood"), (12.5, "gamma")])
def test_rejection_gives_up_loudly(
    monkeypatch: pytest.MonkeyPatch, kappa: float, mode: str
) -> None:
    """A sampler that never accepts raises ``RuntimeError`` naming (m, kappa) after bounded rounds.

    The acceptance tests of both proposals are forced to reject every candidate (log-ratio ``-inf``);
    the sampler must stop after ``_REJECTION_MAX_ROUNDS`` rounds rather than loop forever or return a
    default value. At ``m = 5`` Wood's proposal serves ``kappa = 1.5``, the gamma one ``kappa = 12.5``.
    """
    rounds = []
    real_draw = rejection.Proposals.draw

    def counting_draw(self, *args):
        rounds.append(self.mode)
        return real_draw(self, *args)

    def reject(t, *args):
        return torch.full_like(t, -math.inf)

    monkeypatch.setattr(rejection.Proposals, "draw", counting_draw)
    monkeypatch.setattr(rejection, "wood_log_ratio", reject)
    monkeypatch.setattr(rejection, "gamma_log_ratio", reject)
    q = VonMisesFisher(torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0]), torch.tensor(kappa))
    with pytest.raises(RuntimeError, match=rf"m=5, kappa={kappa}"):
        q.rsample((3,))
    assert rounds == [mode] * rejection.REJECTION_MAX_ROUNDS


GRADIENT_QUADRATURE_CELLS = [
    (2, 0.1),
    (2, 1e4),
    (3, 5.0),
    (5, 2.0),
    (10, 0.0),
    (64, 30.0),
    (256, 1e3),
    (1024, 10.0),
    (20000, 1e5),
]


def _reference_dt_dkappa(theta: float, m: int, kappa: float, a: float) -> float:
    """``dt/dkappa = sin(theta) d theta / d kappa`` by ``scipy.integrate.quad``, independent of the package.

    ``d theta / d kappa = -int_0^theta (cos - A) p / p(theta)`` when ``cos theta >= A``, else
    ``int_theta^pi (cos - A) p / p(theta)``: both integrands have one sign. The density ratio is formed
    in log space; the interval is split at geometric distances from ``theta`` so that quad resolves
    the part next to the sample, where the integrand is largest.
    """

    def log_p(phi: float) -> float:
        out = -kappa * (1 - math.cos(phi))
        return out + (m - 2) * math.log(math.sin(phi)) if m > 2 else out

    log_p_theta = log_p(theta)

    def integrand(phi: float) -> float:
        return (math.cos(phi) - a) * math.exp(log_p(phi) - log_p_theta)

    left = math.cos(theta) >= a
    end = 0.0 if left else math.pi
    span = end - theta
    points = sorted(theta + span * 2.0**-j for j in range(1, 40))
    lo, hi = min(theta, end), max(theta, end)
    value, _ = integrate.quad(integrand, lo, hi, points=points, epsabs=0.0, epsrel=1e-11, limit=800)
    return math.sin(theta) * (-value if left else value)


@pytest.mark.parametrize(("m", "kappa"), GRADIENT_QUADRATURE_CELLS)
def test_kappa_derivative_quadrature(m: int, kappa: float) -> None:
    """``dt/dkappa`` of both quadratures (per-sample and tabulated) against ``scipy.integrate.quad``.

    At quantiles 0.0005 ... 0.9995 of a sample, relative error <= 1e-7: far below the Monte Carlo
    noise of any gradient estimate, so the implicit gradient is unbiased for every purpose. A
    deterministic check (no statistics).
    """
    k = torch.tensor([kappa], dtype=torch.float64)
    t, _ = rejection.wood_rejection(k, m, 2000)
    t = t.sort(-1).values[:, [1, 20, 200, 1000, 1800, 1980, 1998]]
    a = float(ive_ratio(m / 2 - 1, k)[0])
    theta = marginal.theta_from_t(t)[0].tolist()
    expected = torch.tensor(
        [[_reference_dt_dkappa(th, m, kappa, a) for th in theta]], dtype=torch.float64
    )
    sin = torch.sqrt(t * (2 - t))  # dt/dkappa = sin(theta) dtheta/dkappa
    direct = sin * gradient.dtheta_dkappa_direct(t, k, m)
    tabulated = sin * gradient.MarginalGrid(k, m).dtheta_dkappa(t)
    torch.testing.assert_close(direct, expected, rtol=1e-7, atol=0.0)
    torch.testing.assert_close(tabulated, expected, rtol=1e-7, atol=0.0)


# ---------------------------------------------------------------------------------------------------
# Wood's Beta variate from one gamma and one normal variate
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("a", [0.5, 1.5, 4.5, 31.5, 511.5])
def test_symmetric_beta_from_one_gamma_and_one_normal(a: float) -> None:
    """``E / (E + F)`` of :func:`_symmetric_beta_parts` is ``Beta(a, a)`` (KS test against SciPy)."""
    n = N_CI
    gamma = torch._standard_gamma(torch.full((n,), a, dtype=F64))
    normal = torch.randn(n, dtype=F64)
    e, one_minus_e = proposals.symmetric_beta_parts(gamma, normal)
    assert bool(((e > 0) & (one_minus_e > 0)).all())
    p = stats.kstest((e / (e + one_minus_e)).numpy(), stats.beta(a, a).cdf).pvalue
    assert p > KS_ALPHA, f"KS test of e against Beta({a}, {a}): p = {p:.3g}"


def test_symmetric_beta_keeps_tiny_parts() -> None:
    """The small one of ``e, 1 - e`` keeps full relative accuracy where ``1 + Z / R`` would cancel.

    Against the exact ``min(e, 1 - e) = G / (R (R + |Z|))`` in high precision, ``R = sqrt(Z^2 + 2 G)``.
    """
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50
    gamma = torch.tensor([1e-30, 1e-12, 1e-3, 0.5, 1e-30, 1e-12, 2.0], dtype=F64)
    normal = torch.tensor([3.0, 1.5, 0.7, 0.1, -3.0, -1.5, -4.0], dtype=F64)
    e, one_minus_e = proposals.symmetric_beta_parts(gamma.clone(), normal)
    total = e + one_minus_e
    for i, (g, z) in enumerate(zip(gamma.tolist(), normal.tolist(), strict=True)):
        r = mpmath.sqrt(mpmath.mpf(z) ** 2 + 2 * mpmath.mpf(g))
        small_exact = mpmath.mpf(g) / (r * (r + abs(mpmath.mpf(z))))
        small = float(min(e[i], one_minus_e[i]) / total[i])
        assert small == pytest.approx(float(small_exact), rel=1e-14, abs=0.0), (g, z)
        # the sign of Z says which one is small: e is the large part for Z > 0
        assert (float(e[i]) > float(one_minus_e[i])) == (z > 0)


# ---------------------------------------------------------------------------------------------------
# rejection rounds at training sizes; the shared Bessel terms of the sampler's gradient
# ---------------------------------------------------------------------------------------------------
def _small_draws(m: int, kappa: float, rows: int, per_row: int, calls: int) -> np.ndarray:
    """``theta`` of ``calls`` draws of ``per_row`` samples from a batch of ``rows`` equal rows."""
    mu = _unit_vector(m, _seed("loc", m))
    q = VonMisesFisher(mu.expand(rows, m), torch.full((rows,), kappa, dtype=F64))
    z = torch.cat([q.rsample((per_row,)).reshape(-1, m) for _ in range(calls)])
    return _theta_and_t(z, mu)[0]


@pytest.mark.parametrize(("m", "kappa"), [(5, 1.0), (11, 20.0), (64, 100.0)])
def test_rejection_small_draws_follow_the_law(m: int, kappa: float) -> None:
    """Draws of training size (here 32 samples a call) take several candidates per sample in their first
    round (:func:`_first_round_candidates`) and usually return from it; their law is still exact."""
    assert rejection.first_round_candidates(32) > rejection.REJECTION_FIRST_CANDIDATES
    assert rejection.first_round_candidates(N_CI) == rejection.REJECTION_FIRST_CANDIDATES
    theta = _small_draws(m, kappa, rows=8, per_row=4, calls=1000)
    p = stats.kstest(theta, theta_law(m, kappa).cdf).pvalue
    assert p > KS_ALPHA, f"KS test of small rejection draws: p = {p:.3g}"


def test_rejection_later_rounds_follow_the_law(monkeypatch: pytest.MonkeyPatch) -> None:
    """With one candidate a sample in the first round, about a third of the samples go to later rounds
    (m = 5, kappa = 100 accepts about 0.7): their bookkeeping must keep the law exact."""
    monkeypatch.setattr(rejection, "first_round_candidates", lambda total: 1)
    m, kappa = 5, 100.0
    theta = _small_draws(m, kappa, rows=8, per_row=4, calls=600)
    p = stats.kstest(theta, theta_law(m, kappa).cdf).pvalue
    assert p > KS_ALPHA, f"KS test of rejection draws finished in later rounds: p = {p:.3g}"


@pytest.mark.parametrize(("m", "kappa"), [(2, 0.5), (11, 30.0), (64, 1e3)])
def test_gradient_quadrature_with_given_mean(m: int, kappa: float) -> None:
    """``dtheta_dkappa_direct`` with the caller's ``1 - A`` (the distribution's shared Bessel terms) equals
    the one that evaluates ``1 - A`` itself."""
    k = torch.tensor([kappa, 2 * kappa], dtype=F64)
    t, _ = rejection.wood_rejection(k, m, 16)
    _, one_minus_a, _, _ = mean_resultant_terms(m / 2 - 1, k)
    torch.testing.assert_close(
        gradient.dtheta_dkappa_direct(t, k, m, one_minus_a),
        gradient.dtheta_dkappa_direct(t, k, m),
        rtol=1e-13,  # two code paths for 1 - A: equal to rounding, not bitwise
        atol=0.0,
    )


def test_kappa_derivative_single_precision_rule() -> None:
    """The cheaper per-sample rule for float32 parameters stays within 1e-6 (relative) of the full rule.

    Over m in {2, ..., 20000} and kappa in {1e-3, ..., 1e6}, at the smallest, largest and interior
    order statistics of 4000 samples (where the cut of the integration stretch matters most). A
    deterministic check: 1e-6 is a few float32 ulps.
    """
    torch.manual_seed(0)
    worst = 0.0
    for m in (2, 3, 5, 10, 64, 256, 1024, 20000):
        for kappa in (1e-3, 0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6):
            k = torch.tensor([kappa], dtype=F64)
            t, _ = rejection.wood_rejection(k, m, 4000)
            t = t.sort(-1).values[:, [0, 1, 10, 100, 2000, 3900, 3990, 3998, 3999]]
            full = gradient.dtheta_dkappa_direct(t, k, m)
            single = gradient.dtheta_dkappa_direct(t, k, m, single=True)
            worst = max(worst, float(((single - full).abs() / full.abs()).max()))
    assert worst <= 1e-6, f"single-precision rule: worst relative error {worst:.3g}"


# ---------------------------------------------------------------------------------------------------
# the gamma proposal t = G / kappa of the rejection sampler at large kappa, and per-row proposals
# ---------------------------------------------------------------------------------------------------
def _wood_acceptance(m: int, kappa: float) -> float:
    """Exact acceptance rate of Wood's proposal, ``E[exp(log-ratio)]`` over ``e ~ Beta(a, a)``, by quad."""
    a = (m - 1) / 2
    b = (m - 1) / (2 * kappa + math.sqrt(4 * kappa * kappa + (m - 1) ** 2))
    x0 = (1 - b) / (1 + b)

    def integrand(e: float) -> float:
        w = 1 - 2 * b * e / ((1 - e) + b * e)
        log_ratio = kappa * (w - x0) + (m - 1) * math.log((1 - x0 * w) / (1 - x0 * x0))
        return float(stats.beta.pdf(e, a, a)) * math.exp(log_ratio)

    return integrate.quad(integrand, 0.0, 1.0, points=[1e-3, 0.5, 1 - 1e-3], limit=400)[0]


def _gamma_acceptance(m: int, kappa: float) -> float:
    """Exact acceptance rate of the gamma proposal: ``sqrt(2 pi kappa) ive(m/2 - 1, kappa)``."""
    return math.sqrt(2 * math.pi * kappa) * float(special.ive(m / 2 - 1, kappa))


def _rejection_theta(kappa: torch.Tensor, m: int, n: int) -> np.ndarray:
    t, _ = rejection.wood_rejection(kappa, m, n)
    return marginal.theta_from_t(t).numpy()


@pytest.mark.parametrize("m", [4, 5, 10, 64, 256, 1024])
def test_gamma_threshold_is_where_the_acceptance_rates_cross(m: int) -> None:
    """Below ``_gamma_threshold(m)`` Wood's proposal accepts more often, above it the gamma one: both
    exact rates (Wood's by quadrature, the gamma one in closed form) at 0.9 and 1.1 times the threshold.
    A deterministic check; the rule only sets the cost, never the law."""
    threshold = proposals.gamma_threshold(m)
    assert _wood_acceptance(m, 0.9 * threshold) > _gamma_acceptance(m, 0.9 * threshold)
    assert _wood_acceptance(m, 1.1 * threshold) < _gamma_acceptance(m, 1.1 * threshold)


def test_gamma_proposal_not_used_below_m4() -> None:
    """At ``m = 2`` the gamma proposal's density ratio to the target is unbounded; ``m = 3`` keeps Wood's."""
    assert math.isinf(proposals.gamma_threshold(2)) and math.isinf(proposals.gamma_threshold(3))
    k = torch.tensor([1e6], dtype=F64)
    assert rejection.Proposals(k, 2).mode == "wood" and rejection.Proposals(k, 3).mode == "wood"


GAMMA_CELLS = [(4, 3.0), (5, 12.5), (10, 40.0), (10, 1e4), (64, 2000.0), (256, 1e5)]


@pytest.mark.parametrize(("m", "kappa"), GAMMA_CELLS)
def test_gamma_proposal_acceptance_rate(m: int, kappa: float) -> None:
    """The first-round acceptance rate of the gamma proposal matches its exact value
    ``sqrt(2 pi kappa) ive(m/2 - 1, kappa)`` within 4 standard errors: a wrong acceptance test (a wrong
    power of ``1 - t/2``) moves it. ``N_CI`` rows of one sample, two candidates each."""
    k = torch.full((N_CI,), kappa, dtype=F64)
    assert rejection.Proposals(k, m).mode == "gamma"
    assert rejection.first_round_candidates(N_CI) == 2
    _, rate = rejection.wood_rejection(k, m, 1)
    exact = _gamma_acceptance(m, kappa)
    se = math.sqrt(exact * (1 - exact) / (2 * N_CI))
    z_score = (float(rate.mean()) - exact) / se
    assert abs(z_score) < Z_MAX, (
        f"acceptance {float(rate.mean()):.5f} vs {exact:.5f}, z = {z_score:.2f}"
    )


@pytest.mark.parametrize("layout", ["rows", "samples"])
@pytest.mark.parametrize(("m", "kappa"), GAMMA_CELLS)
def test_gamma_proposal_follows_the_law(m: int, kappa: float, layout: str) -> None:
    """Samples drawn with the gamma proposal: KS test of ``theta`` against the exact law, both as
    ``N_CI`` rows of one sample (the per-row constants as ``(B,)``) and one row of ``N_CI`` samples
    (``(B, 1)``, the flat indices of later rounds divided by ``n``)."""
    if layout == "rows":
        theta = _rejection_theta(torch.full((N_CI,), kappa, dtype=F64), m, 1)
    else:
        theta = _rejection_theta(torch.tensor([kappa], dtype=F64), m, N_CI)
    p = stats.kstest(theta.ravel(), theta_law(m, kappa).cdf).pvalue
    assert p > KS_ALPHA, f"KS test of gamma-proposal samples: p = {p:.3g}"


@pytest.mark.parametrize(("m", "kappa"), [(4, 0.5), (10, 5.0)])
def test_gamma_proposal_at_low_acceptance_follows_the_law(
    monkeypatch: pytest.MonkeyPatch, m: int, kappa: float
) -> None:
    """Forced where it accepts rarely (rate 0.28 at m = 4, kappa = 0.5; 0.19 at m = 10, kappa = 5),
    the gamma proposal runs many rounds and rejects most candidates with ``t > 2`` (which must never
    be accepted): the law is still exact (KS test)."""
    monkeypatch.setattr(rejection, "gamma_threshold", lambda m: 0.0)
    theta = _rejection_theta(torch.full((N_CI,), kappa, dtype=F64), m, 1)
    p = stats.kstest(theta.ravel(), theta_law(m, kappa).cdf).pvalue
    assert p > KS_ALPHA, f"KS test of gamma-proposal samples at low acceptance: p = {p:.3g}"


@pytest.mark.parametrize("first_candidates", [None, 1])
def test_mixed_proposals_follow_the_law(monkeypatch: pytest.MonkeyPatch, first_candidates) -> None:
    """A batch whose rows straddle the threshold (m = 10: kappa = 10 uses Wood's proposal, kappa = 100
    the gamma one, interleaved) shares one gamma variate per candidate between the two proposals and
    keeps each row's own. KS test of each group against its law; with one first-round candidate, a
    third of the samples are finished in later rounds, whose gathered constants must stay per row."""
    if first_candidates is not None:
        monkeypatch.setattr(rejection, "first_round_candidates", lambda total: first_candidates)
    m, kappas = 10, (10.0, 100.0)
    k = torch.tensor(kappas, dtype=F64).repeat(N_CI)
    assert rejection.Proposals(k, m).mode == "mixed"
    theta = _rejection_theta(k, m, 1).reshape(N_CI, 2)
    for j, kappa in enumerate(kappas):
        p = stats.kstest(theta[:, j], theta_law(m, kappa).cdf).pvalue
        assert p > KS_ALPHA, f"KS test of the kappa = {kappa} rows of a mixed batch: p = {p:.3g}"


def test_small_straddling_draws_take_woods_proposal(monkeypatch: pytest.MonkeyPatch) -> None:
    """A training-sized draw whose rows straddle the threshold (m = 10: kappa = 10 and 100, 64 rows)
    takes Wood's proposal for every row (fewer operations), a large one mixes; the small draws still
    follow the law (KS test of each group over 300 draws)."""
    modes = []
    original = rejection.Proposals.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        modes.append(self.mode)

    monkeypatch.setattr(rejection.Proposals, "__init__", spy)
    m, kappas = 10, (10.0, 100.0)
    k = torch.tensor(kappas, dtype=F64).repeat(32)
    torch.manual_seed(_seed("small straddling"))
    theta = np.stack([_rejection_theta(k, m, 1).reshape(32, 2) for _ in range(300)]).reshape(-1, 2)
    assert set(modes) == {"wood"}
    rejection.wood_rejection(k.repeat(32), m, 1)  # 2048 samples
    assert modes[-1] == "mixed"
    for j, kappa in enumerate(kappas):
        p = stats.kstest(theta[:, j], theta_law(m, kappa).cdf).pvalue
        assert p > KS_ALPHA, f"KS test of the kappa = {kappa} rows of small draws: p = {p:.3g}"


@pytest.mark.parametrize(("m", "kappa"), [(10, 1e3), (64, 1e5)])
def test_wood_proposal_at_large_kappa_follows_the_law(
    monkeypatch: pytest.MonkeyPatch, m: int, kappa: float
) -> None:
    """Wood's proposal where the gamma one would now serve (the regime of the biased reference code,
    pitfall 1): forced, it still samples the exact law (KS test)."""
    monkeypatch.setattr(rejection, "gamma_threshold", lambda m: math.inf)
    k = torch.full((N_CI,), kappa, dtype=F64)
    assert rejection.Proposals(k, m).mode == "wood"
    theta = _rejection_theta(k, m, 1)
    p = stats.kstest(theta.ravel(), theta_law(m, kappa).cdf).pvalue
    assert p > KS_ALPHA, f"KS test of Wood-proposal samples at large kappa: p = {p:.3g}"


def test_constructor_expands_only_what_needs_it() -> None:
    """Parameters already of the batch shape are kept as they are (an expand is an operation and an
    autograd node at every training step); the others are broadcast, and gradients reach both."""
    m = 5
    loc = torch.stack([_unit_vector(m, _seed("ctor", i)) for i in range(3)]).requires_grad_()
    kappa = torch.tensor([1.0, 10.0, 100.0], dtype=F64, requires_grad=True)
    q = VonMisesFisher(loc, kappa)
    assert q.loc is loc and q.concentration is kappa
    q.rsample((4,)).sum().backward()
    assert loc.grad is not None and kappa.grad is not None and kappa.grad.shape == (3,)
    one_loc = _unit_vector(m, _seed("ctor", 9)).requires_grad_()
    scalar = torch.tensor(7.0, dtype=F64, requires_grad=True)
    for q in (VonMisesFisher(one_loc, kappa), VonMisesFisher(loc, scalar)):
        assert q.batch_shape == (3,) and q.loc.shape == (3, m) and q.concentration.shape == (3,)
    VonMisesFisher(one_loc, kappa).rsample().sum().backward()
    VonMisesFisher(loc, scalar).rsample().sum().backward()
    assert one_loc.grad is not None and one_loc.grad.shape == (m,)
    assert scalar.grad is not None and scalar.grad.shape == ()


@pytest.mark.parametrize("m", [2, 4, 10, 1024, 20000])
def test_wood_row_constants_match_their_definitions(m: int) -> None:
    """The sampler's per-row constants (``1 / b``, ``x0``, ``1 - x0``, the test's offset), formed from
    ``u = kappa + sqrt(kappa^2 + h^2)``, agree with Wood's definitions via ``_wood_constants`` to a few
    ulps (``x0`` and the offset in absolute terms, which is how the test uses them). Deterministic."""
    k = torch.tensor([0.0, 1e-8, 1e-3, 0.5, 1.0, 10.0, 100.0, 1e4, 1e6, 1e9], dtype=F64)
    b, x0, one_minus_x0 = proposals.wood_constants(k, m)
    offset = k * one_minus_x0 - (m - 1) * (torch.log(one_minus_x0) + torch.log1p(x0))
    inv_b, x0_row, one_minus_x0_row, offset_row = proposals.wood_row_constants(k, m)
    # different formulas: a few ulps apart, more on a machine whose sqrt/log kernels round otherwise
    torch.testing.assert_close(inv_b, 1 / b, rtol=1e-14, atol=0.0)
    torch.testing.assert_close(one_minus_x0_row, one_minus_x0, rtol=1e-14, atol=0.0)
    torch.testing.assert_close(x0_row, x0, rtol=0.0, atol=1e-14)
    # the offset sums m - 1 times log-terms of x0: its rounding grows like m ulps
    torch.testing.assert_close(offset_row, offset, rtol=1e-14, atol=1e-15 * m)
