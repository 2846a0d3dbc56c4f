"""The Power Spherical distribution on the unit sphere ``S^{m-1}`` (De Cao and Aziz 2020)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable
from torch.distributions import Distribution, constraints, register_kl
from torch.types import _size

from ..tracing import batched_elementwise, values_can_be_read
from .constraints import sphere
from .sphere import (
    broadcast_parameters,
    broadcast_to_batch,
    check_concentration,
    check_loc,
    check_same_sphere,
    log_sphere_area,
    place_on_sphere,
    work_dtype,
)
from .uniform import HypersphericalUniform
from .von_mises_fisher import VonMisesFisher
from .von_mises_fisher.kl import cross_term

__all__ = ["KlToUniform", "PowerSpherical"]


class PowerSpherical(Distribution):
    r"""Power Spherical distribution: ``p(x) = C(kappa) (1 + mu . x)^kappa`` on ``S^{m-1}``.

    Math:
        With ``alpha = (m-1)/2 + kappa`` and ``beta = (m-1)/2``, the marginal of ``t = mu . x`` satisfies
        ``(1 + t)/2 ~ Beta(alpha, beta)``, and

        ``log C(kappa) = -[(alpha + beta) log 2 + beta log pi + lgamma(alpha) - lgamma(alpha + beta)]``,

        ``H = -log C - kappa (log 2 + digamma(alpha) - digamma(alpha + beta))``,
        ``E[x] = kappa / (m - 1 + kappa) mu``.

        At large ``kappa`` the differences ``lgamma(alpha + beta) - lgamma(alpha)`` (about ``beta log
        kappa``) and ``digamma(alpha + beta) - digamma(alpha)`` (about ``beta / kappa``) of numbers of
        size ``kappa log kappa`` and ``log kappa`` lose every digit (from ``kappa`` of about ``1e7``
        they lose more than ``1e-8`` of their value); from ``alpha = 1e3`` on they are formed from
        Stirling's series instead (:func:`_lgamma_difference`), and ``log C`` enters the density as
        ``log C + kappa log 2``, without the ``kappa log 2`` that cancels against the density's.

    Sampling is exact and fully reparameterised: ``s = (1 - t)/2 ~ Beta(beta, alpha)`` (drawn directly,
    so ``1 - t = 2 s`` keeps its digits at large ``kappa``; :class:`_BetaSample`, with torch's exact
    implicit Beta gradient), then ``x = t mu + sqrt(1 - t^2) v`` with ``v`` uniform in the tangent
    space.

    Args:
        loc: ``batch_shape + (m,)`` unit mean directions, ``m >= 2``.
        concentration: ``batch_shape`` (broadcastable), ``kappa >= 0``.
        validate_args: check parameters and samples (default as ``torch.distributions``).

    Raises:
        ValueError: for a ``loc`` that is not a batch of unit vectors with ``m >= 2`` or a negative or
            non-finite ``concentration``.

    References:
        N. De Cao, W. Aziz (2020), The Power Spherical distribution, ICML INNF+ workshop.
    """

    arg_constraints = {"loc": sphere, "concentration": constraints.nonnegative}
    support = sphere
    has_rsample = True

    def __init__(
        self, loc: Tensor, concentration: Tensor | float, *, validate_args: bool | None = None
    ) -> None:
        validate = validate_args if validate_args is not None else Distribution._validate_args
        if not isinstance(loc, Tensor):
            raise ValueError(f"loc must be a tensor, got {type(loc).__name__}")
        check_loc(loc, validate)
        concentration = torch.as_tensor(concentration, dtype=loc.dtype, device=loc.device)
        check_concentration(concentration, validate)
        self.loc, self.concentration = broadcast_parameters(loc, concentration)
        batch_shape, m = self.concentration.shape, loc.shape[-1]
        super().__init__(batch_shape, torch.Size([m]), validate_args=validate_args)

    @property
    def dim(self) -> int:
        """Ambient dimension ``m``."""
        return int(self.event_shape[0])

    def expand(self, batch_shape: _size, _instance: PowerSpherical | None = None) -> PowerSpherical:
        new: PowerSpherical = self._get_checked_instance(PowerSpherical, _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc = self.loc.expand(batch_shape + self.event_shape)
        new.concentration = self.concentration.expand(batch_shape)
        super(PowerSpherical, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _alpha_beta(self, dtype: torch.dtype) -> tuple[Tensor, float]:
        beta = (self.dim - 1) / 2
        return self.concentration.to(dtype) + beta, beta

    def _log_normalizer(self, dtype: torch.dtype) -> Tensor:
        """``log C(kappa)`` (so that ``log p = log C + kappa log1p(mu . x)``)."""
        return self._log_normalizer_plus(dtype) - self.concentration.to(dtype) * math.log(2)

    def _log_normalizer_plus(self, dtype: torch.dtype) -> Tensor:
        """``log C(kappa) + kappa log 2 = lgamma(alpha + beta) - lgamma(alpha) - beta log(4 pi)``: the
        log-density at the mode, without the ``kappa log 2`` that the density's own cancels."""
        alpha, beta = self._alpha_beta(dtype)
        regime = _regime(alpha)
        return _lgamma_difference(alpha, beta, regime) - beta * math.log(4 * math.pi)

    def rsample(self, sample_shape: _size = ()) -> Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        alpha, beta = self._alpha_beta(self.loc.dtype)
        s: Tensor = _BetaSample.apply(beta, alpha.expand(shape))
        return place_on_sphere(2 * s, self.loc, shape)

    def log_prob(self, value: Tensor) -> Tensor:
        """``log p(x) = log C + kappa log(1 + mu . x) = (log C + kappa log 2) + kappa log1p(-(1 - mu . x) /
        2)``, in the second form (no ``kappa log 2`` in two terms that cancels), with ``log C + kappa log
        2 = lgamma(alpha + beta) - lgamma(alpha) - beta log(4 pi)`` (:func:`_lgamma_difference`).

        Up to ``kappa = 1e6``, ``1 - mu . x`` from the dot product; beyond, as ``|x - mu|^2 / 2`` (equal
        for unit vectors), exactly 0 at the mode and with its relative digits near it, where the dot
        product's absolute rounding error of about ``1e-16``, times ``kappa``, would exceed ``1e-8`` of
        the result. Off the sphere the two extend differently (gradients in ``loc`` equal up to a
        multiple of ``loc``), as for the von Mises-Fisher ``log_prob``.
        """
        if self._validate_args:
            self._validate_sample(value)
        work = work_dtype(value.device)
        loc, x = self.loc.to(work), value.to(work)
        kappa = self.concentration.to(work)
        at_mode = self._log_normalizer_plus(work)  # log C + kappa log 2
        # -(1 - mu . x) / 2 in [-1, 0] (the antipode, -1: -inf for kappa > 0)
        half_t = (loc * x).sum(-1).clamp(-1.0, 1.0).sub(1).mul(0.5)
        small = at_mode + torch.special.xlog1py(kappa, half_t)
        diff = x - loc
        half_t = torch.linalg.vecdot(diff, diff).mul(-0.25).clamp(min=-1.0)
        large = at_mode + torch.special.xlog1py(kappa, half_t)
        out: Tensor = torch.where(kappa > _MODE_FORM_FROM, large, small)
        return out.to(torch.promote_types(value.dtype, self.loc.dtype))

    def entropy(self) -> Tensor:
        # H = log area - KL(self || uniform): the closed form lives once, in KlToUniform; the
        # difference is taken in the working dtype, where both terms keep their digits
        work = work_dtype(self.loc.device)
        kl: Tensor = KlToUniform.apply(self.concentration.to(work), self.dim, work)
        return (log_sphere_area(self.dim) - kl).to(self.loc.dtype)

    def _kl_to_uniform(self) -> Tensor:
        """``KL(self || uniform)``, shape ``batch_shape`` (see :class:`KlToUniform`)."""
        out: Tensor = KlToUniform.apply(self.concentration, self.dim, work_dtype(self.loc.device))
        return out.to(self.loc.dtype)

    @property
    def mean_resultant_length(self) -> Tensor:
        """``E[mu . x] = kappa / (m - 1 + kappa)``, shape ``batch_shape``; from ``kappa = m - 1`` on as ``1 - (m
        - 1) / (m - 1 + kappa)``, whose derivative in ``kappa`` autograd forms without the cancellation of
        ``1 / D - kappa / D^2`` (every digit lost from ``kappa`` of about ``1e16`` on)."""
        return _share(self.concentration, float(self.dim - 1))

    @property
    def mean(self) -> Tensor:
        return self.mean_resultant_length.unsqueeze(-1) * self.loc

    @property
    def mode(self) -> Tensor:
        return self.loc

    @property
    def variance(self) -> Tensor:
        """Diagonal of ``Var(t) mu mu^T + (1 - E[t^2]) / (m - 1) (I - mu mu^T)``.

        With ``(1 + t) / 2 ~ Beta(alpha, beta)`` and ``T = alpha + beta``: ``Var(t) = 4 alpha beta / (T^2 (T +
        1))`` and ``1 - E[t^2] = 4 E[s (1 - s)] = 4 alpha beta / (T (T + 1))``, so ``(1 - E[t^2]) / (m - 1) =
        2 (alpha / T) / (T + 1)``: no ``1 - E[t^2]`` by subtraction (every digit lost at large ``kappa``),
        and no ``T^2 (T + 1)``, which overflows from ``kappa`` of about ``1e102`` in float64.
        """
        alpha, beta = self._alpha_beta(self.loc.dtype)
        total = alpha + beta
        share = _share(alpha, beta)  # alpha / T, with a derivative that keeps its digits
        var_t = share * (4 * beta) / total / (total + 1)
        tangent = 2 * share / (total + 1)
        mu2 = self.loc**2
        return var_t.unsqueeze(-1) * mu2 + tangent.unsqueeze(-1) * (1 - mu2)


