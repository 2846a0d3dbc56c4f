r"""KL divergences between the distributions of this package, registered with ``torch.distributions``.

With ``v = m/2 - 1``, ``A = A_m(kappa)`` and ``g(kappa) = log 0F1(; m/2; kappa^2/4)`` (so that the vMF
log-normaliser is ``log area + g``):

- ``KL(vMF(mu, k) || U) = k A - g(k)``: both terms are ``O(k^2 / m)`` at small ``k``, so no digits are
  lost there (the textbook ``k A + log C + log area`` subtracts numbers of size ``m log k``);
- ``KL(vMF(mu1, k1) || vMF(mu2, k2)) = k1 A1 - k2 A1 (mu1 . mu2) + g(k2) - g(k1) = KL(vMF1 || U) + g(k2) -
  k2 A1 c``, ``c = mu1 . mu2``;
- ``KL(PS || U) = log area - H(PS)``;
- ``KL(PS(mu1, k1) || vMF(mu2, k2)) = -H(PS) - k2 (mu2 . E_PS[x]) + log area + g(k2) = KL(PS || U) + g(k2) -
  k2 A c`` with ``A = k1 / (m - 1 + k1)``.

In both KLs to a vMF, ``g(k2) - k2 A c`` is a difference of numbers of size ``k2`` that agree to
``O(log k2)`` when the two distributions are close: from ``k2 = 1e6`` on it is formed as ``(g(k2) - k2)
+ k2 ((1 - c) + c (1 - A))`` from the cancellation-free ``g - z`` and ``1 - A`` of
:class:`~spherevae.special.BesselTerms` and ``1 - c = |mu1 - mu2|^2 / 2`` (exactly 0 for equal
directions); below, as written, which loses at most about ``1e-10`` there and keeps the digits of a
small ``k2`` (where ``g - z`` would carry an absolute error of ``1e-16 k2`` into a result of order
``k2^2``). Off the sphere the two forms extend differently: their gradients in the mean directions
agree up to multiples of the directions themselves (as for ``VonMisesFisher.log_prob``).
- ``KL(product || product) = sum of the factors' KLs``, for
  :class:`~spherevae.distributions.ProductDistribution` and
  :class:`~spherevae.distributions.StackedProduct` (whose factors are one call of the base's KL).

All are computed in float64 (float32 on MPS) and returned in the parameters' dtype.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Distribution, kl_divergence, register_kl

from ..special import kl_to_uniform, term_of
from ._utils import broadcast_shapes, work_dtype
from .power_spherical import KlToUniform, PowerSpherical, mean_complement
from .product import ProductDistribution
from .stacked import StackedProduct
from .uniform import HypersphericalUniform
from .von_mises_fisher import VonMisesFisher

__all__: list[str] = []

# the KL divergences to a vMF take the form without terms of size k2 from this k2 on (module docstring)
_LARGE_FORM_FROM = 1e6


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


def _cross_term(
    q: VonMisesFisher, k2: Tensor, p_loc: Tensor, mean: Tensor, one_minus_mean: Tensor
) -> Tensor:
    """``g(k2) - k2 A c`` for ``q = vMF(mu2, k2)`` (``k2`` in the working dtype), ``c = mu1 . mu2`` and the
    mean resultant length ``A`` of ``p`` (with its complement ``1 - A``): as written for ``k2 <= 1e6``,
    else as ``(g(k2) - k2) + k2 ((1 - c) + c (1 - A))`` (module docstring). Both forms are evaluated and
    merged with ``torch.where`` (differentiable in every argument)."""
    v = q._order
    terms = q._bessel_terms()
    q_loc = q.loc.to(k2.dtype)
    cos = (p_loc * q_loc).sum(-1)
    diff = p_loc - q_loc
    one_minus_cos = 0.5 * torch.linalg.vecdot(diff, diff)
    small = term_of(terms, "log_normalized", v, k2) - k2 * mean * cos
    large = term_of(terms, "log_scaled", v, k2) + k2 * (one_minus_cos + cos * one_minus_mean)
    return torch.where(k2 > _LARGE_FORM_FROM, large, small)


@register_kl(VonMisesFisher, VonMisesFisher)
def _kl_vmf_vmf(p: VonMisesFisher, q: VonMisesFisher) -> Tensor:
    _check_dims(p, q)
    work = work_dtype(p.loc.device)
    k1, k2 = p.concentration.to(work), q.concentration.to(work)
    terms = p._bessel_terms()  # shared with p's sampler and its KL to the uniform
    v = p._order
    mean, one_minus_mean = term_of(terms, "ratio", v, k1), term_of(terms, "complement", v, k1)
    cross = _cross_term(q, k2, p.loc.to(work), mean, one_minus_mean)
    out = kl_to_uniform(v, k1, terms) + cross
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
    k1, k2 = p.concentration.to(work), q.concentration.to(work)
    # E_PS[mu1 . x] = k1 / (m - 1 + k1), and its complement (m - 1) / (m - 1 + k1), whose derivative is
    # formed so that it does not underflow (or overflow) where k2 times it is representable
    mean, one_minus_mean = k1 / (k1 + (m - 1)), mean_complement(k1, m)
    kl_uniform: Tensor = KlToUniform.apply(k1, m, work)
    out = kl_uniform + _cross_term(q, k2, p.loc.to(work), mean, one_minus_mean)
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
