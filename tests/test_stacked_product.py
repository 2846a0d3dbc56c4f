"""``StackedProduct``: ``k`` factors of one family on one sphere held as one distribution.

Each closed form is compared with a :class:`ProductDistribution` of the same ``k`` factors built from
the same parameters (float64, relative tolerance 1e-12), so a wrong axis or a wrong coordinate order
shows up as a mismatch. The batch (4) and the number of factors (3) differ so that summing over the
wrong axis changes shapes. Everything is exact (no Monte Carlo).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import (
    Independent,
    Normal,
    OneHotCategorical,
    kl_divergence,
)

from spherevae.distributions import (
    HypersphericalUniform,
    PowerSpherical,
    ProductDistribution,
    StackedProduct,
    VonMisesFisher,
)

B, K, M = 4, 3, 5
F64 = torch.float64
FAMILIES = [VonMisesFisher, PowerSpherical]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(2024)


def _params(*batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    loc = torch.nn.functional.normalize(torch.randn(*batch, K, M, dtype=F64), dim=-1)
    kappa = torch.rand(*batch, K, dtype=F64) * 20 + 0.5
    return loc, kappa


def _pair(family, loc, kappa):
    """The stacked product and the explicit product of the same factors."""
    stacked = StackedProduct(family(loc, kappa))
    explicit = ProductDistribution([family(loc[..., j, :], kappa[..., j]) for j in range(K)])
    return stacked, explicit


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.__name__)
def test_closed_forms_match_explicit_product(family):
    stacked, explicit = _pair(family, *_params(B))
    assert stacked.batch_shape == (B,) and stacked.event_shape == (K * M,)
    assert (stacked.k, stacked.factor_size) == (K, M)
    x = explicit.sample((2,))
    tight = {"rtol": 1e-12, "atol": 1e-14}
    torch.testing.assert_close(stacked.log_prob(x), explicit.log_prob(x), **tight)
    torch.testing.assert_close(stacked.entropy(), explicit.entropy(), **tight)
    torch.testing.assert_close(stacked.mean, explicit.mean, **tight)
    torch.testing.assert_close(stacked.variance, explicit.variance, **tight)
    torch.testing.assert_close(stacked.mode, explicit.mode, **tight)
    # a value without sample or batch axes broadcasts against the batch
    torch.testing.assert_close(stacked.log_prob(x[0, 0]), explicit.log_prob(x[0, 0]), **tight)


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.__name__)
def test_rsample_blocks_follow_factors_and_carry_gradients(family):
    loc, kappa = _params(B)
    kappa = (kappa * 1e3).requires_grad_()  # concentrated: block j lies next to loc[:, j]
    loc = loc.requires_grad_()
    q = StackedProduct(family(loc, kappa))
    z = q.rsample((7,))
    assert z.shape == (7, B, K * M)
    blocks = z.unflatten(-1, (K, M))
    torch.testing.assert_close(
        blocks.norm(dim=-1), torch.ones(7, B, K, dtype=F64), rtol=0, atol=1e-12
    )
    assert ((blocks * loc).sum(-1) > 0.99).all()
    (z * torch.randn(K * M, dtype=F64)).sum().backward()
    for p in (loc, kappa):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().min() > 0
    assert not q.sample((2,)).requires_grad


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.__name__)
def test_kl_to_stacked_uniform_is_sum_of_factor_kls(family):
    loc, kappa = _params(B)
    q = StackedProduct(family(loc, kappa))
    prior = StackedProduct(HypersphericalUniform(M, batch_shape=(K,), dtype=F64))
    kl = kl_divergence(q, prior)
    uniform = HypersphericalUniform(M, dtype=F64)
    expected = sum(kl_divergence(family(loc[:, j], kappa[:, j]), uniform) for j in range(K))
    assert kl.shape == (B,)
    torch.testing.assert_close(kl, expected, rtol=1e-12, atol=0)


def test_kl_vmf_vmf_and_inside_a_product():
    loc, kappa = _params(B)
    loc2, kappa2 = _params()  # q's factors differ from each other, shared across the batch
    p = StackedProduct(VonMisesFisher(loc, kappa))
    q = StackedProduct(VonMisesFisher(loc2, kappa2))
    expected = sum(
        kl_divergence(VonMisesFisher(loc[:, j], kappa[:, j]), VonMisesFisher(loc2[j], kappa2[j]))
        for j in range(K)
    )
    torch.testing.assert_close(kl_divergence(p, q), expected, rtol=1e-12, atol=0)

    # S4xS4xS4xR2: the product's factor-by-factor KL dispatches the stacked pair as one factor
    normal = Independent(Normal(torch.randn(B, 2, dtype=F64), torch.rand(B, 2, dtype=F64) + 0.5), 1)
    std = Independent(Normal(torch.zeros(2, dtype=F64), torch.ones(2, dtype=F64)), 1)
    prior = StackedProduct(HypersphericalUniform(M, batch_shape=(K,), dtype=F64))
    kl = kl_divergence(ProductDistribution([p, normal]), ProductDistribution([prior, std]))
    torch.testing.assert_close(
        kl, kl_divergence(p, prior) + kl_divergence(normal, std), rtol=1e-12, atol=0
    )


def test_kl_needs_matching_factors():
    loc, kappa = _params(B)
    p = StackedProduct(VonMisesFisher(loc, kappa))
    with pytest.raises(ValueError, match="same number and size of factors"):
        kl_divergence(p, StackedProduct(HypersphericalUniform(M, batch_shape=(K + 1,), dtype=F64)))
    with pytest.raises(ValueError, match="same number and size of factors"):
        kl_divergence(p, StackedProduct(HypersphericalUniform(M + 1, batch_shape=(K,), dtype=F64)))


def test_expand():
    loc, kappa = _params()
    p = StackedProduct(VonMisesFisher(loc, kappa))
    assert p.batch_shape == () and p.base.batch_shape == (K,)
    wide = p.expand((2, B))
    assert wide.batch_shape == (2, B) and wide.event_shape == (K * M,)
    assert wide.base.batch_shape == (2, B, K) and wide.k == K and wide.factor_size == M
    x = p.sample((2, B))
    torch.testing.assert_close(wide.log_prob(x), p.log_prob(x), rtol=1e-14, atol=0)
    torch.testing.assert_close(wide.entropy(), p.entropy().expand(2, B))
    assert wide.rsample((3,)).shape == (3, 2, B, K * M)

    uniform = StackedProduct(HypersphericalUniform(M, batch_shape=(K,))).expand((B,))
    assert uniform.sample().shape == (B, K * M)


def test_uniform_prior_density_and_support():
    p = StackedProduct(HypersphericalUniform(M, batch_shape=(K,), dtype=F64), validate_args=True)
    x = p.sample((6,))
    area = math.log(2) + M / 2 * math.log(math.pi) - math.lgamma(M / 2)
    torch.testing.assert_close(p.log_prob(x), torch.full((6,), -K * area, dtype=F64))
    assert p.support.check(x).shape == (6,) and p.support.check(x).all()
    bad = x.clone()
    bad[0, -1] += 0.5  # the last factor of the first sample leaves the sphere
    assert p.support.check(bad).tolist() == [False] + [True] * 5
    with pytest.raises(ValueError):
        p.log_prob(bad)


def test_has_rsample_follows_base():
    assert StackedProduct(HypersphericalUniform(M, batch_shape=(K,))).has_rsample
    onehot = StackedProduct(OneHotCategorical(probs=torch.full((K, 4), 0.25)))
    assert not onehot.has_rsample
    assert onehot.sample((2,)).shape == (2, K * 4)
    with pytest.raises(NotImplementedError):
        onehot.rsample()


def test_bad_base_is_an_error():
    with pytest.raises(ValueError, match="base must be a Distribution"):
        StackedProduct(torch.zeros(3))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"base must have a one-dimensional event shape.*\(\)"):
        StackedProduct(Normal(torch.zeros(K), torch.ones(K)))
    with pytest.raises(ValueError, match=r"base must have batch shape.*batch_shape=\(\)"):
        StackedProduct(VonMisesFisher(torch.tensor([0.0, 1.0]), 1.0))
    with pytest.raises(ValueError, match=r"k >= 1.*batch_shape=\(0,\)"):
        StackedProduct(HypersphericalUniform(M, batch_shape=(0,)))
