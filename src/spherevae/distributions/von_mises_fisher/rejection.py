r"""Exact rejection sampling of ``t = 1 - mu . x`` for the von Mises-Fisher distribution.

:func:`wood_rejection`: each row takes Wood's proposal or, from ``m = 4`` on and where ``kappa`` is
large, the gamma proposal (:mod:`.proposals`). The first round draws 2 candidates per sample (up to
7 for draws of training size, so that a second round is rarely needed), later rounds at least twice
as many per pending sample; they stop after a bounded number, raising ``RuntimeError`` rather than
returning a wrong value. Every sample takes the first accepted candidate of its own sequence of
proposals, so the rounds change the cost, never the law.

:func:`closed_form_m3`: at ``m = 3`` the CDF inverts exactly, ``t = -log1p(u expm1(-2 kappa)) /
kappa``.

References:
    A. T. A. Wood (1994), Simulation of the von Mises Fisher distribution, Comm. Statist. Simul. 23.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .marginal import clamp_concentration, limit_concentration
from .proposals import (
    GAMMA,
    MIXED,
    WOOD,
    gamma_log_ratio,
    gamma_threshold,
    gamma_variates,
    wood_log_ratio,
    wood_row_constants,
    wood_t,
)

REJECTION_FIRST_CANDIDATES = 2


REJECTION_MAX_ROUNDS = 12  # each round at least doubles: >= 2 + 4 + ... + 4096 candidates a sample


# Wood's envelope accepts with probability >= 0.655 over m in [2, 20000], kappa in [1e-3, 1e6]
# (measured), and the gamma proposal serves only where it accepts more often (gamma_threshold): a later round gives each pending sample enough candidates that fewer than 0.01 samples
# are expected to remain, while that costs at most this many proposals (rounds cost fixed overhead)
_REJECTION_WORST_REJECT = 0.345


_REJECTION_ROUND_BUDGET = 8192


_REJECTION_FIRST_ROUND_BUDGET = (
    512  # proposals that a first round may draw to make a second unlikely
)


# below this many samples a batch whose rows straddle the gamma threshold uses Wood's proposal for all
# rows (wood_rejection): at training sizes the operations of mixing cost more than they save
_MIXED_PROPOSALS_MIN_SAMPLES = 1024


class Proposals:
    """The proposal of each row of :func:`wood_rejection`: Wood's, or ``t = G / kappa`` from :func:`gamma_threshold` on.

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
        threshold = gamma_threshold(m)
        if math.isinf(threshold):
            self.mode = WOOD
        else:
            if extent is None:  # one operation; one proposal for all rows is usual
                lo_t, hi_t = torch.aminmax(kappa)
                extent = (lo_t.item(), hi_t.item())
            lo, hi = extent
            self.mode = GAMMA if lo >= threshold else WOOD if hi < threshold else MIXED
            if self.mode == MIXED and not mix:
                self.mode = WOOD
        self.columns = self.row_constants(kappa, m, self.mode)
        self._stacked: Tensor | None = None

    @staticmethod
    def row_constants(kappa: Tensor, m: int, mode: str) -> tuple[Tensor, ...]:
        """The per-row constants of the proposals of ``mode``, shaped like ``kappa``: Wood's ``(kappa,
        1 / b, x0, 1 - x0, offset)`` unless ``mode`` is ``"gamma"``, then ``1 / kappa`` unless it is
        ``"wood"``, then for ``"mixed"`` whether the row takes the gamma proposal (1.0) or not (0.0)."""
        columns: list[Tensor] = []
        if mode != GAMMA:
            columns += [kappa, *wood_row_constants(kappa, m)]
        if mode != WOOD:
            columns.append(kappa.reciprocal())
        if mode == MIXED:
            columns.append((kappa >= gamma_threshold(m)).to(kappa.dtype))
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
        normal = None if self.mode == GAMMA else torch.randn_like(gamma)
        t, log_bound = candidates(self.mode, columns, self.m, gamma, normal)
        return t, torch.rand_like(t).log_() <= log_bound


def candidates(
    mode: str, columns: tuple[Tensor, ...], m: int, gamma: Tensor, normal: Tensor | None
) -> tuple[Tensor, Tensor]:
    """Candidates ``t`` and the logs of their acceptance probabilities, from the variates of a round.

    ``columns``: :meth:`Proposals.row_constants` of ``mode``, broadcastable against the variates
    ``gamma`` (``Gamma((m - 1) / 2)``, overwritten) and ``normal`` (``N(0, 1)``; ``None`` for
    ``"gamma"``). A candidate is accepted when ``log U`` is at most its value. No data-dependent branch.
    """
    if mode == GAMMA:
        t = gamma.mul_(columns[0])
        return t, gamma_log_ratio(t, m)
    assert normal is not None
    kappa, inv_b, x0, one_minus_x0, offset = columns[:5]
    # the gamma candidate first: wood_t overwrites the shared variate
    t_gamma = gamma * columns[5] if mode == MIXED else None
    t = wood_t(gamma, normal, inv_b)
    log_bound = wood_log_ratio(t, kappa, m, x0, one_minus_x0, offset)
    if t_gamma is not None:
        use_gamma = columns[6] != 0
        t = torch.where(use_gamma, t_gamma, t)
        log_bound = torch.where(use_gamma, gamma_log_ratio(t_gamma, m), log_bound)
    return t, log_bound


def first_round_candidates(total: int) -> int:
    """Candidates per sample in the first round of :func:`wood_rejection`, for ``total`` samples.

    Small draws (a training batch) get enough that even at the worst acceptance rate fewer than 0.05
    samples are expected to be left for a second round: every round costs a few dozen tensor
    operations, whose dispatch outweighs the arithmetic of a few hundred proposals. Large draws start
    with two candidates, which are mostly enough at the usual acceptance rates (0.7 to 1).
    """
    finishing = math.ceil(math.log(0.05 / total) / math.log(_REJECTION_WORST_REJECT))
    return max(REJECTION_FIRST_CANDIDATES, min(finishing, _REJECTION_FIRST_ROUND_BUDGET // total))


def wood_rejection(kappa: Tensor, m: int, n: int) -> tuple[Tensor, Tensor]:
    """Exact samples of ``t = 1 - w`` by rejection from Wood's proposal or, at large ``kappa``, a gamma one.

    Rows whose ``kappa`` is beyond :func:`limit_concentration` are drawn at that limit and scaled
    (:func:`clamp_concentration`); rows whose ``kappa`` is NaN, which accept no candidate, get NaN.

    Each row uses the proposal with the higher acceptance rate (:func:`gamma_threshold`; except in a
    draw of fewer than ``_MIXED_PROPOSALS_MIN_SAMPLES`` samples whose rows straddle the threshold, which
    takes Wood's for all rows: fewer operations): Wood's, or
    from ``m = 4`` on and where ``kappa`` is large, ``t = G / kappa`` with ``G ~ Gamma((m-1)/2)``
    (:func:`gamma_log_ratio`), which accepts with probability close to 1 there (0.92 at ``m = 10``,
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
    proposals = Proposals(kappa if n == 1 else kappa.unsqueeze(-1), m, mix, extent)
    out: Tensor | None = None
    pending: Tensor | None = None  # flat indices (row * n + sample) still waiting; None: all
    acceptance: Tensor | None = None
    n_cand = first_round_candidates(n_rows * n)
    drawn = 0
    for _ in range(REJECTION_MAX_ROUNDS):
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
