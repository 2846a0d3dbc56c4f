"""The public Bessel functions of :mod:`spherevae.special` as differentiable torch functions (custom
autograd, every first derivative formed without cancellation), and functions of precomputed
:class:`~spherevae.special.evaluation.BesselTerms`.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..tracing import batched_elementwise
from .derivatives import second_derivative, third_derivative
from .evaluation import (
    BesselTerms,
    bessel_terms,
    broadcast_shape,
    evaluate,
    order_number,
    order_tensor,
    prepare_arguments,
)

# The derivative in z of each quantity, by name: (sign, the quantity that is the derivative). Every
# derivative is again a quantity of the family, so a double backward differentiates it the same way.
_DERIVATIVES: dict[str, tuple[int, str]] = {
    "ratio": (1, "ratio_derivative"),  # R' = (R / z) N
    "complement": (-1, "ratio_derivative"),  # (1 - R)' = -R'
    "log_normalized": (1, "ratio"),  # g' = R
    "log_scaled": (-1, "complement"),  # (g - z)' = -(1 - R)
    "kl": (1, "scaled_ratio_derivative"),  # (z R - g)' = z R' = R N
    "ratio_derivative": (1, "ratio_second_derivative"),
    "scaled_ratio_derivative": (1, "scaled_ratio_second_derivative"),
    "ratio_second_derivative": (1, "ratio_third_derivative"),
}
# log_ive's derivative, v / z - (1 - R), is formed in _times_derivative and _derivative_function
_NAMES = (*_DERIVATIVES, "log_ive", "scaled_ratio_second_derivative", "ratio_third_derivative")
_WITH_LOG = ("log_normalized", "log_scaled", "kl", "log_ive")


class _Terms(NamedTuple):
    """The no-grad values at ``z`` from which every derivative of the family is formed."""

    ratio: Tensor
    complement: Tensor
    ratio_over_z: Tensor
    elasticity: Tensor


def _value(name: str, v: Tensor, z: Tensor, v_number: float | None) -> tuple[Tensor, _Terms]:
    """The quantity ``name`` at ``(v, z)`` (working dtype, no autograd) and the terms there."""
    vals = evaluate(v, z, with_log=name in _WITH_LOG, v_number=v_number)
    terms = _Terms(vals.ratio, vals.complement, vals.ratio_over_z, vals.elasticity)
    if name == "ratio_derivative":
        value = vals.ratio_over_z * vals.elasticity
    elif name == "scaled_ratio_derivative":
        value = vals.ratio * vals.elasticity
    elif name in ("ratio_second_derivative", "scaled_ratio_second_derivative"):
        value = second_derivative(v, z, *terms[:1], *terms[2:], v_number, name.startswith("scaled"))
    elif name == "ratio_third_derivative":
        value = third_derivative(v, z, *terms[:1], *terms[2:], v_number)
    else:
        value = getattr(vals, name)
    return value, terms


def _times_derivative(
    name: str, grad: Tensor, v: Tensor, z: Tensor, terms: _Terms, v_number: float | None
) -> Tensor:
    """``grad * d(name)/dz`` from the no-grad terms at ``z``, multiplied in the order that keeps it
    representable: ``(grad (R / z)) N`` rather than ``grad R'``, since ``R'`` itself underflows from
    ``z`` of about ``1e154`` on where ``grad R'`` need not (``z`` times it is the KL's derivative)."""
    ratio, complement, ratio_over_z, elasticity = terms
    if name in ("ratio", "complement"):
        out = (grad * ratio_over_z) * elasticity
        return out if name == "ratio" else -out
    if name == "log_normalized":
        return grad * ratio
    if name == "log_scaled":
        return -(grad * complement)
    if name == "kl":
        return (ratio * elasticity) * grad
    if name == "log_ive":
        return grad * (_v_over_z(v, z) - complement)
    if name in ("ratio_derivative", "scaled_ratio_derivative"):
        scaled = name.startswith("scaled")
        second = second_derivative(v, z, ratio, ratio_over_z, elasticity, v_number, scaled)
        return grad * second
    if name == "ratio_second_derivative":
        return grad * third_derivative(v, z, ratio, ratio_over_z, elasticity, v_number)
    raise NotImplementedError(
        "this derivative of the Bessel functions is not provided (spherevae.special: up to the "
        "third of the ratio, the second of the others)"
    )


def _v_over_z(v: Tensor, z: Tensor) -> Tensor:
    """``v / z``, with its limit at ``z = 0``: ``+inf`` for ``v > 0`` (``log I_v -> -inf``), 0 for ``v = 0``."""
    z_safe = torch.where(z > 0, z, torch.ones_like(z))
    return torch.where(z > 0, v / z_safe, torch.where(v > 0, math.inf, 0.0))


def _derivative_function(name: str, v: Tensor, z: Tensor, v_number: float | None) -> Tensor:
    """``d(name)/dz`` as a differentiable function of ``z`` (for a double backward)."""
    if name == "log_ive":
        return _v_over_z(v, z) - _bessel("complement", v, z, v_number)
    if name not in _DERIVATIVES:
        raise NotImplementedError(
            "this derivative of the Bessel functions is not provided (spherevae.special: up to the "
            "third of the ratio, the second of the others)"
        )
    sign, derivative = _DERIVATIVES[name]
    out = _bessel(derivative, v, z, v_number)
    return out if sign > 0 else -out


class _Bessel(torch.autograd.Function):
    """The quantity ``name`` of the family as a function of ``z`` (``v`` is not differentiated), with
    the derivatives of :data:`_DERIVATIVES` in backward (twice) and forward mode, and a rule for
    ``torch.func.vmap``: the functions are elementwise, so a batch is one more leading axis.

    ``forward`` returns the value and the no-grad terms that its derivatives read (marked
    non-differentiable), so that ``setup_context`` can save them: the layout ``torch.func`` asks of
    a custom function.
    """

    @staticmethod
    def forward(
        name: str, v: Tensor, z: Tensor, v_number: float | None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        value, terms = _value(name, v, z, v_number)
        if any(value is t for t in terms):  # one tensor cannot be both the output and a saved term
            value = value.clone()
        return (value, *terms)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, ...]) -> None:
        name, v, z, v_number = inputs
        ctx.mark_non_differentiable(*output[1:])
        # the input z itself (not a copy), so that a double backward reaches it
        ctx.save_for_backward(v, z, *output[1:])
        ctx.save_for_forward(v, z, *output[1:])
        ctx.name, ctx.v_number = name, v_number

    @staticmethod
    def backward(ctx: Any, grad: Tensor, *unused: Tensor) -> tuple[None, None, Tensor, None]:
        v, z, *terms = ctx.saved_tensors
        if torch.is_grad_enabled():  # a double backward: the derivative as a function of z
            return None, None, grad * _derivative_function(ctx.name, v, z, ctx.v_number), None
        return (
            None,
            None,
            _times_derivative(ctx.name, grad, v, z, _Terms(*terms), ctx.v_number),
            None,
        )

    @staticmethod
    def jvp(
        ctx: Any, name_t: None, v_t: Tensor | None, z_t: Tensor | None, v_number_t: None
    ) -> tuple[Tensor, None, None, None, None]:
        v, z, *terms = ctx.saved_tensors
        tangent = torch.zeros_like(z) if z_t is None else z_t
        out = _times_derivative(ctx.name, tangent, v, z, _Terms(*terms), ctx.v_number)
        return out, None, None, None, None

    @staticmethod
    def vmap(
        info: Any, in_dims: tuple[Any, ...], name: str, v: Tensor, z: Tensor, v_number: float | None
    ) -> tuple[tuple[Tensor, ...], tuple[int, ...]]:
        _, v_dim, z_dim, _ = in_dims
        if v_dim is None and v.dim() == 0:  # one order for the whole batch: it stays a number
            (z,) = batched_elementwise(info.batch_size, (z,), (z_dim,))
        else:
            v, z = batched_elementwise(info.batch_size, (v, z), (v_dim, z_dim))
            v_number = None
        out = _Bessel.apply(name, v, z, v_number)
        return out, (0,) * len(out)


def _bessel(name: str, v: Tensor, z: Tensor, v_number: float | None) -> Tensor:
    """:class:`_Bessel` of ``(v, z)`` in the working dtype (``v`` 0-dimensional or of ``z``'s shape)."""
    out: tuple[Tensor, ...] = _Bessel.apply(name, v, z, v_number)
    return out[0]


def _apply(name: str, v: Tensor | float, z: Tensor | float) -> Tensor:
    v64, z64, out_dtype = prepare_arguments(v, z)
    # broadcast outside the autograd function, so autograd reduces gradients over broadcast axes;
    # a single order stays 0-dimensional (its series coefficients are computed once)
    shape = broadcast_shape(v64.shape, z64.shape)
    z64 = z64.expand(shape)
    if v64.dim() > 0:
        v64 = v64.expand(shape)
    return _bessel(name, v64, z64, order_number(v)).to(out_dtype)


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
    return _apply("log_ive", v, z)


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
    return _apply("ratio", v, z)


def ive_ratio_derivative(v: Tensor | float, z: Tensor | float) -> Tensor:
    r"""``d/dz I_{v+1}(z) / I_v(z) = 1 - R^2 - (2v + 1) R / z``, formed as ``(R / z) N`` without
    cancellation: the variance ``A_m'(kappa)`` of ``mu . x`` under a vMF (``v = m/2 - 1``).

    Differentiable twice: its derivatives come from the Riccati equation and, at large ``z``, from
    the asymptotic series of the ratio. Arguments and result as :func:`ive_ratio`; ``1 / (2 (v + 1))``
    at ``z = 0``.

    Examples:
        >>> round(float(ive_ratio_derivative(0.5, torch.tensor(2.0, dtype=torch.float64))), 12)
        0.173978170162
    """
    return _apply("ratio_derivative", v, z)


def ive_ratio_complement(v: Tensor | float, z: Tensor | float) -> Tensor:
    r"""``1 - I_{v+1}(z) / I_v(z)``, formed without cancellation: about ``(v + 1/2) / z`` at large ``z``,
    where ``1 - ive_ratio(v, z)`` keeps no digit (from ``z`` of about ``1e16`` on, none at all).

    Its derivative is ``-R'`` (see :func:`ive_ratio`). Arguments and result as :func:`ive_ratio`; 1 at
    ``z = 0``.
    """
    return _apply("complement", v, z)


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
    return _apply("log_normalized", v, z)


def log_ive_normalized(v: Tensor | float, z: Tensor | float) -> Tensor:
    r"""``log(Gamma(v+1) (2/z)^v I_v(z) e^{-z}) = log 0F1(; v+1; z^2/4) - z``, which is ``<= 0``.

    :func:`log_iv_normalized` less ``z``, formed without the subtraction at large ``z`` (from the
    uniform expansion of ``log I_v(z) e^{-z}``), where ``log 0F1`` and ``z`` agree in all their leading
    digits: about ``-(v + 1/2) log z`` there. The vMF log-density is ``-kappa (1 - mu . x) - (log area +
    log_ive_normalized(m/2 - 1, kappa))``. Its derivative in ``z`` is ``-(1 - R)`` (see
    :func:`ive_ratio_complement`). Arguments and result as :func:`log_iv_normalized`; 0 at ``z = 0``.
    """
    return _apply("log_scaled", v, z)


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
    out: Tensor = _FromTerms.apply(
        z, v, "kl", terms.kl, terms.ratio, terms.complement, terms.ratio_over_z, terms.elasticity
    )
    return out


_TERM_NAMES = ("ratio", "complement", "log_normalized", "log_scaled")


class _FromTerms(torch.autograd.Function):
    """``name`` of precomputed :class:`BesselTerms` as a function of ``z`` (any floating dtype; the
    terms are in the working dtype): the value the terms hold, and its derivatives from them (a
    function of ``z`` again under a double backward), in backward and forward mode, with a rule
    for ``torch.func.vmap``."""

    @staticmethod
    def forward(
        z: Tensor,
        v: float,
        name: str,
        value: Tensor,
        ratio: Tensor,
        complement: Tensor,
        ratio_over_z: Tensor,
        elasticity: Tensor,
    ) -> Tensor:
        return value.to(z.dtype, copy=True)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        z, v, name, _, *terms = inputs
        ctx.save_for_backward(z, *terms)
        ctx.save_for_forward(z, *terms)
        ctx.v, ctx.name = v, name

    @staticmethod
    def _times_derivative(ctx: Any, grad: Tensor) -> Tensor:
        z, *terms = ctx.saved_tensors
        work = terms[0].dtype
        order = order_tensor(float(ctx.v), work, z.device)
        out = _times_derivative(ctx.name, grad.to(work), order, z.to(work), _Terms(*terms), ctx.v)
        return out.to(z.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        if torch.is_grad_enabled():  # a double backward: the derivative as a function of z
            z, *terms = ctx.saved_tensors
            work = terms[0].dtype
            order = order_tensor(float(ctx.v), work, z.device)
            derivative = _derivative_function(ctx.name, order, z.to(work), ctx.v)
            out = (grad * derivative).to(z.dtype)
        else:
            out = _FromTerms._times_derivative(ctx, grad)
        return out, None, None, None, None, None, None, None

    @staticmethod
    def jvp(ctx: Any, z_t: Tensor | None, *unused: Any) -> Tensor:
        z = ctx.saved_tensors[0]
        return _FromTerms._times_derivative(ctx, torch.zeros_like(z) if z_t is None else z_t)

    @staticmethod
    def vmap(
        info: Any,
        in_dims: tuple[Any, ...],
        z: Tensor,
        v: float,
        name: str,
        value: Tensor,
        *terms: Tensor,
    ) -> tuple[Tensor, int]:
        dims = (in_dims[0], *in_dims[3:])
        batched = batched_elementwise(info.batch_size, (z, value, *terms), dims)
        out: Tensor = _FromTerms.apply(batched[0], v, name, *batched[1:])
        return out, 0


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