# log_prob takes the form without terms of size kappa from this concentration on (see there)
_MODE_FORM_FROM = 1e6
# from this alpha on the differences of lgamma, digamma and trigamma are formed from Stirling's series
# (_lgamma_difference); below it torch's functions lose at most 3e-12 of the differences' values
_STIRLING_FROM = 1e3
# Bernoulli numbers B_2, B_4, B_6: with them the first left-out term of each series is below 1e-23 of
# the difference at alpha >= 1e3
_BERNOULLI = (1.0 / 6.0, -1.0 / 30.0, 1.0 / 42.0)
_DIRECT, _STIRLING, _BOTH = "direct", "stirling", "both"


def _regime(alpha: Tensor) -> str:
    """Which forms :func:`_lgamma_difference` and its kin evaluate: on the CPU, from the extremes of
    ``alpha`` (read without a wait), only the form each element needs; elsewhere both, merged with
    ``torch.where`` (no host round trip)."""
    if alpha.numel() == 0:
        return _DIRECT
    if alpha.device.type != "cpu" or not values_can_be_read(alpha):
        return _BOTH
    lo, hi = torch.aminmax(alpha)
    if hi.item() < _STIRLING_FROM:  # the usual case, and NaN (which the direct form propagates)
        return _DIRECT
    return _STIRLING if lo.item() >= _STIRLING_FROM else _BOTH


