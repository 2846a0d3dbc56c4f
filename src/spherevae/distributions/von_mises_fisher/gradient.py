r"""The gradient of a von Mises-Fisher sample in its concentration (implicit reparameterisation).

For a sample ``theta`` with CDF ``F(theta; kappa)``, ``d theta / d kappa = -(dF/dkappa) / p(theta)``
(Figurnov et al. 2018), and ``dF/dkappa (theta) = int_0^theta (cos phi - A) p(phi) dphi`` because
``d log p / d kappa = cos phi - A`` (``A = E[w]``). This is the exact gradient of the sample for every
sampler (it depends on the sample, not on how it was drawn), so the estimator is unbiased, unlike the
pathwise term of the rejection sampler alone. The integral is taken from the end of ``[0, pi]`` on the
same side of ``theta* = arccos A`` as the sample, where ``cos phi - A`` does not change sign: a sum of
terms of one sign, never the difference of two large integrals. Small draws take one quadrature per
sample (:func:`dtheta_dkappa_direct`), large ones a grid per row (:class:`MarginalGrid`).

References:
    M. Figurnov, S. Mohamed, A. Mnih (2018), Implicit reparameterization gradients, NeurIPS.
    T. R. Davidson, L. Falorsi, N. De Cao, T. Kipf, J. M. Tomczak (2018), Hyperspherical variational
    auto-encoders, UAI.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ...special import BesselTerms, mean_resultant_terms
from .marginal import (
    GL_NODES,
    angle_terms,
    decay_length,
    gauss_legendre_rule,
    log_density,
    log_density_theta,
    quadrature,
    theta_from_t,
)

# per-sample gradient quadrature: one Gauss-Legendre panel of 20 nodes over the stretch where the
# integrand is above exp(-60) of its value at the sample (measured against a 24-panel x 20-node rule
# over m in [2, 20000], kappa in [0, 1e6], samples and points across the support: relative error <= 2e-8)
DIRECT_NODES = 20
_DIRECT_LOG_DECAY = 60.0


# for parameters in single precision: 12 nodes over the stretch down to exp(-30), relative error
# <= 1e-6 against the rule above over the same range (m in {2, ..., 20000}, kappa in {1e-3, ..., 1e6},
# quantiles 0 to 1 of a sample; tests/test_vmf_sampling.py), a few ulps of float32, for 40% fewer
# transcendental evaluations
DIRECT_NODES_SINGLE = 12
_DIRECT_LOG_DECAY_SINGLE = 30.0


# below this many samples per batch element the per-sample quadrature (20 density evaluations a
# sample) is cheaper than tabulating the grid (512 evaluations a batch element, then 8 a sample)
DIRECT_GRADIENT_MAX_SAMPLES = 32

_GRID_CELLS = 64
_GRID_HALF_WIDTH_SD = 50.0  # the grid covers E[w] +- 50 sd(w): the tail mass outside is negligible


class _Support:
    """Where the marginal of ``theta`` lives: ``E[w] +- 50 sd(w)`` mapped to ``theta``; ``theta* = arccos A``.

    ``theta*`` is where the score ``d log p / d kappa = cos theta - A`` changes sign.
    """

    def __init__(self, kappa: Tensor, m: int, terms: BesselTerms | None = None) -> None:
        if terms is None:
            _, one_minus_mean, _, var = mean_resultant_terms(m / 2 - 1, kappa)
        else:  # the caller's terms of these concentrations: A' from them, no Bessel evaluation
            one_minus_mean = terms.complement
            var = terms.ratio_derivative(m / 2 - 1)
        self.one_minus_mean = one_minus_mean
        sd = torch.sqrt(var.clamp(min=0.0))
        self.theta_lo = theta_from_t((one_minus_mean - _GRID_HALF_WIDTH_SD * sd).clamp(min=0.0))
        self.theta_hi = theta_from_t((one_minus_mean + _GRID_HALF_WIDTH_SD * sd).clamp(max=2.0))
        self.theta_star = theta_from_t(one_minus_mean)


def _gl_nodes(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Gauss-Legendre nodes ``(..., k)`` and weights for ``int_a^b`` (oriented: ``b < a`` is allowed)."""
    nodes, weights = gauss_legendre_rule(GL_NODES, a.dtype, a.device)
    length = (b - a).unsqueeze(-1)
    return torch.addcmul(a.unsqueeze(-1), length, nodes), (0.5 * length) * weights


