"""The placement of a sample on the sphere: ``z = w loc + sqrt(1 - w^2) v`` by an exact reflection.

``_PlaceOnSphere`` has a hand-derived backward pass, so its gradients are checked against finite
differences (``torch.autograd.gradcheck``, float64) for every shape it is used with, and its forward
pass against the defining properties: ``loc . z = w`` (to rounding), ``|z| = 1`` to a few ulps, and the
tangent part orthogonal to ``loc``. Deterministic checks, no statistics.
"""

from __future__ import annotations

import pytest
import torch

from spherevae.distributions._utils import _PlaceOnSphere, place_on_sphere

F64 = torch.float64


def _unit(*shape: int, gen: torch.Generator) -> torch.Tensor:
    x = torch.randn(*shape, generator=gen, dtype=F64)
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True)


def _locs(n_batch: int, m: int, gen: torch.Generator) -> torch.Tensor:
    """Random unit vectors, with the hard cases in front: near +e_1, near -e_1, first coordinate < 0."""
    loc = _unit(n_batch, m, gen=gen)
    hard = torch.zeros(3, m, dtype=F64)
    hard[0, 0], hard[1, 0], hard[2, 0] = 1.0, -1.0, -0.6
    hard[:2, -1] = 1e-3  # just off the axis
    hard[2, -1] = 0.8
    loc[: min(3, n_batch)] = torch.nn.functional.normalize(hard[: min(3, n_batch)], dim=-1)
    return loc


@pytest.mark.parametrize(("n", "n_batch", "m"), [(1, 4, 2), (5, 3, 3), (4, 1, 10), (2, 5, 7)])
def test_gradcheck(n: int, n_batch: int, m: int) -> None:
    """First derivatives in ``t`` and ``loc`` match finite differences."""
    gen = torch.Generator().manual_seed(100 * m + n)
    loc = _locs(n_batch, m, gen).requires_grad_()
    t = torch.rand(n, n_batch, generator=gen, dtype=F64) * 1.9 + 0.05
    t[0, 0] = 1e-3  # close to the mode direction
    t[-1, -1] = 1.99  # close to the antipode
    t.requires_grad_()
    gauss = torch.randn(n, n_batch, m, generator=gen, dtype=F64)
    assert torch.autograd.gradcheck(lambda a, b: _PlaceOnSphere.apply(a, b, gauss), (t, loc))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("m", [2, 3, 64, 1024])
def test_forward_properties(m: int, dtype: torch.dtype) -> None:
    """``loc . z = 1 - t``, unit norm within 4 ulps, and the reflection keeps ``loc`` away from NaN."""
    gen = torch.Generator().manual_seed(m)
    n, n_batch = 200, 4
    loc = _locs(n_batch, m, gen).to(dtype)
    t = torch.cat(
        [
            torch.rand(n // 2, n_batch, generator=gen, dtype=F64) * 2,
            10 ** (-6 * torch.rand(n // 2, n_batch, generator=gen, dtype=F64)),
        ]
    ).to(dtype)
    torch.manual_seed(m)
    z = place_on_sphere(t, loc, torch.Size((n, n_batch)))
    eps = torch.finfo(dtype).eps
    assert z.shape == (n, n_batch, m)
    norm_error = (torch.linalg.vector_norm(z.double(), dim=-1) - 1).abs()
    assert norm_error.max() <= 4 * eps, norm_error.max()
    cos = (z.double() * loc.double()).sum(-1)
    # the sample's cosine with loc is w = 1 - t, to the rounding of a length-m dot product
    assert torch.allclose(cos, 1 - t.double(), rtol=0.0, atol=8 * eps * m**0.5)