def _merge(
    alpha: Tensor, regime: str, direct: Callable[[], Tensor], stirling: Callable[[], Tensor]
) -> Tensor:
    if regime == _DIRECT:
        return direct()
    if regime == _STIRLING:
        return stirling()
    return torch.where(alpha < _STIRLING_FROM, direct(), stirling())


def _lgamma_difference(x: Tensor, b: float, regime: str) -> Tensor:
    """``lgamma(x + b) - lgamma(x)`` for ``x >= 1/2``, ``b > 0``; differentiable, with the derivative
    :func:`_digamma_difference` (autograd through the series below would form ``b / x^2``, which
    underflows at large ``x`` where its product with ``x`` does not).

    From ``x = 1e3`` on, from Stirling's series (DLMF 5.11.1) ``lgamma(y) = (y - 1/2) log y - y + log(2
    pi) / 2 + sum_k B_2k / (2k (2k - 1) y^(2k-1))``: with ``L = log1p(b / x)``, the difference is ``(x -
    1/2) L + b log(x + b) - b + sum_k B_2k / (2k (2k - 1)) x^(1-2k) expm1((1 - 2k) L)``, each term
    without cancellation (``(x - 1/2) L - b`` loses at most ``b`` units of rounding against a result of
    about ``b log x``).
    """

    def stirling() -> Tensor:
        log_ratio = torch.log1p(b / x)
        out = (x - 0.5) * log_ratio + b * torch.log(x + b) - b
        inv = x.reciprocal()
        for k, bern in enumerate(_BERNOULLI, start=1):
            power = inv.pow(2 * k - 1)
            out = out + (bern / (2 * k * (2 * k - 1))) * power * torch.expm1(
                (1 - 2 * k) * log_ratio
            )
        return out

    if not (torch.is_grad_enabled() and x.requires_grad):
        return _merge(x, regime, lambda: torch.lgamma(x + b) - torch.lgamma(x), stirling)
    with torch.no_grad():
        value = _merge(x, regime, lambda: torch.lgamma(x + b) - torch.lgamma(x), stirling)
    out: Tensor = _WithDerivative.apply(x, value, lambda y: _digamma_difference(y, b, regime))
    return out


