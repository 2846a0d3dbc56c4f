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
