"""Products of ``k`` factors of one family on one sphere, such as ``S^4 x S^4``, held as one distribution."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints, kl_divergence, register_kl
from torch.types import _size

from .constraints import ProductSupport
from .sphere import check_vector_distribution

__all__ = ["StackedProduct"]


class StackedProduct(Distribution):
    r"""Product of ``k`` independent factors that differ only in their parameters, held as one ``base``.

    ``base`` has batch shape ``batch_shape + (k,)`` and event shape ``(m,)``: factor ``j`` is
    ``base`` at index ``j`` of the last batch axis, for example
    ``VonMisesFisher(loc (B, k, m), kappa (B, k))`` for ``k`` von Mises-Fisher factors on ``S^{m-1}``.
    The product has batch shape ``batch_shape`` and event shape ``(k m,)``; its coordinates are the
    factors' in order (factor ``j`` is coordinates ``j m`` to ``(j + 1) m - 1``), as in a
    :class:`~spherevae.distributions.ProductDistribution` of the same factors.

    Math:
        ``log p(x) = sum_j log p_j(x_j)``, ``H = sum_j H_j``, ``E[x] = concat_j E[x_j]``, and
        ``KL(p || q) = sum_j KL(p_j || q_j)``.

    Every operation is one call of ``base`` on the ``(..., k, m)`` view of the coordinates, so a
    product of ``k`` spheres costs about as much as one sphere of the same batch (one sampler launch,
    one Bessel evaluation, one KL), instead of ``k`` calls and the stacking of their parameters.

    Args:
        base: the factors, stacked along the last batch axis; event shape ``(m,)``.
        validate_args: check samples in :meth:`log_prob` (default as ``torch.distributions``).

    Raises:
        ValueError: naming ``base``, if it is not a ``Distribution``, its event is not one-dimensional,
            or it has no batch axis to hold the factors (or that axis is empty).

    Examples:
        >>> from spherevae.distributions import HypersphericalUniform
        >>> p = StackedProduct(HypersphericalUniform(5, batch_shape=(2,)))  # uniform on S^4 x S^4
        >>> p.batch_shape, p.event_shape, p.sample((3,)).shape
        (torch.Size([]), torch.Size([10]), torch.Size([3, 10]))
    """

    arg_constraints: dict[str, constraints.Constraint] = {}

    def __init__(self, base: Distribution, *, validate_args: bool | None = None) -> None:
        check_vector_distribution(base, "base")
        if len(base.batch_shape) < 1 or base.batch_shape[-1] < 1:
            raise ValueError(
                f"base must have batch shape batch_shape + (k,) with k >= 1 factors on its last "
                f"axis, got batch_shape={tuple(base.batch_shape)} ({type(base).__name__})"
            )
        self.base = base
        self.k = int(base.batch_shape[-1])
        self.factor_size = int(base.event_shape[0])
        super().__init__(
            base.batch_shape[:-1],
            torch.Size([self.k * self.factor_size]),
            validate_args=validate_args,
        )

    @property
    def has_rsample(self) -> bool:  # type: ignore[override]
        return bool(self.base.has_rsample)

    @constraints.dependent_property(is_discrete=False, event_dim=1)
    def support(self) -> constraints.Constraint:
        part: constraints.Constraint = self.base.support  # type: ignore[assignment]
        return ProductSupport([part] * self.k, [self.factor_size] * self.k)

    def expand(self, batch_shape: _size, _instance: StackedProduct | None = None) -> StackedProduct:
        new: StackedProduct = self._get_checked_instance(StackedProduct, _instance)
        batch_shape = torch.Size(batch_shape)
        new.base = self.base.expand((*batch_shape, self.k))
        new.k = self.k
        new.factor_size = self.factor_size
        super(StackedProduct, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _factors(self, value: Tensor) -> Tensor:
        """``(..., k m) -> (..., k, m)``, a view."""
        out: Tensor = value.unflatten(-1, (self.k, self.factor_size))
        return out

    def rsample(self, sample_shape: _size = ()) -> Tensor:
        if not self.has_rsample:
            raise NotImplementedError(f"{type(self.base).__name__} has no rsample")
        # sample_shape + batch_shape + (k, m), contiguous: flattening is a view
        return self.base.rsample(sample_shape).flatten(-2)

    def sample(self, sample_shape: _size = ()) -> Tensor:
        return self.base.sample(sample_shape).flatten(-2)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return self.base.log_prob(self._factors(value)).sum(-1)

    def entropy(self) -> Tensor:
        return self.base.entropy().sum(-1)

    @property
    def mean(self) -> Tensor:
        return self.base.mean.flatten(-2)

    @property
    def mode(self) -> Tensor:
        return self.base.mode.flatten(-2)

    @property
    def variance(self) -> Tensor:
        return self.base.variance.flatten(-2)


@register_kl(StackedProduct, StackedProduct)
def _kl_stacked_stacked(p: StackedProduct, q: StackedProduct) -> Tensor:
    if (p.k, p.factor_size) != (q.k, q.factor_size):
        raise ValueError(
            f"KL divergence between stacked products needs the same number and size of factors, got "
            f"p with {p.k} factors of size {p.factor_size} and q with {q.k} of size {q.factor_size}"
        )
    # the factors are the last batch axis of both bases: one pairwise KL call, summed over it
    return kl_divergence(p.base, q.base).sum(-1)
