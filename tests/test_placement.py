"""The placement of a sample on the sphere: ``z = w loc + sqrt(1 - w^2) v`` by an exact reflection.

``PlaceOnSphere`` has a hand-derived backward pass, so its gradients are checked against finite
differences (``torch.autograd.gradcheck``, float64) for every shape it is used with, and its forward
pass against the defining properties: ``loc . z = w`` (to rounding), ``|z| = 1`` to a few ulps, and the
tangent part orthogonal to ``loc``. Deterministic checks, no statistics.
"""

from __future__ import annotations

import pytest
import torch

from spherevae.distributions import normalize
from spherevae.distributions.sphere import PlaceOnSphere, place_on_sphere

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
    assert torch.autograd.gradcheck(lambda a, b: PlaceOnSphere.apply(a, b, gauss), (t, loc))


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


def test_second_projection_keeps_the_latitude_when_g_is_along_loc() -> None:
    """At ``m = 2`` with a Gaussian draw almost parallel to ``loc``, the tangent part of ``g`` is a
    difference of nearly equal numbers; the second projection removes its rounding error, so the sample
    keeps ``loc . z = 1 - t`` (one projection leaves an error of about ``eps |g| / |p|``, here 1e-1)."""
    dtype = torch.float32
    loc = torch.tensor([[0.6, 0.8]], dtype=dtype)
    perp = torch.tensor([-0.8, 0.6], dtype=dtype)
    gauss = (1e4 * loc + 1e-3 * perp).reshape(1, 1, 2)
    t = torch.tensor([[0.5]], dtype=dtype)
    z = PlaceOnSphere.apply(t, loc, gauss.clone())
    cos = float((z.double() * loc.double()).sum())
    assert abs(cos - 0.5) <= 8 * torch.finfo(dtype).eps, cos
    assert float((z.double() * perp.double()).sum()) > 0  # the side of loc that g is on


@pytest.mark.parametrize(("n", "n_batch", "m"), [(1, 4, 2), (3, 5, 7)])
def test_concentration_gradient_through_the_slope(n: int, n_batch: int, m: int) -> None:
    """With ``kappa`` and ``slope = dtheta/dkappa`` given, ``kappa`` receives ``sum_n dL/dtheta slope``,
    the gradient of the surrogate ``t + sin(theta) slope (kappa - kappa.detach())`` (``dt = sin(theta)
    dtheta``); ``t`` and ``loc`` are unchanged."""
    gen = torch.Generator().manual_seed(7 * m + n)
    loc = _locs(n_batch, m, gen)
    t = torch.rand(n, n_batch, generator=gen, dtype=F64) * 1.9 + 0.05
    slope = torch.randn(n, n_batch, generator=gen, dtype=F64)
    gauss = torch.randn(n, n_batch, m, generator=gen, dtype=F64)
    weights = torch.randn(n, n_batch, m, generator=gen, dtype=F64)
    kappa = (torch.rand(n_batch, generator=gen, dtype=F64) * 10).requires_grad_()
    loc_a = loc.clone().requires_grad_()
    z = PlaceOnSphere.apply(t, loc_a, gauss, kappa, slope)
    grad_kappa, grad_loc = torch.autograd.grad((z * weights).sum(), (kappa, loc_a))
    kappa_b, loc_b = kappa.detach().clone().requires_grad_(), loc.clone().requires_grad_()
    surrogate = t + torch.sqrt(t * (2 - t)) * slope * (kappa_b - kappa_b.detach())
    z_b = PlaceOnSphere.apply(surrogate, loc_b, gauss)
    want_kappa, want_loc = torch.autograd.grad((z_b * weights).sum(), (kappa_b, loc_b))
    torch.testing.assert_close(z, z_b, rtol=0.0, atol=0.0)
    torch.testing.assert_close(grad_kappa, want_kappa)
    torch.testing.assert_close(grad_loc, want_loc)
    # the same through place_on_sphere, with kappa in float32 (its gradient keeps kappa's dtype)
    kappa32 = kappa.detach().float().requires_grad_()
    z32 = place_on_sphere(t, loc, torch.Size((n, n_batch)), kappa32, slope)
    (g32,) = torch.autograd.grad((z32 * weights).sum(), kappa32)
    assert g32.dtype == torch.float32 and g32.shape == (n_batch,)