class _WithDerivative(torch.autograd.Function):
    """``value`` (computed without a graph) as a function of ``x`` whose derivative is ``derivative(x)``
    (differentiable again where that function is), in backward and forward mode; elementwise, so
    that ``torch.func.vmap`` batches it along a leading axis."""

    @staticmethod
    def forward(x: Tensor, value: Tensor, derivative: Callable[[Tensor], Tensor]) -> Tensor:
        return value.clone()

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        x, _, derivative = inputs
        ctx.save_for_backward(x)
        ctx.save_for_forward(x)
        ctx.derivative = derivative

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        (x,) = ctx.saved_tensors
        return grad * ctx.derivative(x), None, None

    @staticmethod
    def jvp(ctx: Any, x_t: Tensor | None, value_t: Any, derivative_t: Any) -> Tensor:
        (x,) = ctx.saved_tensors
        tangent: Tensor = (torch.zeros_like(x) if x_t is None else x_t) * ctx.derivative(x)
        return tangent

    @staticmethod
    def vmap(
        info: Any,
        in_dims: tuple[Any, ...],
        x: Tensor,
        value: Tensor,
        derivative: Callable[[Tensor], Tensor],
    ) -> tuple[Tensor, int]:
        x, value = batched_elementwise(info.batch_size, (x, value), in_dims[:2])
        out: Tensor = _WithDerivative.apply(x, value, derivative)
        return out, 0


def _digamma_difference(x: Tensor, b: float, regime: str) -> Tensor:
    """``digamma(x + b) - digamma(x)`` (positive; about ``b / x`` at large ``x``).

    From ``x = 1e3`` on, from ``digamma(y) = log y - 1 / (2y) - sum_k B_2k / (2k y^2k)`` (DLMF 5.11.2):
    ``L + b / (2 x (x + b)) - sum_k B_2k / (2k) x^-2k expm1(-2k L)``, ``L = log1p(b / x)``.
    """

    def stirling() -> Tensor:
        log_ratio = torch.log1p(b / x)
        out = log_ratio + b / (2 * x * (x + b))
        inv = x.reciprocal()
        for k, bern in enumerate(_BERNOULLI, start=1):
            out = out - (bern / (2 * k)) * inv.pow(2 * k) * torch.expm1(-2 * k * log_ratio)
        return out

    return _merge(x, regime, lambda: torch.digamma(x + b) - torch.digamma(x), stirling)


def _trigamma_difference_scaled(x: Tensor, b: float, regime: str) -> Tensor:
    """``x (trigamma(x) - trigamma(x + b))`` (positive; about ``b / x``), scaled by ``x`` so that it does
    not underflow where ``kappa`` times it is representable (the derivative of the KL divergence).

    From ``x = 1e3`` on, from ``trigamma(y) = 1 / y + 1 / (2 y^2) + sum_k B_2k / y^(2k+1)`` (DLMF 5.15.8):
    ``b / (x + b) + b (2x + b) / (2 x (x + b)^2) - sum_k B_2k x^-2k expm1(-(2k + 1) L)``.
    """

    def stirling() -> Tensor:
        log_ratio = torch.log1p(b / x)
        xb = x + b
        share = b / xb
        # b (2x + b) / (2 x (x + b)^2), without the products that overflow from x of about 1e154 on
        out = share + share * (1 + 0.5 * b / x) / xb
        inv = x.reciprocal()
        for k, bern in enumerate(_BERNOULLI, start=1):
            out = out - bern * inv.pow(2 * k) * torch.expm1(-(2 * k + 1) * log_ratio)
        return out

    def direct() -> Tensor:
        return x * (torch.polygamma(1, x) - torch.polygamma(1, x + b))

    return _merge(x, regime, direct, stirling)


