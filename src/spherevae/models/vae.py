r"""The variational auto-encoder with a hyperspherical, Euclidean or product latent space.

Model (Kingma and Welling 2014; Davidson et al. 2018 for spheres; Davidson, Tomczak and Gavves 2019 for
products): ``p(z)`` a prior on the latent space, ``p(x|z)`` a likelihood whose parameters the decoder
computes, ``q(z|x)`` the encoder's posterior. Training maximises the evidence lower bound

``ELBO(x) = E_q[log p(x|z)] - beta KL(q(z|x) || p(z)) <= log p(x)`` (for ``beta = 1``),

with the expectation estimated from reparameterised samples and the KL in closed form. Evaluation
uses the importance-weighted estimate (Burda et al. 2016)

``log p(x) ~= logsumexp_k w_k - log K``, ``w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x)``,
``z_k ~ q(z|x)``,

a lower bound in expectation that increases to ``log p(x)`` as ``K`` grows. ``log p(z)`` and
``log q(z|x)`` are densities with respect to the same measure (the surface measure on each sphere
factor, Lebesgue on each ``R^d`` factor), so the ratio is a proper importance weight.

Examples:
    >>> model = VAE(ModelConfig(image_shape=(1, 8, 8), latent="S2", hidden_sizes=(32,)))
    >>> out = model.elbo(torch.rand(4, 1, 8, 8).round(), n_samples=2)
    >>> out.loss.shape, out.kl.shape, out.z.shape
    (torch.Size([]), torch.Size([4]), torch.Size([2, 4, 3]))

References:
    D. P. Kingma, M. Welling (2014), Auto-encoding variational Bayes, ICLR.
    Y. Burda, R. Grosse, R. Salakhutdinov (2016), Importance weighted autoencoders, ICLR.
    T. R. Davidson, L. Falorsi, N. De Cao, T. Kipf, J. M. Tomczak (2018), Hyperspherical variational
    auto-encoders, UAI.
    T. R. Davidson, J. M. Tomczak, E. Gavves (2019), Increasing expressivity of a hyperspherical VAE,
    NeurIPS workshop on Bayesian deep learning (products of spheres).
    N. De Cao, W. Aziz (2020), The Power Spherical distribution, ICML INNF+ workshop.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, kl_divergence
from torch.nn import functional as F

from .config import ModelConfig
from .heads import PosteriorHead
from .likelihoods import build_likelihood
from .networks import build_networks
from .pretrained import load_kind, save_pretrained
from .priors import build_prior

__all__ = ["VAE", "ElboResult"]


class ElboResult(NamedTuple):
    """What :meth:`VAE.elbo` returns (a tuple, so that ``DistributedDataParallel`` can traverse it).

    Attributes:
        loss: scalar, ``mean_b -(reconstruction_b - beta kl_b)``; minimise it.
        reconstruction: ``(B,)``, ``log p(x_b|z)`` averaged over the ``n_samples`` draws of ``z``.
        kl: ``(B,)``, ``KL(q(z|x_b) || p(z))`` in closed form.
        z: ``(n_samples, B, latent_dim)``, the reparameterised samples.
    """

    loss: Tensor
    reconstruction: Tensor
    kl: Tensor
    z: Tensor


class VAE(nn.Module):
    """Variational auto-encoder built from a :class:`ModelConfig`.

    Attributes:
        config: the configuration (saved by :meth:`save_pretrained`).
        latent: the parsed latent space.
        encoder: ``(B, C, H, W) -> (B, F)`` features.
        head: features to ``q(z|x)`` (:class:`~spherevae.models.heads.PosteriorHead`).
        decoder: ``(..., latent_dim) -> (..., C, H, W)`` likelihood parameters.
        likelihood: ``p(x|z)`` given the decoder's output.

    Conditional models (``config.n_classes = k > 0``, Sohn et al. 2015): ``q(z|x, y)`` and
    ``p(x|z, y)`` with the prior ``p(z)`` unchanged. The one-hot label is appended to the encoder's
    features (before the posterior head, so it works for the MLP and the CNN alike) and to the
    decoder's input. Every method then takes the labels ``y`` (``(B,)`` integers in ``0..k-1``).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.kind != "vae":
            raise ValueError(
                f"VAE needs a config with kind='vae', got kind={config.kind!r} (use AutoEncoder)"
            )
        self.config = config
        self.latent = config.latent_spec
        self.n_classes = config.n_classes
        # the decoder reads [z, one-hot y]; the head reads [features, one-hot y]
        networks = build_networks(config, self.latent.ambient_dim + self.n_classes)
        self.encoder, self.decoder = networks.encoder, networks.decoder
        self.head = PosteriorHead(
            networks.features + self.n_classes,
            self.latent,
            config.posterior,
            config.sampler,
            config.covariance,
        )
        self.likelihood = build_likelihood(
            config.likelihood, config.gaussian_std, event_dims=len(config.image_shape)
        )

    @property
    def latent_dim(self) -> int:
        """Number of coordinates of a latent vector (the ambient size)."""
        return self.latent.ambient_dim

    # -- the model's pieces -------------------------------------------------------------------------
    def _one_hot(self, y: Tensor | None, batch: int, like: Tensor) -> Tensor | None:
        """One-hot labels ``(batch, k)`` in ``like``'s dtype; ``None`` for an unconditional model."""
        if self.n_classes == 0:
            if y is not None:
                raise ValueError("labels y were given to an unconditional model (n_classes=0)")
            return None
        if y is None:
            raise ValueError(
                f"this model is conditional (n_classes={self.n_classes}): give labels y"
            )
        if y.shape != (batch,):
            raise ValueError(f"labels y must have shape ({batch},), got {tuple(y.shape)}")
        # a data-dependent check, which a graph traced by torch.export or torch.compile cannot hold:
        # an exported model does not check its labels' range (is_exporting: torch >= 2.5)
        exporting = getattr(torch.compiler, "is_exporting", lambda: False)()
        tracing = torch.compiler.is_compiling() or exporting
        if not tracing and bool(((y < 0) | (y >= self.n_classes)).any()):
            raise ValueError(f"labels y must be in 0..{self.n_classes - 1}, got {y.tolist()}")
        return F.one_hot(y.long(), self.n_classes).to(device=like.device, dtype=like.dtype)

    def encode(self, x: Tensor, y: Tensor | None = None) -> Distribution:
        """``q(z|x)`` (``q(z|x, y)`` for a conditional model): ``x`` ``(B, C, H, W)`` to a
        distribution with ``batch_shape (B,)``, ``event_shape (latent_dim,)``."""
        features: Tensor = self.encoder(x)
        one_hot = self._one_hot(y, x.shape[0], features)
        if one_hot is not None:
            features = torch.cat([features, one_hot], dim=-1)
        q: Distribution = self.head(features)
        return q

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """Likelihood parameters (e.g. Bernoulli logits): ``(..., B, latent_dim) -> (..., B, C, H, W)``;
        a conditional model takes the labels ``y`` ``(B,)``."""
        one_hot = self._one_hot(y, z.shape[-2] if z.dim() >= 2 else 1, z)
        if one_hot is not None:
            z = torch.cat([z, one_hot.expand(*z.shape[:-1], self.n_classes)], dim=-1)
        params: Tensor = self.decoder(z)
        return params

    def prior(self) -> Distribution:
        """``p(z)`` with ``batch_shape ()``, ``event_shape (latent_dim,)``, on the parameters' device."""
        weight = next(self.parameters())
        return build_prior(
            self.latent, self.config.covariance, dtype=weight.dtype, device=weight.device
        )

    def log_likelihood(self, x: Tensor, params: Tensor) -> Tensor:
        """``log p(x|z)`` summed over pixels: ``x`` ``(B, C, H, W)``, ``params`` ``(..., B, C, H, W)``
        to ``(..., B)``."""
        return self.likelihood.log_prob(x, params)

    # -- training -----------------------------------------------------------------------------------
    def elbo(
        self, x: Tensor, n_samples: int = 1, beta: float = 1.0, y: Tensor | None = None
    ) -> ElboResult:
        """The (beta-weighted) ELBO of a batch, with ``n_samples`` reparameterised draws per example.

        ``reconstruction = (1/S) sum_s log p(x|z_s)``, ``z_s ~ q(z|x)`` (differentiable through
        ``rsample``); ``kl = KL(q(z|x) || p(z))`` from the registered closed forms;
        ``loss = mean_b -(reconstruction - beta kl)``.

        Args:
            x: ``(B, C, H, W)`` images.
            n_samples: ``S >= 1``.
            beta: weight of the KL term (1 gives the ELBO; Higgins et al. 2017 for other values).
            y: ``(B,)`` labels, for a conditional model only.
        """
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got n_samples={n_samples}")
        q = self.encode(x, y)
        z = q.rsample((n_samples,))
        reconstruction = self.log_likelihood(x, self.decode(z, y)).mean(0)
        kl = kl_divergence(q, self.prior())
        loss = -(reconstruction - beta * kl).mean()
        return ElboResult(loss, reconstruction, kl, z)

    def objective(
        self,
        reconstruction: Tensor,
        kl: Tensor,
        *,
        kl_weight: float = 1.0,
        kl_target: float = 0.0,
        batch_size: int | None = None,
        sum_over_shares: Callable[[Tensor], Tensor] | None = None,
    ) -> Tensor:
        """The training objective of a batch from its ELBO terms (what :meth:`loss` minimises).

        ``mean_b -reconstruction_b + |kl_weight * mean_b kl_b - kl_target|``: with ``kl_target = 0``
        (the default) the negative beta-ELBO with ``beta = kl_weight``; with ``kl_target > 0`` the
        weighted KL is pulled towards the target from either side (Burgess et al. 2018's capacity
        term, without the capacity's schedule), which keeps the posterior from collapsing onto the
        prior.

        A batch split over processes (data-parallel training): each process passes its share's
        terms, the whole batch's ``batch_size`` and ``sum_over_shares`` (a sum over the processes,
        e.g. an all-reduce). The result is then this share's part of the whole batch's objective:
        the parts sum to it, and its gradient is the share's part of the whole batch's gradient.

        Args:
            reconstruction: ``(B,)`` ``log p(x_b|z)`` (from :meth:`elbo`).
            kl: ``(B,)`` ``KL(q(z|x_b) || p(z))``.
            kl_weight: weight of the KL term (a KL warm-up schedule sets it per epoch).
            kl_target: ``>= 0``, the value the weighted mean KL is pulled towards.
            batch_size: the whole batch's size (default ``B``).
            sum_over_shares: sums a tensor over the shares of a split batch (default: no split).

        Returns:
            A scalar to minimise.
        """
        if kl_target < 0:
            raise ValueError(f"kl_target must be >= 0, got kl_target={kl_target}")
        n = len(reconstruction) if batch_size is None else batch_size
        weighted_kl = kl_weight * kl.sum() / n
        # |w KL - target| of the whole batch: its gradient is sign(whole - target) times the gradient
        # of this share, so only the sign needs the other shares. KL >= 0: with no target the sign
        # is known without them.
        sign = 1.0
        if kl_target > 0:
            whole = weighted_kl.detach()
            if sum_over_shares is not None:
                whole = sum_over_shares(whole)
            sign = 1.0 if float(whole) >= kl_target else -1.0
        loss = -reconstruction.sum() / n + sign * weighted_kl
        if kl_target > 0:  # the constant part of |.|, this share's part of it
            loss = loss - sign * kl_target * len(reconstruction) / n
        return loss

    def loss(
        self,
        x: Tensor,
        *,
        kl_weight: float = 1.0,
        kl_target: float = 0.0,
        n_samples: int = 1,
        y: Tensor | None = None,
    ) -> ElboResult:
        """The training objective of a batch (:meth:`objective`) with the ELBO's terms.

        Same as :meth:`elbo` with ``loss`` replaced by :meth:`objective`'s value; with
        ``kl_target = 0`` the two agree (``beta = kl_weight``).

        Examples:
            >>> model = VAE(ModelConfig(image_shape=(1, 8, 8), latent="S2", hidden_sizes=(32,)))
            >>> out = model.loss(torch.rand(4, 1, 8, 8).round(), kl_weight=0.5, kl_target=2.0)
            >>> out.loss.shape, out.reconstruction.shape, out.kl.shape
            (torch.Size([]), torch.Size([4]), torch.Size([4]))
        """
        out = self.elbo(x, n_samples, kl_weight, y)
        loss = self.objective(out.reconstruction, out.kl, kl_weight=kl_weight, kl_target=kl_target)
        return out._replace(loss=loss)

    def forward(
        self, x: Tensor, n_samples: int = 1, beta: float = 1.0, y: Tensor | None = None
    ) -> ElboResult:
        """Same as :meth:`elbo` (so that a ``DistributedDataParallel`` wrapper syncs gradients)."""
        return self.elbo(x, n_samples, beta, y)

    # -- evaluation ---------------------------------------------------------------------------------
    def log_joint(self, x: Tensor, z: Tensor, y: Tensor | None = None) -> Tensor:
        """``log p(x|z) + log p(z)``: ``x`` ``(B, C, H, W)``, ``z`` ``(..., B, latent_dim)`` to ``(..., B)``.

        ``log p(z)`` is a density with respect to the surface measure on sphere factors and Lebesgue
        measure on ``R^d`` factors, like every posterior's ``log_prob``.
        """
        return self.log_likelihood(x, self.decode(z, y)) + self.prior().log_prob(z)

    @torch.no_grad()
    def log_weights(
        self, x: Tensor, n_samples: int, chunk_size: int | None = None, y: Tensor | None = None
    ) -> Tensor:
        """Importance log-weights ``log p(x|z_k) + log p(z_k) - log q(z_k|x)``, ``z_k ~ q(z|x)``.

        Notes:
            A Power Spherical posterior vanishes at ``-mu`` like ``theta^(2 kappa)`` (``theta`` the
            angle to ``-mu``), so the weights have infinite variance when ``2 kappa >= m - 1``: the
            estimate stays consistent but converges more slowly than ``1/sqrt(K)`` (on ``S^1`` and
            ``S^2``, where ``kappa >= 1``, this is always the case). A von Mises-Fisher posterior is
            bounded below on the sphere, so its weights are bounded.

        Args:
            x: ``(B, C, H, W)`` images.
            n_samples: ``K``.
            chunk_size: samples decoded at once (default: all ``K``); bounds memory at
                ``chunk_size * B`` decoded images.

        Returns:
            ``(K, B)``; ``logsumexp(w, 0) - log K`` estimates ``log p(x)`` (Burda et al. 2016).
        """
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got n_samples={n_samples}")
        step = n_samples if chunk_size is None else max(1, int(chunk_size))
        q = self.encode(x, y)
        chunks = []
        for start in range(0, n_samples, step):
            z = q.sample((min(step, n_samples - start),))
            chunks.append(self.log_joint(x, z, y) - q.log_prob(z))
        return torch.cat(chunks, 0)

    @torch.no_grad()
    def log_marginal_likelihood(
        self, x: Tensor, n_samples: int, chunk_size: int | None = None, y: Tensor | None = None
    ) -> Tensor:
        """Importance-weighted estimate of ``log p(x)``, ``(B,)``: ``logsumexp_k w_k - log K``.

        Its expectation is the IWAE bound ``L_K``: ``ELBO = L_1 <= L_K <= log p(x)``, increasing in ``K``
        (Burda et al. 2016). Report ``K`` with the number.
        """
        w = self.log_weights(x, n_samples, chunk_size, y)
        return torch.logsumexp(w, 0) - math.log(n_samples)

    @torch.no_grad()
    def reconstruct(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Expected image ``E[x|z]`` at the posterior mode ``z`` (``mu`` for spheres): ``(B, C, H, W)``."""
        return self.likelihood.mean(self.decode(self.encode(x, y).mode, y))

    @torch.no_grad()
    def generate(self, n: int, y: Tensor | None = None) -> Tensor:
        """Expected images ``E[x|z, y]`` for ``n`` draws ``z ~ p(z)``: ``(n, C, H, W)``; a
        conditional model takes ``n`` labels ``y``."""
        return self.likelihood.mean(self.decode(self.prior().sample((n,)), y))

    # -- export -------------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (see :mod:`spherevae.models.pretrained`)."""
        return save_pretrained(self, self.config, directory)

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike[str], device: torch.device | str = "cpu"
    ) -> VAE:
        """Rebuild a model saved by :meth:`save_pretrained` and load its weights.

        Raises:
            FileNotFoundError: for a missing ``config.json`` or ``model.safetensors`` (naming it).
            ValueError: for a corrupt or truncated file, weights that do not fit the config, or a
                folder holding an auto-encoder.
        """
        model = load_kind(directory, "vae", device)
        assert isinstance(model, cls)
        return model
