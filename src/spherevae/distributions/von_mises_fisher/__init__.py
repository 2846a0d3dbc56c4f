"""The von Mises-Fisher distribution on ``S^{m-1}``, one module per role.

- :mod:`.distribution`: :class:`VonMisesFisher` itself (density and normaliser, moments, entropy, and
  :meth:`~VonMisesFisher.rsample`, which places a draw of ``t = 1 - mu . x`` on the sphere);
- :mod:`.marginal`: the law of ``mu . x`` that the samplers and the gradient share (its density in the
  angle, Gauss-Legendre quadrature, the large-concentration limit);
- :mod:`.proposals`, :mod:`.rejection`, :mod:`.metropolis_hastings`, :mod:`.inverse_cdf`: the samplers;
- :mod:`.gradient`: the implicit-reparameterisation gradient of a sample in the concentration;
- :mod:`.kernels`: the same draws compiled by ``torch.compile`` for training sizes;
- :mod:`.kl`: its KL divergences, registered with ``torch.distributions``.
"""

from . import kl as kl  # registers the KL divergences
from .distribution import DEFAULT_MH_STEPS, SAMPLERS, Sampler, VonMisesFisher, share_bessel_terms

__all__ = ["DEFAULT_MH_STEPS", "SAMPLERS", "Sampler", "VonMisesFisher", "share_bessel_terms"]
