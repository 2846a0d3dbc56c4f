"""One evaluation of every quantity of the Bessel functions at ``(v, z)``: the regions merged, the
arguments checked and cast, and the no-grad :class:`BesselTerms` that the distributions share.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import NamedTuple

import torch
from torch import Tensor

from ..tracing import builds_constants, values_can_be_read
from .debye import collapsed_sums, debye_terms_needed, debye_values
from .layout import (
    COMPLEMENT,
    DEBYE_MIN_RHO,
    ELASTICITY,
    KL,
    LOG_NORMALIZED,
    LOG_SCALED,
    RATIO,
    RATIO_OVER_Z,
    ROWS_WITH_LOG,
    ROWS_WITHOUT_LOG,
    SERIES_MAX_C,
    SERIES_TERMS,
    OrderPlan,
)
from .series import (
    log_gamma,
    series_coefficients_cached,
    series_terms_needed,
    series_threshold,
    series_values,
)

# Up to this many elements the CPU evaluates both regions on every element when both occur, and merges
# them with torch.where: at these sizes the dozen indexing operations of a split cost more than
# evaluating each region on every element.
_MERGE_BY_WHERE_MAX_ELEMENTS = 512


def broadcast_shape(v: torch.Size, z: torch.Size) -> torch.Size:
    """``torch.broadcast_shapes(v, z)``, without its cost (Python reference code, about 20 us) in the
    usual cases: one order (``v`` 0-dimensional) or equal shapes."""
    if len(v) == 0 or v == z:
        return z
    return torch.Size(torch.broadcast_shapes(v, z))


def _compute_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64


class BesselValues(NamedTuple):
    """Every quantity for one broadcast ``(v, z)`` pair, in the working dtype (:func:`evaluate`); the
    last four are ``None`` without the logarithms."""

    ratio: Tensor
    complement: Tensor
    ratio_over_z: Tensor
    elasticity: Tensor
    log_ive: Tensor | None
    log_normalized: Tensor | None
    log_scaled: Tensor | None
    kl: Tensor | None


def evaluate(
    v: Tensor, z: Tensor, with_log: bool = True, v_number: float | None = None
) -> BesselValues:
    """Every quantity for one broadcast ``(v, z)`` pair, in the working dtype.

    On the CPU each region is evaluated on its own elements only. On accelerators both regions are
    evaluated everywhere (with harmless placeholder arguments) and merged with ``torch.where``, which
    never waits on the device: no host round trip at run time. The regions return their values stacked
    in rows (:func:`series_values`), so that a merge is one operation for all of them: at the batch sizes of
    training every tensor operation costs microseconds of dispatch, more than its arithmetic.

    ``v_number``: the order ``v`` as a Python number, when it is one (its series coefficients are then
    cached, the Debye sums are one power series, :func:`collapsed_sums`, and the regions are told
    apart by one comparison). On the CPU a 0-dimensional ``v`` is read as a number. A function, not a
    class, so that ``torch.compile`` inlines it (and takes :func:`order_plan` as a constant).
    """
    shape = broadcast_shape(v.shape, z.shape)
    # views only where needed (each is an operation): a single order broadcasts as it is
    v = v if v.dim() == 0 else v.expand(shape)
    z_shaped = z if z.shape == shape else z.expand(shape)
    z = z_shaped if z_shaped.dim() == 1 else z_shaped.reshape(-1)
    # on the CPU the values of z choose the path (read without a wait), unless they cannot be read
    on_cpu = z.device.type == "cpu" and values_can_be_read(z)
    if v_number is None and v.dim() == 0 and on_cpu and values_can_be_read(v):
        v_number = float(v)  # no wait on the CPU; a number and a 0-dim order give equal results
    v_full = v if v_number is not None else v.expand(shape).reshape(-1)
    n_rows = ROWS_WITH_LOG if with_log else ROWS_WITHOUT_LOG
    if z.numel() == 0:
        values = z.new_empty(n_rows, 0)
    elif on_cpu:
        values = _on_cpu(v_full, z, with_log, v_number)
    else:
        values = evaluate_everywhere(v, v_full, z, with_log, v_number)
    if values.shape[1:] != shape:
        values = values.reshape(n_rows, *shape)
    ratio, complement, ratio_over_z, elasticity, *logs = values.unbind(0)
    if not with_log:
        return BesselValues(ratio, complement, ratio_over_z, elasticity, None, None, None, None)
    log_ive, log_normalized, log_scaled, kl = logs
    return BesselValues(
        ratio, complement, ratio_over_z, elasticity, log_ive, log_normalized, log_scaled, kl
    )


def _in_series(v: Tensor, z: Tensor) -> Tensor:
    return (z * z <= (4 * SERIES_MAX_C) * (v + 1)) | (torch.hypot(v, z) < DEBYE_MIN_RHO)


def _on_cpu(v: Tensor, z: Tensor, with_log: bool, v_number: float | None) -> Tensor:
    """Each region on its own elements; a region with no element is not evaluated at all."""
    if v_number is not None:
        # one order: the series region is z <= threshold, and the extremes of z decide whether
        # both regions occur
        threshold = series_threshold(v_number)
        z_min, z_max = (float(x) for x in torch.aminmax(z))
        if z_min < 0:
            raise ValueError(f"Bessel argument z must be >= 0, got z={z_min}")
        c_max = z_max * z_max / (4 * (v_number + 1))
        if z_max <= threshold:
            return series_values(v_number, z, with_log, series_terms_needed(c_max, v_number))
        if z_min > threshold:
            return debye_values(v_number, z, with_log, math.hypot(v_number + 1, z_min))
        if z.numel() <= _MERGE_BY_WHERE_MAX_ELEMENTS:
            return evaluate_everywhere(v, v, z, with_log, v_number)
        in_series = z <= threshold
    else:
        if bool((z < 0).any()):
            raise ValueError(f"Bessel argument z must be >= 0, got z={z[z < 0][0].item()}")
        in_series = _in_series(v, z)
        n_series = int(in_series.sum())
        if n_series == z.numel():
            c_max = float((z * z / (4 * (v + 1))).max())
            return series_values(v, z, with_log, series_terms_needed(c_max))
        if n_series == 0:
            return debye_values(v, z, with_log)
    series_idx = in_series.nonzero().squeeze(-1)
    debye_idx = (~in_series).nonzero().squeeze(-1)
    z_s, z_d = z[series_idx], z[debye_idx]
    v_s: Tensor | float = v[series_idx] if v_number is None else v_number
    v_d: Tensor | float = v[debye_idx] if v_number is None else v_number
    c_max = float((z_s * z_s / (4 * (v_s + 1))).max())
    values = z.new_empty(ROWS_WITH_LOG if with_log else ROWS_WITHOUT_LOG, z.numel())
    n_terms = series_terms_needed(c_max, v_number)
    values[:, series_idx] = series_values(v_s, z_s, with_log, n_terms)
    values[:, debye_idx] = debye_values(v_d, z_d, with_log)
    return values


def evaluate_everywhere(
    v: Tensor, v_full: Tensor, z: Tensor, with_log: bool, v_number: float | None
) -> Tensor:
    """Both regions on every element, merged with ``torch.where`` (no host round trip).

    With one order given as a number, the series needs only the terms for the largest ``c`` of its
    region, ``c`` at the threshold; else all 180.
    """
    if v_number is not None:
        return merged_values(z, with_log, order_plan(v_number, z.dtype, z.device))
    in_series = _in_series(v_full, z)
    z_series = torch.where(in_series, z, 0.0)
    z_debye = torch.where(in_series, DEBYE_MIN_RHO, z)
    series = series_values(v if v.dim() == 0 else v_full, z_series, with_log, SERIES_TERMS)
    return torch.where(in_series, series, debye_values(v_full, z_debye, with_log))


_PLANS: dict[tuple[float, torch.dtype, torch.device], OrderPlan] = {}


def order_plan(v: float, dtype: torch.dtype, device: torch.device) -> OrderPlan:
    """The :class:`OrderPlan` of the order ``v`` (built once per order, dtype and device)."""
    key = (v, dtype, device)
    if key not in _PLANS:
        _PLANS[key] = _build_plan(v, dtype, device)
    return _PLANS[key]


@builds_constants
def _build_plan(v: float, dtype: torch.dtype, device: torch.device) -> OrderPlan:
    threshold = series_threshold(v)
    n_series = series_terms_needed(threshold * threshold / (4 * (v + 1)), v)
    coef, blocked = series_coefficients_cached(v, n_series, dtype, device)
    mu = v + 1
    n_debye = debye_terms_needed(mu, math.hypot(mu, threshold))
    constant, debye_coef, nu = collapsed_sums(mu, dtype, device, n_debye)
    return OrderPlan(v, threshold, coef, blocked, log_gamma(mu), constant, debye_coef, nu)


def merged_values(z: Tensor, with_log: bool, plan: OrderPlan) -> Tensor:
    """Both regions on every element of ``z`` for the order of ``plan``, merged by ``torch.where``.

    No data-dependent branch and no host round trip: what accelerators run, and what
    ``torch.compile`` can fuse into one kernel (``spherevae.distributions.von_mises_fisher.kernels``). The Debye
    region's placeholder argument 18 keeps its values finite where the series is taken. Returns the
    rows of :func:`series_values`, ``(4 or 8, *z.shape)``.
    """
    in_series = z <= plan.threshold
    z_series = torch.where(in_series, z, 0.0)
    z_debye = torch.where(in_series, DEBYE_MIN_RHO, z)
    series = series_values(plan.v, z_series, with_log, plan=plan)
    return torch.where(in_series, series, debye_values(plan.v, z_debye, with_log, plan=plan))


def _check_order(v: float) -> None:
    if not (math.isfinite(v) and v >= 0):
        raise ValueError(f"Bessel order v must be finite and >= 0, got v={v}")


def prepare_arguments(v: Tensor | float, z: Tensor | float) -> tuple[Tensor, Tensor, torch.dtype]:
    """Validate (on the CPU only, to never wait on an accelerator), upcast; return the output dtype."""
    z_t = torch.as_tensor(z)
    if not z_t.is_floating_point():
        z_t = z_t.to(torch.get_default_dtype())
    work = _compute_dtype(z_t.device)
    if isinstance(v, Tensor):
        v_t = v.to(z_t.device)
        out_dtype = (
            torch.promote_types(z_t.dtype, v_t.dtype) if v_t.is_floating_point() else z_t.dtype
        )
    else:  # a Python number: straight to the working dtype (no rounding to float32), no promotion
        _check_order(v)
        v_t = order_tensor(float(v), work, z_t.device)
        out_dtype = z_t.dtype
    v64, z64 = v_t.to(work), z_t.to(work)
    if v64.device.type == "cpu" and isinstance(v, Tensor):
        good_v = (v64 >= 0) & v64.isfinite()
        # torch._is_all_true, as torch.distributions validates: it also holds under torch.func.vmap
        if not bool(torch._is_all_true(good_v)):
            shown = v64[~good_v][0].item() if values_can_be_read(v64) else "(under torch.func)"
            raise ValueError(f"Bessel order v must be finite and >= 0, got v={shown}")
    # z < 0 is rejected by BesselValues, which reads the extremes of z on the CPU anyway
    return v64, z64, out_dtype


@lru_cache(maxsize=64)
@builds_constants
def order_tensor(v: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A number order as a 0-dimensional tensor, made once (read only: autograd saves it, nobody
    writes to it)."""
    return torch.tensor(v, dtype=dtype, device=device)


