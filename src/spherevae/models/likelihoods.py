r"""Observation models ``p(x|z)`` for images, parameterised by the decoder's output.

The decoder returns one tensor ``params`` of shape ``(..., C, H, W)``; a likelihood turns it into a
distribution over images (``Independent(..., 3)``, so ``log_prob`` sums over pixels) and gives
``log p(x|z)`` of shape ``(...)``, broadcasting ``x`` ``(B, C, H, W)`` against ``params``
``(n_samples, B, C, H, W)``.

- ``"bernoulli"`` (``-lf bce``): ``params`` are logits; ``log p(x|z) = sum x log s + (1 - x) log(1 - s)``,
  ``s = sigmoid(logits)``. A likelihood for binarised data; for grey levels in ``[0, 1]`` it is the
  binary cross-entropy, which is *not* a normalised density (values are accepted, as in the reference
  code's training with BCE, but a log-likelihood reported on grey data is not comparable).
- ``"gaussian"`` (``-lf mse``): ``params`` are means; ``N(x; mean, sigma^2)`` per pixel with one
  ``sigma`` for all pixels and images: fixed when ``std`` is given, else learned as
  ``sigma = MIN_STD + softplus(r)``, starting at ``sigma = 1``. A global scale (not one per pixel):
  per-pixel scales drive ``sigma -> 0`` on MNIST's always-black border pixels and the likelihood to
  infinity; the floor ``MIN_STD = 1e-3`` bounds it for the same reason. Maximising over ``sigma``
  gives ``sigma^2 = MSE``, so the fit is the reference's mean-squared-error loss with a learned weight.
- ``"continuous_bernoulli"``: ``params`` are logits of ``torch.distributions.ContinuousBernoulli``, the
  normalised density on ``[0, 1]`` that fixes the missing normaliser of BCE on grey-level data
  (Loaiza-Ganem and Cunningham 2019). Its mean is not ``sigmoid(logits)``.

References:
    G. Loaiza-Ganem, J. P. Cunningham (2019), The continuous Bernoulli: fixing a pervasive error in
    variational autoencoders, NeurIPS.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Bernoulli, ContinuousBernoulli, Distribution, Independent, Normal

__all__ = [
    "BernoulliLikelihood",
    "ContinuousBernoulliLikelihood",
    "GaussianLikelihood",
    "Likelihood",
    "build_likelihood",
]


class Likelihood(nn.Module):
    """Base class: ``distribution(params)``, ``log_prob(x, params)`` and ``mean(params)``.

    Args:
        event_dims: the number of trailing axes of one observation, over which ``log_prob`` sums:
            3 for images ``(C, H, W)``, 1 for vectors ``(D,)``.
    """

    name = ""

    def __init__(self, event_dims: int = 3) -> None:
        super().__init__()
        self.event_dims = event_dims

    def distribution(self, params: Tensor) -> Distribution:
        """``p(x|z)`` with the last ``event_dims`` axes of ``params`` as its event (an image
        ``(C, H, W)`` or a vector ``(D,)``) and the others as its batch."""
        raise NotImplementedError

    def log_prob(self, x: Tensor, params: Tensor) -> Tensor:
        """``log p(x|z)`` summed over the observation's values: ``broadcast(x, params).shape``
        less its last ``event_dims`` axes."""
        return self.distribution(params).log_prob(x)

    def mean(self, params: Tensor) -> Tensor:
        """Expected image ``E[x|z]``, shape of ``params`` (what to show as a reconstruction)."""
        return self.distribution(params).mean


class BernoulliLikelihood(Likelihood):
    """Bernoulli pixels with logits ``params`` (binarised data; BCE on grey levels, see module doc)."""

    name = "bernoulli"

    def distribution(self, params: Tensor) -> Distribution:
        # validate_args=False accepts grey-level x (the BCE); see the module docstring
        return Independent(Bernoulli(logits=params, validate_args=False), self.event_dims)

    def mean(self, params: Tensor) -> Tensor:
        return torch.sigmoid(params)


class GaussianLikelihood(Likelihood):
    """Gaussian pixels ``N(mean = params, sigma^2)`` with one global ``sigma``, fixed or learned.

    Args:
        std: fixed ``sigma``; ``None`` learns it (``sigma = MIN_STD + softplus(raw_std)``, starting at 1).
    """

    name = "gaussian"
    MIN_STD = 1e-3

    def __init__(self, std: float | None = None, event_dims: int = 3) -> None:
        super().__init__(event_dims)
        self.fixed_std = std
        if std is None:
            start = 1.0 - self.MIN_STD  # softplus(raw) at the start, so that sigma starts at 1
            self.raw_std = nn.Parameter(torch.tensor(start + math.log(-math.expm1(-start))))

    @property
    def std(self) -> Tensor:
        """The current ``sigma`` (0-dimensional)."""
        if self.fixed_std is not None:
            return torch.tensor(self.fixed_std)
        return F.softplus(self.raw_std) + self.MIN_STD

    def distribution(self, params: Tensor) -> Distribution:
        std = self.std.to(dtype=params.dtype, device=params.device)
        return Independent(Normal(params, std.expand_as(params)), self.event_dims)

    def mean(self, params: Tensor) -> Tensor:
        return params


class ContinuousBernoulliLikelihood(Likelihood):
    """Continuous Bernoulli pixels on ``[0, 1]`` with logits ``params`` (Loaiza-Ganem and Cunningham 2019)."""

    name = "continuous_bernoulli"

    def distribution(self, params: Tensor) -> Distribution:
        return Independent(ContinuousBernoulli(logits=params), self.event_dims)


def build_likelihood(
    name: str, gaussian_std: float | None = None, event_dims: int = 3
) -> Likelihood:
    """The likelihood called ``name``: ``"bernoulli"``, ``"gaussian"`` or ``"continuous_bernoulli"``,
    over observations of ``event_dims`` axes (3: images, 1: vectors).

    Raises:
        ValueError: for another name (``-lf`` flags map through ``ModelConfig``'s ``LIKELIHOOD_FLAGS``).
    """
    if name == "bernoulli":
        return BernoulliLikelihood(event_dims)
    if name == "gaussian":
        return GaussianLikelihood(gaussian_std, event_dims)
    if name == "continuous_bernoulli":
        return ContinuousBernoulliLikelihood(event_dims)
    raise ValueError(
        f"likelihood must be 'bernoulli', 'gaussian' or 'continuous_bernoulli', got likelihood={name!r}"
    )
