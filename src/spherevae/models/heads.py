r"""Posterior heads: encoder features ``(B, F)`` to the distribution ``q(z|x)`` with batch shape ``(B,)``.

One head per latent factor, each a linear map from the features:

- :class:`GaussianHead` (``R^d`` factors): ``Independent(Normal(mu, sigma), 1)`` with diagonal or
  single (shared) scale, or ``MultivariateNormal(mu, scale_tril=L)`` (Kingma and Welling 2014).
- :class:`VonMisesFisherHead` (``S^d`` factors): ``VonMisesFisher(mu, kappa)`` (Davidson et al. 2018).
- :class:`PowerSphericalHead` (``S^d`` factors): ``PowerSpherical(mu, kappa)`` (De Cao and Aziz 2020).
- :class:`PosteriorHead`: the heads of all factors of a latent space; a product space gives a
  :class:`~spherevae.distributions.ProductDistribution` (Davidson, Tomczak and Gavves 2019), a single
  factor its plain distribution.

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

from ..distributions import PowerSpherical, ProductDistribution, VonMisesFisher, normalize
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
    """Direction ``mu = normalize(W h + b)`` and concentration ``kappa = softplus(w . h + c) + 1``."""

    def __init__(self, in_features: int, ambient: int) -> None:
        super().__init__()
        if ambient < 2:
            raise ValueError(f"a sphere head needs ambient size >= 2, got ambient={ambient}")
        self.ambient = ambient
        self.direction = nn.Linear(in_features, ambient)
        self.concentration = nn.Linear(in_features, 1)
        with torch.no_grad():
            self.concentration.bias.fill_(_inverse_softplus(ambient - 1.0))

    def parameters_of(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """``(mu, kappa)`` of shapes ``(B, m)`` and ``(B,)``.

        The heads build their distributions with ``validate_args=False``: the parameters are valid by
        construction (unit ``mu``, ``kappa >= 1``, positive scales), and the checks would cost a pass
        over the parameters and a device synchronisation every step. A diverging run shows up as a
        non-finite loss, which the trainer catches.
        """
        mu = normalize(self.direction(h))
        kappa = F.softplus(self.concentration(h)).squeeze(-1) + 1.0
        return mu, kappa


class VonMisesFisherHead(_SphereHead):
    """von Mises-Fisher posterior on ``S^(m-1)``: ``(B, F) -> VonMisesFisher`` with batch ``(B,)``.

    Args:
        in_features: feature size ``F``.
        ambient: ``m`` (the sphere ``S^(m-1)``).
        sampler: ``"rejection"``, ``"inverse_cdf"`` or ``"mh"`` (see
            :class:`~spherevae.distributions.VonMisesFisher`).
    """

    def __init__(self, in_features: int, ambient: int, sampler: str = "rejection") -> None:
        super().__init__(in_features, ambient)
        self.sampler = sampler

    def forward(self, h: Tensor) -> Distribution:
        mu, kappa = self.parameters_of(h)
        return VonMisesFisher(mu, kappa, sampler=self.sampler, validate_args=False)  # type: ignore[arg-type]


class PowerSphericalHead(_SphereHead):
    """Power Spherical posterior on ``S^(m-1)``: ``(B, F) -> PowerSpherical`` with batch ``(B,)``."""

    def forward(self, h: Tensor) -> Distribution:
        mu, kappa = self.parameters_of(h)
        return PowerSpherical(mu, kappa, validate_args=False)


def build_factor_head(
    factor: LatentFactor, in_features: int, posterior: str, sampler: str, covariance: str
) -> nn.Module:
    """The head for one factor: the ``posterior`` family on spheres, a Gaussian on ``R^d``.

    Raises:
        ValueError: for ``posterior="normal"`` on a sphere factor, or an unknown ``posterior``.
    """
    if not factor.is_sphere:
        return GaussianHead(in_features, factor.dim, covariance)
    if posterior == "vmf":
        return VonMisesFisherHead(in_features, factor.ambient, sampler)
    if posterior == "powerspherical":
        return PowerSphericalHead(in_features, factor.ambient)
    if posterior == "normal":
        raise ValueError(
            f"posterior='normal' cannot model the sphere factor {factor}; "
            f"use posterior='vmf' or 'powerspherical'"
        )
    raise ValueError(
        f"posterior must be 'vmf', 'powerspherical' or 'normal', got posterior={posterior!r}"
    )


class PosteriorHead(nn.Module):
    """``q(z|x)`` for a whole latent space, one sub-head per factor.

    Shapes: ``h`` ``(B, F)`` to a distribution with ``batch_shape (B,)`` and
    ``event_shape (latent.ambient_dim,)``: the plain factor distribution for a single factor, else a
    :class:`~spherevae.distributions.ProductDistribution` of the factors in coordinate order.

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
        self.factors = nn.ModuleList(
            build_factor_head(f, in_features, posterior, sampler, covariance)
            for f in latent.factors
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
