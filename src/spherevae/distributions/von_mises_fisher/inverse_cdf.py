r"""Inversion of the CDF of ``theta = arccos(mu . x)`` under a von Mises-Fisher distribution, per sample.

In the angle the density on ``S^{m-1}`` is proportional to ``p(theta) = exp(-kappa (1 - cos theta))
sin^{m-2} theta`` on ``[0, pi]`` (see :mod:`._vmf_marginal`). A quantile ``u`` is found by Newton's
method on the logarithm of the tail mass on the side of ``u``: for ``u < 1/2`` the left tail
``T = L(theta) = int_0^theta p`` with the target ``u Z``, otherwise the right tail ``T = R(theta) =
int_theta^pi p`` with the target ``(1 - u) Z`` (``Z`` the total mass). The variable is the log of the
distance ``phi`` to that end of ``[0, pi]`` (``phi = theta`` on the left, ``pi - theta`` on the right):

    ``g(phi) = log T(phi) - log target``, ``dg / dlog phi = phi p / T``,
    ``phi <- phi exp(-g T / (phi p))``.

Why this form:

- The targets ``u Z`` and ``(1 - u) Z`` are both formed without cancellation (``1 - u`` is exact for
  ``u >= 1/2``), and each tail mass is a sum of positive terms from its end, so the relative accuracy
  of ``t`` holds from ``u = 1e-300`` to ``1 - 1e-16``. The split at ``u = 1/2`` (not at the mode) keeps
  ``m = 2``, whose mode is 0, on the left tail for small ``u``.
- Near an end ``T`` is a power of ``phi`` (``L ~ theta^{m-1}`` at 0, ``R ~ (pi - theta)^{m-1}`` at
  ``pi``), for which the step in ``log phi`` is exact. Every left-side sample lies left of the median,
  which is at most ``pi / 2``; there ``p(e^r) e^r`` is log-concave in ``r``, hence so is ``L(e^s)``
  (Prekopa), and Newton on the concave increasing ``g(s)`` lands left of the root after its first
  step and then rises monotonically to it. Exponential and Gaussian tails (large ``kappa``) make
  ``log T`` nearly linear or quadratic in ``phi``, where Newton converges in a few steps.
- ``T / p(theta)`` is one Gauss-Legendre panel of 24 nodes from ``theta`` towards the end, cut where the
  integrand has fallen by ``exp(-90)`` according to the quadratic model of :func:`._vmf_marginal.
  decay_length` and bounded by ``phi``. The cut of ``exp(-60)`` that serves the gradient is too short
  here: at ``m = 3, kappa = 10, u = 1/2`` the curvature ``(m - 2) / sin^2`` at the sample overstates the
  decay further out, and the truncated mass is ``1e-9`` of the tail. The sample itself is the panel's
  first point (weight 0), so ``p(theta)`` comes with the panel's density values at no extra
  operation, and the panel's values are scaled by ``p(theta)``: the panel gives ``T / p(theta)``,
  which is both the Newton step's ``1 / g'`` factor and, through its log, ``g``.
- ``Z`` has a closed form: ``int_0^pi exp(-kappa (1 - cos theta)) sin^{m-2} theta dtheta = sqrt(pi)
  Gamma((m-1)/2) / Gamma(m/2) exp(log 0F1(; m/2; kappa^2/4) - kappa)``, from the ``log_scaled`` (``log
  0F1 - kappa``, formed without that subtraction) of :class:`~spherevae.special.BesselTerms` that the
  distribution evaluates once a step for its KL divergence (no Bessel evaluation here when they are
  passed in).
- Beyond :func:`._vmf_marginal.limit_concentration` (``kappa`` from ``1e6`` to ``6e11`` for ``m`` up to
  1024, where the law of ``t`` is a scaled gamma law to rounding) a row is inverted at the limit and
  ``t`` scaled (:func:`._vmf_marginal.clamp_concentration`): the same quantile to rounding. The
  iteration in the angle loses the digits of small angles in ``pi - theta`` on the right tail (``1e-9``
  of ``t`` at ``kappa = 1e14``, all of them at ``1e16``).
- Start: ``t`` from the gamma law with the mean ``1 - A`` and the variance ``A'`` of ``t`` (exact as
  ``kappa -> infinity``, and close to the near-normal law of ``w`` for large ``m``), by the
  Wilson-Hilferty cube (Johnson, Kotz and Balakrishnan 1994, 17.5). Where the cube fails (small
  shapes, small ``u``) the start is the smallest ``phi``, from which the first step, exact for a
  power-law tail, brings the iterate close.
- The decay length is recomputed at the first two iterates only: later iterates move by less than a
  percent of it, and each recomputation costs about twenty tensor operations (at training sizes, 64
  rows and one sample, dispatch rather than arithmetic sets the time). The loop runs three steps,
  then stops as soon as the largest relative step of ``phi`` is below ``1e-6`` (the error after it
  is then of order ``1e-12``), checking once a step; at most 40 steps.
- The far right tail, ``1 - u < 2^-24``, is first solved by bisection (:func:`bisect_right_tail`),
  from whose root Newton's steps then barely move: there the gamma start can overshoot to ``theta =
  pi``, the panel's length computed at the first iterates is stale when the iterate comes back, and
  the iteration returned wrong values (``t`` off by up to 100% at ``m = 3``, ``kappa`` in ``[13.5,
  25]``, ``1 - u < 1e-10``) or did not converge (``m = 2``, ``kappa`` in ``[11.5, 28]``, ``1 - u <
  3e-9``). Newton's iteration and the bisection agree to ``3e-13`` for ``1 - u`` in ``[6.5e-8,
  1e-6]`` over ``m`` in ``{2, ..., 20000}`` and ``kappa`` in ``[1e-3, 1e6]`` (181 values).

Large draws (more than 64 samples a row and 4096 in all) take the table path (:func:`table_inversion`):

- Per row, ``K = 33`` knots in ``u``, logit-spaced over ``[2^-53, 1 - 2^-24]`` (the same ``u``'s for
  every row), are solved by the Newton iteration above, ``33 B`` solves in one call. From the knot's
  half-distance ``a`` the table keeps ``theta`` and ``y = log(theta / (pi - theta))`` with its slope
  ``dy/ds = pi / (theta (pi - theta)) u (1 - u) Z / p(theta)`` in ``s = logit u``. In these variables
  both power-law ends are straight lines (``y ~ s / (m - 1)`` at 0, ``-y ~ -s / (m - 1)`` at ``pi``)
  and Gaussian or exponential tails slowly curved, so a cubic Hermite of ``y(s)`` between the knots
  starts every sample within ``1e-3`` of ``min(theta, pi - theta)`` (measured; mostly far closer).
- Each sample then takes one step on ``int_{theta_k}^theta p = (u - u_k) Z`` from the knot on its
  tail's side (``u < 1/2``: the left knot; the partial mass adds to the tail's), one 8-node
  Gauss-Legendre panel from the start to the knot (:func:`._vmf_marginal.quadrature`, relative to
  ``p`` at the start), inverted to third order in the increment (error ``O(d^4)``: one step takes a
  start error of ``1e-3`` to ``1e-12``). Samples whose step exceeded ``1e-3`` take another, at most
  three in all; measured for ``kappa`` in ``[5, 55]`` (``B = 1000, n = 500``): none at ``m = 2, 3, 4, 11, 64``
  (the hand-over test in ``tests/test_vmf_inversion.py`` guards this over ``kappa`` in ``[1e-3,
  1e6]``).
- Quantiles outside the knots (``u = 0`` in a draw, with probability ``2^-53`` a sample; ``u > 1 - 2^-24``,
  ``6e-8``) and unconverged samples are handed to the per-sample iteration, which solves the far
  right tail by bisection. The knots stop at ``1 - 2^-24`` for the same reason: the per-sample
  Newton iteration, without that bisection, failed beyond it in log-convex right tails where its
  start overshoots past ``pi`` (``t`` near 0 or 2 at ``m = 3``, ``kappa`` in ``[13.5, 25]``, ``1 - u <
  1.1e-10``; 40 oscillating steps at ``m = 2``, ``kappa`` in ``[11.5, 28]``, ``1 - u < 3e-9``).
- Relative error of ``t`` against mpmath below ``1e-9`` over ``m`` in ``{2, ..., 20000}``, ``kappa`` in
  ``{1e-3, ..., 1e6}`` and ``u`` from ``2^-53`` to ``1 - 5e-8`` (worst ``1.2e-10``, at ``kappa = 1e6``,
  where ``log Z`` sets the floor); ``4e-12`` from the per-sample values over 660 quantiles a row.
- Cost (one thread, m = 11, kappa in [5, 55]): 15-21 ms at ``B = 1, n = 100000`` and 142-172 ms at
  ``B = 1000, n = 500``, against 48-90 and 270-460 ms for the former sampler (64 cells of 8 nodes
  per row, then six Newton steps per sample) and 82-138 and 1080-1160 ms per sample; the knots cost ``33`` per-sample solves a
  row, so small draws stay per sample (the size rule in :func:`invert_theta_cdf`).

References:
    N. L. Johnson, S. Kotz, N. Balakrishnan (1994), Continuous univariate distributions, vol. 1, 2nd
    ed., Wiley (Wilson-Hilferty approximation of gamma quantiles).
    A. Prekopa (1973), On logarithmic concave measures and functions, Acta Sci. Math. 34.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from ...special import BesselTerms, bessel_terms
from ...tracing import builds_constants
from ..sphere import work_dtype
from .marginal import (
    clamp_concentration,
    decay_length,
    gauss_legendre_rule,
    limit_concentration,
    log_density_derivatives,
    quadrature,
    weighted_sum,
)

# Gauss-Legendre nodes of the tail panel at each step (the last entry for later steps): the first
# steps only need to bring the iterate near the root, the last one sets the accuracy
STEP_NODES = (12, 24)


_LOG_DECAY = 90.0  # the panel ends where the integrand has fallen by exp(-90) (quadratic model)


_DECAY_UPDATES = 2  # iterations at whose iterate the panel's length is recomputed


_MIN_STEPS = 3  # Newton steps before the first convergence check


_MAX_STEPS = 40


STEP_TOL = 1e-6  # converged when every step of theta is below this, relative to theta


# tail masses below this fraction of Z are raised to it (torch.rand never gives a positive u below
# 2^-53), which keeps phi above _MIN_PHI for m > 2, where sin^2(phi / 2) is still a normal number
_MIN_TAIL = 1e-140


_MIN_PHI = 1e-150


_MAX_START_U = 1 - 2.0**-53  # the largest double below 1


# quantiles above this are solved by bisection (bisect_right_tail) before Newton's steps: below
# it Newton's iteration from the gamma start converges (scanned: m in 2..64, kappa dense over the
# failing ranges, 1 - u down to 1e-7); probability 2^-24 a uniform draw
NEWTON_MAX_U = 1 - 2.0**-24


_BISECT_STEPS = 64


_MIN_PHI_M2 = 1e-300  # m = 2: no log sin term, and the left tail is linear in phi


_RULE0_CACHE: dict[tuple[int, torch.dtype, torch.device], tuple[Tensor, Tensor]] = {}


def rule_with_start(k: int, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """:func:`._vmf_marginal.gauss_legendre_rule` on ``[0, 1]`` with the point 0 prepended at weight 0 (cached).

    The panel then evaluates the density at its start, the sample, along with its nodes. The weights
    are halved (they sum to 1) and a column, for a matrix product over the nodes.
    """
    key = (k, dtype, device)
    if key not in _RULE0_CACHE:
        _RULE0_CACHE[key] = _build_rule_with_start(k, dtype, device)
    return _RULE0_CACHE[key]


@builds_constants
def _build_rule_with_start(
    k: int, dtype: torch.dtype, device: torch.device
) -> tuple[Tensor, Tensor]:
    nodes, weights = gauss_legendre_rule(k, dtype, device)
    zero = torch.zeros(1, dtype=dtype, device=device)
    return torch.cat([zero, nodes]), torch.cat([zero, 0.5 * weights])[:, None]


def log_total_mass(kappa: Tensor, m: int, terms: BesselTerms) -> Tensor:
    """``log Z`` ``(B,)`` on the reduced scale of :func:`._vmf_marginal.quadrature` (``p / 2^{m-2}``), for
    the concentrations ``kappa`` of ``terms`` (which hold all that depends on them).

    ``Z = sqrt(pi) Gamma((m-1)/2) / Gamma(m/2) exp(log 0F1(; m/2; kappa^2/4) - kappa)``: with ``I_v(z) =
    (z/2)^v 0F1(; v+1; z^2/4) / Gamma(v+1)`` this is the integral ``sqrt(pi) Gamma((m-1)/2) (2/kappa)^v
    I_v(kappa) e^{-kappa}``, ``v = m/2 - 1`` (DLMF 10.32.2), without the division by ``kappa^v``. The
    exponent is the terms' ``log_scaled``, formed without subtracting ``kappa`` (which would leave an
    absolute error of ``1e-16 kappa``: all of ``log Z`` from ``kappa`` of about ``1e16`` on).
    """
    assert terms.log_scaled is not None
    constant = (
        0.5 * math.log(math.pi)
        + math.lgamma((m - 1) / 2)
        - math.lgamma(m / 2)
        - (m - 2) * math.log(2.0)
    )
    return terms.log_scaled + constant


def _start(u: Tensor, one_minus_mean: Tensor, variance: Tensor) -> Tensor:
    """A first ``t / 2`` ``(B, n)``: the gamma law with the mean and variance of ``t`` (rows ``(B, 1)``).

    Wilson-Hilferty ``t = mu (1 - c + z sqrt(c))^3``, ``c = 1 / (9 alpha)``, ``alpha = mu^2 / var``,
    ``z = Phi^{-1}(u)``, at most 2. Where the cube fails (small shapes, small ``u``) it is 0, and the
    first Newton step starts from the smallest ``phi``: there the tail is a power of ``phi``, for which
    that step is exact (a floor by the gamma's lower-tail power law was tried: the same steps, more
    operations).
    """
    c = (9 * one_minus_mean.square()).reciprocal_().mul_(variance)  # 1 / (9 alpha)
    cube = torch.addcmul(1 - c, torch.special.ndtri(u), c.sqrt()).clamp_(min=0.0).pow_(3)
    return cube.mul_(0.5 * one_minus_mean).clamp_(max=1.0)


def invert_theta_cdf(kappa: Tensor, m: int, u: Tensor, terms: BesselTerms | None = None) -> Tensor:
    r"""``t = 1 - cos theta`` at the quantiles ``u`` of the vMF marginal of ``theta`` on ``S^{m-1}``.

    Newton's method on the log tail mass in the log distance to the nearer end, after a bisection for
    the far right tail ``1 - u < 2^-24`` (module docstring):
    relative error of ``t`` below ``1e-9`` for ``u`` in ``[1e-12, 1 - 1e-12]``, ``m`` from 2 to
    ``20000`` and ``kappa`` from ``1e-3`` to ``1e6`` (measured against mpmath; ``tests/
    test_vmf_inversion.py``). No gradient; computed in the work dtype (float64 off MPS).

    Draws of more than ``_TABLE_MIN_ROW_SAMPLES = 64`` quantiles a row and ``_TABLE_MIN_SAMPLES = 4096``
    in all are inverted from a table of exact knots per row (:func:`table_inversion`; module docstring), with
    the same accuracy; smaller ones per sample, where the table's ``33`` knot solves a row would cost
    more than they save (measured, m = 11, one thread: per sample 0.37 against 0.51 ms at ``B = 1, n =
    256``, 5.9 against 4.2 ms at ``B = 64, n = 96``, 76 against 67 ms at ``B = 1000, n = 48``).

    Args:
        kappa: ``(B,)`` concentrations, ``>= 0``.
        m: ambient dimension, ``>= 2``.
        u: ``(B, n)`` quantiles in ``[0, 1]`` (0 and 1 are moved in to the smallest normal number).
        terms: ``spherevae.special.bessel_terms(m / 2 - 1, kappa)`` with the logarithms, if the caller
            has them (no Bessel evaluation here then).

    Returns:
        ``(B, n)`` values of ``t`` in ``[0, 2]``, in the dtype of ``kappa`` and ``u`` promoted.
    """
    out_dtype = torch.promote_types(kappa.dtype, u.dtype)
    work = work_dtype(kappa.device)
    with torch.no_grad():
        kappa = kappa.detach().to(work)
        u = u.detach().to(work)
        # rows beyond limit_concentration (or NaN) are inverted at the limit and scaled: the iteration
        # reads the host at every step anyway, so one more read costs no wait
        scale = None
        if kappa.numel() and not float(kappa.max()) <= limit_concentration(m):
            kappa, scale = clamp_concentration(kappa, m)
            kappa = kappa.nan_to_num(nan=1.0)  # any valid row; its t is NaN by its scale
            terms = None
        if terms is None or terms.log_scaled is None:
            terms = bessel_terms(m / 2 - 1, kappa)
        one_minus_mean = terms.complement.to(work)
        variance = terms.ratio_derivative(m / 2 - 1).to(work)
        log_z = log_total_mass(kappa, m, terms).to(work)
        if u.shape[-1] > _TABLE_MIN_ROW_SAMPLES and u.numel() > _TABLE_MIN_SAMPLES:
            t = table_inversion(kappa, m, u, one_minus_mean, variance, log_z)
        else:
            t = newton_inversion(kappa, m, u, one_minus_mean, variance, log_z)
        if scale is not None:
            t = t * scale.unsqueeze(-1)
    return t.to(out_dtype)


def newton_inversion(
    kappa: Tensor, m: int, u: Tensor, one_minus_mean: Tensor, variance: Tensor, log_z: Tensor
) -> Tensor:
    """``t`` ``(B, n)`` at the quantiles ``u`` ``(B, n)`` by :func:`_newton_half_distance`, rows ``(B,)``."""
    return _t_from_half(*_newton_half_distance(kappa, m, u, one_minus_mean, variance, log_z))


def _t_from_half(a: Tensor, left: Tensor) -> Tensor:
    """``t = 2 sin^2(theta / 2)`` from the half-distance ``a``: ``2 sin^2 a`` on the left, ``2 cos^2 a`` on
    the right."""
    return torch.where(left, a.sin(), a.cos()).square_().mul_(2)


class NewtonState(NamedTuple):
    """The iterate of :func:`_newton_half_distance` and what its steps read, ``(B, n, 1)`` each (``k``
    ``(B, 1, 1)``): the half-distance ``a = phi / 2``, half the panel's length, whether the quantile is
    on the left tail, its sign (``theta = phi`` on the left, ``pi - phi`` on the right) and the log of
    the target tail mass."""

    a: Tensor
    half_cut: Tensor
    k: Tensor
    m: int
    left: Tensor
    sign: Tensor
    towards_end: Tensor
    log_target: Tensor
    a_min: float


def _newton_start(
    kappa: Tensor, m: int, u: Tensor, one_minus_mean: Tensor, variance: Tensor, log_z: Tensor
) -> NewtonState:
    """The start of the Newton iteration (the gamma law's quantile), without the far tail's bisection."""
    # every per-sample tensor carries a trailing axis of length 1, against which the panel's nodes
    # broadcast: no reshaping inside the loop (each costs an operation at training sizes)
    u = u.unsqueeze(-1)
    k = kappa[:, None, None]
    left = u < 0.5
    sign = torch.where(left, 1.0, -1.0)  # theta = phi on the left, pi - phi on the right
    towards_end = -sign  # the panel's direction in theta (decay_length's side)
    tail = torch.where(left, u, 1 - u).clamp_(min=_MIN_TAIL)
    # the panel below gives T / (2 p(theta)): log 2 joins the target
    log_target = tail.log_().add_(log_z[:, None, None] - math.log(2.0))
    # the state is a = phi / 2; sin^2 a is t / 2 on the left, 1 - t / 2 on the right
    # (u = 1 would put the start at theta = pi, from where Newton's first step leaves the interval)
    half_t = _start(
        u.clamp(max=_MAX_START_U), one_minus_mean[:, None, None], variance[:, None, None]
    )
    a = torch.where(left, half_t, 1 - half_t).sqrt_().asin_()
    a_min = 0.5 * (_MIN_PHI_M2 if m == 2 else _MIN_PHI)
    a.clamp_(a_min, 0.5 * math.pi)
    return NewtonState(a, a, k, m, left, sign, towards_end, log_target, a_min)


def newton_start(kappa: Tensor, m: int, u: Tensor, terms: BesselTerms) -> NewtonState:
    """:func:`_newton_start` from the Bessel terms of ``kappa`` (with the logarithms); quantiles
    ``u`` ``(B, n)`` below ``1 - 2^-24`` (the far right tail needs :func:`bisect_right_tail` first)."""
    return _newton_start(
        kappa,
        m,
        u,
        terms.complement,
        terms.ratio_derivative(m / 2 - 1),
        log_total_mass(kappa, m, terms),
    )


def newton_step(
    state: NewtonState, step: int, measure: bool = True
) -> tuple[NewtonState, Tensor | None]:
    """Newton step number ``step`` (from 0) of :func:`_newton_half_distance`; also, if ``measure``, the
    largest step of ``theta`` relative to ``theta`` (0-dimensional), which the convergence check reads."""
    a, half_cut, k, m, left, sign, towards_end, log_target, a_min = state
    if step < _DECAY_UPDATES:
        half_cut = _half_cut(a, k, m, sign, towards_end)
    neg_g, ratio = _panel(
        a, half_cut, k, m, left, log_target, STEP_NODES[min(step, len(STEP_NODES) - 1)]
    )
    # -g / (dg / dlog phi) = -g T / (phi p) = -g ratio / a
    rel_step = neg_g.mul_(ratio).div_(a)
    a = torch.exp(rel_step).mul_(a).clamp_(a_min, 0.5 * math.pi)
    state = state._replace(a=a, half_cut=half_cut)
    if not measure:
        return state, None
    # the step relative to theta, not phi: on the right phi / theta = (pi - theta) / theta is large
    # where kappa is (a relative step of 1e-6 in phi is 3e-3 in theta at theta = 1e-3)
    theta_over_phi = torch.fmin(a, (0.5 * math.pi) - a).div_(a)
    return state, rel_step.abs_().div_(theta_over_phi).max()


def newton_result(state: NewtonState) -> Tensor:
    """``t = 2 sin^2(theta / 2)`` ``(B, n)`` of the iterate: ``2 sin^2 a`` on the left, ``2 cos^2 a`` on
    the right."""
    return _t_from_half(state.a.squeeze(-1), state.left.squeeze(-1))


def _newton_half_distance(
    kappa: Tensor, m: int, u: Tensor, one_minus_mean: Tensor, variance: Tensor, log_z: Tensor
) -> tuple[Tensor, Tensor]:
    """The Newton iteration of :func:`invert_theta_cdf` on ``(B, n)`` quantiles, rows ``(B,)``.

    Returns ``(a, left)``, both ``(B, n)``: half the distance ``phi / 2`` of the quantile's ``theta`` to
    the end of ``[0, pi]`` on its side, and whether that side is the left one (``u < 1/2``).

    The panel runs from ``phi`` towards 0 in ``phi``, the distance to the tail's end, for both tails,
    and evaluates the density at half-angles of ``phi`` (:func:`_log_density_at_half`).
    """
    state = _newton_start(kappa, m, u, one_minus_mean, variance, log_z)
    # the far right tail starts from its root, found by bisection: there the start can overshoot to
    # theta = pi, and the panel's length, recomputed at the first iterates only, is then stale when
    # the iterate comes back (measured: t off by up to 100% at m = 3, kappa in [13.5, 25], 1 - u <
    # 1e-10; no convergence at m = 2, kappa in [11.5, 28], 1 - u < 3e-9)
    far = u.unsqueeze(-1) > NEWTON_MAX_U
    if bool(far.any()):
        rows = far.nonzero(as_tuple=True)
        a = state.a
        a[rows] = bisect_right_tail(
            state.k.expand_as(a)[rows].unsqueeze(-1),
            m,
            state.log_target[rows].unsqueeze(-1),
            state.a_min,
        ).squeeze(-1)
    for step in range(_MAX_STEPS):
        state, largest = newton_step(state, step, measure=step + 1 >= _MIN_STEPS)
        if largest is not None and largest.item() <= STEP_TOL:
            break
    return state.a.squeeze(-1), state.left.squeeze(-1)


def _half_cut(a: Tensor, k: Tensor, m: int, sign: Tensor, towards_end: Tensor) -> Tensor:
    """Half the panel's length at half-distances ``a``: :func:`._vmf_marginal.decay_length` at ``theta``.

    At ``theta``, ``sin theta = sin phi`` and ``cos theta = sign cos phi`` (used as curvature only: ``cos
    phi`` needs no more than its absolute accuracy here).
    """
    phi = 2 * a
    cos_theta = phi.cos().mul_(sign)
    return decay_length(k, phi.sin_(), cos_theta, m, towards_end, _LOG_DECAY).mul_(0.5)


def _log_density_at_half(half: Tensor, left: Tensor, k: Tensor, m: int) -> Tensor:
    """Reduced ``log p`` at half-distances ``half = phi / 2`` to the end of the side ``left``.

    ``sin^2(theta / 2)`` is ``sin^2 half`` on the left and ``cos^2 half`` on the right, and ``sin^2 theta
    / 4 = (sin half cos half)^2`` on both: every factor keeps its relative digits at both ends of ``[0,
    pi]`` (``s - s^2`` from ``s = sin^2(theta / 2)`` would lose them near ``pi``, and ``2 kappa (1 - sin^2
    half)`` those of ``1 - cos theta`` near 0 at large ``kappa``). Returns ``-2 kappa sin^2(theta / 2) +
    (m - 2) log(sin half cos half)``; overwrites ``half``.
    """
    sin_half = torch.sin(half)
    cos_half = half.cos_()
    s = torch.where(left, sin_half, cos_half).square_()  # sin^2(theta / 2)
    if m > 2:
        log_p = sin_half.mul_(cos_half).log_().mul_(m - 2)
        log_p.addcmul_(s, k, value=-2)
    else:
        log_p = s.mul_(k).mul_(-2)
    return log_p


def _panel(
    a: Tensor, half_cut: Tensor, k: Tensor, m: int, left: Tensor, log_target: Tensor, nodes: int
) -> tuple[Tensor, Tensor]:
    """``(-g, T / (2 p(theta)))`` at half-distances ``a`` ``(..., 1)``, from one Gauss-Legendre panel.

    The panel of ``nodes`` points runs from ``a`` towards 0 over ``min(a, half_cut)``; ``-g = log target -
    log T`` (``log_target`` on the scale of ``T / 2``, see :func:`_newton_half_distance`).
    """
    nodes_01, weights = rule_with_start(nodes, a.dtype, a.device)
    # a non-finite cut (flat density, sin underflowing) leaves the whole stretch to the end
    half_length = torch.fmin(a, half_cut)
    # half-angles of the sample (the first point) and of the panel's nodes, from a towards 0
    half = torch.addcmul(a, half_length, nodes_01, value=-1)
    log_p = _log_density_at_half(half, left, k, m)
    log_p_sample = log_p[..., :1]
    # T / (2 p(theta)): the panel's values relative to the sample's; weights / 2 sum to 1
    ratio = weighted_sum((log_p - log_p_sample).exp_(), weights).mul_(half_length)
    neg_g = torch.sub(log_target, log_p_sample).sub_(torch.log(ratio))
    return neg_g, ratio


def bisect_right_tail(k: Tensor, m: int, log_target: Tensor, a_min: float) -> Tensor:
    """Half-distances ``a = (pi - theta) / 2`` ``(P, 1)`` of right-tail quantiles, by bisection in ``log a``.

    The robust path for the far right tail, where Newton's iteration is not trusted (:func:`newton_inversion`):
    the root lies right of the mode ``theta_m`` (the mass right of the mode is far above
    ``2^-24``), so the bracket is ``[a_min, (pi - theta_m) / 2]``; every midpoint is then right of the
    mode, where the integrand of ``R`` falls from the midpoint towards ``pi`` and one panel, with its
    length recomputed there, is accurate (a bracket reaching past the mode let the panel miss the
    mode at large ``m``). ``R`` grows with ``a``, so the sign of ``g`` halves the bracket;
    ``_BISECT_STEPS`` halvings of a bracket about 350 wide leave it below ``1e-16`` in ``log a``. The
    mode solves ``kappa sin^2 theta = (m - 2) cos theta``: ``cos theta_m = 2 kappa / ((m - 2) +
    sqrt((m - 2)^2 + 4 kappa^2))``. About thirty operations a step, for the quantiles (probability
    ``2^-24`` a uniform draw) that need it.

    Shapes: ``k`` and ``log_target`` ``(P, 1)``; returns ``(P, 1)``.
    """
    cos_mode = (2 * k).div_(torch.hypot(2 * k, torch.full_like(k, m - 2.0)).add_(m - 2))
    lo = torch.full_like(log_target, math.log(a_min))
    hi = cos_mode.nan_to_num_(nan=1.0).acos_().neg_().add_(math.pi).mul_(0.5).log_()
    left = torch.zeros_like(log_target, dtype=torch.bool)
    sign = torch.full_like(log_target, -1.0)
    towards_end = -sign
    for _ in range(_BISECT_STEPS):
        mid = (lo + hi).mul_(0.5)
        a = mid.exp()
        half_cut = _half_cut(a, k, m, sign, towards_end)
        neg_g, _ = _panel(a, half_cut, k, m, left, log_target, STEP_NODES[-1])
        below = neg_g > 0  # R below the target: the root is further from pi
        lo = torch.where(below, mid, lo)
        hi = torch.where(below, hi, mid)
    return (lo + hi).mul_(0.5).exp_()


def sample_inverse_cdf(kappa: Tensor, m: int, n: int, terms: BesselTerms | None = None) -> Tensor:
    """``(B, n)`` draws of ``t = 1 - mu . x`` by :func:`invert_theta_cdf` of uniform quantiles.

    The quantiles are drawn on ``kappa``'s device in its dtype (``torch.rand``, in ``[0, 1)``). Large
    draws take the table path (more than 64 samples a row and 4096 in all), small ones the per-sample
    iteration: one call for every ``n``, relative error of ``t`` below ``1e-9`` either way.
    """
    u = torch.rand(kappa.shape[0], n, dtype=kappa.dtype, device=kappa.device)
    return invert_theta_cdf(kappa, m, u, terms)


# the table path (table_inversion): knots per row, logit-spaced in u over [_TABLE_MIN_U, _TABLE_MAX_U]
_TABLE_KNOTS = 33


_TABLE_NODES = 8  # Gauss-Legendre nodes of the panel from the knot to the sample


_TABLE_MAX_STEPS = 3  # steps on the samples not yet converged, then the rest goes per sample


_TABLE_STEP_TOL = 1e-3  # a step below this (relative to the nearer end) leaves an error ~1e-13


_TABLE_MIN_U = 2.0**-53  # the smallest positive torch.rand in double precision


# beyond 1 - 2^-24 (6e-8) the right tail is left to the per-sample path, which solves it by bisection
# (bisect_right_tail): knots there would need the same
_TABLE_MAX_U = 1 - 2.0**-24


# the table path serves draws of more than this many samples per row and in all (measured, m = 11,
# one thread: per sample 0.37 ms against 0.51 at B = 1, n = 256; 5.9 against 4.2 ms at B = 64, n = 96;
# 76 against 67 ms at B = 1000, n = 48)
_TABLE_MIN_ROW_SAMPLES = 64


_TABLE_MIN_SAMPLES = 4096


_KNOT_CACHE: dict[tuple[int, torch.dtype, torch.device], tuple[Tensor, Tensor]] = {}


def _knots(k: int, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """``(u, s)``: ``k`` knots in ``u``, logit-spaced over ``[2^-53, 1 - 2^-24]``, and their logits."""
    key = (k, dtype, device)
    if key not in _KNOT_CACHE:
        _KNOT_CACHE[key] = _build_knots(k, dtype, device)
    return _KNOT_CACHE[key]


@builds_constants
def _build_knots(k: int, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    s_min = math.log(_TABLE_MIN_U) - math.log1p(-_TABLE_MIN_U)
    s_max = math.log(_TABLE_MAX_U) - math.log1p(-_TABLE_MAX_U)
    u = torch.sigmoid(torch.linspace(s_min, s_max, k, dtype=torch.float64))
    u[0], u[-1] = _TABLE_MIN_U, _TABLE_MAX_U
    s = u.log() - torch.log1p(-u)
    return u.to(dtype=dtype, device=device), s.to(dtype=dtype, device=device)


def _table_rows(
    kappa: Tensor, m: int, one_minus_mean: Tensor, variance: Tensor, log_z: Tensor
) -> Tensor:
    """The table of :func:`table_inversion`: per row and knot interval ``(B, K - 1, 8)``.

    Columns: the cubic Hermite coefficients ``c0..c3`` of ``y = log(theta / (pi - theta))`` in
    ``x = (s - s_lo) / (s_hi - s_lo)`` (``s = logit u``), then ``theta`` and ``u`` at both knots. The
    knots are solved by :func:`_newton_half_distance` (``(B, K)`` quantiles, one call); ``y`` and the
    slopes come from the half-distance ``a`` on the knot's side, so both ends keep their digits:
    ``dy/ds = pi / (theta (pi - theta)) u (1 - u) Z / p(theta)``, in logs, ``p`` on the reduced scale
    of ``log Z``.
    """
    batch = kappa.shape[0]
    u_k, s_k = _knots(_TABLE_KNOTS, kappa.dtype, kappa.device)
    a, left = _newton_half_distance(
        kappa, m, u_k.expand(batch, -1), one_minus_mean, variance, log_z
    )
    phi = 2 * a
    log_phi, log_rest = phi.log(), (math.pi - phi).log()
    theta = torch.where(left, phi, math.pi - phi)
    y = torch.where(left, log_phi - log_rest, log_rest - log_phi)
    log_p = _log_density_at_half(a, left, kappa[:, None], m)  # a is not needed after
    # dy / ds = pi / (theta (pi - theta)) * u (1 - u) Z / p(theta), times the interval's length in s
    log_dy = (u_k.log() + torch.log1p(-u_k) + math.log(math.pi)) - log_phi - log_rest
    log_dy.add_(log_z[:, None]).sub_(log_p)
    dy = log_dy.exp_()
    h = s_k.diff()
    y0, y1 = y[:, :-1], y[:, 1:]
    d0, d1 = dy[:, :-1] * h, dy[:, 1:] * h
    delta = y1 - y0
    return torch.stack(
        [
            y0,
            d0,
            3 * delta - 2 * d0 - d1,
            d0 + d1 - 2 * delta,
            theta[:, :-1],
            theta[:, 1:],
            u_k[:-1].expand(batch, -1),
            u_k[1:].expand(batch, -1),
        ],
        dim=-1,
    )


def _table_step(
    theta: Tensor,
    u: Tensor,
    u_knot: Tensor,
    theta_knot: Tensor,
    theta_lo: Tensor,
    theta_hi: Tensor,
    k: Tensor,
    m: int,
    log_z: Tensor,
) -> Tensor:
    """One step of :func:`table_inversion` from ``theta`` towards ``int_{theta_knot}^theta p = (u - u_knot) Z``.

    ``q = int_theta^{theta_knot} p / p(theta)`` is one ``_TABLE_NODES``-point Gauss-Legendre panel
    (:func:`._vmf_marginal.quadrature`, scaled by the density at ``theta``), so the Newton increment
    is ``d = (u - u_knot) Z / p(theta) + q``. The step inverts the Taylor series of the integral to third
    order, ``theta + d - l' d^2 / 2 + (2 l'^2 - l'') d^3 / 6`` with ``l = log p`` (``l' = -kappa sin +
    (m - 2) cot``, ``l'' = -kappa cos - (m - 2) / sin^2``): error ``O(d^4)``. The result is kept in
    ``[theta_lo, theta_hi]`` (NaN-safe). Shapes: all ``theta``'s, ``k`` and ``log_z`` broadcast.
    """
    sh = torch.sin(0.5 * theta).square_()  # sin^2(theta / 2)
    sin_sq = torch.addcmul(sh, sh, sh, value=-1).mul_(4)  # sin^2 theta
    log_p = sh * k * (-2)
    if m > 2:
        log_p.add_(torch.log(0.25 * sin_sq).mul_(0.5 * (m - 2)))
    q = quadrature(
        theta,
        0.5 * (theta_knot - theta),
        _TABLE_NODES,
        k.unsqueeze(-1),
        m,
        log_p.unsqueeze(-1),
        None,
    )
    d = (log_z - log_p).exp_().mul_(u - u_knot).add_(q)
    # with l' = -neg_slope and l'' = -neg_curvature
    neg_slope, neg_curvature = log_density_derivatives(k, sin_sq.sqrt(), 1 - 2 * sh, m)
    corr = (2 * neg_slope * neg_slope + neg_curvature) / 6 * d + 0.5 * neg_slope
    new = theta + d * (1 + d * corr)
    return torch.fmin(torch.fmax(new, theta_lo), theta_hi)


def table_inversion(
    kappa: Tensor, m: int, u: Tensor, one_minus_mean: Tensor, variance: Tensor, log_z: Tensor
) -> Tensor:
    """``t`` ``(B, n)`` at the quantiles ``u`` ``(B, n)`` from a table of exact knots per row (rows ``(B,)``).

    Per sample: its knot interval (``searchsorted`` on the ``K`` knots, the same for every row), a
    start ``theta = pi sigmoid(y)`` from the cubic Hermite ``y(s)`` of :func:`_table_rows`, and a
    :func:`_table_step` from the knot on the tail's side (``u < 1/2``: the left knot, else the right
    one; the partial mass is then added to the tail's, never cancelled from it). The samples whose
    step exceeded ``_TABLE_STEP_TOL`` (relative to ``min(theta, pi - theta)``) take another step, at
    most ``_TABLE_MAX_STEPS`` in all (one ``nonzero`` a step, on the shrinking subset). Quantiles
    outside ``[_TABLE_MIN_U, _TABLE_MAX_U]`` and samples still unconverged go to :func:`newton_inversion`.
    """
    rows = _table_rows(kappa, m, one_minus_mean, variance, log_z)
    u_k, s_k = _knots(_TABLE_KNOTS, kappa.dtype, kappa.device)
    uc = u.clamp(_TABLE_MIN_U, _TABLE_MAX_U)
    j = torch.searchsorted(u_k, uc, right=True).sub_(1).clamp_(0, _TABLE_KNOTS - 2)
    s = uc.log().sub_(torch.log1p(-uc))
    x = s.sub_(s_k[j]).div_(s_k[j + 1] - s_k[j])
    c = rows.gather(1, j.unsqueeze(-1).expand(-1, -1, rows.shape[-1]))
    y = torch.addcmul(c[..., 2], x, c[..., 3])
    y = torch.addcmul(c[..., 1], x, y)
    y = torch.addcmul(c[..., 0], x, y)
    theta = y.sigmoid_().mul_(math.pi)
    theta_lo, theta_hi = c[..., 4], c[..., 5]
    up = uc >= 0.5
    theta_knot = torch.where(up, theta_hi, theta_lo)
    u_knot = torch.where(up, c[..., 7], c[..., 6])
    k = kappa[:, None]
    lz = log_z[:, None]
    new = _table_step(theta, uc, u_knot, theta_knot, theta_lo, theta_hi, k, m, lz)
    n = u.shape[-1]
    flat = new.view(-1)  # later steps write into new through this view
    rel = (flat - theta.view(-1)).abs_().div_(torch.fmin(flat, math.pi - flat))
    idx = (rel > _TABLE_STEP_TOL).nonzero().squeeze(-1)
    for _ in range(_TABLE_MAX_STEPS - 1):
        if idx.numel() == 0:
            break
        r = idx // n
        start = flat[idx]
        u_s, uk_s, knot_s, lo_s, hi_s = (
            x.reshape(-1)[idx] for x in (uc, u_knot, theta_knot, theta_lo, theta_hi)
        )
        stepped = _table_step(start, u_s, uk_s, knot_s, lo_s, hi_s, kappa[r], m, log_z[r])
        flat[idx] = stepped
        rel = (stepped - start).abs_().div_(torch.fmin(stepped, math.pi - stepped))
        idx = idx[rel > _TABLE_STEP_TOL]
    # out of the table's range or not converged: per sample
    t = torch.sin(0.5 * new).square_().mul_(2)
    outside = (u < _TABLE_MIN_U) | (u > _TABLE_MAX_U)
    rest = outside.reshape(-1).nonzero().squeeze(-1)
    if idx.numel():
        rest = torch.cat([rest, idx])
    if rest.numel():
        r = rest // n
        t.view(-1)[rest] = newton_inversion(
            kappa[r], m, u.reshape(-1)[rest, None], one_minus_mean[r], variance[r], log_z[r]
        ).squeeze(-1)
    return t