def ratio_derivative(ratio_over_z: Tensor, elasticity: Tensor) -> Tensor:
    """``dR/dz = (R / z) N`` from the elasticity ``N = z R' / R`` (formed without cancellation)."""
    return ratio_over_z * elasticity


def order_number(v: Tensor | float) -> float | None:
    return float(v) if isinstance(v, int | float) else None


class BesselTerms(NamedTuple):
    """No-grad values of one order ``v`` at arguments ``z``, in the working dtype, shape of ``z``.

    ``ratio = R = I_{v+1}(z) / I_v(z)``; ``complement = 1 - R``, formed without cancellation;
    ``ratio_over_z = R / z`` (``1 / (2(v + 1))`` at ``z = 0``); ``log_normalized = g = log 0F1(; v+1;
    z^2/4)`` (0 at ``z = 0``), or ``None`` when not asked for; ``elasticity = N = z R' / R`` (1 at ``z =
    0``, about ``(v + 1/2) / z`` at large ``z``), formed without cancellation, so that ``R' = (R / z) N``
    and ``z R' = R N`` keep their digits and never underflow before the true values do;
    ``log_scaled = g - z`` and ``kl = z R - g`` (``KL(vMF || uniform)``), each formed without
    cancellation at small and at large ``z`` (``None`` without the logarithms).
    """

    ratio: Tensor
    complement: Tensor
    ratio_over_z: Tensor
    log_normalized: Tensor | None
    elasticity: Tensor
    log_scaled: Tensor | None
    kl: Tensor | None

    def ratio_derivative(self, v: float | None = None) -> Tensor:
        """``dR/dz = (R / z) N`` (the variance ``A'`` of ``w = mu . x`` for a vMF), from the elasticity
        (no cancellation); ``v``, the order, is not needed."""
        return ratio_derivative(self.ratio_over_z, self.elasticity)

    def map(self, fn: Callable[[Tensor], Tensor]) -> BesselTerms:
        """The terms with ``fn`` applied to each (a reshape, an index): ``None`` stays ``None``."""
        fields = [None if x is None else fn(x) for x in self]
        return BesselTerms(*fields)  # type: ignore[arg-type]

    @staticmethod
    def from_rows(values: Tensor) -> BesselTerms:
        """The terms from the stacked rows ``(8, ...)`` of :func:`merged_values` (with the log)."""
        rows = values.unbind(0)  # one operation for all rows
        return BesselTerms(
            rows[RATIO],
            rows[COMPLEMENT],
            rows[RATIO_OVER_Z],
            rows[LOG_NORMALIZED],
            rows[ELASTICITY],
            rows[LOG_SCALED],
            rows[KL],
        )


