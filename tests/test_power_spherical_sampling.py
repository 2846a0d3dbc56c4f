"""Power Spherical sampling: the law of ``t = mu . x`` and the exact gradient of the Beta variate.

Statistical checks use fixed seeds; failure budgets: KS p-value <= 1e-4, |z| >= 4 standard errors.
"""

from __future__ import annotations

import math

import pytest
import torch
from scipy import special, stats

from spherevae.distributions import PowerSpherical
from spherevae.distributions.power_spherical import _BetaSample

F64 = torch.float64


def _loc(m: int, dtype: torch.dtype) -> torch.Tensor:
    gen = torch.Generator().manual_seed(m)
    return torch.nn.functional.normalize(torch.randn(m, generator=gen, dtype=F64), dim=0).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize(("m", "kappa"), [(2, 0.5), (3, 1.0), (3, 1e4), (10, 10.0), (64, 100.0)])
def test_marginal_is_beta(m: int, kappa: float, dtype: torch.dtype) -> None:
    """``(1 - mu . x) / 2 ~ Beta((m-1)/2, (m-1)/2 + kappa)``: one-sample KS test on 20000 draws."""
    torch.manual_seed(0)
    loc = _loc(m, dtype)
    x = PowerSpherical(loc, torch.tensor(kappa, dtype=dtype)).sample((20_000,))
    assert x.dtype == dtype
    s = ((1 - (x.to(F64) @ loc.to(F64))) / 2).clamp(0.0, 1.0).numpy()
    beta = (m - 1) / 2
    p = stats.kstest(s, stats.beta(beta, beta + kappa).cdf).pvalue
    assert p > 1e-4, f"KS test of (1 - mu.x)/2 at m={m}, kappa={kappa}: p = {p:.3g}"


@pytest.mark.parametrize(("a", "b"), [(1.0, 2.0), (0.5, 0.7), (4.5, 14.5), (31.5, 1e3)])
def test_beta_gradient_is_the_implicit_one(a: float, b: float) -> None:
    """Per sample, ``ds/db = -(dF/db) / f(s)`` (F, f: CDF and density of Beta(a, b)) to 2e-3.

    The tolerance is that of torch's implicit Beta gradient (``torch._dirichlet_grad``, an
    approximation), which ``torch.distributions.Beta`` carries too: measured against this formula,
    its relative error reaches 9e-4 at ``(4.5, 14.5)``. A sign or an index mistake is off by O(1).
    """
    torch.manual_seed(1)
    bb = torch.full((200,), b, dtype=F64, requires_grad=True)
    s = _BetaSample.apply(a, bb)
    (grad,) = torch.autograd.grad(s.sum(), bb)
    s_np, h = s.detach().numpy(), 1e-5 * b
    dcdf_db = (special.betainc(a, b + h, s_np) - special.betainc(a, b - h, s_np)) / (2 * h)
    expected = -dcdf_db / stats.beta(a, b).pdf(s_np)
    keep = (s_np > 1e-12) & (s_np < 1 - 1e-12)  # where the finite difference has digits to give
    torch.testing.assert_close(grad[keep], torch.from_numpy(expected[keep]), rtol=2e-3, atol=0.0)


@pytest.mark.parametrize(("m", "kappa"), [(3, 1.0), (5, 10.0), (64, 100.0)])
def test_kappa_gradient_is_unbiased(m: int, kappa: float) -> None:
    """The mean autograd gradient of ``mu . x`` in kappa is ``d/dkappa kappa/(m-1+kappa)`` (4 SE)."""
    torch.manual_seed(2)
    n = 40_000
    loc = _loc(m, F64)
    k = torch.full((n,), kappa, dtype=F64, requires_grad=True)
    x = PowerSpherical(loc.expand(n, m), k).rsample()
    (grad,) = torch.autograd.grad((x @ loc).sum(), k)
    expected = (m - 1) / (m - 1 + kappa) ** 2
    z = (grad.mean().item() - expected) / (grad.std().item() / math.sqrt(n))
    assert abs(z) < 4, (
        f"m={m}, kappa={kappa}: mean {grad.mean().item():.6g}, {expected:.6g}, z={z:.2f}"
    )
