"""Products of independent distributions, such as ``S^4 x S^4`` or ``S^9 x R^5``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints, kl_divergence, register_kl
from torch.types import _size

from .constraints import ProductSupport
from .power_spherical import PowerSpherical
from .sphere import broadcast_shapes, broadcast_to_batch, check_vector_distribution
from .uniform import HypersphericalUniform
from .von_mises_fisher import VonMisesFisher, share_bessel_terms

__all__ = ["ProductDistribution"]


class ProductDistribution(Distribution):
    r"""Product of independent factors whose events are concatenated along the last axis.

    Each factor has a one-dimensional event shape ``(d_i,)``: :class:`VonMisesFisher`,
    :class:`PowerSpherical`, :class:`HypersphericalUniform`, or a Gaussian as
    ``Independent(Normal(loc, scale), 1)``. The product's event shape is ``(sum_i d_i,)`` and its batch
    shape the broadcast of the factors' batch shapes.

    Math:
        ``log p(x) = sum_i log p_i(x_i)``, ``H = sum_i H_i``, ``E[x] = concat_i E[x_i]``, and
        ``KL(p || q) = sum_i KL(p_i || q_i)`` for products with matching factors.

    Factors of the same family and dimension (von Mises-Fisher with the same sampler, or Power
    Spherical) are stacked and sampled in one batched call, so ``S^4 x S^4 x ...`` costs one sampler
    launch rather than one per factor.

    Args:
        components: the factors, in the order of their coordinates.
        validate_args: check samples in :meth:`log_prob` (default as ``torch.distributions``).

    Raises:
        ValueError: if ``components`` is empty, a factor is not a ``Distribution``, or a factor's event
            is not one-dimensional, or the batch shapes do not broadcast.
    """

    arg_constraints: dict[str, constraints.Constraint] = {}

    def __init__(
        self, components: Sequence[Distribution], *, validate_args: bool | None = None
    ) -> None:
        components = list(components)
        if not components:
            raise ValueError("components must be a non-empty sequence of distributions, got []")
        for i, c in enumerate(components):
            check_vector_distribution(c, f"components[{i}]")
        try:
            batch_shape = broadcast_shapes(*(c.batch_shape for c in components))
        except RuntimeError as err:
            shapes = [tuple(c.batch_shape) for c in components]
            raise ValueError(
                f"components have batch shapes that do not broadcast: {shapes}"
            ) from err
        self.components = [
            c.expand(batch_shape) if c.batch_shape != batch_shape else c for c in components
        ]
        self.sizes = [int(c.event_shape[0]) for c in self.components]
        super().__init__(batch_shape, torch.Size([sum(self.sizes)]), validate_args=validate_args)

    @property
    def has_rsample(self) -> bool:  # type: ignore[override]
        return all(c.has_rsample for c in self.components)

    @constraints.dependent_property(is_discrete=False, event_dim=1)
    def support(self) -> constraints.Constraint:
        parts: list[constraints.Constraint] = [c.support for c in self.components]  # type: ignore[misc]
        return ProductSupport(parts, self.sizes)

    def expand(
        self,
        batch_shape: _size,
        _instance: ProductDistribution | None = None,
    ) -> ProductDistribution:
        new: ProductDistribution = self._get_checked_instance(ProductDistribution, _instance)
        batch_shape = torch.Size(batch_shape)
        new.components = [c.expand(batch_shape) for c in self.components]
        new.sizes = list(self.sizes)
        super(ProductDistribution, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _split(self, value: Tensor) -> list[Tensor]:
        return list(torch.split(value, self.sizes, dim=-1))

    def _groups(self) -> dict[tuple[object, ...], list[int]]:
        """Indices of factors that can be sampled together, keyed by family, dimension and sampler."""
        groups: dict[tuple[object, ...], list[int]] = {}
        for i, c in enumerate(self.components):
            if type(c) is VonMisesFisher:
                key: tuple[object, ...] = (VonMisesFisher, c.dim, c.sampler, c.mh_steps)
            elif type(c) is PowerSpherical:
                key = (PowerSpherical, c.dim)
            else:
                key = ("single", i)
            groups.setdefault(key, []).append(i)
        return groups

    def _stacked(self, idx: list[int]) -> Distribution:
        """The factors ``idx`` (same family, dimension and sampler) stacked along a new leading batch axis.

        :meth:`rsample` and the KL divergence each evaluate all members in one call of it. The Bessel
        terms of von Mises-Fisher members are shared (:func:`share_bessel_terms`): the first stacked
        distribution evaluates them once and hands each member its slice; a later one (the KL's after
        the sampler's) takes the members' terms back, stacked, without evaluating them again.
        """
        members = [self.components[i] for i in idx]
        first = members[0]
        loc = torch.stack([c.loc for c in members])  # type: ignore[union-attr]
        kappa = torch.stack([c.concentration for c in members])  # type: ignore[union-attr]
        if isinstance(first, VonMisesFisher):
            stacked = VonMisesFisher(
                loc, kappa, sampler=first.sampler, mh_steps=first.mh_steps, validate_args=False
            )
            if torch.is_grad_enabled() and kappa.requires_grad:
                share_bessel_terms(members, stacked)  # type: ignore[arg-type]
            return stacked
        return PowerSpherical(loc, kappa, validate_args=False)

    def _stackable(self, idx: list[int]) -> bool:
        return len(idx) > 1 and isinstance(self.components[idx[0]], VonMisesFisher | PowerSpherical)

    def _draw(self, sample_shape: torch.Size, reparameterized: bool) -> Tensor:
        parts: list[Tensor | None] = [None] * len(self.components)
        for idx in self._groups().values():
            if self._stackable(idx):
                # the factors stacked along a new leading batch axis, sampled in one call
                stacked = self._stacked(idx)
                draw = (
                    stacked.rsample(sample_shape)
                    if reparameterized
                    else stacked.sample(sample_shape)
                )
                for j, i in enumerate(idx):
                    parts[i] = draw.select(len(sample_shape), j)
            else:
                for i in idx:
                    c = self.components[i]
                    parts[i] = (
                        c.rsample(sample_shape) if reparameterized else c.sample(sample_shape)
                    )
        return torch.cat([p for p in parts if p is not None], dim=-1)

    def rsample(self, sample_shape: _size = ()) -> Tensor:
        if not self.has_rsample:
            raise NotImplementedError("a factor of this product has no rsample")
        return self._draw(torch.Size(sample_shape), reparameterized=True)

    def sample(self, sample_shape: _size = ()) -> Tensor:
        with torch.no_grad():
            return self._draw(torch.Size(sample_shape), reparameterized=False)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        parts = self._split(value)
        return torch.stack(
            torch.broadcast_tensors(
                *(c.log_prob(x) for c, x in zip(self.components, parts, strict=True))
            )
        ).sum(0)

    def entropy(self) -> Tensor:
        return torch.stack([c.entropy() for c in self.components]).sum(0)

    @property
    def mean(self) -> Tensor:
        return torch.cat([c.mean for c in self.components], dim=-1)

    @property
    def mode(self) -> Tensor:
        return torch.cat([c.mode for c in self.components], dim=-1)

    @property
    def variance(self) -> Tensor:
        return torch.cat([c.variance for c in self.components], dim=-1)


@register_kl(ProductDistribution, ProductDistribution)
def _kl_product_product(p: ProductDistribution, q: ProductDistribution) -> Tensor:
    if p.sizes != q.sizes:
        raise ValueError(
            f"KL divergence between products needs the same factor dimensions, got {p.sizes} and {q.sizes}"
        )
    terms: list[Tensor] = []
    for idx in p._groups().values():
        if p._stackable(idx) and all(type(q.components[i]) is HypersphericalUniform for i in idx):
            # stacked sphere factors against uniforms: one KL evaluation for the whole group
            # (sharing the stacked distribution with the sampler), summed over the stacking axis
            terms.append(kl_divergence(p._stacked(idx), q.components[idx[0]]).sum(0))
        else:
            terms.extend(kl_divergence(p.components[i], q.components[i]) for i in idx)
    if len(terms) == 1:
        return broadcast_to_batch(terms[0], q)
    return torch.stack(torch.broadcast_tensors(*terms)).sum(0)