def bessel_terms(v: float, z: Tensor, with_log: bool = True) -> BesselTerms:
    """:class:`BesselTerms` of the order ``v`` (a number) at ``z >= 0``, from one Bessel evaluation.

    For the von Mises-Fisher distribution (``v = m/2 - 1``), which needs ``A = R``, ``1 - A`` and ``A'`` in
    its samplers and their gradient and ``A``, the log-normaliser and the KL divergence to the uniform
    distribution in its closed forms, at the same concentrations. ``z`` is detached.
    """
    v64, z64, _ = prepare_arguments(
        v, z.detach() if z.requires_grad else z
    )  # a detach is an operation
    with torch.no_grad():
        vals = evaluate(v64, z64, with_log=with_log, v_number=float(v))
    if not with_log:
        return BesselTerms(
            vals.ratio, vals.complement, vals.ratio_over_z, None, vals.elasticity, None, None
        )
    return BesselTerms(
        vals.ratio,
        vals.complement,
        vals.ratio_over_z,
        vals.log_normalized,
        vals.elasticity,
        vals.log_scaled,
        vals.kl,
    )


def mean_resultant_terms(v: Tensor | float, z: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(R, 1 - R, R / z, dR/dz)`` for ``R = ive_ratio(v, z)``, in the working dtype, without autograd.

    For the samplers, which need the mean ``A = R`` and the variance ``A' = dR/dz`` of ``w = mu . x``
    with their digits intact at large ``z`` (``1 - R`` and ``dR/dz`` are formed without cancellation).
    ``R / z`` is its limit ``1 / (2(v + 1))`` at ``z = 0``.
    """
    v64, z64, _ = prepare_arguments(v, z)
    with torch.no_grad():
        vals = evaluate(v64, z64.detach(), with_log=False, v_number=order_number(v))
    deriv = ratio_derivative(vals.ratio_over_z, vals.elasticity)
    return vals.ratio, vals.complement, vals.ratio_over_z, deriv
