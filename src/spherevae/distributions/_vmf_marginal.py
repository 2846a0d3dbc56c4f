r"""The marginal of ``w = mu . x`` under a von Mises-Fisher distribution, its samplers and gradient.

On ``S^{m-1}`` the density of ``w`` is proportional to ``exp(kappa w) (1 - w^2)^{(m-3)/2}`` on
``[-1, 1]``. In the angle ``theta = arccos w`` it is proportional to
``exp(-kappa t) sin^{m-2} theta`` with ``t = 1 - cos theta = 2 sin^2(theta / 2)``, smooth on
``[0, pi]`` for every ``m >= 2`` (no endpoint singularity, unlike the density of ``w`` at ``m = 2``),
so quadrature is done in ``theta``. Every sampler returns ``t = 1 - w`` rather than ``w``: for large
``kappa`` the value ``1 - w`` is tiny and would lose its digits in ``w``.

Samplers (all draw their randomness on the device of ``kappa``, all vectorised over the batch):

- :func:`wood_rejection`: Wood (1994). Proposal ``t = 2 b e / (1 - (1 - b) e)``, ``e ~ Beta((m-1)/2,
  (m-1)/2)`` (drawn as ``e = (1 + Z / sqrt(Z^2 + 2 G)) / 2`` from ``G ~ Gamma((m-1)/2)`` and
  ``Z ~ N(0, 1)``), with the cancellation-free envelope constant ``b = (m-1) / (2 kappa + sqrt(4 kappa^2 +
  (m-1)^2))`` and ``x0 = (1 - b) / (1 + b)``; accept when ``log U <= kappa (w - x0) + (m-1) log((1 -
  x0 w) / (1 - x0^2))``. From ``m = 4`` on, rows whose ``kappa`` is large enough use instead the
  proposal ``t = G / kappa``, ``G ~ Gamma((m-1)/2)``, accepted with probability ``(1 - t/2)^((m-3)/2)``
  (zero for ``t > 2``), whose acceptance rate ``sqrt(2 pi kappa) ive(m/2 - 1, kappa)`` tends to 1 while
  Wood's stays near 0.7. The first round draws 2 candidates per sample (up to 7 for draws of training
  size, so that a second round is rarely needed), later rounds at least twice as many per pending
  sample; they stop after a bounded number, raising ``RuntimeError`` rather than returning a wrong value.
- :func:`closed_form_m3`: at ``m = 3`` the CDF inverts exactly: ``t = -log1p(u expm1(-2 kappa)) / kappa``.
- Inverse CDF: see :mod:`._vmf_inversion` (per-sample Newton on the log tail mass, or a table of
  exactly solved knots per row for large draws).
- :func:`metropolis_hastings`: an independence Metropolis-Hastings chain on ``w`` with Wood's proposal.
  The proposal density is ``g(w) ~ (1 - w^2)^{(m-3)/2} (1 - x0 w)^{-(m-1)}``, so the acceptance ratio
  ``pi(w') g(w) / (pi(w) g(w'))`` is ``exp(s(w') - s(w))`` with ``s(w) = kappa w + (m-1) log(1 - x0 w)``.

Gradient in ``kappa`` (implicit reparameterisation, Figurnov et al. 2018): for a sample ``theta`` with
CDF ``F(theta; kappa)``, ``d theta / d kappa = -(dF/dkappa) / p(theta)``, and
``dF/dkappa (theta) = int_0^theta (cos phi - A) p(phi) dphi`` because ``d log p / d kappa = cos phi - A``
(``A = E[w]``). This is the exact gradient of the sample for every sampler (it depends on the sample,
not on how it was drawn), so the estimator is unbiased, unlike the pathwise term of the rejection
sampler alone. The integral is taken from the end of ``[0, pi]`` on the same side of
``theta* = arccos A`` as the sample, where ``cos phi - A`` does not change sign: a sum of terms of one
sign, never the difference of two large integrals (splitting at the mode instead loses every digit for
samples between the mode and ``theta*``, e.g. near ``theta = 0`` at ``m = 2``).

References:
    A. T. A. Wood (1994), Simulation of the von Mises Fisher distribution, Comm. Statist. Simul. 23.
    M. Figurnov, S. Mohamed, A. Mnih (2018), Implicit reparameterization gradients, NeurIPS.
    T. R. Davidson, L. Falorsi, N. De Cao, T. Kipf, J. M. Tomczak (2018), Hyperspherical variational
    auto-encoders, UAI.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from ..special import BesselTerms, is_compiling, mean_resultant_terms

__all__ = [
    "MarginalGrid",
    "clamp_concentration",
    "closed_form_m3",
    "dtheta_dkappa",
    "dtheta_dkappa_direct",
    "limit_concentration",
    "metropolis_hastings",
    "wood_rejection",
]

_GL_NODES = 8  # points of the Gauss-Legendre rule of each grid cell
# per-sample gradient quadrature: one Gauss-Legendre panel of 20 nodes over the stretch where the
# integrand is above exp(-60) of its value at the sample (measured against a 24-panel x 20-node rule
# over m in [2, 20000], kappa in [0, 1e6], samples and points across the support: relative error <= 2e-8)
_DIRECT_NODES = 20
_DIRECT_LOG_DECAY = 60.0
# for parameters in single precision: 12 nodes over the stretch down to exp(-30), relative error
# <= 1e-6 against the rule above over the same range (m in {2, ..., 20000}, kappa in {1e-3, ..., 1e6},
# quantiles 0 to 1 of a sample; tests/test_vmf_sampling.py), a few ulps of float32, for 40% fewer
# transcendental evaluations
_DIRECT_NODES_SINGLE = 12
_DIRECT_LOG_DECAY_SINGLE = 30.0
_GRID_CELLS = 64
_GRID_HALF_WIDTH_SD = 50.0  # the grid covers E[w] +- 50 sd(w): the tail mass outside is negligible
# below this many samples per batch element the per-sample quadrature (20 density evaluations a
# sample) is cheaper than tabulating the grid (512 evaluations a batch element, then 8 a sample)
_DIRECT_GRADIENT_MAX_SAMPLES = 32
_REJECTION_FIRST_CANDIDATES = 2
_REJECTION_MAX_ROUNDS = 12  # each round at least doubles: >= 2 + 4 + ... + 4096 candidates a sample
# Wood's envelope accepts with probability >= 0.655 over m in [2, 20000], kappa in [1e-3, 1e6]
# (measured), and the gamma proposal serves only where it accepts more often (_gamma_threshold): a later round gives each pending sample enough candidates that fewer than 0.01 samples
# are expected to remain, while that costs at most this many proposals (rounds cost fixed overhead)
_REJECTION_WORST_REJECT = 0.345
_REJECTION_ROUND_BUDGET = 8192
_REJECTION_FIRST_ROUND_BUDGET = (
    512  # proposals that a first round may draw to make a second unlikely
)
# the gamma proposal takes over from Wood's at kappa = a (a - 1) / log 2 + this * a (_gamma_threshold)
_GAMMA_SWITCH_SLOPE = 1.27
# below this many samples a batch whose rows straddle the gamma threshold uses Wood's proposal for all
# rows (wood_rejection): at training sizes the operations of mixing cost more than they save
_MIXED_PROPOSALS_MIN_SAMPLES = 1024
# Metropolis-Hastings chains are run from a table of jumps (_chain_by_jumps) up to this many chains,
# step by step above: the table's arithmetic grows like chains * (steps + 1)^2 and the steps' like
# chains * steps, so the table wins where dispatch dominates (measured at m = 11, one thread: 0.27
# against 0.37 ms for 64 chains of 25 steps, 0.42 against 0.47 at 128, 0.76 against 0.66 at 256,
# 3.1 against 1.9 at 1024; at 10 and 50 steps the crossing is between 64 and 256 chains as well)
_MH_JUMP_TABLE_MAX_CHAINS = 128
_MH_JUMP_TABLE_MAX = 1 << 21  # and at most this many table entries, chains * (steps + 1)^2 (memory)


def _theta_from_t(t: Tensor) -> Tensor:
    return 2 * torch.asin(torch.sqrt(torch.clamp(t / 2, 0.0, 1.0)))


def _angle_terms(theta: Tensor) -> tuple[Tensor, Tensor]:
    """``(1 - cos theta, sin theta)`` from one sine: ``2 h^2`` and ``2 h sqrt(1 - h^2)``, ``h = sin(theta/2)``.

    ``1 - cos theta`` keeps its digits near ``theta = 0``, where ``w = cos theta`` is close to 1.
    """
    h = torch.sin(0.5 * theta)
    return 2 * h * h, 2 * h * torch.sqrt((1 - h * h).clamp(min=0.0))


def _log_density(one_minus_cos: Tensor, sin: Tensor, kappa: Tensor, m: int) -> Tensor:
    """Unnormalised ``log p(theta) = -kappa (1 - cos theta) + (m - 2) log sin theta``."""
    log_p = -kappa * one_minus_cos
    return log_p if m == 2 else log_p + (m - 2) * torch.log(sin)


def _log_density_theta(theta: Tensor, kappa: Tensor, m: int) -> Tensor:
    return _log_density(*_angle_terms(theta), kappa, m)


_RULE_CACHE: dict[tuple[int, torch.dtype, torch.device], tuple[Tensor, Tensor]] = {}


def _rule(k: int, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """``k``-point Gauss-Legendre rule on ``[0, 1]`` (nodes ``(1 + x) / 2``, weights ``w``, which sum to 2).

    Cached per dtype and device: a rule is built (and copied to the device) once, not on every call.
    """
    key = (k, dtype, device)
    if key not in _RULE_CACHE:
        x, w = np.polynomial.legendre.leggauss(k)
        _RULE_CACHE[key] = (
            torch.tensor((1 + x) / 2, dtype=dtype, device=device),
            torch.tensor(w, dtype=dtype, device=device),
        )
    return _RULE_CACHE[key]


def _quadrature(
    start: Tensor,
    half_length: Tensor,
    k: int,
    kappa: Tensor,
    m: int,
    log_ref: Tensor,
    one_minus_mean: Tensor | None,
) -> Tensor:
    """``int_start^(start + 2 half_length) s(phi) exp(log p(phi) - log_ref) dphi``, ``k``-point Gauss-Legendre.

    Oriented (``half_length < 0`` integrates to the left). ``s = cos phi - A`` when
    ``one_minus_mean = 1 - A`` is given, else 1; ``log_ref`` is on the scale of
    :func:`_reduced_log_density`. The nodes enter only through ``sin^2(phi / 2)``, so the half-angles
    ``phi / 2 = start / 2 + half_length (1 + x) / 2`` are formed directly (one fused op), and
    ``log sin phi`` comes from one logarithm of ``s (1 - s)``. Evaluated in place: two node-sized
    buffers in all, and the weights are applied by one matrix-vector product. On a CPU each fresh
    temporary of that size costs page faults that outweigh the arithmetic.

    Args:
        start, half_length: ``(...)`` ends and oriented half-lengths of the intervals.
        kappa, log_ref, one_minus_mean: broadcastable against ``(..., 1)``.

    Returns:
        ``(...)`` integrals.
    """
    nodes, weights = _rule(k, start.dtype, start.device)
    half_t = torch.addcmul((0.5 * start).unsqueeze(-1), half_length.unsqueeze(-1), nodes)
    half_t.sin_().square_()  # sin^2(phi / 2) = (1 - cos phi) / 2
    if m > 2:
        log_p = torch.addcmul(half_t, half_t, half_t, value=-1).log_().mul_(0.5 * (m - 2))
        log_p.addcmul_(half_t, kappa, value=-2)
    else:
        log_p = half_t * (-2 * kappa)
    dens = log_p.sub_(log_ref).exp_()
    if one_minus_mean is not None:
        dens.mul_(half_t.mul_(-2).add_(one_minus_mean))  # cos phi - A = (1 - A) - (1 - cos phi)
    return _weighted_sum(dens, weights).mul_(half_length)


def _weighted_sum(values: Tensor, weights: Tensor) -> Tensor:
    """``values @ weights`` for ``values`` ``(..., k)`` and ``weights`` ``(k,)`` or ``(k, c)``: one matrix
    product in eager mode, a product and a sum under ``torch.compile``, which fuses them into the loop
    that forms ``values`` (a matrix product would be a library call of its own)."""
    if not is_compiling():
        return values @ weights
    if weights.dim() == 1:
        return (values * weights).sum(-1)
    return (values.unsqueeze(-1) * weights).sum(-2)


def _wood_constants(kappa: Tensor, m: int) -> tuple[Tensor, Tensor, Tensor]:
    """Wood's ``b``, ``x0`` and ``1 - x0``, all without cancellation."""
    b = (m - 1) / (2 * kappa + torch.sqrt(4 * kappa * kappa + (m - 1) ** 2))
    return b, (1 - b) / (1 + b), 2 * b / (1 + b)


