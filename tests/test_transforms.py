"""The distributions under ``torch.func``: ``grad``, ``vmap``, ``jacfwd``, ``jvp`` and ``hessian`` of
``log_prob``, ``entropy``, the KL divergences, ``mean`` and ``variance`` (issue 13, item 4).

Each transform is compared with eager autograd of the same function (``torch.autograd.grad``, with
``create_graph`` for second derivatives, and a loop for ``vmap``). The transforms take the
branch-free evaluation (every region merged by ``torch.where``) where eager code on the CPU takes
only the region a batch needs, so the two are different code paths: they agree to ``RTOL``
(relative), a few hundred ulps of float64, far below the methods' own errors of about 1e-13.
Concentrations span the regions of the Bessel evaluation and of the Power Spherical's Stirling
forms (from 1e-3 to 1e7).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor
from torch.distributions import Distribution, kl_divergence
from torch.func import grad, hessian, jacfwd, jvp, vmap

from spherevae.distributions import HypersphericalUniform, PowerSpherical, VonMisesFisher

# the first forward-mode derivative loads torch's decompositions, which call the deprecated
# torch.jit.script (torch 2.13): torch's own warning, not ours
pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script` is deprecated:DeprecationWarning"
)

F64 = torch.float64
RTOL = 1e-11
# and absolutely: the Power Spherical's KL at small kappa is a difference of terms of order 1 (its
# value 2e-7 at kappa = 1e-3), whose rounding differs between a batch and a single element
ATOL = 1e-14
M = 5
KAPPAS = [1e-3, 0.7, 3.0, 40.0, 2e3, 1e7]


def _unit(seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(M, generator=g, dtype=F64), dim=0)


LOC, OTHER, X = _unit(1), _unit(2), _unit(3)
FAMILIES: dict[str, Callable[[Tensor], Distribution]] = {
    "vmf": lambda k: VonMisesFisher(LOC, k),
    "ps": lambda k: PowerSpherical(LOC, k),
}
QUANTITIES: dict[str, Callable[[Distribution], Tensor]] = {
    "log_prob": lambda q: q.log_prob(X),
    "entropy": lambda q: q.entropy(),
    "kl_uniform": lambda q: kl_divergence(q, HypersphericalUniform(M, dtype=F64)),
    "kl_vmf": lambda q: kl_divergence(q, VonMisesFisher(OTHER, torch.tensor(5.0, dtype=F64))),
    "mean": lambda q: q.mean @ OTHER,
    "variance": lambda q: q.variance @ OTHER,
}
CASES = [(f, q) for f in FAMILIES for q in QUANTITIES]


def _function(family: str, quantity: str) -> Callable[[Tensor], Tensor]:
    make, read = FAMILIES[family], QUANTITIES[quantity]
    return lambda k: read(make(k))


def _eager_derivatives(f: Callable[[Tensor], Tensor], k: float) -> tuple[Tensor, Tensor]:
    """First and second derivative by eager autograd."""
    kt = torch.tensor(k, dtype=F64, requires_grad=True)
    (d1,) = torch.autograd.grad(f(kt), kt, create_graph=True)
    (d2,) = torch.autograd.grad(d1, kt)
    return d1.detach(), d2


def _close(got: Tensor, want: Tensor, what: str) -> None:
    torch.testing.assert_close(got, want, rtol=RTOL, atol=ATOL, msg=what)


@pytest.mark.parametrize(("family", "quantity"), CASES)
def test_grad_jacfwd_jvp_hessian_match_eager_autograd(family: str, quantity: str) -> None:
    f = _function(family, quantity)
    for k in KAPPAS:
        d1, d2 = _eager_derivatives(f, k)
        kt = torch.tensor(k, dtype=F64)
        what = f"{family} {quantity} at kappa={k:g}"
        _close(grad(f)(kt), d1, f"grad: {what}")
        _close(jacfwd(f)(kt), d1, f"jacfwd: {what}")
        _, tangent = jvp(f, (kt,), (torch.tensor(2.0, dtype=F64),))
        _close(tangent, 2 * d1, f"jvp: {what}")
        _close(hessian(f)(kt), d2, f"hessian: {what}")


@pytest.mark.parametrize(("family", "quantity"), CASES)
def test_vmap_matches_a_loop(family: str, quantity: str) -> None:
    f = _function(family, quantity)
    kappas = torch.tensor(KAPPAS, dtype=F64)
    looped = torch.stack([f(k) for k in kappas])
    _close(vmap(f)(kappas), looped, f"vmap of {family} {quantity}")
    looped_grad = torch.stack([_eager_derivatives(f, float(k))[0] for k in kappas])
    _close(vmap(grad(f))(kappas), looped_grad, f"vmap(grad) of {family} {quantity}")


def test_vmap_over_the_mean_direction_and_the_value() -> None:
    """``vmap`` over ``loc`` and the point as well as the concentration (batched everywhere)."""
    locs = torch.stack([_unit(s) for s in range(10, 14)])
    points = torch.stack([_unit(s) for s in range(20, 24)])
    kappas = torch.tensor([0.5, 3.0, 30.0, 3e3], dtype=F64)
    for family in (VonMisesFisher, PowerSpherical):
        batched = vmap(lambda mu, k, x, fam=family: fam(mu, k).log_prob(x))(locs, kappas, points)
        looped = torch.stack(
            [family(mu, k).log_prob(x) for mu, k, x in zip(locs, kappas, points, strict=True)]
        )
        _close(batched, looped, family.__name__)


@pytest.mark.parametrize("family", [VonMisesFisher, PowerSpherical])
def test_validation_holds_under_vmap(family: type[Distribution]) -> None:
    """With validation on, a batch holding one bad concentration or one loc off the sphere is refused
    under ``vmap`` as it is eagerly, with the argument named; a good batch passes."""
    kappas = torch.tensor([1.0, -2.0, 3.0], dtype=F64)
    with pytest.raises(ValueError, match="concentration"):
        vmap(lambda k: family(LOC, k, validate_args=True).entropy())(kappas)
    locs = torch.stack([LOC, 2 * LOC, LOC])
    with pytest.raises(ValueError, match="loc"):
        vmap(lambda mu: family(mu, torch.tensor(1.0, dtype=F64), validate_args=True).entropy())(
            locs
        )
    good = vmap(lambda k: family(LOC, k, validate_args=True).entropy())(kappas.abs())
    assert good.shape == (3,) and bool(torch.isfinite(good).all())


def test_the_bessel_functions_under_vmap_and_jacfwd() -> None:
    """``spherevae.special``'s functions batch under ``vmap`` with the order batched too, and their
    forward-mode derivatives are the reverse-mode ones."""
    from spherevae import special

    z = torch.tensor([1e-3, 0.5, 7.0, 60.0, 1e5], dtype=F64)
    v = torch.tensor([0.0, 0.5, 3.5, 10.0, 100.0], dtype=F64)
    for fn in (special.log_ive, special.ive_ratio, special.log_iv_normalized):
        _close(vmap(fn)(v, z), fn(v, z), f"vmap {fn.__name__}")
        forward = vmap(jacfwd(lambda zz, vv, fn=fn: fn(vv, zz)))(z, v)
        reverse = torch.stack(
            [grad(lambda zz, vv=vv, fn=fn: fn(vv, zz))(zz) for zz, vv in zip(z, v, strict=True)]
        )
        _close(forward, reverse, f"jacfwd {fn.__name__}")


def test_caches_filled_inside_a_transform_hold_plain_tensors() -> None:
    """Constants first built inside ``torch.func.grad`` (the series and Debye coefficients of an order
    not used before, the quadrature rules) are cached as plain tensors: a wrapped one would leak into
    every later call (as it did into the compiled sampling kernels)."""
    from spherevae.special import evaluation

    m = 23  # order 10.5, used by no other test
    loc = torch.zeros(m, dtype=F64)
    loc[0] = 1
    grad(lambda k: VonMisesFisher(loc, k).entropy())(torch.tensor(3.0, dtype=F64))
    plan = evaluation.order_plan(m / 2 - 1, F64, torch.device("cpu"))
    tensors = [x for x in plan if isinstance(x, Tensor)] + list(plan.series_blocked[:1])
    assert tensors and not any(torch._C._functorch.is_functorch_wrapped_tensor(t) for t in tensors)
