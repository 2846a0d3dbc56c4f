"""The uniform distribution on the unit sphere ``S^{dim-1}`` in ``R^dim``."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Distribution, register_kl
from torch.types import _size

from .constraints import sphere
from .sphere import broadcast_shapes, check_same_sphere, log_sphere_area

__all__ = ["HypersphericalUniform"]


class HypersphericalUniform(Distribution):
    r"""Uniform distribution on ``S^{dim-1} = {x in R^dim : |x| = 1}``.

    ``dim`` is the ambient dimension (the size of a sample's last axis), as for every distribution in
    ``spherevae``: ``HypersphericalUniform(3)`` is the uniform distribution on the ordinary 2-sphere.

    Math:
        ``log p(x) = -log area(S^{dim-1}) = -(log 2 + (dim/2) log pi - lgamma(dim/2))``;
        the entropy is ``log area``. Samples are normalised standard Gaussian vectors.

    Args:
        dim: ambient dimension ``m >= 2``.
        batch_shape: batch shape (default ``()``).
        dtype: floating dtype of samples and densities (default: ``torch.get_default_dtype()``).
        device: device of samples and densities (default: the current default device).
        validate_args: check samples passed to :meth:`log_prob` (default as ``torch.distributions``).

    Examples:
        >>> HypersphericalUniform(3).sample((5,)).shape
        torch.Size([5, 3])
    """

    arg_constraints: dict[str, torch.distributions.constraints.Constraint] = {}
    support = sphere
    has_rsample = True

    def __init__(
        self,
        dim: int,
        *,
        batch_shape: torch.Size | tuple[int, ...] = (),
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        validate_args: bool | None = None,
    ) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2:
            raise ValueError(
                f"dim (the ambient dimension) must be an integer >= 2, got dim={dim!r}"
            )
        self.dim = dim
        self._dtype = dtype if dtype is not None else torch.get_default_dtype()
        if not self._dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating-point dtype, got dtype={self._dtype}")
        self._device = torch.device(device) if device is not None else torch.empty(0).device
        super().__init__(torch.Size(batch_shape), torch.Size([dim]), validate_args=validate_args)

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def device(self) -> torch.device:
        return self._device

    def expand(
        self,
        batch_shape: _size,
        _instance: HypersphericalUniform | None = None,
    ) -> HypersphericalUniform:
        new: HypersphericalUniform = self._get_checked_instance(HypersphericalUniform, _instance)
        new.dim = self.dim
        new._dtype = self._dtype
        new._device = self._device
        super(HypersphericalUniform, new).__init__(
            torch.Size(batch_shape), self.event_shape, validate_args=False
        )
        new._validate_args = self._validate_args
        return new

    def log_surface_area(self) -> Tensor:
        """``log area(S^{dim-1})`` as a 0-dimensional tensor."""
        return torch.tensor(log_sphere_area(self.dim), dtype=self._dtype, device=self._device)

    def rsample(self, sample_shape: _size = ()) -> Tensor:
        shape = self._extended_shape(torch.Size(sample_shape))
        x = torch.randn(shape, dtype=self._dtype, device=self._device)
        # the norm in float64: a float32 sum of squares over a million coordinates is off by 1e-5
        # (4e-4 at ten million), which puts the samples visibly off the sphere
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True, dtype=torch.float64)
        out: Tensor = x / norm.to(x.dtype)
        return out

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        shape = torch.broadcast_shapes(value.shape[:-1], self.batch_shape)
        return torch.full(shape, -log_sphere_area(self.dim), dtype=self._dtype, device=self._device)

    def entropy(self) -> Tensor:
        return torch.full(
            self.batch_shape, log_sphere_area(self.dim), dtype=self._dtype, device=self._device
        )

    @property
    def mean(self) -> Tensor:
        return torch.zeros(
            self.batch_shape + self.event_shape, dtype=self._dtype, device=self._device
        )

    @property
    def mode(self) -> Tensor:
        """``nan``: every point of the sphere is a mode (as torch's ``Uniform.mode``)."""
        return torch.full(
            self.batch_shape + self.event_shape, math.nan, dtype=self._dtype, device=self._device
        )

    @property
    def variance(self) -> Tensor:
        return torch.full(
            self.batch_shape + self.event_shape,
            1.0 / self.dim,
            dtype=self._dtype,
            device=self._device,
        )


@register_kl(HypersphericalUniform, HypersphericalUniform)
def _kl_uniform_uniform(p: HypersphericalUniform, q: HypersphericalUniform) -> Tensor:
    check_same_sphere(p, q)
    shape = broadcast_shapes(p.batch_shape, q.batch_shape)
    return torch.zeros(shape, dtype=torch.promote_types(p.dtype, q.dtype), device=p.device)