class _Complement(torch.autograd.Function):
    """``b / (x + b)`` (``b > 0``), with the derivative ``-(grad b / (x + b)) / (x + b)`` formed in that order:
    ``b / (x + b)^2`` underflows from ``x`` of about ``1e154`` on, where ``grad`` times it need not (the
    KL divergence to a vMF of concentration near ``x`` multiplies it by that concentration)."""

    @staticmethod
    def forward(x: Tensor, b: float) -> Tensor:
        return b / (x + b)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        x, b = inputs
        ctx.save_for_backward(x)
        ctx.save_for_forward(x)
        ctx.b = b

    @staticmethod
    def _times_derivative(ctx: Any, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        denominator = x + ctx.b
        out: Tensor = -(grad * (ctx.b / denominator)) / denominator
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return _Complement._times_derivative(ctx, grad), None

    @staticmethod
    def jvp(ctx: Any, x_t: Tensor | None, b_t: Any) -> Tensor:
        (x,) = ctx.saved_tensors
        return _Complement._times_derivative(ctx, torch.zeros_like(x) if x_t is None else x_t)

    @staticmethod
    def vmap(info: Any, in_dims: tuple[Any, ...], x: Tensor, b: float) -> tuple[Tensor, int]:
        return _Complement.apply(x.movedim(in_dims[0], 0), b), 0


def mean_complement(kappa: Tensor, m: int) -> Tensor:
    """``1 - E[mu . x] = (m - 1) / (m - 1 + kappa)`` of a Power Spherical distribution, differentiable."""
    out: Tensor = _Complement.apply(kappa, float(m - 1))
    return out


def _share(x: Tensor, b: float) -> Tensor:
    """``x / (x + b)`` (``b > 0``): as written up to ``x = b``, then as ``1 - b / (x + b)``, so that both the
    value and its autograd derivative ``b / (x + b)^2`` keep their relative digits at every ``x``."""
    denominator = x + b
    return torch.where(x > b, 1 - b / denominator, x / denominator)


class KlToUniform(torch.autograd.Function):
    r"""``KL(PS(mu, kappa) || uniform)`` on ``S^{m-1}`` and its derivative in ``kappa``, in few operations.

    With ``beta = (m-1)/2``, ``alpha = beta + kappa`` and ``c = log area - 2 beta log 2 - beta log pi``
    (a number), ``log area - H`` reduces to (the ``kappa log 2`` terms of ``log C`` and of the entropy
    cancel)

    ``KL = c + lgamma(alpha + beta) - lgamma(alpha) + kappa (digamma(alpha) - digamma(alpha + beta))``,

    ``dKL/dkappa = kappa (polygamma(1, alpha) - polygamma(1, alpha + beta))``

    (the ``digamma`` terms of the derivative cancel as well). Autograd through the same expression
    would dispatch about three times as many operations. From ``alpha = 1e3`` on the differences come
    from Stirling's series (:func:`_lgamma_difference`, :func:`_digamma_difference`,
    :func:`_trigamma_difference_scaled`), which keep their digits at any ``kappa``; at large ``kappa``
    the KL is about ``beta (log(kappa / (4 pi)) - 1) + log area``. The arithmetic runs in ``work`` and
    the result keeps ``kappa``'s dtype; under a double backward the derivative is rebuilt from
    ``kappa`` so that it is differentiable.
    """

    @staticmethod
    def forward(kappa: Tensor, m: int, work: torch.dtype) -> Tensor:
        beta = (m - 1) / 2
        const = log_sphere_area(m) - beta * (2 * math.log(2) + math.log(math.pi))
        k = kappa.to(work)
        alpha = k + beta
        total = k + 2 * beta
        regime = _regime(alpha)
        if regime == _DIRECT:  # the usual case: torch's functions, in few operations
            out = torch.digamma(alpha).sub_(torch.digamma(total)).mul_(k)
            out.add_(torch.lgamma(total)).sub_(torch.lgamma(alpha)).add_(const)
        else:
            out = _lgamma_difference(alpha, beta, regime) - k * _digamma_difference(
                alpha, beta, regime
            )
            out = out + const
        return out.to(kappa.dtype)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        kappa, m, work = inputs
        ctx.save_for_backward(kappa)
        ctx.save_for_forward(kappa)
        ctx.m, ctx.work = m, work

    @staticmethod
    def slope(kappa: Tensor, m: int, work: torch.dtype) -> Tensor:
        """``dKL/dkappa = kappa (trigamma(alpha) - trigamma(alpha + beta))`` in ``work``; a function
        of ``kappa`` that autograd differentiates (a double backward)."""
        beta = (m - 1) / 2
        k = kappa.to(work)
        alpha, total = k + beta, k + 2 * beta
        regime = _regime(alpha)
        if regime == _DIRECT:
            return (torch.polygamma(1, alpha) - torch.polygamma(1, total)) * k
        return k / alpha * _trigamma_difference_scaled(alpha, beta, regime)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        (kappa,) = ctx.saved_tensors
        slope = KlToUniform.slope(kappa, ctx.m, ctx.work)
        return grad * slope.to(grad.dtype), None, None

    @staticmethod
    def jvp(ctx: Any, kappa_t: Tensor | None, m_t: Any, work_t: Any) -> Tensor:
        (kappa,) = ctx.saved_tensors
        tangent = torch.zeros_like(kappa) if kappa_t is None else kappa_t
        return tangent * KlToUniform.slope(kappa, ctx.m, ctx.work).to(tangent.dtype)

    @staticmethod
    def vmap(
        info: Any, in_dims: tuple[Any, ...], kappa: Tensor, m: int, work: torch.dtype
    ) -> tuple[Tensor, int]:
        return KlToUniform.apply(kappa.movedim(in_dims[0], 0), m, work), 0


class _BetaSample(torch.autograd.Function):
    """``s ~ Beta(a, b)`` for a number ``a`` and a tensor ``b``, differentiable in ``b``.

    Drawn as ``s = G_a / (G_a + G_b)`` from two gamma variates, about twice as fast on a CPU as
    ``torch.distributions.Beta``, which goes through the general Dirichlet sampler. The gradient is
    the one torch's Beta carries, the exact implicit reparameterisation gradient of ``s`` through its
    CDF (Figurnov et al. 2018): viewing ``(s, 1 - s)`` as a Dirichlet sample with concentrations
    ``(a, b)``, ``ds/db = -s g`` where ``g = torch._dirichlet_grad(1 - s, b, a + b)`` (torch's
    ``_Dirichlet`` backward with the incoming gradient on the first component only). It depends on
    ``s`` alone, not on how ``s`` was drawn, so it is the same as Beta's for the same ``s`` (torch
    computes it by approximations whose relative error reaches about 1e-3; measured against
    ``-(dF/db) / f(s)`` in ``tests/test_power_spherical_sampling.py``). The gradient of ``s`` through
    the gamma variates would be unbiased too, but with more spread (18% larger standard deviation at
    ``a = 1``, ``b = 2``). Shapes: ``b`` any, ``s`` ``b.shape``.
    """

    @staticmethod
    def forward(ctx: Any, a: float, b: Tensor) -> Tensor:
        gamma_a = torch._standard_gamma(torch.full_like(b, a))
        gamma_b = torch._standard_gamma(b)
        total = gamma_a + gamma_b
        # s = gamma_a / total, plus 0 (NaN where b is NaN: torch's gamma sampler returns the smallest
        # normal number for a NaN shape, which would make s = 1, a finite sample from no law)
        s = torch.addcdiv(b.clamp(max=0.0), gamma_a, total)
        # 1 - s from its own gamma variate: no cancellation where s is close to 1
        ctx.save_for_backward(s, gamma_b.div_(total), b)
        ctx.a = a
        return s

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[None, Tensor]:
        s, one_minus_s, b = ctx.saved_tensors
        dirichlet = torch._dirichlet_grad(one_minus_s, b, b + ctx.a)
        return None, -(grad * s * dirichlet)


@register_kl(PowerSpherical, HypersphericalUniform)
def _kl_ps_uniform(p: PowerSpherical, q: HypersphericalUniform) -> Tensor:
    check_same_sphere(p, q)
    # log area - H in closed form, with its derivative (one autograd node)
    return broadcast_to_batch(p._kl_to_uniform(), q)


@register_kl(PowerSpherical, VonMisesFisher)
def _kl_ps_vmf(p: PowerSpherical, q: VonMisesFisher) -> Tensor:
    m = check_same_sphere(p, q)
    work = work_dtype(p.loc.device)
    k1, k2 = p.concentration.to(work), q.concentration.to(work)
    # E_PS[mu1 . x] = k1 / (m - 1 + k1), and its complement (m - 1) / (m - 1 + k1), whose derivative is
    # formed so that it does not underflow (or overflow) where k2 times it is representable
    mean, one_minus_mean = k1 / (k1 + (m - 1)), mean_complement(k1, m)
    kl_uniform: Tensor = KlToUniform.apply(k1, m, work)
    out = kl_uniform + cross_term(q, k2, p.loc.to(work), mean, one_minus_mean)
    return out.to(torch.promote_types(p.loc.dtype, q.loc.dtype))
