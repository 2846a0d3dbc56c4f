"""What the two regions of the Bessel evaluation share: where each applies, and the order of the
values they return (one stacked tensor, so that merging the regions is one operation for all of them).
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

SERIES_MAX_C = 8.0  # the series is also used wherever c = z^2 / (4 (v + 1)) <= 8 ...


DEBYE_MIN_RHO = 18.0  # ... and wherever sqrt(v^2 + z^2) < 18; there c < 18^2 / 4 = 81


# term j of the series is at most c^j / j!; at j = 180, c = 81 the tail is below e^-44 of the sum
SERIES_TERMS = 180


# Rows of the stacked values that the region functions return, in this order (the first four always,
# the last four with the logarithms)
RATIO, COMPLEMENT, RATIO_OVER_Z, ELASTICITY = range(4)


LOG_IVE, LOG_NORMALIZED, LOG_SCALED, KL = range(4, 8)


ROWS_WITHOUT_LOG, ROWS_WITH_LOG = 4, 8


class OrderPlan(NamedTuple):
    """What the evaluation at one order ``v`` (a Python number) needs that does not depend on ``z``.

    ``threshold``: the series region is ``z <= threshold`` (:func:`series_threshold`);
    ``series_coef`` and ``series_blocked``: the series coefficients (:func:`series_coefficients_cached`) with the
    terms for ``c`` at the threshold, the largest of the region; ``lgamma = lgamma(v + 1)``;
    ``debye_*``: the collapsed Debye sums of order ``v + 1`` (:func:`collapsed_sums`) with the terms
    for ``rho`` from ``hypot(v + 1, threshold)`` on, the smallest of the Debye region.
    """

    v: float
    threshold: float
    series_coef: Tensor
    series_blocked: tuple[Tensor, int]
    lgamma: float
    debye_constant: Tensor
    debye_coef: Tensor
    debye_nu: Tensor