def dtheta_dkappa_direct(
    t: Tensor,
    kappa: Tensor,
    m: int,
    one_minus_mean: Tensor | None = None,
    single: bool = False,
) -> Tensor:
    """Implicit derivative ``dtheta/dkappa`` of samples ``t = 1 - w`` ``(B, n)``, one quadrature per sample.

    The derivative of the angle ``theta = arccos w``, not of ``t``: ``dt/dkappa = sin(theta)
    dtheta/dkappa`` vanishes at the poles (``theta = 0, pi``) where ``dz/dt`` is infinite, and the
    placement forms ``dL/dtheta`` (bounded) instead of multiplying the two (:class:`PlaceOnSphere`).

    ``d theta / d kappa = int_theta^end (cos phi - A) p(phi) / p(theta) d phi``, oriented, with ``end``
    the end of ``[0, pi]`` on the sample's side of ``theta* = arccos A`` (so the integrand has one sign;
    the sample is left of ``theta*`` exactly when ``t <= 1 - A``). The integrand is cut where it has
    fallen below ``exp(-60)`` of its value at ``theta``, a distance ``D`` away
    (:func:`decay_length`). One 20-node Gauss-Legendre panel over ``[theta, theta +- D]`` then matches
    a 24-panel reference to 2e-8 (relative) over the whole range of ``m`` and ``kappa``. The angle terms at the sample come
    from ``t`` itself: ``sin^2(theta / 2) = t / 2``, ``cos theta = 1 - t``, ``sin^2 theta = t (2 - t)``.
    ``one_minus_mean``: ``1 - A`` ``(B,)`` (cancellation-free), if the caller has it already.
    ``single``: the result serves parameters in single precision; a 12-node panel down to ``exp(-30)``
    then keeps a relative error below ``1e-6`` (the values are still computed in ``t``'s dtype).
    """
    nodes, decay = (
        (DIRECT_NODES_SINGLE, _DIRECT_LOG_DECAY_SINGLE)
        if single
        else (DIRECT_NODES, _DIRECT_LOG_DECAY)
    )
    if one_minus_mean is None:
        _, one_minus_mean, _, _ = mean_resultant_terms(m / 2 - 1, kappa)
    k = kappa.unsqueeze(-1)
    one_minus_mean = one_minus_mean.unsqueeze(-1)
    t = t.clamp(0.0, 2.0)
    # 2 - t is exact where t is close to 2 and 1 - t where t is far from 0: sin theta keeps its
    # relative digits at both ends and cos theta its absolute ones, so atan2 of the two is accurate
    sin_sq = t * (2 - t)
    sin = sin_sq.sqrt()
    cos = 1 - t
    theta = torch.atan2(sin, cos)
    left = t <= one_minus_mean
    # +-1 (exact in the default dtype): -1 where the integral runs left, towards theta = 0
    side = torch.where(left, -1.0, 1.0)
    cut = decay_length(k, sin, cos, m, side, decay)
    # a non-finite cut (sin underflowing at the very ends, or a flat density) is replaced by the
    # whole stretch to the end: fmin returns its other argument where one is NaN
    length = torch.fmin(torch.where(left, theta, math.pi - theta), cut)
    half_length = length.mul_(side).mul_(0.5)
    # log p(theta) on quadrature's scale: -kappa t + ((m - 2) / 2) log(sin^2 theta / 4)
    if m > 2:
        log_p_theta = torch.log(0.25 * sin_sq).mul_(0.5 * (m - 2)).addcmul_(k, t, value=-1)
    else:
        log_p_theta = torch.mul(k, t).neg_()
    dtheta = quadrature(
        theta,
        half_length,
        nodes,
        k.unsqueeze(-1),
        m,
        log_p_theta.unsqueeze(-1),
        one_minus_mean.unsqueeze(-1),
    )
    return dtheta


def dtheta_dkappa(
    t: Tensor,
    kappa: Tensor,
    m: int,
    terms: BesselTerms | None = None,
    single: bool = False,
) -> Tensor:
    """``dtheta/dkappa`` for samples ``t`` ``(B, n)``: per-sample quadrature up to
    ``DIRECT_GRADIENT_MAX_SAMPLES`` samples a row, else from a :class:`MarginalGrid` per row.

    ``terms``: ``spherevae.special.bessel_terms(m / 2 - 1, kappa)`` (``(B,)`` each) if known: neither
    way then needs a Bessel evaluation of its own. ``single``: see :func:`dtheta_dkappa_direct`.
    """
    if t.shape[-1] <= DIRECT_GRADIENT_MAX_SAMPLES:
        return dtheta_dkappa_direct(
            t, kappa, m, None if terms is None else terms.complement, single
        )
    return MarginalGrid(kappa, m, terms).dtheta_dkappa(t)