def _symmetric_beta_parts(gamma: Tensor, normal: Tensor) -> tuple[Tensor, Tensor]:
    """``(E, F)``, proportional to ``(e, 1 - e)`` with ``e ~ Beta(a, a)``, from ``G ~ Gamma(a)`` and ``Z ~ N(0, 1)``.

    With ``R = sqrt(Z^2 + 2 G)``, ``e = (1 + Z / R) / 2`` is ``Beta(a, a)``: ``(2 e - 1)^2 = (Z^2 / 2) /
    (Z^2 / 2 + G) ~ Beta(1/2, a)``, which is the law of ``(2 e - 1)^2`` under ``Beta(a, a)``, and the
    sign of ``Z`` is symmetric and independent of ``Z^2``. Returned unnormalised, ``E = 2 R e = R + Z``
    and ``F = 2 R (1 - e) = R - Z``; the smaller of the two is formed as ``2 G / (R + |Z|)`` (since
    ``R^2 - Z^2 = 2 G``), so it keeps its digits when it is tiny. Overwrites ``gamma``.
    """
    large = torch.addcmul(gamma, normal, normal, value=0.5).sqrt_().mul_(math.sqrt(2.0))  # R
    large.add_(normal.abs())  # R + |Z|
    small = gamma.mul_(2).div_(large)  # R - |Z|
    positive = normal >= 0
    return torch.where(positive, large, small), torch.where(positive, small, large)


