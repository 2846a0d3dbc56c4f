"""Distributions on spheres and products of spheres, following the ``torch.distributions`` contract.

Importing this package registers the KL divergences in ``torch.distributions.kl``.
"""

from . import kl as _kl  # noqa: F401  (registers the KL divergences)
from ._compiled import compiled_sampling, compiled_sampling_enabled, set_compiled_sampling
from ._utils import normalize
from .constraints import sphere
from .power_spherical import PowerSpherical
from .product import ProductDistribution
from .stacked import StackedProduct
from .uniform import HypersphericalUniform
from .von_mises_fisher import VonMisesFisher

__all__ = [
    "HypersphericalUniform",
    "PowerSpherical",
    "ProductDistribution",
    "StackedProduct",
    "VonMisesFisher",
    "compiled_sampling",
    "compiled_sampling_enabled",
    "normalize",
    "set_compiled_sampling",
    "sphere",
]