class MarginalGrid:
    """The CDF's derivative in ``kappa``, tabulated per batch element: the gradient of large draws.

    Cumulative integrals of ``(cos theta - A) p(theta)`` over 64 cells of 8-point Gauss-Legendre
    quadrature each, spanning ``E[w] +- 50 sd(w)`` mapped to ``theta``; a sample's ``dtheta/dkappa`` is
    the cells' sum to its end of the support plus one 8-point integral within its cell.

    Args:
        kappa: ``(B,)`` concentrations (float64, no grad).
        m: ambient dimension.
        terms: ``spherevae.special.bessel_terms(m / 2 - 1, kappa)`` if the caller has them (the grid
            then needs no Bessel evaluation of its own).
    """

    def __init__(self, kappa: Tensor, m: int, terms: BesselTerms | None = None) -> None:
        self.kappa, self.m = kappa, m
        support = _Support(kappa, m, terms)
        self.one_minus_mean = one_minus_mean = support.one_minus_mean
        self.theta_lo, self.theta_star = support.theta_lo, support.theta_star
        self.width = (support.theta_hi - self.theta_lo) / _GRID_CELLS

        edges = self.theta_lo.unsqueeze(-1) + self.width.unsqueeze(-1) * torch.arange(
            _GRID_CELLS + 1, dtype=kappa.dtype, device=kappa.device
        )
        nodes, weights = _gl_nodes(edges[..., :-1], edges[..., 1:])
        t_nodes, sin_nodes = angle_terms(nodes)
        log_p = log_density(t_nodes, sin_nodes, kappa[:, None, None], m)
        self.log_p_ref = log_p.amax(dim=(-1, -2))
        self.log_p_ref_reduced = self.log_p_ref - (m - 2) * math.log(2.0)  # for quadrature
        dens = torch.exp(log_p - self.log_p_ref[:, None, None])
        grad_mass = (weights * dens * (one_minus_mean[:, None, None] - t_nodes)).sum(-1)
        zero = torch.zeros_like(kappa).unsqueeze(-1)
        self.cum_grad_left = torch.cat([zero, grad_mass.cumsum(-1)], dim=-1)
        self.cum_grad_right = torch.cat([grad_mass.flip(-1).cumsum(-1).flip(-1), zero], dim=-1)

    def _density(self, theta: Tensor) -> Tensor:
        """Unnormalised density at ``theta`` of shape ``(B, n)``, on the grid's scale."""
        return torch.exp(
            log_density_theta(theta, self.kappa[:, None], self.m) - self.log_p_ref[:, None]
        )

    def _score_integral(self, a: Tensor, b: Tensor) -> Tensor:
        """``int_a^b (cos - A) p`` over ``(B, n)`` intervals (8-point Gauss-Legendre)."""
        return quadrature(
            a,
            (b - a) / 2,
            GL_NODES,
            self.kappa[:, None, None],
            self.m,
            self.log_p_ref_reduced[:, None, None],
            self.one_minus_mean[:, None, None],
        )

    def _cell(self, theta: Tensor) -> Tensor:
        j = torch.floor((theta - self.theta_lo[:, None]) / self.width[:, None].clamp(min=1e-300))
        return j.clamp(0, _GRID_CELLS - 1).long()

    def dtheta_dkappa(self, t: Tensor) -> Tensor:
        """Implicit derivative ``dtheta/dkappa`` of samples ``t = 1 - w`` of shape ``(B, n)``."""
        theta = theta_from_t(t)
        j = self._cell(theta)
        a = self.theta_lo[:, None] + self.width[:, None] * j
        b = a + self.width[:, None]
        # one oriented integral, towards the end of the support on the sample's side of theta*:
        # -(cum_left[j] + int_a^theta) = -cum_left[j] + int_theta^a, and cum_right[j+1] + int_theta^b
        use_left = theta <= self.theta_star[:, None]
        edge = torch.where(use_left, a, b)
        cumulative = torch.where(
            use_left, -self.cum_grad_left.gather(-1, j), self.cum_grad_right.gather(-1, j + 1)
        )
        dens = self._density(theta)
        dtheta = (cumulative + self._score_integral(theta, edge)) / dens.clamp(min=1e-300)
        # samples so deep in a tail that their density underflows carry no usable gradient
        return torch.where(dens > 0, dtheta, torch.zeros_like(dtheta))
