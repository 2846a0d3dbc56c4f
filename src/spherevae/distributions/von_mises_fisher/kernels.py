r"""Compiled kernels for the von Mises-Fisher draws of training.

A :class:`~spherevae.distributions.VonMisesFisher` built with ``compiled=True`` draws through them (on
CPU and CUDA devices, up to :data:`MAX_SAMPLES_PER_ROW` samples a row); the models pass
``train.compiled_sampling`` down to their posterior (``auto``: on for CPU and CUDA devices).

Why: at training sizes (a batch of 64 rows, one sample each) a tensor operation costs 1 to 2 us of
dispatch and almost nothing of arithmetic. An eager draw with its gradient takes about 170 such
operations more than a Gaussian latent (the Bessel terms, a round of proposals and their tests, the
slope ``dtheta/dkappa`` by quadrature), a large share of the step of a small MLP VAE on a CPU. The
operations of the sampler and the slope have no data-dependent branch once a few choices are made for
the whole batch, so ``torch.compile`` fuses them into one C++ (or GPU) kernel: one call
(``benchmarks/compiled_sampling.py`` measures both paths side by side; results in
``benchmarks/README.md``).

What is compiled is the math of the eager path itself, not a second implementation: the Bessel terms
of :func:`spherevae.special.merged_values` (both regions on every element), the proposals and tests
of :func:`.rejection.candidates` (both proposals on every row, each row keeping its own), the
chains of :func:`.metropolis_hastings.mh_chains` (step by step), the Newton steps of
:mod:`.inverse_cdf` and the quadrature of :func:`.gradient.dtheta_dkappa_direct`. The random
numbers are drawn outside, by torch's generator, so that seeds work as everywhere else; the draws are
from the same law as the eager path's but not the same numbers for the same seed (gamma variates of
small shapes come from uniforms, and normal ones from Box-Muller pairs, :func:`_variates`; the eager
path takes Wood's proposal for every row of a small draw that straddles the gamma proposal's
threshold, and checks for convergence after each Newton step from the third on). The placement's
forward pass (:func:`spherevae.distributions.sphere.place`) runs in the same kernel when the caller gives ``loc`` and the
Gaussian; its backward pass stays eager: compiled as kernels of their own, the two passes were
faster with warm caches but slower with cold ones, as inside a training step (measured with a
scratch script, not in the repository).

Exactness is kept where the compiled call cannot decide alone:

- rejection: one round of ``K`` candidates per sample (``K`` as the eager sampler's first round for
  the draw's size, so that fewer than 0.05 samples a draw are expected to have none accepted); the
  samples without an accepted candidate are drawn again by the eager sampler, which continues their
  sequences of proposals (the law stays exact), and their slopes recomputed;
- inverse CDF: a fixed number of Newton steps, then the eager iteration for the rest if any sample
  has not converged, and the eager path for a draw with a quantile in the far right tail (``1 - u <
  2^-24``: probability 6e-8 a sample), which needs a bisection first;
- Metropolis-Hastings: the same chains, step by step.

Only draws of at most :data:`MAX_SAMPLES_PER_ROW` samples a row take this path (the per-sample
quadrature of the gradient; larger draws are not dispatch-bound). ``torch.compile`` needs a C++
compiler on the CPU; the first call of each kernel compiles it (seconds; cached on disk by
torch for later processes). If compiling fails, a warning says why and the eager path serves from
then on.
"""

from __future__ import annotations

import itertools
import math
import types
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import torch
from torch import Tensor
from torch.distributions import Distribution

from ...special import BesselTerms, OrderPlan, merged_values, order_plan
from ..sphere import clamp_one_minus_w, place
from . import gradient, inverse_cdf, marginal, metropolis_hastings, proposals, rejection

# Whether torch.compile failed here for the first kernel (no C++ compiler, a torch or Python version
# without it): a fact about the environment, recorded once so that later draws go the eager way at
# once. It never changes what a draw computes, only which code path computes it.
_compile_failures = {"first_kernel": False}


