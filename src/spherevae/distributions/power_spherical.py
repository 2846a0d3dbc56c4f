"""The Power Spherical distribution on the unit sphere ``S^{m-1}`` (De Cao and Aziz 2020)."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Beta, Distribution, constraints
from torch.types import _size

from ._utils import broadcast_shapes, check_concentration, check_loc, place_on_sphere, work_dtype
from .constraints import sphere

__all__ = ["PowerSpherical"]


class PowerSpherical(Distribution):
    r"""Power Spherical distribution: ``p(x) = C(kappa) (1 + mu . x)^kappa`` on ``S^{m-1}``.

    Math:
        With ``alpha = (m-1)/2 + kappa`` and ``beta = (m-1)/2``, the marginal of ``t = mu . x`` satisfies
        ``(1 + t)/2 ~ Beta(alpha, beta)``, and

        ``log C(kappa) = -[(alpha + beta) log 2 + beta log pi + lgamma(alpha) - lgamma(alpha + beta)]``,

        ``H = -log C - kappa (log 2 + digamma(alpha) - digamma(alpha + beta))``,
        ``E[x] = kappa / (m - 1 + kappa) mu``.

    Sampling is exact and fully reparameterised: ``s = (1 - t)/2 ~ Beta(beta, alpha)`` (drawn directly,
    so ``1 - t = 2 s`` keeps its digits at large ``kappa``; torch's Beta carries exact implicit
    gradients), then ``x = t mu + sqrt(1 - t^2) v`` with ``v`` uniform in the tangent space, placed by an
    exact reflection.

    Args:
        loc: ``batch_shape + (m,)`` unit mean directions, ``m >= 2``.
        concentration: ``batch_shape`` (broadcastable), ``kappa >= 0``.
        validate_args: check parameters and samples (default as ``torch.distributions``).

    Raises:
        ValueError: for a ``loc`` that is not a batch of unit vectors with ``m >= 2`` or a negative or
            non-finite ``concentration``.

    References:
        N. De Cao, W. Aziz (2020), The Power Spherical distribution, ICML INNF+ workshop.
    """

    arg_constraints = {"loc": sphere, "concentration": constraints.nonnegative}
    support = sphere
    has_rsample = True

    def __init__(
        self, loc: Tensor, concentration: Tensor | float, *, validate_args: bool | None = None
    ) -> None:
        validate = validate_args if validate_args is not None else Distribution._validate_args
        if not isinstance(loc, Tensor):
            raise ValueError(f"loc must be a tensor, got {type(loc).__name__}")
        check_loc(loc, validate)
        concentration = torch.as_tensor(concentration, dtype=loc.dtype, device=loc.device)
        check_concentration(concentration, validate)
        batch_shape = broadcast_shapes(loc.shape[:-1], concentration.shape)
        m = loc.shape[-1]
        self.loc = loc.expand((*batch_shape, m))
        self.concentration = concentration.expand(batch_shape)
        super().__init__(batch_shape, torch.Size([m]), validate_args=validate_args)

    @property
    def dim(self) -> int:
        """Ambient dimension ``m``."""
        return int(self.event_shape[0])

    def expand(self, batch_shape: _size, _instance: PowerSpherical | None = None) -> PowerSpherical:
        new: PowerSpherical = self._get_checked_instance(PowerSpherical, _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc = self.loc.expand(batch_shape + self.event_shape)
        new.concentration = self.concentration.expand(batch_shape)
        super(PowerSpherical, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _alpha_beta(self, dtype: torch.dtype) -> tuple[Tensor, float]:
        beta = (self.dim - 1) / 2
        return self.concentration.to(dtype) + beta, beta

    def _log_normalizer(self, dtype: torch.dtype) -> Tensor:
        """``log C(kappa)`` (so that ``log p = log C + kappa log1p(mu . x)``)."""
        alpha, beta = self._alpha_beta(dtype)
        return -(
            (alpha + beta) * math.log(2)
            + beta * math.log(math.pi)
            + torch.lgamma(alpha)
            - torch.lgamma(alpha + beta)
        )

    def rsample(self, sample_shape: _size = ()) -> Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        alpha, beta = self._alpha_beta(self.loc.dtype)
        # the parameters were validated here already; Beta's own checks would only cost time
        marginal = Beta(torch.full_like(alpha, beta), alpha, validate_args=False)
        s = marginal.rsample(torch.Size(sample_shape))
        return place_on_sphere(2 * s, self.loc, shape)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        work = work_dtype(value.device)
        cos = (self.loc.to(work) * value.to(work)).sum(-1).clamp(-1.0, 1.0)
        out = self._log_normalizer(work) + torch.xlogy(self.concentration.to(work), 1 + cos)
        return out.to(torch.promote_types(value.dtype, self.loc.dtype))

    def entropy(self) -> Tensor:
        work = work_dtype(self.loc.device)
        alpha, beta = self._alpha_beta(work)
        expected_log1p = math.log(2) + torch.digamma(alpha) - torch.digamma(alpha + beta)
        out = -(self._log_normalizer(work) + self.concentration.to(work) * expected_log1p)
        return out.to(self.loc.dtype)

    @property
    def mean_resultant_length(self) -> Tensor:
        """``E[mu . x] = kappa / (m - 1 + kappa)``, shape ``batch_shape``."""
        return self.concentration / (self.dim - 1 + self.concentration)

    @property
    def mean(self) -> Tensor:
        return self.mean_resultant_length.unsqueeze(-1) * self.loc

    @property
    def mode(self) -> Tensor:
        return self.loc

    @property
    def variance(self) -> Tensor:
        """Diagonal of ``Var(t) mu mu^T + (1 - E[t^2]) / (m - 1) (I - mu mu^T)``."""
        alpha, beta = self._alpha_beta(self.loc.dtype)
        total = alpha + beta
        var_t = 4 * alpha * beta / (total * total * (total + 1))
        mean_t = self.mean_resultant_length
        second = var_t + mean_t * mean_t
        mu2 = self.loc**2
        return var_t.unsqueeze(-1) * mu2 + ((1 - second) / (self.dim - 1)).unsqueeze(-1) * (1 - mu2)
