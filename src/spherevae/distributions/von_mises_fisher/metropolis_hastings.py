r"""Independence Metropolis-Hastings chains for ``t = 1 - mu . x`` with Wood's proposal.

The proposal density is ``g(w) ~ (1 - w^2)^{(m-3)/2} (1 - x0 w)^{-(m-1)}``, so the acceptance ratio
``pi(w') g(w) / (pi(w) g(w'))`` is ``exp(s(w') - s(w))`` with ``s(w) = kappa w + (m-1) log(1 - x0
w)``. The proposals do not depend on the chain's state: all of them are drawn at once and the chain
is a function of their log-ratios (:func:`chain_by_steps`, or a table of jumps for small draws).
After ``n`` steps the total-variation distance to the vMF is at most ``(1 - 1/M)^n`` (Mengersen and
Tweedie 1996, theorem 2.1), ``M`` the envelope constant.

References:
    K. L. Mengersen, R. L. Tweedie (1996), Rates of convergence of the Hastings and Metropolis
    algorithms, Ann. Statist. 24.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ...tracing import builds_constants
from .marginal import clamp_concentration, limit_concentration
from .proposals import gamma_variates, wood_log_ratio, wood_row_constants, wood_t

# Metropolis-Hastings chains are run from a table of jumps (chain_by_jumps) up to this many chains,
# step by step above: the table's arithmetic grows like chains * (steps + 1)^2 and the steps' like
# chains * steps, so the table wins where dispatch dominates (measured at m = 11, one thread: 0.27
# against 0.37 ms for 64 chains of 25 steps, 0.42 against 0.47 at 128, 0.76 against 0.66 at 256,
# 3.1 against 1.9 at 1024; at 10 and 50 steps the crossing is between 64 and 256 chains as well)
_MH_JUMP_TABLE_MAX_CHAINS = 128


_MH_JUMP_TABLE_MAX = 1 << 21  # and at most this many table entries, chains * (steps + 1)^2 (memory)


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
    # (chain_by_jumps or chain_by_steps, which give the same states). Rows beyond the limit run at
    # the limit and are scaled (clamp_concentration).
    # On the CPU the largest kappa is read (no wait) and the clamp skipped where no row needs it.
    gamma, normal, log_u = mh_variates(kappa, m, n, steps)
    chains = kappa.shape[0] * n
    small = chains <= _MH_JUMP_TABLE_MAX_CHAINS and chains * (steps + 1) ** 2 <= _MH_JUMP_TABLE_MAX
    chain = chain_by_jumps if small else chain_by_steps
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
    overwritten), with the chains run by ``chain`` (:func:`chain_by_jumps` or :func:`chain_by_steps`).
    No data-dependent branch."""
    k = kappa.unsqueeze(-1)  # (B, 1), broadcast over the chains
    inv_b, x0, one_minus_x0, offset = wood_row_constants(k, m)  # as the rejection sampler's
    proposals = wood_t(gamma, normal, inv_b)
    log_ratios = wood_log_ratio(proposals, k, m, x0, one_minus_x0, offset)
    n_states, rows, n = proposals.shape
    state, moves = chain(log_ratios.view(n_states, -1), log_u.view(n_states - 1, -1))
    t = proposals.view(n_states, -1).gather(0, state.unsqueeze(0)).view(rows, n)
    return t, (moves.to(kappa.dtype) / max(n_states - 1, 1)).view(rows, n).mean(-1)


def chain_by_steps(log_ratios: Tensor, log_u: Tensor) -> tuple[Tensor, Tensor]:
    """Independence Metropolis-Hastings chains run step by step.

    Step ``k`` (``0 <= k < S``) moves a chain from its state ``i`` to proposal ``k + 1`` when
    ``log u_k <= r_{k+1} - r_i``, with ``r`` the log-ratios of :func:`wood_log_ratio`; every chain
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


def chain_by_jumps(log_ratios: Tensor, log_u: Tensor) -> tuple[Tensor, Tensor]:
    """The same chains as :func:`chain_by_steps`, from a table of jumps: a few operations for any ``S``.

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
        _MASK_CACHE[key] = _build_mask(n, like.dtype, like.device)
    return _MASK_CACHE[key]


@builds_constants
def _build_mask(n: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    later = torch.ones(n, n, dtype=torch.bool, device=device).triu(1)
    return torch.zeros(n, n, dtype=dtype, device=device).masked_fill(~later, math.inf)