def compiling_works() -> bool:
    """``False`` once compiling the first kernel has failed in this process (a warning said why)."""
    return not _compile_failures["first_kernel"]


def clear_kernels() -> None:
    """Forget every compiled kernel and any failure to compile: the next draw compiles again (after
    a compiler was installed, or a module constant that the kernels read was changed, as in tests)."""
    _KERNELS.clear()
    _BOUND.clear()
    _compile_failures["first_kernel"] = False


class _Kernel:
    """A function compiled on its first call (``fullgraph``: no graph breaks), with some of its
    arguments bound as constants (the dimension ``m``, the slope's precision, the number of
    Metropolis-Hastings steps, which gradients are needed): ``torch.compile`` specialises on them
    rather than treating integers as dynamic. Each binding gets its own code object, so that its
    compiled variants do not crowd another's in torch's cache.

    Failures never reach the caller: if the first compile fails (no C++ compiler, a torch or Python
    version without ``torch.compile``), a warning says why, the call runs the function eagerly, and
    the compiled kernels are off for the process; if a later call fails (torch gives up recompiling a
    kernel for new shapes after its limit of 8 variants), that kernel alone runs eagerly from then on.
    """

    def __init__(self, fn: Callable[..., Any], constants: dict[str, Any]) -> None:
        def bound(*args: Any) -> Any:
            return fn(*args, **constants)

        # torch keeps its compiled variants per code object: a fresh one for each binding
        # a name never used before in the process: torch keys what it learns of a frame (which
        # arguments vary) by the code object's value, so a name reused after clear_kernels() would
        # make a new binding's constants look like varying arguments of the old one
        code = bound.__code__.replace(co_name=f"{fn.__name__}_{next(_KERNEL_NAMES)}")
        self.unique = types.FunctionType(
            code, bound.__globals__, code.co_name, None, bound.__closure__
        )
        self.eager = bound
        self.compiled: Callable[..., Any] | None = None
        self.failed = False

    def __call__(self, *args: Any) -> Any:
        if self.failed:
            return self.eager(*args)
        try:
            if self.compiled is not None:
                return self.compiled(*args)
            # the first call compiles. torch's compiler warns about its own internals while it loads
            # (a deprecation in torch.jit with torch 2.13), which a program that turns warnings into
            # errors (as our test suite does) would otherwise see as a failure to compile
            with warnings.catch_warnings(), _keeping_global_state():
                warnings.filterwarnings("ignore", module=r"torch(\.|$)")
                compiled = torch.compile(self.unique, fullgraph=True)
                out = compiled(*args)
            self.compiled = compiled
            return out
        except Exception as err:
            first = self.compiled is None
            self.failed = True
            if first:  # compiling does not work here: the eager path serves from now on
                _compile_failures["first_kernel"] = True
            # the cause is often on the message's second line: all of it, on one line, shortened
            message = " ".join(str(err).split())
            if len(message) > 400:
                message = message[:400] + " ..."
            what = "the eager path is used instead" if first else "this kernel now runs eagerly"
            warnings.warn(
                f"spherevae: compiling the von Mises-Fisher sampling kernels failed "
                f"({type(err).__name__}: {message}); {what} "
                "(train.compiled_sampling: false turns the attempt off)",
                RuntimeWarning,
                stacklevel=3,
            )
            return self.eager(*args)


@contextmanager
def _keeping_global_state() -> Iterator[None]:
    """Undo what loading torch's compiler changes for the whole process: it turns off the argument
    validation of every ``torch.distributions.Distribution`` (``torch._dynamo``'s patches, torch
    2.13), which would silently drop the checks of every distribution the user builds afterwards."""
    validate = Distribution._validate_args
    try:
        yield
    finally:
        Distribution.set_default_validate_args(validate)


_KERNELS: dict[tuple[Any, ...], _Kernel] = {}
_KERNEL_NAMES = itertools.count()


