"""The von Mises-Fisher distribution on the unit sphere ``S^{m-1}``."""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints
from torch.types import _size

from ...special import (
    BesselTerms,
    bessel_terms,
    ive_ratio,
    ive_ratio_derivative,
    kl_to_uniform,
    log_iv_normalized,
    mean_resultant_terms,
    term_of,
)
from ...tracing import is_compiling, may_be_differentiated, values_can_be_read
from ..constraints import sphere
from ..sphere import (
    broadcast_parameters,
    check_concentration,
    check_loc,
    log_sphere_area,
    place_on_sphere,
    work_dtype,
)
from . import kernels
from .gradient import dtheta_dkappa
from .inverse_cdf import sample_inverse_cdf
from .metropolis_hastings import metropolis_hastings
from .rejection import closed_form_m3, wood_rejection

Sampler = Literal["rejection", "inverse_cdf", "mh"]


SAMPLERS: tuple[str, ...] = ("rejection", "inverse_cdf", "mh")


# Wood's envelope accepts with probability 1/M >= 0.655 over m in [2, 20000], kappa in [1e-3, 1e6]
# (measured, 20000 proposals per cell), so after n independence-MH steps the total-variation distance
# to the vMF is at most (1 - 1/M)^n <= 0.345^25 < 4e-12 (Mengersen and Tweedie 1996, theorem 2.1).
DEFAULT_MH_STEPS = 25


# log_prob takes the form without terms of size kappa from this concentration on (see there)
_MODE_FORM_FROM = 1e6


