"""The fused code paths of a training step agree with the plain formulas they replace.

- ``KL(PowerSpherical || uniform)`` as one autograd node against ``log area - H`` through autograd;
- the product posterior head (one linear map for all directions, one for all concentrations) against
  one head per factor;
- the product KL of stacked sphere factors against the sum of the factors' KLs.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck
from torch.distributions import kl_divergence

from spherevae.distributions import HypersphericalUniform, PowerSpherical


def _log_area(m: int) -> float:
    return math.log(2.0) + 0.5 * m * math.log(math.pi) - math.lgamma(0.5 * m)


def _unit(n: int, m: int, dtype: torch.dtype) -> torch.Tensor:
    gen = torch.Generator().manual_seed(m)
    return torch.nn.functional.normalize(torch.randn(n, m, generator=gen, dtype=dtype), dim=-1)


KAPPAS = [0.0, 1e-3, 0.5, 1.0, 7.0, 30.0, 400.0, 1e5]


@pytest.mark.parametrize("m", [2, 3, 5, 11, 500])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ps_kl_to_uniform_matches_entropy_form(m: int, dtype: torch.dtype) -> None:
    """Value and derivative against ``log area - H`` with autograd through the textbook entropy."""
    kappa = torch.tensor(KAPPAS, dtype=dtype, requires_grad=True)
    kl = kl_divergence(
        PowerSpherical(_unit(len(KAPPAS), m, dtype), kappa), HypersphericalUniform(m)
    )
    assert kl.dtype == dtype
    (grad,) = torch.autograd.grad(kl.sum(), kappa)

    # the textbook entropy (De Cao and Aziz 2020), written out here: the library's entropy is derived
    # from the KL, so it cannot serve as the reference
    k64 = kappa.detach().double().requires_grad_()
    beta = (m - 1) / 2
    alpha = k64 + beta
    log_c = -(
        (alpha + beta) * math.log(2)
        + beta * math.log(math.pi)
        + torch.lgamma(alpha)
        - torch.lgamma(alpha + beta)
    )
    entropy = -(log_c + k64 * (math.log(2) + torch.digamma(alpha) - torch.digamma(alpha + beta)))
    ref = _log_area(m) - entropy
    (ref_grad,) = torch.autograd.grad(ref.sum(), k64)
    tol = {"rtol": 1e-12, "atol": 1e-9} if dtype == torch.float64 else {}
    torch.testing.assert_close(kl.detach(), ref.detach().to(dtype), **tol)
    torch.testing.assert_close(grad, ref_grad.to(dtype), **tol)
    assert kl[0].item() == pytest.approx(0.0, abs=1e-9 if dtype == torch.float64 else 1e-5)


@pytest.mark.parametrize("m", [3, 10])
def test_ps_kl_to_uniform_gradgradcheck(m: int) -> None:
    kappa = torch.tensor([1e-3, 0.7, 12.0, 300.0], dtype=torch.float64, requires_grad=True)
    loc = _unit(4, m, torch.float64)
    u = HypersphericalUniform(m, dtype=torch.float64)

    def fn(k: torch.Tensor) -> torch.Tensor:
        return kl_divergence(PowerSpherical(loc, k), u)

    assert gradcheck(fn, (kappa,))
    assert gradgradcheck(fn, (kappa,))
    # the double-backward path gives the same first derivative as the plain one
    (plain,) = torch.autograd.grad(fn(kappa).sum(), kappa)
    (graph,) = torch.autograd.grad(fn(kappa).sum(), kappa, create_graph=True)
    torch.testing.assert_close(graph, plain, rtol=1e-13, atol=0.0)


@pytest.mark.parametrize("family", ["vmf", "ps"])
@pytest.mark.parametrize("order", ["sample_first", "kl_first", "rsample_first"])
def test_product_kl_of_stacked_factors(family: str, order: str) -> None:
    """``S^4 x S^4 x R^2 x S^2``: the stacked KL equals the sum of the factors' KLs, with the same
    gradients, whichever of ``sample`` (no autograd), ``rsample`` and the KL comes first."""
    from torch.distributions import Independent, Normal

    from spherevae.distributions import ProductDistribution, VonMisesFisher

    f64 = torch.float64
    make = VonMisesFisher if family == "vmf" else PowerSpherical
    kappas = [
        torch.tensor([0.3, 8.0, 250.0], dtype=f64, requires_grad=True),
        torch.tensor([2.0, 0.05, 40.0], dtype=f64, requires_grad=True),
        torch.tensor([1.0, 3.0, 9.0], dtype=f64, requires_grad=True),
    ]
    locs = [_unit(3, 5, f64), _unit(3, 5, f64).flip(-1), _unit(3, 3, f64)]
    gauss_loc = torch.randn(3, 2, dtype=f64, requires_grad=True)
    parts = [make(locs[0], kappas[0]), make(locs[1], kappas[1])]
    p = ProductDistribution(
        [
            *parts,
            Independent(Normal(gauss_loc, torch.ones(3, 2, dtype=f64)), 1),
            make(locs[2], kappas[2]),
        ]
    )
    zeros = torch.zeros(2, dtype=f64)
    q = ProductDistribution(
        [
            HypersphericalUniform(5, dtype=f64),
            HypersphericalUniform(5, dtype=f64),
            Independent(Normal(zeros, torch.ones_like(zeros)), 1),
            HypersphericalUniform(3, dtype=f64),
        ]
    )
    if order == "sample_first":
        p.sample()
    if order == "rsample_first":
        z = p.rsample()
    kl = kl_divergence(p, q)
    if order != "rsample_first":
        z = p.rsample()
    want = sum(kl_divergence(a, b) for a, b in zip(p.components, q.components, strict=True))
    torch.testing.assert_close(kl, want, rtol=1e-14, atol=1e-14)
    params = [*kappas, gauss_loc]
    got_grads = torch.autograd.grad(kl.sum(), params)
    want_grads = torch.autograd.grad(want.sum(), params)
    for g, w in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-13, atol=1e-14)
    # the sample carries gradient to both stacked concentrations
    dz = torch.autograd.grad(z[..., :10].sum(), kappas[:2])
    assert all(bool(g.abs().sum() > 0) for g in dz)
