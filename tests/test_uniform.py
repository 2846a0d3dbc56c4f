"""The uniform distribution on the sphere: samples on the sphere in any dimension, the contract's
``mode``."""

from __future__ import annotations

import pytest
import torch


@pytest.mark.parametrize("dim", [10**6, 3 * 10**6])
def test_uniform_samples_stay_on_the_sphere_in_many_dimensions(dim: int) -> None:
    """float32 samples of the uniform on S^(dim-1): unit to a few ulps (a float32 norm drifted by
    1e-5 at a million coordinates and by 1e-2 at 1e8)."""
    from spherevae.distributions import HypersphericalUniform

    torch.manual_seed(0)
    z = HypersphericalUniform(dim, dtype=torch.float32).sample((2,))
    assert z.dtype == torch.float32
    error = (torch.linalg.vector_norm(z.double(), dim=-1) - 1).abs().max().item()
    assert error <= 4 * torch.finfo(torch.float32).eps, error


def test_the_uniform_s_mode_is_nan_like_torch_s_uniform() -> None:
    from spherevae.distributions import HypersphericalUniform

    mode = HypersphericalUniform(4, batch_shape=(2,), dtype=torch.float64).mode
    assert mode.shape == (2, 4) and mode.dtype == torch.float64 and bool(mode.isnan().all())
    assert bool(torch.distributions.Uniform(0.0, 1.0).mode.isnan())


@pytest.mark.parametrize("dim", [2, 3, 10])
def test_kl_between_two_uniforms_is_zero(dim: int) -> None:
    """KL(U || U) is registered: 0 of the broadcast batch shape, in the promoted dtype."""
    from spherevae.distributions import HypersphericalUniform

    p = HypersphericalUniform(dim, batch_shape=(3, 1), dtype=torch.float32)
    q = HypersphericalUniform(dim, batch_shape=(4,), dtype=torch.float64)
    kl = torch.distributions.kl_divergence(p, q)
    assert kl.shape == (3, 4) and kl.dtype == torch.float64 and bool((kl == 0).all())
    with pytest.raises(ValueError, match="same sphere"):
        torch.distributions.kl_divergence(p, HypersphericalUniform(dim + 1))


@pytest.mark.parametrize("m", [2, 3, 10, 100])
def test_kl_of_the_uniform_to_a_vmf(m: int) -> None:
    """KL(U || vMF(mu, k)) = log 0F1(; m/2; k^2/4) (``E_U[mu . x] = 0``), against mpmath at 40 digits
    (relative 1e-13 in float64, up to k = 1e5), with its derivative 0F1'/0F1 = A_m(k) checked by
    gradcheck; broadcast against the uniform's batch."""
    import mpmath as mp

    from spherevae.distributions import HypersphericalUniform, VonMisesFisher

    kappas = [0.0, 1e-3, 0.5, 3.0, 40.0, 1e3, 1e5]
    k = torch.tensor(kappas, dtype=torch.float64, requires_grad=True)
    loc = torch.zeros(len(kappas), m, dtype=torch.float64)
    loc[:, 0] = 1
    q = VonMisesFisher(loc, k)
    kl = torch.distributions.kl_divergence(HypersphericalUniform(m, dtype=torch.float64), q)
    mp.mp.dps = 40
    for got, kappa in zip(kl.tolist(), kappas, strict=True):
        want = float(mp.log(mp.hyp0f1(mp.mpf(m) / 2, mp.mpf(kappa) ** 2 / 4)))
        assert got == pytest.approx(want, rel=1e-13, abs=1e-300), (kappa, got, want)
    torch.autograd.gradcheck(
        lambda c: torch.distributions.kl_divergence(
            HypersphericalUniform(m, dtype=torch.float64), VonMisesFisher(loc[:3], c)
        ),
        (torch.tensor([0.7, 3.0, 40.0], dtype=torch.float64, requires_grad=True),),
    )
    wide = HypersphericalUniform(m, batch_shape=(2, 1), dtype=torch.float64)
    assert torch.distributions.kl_divergence(wide, q).shape == (2, len(kappas))