def kernel(fn: Callable[..., Any], **constants: Any) -> Callable[..., Any]:
    """``fn`` compiled with the keyword arguments ``constants`` bound (cached per function and values);
    called with ``fn``'s other arguments, positionally."""
    key = (fn, *constants.items())
    if key not in _KERNELS:
        _KERNELS[key] = _Kernel(fn, constants)
    return _KERNELS[key]


MAX_SAMPLES_PER_ROW = gradient.DIRECT_GRADIENT_MAX_SAMPLES


# gamma shapes (m - 1) / 2 up to this are drawn from uniforms and normals in the kernel
# (_variates): m <= 33
_GAMMA_BY_UNIFORMS_MAX_SHAPE = 16


# Newton steps of the compiled inversion before its one convergence check (one more than the eager
# iteration's minimum of 3: at training concentrations, m = 11, kappa in [5, 300], every draw had
# converged after them; tests/test_compiled_sampling.py checks that no draw there is redone)
NEWTON_STEPS = 4


def applies(device: torch.device, n: int) -> bool:
    """Whether a draw of ``n`` samples a row on ``device`` can take the compiled path: few enough
    samples, a CPU or CUDA device, and compiling works here (:func:`compiling_works`)."""
    return n <= MAX_SAMPLES_PER_ROW and device.type in ("cpu", "cuda") and compiling_works()


Placed = tuple[Tensor, tuple[Tensor, ...]]


class Draw(NamedTuple):
    """A compiled draw: ``t`` ``(B, n)``, the slope ``dtheta/dkappa`` ``(B, n)`` or ``None``, the Bessel
    terms ``(B,)`` of the concentrations, the acceptance rate ``(B,)`` (``None`` for the inverse CDF),
    and the samples placed on the sphere with what the backward pass reads (:func:`spherevae.distributions.sphere.place`),
    if the caller gave ``loc`` and the Gaussian (``None`` otherwise, or where a fallback changed
    ``t`` after the kernel)."""

    t: Tensor
    slope: Tensor | None
    terms: BesselTerms
    acceptance_rate: Tensor | None
    placed: Placed | None = None


def _placed(t: Tensor, loc: Tensor | None, gauss: Tensor | None) -> Placed | None:
    """:func:`spherevae.distributions.sphere.place` of ``t`` ``(B, n)`` at ``loc`` ``(B, m)`` with ``gauss`` ``(n, B, m)``, as
    :func:`spherevae.distributions.sphere.place_on_sphere` would do it (``t`` in ``loc``'s dtype, clamped to ``[0, 2]``);
    ``None`` without ``loc``. Inside a kernel: the placement's forward pass then costs no call of its
    own."""
    if loc is None or gauss is None:
        return None
    t = clamp_one_minus_w(t.transpose(0, 1).to(loc.dtype))
    return place(t, loc, gauss, for_backward=True)


def _slope(t: Tensor, kappa: Tensor, m: int, terms: BesselTerms, slope: str) -> Tensor | None:
    """``dtheta/dkappa`` for ``slope`` ``"double"`` or ``"single"`` precision of the parameters, or none."""
    if slope == "none":
        return None
    return gradient.dtheta_dkappa_direct(t, kappa, m, terms.complement, slope == "single")


def _draw_uniforms(m: int, shape: tuple[int, ...], like: Tensor) -> tuple[Tensor, Tensor | None]:
    """The random numbers of a round of proposals of ``shape``, for :func:`_variates`: one
    ``torch.rand`` of ``(k + 3, *shape)`` uniforms, and the ``Gamma((m - 1) / 2)`` variates themselves
    where their shape is above ``_GAMMA_BY_UNIFORMS_MAX_SHAPE`` (``k = 0`` then)."""
    a = (m - 1) / 2
    drawn = None
    if a > _GAMMA_BY_UNIFORMS_MAX_SHAPE:
        drawn = proposals.gamma_variates(m, shape, like)
    k = 0 if drawn is not None else int(a)
    return torch.rand((k + 3, *shape), dtype=like.dtype, device=like.device), drawn


