"""The public Bessel functions of :mod:`spherevae.special` as differentiable torch functions (custom
autograd, every first derivative formed without cancellation), and functions of precomputed
:class:`~spherevae.special.evaluation.BesselTerms`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .derivatives import RatioDerivative
from .evaluation import (
    BesselTerms,
    BesselValues,
    bessel_terms,
    broadcast_shape,
    order_number,
    order_tensor,
    prepare_arguments,
)


def _first_derivative(ctx: Any, grad: Tensor) -> Tensor:
    """``grad R'`` at the saved ``z`` of an autograd function that saved ``(v, z, ratio, ratio_over_z,
    elasticity)``: through a function of ``z`` (:class:`RatioDerivative`) when the backward is recorded
    (a double backward), else as ``(grad (R / z)) N``, in that order: ``R' = (R / z) N`` underflows from
    ``z`` of about ``1e154`` on, where ``grad R'`` need not (``z`` times it, the KL's derivative)."""
    v, z, ratio, ratio_over_z, elasticity = ctx.saved_tensors
    if torch.is_grad_enabled():
        derivative: Tensor = RatioDerivative.apply(
            v, z, ratio, ratio_over_z, elasticity, False, ctx.v_number
        )
        return grad * derivative
    product: Tensor = (grad * ratio_over_z) * elasticity
    return product


def _save_ratio_terms(ctx: Any, v: Tensor, z: Tensor, vals: Any, v_number: float | None) -> None:
    # the inputs themselves (not copies), so that a double backward reaches z
    ctx.save_for_backward(v, z, vals.ratio, vals.ratio_over_z, vals.elasticity)
    ctx.v_number = v_number


class _IveRatio(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, v: Tensor, z: Tensor, v_number: float | None = None) -> Tensor:
        vals = BesselValues(v, z, with_log=False, v_number=v_number)
        _save_ratio_terms(ctx, v, z, vals, v_number)
        return vals.ratio

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, Tensor, None]:
        return None, _first_derivative(ctx, grad), None


class _IveRatioComplement(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, v: Tensor, z: Tensor, v_number: float | None = None) -> Tensor:
        vals = BesselValues(v, z, with_log=False, v_number=v_number)
        _save_ratio_terms(ctx, v, z, vals, v_number)
        return vals.complement

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, Tensor, None]:
        return None, -_first_derivative(ctx, grad), None


class _LogIvNormalized(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, v: Tensor, z: Tensor, v_number: float | None = None) -> Tensor:
        vals = BesselValues(v, z, v_number=v_number)
        ctx.save_for_backward(v, z, vals.ratio)
        ctx.v_number = v_number
        return vals.log_normalized

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, Tensor, None]:
        v, z, ratio = ctx.saved_tensors
        if torch.is_grad_enabled():  # a double backward: R as a function of z
            ratio = _IveRatio.apply(v, z, ctx.v_number)
        return None, grad * ratio, None


class _LogIveNormalized(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, v: Tensor, z: Tensor, v_number: float | None = None) -> Tensor:
        vals = BesselValues(v, z, v_number=v_number)
        ctx.save_for_backward(v, z, vals.complement)
        ctx.v_number = v_number
        return vals.log_scaled

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, Tensor, None]:
        v, z, complement = ctx.saved_tensors
        if torch.is_grad_enabled():  # a double backward: 1 - R as a function of z
            complement = _IveRatioComplement.apply(v, z, ctx.v_number)
        return None, -(grad * complement), None


class _LogIve(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, v: Tensor, z: Tensor, v_number: float | None = None) -> Tensor:
        vals = BesselValues(v, z, v_number=v_number)
        ctx.save_for_backward(v, z, vals.complement)
        ctx.v_number = v_number
        return vals.log_ive

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, Tensor, None]:
        v, z, complement = ctx.saved_tensors
        if torch.is_grad_enabled():  # a double backward: 1 - R as a function of z
            complement = _IveRatioComplement.apply(v, z, ctx.v_number)
        z_safe = torch.where(z > 0, z, torch.ones_like(z))
        # d/dz log I_v(z) e^-z = v / z - (1 - R); at z = 0 this is +inf for v > 0 (log I_v -> -inf)
        # and -1 for v = 0
        v_over_z = torch.where(z > 0, v / z_safe, torch.where(v > 0, math.inf, 0.0))
        return None, grad * (v_over_z - complement), None


def _apply(fn: Any, v: Tensor | float, z: Tensor | float) -> Tensor:
    v64, z64, out_dtype = prepare_arguments(v, z)
    # broadcast outside the autograd function, so autograd reduces gradients over broadcast axes;
    # a single order stays 0-dimensional (its series coefficients are computed once)
    shape = broadcast_shape(v64.shape, z64.shape)
    z64 = z64.expand(shape)
    if v64.dim() > 0:
        v64 = v64.expand(shape)
    out: Tensor = fn.apply(v64, z64, order_number(v))
    return out.to(out_dtype)


def log_ive(v: Tensor | float, z: Tensor | float) -> Tensor:
    r"""Log of the exponentially scaled modified Bessel function, ``log(I_v(z) e^{-z})``.

    Its derivative in ``z`` is ``v / z - (1 - R)`` (``R`` = :func:`ive_ratio`, ``1 - R`` formed without
    cancellation).

    Args:
        v: order, ``>= 0``; tensor or float, broadcast against ``z``. Not differentiated.
        z: argument, ``>= 0``; tensor of any shape. Differentiable (twice).

    Returns:
        Tensor of the broadcast shape, in ``z``'s floating dtype (promoted with ``v``'s if ``v`` is a
        floating tensor; a Python number never promotes). Exact value ``-inf`` at ``z = 0``,
        ``v > 0``; finite everywhere else.

    Raises:
        ValueError: if ``v`` is negative or not finite, or ``z`` is negative.

    Examples:
        >>> round(float(log_ive(0.0, torch.tensor(1.0, dtype=torch.float64))), 12)
        -0.764085641493
    """
    return _apply(_LogIve, v, z)


def ive_ratio(v: Tensor | float, z: Tensor | float) -> Tensor:
    r"""Ratio of modified Bessel functions, ``I_{v+1}(z) / I_v(z)``, in ``[0, 1)``.

    For a von Mises-Fisher distribution on ``S^{m-1}``, ``A_m(kappa) = ive_ratio(m/2 - 1, kappa)`` is
    ``E[mu . x]``. Its derivative is ``1 - R^2 - (2v + 1) R / z`` (``= A_m'`` with ``m - 1 = 2v + 1``),
    formed as ``(R / z) N`` from the elasticity ``N = z R' / R`` that the evaluation forms without
    cancellation (:func:`debye_values`); its second derivative, in a double backward, from the asymptotic
    series of :func:`_far_series` at large ``z``.

    Args:
        v: order, ``>= 0``; tensor or float, broadcast against ``z``.
        z: argument, ``>= 0``. Differentiable (twice).

    Returns:
        Tensor of the broadcast shape, in ``z``'s floating dtype (promoted with ``v``'s if ``v`` is a
        floating tensor; a Python number never promotes); 0 at ``z = 0``.

    Examples:
        >>> round(float(ive_ratio(0.5, torch.tensor(2.0, dtype=torch.float64))), 12)
        0.537314720728
    """
    return _apply(_IveRatio, v, z)


def ive_ratio_complement(v: Tensor | float, z: Tensor | float) -> Tensor:
    r"""``1 - I_{v+1}(z) / I_v(z)``, formed without cancellation: about ``(v + 1/2) / z`` at large ``z``,
    where ``1 - ive_ratio(v, z)`` keeps no digit (from ``z`` of about ``1e16`` on, none at all).

    Its derivative is ``-R'`` (see :func:`ive_ratio`). Arguments and result as :func:`ive_ratio`; 1 at
    ``z = 0``.
    """
    return _apply(_IveRatioComplement, v, z)


def log_iv_normalized(v: Tensor | float, z: Tensor | float) -> Tensor:
    r"""``log(Gamma(v+1) (2/z)^v I_v(z)) = log 0F1(; v+1; z^2/4)``, which is ``>= 0`` and 0 at ``z = 0``.

    Its derivative in ``z`` is :func:`ive_ratio`. With it the vMF log-normaliser on ``S^{m-1}`` is
    ``log area(S^{m-1}) + log_iv_normalized(m/2 - 1, kappa)``, exact at ``kappa = 0`` and with full
    relative accuracy at small ``kappa``.

    Args:
        v: order, ``>= 0``; tensor or float, broadcast against ``z``.
        z: argument, ``>= 0``. Differentiable (twice).

    Returns:
        Tensor of the broadcast shape, in ``z``'s floating dtype (promoted with ``v``'s if ``v`` is a
        floating tensor; a Python number never promotes).
    """
    return _apply(_LogIvNormalized, v, z)


def log_ive_normalized(v: Tensor | float, z: Tensor | float) -> Tensor:
    r"""``log(Gamma(v+1) (2/z)^v I_v(z) e^{-z}) = log 0F1(; v+1; z^2/4) - z``, which is ``<= 0``.

    :func:`log_iv_normalized` less ``z``, formed without the subtraction at large ``z`` (from the
    uniform expansion of ``log I_v(z) e^{-z}``), where ``log 0F1`` and ``z`` agree in all their leading
    digits: about ``-(v + 1/2) log z`` there. The vMF log-density is ``-kappa (1 - mu . x) - (log area +
    log_ive_normalized(m/2 - 1, kappa))``. Its derivative in ``z`` is ``-(1 - R)`` (see
    :func:`ive_ratio_complement`). Arguments and result as :func:`log_iv_normalized`; 0 at ``z = 0``.
    """
    return _apply(_LogIveNormalized, v, z)


class _KlToUniform(torch.autograd.Function):
    """``z R(z) - log 0F1(; v+1; z^2/4)`` from precomputed :class:`BesselTerms`, derivative ``z R'(z)``.

    The KL divergence of a vMF on ``S^{m-1}`` (``v = m/2 - 1``, ``z = kappa``) to the uniform
    distribution: one Bessel evaluation gives its value (the terms' ``kl``, formed without
    cancellation at small and large ``z``) and its derivative ``z R' = R N`` (from the elasticity, no
    cancellation, no underflow), where the two functions :func:`ive_ratio` and
    :func:`log_iv_normalized` would evaluate and differentiate twice. ``z`` is in any floating dtype;
    the arithmetic runs in the terms' (working) dtype and the result is cast back. Under a double
    backward ``z R'`` is a function of ``z`` (:class:`RatioDerivative`) whose derivative is ``R' + z
    R''`` (``R'(0) = 1 / (2(v + 1))`` at ``z = 0``).
    """

    @staticmethod
    def forward(
        ctx: Any,
        z: Tensor,
        v: float,
        kl: Tensor,
        ratio: Tensor,
        ratio_over_z: Tensor,
        elasticity: Tensor,
    ) -> Tensor:
        ctx.save_for_backward(z, ratio, ratio_over_z, elasticity)
        ctx.v = v
        return kl.to(z.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None, None, None]:
        z, ratio, ratio_over_z, elasticity = ctx.saved_tensors
        if torch.is_grad_enabled():  # a double backward: z R' as a differentiable function of z
            z_work = z.to(ratio.dtype)
            derivative: Tensor = RatioDerivative.apply(
                order_tensor(float(ctx.v), ratio.dtype, ratio.device),
                z_work,
                ratio,
                ratio_over_z,
                elasticity,
                True,
                ctx.v,
            )
            return (grad * derivative).to(z.dtype), None, None, None, None, None
        # z R' = R N, in the terms' dtype
        return (torch.mul(ratio, elasticity).mul_(grad)).to(z.dtype), None, None, None, None, None


def kl_to_uniform(v: float, z: Tensor, terms: BesselTerms | None = None) -> Tensor:
    """``z R(z) - log 0F1(; v+1; z^2/4)``: ``KL(vMF(mu, z) || uniform)`` on ``S^{m-1}``, ``v = m/2 - 1``.

    Both terms are ``O(z^2 / (v + 1))`` at small ``z``, so no digits are lost there; at large ``z`` it is
    ``-(g - z) - z (1 - R)`` (:func:`debye_values`), about ``(v + 1/2) (log(z / (2 pi)) - 1) + log area``
    less terms of order ``1 / z``; exactly 0 at ``z = 0``. Differentiable twice in ``z`` (derivative
    ``z R'(z)``, formed without cancellation).

    Args:
        v: the order, a number ``>= 0``.
        z: arguments ``>= 0``, any floating dtype (the result has it).
        terms: ``bessel_terms(v, z)`` if already computed (with the logarithms).
    """
    if terms is None or terms.kl is None:
        terms = bessel_terms(v, z)
    assert terms.kl is not None
    out: Tensor = _KlToUniform.apply(
        z, v, terms.kl, terms.ratio, terms.ratio_over_z, terms.elasticity
    )
    return out


_TERM_NAMES = ("ratio", "complement", "log_normalized", "log_scaled")


class _FromTerms(torch.autograd.Function):
    """One of ``R``, ``1 - R``, ``g`` and ``g - z`` of precomputed :class:`BesselTerms` as a function of
    ``z``, with the derivative ``R'``, ``-R'``, ``R`` and ``-(1 - R)`` from the same terms (a function
    of ``z`` again under a double backward)."""

    @staticmethod
    def forward(
        ctx: Any,
        z: Tensor,
        v: float,
        name: str,
        value: Tensor,
        ratio: Tensor,
        complement: Tensor,
        ratio_over_z: Tensor,
        elasticity: Tensor,
    ) -> Tensor:
        ctx.save_for_backward(z, ratio, complement, ratio_over_z, elasticity)
        ctx.v, ctx.name = v, name
        return value.to(z.dtype, copy=True)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None, None, None, None, None]:
        z, ratio, complement, ratio_over_z, elasticity = ctx.saved_tensors
        v, name = ctx.v, ctx.name
        derivative: Tensor
        if torch.is_grad_enabled():  # a double backward: the derivative as a function of z
            z_work = z.to(ratio.dtype)
            order = order_tensor(float(v), ratio.dtype, ratio.device)
            if name in ("ratio", "complement"):
                derivative = RatioDerivative.apply(
                    order, z_work, ratio, ratio_over_z, elasticity, False, v
                )
            elif name == "log_normalized":
                derivative = _IveRatio.apply(order, z_work, v)
            else:
                derivative = _IveRatioComplement.apply(order, z_work, v)
        elif name in ("ratio", "complement"):
            # (grad (R / z)) N: R' itself underflows from z of about 1e154 on, grad R' need not
            scaled = (grad.to(ratio.dtype) * ratio_over_z) * elasticity
            out = scaled if name == "ratio" else -scaled
            return out.to(z.dtype), None, None, None, None, None, None, None
        else:
            derivative = ratio if name == "log_normalized" else complement
        if name in ("complement", "log_scaled"):
            derivative = -derivative
        return (grad * derivative).to(z.dtype), None, None, None, None, None, None, None


def term_of(terms: BesselTerms, name: str, v: float, z: Tensor) -> Tensor:
    """``terms.<name>`` (``"ratio"``, ``"complement"``, ``"log_normalized"`` or ``"log_scaled"``) of
    ``bessel_terms(v, z)`` as a differentiable function of ``z`` (twice), in ``z``'s dtype: the value
    the terms hold, and its derivative from them, without a Bessel evaluation of its own."""
    if name not in _TERM_NAMES:
        raise ValueError(f"name must be one of {_TERM_NAMES}, got {name!r}")
    value = getattr(terms, name)
    if value is None:
        raise ValueError(f"the terms have no {name} (bessel_terms(..., with_log=False))")
    out: Tensor = _FromTerms.apply(
        z,
        v,
        name,
        value,
        terms.ratio,
        terms.complement,
        terms.ratio_over_z,
        terms.elasticity,
    )
    return out