def _wood_row_constants(kappa: Tensor, m: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-row constants of Wood's sampler: ``1 / b``, ``x0``, ``1 - x0`` and the test's offset (:func:`_wood_offset`).

    With ``h = (m - 1) / 2`` and ``u = kappa + sqrt(kappa^2 + h^2)``, ``b = h / u`` (the cancellation-free
    form of :func:`_wood_constants`) and ``1 - x0 = 2 b / (1 + b) = 2 h / (u + h)``: thirteen tensor
    operations on ``kappa``'s shape for all four. ``x0 = 1 - (1 - x0)`` loses relative digits where
    ``x0`` is tiny (small ``kappa``), but it enters the test only through ``x0 t`` and ``log1p(x0)``,
    which need its absolute accuracy alone.
    """
    h = (m - 1) / 2
    u = (kappa * kappa).add_(h * h).sqrt_().add_(kappa)
    one_minus_x0 = (u + h).reciprocal_().mul_(2 * h)
    x0 = 1 - one_minus_x0
    return u.mul_(1 / h), x0, one_minus_x0, _wood_offset(kappa, m, x0, one_minus_x0)


def _wood_t(gamma: Tensor, normal: Tensor, inv_b: Tensor) -> Tensor:
    """``t = 1 - w`` of Wood's proposal from ``G ~ Gamma((m-1)/2)`` and ``Z ~ N(0, 1)``; overwrites ``gamma``.

    ``t = 2 b e / ((1 - e) + b e) = 2 e / ((1 - e) / b + e)`` with ``e ~ Beta((m-1)/2, (m-1)/2)``, written
    with ``(E, F)`` proportional to ``(e, 1 - e)`` (:func:`_symmetric_beta_parts`), so that ``t`` keeps
    its digits for ``e`` close to 0 or 1; ``inv_b = 1 / b``.
    """
    e, one_minus_e = _symmetric_beta_parts(gamma, normal)
    return torch.addcmul(e, one_minus_e, inv_b).reciprocal_().mul_(e).mul_(2)


def _wood_proposal(inv_b: Tensor, m: int, shape: torch.Size) -> Tensor:
    """``t = 1 - w`` for Wood's proposal ``w = (1 - (1 + b) e) / (1 - (1 - b) e)``, ``e ~ Beta((m-1)/2, (m-1)/2)``.

    ``inv_b = 1 / b`` as :func:`_wood_row_constants` gives it. One gamma and one normal variate per
    candidate (:func:`_wood_t`) instead of the two gamma variates of ``G1 / (G1 + G2)``: on a CPU a
    gamma variate costs several times a normal one.
    """
    gamma = gamma_variates(m, shape, inv_b)
    return _wood_t(gamma, torch.randn_like(gamma), inv_b)


def gamma_variates(m: int, shape: tuple[int, ...], like: Tensor) -> Tensor:
    """``Gamma((m - 1) / 2)`` variates of ``shape`` (``torch._standard_gamma``), in ``like``'s dtype and
    on its device: the variates of Wood's and of the gamma proposal."""
    return torch._standard_gamma(
        torch.full(shape, (m - 1) / 2, dtype=like.dtype, device=like.device)
    )


def _wood_offset(kappa: Tensor, m: int, x0: Tensor, one_minus_x0: Tensor) -> Tensor:
    """The part of Wood's log-ratio that depends on the row only: ``kappa (1 - x0) - (m - 1) log((1 - x0)(1 + x0))``."""
    log_product = torch.log(one_minus_x0).add_(torch.log1p(x0))
    return torch.sub(kappa * one_minus_x0, log_product, alpha=m - 1)


def _wood_log_ratio(
    t: Tensor, kappa: Tensor, m: int, x0: Tensor, one_minus_x0: Tensor, offset: Tensor
) -> Tensor:
    """``s(w) - c`` of Wood's test, ``kappa (w - x0) + (m - 1) log((1 - x0 w) / (1 - x0^2))``, at ``w = 1 - t``.

    Written as ``offset - kappa t + (m - 1) log((1 - x0) + x0 t)`` with the per-row
    ``offset = _wood_offset(kappa, m, x0, 1 - x0)``: four operations per round of candidates.
    """
    log_term = torch.addcmul(one_minus_x0, x0, t).log_()
    return torch.addcmul(offset, kappa, t, value=-1).add_(log_term, alpha=m - 1)


def limit_concentration(m: int) -> float:
    """The ``kappa`` from which the law of ``t = 1 - mu . x`` on ``S^{m-1}`` is ``G / (kappa + (a - 1) / 2)``,
    ``G ~ Gamma(a)``, ``a = (m - 1) / 2``, to rounding: ``max(1e6, s* sqrt(|a - 1| 2^50))`` with ``s* = a +
    12 sqrt(a) + 40``.

    In ``s = kappa t`` the density is proportional to ``exp(-s) s^(a-1) (1 - s / (2 kappa))^(a-1)`` on ``[0,
    2 kappa]``, and ``(a - 1) log(1 - s / (2 kappa)) = -(a - 1) (s / (2 kappa) + s^2 / (8 kappa^2) + ...)``:
    the first term only changes the rate of the gamma law to ``1 + (a - 1) / (2 kappa)``, the second moves
    the density by at most ``|a - 1| s*^2 / (8 kappa^2) <= 2^-53`` up to ``s*``, beyond every quantile a
    draw can reach (``u <= 1 - 2^-53``), and the mass beyond ``2 kappa`` is ``e^(-2 kappa)``. From this
    ``kappa`` on the samplers draw at the limit and scale ``t`` (:func:`clamp_concentration`), which keeps
    their arithmetic where it is exact: Wood's envelope constants overflow beyond ``kappa`` of about
    ``1e154``, and the inverse CDF, which works in the angle, keeps ``1e-10`` of ``t`` up to ``kappa`` of
    about ``1e12`` only (the limit is at most ``6.2e11`` for ``m <= 1024``, ``3.8e13`` at ``m = 20000``).
    """
    a = (m - 1) / 2
    s_max = a + 12 * math.sqrt(a) + 40
    return max(1e6, s_max * math.sqrt(abs(a - 1) * 2.0**50))


def clamp_concentration(kappa: Tensor, m: int) -> tuple[Tensor, Tensor]:
    """``(kappa_draw, scale)``: ``kappa`` clamped to the limit ``K`` of :func:`limit_concentration`, and
    ``(K + c) / (max(kappa, K) + c)``, ``c = (m - 3) / 4`` (exactly 1 within the limit, 0 at ``kappa = inf``,
    NaN at NaN): draws of ``t`` at ``kappa_draw`` times ``scale`` are draws at ``kappa``, to rounding."""
    limit = limit_concentration(m)
    shift = (m - 3) / 4
    return kappa.clamp(max=limit), torch.div(limit + shift, kappa.clamp(min=limit).add_(shift))


def _gamma_threshold(m: int) -> float:
    """Concentration from which :func:`wood_rejection` uses the gamma proposal rather than Wood's.

    The exact acceptance rates cross there: the gamma proposal's is ``sqrt(2 pi kappa) ive(m/2 - 1,
    kappa)`` (see :func:`_gamma_log_ratio`), rising to 1 like ``exp(-a (a - 1) / (2 kappa))`` with ``a =
    (m - 1) / 2``, while Wood's falls towards about ``1 / sqrt 2``: equal near ``kappa = a (a - 1) / log 2``.
    The crossing computed by quadrature of Wood's rate, fitted over ``m`` in ``[4, 1024]`` as ``a (a -
    1) / log 2 + 1.27 a``, is matched to 3e-5 (relative). The rule only sets the cost: each row's sample
    is exact with either proposal. ``inf`` below ``m = 4``, where the proposal is not used (at ``m = 2``
    its density ratio to the target is unbounded; ``m = 3`` has the closed form).
    """
    if m < 4:
        return math.inf
    a = (m - 1) / 2
    return a * (a - 1) / math.log(2.0) + _GAMMA_SWITCH_SLOPE * a


def _gamma_log_ratio(t: Tensor, m: int) -> Tensor:
    """``(a - 1) log(1 - t / 2)``, the log acceptance probability of a candidate ``t = G / kappa`` of the gamma proposal.

    In ``t = 1 - w`` the target density is proportional to ``exp(-kappa t) t^(a-1) (2 - t)^(a-1)`` on
    ``[0, 2]`` (``a = (m - 1) / 2``); the proposal ``t = G / kappa``, ``G ~ Gamma(a)``, has density
    proportional to ``exp(-kappa t) t^(a-1)`` on ``[0, inf)``. Their ratio is proportional to ``(2 -
    t)^(a-1)``, bounded by ``2^(a-1)`` for ``a >= 1``, so a candidate is accepted with probability ``(1 -
    t / 2)^(a-1)`` and one outside ``[0, 2]`` never: there ``log1p(-t / 2)`` is NaN, and ``log U <= NaN``
    is false. The overall acceptance rate is the ratio of the normalising constants, ``sqrt(2 pi kappa)
    ive(m/2 - 1, kappa)``, which tends to 1 as ``kappa`` grows. Needs ``m >= 4`` (``a - 1 > 0``:
    ``xlog1py`` returns 0 for a zero factor, also where ``t > 2``).
    """
    log_ratio: Tensor = torch.special.xlog1py((m - 3) / 2, t * -0.5)
    return log_ratio


_WOOD, _GAMMA, _MIXED = "wood", "gamma", "mixed"


class _Proposals:
    """The proposal of each row of :func:`wood_rejection`: Wood's, or ``t = G / kappa`` from :func:`_gamma_threshold` on.

    ``mode`` is ``"wood"`` or ``"gamma"`` when one proposal serves every row (the other's constants are
    then never formed) and ``"mixed"`` otherwise, where both are formed from one shared gamma variate
    per candidate and each row keeps its own by ``torch.where``. The per-row constants are held as
    tensors shaped like ``kappa`` (``(B,)``, or ``(B, 1)`` to broadcast over several samples a row);
    later rounds gather them at the pending rows from one stacked tensor.
    """

    def __init__(
        self, kappa: Tensor, m: int, mix: bool = True, extent: tuple[float, float] | None = None
    ) -> None:
        """``mix``: whether rows on both sides of the threshold may each get their own proposal; if
        not, they all get Wood's (valid for every ``kappa``). ``extent``: the smallest and largest
        ``kappa``, if the caller has read them."""
        self.m = m
        threshold = _gamma_threshold(m)
        if math.isinf(threshold):
            self.mode = _WOOD
        else:
            if extent is None:  # one operation; one proposal for all rows is usual
                lo_t, hi_t = torch.aminmax(kappa)
                extent = (lo_t.item(), hi_t.item())
            lo, hi = extent
            self.mode = _GAMMA if lo >= threshold else _WOOD if hi < threshold else _MIXED
            if self.mode == _MIXED and not mix:
                self.mode = _WOOD
        self.columns = self.row_constants(kappa, m, self.mode)
        self._stacked: Tensor | None = None

    @staticmethod
    def row_constants(kappa: Tensor, m: int, mode: str) -> tuple[Tensor, ...]:
        """The per-row constants of the proposals of ``mode``, shaped like ``kappa``: Wood's ``(kappa,
        1 / b, x0, 1 - x0, offset)`` unless ``mode`` is ``"gamma"``, then ``1 / kappa`` unless it is
        ``"wood"``, then for ``"mixed"`` whether the row takes the gamma proposal (1.0) or not (0.0)."""
        columns: list[Tensor] = []
        if mode != _GAMMA:
            columns += [kappa, *_wood_row_constants(kappa, m)]
        if mode != _WOOD:
            columns.append(kappa.reciprocal())
        if mode == _MIXED:
            columns.append((kappa >= _gamma_threshold(m)).to(kappa.dtype))
        return tuple(columns)

    def at(self, rows: Tensor) -> tuple[Tensor, ...]:
        """The constants ``(P,)`` of the rows ``rows``: one gather from a stack built on first use."""
        if self._stacked is None:
            self._stacked = torch.stack(self.columns).view(len(self.columns), -1)
        gathered: Tensor = self._stacked[:, rows]
        return gathered.unbind(0)

    def draw(self, columns: tuple[Tensor, ...], shape: torch.Size) -> tuple[Tensor, Tensor]:
        """Candidates ``t`` of ``shape`` for rows with constants ``columns``, and their acceptance tests."""
        gamma = gamma_variates(self.m, shape, columns[0])
        normal = None if self.mode == _GAMMA else torch.randn_like(gamma)
        t, log_bound = candidates(self.mode, columns, self.m, gamma, normal)
        return t, torch.rand_like(t).log_() <= log_bound


def candidates(
    mode: str, columns: tuple[Tensor, ...], m: int, gamma: Tensor, normal: Tensor | None
) -> tuple[Tensor, Tensor]:
    """Candidates ``t`` and the logs of their acceptance probabilities, from the variates of a round.

    ``columns``: :meth:`_Proposals.row_constants` of ``mode``, broadcastable against the variates
    ``gamma`` (``Gamma((m - 1) / 2)``, overwritten) and ``normal`` (``N(0, 1)``; ``None`` for
    ``"gamma"``). A candidate is accepted when ``log U`` is at most its value. No data-dependent branch.
    """
    if mode == _GAMMA:
        t = gamma.mul_(columns[0])
        return t, _gamma_log_ratio(t, m)
    assert normal is not None
    kappa, inv_b, x0, one_minus_x0, offset = columns[:5]
    # the gamma candidate first: _wood_t overwrites the shared variate
    t_gamma = gamma * columns[5] if mode == _MIXED else None
    t = _wood_t(gamma, normal, inv_b)
    log_bound = _wood_log_ratio(t, kappa, m, x0, one_minus_x0, offset)
    if t_gamma is not None:
        use_gamma = columns[6] != 0
        t = torch.where(use_gamma, t_gamma, t)
        log_bound = torch.where(use_gamma, _gamma_log_ratio(t_gamma, m), log_bound)
    return t, log_bound


def _first_round_candidates(total: int) -> int:
    """Candidates per sample in the first round of :func:`wood_rejection`, for ``total`` samples.

    Small draws (a training batch) get enough that even at the worst acceptance rate fewer than 0.05
    samples are expected to be left for a second round: every round costs a few dozen tensor
    operations, whose dispatch outweighs the arithmetic of a few hundred proposals. Large draws start
    with two candidates, which are mostly enough at the usual acceptance rates (0.7 to 1).
    """
    finishing = math.ceil(math.log(0.05 / total) / math.log(_REJECTION_WORST_REJECT))
    return max(_REJECTION_FIRST_CANDIDATES, min(finishing, _REJECTION_FIRST_ROUND_BUDGET // total))


def wood_rejection(kappa: Tensor, m: int, n: int) -> tuple[Tensor, Tensor]:
    """Exact samples of ``t = 1 - w`` by rejection from Wood's proposal or, at large ``kappa``, a gamma one.

    Rows whose ``kappa`` is beyond :func:`limit_concentration` are drawn at that limit and scaled
    (:func:`clamp_concentration`); rows whose ``kappa`` is NaN, which accept no candidate, get NaN.

    Each row uses the proposal with the higher acceptance rate (:func:`_gamma_threshold`; except in a
    draw of fewer than ``_MIXED_PROPOSALS_MIN_SAMPLES`` samples whose rows straddle the threshold, which
    takes Wood's for all rows: fewer operations): Wood's, or
    from ``m = 4`` on and where ``kappa`` is large, ``t = G / kappa`` with ``G ~ Gamma((m-1)/2)``
    (:func:`_gamma_log_ratio`), which accepts with probability close to 1 there (0.92 at ``m = 10``,
    ``kappa = 100``, against about 0.7 for Wood's) and costs fewer operations. Every sample takes the
    first accepted candidate of its own sequence of proposals, so the rounds (and how many candidates
    each draws) change the cost, never the distribution.

    Args:
        kappa: ``(B,)`` concentrations (float64, no grad).
        m: ambient dimension.
        n: samples per batch element.

    Returns:
        ``t`` of shape ``(B, n)`` and the acceptance rate of the first round per batch element ``(B,)``.

    Raises:
        RuntimeError: if some sample has no accepted proposal after the bounded number of rounds.
    """
    if kappa.numel() == 0:
        return kappa.new_empty(0, n), kappa.new_empty(0)
    lo_t, hi_t = torch.aminmax(kappa)  # one operation, read once: the proposal and the limit
    lo, hi = lo_t.item(), hi_t.item()
    limit = limit_concentration(m)
    if not hi <= limit:  # beyond the limit, or NaN somewhere (then each row takes its own proposal)
        kappa_draw, scale = clamp_concentration(kappa, m)
        extent = (min(lo, limit), limit) if not math.isnan(hi) else (math.nan, math.nan)
        t, rate = _wood_rejection(kappa_draw, m, n, extent)
        return t.mul_(scale.unsqueeze(-1)), rate
    return _wood_rejection(kappa, m, n, (lo, hi))


def _wood_rejection(
    kappa: Tensor, m: int, n: int, extent: tuple[float, float]
) -> tuple[Tensor, Tensor]:
    """:func:`wood_rejection` for ``kappa`` within :func:`limit_concentration` (or NaN); ``extent``: its
    smallest and largest value (NaN where some ``kappa`` is NaN)."""
    n_rows = kappa.shape[0]
    # the per-row constants broadcast over the first round's candidates (and samples, for n > 1)
    # a small draw whose rows straddle the threshold takes Wood's proposal for all of them: mixing
    # costs eight more tensor operations a round, more than the gamma proposal's higher acceptance
    # saves at that size (measured at 64 rows, m = 11: 90 against 112 us)
    mix = n_rows * n > _MIXED_PROPOSALS_MIN_SAMPLES
    proposals = _Proposals(kappa if n == 1 else kappa.unsqueeze(-1), m, mix, extent)
    out: Tensor | None = None
    pending: Tensor | None = None  # flat indices (row * n + sample) still waiting; None: all
    acceptance: Tensor | None = None
    n_cand = _first_round_candidates(n_rows * n)
    drawn = 0
    for _ in range(_REJECTION_MAX_ROUNDS):
        drawn += n_cand
        if pending is None:
            shape = torch.Size((n_cand, n_rows) if n == 1 else (n_cand, n_rows, n))
            t, accepted = proposals.draw(proposals.columns, shape)
            acceptance = accepted.mean(0 if n == 1 else (0, 2), dtype=kappa.dtype)
            if n > 1:
                t, accepted = t.view(n_cand, -1), accepted.view(n_cand, -1)
        else:
            rows = pending if n == 1 else pending.div(n, rounding_mode="floor")
            t, accepted = proposals.draw(proposals.at(rows), torch.Size((n_cand, rows.numel())))
        # (any accepted, index of the first accepted candidate): max, like argmax, returns the first
        # maximal index, and its kernel is an order of magnitude faster on a CPU for this reduction
        has, first = accepted.view(torch.uint8).max(0, keepdim=True)
        value = t.gather(0, first).view(-1)
        assert acceptance is not None
        if bool(has.all()):  # the usual case: no bookkeeping
            if out is None:
                return value.view(n_rows, n), acceptance
            out[pending] = value
            return out.view(n_rows, n), acceptance
        done = has.view(-1).bool()
        if out is None or pending is None:
            out = value  # samples without an accepted candidate are overwritten in later rounds
            pending = done.logical_not().nonzero().view(-1)
            # a NaN concentration (accepted with validation off) accepts no candidate: NaN samples
            lost = kappa[pending if n == 1 else pending.div(n, rounding_mode="floor")].isnan()
            if bool(lost.any()):
                out[pending[lost]] = math.nan
                pending = pending[lost.logical_not()]
                if pending.numel() == 0:
                    return out.view(n_rows, n), acceptance
        else:
            out[pending[done]] = value[done]
            pending = pending[done.logical_not()]
        n_pending = pending.numel()
        finishing = math.ceil(math.log(0.01 / n_pending) / math.log(_REJECTION_WORST_REJECT))
        affordable = n_pending * finishing <= _REJECTION_ROUND_BUDGET
        n_cand = max(2 * n_cand, finishing) if affordable else 2 * n_cand
    assert pending is not None
    bad = kappa[pending[0] // n].item()
    raise RuntimeError(
        f"von Mises-Fisher rejection sampler: no proposal accepted after {drawn} candidates "
        f"for m={m}, kappa={bad!r}"
    )


def metropolis_hastings(kappa: Tensor, m: int, n: int, steps: int) -> tuple[Tensor, Tensor]:
    """Samples of ``t = 1 - w`` from independent Metropolis-Hastings chains with Wood's proposal.

    Each of the ``n`` samples per batch element is the state of its own chain after ``steps`` steps,
    started from a draw of the proposal. The chain's distribution approaches the target geometrically,
    with rate at most ``1 - 1/M`` per step (``M`` the envelope constant, the inverse of the acceptance
    rate of the rejection sampler; Mengersen and Tweedie 1996).

    Returns:
        ``t`` of shape ``(B, n)`` and the mean acceptance rate over chains and steps ``(B,)``.
    """
    # The proposals do not depend on the chain's state: all of them (and the uniforms of the
    # acceptance tests) are drawn at once, and the chain is then a function of the log-ratios alone
    # (_chain_by_jumps or _chain_by_steps, which give the same states). Rows beyond the limit run at
    # the limit and are scaled (clamp_concentration).
    # On the CPU the largest kappa is read (no wait) and the clamp skipped where no row needs it.
    gamma, normal, log_u = mh_variates(kappa, m, n, steps)
    chains = kappa.shape[0] * n
    small = chains <= _MH_JUMP_TABLE_MAX_CHAINS and chains * (steps + 1) ** 2 <= _MH_JUMP_TABLE_MAX
    chain = _chain_by_jumps if small else _chain_by_steps
    on_cpu = kappa.device.type == "cpu"
    if on_cpu and (kappa.numel() == 0 or float(kappa.max()) <= limit_concentration(m)):
        return mh_chains(kappa, m, gamma, normal, log_u, chain)
    kappa_draw, scale = clamp_concentration(kappa, m)
    t, rate = mh_chains(kappa_draw, m, gamma, normal, log_u, chain)
    return t.mul_(scale.unsqueeze(-1)), rate


def mh_variates(kappa: Tensor, m: int, n: int, steps: int) -> tuple[Tensor, Tensor, Tensor]:
    """The random numbers of :func:`metropolis_hastings`: ``Gamma((m - 1) / 2)`` and ``N(0, 1)``
    variates ``(steps + 1, B, n)`` for the proposals, and the logs of the tests' uniforms ``(steps, B, n)``."""
    shape = (steps + 1, kappa.shape[0], n)
    gamma = gamma_variates(m, shape, kappa)
    normal = torch.randn_like(gamma)
    log_u = torch.rand(steps, kappa.shape[0], n, dtype=kappa.dtype, device=kappa.device).log_()
    return gamma, normal, log_u


def mh_chains(
    kappa: Tensor,
    m: int,
    gamma: Tensor,
    normal: Tensor,
    log_u: Tensor,
    chain: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]],
) -> tuple[Tensor, Tensor]:
    """:func:`metropolis_hastings` from its random numbers (:func:`mh_variates`; ``gamma`` is
    overwritten), with the chains run by ``chain`` (:func:`_chain_by_jumps` or :func:`_chain_by_steps`).
    No data-dependent branch."""
    k = kappa.unsqueeze(-1)  # (B, 1), broadcast over the chains
    inv_b, x0, one_minus_x0, offset = _wood_row_constants(k, m)  # as the rejection sampler's
    proposals = _wood_t(gamma, normal, inv_b)
    log_ratios = _wood_log_ratio(proposals, k, m, x0, one_minus_x0, offset)
    n_states, rows, n = proposals.shape
    state, moves = chain(log_ratios.view(n_states, -1), log_u.view(n_states - 1, -1))
    t = proposals.view(n_states, -1).gather(0, state.unsqueeze(0)).view(rows, n)
    return t, (moves.to(kappa.dtype) / max(n_states - 1, 1)).view(rows, n).mean(-1)


def _chain_by_steps(log_ratios: Tensor, log_u: Tensor) -> tuple[Tensor, Tensor]:
    """Independence Metropolis-Hastings chains run step by step.

    Step ``k`` (``0 <= k < S``) moves a chain from its state ``i`` to proposal ``k + 1`` when
    ``log u_k <= r_{k+1} - r_i``, with ``r`` the log-ratios of :func:`_wood_log_ratio`; every chain
    starts at proposal 0.

    Args:
        log_ratios: ``(S + 1, C)``, ``r`` of each proposal of ``C`` chains.
        log_u: ``(S, C)``, the logarithms of the uniforms of the tests.

    Returns:
        the index ``(C,)`` (int64) of the final state's proposal, and the number of moves ``(C,)``.
    """
    state = torch.zeros(log_ratios.shape[1], dtype=torch.long, device=log_ratios.device)
    log_r = log_ratios[0]
    moves = torch.zeros_like(state)
    for step in range(log_u.shape[0]):
        accept = log_u[step] <= log_ratios[step + 1] - log_r
        state = torch.where(accept, step + 1, state)
        log_r = torch.where(accept, log_ratios[step + 1], log_r)
        moves.add_(accept)
    return state, moves


def _chain_by_jumps(log_ratios: Tensor, log_u: Tensor) -> tuple[Tensor, Tensor]:
    """The same chains as :func:`_chain_by_steps`, from a table of jumps: a few operations for any ``S``.

    A chain in state ``i`` entered it at step ``i - 1`` (or started there, ``i = 0``), so its next state
    is ``next(i)``, the first ``j > i`` whose test ``log u_{j-1} + r_i <= r_j`` passes: every pair
    ``(i, j)`` is tested at once, a ``(C, S + 1, S + 1)`` table. With ``f(i) = next(i)`` where there is
    one and ``f(i) = i`` where the chain stays in ``i`` to the end, the final state is ``f^S(0)``;
    ``f`` is squared ``ceil(log2 S)`` times (``f <- f o f``, one gather), counting the moves on the way.
    At training sizes this replaces ``9 S`` small tensor operations (225 at ``S = 25``) with about 20,
    whose dispatch rather than arithmetic sets the time; the table's size limits it to small draws.
    """
    n_states, chains = log_ratios.shape
    r = log_ratios.t()  # (C, S + 1)
    # the test of proposal j is log u_{j-1}; proposal 0 is never moved to (+inf), nor any j <= i
    never = torch.full((chains, 1), math.inf, dtype=r.dtype, device=r.device)
    lhs = torch.cat([never, log_u.t()], dim=1).unsqueeze(1) + _later_mask(n_states, r)
    passes = torch.le(lhs.add_(r.unsqueeze(-1)), r.unsqueeze(1))  # (C, i, j)
    has, first = passes.view(torch.uint8).max(-1)
    here = torch.arange(n_states, device=r.device)
    jump = torch.where(has.bool(), first, here)  # f(i)
    moves = has.long()  # moves made by f from i
    for _ in range(max(n_states - 2, 0).bit_length()):  # 2^k >= S applications
        moves = moves + moves.gather(1, jump)
        jump = jump.gather(1, jump)
    return jump[:, 0], moves[:, 0]


_MASK_CACHE: dict[tuple[int, torch.dtype, torch.device], Tensor] = {}


def _later_mask(n: int, like: Tensor) -> Tensor:
    """``(n, n)``: 0 where ``j > i``, ``+inf`` elsewhere (cached per size, dtype and device)."""
    key = (n, like.dtype, like.device)
    if key not in _MASK_CACHE:
        later = torch.ones(n, n, dtype=torch.bool, device=like.device).triu(1)
        _MASK_CACHE[key] = torch.zeros(n, n, dtype=like.dtype, device=like.device).masked_fill(
            ~later, math.inf
        )
    return _MASK_CACHE[key]


def closed_form_m3(kappa: Tensor, n: int) -> Tensor:
    """Exact inversion at ``m = 3``: ``t = -log1p(u expm1(-2 kappa)) / kappa``, ``u ~ U(0, 1)``.

    Differentiable in ``kappa`` (the pathwise gradient of an inversion sampler is exact). Below
    ``kappa = 1e-6`` the second-order expansion ``t = 2u - 2u(1 - u) kappa`` is used, which is exact to
    rounding there and has the right derivative at ``kappa = 0``.

    Returns:
        ``t`` of shape ``(B, n)``.
    """
    k = kappa.unsqueeze(-1)
    u = torch.rand(k.shape[0], n, dtype=kappa.dtype, device=kappa.device)
    small = k < 1e-6
    k_safe = torch.where(small, torch.ones_like(k), k)
    exact = -torch.log1p(u * torch.expm1(-2 * k_safe)) / k_safe
    return torch.where(small, 2 * u - 2 * u * (1 - u) * k, exact)


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
        self.theta_lo = _theta_from_t((one_minus_mean - _GRID_HALF_WIDTH_SD * sd).clamp(min=0.0))
        self.theta_hi = _theta_from_t((one_minus_mean + _GRID_HALF_WIDTH_SD * sd).clamp(max=2.0))
        self.theta_star = _theta_from_t(one_minus_mean)


def _gl_nodes(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Gauss-Legendre nodes ``(..., k)`` and weights for ``int_a^b`` (oriented: ``b < a`` is allowed)."""
    nodes, weights = _rule(_GL_NODES, a.dtype, a.device)
    length = (b - a).unsqueeze(-1)
    return torch.addcmul(a.unsqueeze(-1), length, nodes), (0.5 * length) * weights


def _log_density_derivatives(
    kappa: Tensor, sin: Tensor, cos: Tensor, m: int
) -> tuple[Tensor, Tensor]:
    """``(-dl/dtheta, -d^2 l/dtheta^2)`` of ``l = log p`` at ``theta``, from ``sin theta`` and ``cos theta``.

    ``-dl/dtheta = kappa sin - (m - 2) cos / sin`` and ``-d^2 l / dtheta^2 = kappa cos + (m - 2) /
    sin^2``; fresh tensors of the broadcast shape.
    """
    neg_slope = kappa * sin
    neg_curvature = kappa * cos
    if m > 2:
        inv_sin = sin.reciprocal()
        neg_slope.addcmul_(cos, inv_sin, value=-(m - 2))
        neg_curvature.addcmul_(inv_sin, inv_sin, value=m - 2)
    return neg_slope, neg_curvature


def _decay_length(
    kappa: Tensor, sin: Tensor, cos: Tensor, m: int, side: Tensor, decay: float
) -> Tensor:
    """How far from ``theta`` towards ``side`` (``-1``: towards 0, ``+1``: towards pi) ``log p`` falls by ``decay``.

    With ``l = log p``, ``lambda = -dl/dx`` and ``c = -d^2 l / dx^2`` at ``theta`` (``x`` the distance
    away from it, both clamped at 0), the length is the root ``D = 2K / (lambda + sqrt(lambda^2 +
    2 c K))`` of ``lambda D + c D^2 / 2 = K`` (``K = decay``): the quadratic model of ``l``, which
    decays no faster than ``l`` itself on the stretches where the density is log-concave
    (:func:`_log_density_derivatives`). Not finite where ``sin`` underflows or the density is flat (callers bound it by the
    distance to the end of ``[0, pi]``).

    Shapes: ``kappa`` broadcastable against ``sin``, ``cos`` and ``side``; returns their shape.
    """
    neg_slope, c = _log_density_derivatives(kappa, sin, cos, m)
    lam = neg_slope.mul_(side).clamp_(min=0.0)
    c.clamp_(min=0.0)
    root = torch.addcmul(c.mul_(2 * decay), lam, lam).sqrt_()
    return root.add_(lam).reciprocal_().mul_(2 * decay)


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
    placement forms ``dL/dtheta`` (bounded) instead of multiplying the two (:class:`_PlaceOnSphere`).

    ``d theta / d kappa = int_theta^end (cos phi - A) p(phi) / p(theta) d phi``, oriented, with ``end``
    the end of ``[0, pi]`` on the sample's side of ``theta* = arccos A`` (so the integrand has one sign;
    the sample is left of ``theta*`` exactly when ``t <= 1 - A``). The integrand is cut where it has
    fallen below ``exp(-60)`` of its value at ``theta``, a distance ``D`` away
    (:func:`_decay_length`). One 20-node Gauss-Legendre panel over ``[theta, theta +- D]`` then matches
    a 24-panel reference to 2e-8 (relative) over the whole range of ``m`` and ``kappa``. The angle terms at the sample come
    from ``t`` itself: ``sin^2(theta / 2) = t / 2``, ``cos theta = 1 - t``, ``sin^2 theta = t (2 - t)``.
    ``one_minus_mean``: ``1 - A`` ``(B,)`` (cancellation-free), if the caller has it already.
    ``single``: the result serves parameters in single precision; a 12-node panel down to ``exp(-30)``
    then keeps a relative error below ``1e-6`` (the values are still computed in ``t``'s dtype).
    """
    nodes, decay = (
        (_DIRECT_NODES_SINGLE, _DIRECT_LOG_DECAY_SINGLE)
        if single
        else (_DIRECT_NODES, _DIRECT_LOG_DECAY)
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
    cut = _decay_length(k, sin, cos, m, side, decay)
    # a non-finite cut (sin underflowing at the very ends, or a flat density) is replaced by the
    # whole stretch to the end: fmin returns its other argument where one is NaN
    length = torch.fmin(torch.where(left, theta, math.pi - theta), cut)
    half_length = length.mul_(side).mul_(0.5)
    # log p(theta) on _quadrature's scale: -kappa t + ((m - 2) / 2) log(sin^2 theta / 4)
    if m > 2:
        log_p_theta = torch.log(0.25 * sin_sq).mul_(0.5 * (m - 2)).addcmul_(k, t, value=-1)
    else:
        log_p_theta = torch.mul(k, t).neg_()
    dtheta = _quadrature(
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
    ``_DIRECT_GRADIENT_MAX_SAMPLES`` samples a row, else from a :class:`MarginalGrid` per row.

    ``terms``: ``spherevae.special.bessel_terms(m / 2 - 1, kappa)`` (``(B,)`` each) if known: neither
    way then needs a Bessel evaluation of its own. ``single``: see :func:`dtheta_dkappa_direct`.
    """
    if t.shape[-1] <= _DIRECT_GRADIENT_MAX_SAMPLES:
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
        t_nodes, sin_nodes = _angle_terms(nodes)
        log_p = _log_density(t_nodes, sin_nodes, kappa[:, None, None], m)
        self.log_p_ref = log_p.amax(dim=(-1, -2))
        self.log_p_ref_reduced = self.log_p_ref - (m - 2) * math.log(2.0)  # for _quadrature
        dens = torch.exp(log_p - self.log_p_ref[:, None, None])
        grad_mass = (weights * dens * (one_minus_mean[:, None, None] - t_nodes)).sum(-1)
        zero = torch.zeros_like(kappa).unsqueeze(-1)
        self.cum_grad_left = torch.cat([zero, grad_mass.cumsum(-1)], dim=-1)
        self.cum_grad_right = torch.cat([grad_mass.flip(-1).cumsum(-1).flip(-1), zero], dim=-1)

    def _density(self, theta: Tensor) -> Tensor:
        """Unnormalised density at ``theta`` of shape ``(B, n)``, on the grid's scale."""
        return torch.exp(
            _log_density_theta(theta, self.kappa[:, None], self.m) - self.log_p_ref[:, None]
        )

    def _score_integral(self, a: Tensor, b: Tensor) -> Tensor:
        """``int_a^b (cos - A) p`` over ``(B, n)`` intervals (8-point Gauss-Legendre)."""
        return _quadrature(
            a,
            (b - a) / 2,
            _GL_NODES,
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
        theta = _theta_from_t(t)
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