def _variates(m: int, uniforms: Tensor, drawn: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """``(G, Z, U)``: ``Gamma((m - 1) / 2)``, ``N(0, 1)`` and ``U(0, 1)`` variates from
    :func:`_draw_uniforms`' numbers (inside a kernel, where these transformations cost almost nothing
    against drawing the variates with torch's own samplers, several operations each).

    A shape ``a = k + h / 2`` (``h`` 0 or 1) up to ``_GAMMA_BY_UNIFORMS_MAX_SHAPE`` takes ``k`` uniforms:
    ``Gamma(k)`` is a sum of ``k`` exponential variates, ``-log prod (1 - U_i)`` (``1 - U`` is in ``(0,
    1]``: no log of 0, and a product of at most 16 factors stays a normal number), and ``Gamma(1/2)``
    is ``Z'^2 / 2``. The normal variates ``Z`` and ``Z'`` are a Box-Muller pair from two uniforms,
    ``sqrt(-2 log(1 - U1)) (cos, sin)(2 pi U2)``, independent (its tails end at ``|Z| = 8.6``, where
    ``1 - U1`` reaches its smallest value ``2^-53``: a probability of ``1e-17`` left out). The last
    uniforms serve the acceptance tests.
    """
    k = uniforms.shape[0] - 3
    radius = torch.log1p(-uniforms[k]).mul_(-2).sqrt_()
    angle = uniforms[k + 1] * (2 * math.pi)
    normal = radius * torch.cos(angle)
    gamma: Tensor | None = drawn
    if gamma is None:
        # Gamma(k) from k exponential variates; 0 when a = 1/2
        gamma = torch.log(torch.prod(1 - uniforms[:k], dim=0)).neg_() if k > 0 else None
        if 2 * k != m - 1:  # a half-integer shape: a Gamma(1/2) variate more
            halves = (radius * torch.sin(angle)).square_().mul_(0.5)
            gamma = halves if gamma is None else gamma.add_(halves)
        assert gamma is not None
    return gamma, normal, uniforms[k + 2]


def _rejection_kernel(
    kappa: Tensor,
    uniforms: Tensor,
    drawn: Tensor | None,
    loc: Tensor | None,
    gauss: Tensor | None,
    plan: OrderPlan,
    m: int,
    slope: str,
) -> tuple[Tensor, Tensor, Tensor, Tensor | None, Tensor, Placed | None]:
    """One round of ``K`` candidates per sample, the Bessel terms and the slopes.

    Shapes: ``kappa`` ``(B,)``, the random numbers of :func:`_draw_uniforms` for ``(K, B, n)``
    candidates. Returns the Bessel rows ``(8, B)``, the first accepted candidate ``t`` ``(B, n)`` (any
    value where there is none), whether there is one ``(B, n)``, the slopes ``(B, n)``, the round's
    acceptance rate ``(B,)`` and the placement (:func:`_placed`).
    """
    gamma, normal, u = _variates(m, uniforms, drawn)
    log_u = u.log()
    values = merged_values(kappa, True, plan)
    mode = proposals.WOOD if math.isinf(proposals.gamma_threshold(m)) else proposals.MIXED
    # rows beyond the limit draw at the limit, scaled (:func:`.marginal.clamp_concentration`)
    kappa_draw, scale = marginal.clamp_concentration(kappa, m)
    columns = rejection.Proposals.row_constants(kappa_draw.unsqueeze(-1), m, mode)
    t, log_bound = rejection.candidates(mode, columns, m, gamma, normal)
    accepted = log_u <= log_bound
    has, first = accepted.view(torch.uint8).max(0, keepdim=True)
    value = t.gather(0, first).squeeze(0) * scale.unsqueeze(-1)
    rate = accepted.mean((0, 2), dtype=kappa.dtype)
    slope_t = _slope(value, kappa, m, BesselTerms.from_rows(values), slope)
    return values, value, has.squeeze(0).bool(), slope_t, rate, _placed(value, loc, gauss)


def _mh_kernel(
    kappa: Tensor,
    uniforms: Tensor,
    drawn: Tensor | None,
    loc: Tensor | None,
    gauss: Tensor | None,
    plan: OrderPlan,
    m: int,
    slope: str,
    steps: int,
) -> tuple[Tensor, Tensor, Tensor | None, Tensor, Placed | None]:
    """Metropolis-Hastings chains step by step (:func:`.metropolis_hastings.mh_chains`), the Bessel terms
    and the slopes, from the random numbers of :func:`_draw_uniforms` for ``(S + 1, B, n)`` proposals
    (``S = steps``; the tests take the uniforms of the first ``S``). Returns the Bessel rows ``(8, B)``, ``t`` and the
    slopes ``(B, n)``, the rate ``(B,)`` and the placement (:func:`_placed`)."""
    gamma, normal, u = _variates(m, uniforms, drawn)
    log_u = u[:steps].log()
    values = merged_values(kappa, True, plan)
    kappa_draw, scale = marginal.clamp_concentration(kappa, m)
    t, rate = metropolis_hastings.mh_chains(
        kappa_draw, m, gamma, normal, log_u, metropolis_hastings.chain_by_steps
    )
    t = t * scale.unsqueeze(-1)
    return (
        values,
        t,
        _slope(t, kappa, m, BesselTerms.from_rows(values), slope),
        rate,
        _placed(t, loc, gauss),
    )


def _inversion_kernel(
    kappa: Tensor,
    u: Tensor,
    loc: Tensor | None,
    gauss: Tensor | None,
    plan: OrderPlan,
    m: int,
    slope: str,
) -> tuple[Tensor, Tensor, Tensor | None, Tensor, Placed | None]:
    """``NEWTON_STEPS`` steps of the per-sample inversion, the Bessel terms and the slopes.

    Returns the Bessel rows ``(8, B)``, ``t`` and the slopes ``(B, n)``, and whether the draw must be
    redone eagerly (a 0-dimensional bool: the last step was above the tolerance, a quantile is in
    the far right tail, where the iteration needs a bisection first, or a concentration is beyond
    :func:`.marginal.limit_concentration` or NaN), for one check outside, and the placement
    (:func:`_placed`).
    """
    values = merged_values(kappa, True, plan)
    terms = BesselTerms.from_rows(values)
    state = inverse_cdf.newton_start(kappa, m, u, terms)
    for step in range(NEWTON_STEPS - 1):
        state, _ = inverse_cdf.newton_step(state, step, measure=False)
    state, last = inverse_cdf.newton_step(state, NEWTON_STEPS - 1)
    assert last is not None
    # a concentration beyond the limit (or NaN) is inverted at the limit, by the eager path
    beyond = (kappa <= marginal.limit_concentration(m)).logical_not().any()
    redo = (last > inverse_cdf.STEP_TOL) | (u > inverse_cdf.NEWTON_MAX_U).any() | beyond
    t = inverse_cdf.newton_result(state)
    return values, t, _slope(t, kappa, m, terms, slope), redo, _placed(t, loc, gauss)


def _prime(m: int, dtype: torch.dtype, device: torch.device) -> OrderPlan:
    """Fill the caches the kernels read (traced as constants, never built inside a compiled call)."""
    marginal.gauss_legendre_rule(gradient.DIRECT_NODES, dtype, device)
    marginal.gauss_legendre_rule(gradient.DIRECT_NODES_SINGLE, dtype, device)
    for nodes in inverse_cdf.STEP_NODES:
        inverse_cdf.rule_with_start(nodes, dtype, device)
    return order_plan(m / 2 - 1, dtype, device)


_BOUND: dict[tuple[Any, ...], Callable[..., Any]] = {}


def _bound(
    fn: Callable[..., Any], m: int, slope: str, like: Tensor, **constants: Any
) -> Callable[..., Any]:
    """``fn`` compiled for ``m``, ``slope``, the Bessel plan of ``m`` in ``like``'s dtype and device and
    the other ``constants`` (one lookup a draw)."""
    key = (fn, m, slope, like.dtype, like.device, *constants.items())
    if key not in _BOUND:
        plan = _prime(m, like.dtype, like.device)
        _BOUND[key] = kernel(fn, plan=plan, m=m, slope=slope, **constants)
    return _BOUND[key]


def sample(
    sampler: str,
    kappa: Tensor,
    m: int,
    n: int,
    mh_steps: int,
    slope: str,
    loc: Tensor | None = None,
    gauss: Tensor | None = None,
) -> Draw:
    """A compiled draw of ``n`` samples for each of the concentrations ``kappa`` ``(B,)`` (working dtype,
    no grad) on ``S^{m-1}``; ``slope``: ``"none"``, ``"single"`` or ``"double"`` (the precision of the
    parameters the gradient serves). With ``loc`` ``(B, m)`` (no grad) and ``gauss`` ``(n, B, m)`` (a
    standard Gaussian in ``loc``'s dtype), the kernel also places the samples (:attr:`Draw.placed`)."""
    if sampler == "rejection":
        return _rejection(kappa, m, n, slope, loc, gauss)
    if sampler == "mh":
        compiled = _bound(_mh_kernel, m, slope, kappa, steps=mh_steps)
        uniforms, drawn = _draw_uniforms(m, (mh_steps + 1, kappa.shape[0], n), kappa)
        values, t, slope_t, rate, placed = compiled(kappa, uniforms, drawn, loc, gauss)
        return Draw(t, slope_t, BesselTerms.from_rows(values), rate, placed)
    return _inverse_cdf(kappa, m, n, slope, loc, gauss)


def _rejection(
    kappa: Tensor, m: int, n: int, slope: str, loc: Tensor | None, gauss: Tensor | None
) -> Draw:
    compiled = _bound(_rejection_kernel, m, slope, kappa)
    shape = (rejection.first_round_candidates(kappa.shape[0] * n), kappa.shape[0], n)
    uniforms, drawn = _draw_uniforms(m, shape, kappa)
    values, t, has, slope_t, rate, placed = compiled(kappa, uniforms, drawn, loc, gauss)
    terms = BesselTerms.from_rows(values)
    if not bool(has.all()):  # rare by the choice of k: the eager sampler goes on for these samples
        missing = (~has).nonzero(as_tuple=True)
        kappa_missing = kappa[missing[0]]
        t[missing] = rejection.wood_rejection(kappa_missing, m, 1)[0].view(-1)
        if slope_t is not None:
            slope_t[missing] = gradient.dtheta_dkappa_direct(
                t[missing].unsqueeze(-1),
                kappa_missing,
                m,
                terms.complement[missing[0]],
                slope == "single",
            ).view(-1)
        placed = None  # placed from the former t: the caller places them again
    return Draw(t, slope_t, terms, rate, placed)


def _inverse_cdf(
    kappa: Tensor, m: int, n: int, slope: str, loc: Tensor | None, gauss: Tensor | None
) -> Draw:
    compiled = _bound(_inversion_kernel, m, slope, kappa)
    u = torch.rand(kappa.shape[0], n, dtype=kappa.dtype, device=kappa.device)
    values, t, slope_t, redo, placed = compiled(kappa, u, loc, gauss)
    terms = BesselTerms.from_rows(values)
    if redo.item():  # not converged, or the far right tail: the eager iteration from the start
        t = inverse_cdf.invert_theta_cdf(kappa, m, u, terms)
        slope_t = _slope(t, kappa, m, terms, slope)
        placed = None
    return Draw(t, slope_t, terms, None, placed)
