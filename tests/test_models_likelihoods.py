"""Likelihoods ``p(x|z)`` (``spherevae.models.likelihoods``): values against direct formulas, shapes.

Deterministic (fixed seed, exact comparisons).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from spherevae.models import (
    BernoulliLikelihood,
    ContinuousBernoulliLikelihood,
    GaussianLikelihood,
    build_likelihood,
)

SHAPE = (1, 3, 4)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(7)


def test_bernoulli_is_summed_bce():
    params, x = torch.randn(2, 5, *SHAPE), torch.rand(5, *SHAPE).round()
    out = BernoulliLikelihood().log_prob(x, params)
    assert out.shape == (2, 5)
    expected = -F.binary_cross_entropy_with_logits(params, x.expand_as(params), reduction="none")
    torch.testing.assert_close(out, expected.sum((-3, -2, -1)))
    # grey levels are accepted (the BCE of the reference code)
    BernoulliLikelihood().log_prob(torch.rand(5, *SHAPE), params)
    torch.testing.assert_close(BernoulliLikelihood().mean(params), torch.sigmoid(params))


def test_gaussian_fixed_std():
    params, x = torch.randn(2, 5, *SHAPE), torch.rand(5, *SHAPE)
    lik = GaussianLikelihood(std=0.3)
    assert list(lik.parameters()) == []
    n = math.prod(SHAPE)
    expected = -0.5 * ((x - params) ** 2).sum((-3, -2, -1)) / 0.09 - n * math.log(
        0.3 * math.sqrt(2 * math.pi)
    )
    torch.testing.assert_close(lik.log_prob(x, params), expected)
    torch.testing.assert_close(lik.mean(params), params)


def test_gaussian_learned_std():
    lik = GaussianLikelihood()
    (raw,) = list(lik.parameters())
    torch.testing.assert_close(lik.std, torch.tensor(1.0))
    params, x = torch.randn(5, *SHAPE), torch.rand(5, *SHAPE)
    n = math.prod(SHAPE)
    expected = -0.5 * ((x - params) ** 2).sum((-3, -2, -1)) - n * 0.5 * math.log(2 * math.pi)
    torch.testing.assert_close(lik.log_prob(x, params), expected)
    lik.log_prob(x, params).sum().backward()
    assert raw.grad is not None and raw.grad != 0
    # the floor: sigma never reaches 0
    with torch.no_grad():
        raw.fill_(-1e4)
    assert lik.std.item() == pytest.approx(GaussianLikelihood.MIN_STD)


def test_continuous_bernoulli():
    params, x = torch.randn(5, *SHAPE), torch.rand(5, *SHAPE)
    lik = ContinuousBernoulliLikelihood()
    expected = torch.distributions.ContinuousBernoulli(logits=params).log_prob(x).sum((-3, -2, -1))
    torch.testing.assert_close(lik.log_prob(x, params), expected)
    # normalised on [0, 1]: it differs from the BCE by the log-normaliser, which is positive
    bce = BernoulliLikelihood().log_prob(x, params)
    assert (lik.log_prob(x, params) > bce).all()
    # its mean is not sigmoid(logits)
    assert not torch.allclose(lik.mean(params), torch.sigmoid(params), atol=1e-3)


def test_build_likelihood():
    assert isinstance(build_likelihood("bernoulli"), BernoulliLikelihood)
    assert isinstance(build_likelihood("gaussian"), GaussianLikelihood)
    assert build_likelihood("gaussian", 0.5).std.item() == 0.5
    assert isinstance(build_likelihood("continuous_bernoulli"), ContinuousBernoulliLikelihood)
    with pytest.raises(ValueError, match="likelihood='mse'"):
        build_likelihood("mse")
