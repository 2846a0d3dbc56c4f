"""Points of the ``torch.distributions`` contract that PyTorch's generic tests found missing (issue
13, item 5): deepcopy with grad-requiring parameters, unit vectors from a coarser dtype, and a
concentration whose shape would silently widen the batch."""

from __future__ import annotations

import copy

import pytest
import torch

from spherevae.distributions import PowerSpherical, VonMisesFisher

FAMILIES = [VonMisesFisher, PowerSpherical]


@pytest.mark.parametrize("family", FAMILIES)
def test_deepcopy_with_parameters_that_require_grad(family: type) -> None:
    loc = torch.nn.functional.normalize(torch.randn(3, 4, dtype=torch.float64), dim=-1)
    kappa = torch.rand(3, dtype=torch.float64) + 1
    q = family(loc.requires_grad_(), kappa.requires_grad_())
    clone = copy.deepcopy(q)
    assert clone.loc is not q.loc and torch.equal(clone.loc, q.loc)
    torch.testing.assert_close(clone.log_prob(loc.detach()), q.log_prob(loc.detach()))


@pytest.mark.parametrize("family", FAMILIES)
def test_vectors_made_unit_in_float32_pass_as_float64(family: type) -> None:
    """1000 unit vectors normalised in float32 and cast to float64 are accepted as ``loc`` and as
    ``log_prob`` values (0 of 1000 were); a vector of norm 1 + 1e-4 is still refused."""
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(1000, 10, generator=g), dim=-1).double()
    q = family(x, torch.full((1000,), 5.0, dtype=torch.float64), validate_args=True)
    assert bool(torch.isfinite(q.log_prob(x)).all())
    with pytest.raises(ValueError, match="loc"):
        family(x[:1] * (1 + 1e-4), torch.ones(1, dtype=torch.float64), validate_args=True)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_concentration_that_would_widen_the_batch_is_refused(family: type) -> None:
    """A ``(B, 1)`` concentration with a ``(B, m)`` loc (the layout of s-vae-pytorch and
    power_spherical) is a ValueError naming both shapes, not a silent ``(B, B)`` batch; shapes that
    broadcast to one of the two stay accepted."""
    loc = torch.nn.functional.normalize(torch.randn(4, 3), dim=-1)
    with pytest.raises(ValueError, match=r"\(4, 1\).*\(4, 3\)"):
        family(loc, torch.ones(4, 1))
    assert family(loc, torch.ones(4)).batch_shape == (4,)
    assert family(loc, torch.tensor(2.0)).batch_shape == (4,)
    assert family(loc[0], torch.ones(5)).batch_shape == (5,)
