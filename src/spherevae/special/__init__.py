r"""Modified Bessel functions of the first kind in log space, for any order and argument.

Public functions (all pure torch, batched and broadcasting, differentiable twice in ``z``):

- :func:`log_ive` ``(v, z) = log(I_v(z) exp(-z))``, the log of the exponentially scaled Bessel function;
- :func:`ive_ratio` ``(v, z) = I_{v+1}(z) / I_v(z)``, the ratio that gives the mean resultant length of
  a von Mises-Fisher distribution, ``A_m(kappa) = ive_ratio(m/2 - 1, kappa)``;
- :func:`log_iv_normalized` ``(v, z) = log(Gamma(v+1) (2/z)^v I_v(z))``, the log of the power series
  ``0F1(; v+1; z^2/4)``; it is 0 at ``z = 0``, about ``z^2 / (4(v+1))`` for small ``z``, and its
  derivative is exactly ``ive_ratio(v, z)``. The vMF log-normaliser, entropy and KL are written with it,
  so that they keep every digit at small concentration, where the textbook formula subtracts two
  large numbers;
- :func:`log_ive_normalized` ``(v, z) = log_iv_normalized(v, z) - z`` and :func:`ive_ratio_complement`
  ``(v, z) = 1 - ive_ratio(v, z)``, formed without those subtractions: at large ``z`` they are about
  ``-(v + 1/2) log z`` and ``(v + 1/2) / z``, and the subtraction keeps no digit of them from ``z`` of
  about ``1e16`` on. The vMF log-density near its mode and the KL divergences at large concentration
  are written with them.

Method (chosen for accuracy over ``v in [0, 1e4]`` and every ``z`` from 0 to the largest float):

1. Series region, ``z^2 / (4 (v + 1)) <= 8`` or ``sqrt(v^2 + z^2) < 18``: the power series
   ``I_v(z) = (z/2)^v / Gamma(v+1) * sum_j (z^2/4)^j / (j! (v+1)_j)`` has positive terms only, so it is
   summed with no cancellation; the ratio is the quotient of the series of orders ``v+1`` and ``v``.
2. Elsewhere, the uniform asymptotic (Debye) expansion, DLMF 10.41.3 and 10.41.4, with the polynomials
   ``u_k(p)`` and ``v_k(p)`` of DLMF 10.41.10-12 generated exactly in rational arithmetic at import.
   Since ``u_k(p)`` is divisible by ``p^k`` and ``p / v = 1 / rho`` with ``rho = sqrt(v^2 + z^2)``, the
   expansion is a series in ``1 / rho`` that holds uniformly in ``p`` (so also at ``v = 0``, where it
   reduces to the Hankel expansion); it is used where ``rho >= 18``, and the series everywhere else
   (180 terms, summed in one vectorised ``cumprod``, suffice for every ``z^2 / (4(v+1)) <= 81``).
   The ratio itself comes from ``I_v / I_{v+1} = I'_{v+1} / I_{v+1} + (v+1)/z`` (a sum of positive
   terms, no cancellation) and ``1 - R`` is formed from a difference series whose coefficients are
   subtracted exactly, so that ``A'(kappa) = 1 - A^2 - (m-1) A / kappa`` keeps its digits at large
   ``kappa`` (the subtraction that gives the wrong sign in float32 in earlier code). The logarithm
   comes from the same expansion at order ``v + 1``: ``log I_v = log I_{v+1} - log R``.

One evaluation gives every quantity of one ``(v, z)`` pair at once (:func:`bessel_terms`); the
von Mises-Fisher distribution shares it between its sampler's gradient, its log-density and its KL
divergences (:func:`kl_to_uniform`, value ``z R - log 0F1`` and derivative ``z R' = R N`` from the same
terms; :func:`term_of` for the others). At the
batch sizes of training every tensor operation costs microseconds of dispatch, more than its
arithmetic, so the evaluation is written in few operations: cached coefficients for an order given as a
number, both regions merged in one operation, power sums formed directly where that is cheaper.

All arithmetic runs in float64 (float32 on Apple MPS, which has no float64) and the result is cast back
to the input dtype. Results: ``log_ive(v, 0) = 0`` for ``v = 0`` and ``-inf`` for ``v > 0`` (the exact
value, ``I_v(0) = 0``); ``ive_ratio(v, 0) = 0``; ``log_iv_normalized(v, 0) = 0``. Values too small for
the dtype (``R'`` of about ``(v + 1/2) / z^2`` from ``z`` of about ``1e154`` on in float64) underflow to
subnormal numbers or 0, no earlier: products are formed in the order that keeps them representable.

Derivatives (custom autograd; every first derivative is evaluated without cancellation):
``d/dz log_ive = v/z - (1 - R)``, ``d/dz log_iv_normalized = R``, ``d/dz log_ive_normalized = -(1 -
R)``, ``d/dz R = (1 - R)(1 + R) - (2v + 1) R / z = (R / z) N``, with ``R / z -> 1 / (2(v+1))`` and ``N ->
1`` at ``z = 0``; the second derivative ``R''`` from the Riccati equation, ``(R / z)((2v + 1)(1 - N) / z -
2 R N)``, and at large ``z`` from the asymptotic series (step 3), whose terms do not cancel. Third
derivatives are not provided, nor derivatives in ``v`` (a fixed order in every use here).

References:
    NIST Digital Library of Mathematical Functions, sections 10.25, 10.29, 10.40, 10.41.
    D. E. Amos (1974), Computation of modified Bessel functions and their ratios, Math. Comp. 28.
    F. W. J. Olver (1997), Asymptotics and Special Functions, chapter 10.

Layout: :mod:`.layout` (the regions' bounds and the rows they return), :mod:`.power_sums`,
:mod:`.series` and :mod:`.debye` (the two regions), :mod:`.evaluation` (both merged, and
:class:`BesselTerms`), :mod:`.derivatives` (second derivatives) and :mod:`.functions` (the public
functions with their autograd rules). This package knows nothing of distributions.
"""

from .evaluation import (
    BesselTerms,
    bessel_terms,
    mean_resultant_terms,
    merged_values,
    order_plan,
)
from .functions import (
    ive_ratio,
    ive_ratio_complement,
    ive_ratio_derivative,
    kl_to_uniform,
    log_iv_normalized,
    log_ive,
    log_ive_normalized,
    term_of,
)
from .layout import OrderPlan

__all__ = [
    "BesselTerms",
    "OrderPlan",
    "bessel_terms",
    "ive_ratio",
    "ive_ratio_complement",
    "ive_ratio_derivative",
    "kl_to_uniform",
    "log_iv_normalized",
    "log_ive",
    "log_ive_normalized",
    "mean_resultant_terms",
    "merged_values",
    "order_plan",
    "term_of",
]
