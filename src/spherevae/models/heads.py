r"""Posterior heads: encoder features ``(B, F)`` to the distribution ``q(z|x)`` with batch shape ``(B,)``.

One head per latent factor, or per run of equal sphere factors, each a linear map from the features:

- :class:`GaussianHead` (``R^d`` factors): ``Independent(Normal(mu, sigma), 1)`` with diagonal or
  single (shared) scale, or ``MultivariateNormal(mu, scale_tril=L)`` (Kingma and Welling 2014).
- :class:`VonMisesFisherHead` (``S^d`` factors): ``VonMisesFisher(mu, kappa)`` (Davidson et al. 2018).
- :class:`PowerSphericalHead` (``S^d`` factors): ``PowerSpherical(mu, kappa)`` (De Cao and Aziz 2020).
- :class:`PosteriorHead`: the heads of all factors of a latent space; a product space gives a
  :class:`~spherevae.distributions.ProductDistribution` (Davidson, Tomczak and Gavves 2019), a single
  factor its plain distribution, a single run of equal spheres its ``StackedProduct``.

A run of ``k`` consecutive equal spheres (``S4xS4``, the ``S2xS2`` of ``S2xS2xR3``) has one sphere head
with ``copies=k``: one linear map for the ``k`` directions, one for the ``k`` concentrations, and one
distribution with batch ``(B, k)`` wrapped in a :class:`~spherevae.distributions.StackedProduct`. It is
the same model as ``k`` separate heads (the same parameters, stacked), sampled with one sampler call
and one Bessel evaluation for the run and one KL call against the prior's matching group: fewer tensor
operations per step, the cost that dominates at small batches.

Sphere heads use ``mu = W_mu h / |W_mu h|`` and ``kappa = softplus(w_k . h + b_k) + 1``. The ``+ 1`` is
Davidson et al.'s (2018) choice: it keeps ``kappa >= 1``, away from ``kappa = 0`` where the posterior
equals the uniform prior and carries no information about ``x`` (a collapsed unit receives almost no
gradient from the reconstruction term). The distributions in :mod:`spherevae.distributions` are exact
at ``kappa = 0``, so here it is a modelling choice, not a numerical workaround. ``b_k`` starts at the
value that makes ``kappa`` equal to the ambient size ``m``: concentrated enough that samples carry
information from the start (mean resultant length ``A_m(m)`` between 0.62 and 0.70 for every ``m``;
the KL to the uniform is about ``m / 4`` nats), not so concentrated that the KL term dominates
the first steps.

The :class:`PointHead` is the deterministic counterpart for :class:`~spherevae.models.AutoEncoder`.

References:
    D. P. Kingma, M. Welling (2014), Auto-encoding variational Bayes, ICLR.
    T. R. Davidson et al. (2018), Hyperspherical variational auto-encoders, UAI.
    T. R. Davidson, J. M. Tomczak, E. Gavves (2019), Increasing expressivity of a hyperspherical VAE.
    N. De Cao, W. Aziz (2020), The Power Spherical distribution, ICML INNF+ workshop.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, MultivariateNormal, Normal

from ..distributions import (
    PowerSpherical,
    ProductDistribution,
    StackedProduct,
    VonMisesFisher,
    normalize,
)
from .latent import LatentFactor, LatentSpec

__all__ = [
    "GaussianHead",
    "PointHead",
    "PosteriorHead",
    "PowerSphericalHead",
    "VonMisesFisherHead",
    "build_factor_head",
]

# floor on Gaussian scales: keeps log q finite (and the KL bounded) whatever the encoder outputs
MIN_SCALE = 1e-4


def _inverse_softplus(y: float) -> float:
    """``x`` with ``softplus(x) = y`` (``y > 0``)."""
    return y + math.log(-math.expm1(-y))


class GaussianHead(nn.Module):
    """Gaussian posterior on ``R^d``.

    Shapes: ``h`` ``(B, F)`` to a distribution with ``batch_shape (B,)``, ``event_shape (d,)``.

    Covariance modes (the reference run-file's ``-cvm``):

    - ``"diagonal"``: ``Independent(Normal(mu, sigma), 1)``, ``sigma = softplus(.) + MIN_SCALE`` per
      coordinate;
    - ``"single"``: the same with one ``sigma`` per example, broadcast over the ``d`` coordinates;
    - ``"full"``: ``MultivariateNormal(mu, scale_tril=L)``, ``L`` lower triangular with diagonal
      ``softplus(.) + MIN_SCALE`` (positive, so ``L L^T`` is positive definite) and free entries below.

    Args:
        in_features: feature size ``F``.
        dim: ``d``.
        covariance: ``"diagonal"``, ``"single"`` or ``"full"``.
    """

    def __init__(self, in_features: int, dim: int, covariance: str = "diagonal") -> None:
        super().__init__()
        n_scale = {"diagonal": dim, "single": 1, "full": dim + dim * (dim - 1) // 2}
        if covariance not in n_scale:
            raise ValueError(
                f"covariance must be 'diagonal', 'single' or 'full', got covariance={covariance!r}"
            )
        self.dim = dim
        self.covariance = covariance
        self.loc = nn.Linear(in_features, dim)
        self.scale = nn.Linear(in_features, n_scale[covariance])
        with torch.no_grad():
            # the diagonal scales start near 1, the prior's: samples are informative but not yet
            # pushed far from the prior, and the KL starts small
            self.scale.bias[: 1 if covariance == "single" else dim].fill_(
                _inverse_softplus(1.0 - MIN_SCALE)
            )
            if covariance == "full":
                self.scale.bias[dim:].zero_()

    def forward(self, h: Tensor) -> Distribution:
        mu = self.loc(h)
        raw = self.scale(h)
        if self.covariance == "full":
            d = self.dim
            diag = F.softplus(raw[..., :d]) + MIN_SCALE
            rows, cols = torch.tril_indices(d, d, offset=-1, device=h.device)
            tril = torch.diag_embed(diag)
            tril[..., rows, cols] = raw[..., d:]
            return MultivariateNormal(mu, scale_tril=tril, validate_args=False)
        sigma = F.softplus(raw) + MIN_SCALE
        return Independent(Normal(mu, sigma.expand_as(mu), validate_args=False), 1)


class _SphereHead(nn.Module):
    """Direction ``mu = normalize(W h + b)`` and concentration ``kappa = softplus(w . h + c) + 1``.

    With ``copies = k > 1`` the head serves ``k`` equal sphere factors: ``W`` has ``k m`` rows (factor
    ``j``'s are rows ``j m`` to ``(j + 1) m - 1``) and ``w`` has ``k``, the rows that ``k`` single
    heads would have, stacked.
    """

    def __init__(self, in_features: int, ambient: int, copies: int = 1) -> None:
        super().__init__()
        if ambient < 2:
            raise ValueError(f"a sphere head needs ambient size >= 2, got ambient={ambient}")
        if copies < 1:
            raise ValueError(f"a sphere head needs copies >= 1, got copies={copies}")
        self.ambient = ambient
        self.copies = copies
        self.direction = nn.Linear(in_features, copies * ambient)
        self.concentration = nn.Linear(in_features, copies)
        with torch.no_grad():
            self.concentration.bias.fill_(_inverse_softplus(ambient - 1.0))

    def parameters_of(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """``(mu, kappa)`` of shapes ``(B, m)`` and ``(B,)``, or ``(B, k, m)`` and ``(B, k)`` for
        ``copies = k > 1``.

        The heads build their distributions with ``validate_args=False``: the parameters are valid by
        construction (unit ``mu``, ``kappa >= 1``, positive scales), and the checks would cost a pass
        over the parameters and a device synchronisation every step. A diverging run shows up as a
        non-finite loss, which the trainer catches.
        """
        if self.copies == 1:
            mu = normalize(self.direction(h))
            kappa = F.softplus(self.concentration(h)).squeeze(-1) + 1.0
        else:
            mu = normalize(self.direction(h).unflatten(-1, (self.copies, self.ambient)))
            kappa = F.softplus(self.concentration(h)) + 1.0
        return mu, kappa

    def _product(self, dist: Distribution) -> Distribution:
        return dist if self.copies == 1 else StackedProduct(dist, validate_args=False)


class VonMisesFisherHead(_SphereHead):
    """von Mises-Fisher posterior on ``S^(m-1)``: ``(B, F) -> VonMisesFisher`` with batch ``(B,)``.

    With ``copies = k > 1``: ``StackedProduct(VonMisesFisher)`` on ``(S^(m-1))^k``, batch ``(B,)``,
    event ``(k m,)``.

    Args:
        in_features: feature size ``F``.
        ambient: ``m`` (the sphere ``S^(m-1)``).
        sampler: ``"rejection"``, ``"inverse_cdf"`` or ``"mh"`` (see
            :class:`~spherevae.distributions.VonMisesFisher`).
        copies: number ``k`` of equal sphere factors.
    """

    def __init__(
        self, in_features: int, ambient: int, sampler: str = "rejection", copies: int = 1
    ) -> None:
        super().__init__(in_features, ambient, copies)
        self.sampler = sampler
        # whether the posteriors draw through the compiled kernels (VonMisesFisher's ``compiled``);
        # the trainer turns it on for its training epochs (train.compiled_sampling)
        self.compiled_sampling = False

    def forward(self, h: Tensor) -> Distribution:
        mu, kappa = self.parameters_of(h)
        q = VonMisesFisher(
            mu,
            kappa,
            sampler=self.sampler,  # type: ignore[arg-type]
            compiled=self.compiled_sampling,
            validate_args=False,
        )
        return self._product(q)


class PowerSphericalHead(_SphereHead):
    """Power Spherical posterior on ``S^(m-1)``: ``(B, F) -> PowerSpherical`` with batch ``(B,)``; with
    ``copies = k > 1``, ``StackedProduct(PowerSpherical)`` on ``(S^(m-1))^k``."""

    def forward(self, h: Tensor) -> Distribution:
        mu, kappa = self.parameters_of(h)
        return self._product(PowerSpherical(mu, kappa, validate_args=False))


def build_factor_head(
    factor: LatentFactor,
    in_features: int,
    posterior: str,
    sampler: str,
    covariance: str,
    copies: int = 1,
) -> nn.Module:
    """The head for one factor (or ``copies`` equal sphere factors in a row): the ``posterior`` family
    on spheres, a Gaussian on ``R^d``.

    Raises:
        ValueError: for ``posterior="normal"`` on a sphere factor, an unknown ``posterior``, or
            ``copies > 1`` for a Euclidean factor.
    """
    if not factor.is_sphere:
        if copies != 1:
            raise ValueError(f"only sphere factors are grouped, got copies={copies} for {factor}")
        return GaussianHead(in_features, factor.dim, covariance)
    if posterior == "vmf":
        return VonMisesFisherHead(in_features, factor.ambient, sampler, copies)
    if posterior == "powerspherical":
        return PowerSphericalHead(in_features, factor.ambient, copies)
    if posterior == "normal":
        raise ValueError(
            f"posterior='normal' cannot model the sphere factor {factor}; "
            f"use posterior='vmf' or 'powerspherical'"
        )
    raise ValueError(
        f"posterior must be 'vmf', 'powerspherical' or 'normal', got posterior={posterior!r}"
    )


class PosteriorHead(nn.Module):
    """``q(z|x)`` for a whole latent space, one sub-head per group of :meth:`LatentSpec.sphere_runs`.

    Shapes: ``h`` ``(B, F)`` to a distribution with ``batch_shape (B,)`` and
    ``event_shape (latent.ambient_dim,)``: the plain factor distribution for a single factor, a
    :class:`~spherevae.distributions.StackedProduct` for a single run of equal spheres (``S4xS4``), else
    a :class:`~spherevae.distributions.ProductDistribution` of the groups in coordinate order.

    ``factors[g]`` is group ``g``'s head.

    Args:
        in_features: feature size ``F``.
        latent: the latent space.
        posterior: ``"vmf"``, ``"powerspherical"`` or ``"normal"`` for the sphere factors.
        sampler: von Mises-Fisher sampler.
        covariance: Gaussian covariance mode for the ``R^d`` factors.
    """

    def __init__(
        self,
        in_features: int,
        latent: LatentSpec,
        posterior: str = "vmf",
        sampler: str = "rejection",
        covariance: str = "diagonal",
    ) -> None:
        super().__init__()
        self.latent = latent
        self.runs = latent.sphere_runs()
        self.factors = nn.ModuleList(
            build_factor_head(f, in_features, posterior, sampler, covariance, copies)
            for f, copies in self.runs
        )

    def forward(self, h: Tensor) -> Distribution:
        parts: list[Distribution] = [head(h) for head in self.factors]
        return parts[0] if len(parts) == 1 else ProductDistribution(parts)


class PointHead(nn.Module):
    """Deterministic latent point: a linear map, then each sphere block normalised to unit length.

    Shapes: ``(B, F) -> (B, latent.ambient_dim)``; Euclidean blocks are left as they are.
    """

    def __init__(self, in_features: int, latent: LatentSpec) -> None:
        super().__init__()
        self.latent = latent
        self.linear = nn.Linear(in_features, latent.ambient_dim)

    def forward(self, h: Tensor) -> Tensor:
        blocks = torch.split(self.linear(h), list(self.latent.sizes), dim=-1)
        return torch.cat(
            [
                normalize(b) if f.is_sphere else b
                for f, b in zip(self.latent.factors, blocks, strict=True)
            ],
            dim=-1,
        )


def set_compiled_sampling(model: nn.Module, enabled: bool) -> None:
    """Whether the von Mises-Fisher posteriors of ``model`` (every :class:`VonMisesFisherHead` in it)
    draw through the compiled kernels: the ``compiled`` argument of
    :class:`~spherevae.distributions.VonMisesFisher`, passed down by the heads. Same law and gradients
    either way."""
    if not isinstance(enabled, bool):
        raise ValueError(f"enabled must be True or False, got enabled={enabled!r}")
    for module in model.modules():
        if isinstance(module, VonMisesFisherHead):
            module.compiled_sampling = enabled
