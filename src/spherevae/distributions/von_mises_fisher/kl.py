r"""KL divergences of the von Mises-Fisher distribution, registered with ``torch.distributions``.

With ``v = m/2 - 1``, ``A = A_m(kappa)`` and ``g(kappa) = log 0F1(; m/2; kappa^2/4)`` (so that the vMF
log-normaliser is ``log area + g``):

- ``KL(vMF(mu, k) || U) = k A - g(k)``: both terms are ``O(k^2 / m)`` at small ``k``, so no digits are
  lost there (the textbook ``k A + log C + log area`` subtracts numbers of size ``m log k``);
- ``KL(vMF(mu1, k1) || vMF(mu2, k2)) = KL(vMF1 || U) + g(k2) - k2 A1 c``, ``c = mu1 . mu2``;
- ``KL(U || vMF(mu, k)) = g(k)`` (``E_U[mu . x] = 0``): the uniform is the vMF at ``k = 0``.

In the KLs to a vMF, ``g(k2) - k2 A c`` (:func:`cross_term`, shared with the Power Spherical's KL to
a vMF) is a difference of numbers of size ``k2`` that agree to ``O(log k2)`` when the two
distributions are close: from ``k2 = 1e6`` on it is formed as ``(g(k2) - k2) + k2 ((1 - c) + c (1 -
A))`` from the cancellation-free ``g - z`` and ``1 - A`` of :class:`~spherevae.special.BesselTerms` and
``1 - c = |mu1 - mu2|^2 / 2`` (exactly 0 for equal directions); below, as written, which loses at most
about ``1e-10`` there and keeps the digits of a small ``k2``. Off the sphere the two forms extend
differently: their gradients in the mean directions agree up to multiples of the directions
themselves (as for ``VonMisesFisher.log_prob``). All are computed in float64 (float32 on MPS) and
returned in the parameters' dtype.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import register_kl

from ...special import kl_to_uniform, term_of
from ..sphere import broadcast_to_batch, check_same_sphere, work_dtype
from ..uniform import HypersphericalUniform
from .distribution import VonMisesFisher

# the KL divergences to a vMF take the form without terms of size k2 from this k2 on (module docstring)
_LARGE_FORM_FROM = 1e6


@register_kl(VonMisesFisher, HypersphericalUniform)
def _kl_vmf_uniform(p: VonMisesFisher, q: HypersphericalUniform) -> Tensor:
    check_same_sphere(p, q)
    # value and derivative from the Bessel terms that the distribution shares with its sampler
    return broadcast_to_batch(kl_to_uniform(p.order, p.concentration, p.bessel_terms()), q)


def cross_term(
    q: VonMisesFisher, k2: Tensor, p_loc: Tensor, mean: Tensor, one_minus_mean: Tensor
) -> Tensor:
    """``g(k2) - k2 A c`` for ``q = vMF(mu2, k2)`` (``k2`` in the working dtype), ``c = mu1 . mu2`` and the
    mean resultant length ``A`` of ``p`` (with its complement ``1 - A``): as written for ``k2 <= 1e6``,
    else as ``(g(k2) - k2) + k2 ((1 - c) + c (1 - A))`` (module docstring). Both forms are evaluated and
    merged with ``torch.where`` (differentiable in every argument)."""
    v = q.order
    terms = q.bessel_terms()
    q_loc = q.loc.to(k2.dtype)
    cos = (p_loc * q_loc).sum(-1)
    diff = p_loc - q_loc
    one_minus_cos = 0.5 * torch.linalg.vecdot(diff, diff)
    small = term_of(terms, "log_normalized", v, k2) - k2 * mean * cos
    large = term_of(terms, "log_scaled", v, k2) + k2 * (one_minus_cos + cos * one_minus_mean)
    return torch.where(k2 > _LARGE_FORM_FROM, large, small)


@register_kl(VonMisesFisher, VonMisesFisher)
def _kl_vmf_vmf(p: VonMisesFisher, q: VonMisesFisher) -> Tensor:
    check_same_sphere(p, q)
    work = work_dtype(p.loc.device)
    k1, k2 = p.concentration.to(work), q.concentration.to(work)
    terms = p.bessel_terms()  # shared with p's sampler and its KL to the uniform
    v = p.order
    mean, one_minus_mean = term_of(terms, "ratio", v, k1), term_of(terms, "complement", v, k1)
    cross = cross_term(q, k2, p.loc.to(work), mean, one_minus_mean)
    out = kl_to_uniform(v, k1, terms) + cross
    return out.to(torch.promote_types(p.loc.dtype, q.loc.dtype))


@register_kl(HypersphericalUniform, VonMisesFisher)
def _kl_uniform_vmf(p: HypersphericalUniform, q: VonMisesFisher) -> Tensor:
    # E_U[mu . x] = 0, so KL = log Z(k) - log area = g(k), with its derivative R(k) from q's terms
    check_same_sphere(p, q)
    k = q.concentration.to(work_dtype(q.loc.device))
    out = term_of(q.bessel_terms(), "log_normalized", q.order, k).to(q.loc.dtype)
    return broadcast_to_batch(out, p)
