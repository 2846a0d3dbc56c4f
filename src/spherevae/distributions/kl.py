r"""KL divergences between the distributions of this package, registered with ``torch.distributions``.

With ``v = m/2 - 1``, ``A = A_m(kappa)`` and ``g(kappa) = log 0F1(; m/2; kappa^2/4)`` (so that the vMF
log-normaliser is ``log area + g``):

- ``KL(vMF(mu, k) || U) = k A - g(k)``: both terms are ``O(k^2 / m)`` at small ``k``, so no digits are
  lost there (the textbook ``k A + log C + log area`` subtracts numbers of size ``m log k``);
- ``KL(vMF(mu1, k1) || vMF(mu2, k2)) = k1 A1 - k2 A1 (mu1 . mu2) + g(k2) - g(k1)``;
- ``KL(PS || U) = log area - H(PS)``;
- ``KL(PS(mu1, k1) || vMF(mu2, k2)) = -H(PS) - k2 (mu2 . E_PS[x]) + log area + g(k2)``;
- ``KL(product || product) = sum of the factors' KLs``, for
  :class:`~spherevae.distributions.ProductDistribution` and
  :class:`~spherevae.distributions.StackedProduct` (whose factors are one call of the base's KL).

All are computed in float64 (float32 on MPS) and returned in the parameters' dtype.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Distribution, kl_divergence, register_kl

from ..special import ive_ratio, kl_to_uniform, log_iv_normalized
from ._utils import broadcast_shapes, log_sphere_area, work_dtype
from .power_spherical import PowerSpherical
from .product import ProductDistribution
from .stacked import StackedProduct
from .uniform import HypersphericalUniform
from .von_mises_fisher import VonMisesFisher

__all__: list[str] = []


def _check_dims(p: Distribution, q: Distribution) -> int:
    dp, dq = int(p.event_shape[0]), int(q.event_shape[0])
    if dp != dq:
        raise ValueError(
            f"KL divergence needs distributions on the same sphere, got p of dimension {dp} "
            f"({type(p).__name__}) and q of dimension {dq} ({type(q).__name__})"
        )
    return dp


def _batch(x: Tensor, q: Distribution) -> Tensor:
    shape = broadcast_shapes(x.shape, q.batch_shape)
    return x if shape == x.shape else x.expand(shape)


@register_kl(VonMisesFisher, HypersphericalUniform)
def _kl_vmf_uniform(p: VonMisesFisher, q: HypersphericalUniform) -> Tensor:
    _check_dims(p, q)
    # value and derivative from the Bessel terms that the distribution shares with its sampler
    return _batch(kl_to_uniform(p._order, p.concentration, p._bessel_terms()), q)


@register_kl(VonMisesFisher, VonMisesFisher)
def _kl_vmf_vmf(p: VonMisesFisher, q: VonMisesFisher) -> Tensor:
    m = _check_dims(p, q)
    work = work_dtype(p.loc.device)
    k1, k2 = p.concentration.to(work), q.concentration.to(work)
    a1 = ive_ratio(m / 2 - 1, k1)
    cos = (p.loc.to(work) * q.loc.to(work)).sum(-1)
    out = (
        k1 * a1
        - k2 * a1 * cos
        + log_iv_normalized(m / 2 - 1, k2)
        - log_iv_normalized(m / 2 - 1, k1)
    )
    return out.to(torch.promote_types(p.loc.dtype, q.loc.dtype))


@register_kl(PowerSpherical, HypersphericalUniform)
def _kl_ps_uniform(p: PowerSpherical, q: HypersphericalUniform) -> Tensor:
    _check_dims(p, q)
    # log area - H in closed form, with its derivative (one autograd node)
    return _batch(p._kl_to_uniform(), q)


@register_kl(PowerSpherical, VonMisesFisher)
def _kl_ps_vmf(p: PowerSpherical, q: VonMisesFisher) -> Tensor:
    m = _check_dims(p, q)
    work = work_dtype(p.loc.device)
    k2 = q.concentration.to(work)
    mean = p.mean.to(work)
    out = (
        -p.entropy().to(work)
        - k2 * (q.loc.to(work) * mean).sum(-1)
        + log_sphere_area(m)
        + log_iv_normalized(m / 2 - 1, k2)
    )
    return out.to(torch.promote_types(p.loc.dtype, q.loc.dtype))


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
        return _batch(terms[0], q)
    return torch.stack(torch.broadcast_tensors(*terms)).sum(0)


@register_kl(StackedProduct, StackedProduct)
def _kl_stacked_stacked(p: StackedProduct, q: StackedProduct) -> Tensor:
    if (p.k, p.factor_size) != (q.k, q.factor_size):
        raise ValueError(
            f"KL divergence between stacked products needs the same number and size of factors, got "
            f"p with {p.k} factors of size {p.factor_size} and q with {q.k} of size {q.factor_size}"
        )
    # the factors are the last batch axis of both bases: one pairwise KL call, summed over it
    return kl_divergence(p.base, q.base).sum(-1)