@pytest.mark.parametrize("t_value", [2.0, 0.0])
def test_a_sample_on_a_pole_passes_a_finite_gradient(t_value: float) -> None:
    """A float32 sample rounded onto a pole (``t = 2``: theta = pi, common at m = 2 and small kappa)
    passes a bounded concentration gradient, ``|dL/dtheta slope| <= |G| |slope|``; ``dL/dt`` (infinite
    there in exact arithmetic) passes a finite one. Before the gradient went through the angle, the
    first was about 1e27 at ``slope = 2e-8``."""
    gen = torch.Generator().manual_seed(5)
    loc = _locs(3, 2, gen).float()
    t = torch.tensor([[t_value, 1.0, 0.3]])
    slope = torch.tensor([[-0.3, 0.2, 0.1]], dtype=F64)
    weights = torch.randn(1, 3, 2, generator=gen)
    kappa = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    z = place_on_sphere(t, loc, torch.Size((1, 3)), kappa, slope)
    (g,) = torch.autograd.grad((z * weights).sum(), kappa)
    bound = torch.linalg.vector_norm(weights[0], dim=-1) * slope[0].abs().float()
    assert bool(torch.isfinite(g).all()) and bool((g.abs() <= bound * (1 + 1e-5)).all()), (g, bound)
    t_grad = t.clone().requires_grad_()
    z = place_on_sphere(t_grad, loc, torch.Size((1, 3)))
    (g_t,) = torch.autograd.grad((z * weights).sum(), t_grad)
    assert bool(torch.isfinite(g_t).all()), g_t


def test_without_a_graph_matches_the_autograd_function() -> None:
    """Without gradients ``z`` is computed in place over the Gaussian draw: the same values."""
    gen = torch.Generator().manual_seed(3)
    n, n_batch, m = 6, 5, 9
    loc = _locs(n_batch, m, gen)
    t = torch.rand(n, n_batch, generator=gen, dtype=F64) * 2
    torch.manual_seed(11)
    with torch.no_grad():
        z_plain = place_on_sphere(t, loc, torch.Size((n, n_batch)))
    torch.manual_seed(11)
    z_graph = place_on_sphere(t, loc.clone().requires_grad_(), torch.Size((n, n_batch)))
    assert z_graph.requires_grad and not z_plain.requires_grad
    # in place and out of place are different kernels: equal to rounding on unit vectors
    torch.testing.assert_close(z_plain, z_graph.detach(), rtol=0.0, atol=1e-14)


def test_gradcheck_off_the_sphere() -> None:
    """``z`` depends on the direction of ``loc`` only: the gradient is right for any ``loc`` (finite
    differences leave the sphere) and has no component along ``loc``."""
    gen = torch.Generator().manual_seed(5)
    loc = (2.5 * _locs(4, 6, gen)).requires_grad_()
    t = (torch.rand(3, 4, generator=gen, dtype=F64) * 1.9 + 0.05).requires_grad_()
    gauss = torch.randn(3, 4, 6, generator=gen, dtype=F64)
    assert torch.autograd.gradcheck(lambda a, b: PlaceOnSphere.apply(a, b, gauss), (t, loc))
    (g,) = torch.autograd.grad(PlaceOnSphere.apply(t, loc, gauss).sum(), loc)
    assert float((g * loc.detach()).sum(-1).abs().max()) < 1e-12


# ---------------------------------------------------------------------------------------------------
# normalize: the heads' map onto the sphere, with a hand-written backward pass
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(4, 2), (3, 7), (2, 3, 5)])
def test_normalize_gradcheck_and_value(shape: tuple[int, ...]) -> None:
    gen = torch.Generator().manual_seed(sum(shape))
    x = (torch.randn(*shape, generator=gen, dtype=F64) * 3).requires_grad_()
    assert torch.autograd.gradcheck(normalize, (x,))
    u = normalize(x)
    assert torch.allclose(u, x / torch.linalg.vector_norm(x, dim=-1, keepdim=True), rtol=1e-15)
    # the gradient is tangent: moving x along itself does not move u
    (g,) = torch.autograd.grad((u * torch.randn(*shape, generator=gen, dtype=F64)).sum(), x)
    assert torch.allclose((g * x).sum(-1), torch.zeros(shape[:-1], dtype=F64), atol=1e-12)


def test_normalize_keeps_a_zero_vector_at_zero() -> None:
    x = torch.zeros(2, 3, dtype=F64)
    x[1] = torch.tensor([3.0, 0.0, 4.0], dtype=F64)
    for grad in (False, True):
        u = normalize(x.clone().requires_grad_(grad))
        assert torch.equal(u[0], torch.zeros(3, dtype=F64))
        assert torch.allclose(u[1], torch.tensor([0.6, 0.0, 0.8], dtype=F64))
