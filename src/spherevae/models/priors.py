r"""Priors ``p(z)`` matching the posterior heads, chosen so that ``KL(q || p)`` is registered in closed form.

- ``S^d`` factor: the uniform distribution on the sphere,
  :class:`~spherevae.distributions.HypersphericalUniform` (Davidson et al. 2018); density
  ``1 / area(S^d)`` with respect to the surface measure, the same measure as the vMF and Power
  Spherical densities, so ``log p(z) - log q(z|x)`` is a ratio of densities on one measure.
- ``R^d`` factor: the standard normal (Lebesgue measure), as ``Independent(Normal(0, 1), 1)`` or, when
  the posterior has a full covariance, ``MultivariateNormal(0, I)``: torch registers
  ``KL(MultivariateNormal || MultivariateNormal)`` but not ``KL(MultivariateNormal || Independent)``.
- a run of ``k`` equal spheres (:meth:`~spherevae.models.latent.LatentSpec.sphere_runs`):
  ``StackedProduct(HypersphericalUniform(m, batch_shape=(k,)))``, the same distribution as ``k``
  uniforms, in the layout of the posterior head's group, so that the KL is one pairwise call;
- product spaces: the :class:`~spherevae.distributions.ProductDistribution` of the groups' priors
  (a single group gives its plain distribution, like the posterior head).

The registered KLs used are ``vMF || uniform``, ``PowerSpherical || uniform`` (``spherevae``),
``Independent(Normal) || Independent(Normal)``, ``MultivariateNormal || MultivariateNormal`` (torch), and
``product || product`` and ``stacked || stacked`` (sum over factors).
"""

from __future__ import annotations

import torch
from torch.distributions import Distribution, Independent, MultivariateNormal, Normal

from ..distributions import HypersphericalUniform, ProductDistribution, StackedProduct
from .latent import LatentFactor, LatentSpec

__all__ = ["build_prior", "factor_prior"]


def factor_prior(
    factor: LatentFactor,
    covariance: str = "diagonal",
    *,
    copies: int = 1,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Distribution:
    """The prior of one factor, with ``batch_shape ()`` and ``event_shape (factor.ambient,)``; of
    ``copies > 1`` equal sphere factors in a row, the ``StackedProduct`` of as many uniforms (event
    ``(copies * factor.ambient,)``), the layout of the posterior head's group.

    Raises:
        ValueError: for ``copies > 1`` and a Euclidean factor (only spheres are grouped).
    """
    if factor.is_sphere:
        if copies == 1:
            return HypersphericalUniform(factor.ambient, dtype=dtype, device=device)
        uniform = HypersphericalUniform(
            factor.ambient, batch_shape=(copies,), dtype=dtype, device=device
        )
        return StackedProduct(uniform)
    if copies != 1:
        raise ValueError(f"only sphere factors are grouped, got copies={copies} for {factor}")
    zeros = torch.zeros(factor.dim, dtype=dtype, device=device)
    if covariance == "full":
        eye = torch.eye(factor.dim, dtype=dtype, device=device)
        return MultivariateNormal(zeros, scale_tril=eye)
    return Independent(Normal(zeros, torch.ones_like(zeros)), 1)


def build_prior(
    latent: LatentSpec,
    covariance: str = "diagonal",
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Distribution:
    """The prior of a latent space: ``batch_shape ()``, ``event_shape (latent.ambient_dim,)``.

    Args:
        latent: the latent space.
        covariance: the posterior's covariance mode on ``R^d`` factors (``"full"`` selects the
            ``MultivariateNormal`` form of the standard normal; the distribution is the same).
        dtype: of samples and densities (default: torch's default dtype).
        device: of samples and densities (default: torch's default device).
    """
    parts = [
        factor_prior(f, covariance, copies=copies, dtype=dtype, device=device)
        for f, copies in latent.sphere_runs()
    ]
    return parts[0] if len(parts) == 1 else ProductDistribution(parts)