class VonMisesFisher(Distribution):
    r"""Von Mises-Fisher distribution on ``S^{m-1} = {x in R^m : |x| = 1}``.

    Math:
        ``p(x) = C_m(kappa) exp(kappa mu . x)`` with respect to the surface measure, where

        ``log C_m(kappa) = -log_normalizer = -(log area(S^{m-1}) + log 0F1(; m/2; kappa^2 / 4))``,

        which equals the textbook ``(m/2 - 1) log kappa - (m/2) log(2 pi) - log I_{m/2-1}(kappa)`` but is
        exact at ``kappa = 0`` (the uniform distribution) and keeps its digits at small ``kappa``.
        ``E[x] = A_m(kappa) mu`` with ``A_m = I_{m/2} / I_{m/2-1}`` (:func:`spherevae.special.ive_ratio`);
        the entropy is ``log_normalizer - kappa A_m(kappa)``.

    Sampling draws ``w = mu . x`` from its marginal, density proportional to
    ``exp(kappa w) (1 - w^2)^{(m-3)/2}``, then ``x = w mu + sqrt(1 - w^2) v`` with ``v`` uniform on the
    unit sphere of the tangent space at ``mu`` (a standard Gaussian projected onto that space and
    normalised; :func:`~spherevae.distributions.sphere.place_on_sphere`).
    ``sampler`` chooses how ``w`` is drawn (see ``spherevae.distributions.von_mises_fisher.rejection`` and ``.metropolis_hastings``):

    - ``"rejection"`` (default): Wood (1994) with the cancellation-free envelope constant; rows whose
      ``kappa`` is large for their ``m`` propose ``1 - w = G / kappa``, ``G ~ Gamma((m-1)/2)``, whose
      acceptance tends to 1 as ``kappa`` grows (Wood's stays near 0.7); each row uses one proposal
      with its own exact test; the exact closed-form inversion at ``m = 3``;
    - ``"inverse_cdf"``: numerical inversion of the CDF of ``theta = arccos w``
      (``spherevae.distributions.von_mises_fisher.inverse_cdf``; relative error of ``1 - w`` below ``1e-9``, tested
      against mpmath): per sample by Newton's method on the log tail mass, or for large draws from 33
      exactly solved knots per row, adapted to ``kappa`` and ``m``, and one step from the nearer knot;
    - ``"mh"``: an independence Metropolis-Hastings chain per sample with Wood's proposal, ``mh_steps``
      steps (default 25: the chain is then within 4e-12 of the vMF in total variation); the acceptance
      rate of the last draw is in :attr:`acceptance_rate`.

    Large concentrations: every closed form keeps its relative accuracy up to the largest finite
    ``kappa`` of the dtype (the log-density, entropy and KL divergences through the cancellation-free
    terms of :class:`~spherevae.special.BesselTerms`; :meth:`log_prob` near the mode through ``|x -
    mu|^2``), and every sampler draws rows beyond
    :func:`~spherevae.distributions.von_mises_fisher.marginal.limit_concentration` (``1e6`` to ``6e11`` for ``m``
    up to 1024), where ``t = 1 - mu . x`` is a scaled gamma variate to rounding, at that limit and
    scales ``t``. With validation off, a NaN concentration gives NaN everywhere (samples included)
    and an infinite one samples the mode.

    Gradients: :meth:`rsample` is differentiable in ``loc`` (through the reflection) and in
    ``concentration`` for every sampler. The gradient in ``concentration`` is the implicit
    reparameterisation gradient ``dw/dkappa = -(dF/dkappa)(w) / p(w)`` of Figurnov et al. (2018), the
    exact derivative of the sample along the CDF, computed by quadrature. It is unbiased whatever the
    sampler, whereas back-propagating through the accepted proposal of a rejection sampler keeps only
    the pathwise term and is biased (Davidson et al. 2018 add a score-function correction, Naesseth et
    al. 2017). At ``m = 3`` with the rejection sampler the closed-form inversion is differentiated
    directly, which gives the same exact gradient.

    Args:
        loc: ``batch_shape + (m,)`` unit mean directions, ``m >= 2``.
        concentration: ``batch_shape`` (broadcastable) concentrations ``kappa >= 0``; no trailing 1.
        sampler: ``"rejection"``, ``"inverse_cdf"`` or ``"mh"``.
        mh_steps: number of Metropolis-Hastings steps per sample (``sampler="mh"`` only).
        compiled: draw through the kernels compiled by ``torch.compile``
            (:mod:`spherevae.distributions.von_mises_fisher.kernels`) where they apply: draws of at
            most 32 samples a row on a CPU or CUDA device, except the closed form of the rejection
            sampler at ``m = 3``. The same law and gradients as the eager path (not the same numbers
            for a seed), at a fraction of its dispatch cost; the first draw of each shape compiles
            (seconds). If compiling fails, a warning says why and the eager path serves.
        validate_args: check the parameters (and samples in :meth:`log_prob`); default as in
            ``torch.distributions`` (on unless Python runs with ``-O``).

    Raises:
        ValueError: for a ``loc`` that is not a batch of unit vectors with ``m >= 2``, a negative or
            non-finite ``concentration``, or an unknown ``sampler``; the message names the argument.

    Examples:
        >>> loc = torch.tensor([0.0, 0.0, 1.0])
        >>> q = VonMisesFisher(loc, torch.tensor(10.0))
        >>> q.rsample((4,)).shape
        torch.Size([4, 3])

    References:
        A. T. A. Wood (1994), Simulation of the von Mises Fisher distribution.
        T. R. Davidson et al. (2018), Hyperspherical variational auto-encoders, UAI.
        C. Naesseth et al. (2017), Reparameterization gradients through acceptance-rejection sampling
        algorithms, AISTATS.
        M. Figurnov, S. Mohamed, A. Mnih (2018), Implicit reparameterization gradients, NeurIPS.
    """

    arg_constraints = {"loc": sphere, "concentration": constraints.nonnegative}
    support = sphere
    has_rsample = True

    def __init__(
        self,
        loc: Tensor,
        concentration: Tensor | float,
        *,
        sampler: Sampler = "rejection",
        mh_steps: int = DEFAULT_MH_STEPS,
        compiled: bool = False,
        validate_args: bool | None = None,
    ) -> None:
        validate = validate_args if validate_args is not None else Distribution._validate_args
        if not isinstance(loc, Tensor):
            raise ValueError(f"loc must be a tensor, got {type(loc).__name__}")
        check_loc(loc, validate)
        concentration = torch.as_tensor(concentration, dtype=loc.dtype, device=loc.device)
        check_concentration(concentration, validate)
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got sampler={sampler!r}")
        if isinstance(mh_steps, bool) or not isinstance(mh_steps, int) or mh_steps < 1:
            raise ValueError(f"mh_steps must be a positive integer, got mh_steps={mh_steps!r}")
        self.loc, self.concentration = broadcast_parameters(loc, concentration)
        batch_shape, m = self.concentration.shape, loc.shape[-1]
        if not isinstance(compiled, bool):
            raise ValueError(f"compiled must be True or False, got compiled={compiled!r}")
        self.sampler: Sampler = sampler
        self.mh_steps = mh_steps
        self.compiled = compiled
        self.acceptance_rate: Tensor | None = None
        self._terms: tuple[Tensor, int | None, BesselTerms] | None = None
        super().__init__(batch_shape, torch.Size([m]), validate_args=validate_args)

    # -- parameters and closed forms --------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Ambient dimension ``m`` (samples lie on ``S^{m-1}``)."""
        return int(self.event_shape[0])

    @property
    def order(self) -> float:
        """The order ``v = m/2 - 1`` of the Bessel functions of this distribution (see :meth:`bessel_terms`)."""
        return self.dim / 2 - 1

    def _kappa64(self) -> Tensor:
        return self.concentration.to(work_dtype(self.concentration.device))

    def expand(self, batch_shape: _size, _instance: VonMisesFisher | None = None) -> VonMisesFisher:
        new: VonMisesFisher = self._get_checked_instance(VonMisesFisher, _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc = self.loc.expand(batch_shape + self.event_shape)
        new.concentration = self.concentration.expand(batch_shape)
        new.sampler = self.sampler
        new.mh_steps = self.mh_steps
        new.compiled = self.compiled
        new.acceptance_rate = None
        new._terms = None
        super(VonMisesFisher, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def cached_bessel_terms(self) -> BesselTerms | None:
        """The terms of :meth:`bessel_terms` if they were evaluated for the current concentration, else
        ``None`` (evaluates nothing)."""
        kappa = self.concentration
        if self._terms is None:
            return None
        cached_kappa, version, terms = self._terms
        if cached_kappa is not kappa:
            return None
        # while torch.compile traces, a tensor is not modified between a draw and the KL of one
        # distribution, and its version counter cannot be read
        return terms if is_compiling() or version == kappa._version else None

    def _set_terms(self, terms: BesselTerms) -> None:
        kappa = self.concentration
        if is_compiling():
            self._terms = (kappa, None, terms)
        elif not kappa.is_inference():  # an inference tensor has no version counter
            self._terms = (kappa, kappa._version, terms)

    def bessel_terms(self, kappa_work: Tensor | None = None) -> BesselTerms:
        """No-grad Bessel terms of the concentrations (:func:`spherevae.special.bessel_terms`, order
        ``m/2 - 1``, shape ``batch_shape``, working dtype): ``A``, ``1 - A``, ``A / kappa`` and
        ``log 0F1(; m/2; kappa^2/4)``.

        Computed once per distribution and shared by the gradient of :meth:`rsample` and the KL divergence
        to the uniform distribution, which need them at the same concentrations: at the batch sizes of
        training one evaluation costs about as much as the whole rest of the sampler. The values depend
        on the concentration's values only (not on grad mode); they are recomputed if the concentration
        tensor is replaced or modified in place (its version counter moves). ``kappa_work``: the
        concentration already detached and in the working dtype, shape ``batch_shape``, if the caller
        has it (one conversion fewer).
        """
        terms = self.cached_bessel_terms()
        if terms is None:
            kappa = self.concentration if kappa_work is None else kappa_work
            terms = bessel_terms(self.order, kappa)
            self._set_terms(terms)
        return terms

    def _flat_terms(self, kappa_work: Tensor) -> BesselTerms:
        """:meth:`bessel_terms` flattened to ``(B,)``, as the samplers take them; ``kappa_work``: the
        flat concentrations, detached, in the working dtype."""
        if len(self.batch_shape) == 1:
            return self.bessel_terms(kappa_work)
        return self.bessel_terms().map(lambda x: x.reshape(-1))

    @property
    def mean_resultant_length(self) -> Tensor:
        """``A_m(kappa) = E[mu . x] = I_{m/2}(kappa) / I_{m/2-1}(kappa)``, shape ``batch_shape``."""
        return ive_ratio(self.order, self._kappa64()).to(self.loc.dtype)

    @property
    def mean(self) -> Tensor:
        """``E[x] = A_m(kappa) mu`` (inside the ball: the mean of a sphere-valued variable)."""
        return self.mean_resultant_length.unsqueeze(-1) * self.loc

    @property
    def mode(self) -> Tensor:
        return self.loc

    @property
    def variance(self) -> Tensor:
        """Diagonal of the covariance ``(A / kappa)(I - mu mu^T) + A'(kappa) mu mu^T``; ``1/m`` at ``kappa = 0``.

        Differentiable in ``loc`` and ``concentration`` (twice in ``concentration``): ``A'`` is then
        :func:`~spherevae.special.ive_ratio_derivative`, formed without cancellation, and ``A / kappa`` uses its limit ``1/m`` at ``kappa = 0`` (where its slope is 0).
        """
        kappa = self._kappa64()
        if may_be_differentiated(kappa):
            ratio = ive_ratio(self.order, kappa)
            a_prime = ive_ratio_derivative(self.order, kappa)
            positive = kappa > 0
            kappa_safe = torch.where(positive, kappa, torch.ones_like(kappa))
            a_over_kappa = torch.where(positive, ratio / kappa_safe, 1.0 / self.dim)
        else:
            _, _, a_over_kappa, a_prime = mean_resultant_terms(self.order, kappa.detach())
        mu2 = self.loc.to(a_prime.dtype) ** 2
        var = a_over_kappa.unsqueeze(-1) * (1 - mu2) + a_prime.unsqueeze(-1) * mu2
        return var.to(self.loc.dtype)

    @property
    def log_normalizer(self) -> Tensor:
        """``log Z(kappa) = log int exp(kappa mu . x) dx = log area(S^{m-1}) + log 0F1(; m/2; kappa^2/4)``."""
        return self._log_normalizer64().to(self.loc.dtype)

    def _log_normalizer64(self) -> Tensor:
        return log_sphere_area(self.dim) + log_iv_normalized(self.order, self._kappa64())

    def log_prob(self, value: Tensor) -> Tensor:
        """``log p(x) = kappa mu . x - log Z(kappa)``, in one of three forms by ``kappa``.

        With ``c = mu . x`` and ``g - kappa = log 0F1(; m/2; kappa^2/4) - kappa`` (the Bessel terms'
        ``log_scaled``, formed without the subtraction; about ``-((m-1)/2) log kappa``):

        - ``kappa <= 1``: ``kappa c - (log area + g)``, whose derivative ``c - A`` keeps the digits of a
          small ``A``;
        - ``1 < kappa <= 1e6``: ``-kappa (1 - c) - (log area + g - kappa)``, the same function with no
          term of size ``kappa`` (from ``kappa`` of about ``1e16`` on the first form loses every digit)
          and the derivative ``(1 - A) - (1 - c)``, exact where ``x`` is near the mode;
        - ``kappa > 1e6``: ``1 - c`` as ``|x - mu|^2 / 2`` (equal for unit vectors), exactly 0 at the
          mode and with its relative digits near it, where ``1 - c`` from the rounded dot product
          carries an absolute error of about ``1e-16``, which ``kappa`` multiplies (more than ``1e-8``
          of the result from ``kappa`` of about ``1e8`` on).

        Off the sphere, where ``log_prob`` is not a density, the last form extends differently: the
        gradient in ``loc`` is ``kappa (value - loc)`` instead of ``kappa value``, the same up to a
        multiple of ``loc``. The Bessel terms are the distribution's (shared with its sampler and KL).
        """
        if self._validate_args:
            self._validate_sample(value)
        work = work_dtype(value.device)
        loc, x = self.loc.to(work), value.to(work)
        kappa = self._kappa64()
        terms, v = self.bessel_terms(), self.order
        area = log_sphere_area(self.dim)
        small, middle, large = _log_prob_forms(kappa)
        forms: list[Tensor] = []
        if small or middle:
            cos = (loc * x).sum(-1)
        if small:
            forms.append(kappa * cos - (term_of(terms, "log_normalized", v, kappa) + area))
        if middle or large:
            log_scaled = term_of(terms, "log_scaled", v, kappa) + area
        if middle:
            forms.append(torch.addcmul(log_scaled, kappa, 1 - cos).neg_())
        if large:
            diff = x - loc
            distance = torch.linalg.vecdot(diff, diff)
            forms.append(torch.addcmul(log_scaled, kappa, distance, value=0.5).neg_())
        out = forms[0]  # (where NaN ends up: it propagates through every form)
        if small and middle:
            out = torch.where(kappa > 1.0, forms[1], out)
        if large and len(forms) > 1:
            out = torch.where(kappa > _MODE_FORM_FROM, forms[-1], out)
        return out.to(torch.promote_types(value.dtype, self.loc.dtype))

    def entropy(self) -> Tensor:
        # H = log area - KL(q || uniform): one Bessel evaluation (shared with rsample) for both terms
        kl = kl_to_uniform(self.order, self._kappa64(), self.bessel_terms())
        return (log_sphere_area(self.dim) - kl).to(self.loc.dtype)

    # -- sampling ----------------------------------------------------------------------------------
    def rsample(self, sample_shape: _size = ()) -> Tensor:
        sample_shape = torch.Size(sample_shape)
        shape = sample_shape + self.batch_shape
        n = sample_shape.numel()
        if n == 0 or self.batch_shape.numel() == 0:
            return self.loc.new_empty(shape + self.event_shape)
        kappa = self.concentration  # (B,)
        if kappa.dim() != 1:
            kappa = kappa.reshape(-1)
        if (
            self.compiled
            and kernels.applies(kappa.device, n)
            and not (self.sampler == "rejection" and self.dim == 3)
        ):
            return self._rsample_compiled(kappa, n, shape)
        t, slope = self._sample_one_minus_w(kappa, n)  # (B, n) each
        t = t.transpose(0, 1).to(self.loc.dtype)  # (n, B)
        if slope is None:
            return place_on_sphere(t, self.loc, shape)
        return place_on_sphere(t, self.loc, shape, kappa, slope.transpose(0, 1))

    def _rsample_compiled(self, kappa: Tensor, n: int, shape: torch.Size) -> Tensor:
        """:meth:`rsample` by the compiled kernels of :mod:`.kernels`: the Bessel terms, ``t``, the slope
        and the placement's forward pass in one call (``kappa`` flat ``(B,)``)."""
        m = self.dim
        needs_grad = torch.is_grad_enabled() and kappa.requires_grad
        loc = self.loc if self.loc.dim() == 2 else self.loc.reshape(-1, m)
        gauss = torch.randn(n, loc.shape[0], m, dtype=loc.dtype, device=loc.device)
        single = loc.dtype != torch.float64  # the slope's precision follows loc's
        precision = "none" if not needs_grad else "single" if single else "double"
        with torch.no_grad():
            draw = kernels.sample(
                self.sampler,
                kappa.detach().to(work_dtype(kappa.device)),
                m,
                n,
                self.mh_steps,
                precision,
                loc.detach(),
                gauss,
            )
        if self.cached_bessel_terms() is None:
            self._set_terms(_shaped_terms(draw.terms, self.batch_shape))
        rate = draw.acceptance_rate
        self.acceptance_rate = None if rate is None else rate.reshape(self.batch_shape)
        t = draw.t.transpose(0, 1)  # (n, B); only placed again where a fallback changed it
        if draw.placed is None:
            t = t.to(loc.dtype)
        slope = None if draw.slope is None else draw.slope.transpose(0, 1)
        return place_on_sphere(
            t, self.loc, shape, kappa if needs_grad else None, slope, gauss, draw.placed
        )

    def _sample_one_minus_w(self, kappa: Tensor, n: int) -> tuple[Tensor, Tensor | None]:
        """``t = 1 - mu . x`` of shape ``(B, n)`` in the working dtype, and its gradient in ``kappa``.

        The gradient is either carried by ``t`` itself (the closed form at ``m = 3``; the slope is then
        ``None``) or returned as the no-grad slope ``dtheta/dkappa`` ``(B, n)`` of the angle
        ``theta = arccos w`` when ``kappa`` needs a gradient (else ``None``), for
        :func:`place_on_sphere` to apply in its backward pass.
        """
        m = self.dim
        needs_grad = torch.is_grad_enabled() and kappa.requires_grad
        work = work_dtype(kappa.device)
        if self.sampler == "rejection" and m == 3:
            kappa64 = kappa.to(work)
            self.acceptance_rate = torch.ones(
                self.batch_shape, dtype=kappa64.dtype, device=kappa.device
            )
            return closed_form_m3(kappa64 if needs_grad else kappa64.detach(), n), None
        # detached first: a conversion of a tensor that requires grad records an autograd node
        kappa_nograd = kappa.detach().to(work)
        single = self.loc.dtype != torch.float64  # the slope's precision follows loc's
        slope = None
        # the Bessel terms (shared with the KL divergence) where the inversion or the gradient needs
        # them
        terms = (
            self._flat_terms(kappa_nograd) if needs_grad or self.sampler == "inverse_cdf" else None
        )
        with torch.no_grad():
            if self.sampler == "inverse_cdf":
                t = sample_inverse_cdf(kappa_nograd, m, n, terms)
                self.acceptance_rate = None
            elif self.sampler == "mh":
                t, rate = metropolis_hastings(kappa_nograd, m, n, self.mh_steps)
                self.acceptance_rate = rate.reshape(self.batch_shape)
            else:
                t, rate = wood_rejection(kappa_nograd, m, n)
                self.acceptance_rate = rate.reshape(self.batch_shape)
            if needs_grad:
                slope = dtheta_dkappa(t, kappa_nograd, m, terms, single)
        return t, slope


def _log_prob_forms(kappa: Tensor) -> tuple[bool, bool, bool]:
    """Which forms of :meth:`VonMisesFisher.log_prob` (``kappa <= 1``, ``<= 1e6``, above) the batch needs:
    on the CPU from its extremes (read without a wait), elsewhere all three (merged by ``torch.where``,
    no host round trip)."""
    if kappa.device.type != "cpu" or kappa.numel() == 0 or not values_can_be_read(kappa):
        return True, True, True
    lo_t, hi_t = torch.aminmax(kappa)
    lo, hi = lo_t.item(), hi_t.item()
    if math.isnan(lo) or math.isnan(hi):
        return True, True, True
    return lo <= 1.0, hi > 1.0 and lo <= _MODE_FORM_FROM, hi > _MODE_FORM_FROM


def _shaped_terms(terms: BesselTerms, shape: torch.Size) -> BesselTerms:
    """Flat ``(B,)`` terms reshaped to ``shape`` (views; none where the shape is already flat)."""
    return terms if len(shape) == 1 else terms.map(lambda x: x.view(shape))


def share_bessel_terms(members: Sequence[VonMisesFisher], stacked: VonMisesFisher) -> None:
    """One Bessel evaluation for factors that are sampled as one distribution stacked along a new axis.

    ``stacked`` has the members' concentrations stacked along a new leading axis (as
    :class:`~spherevae.distributions.ProductDistribution` samples ``S^4 x S^4``). If every member has
    its terms already, ``stacked`` gets theirs, stacked; otherwise ``stacked`` evaluates its terms once
    and every member gets its slice, for its KL divergence later. Either way no concentration is
    evaluated twice.
    """
    cached = [c.cached_bessel_terms() for c in members]
    if all(terms is not None for terms in cached):
        parts = [terms for terms in cached if terms is not None]
        # each field stacked over the members (None where a member has none: the logarithms)
        fields = [
            None if any(x is None for x in field) else torch.stack(field)
            for field in zip(*parts, strict=True)
        ]
        stacked._set_terms(BesselTerms(*fields))  # type: ignore[arg-type]
        return
    terms = stacked.bessel_terms()
    for j, c in enumerate(members):
        c._set_terms(terms.map(operator.itemgetter(j)))
